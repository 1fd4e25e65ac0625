"""SQLite access for the function server: connections, transactions, threads.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A
committed transaction is in the WAL file before ``COMMIT`` returns, so killing
the server (even ``kill -9``) loses nothing committed; only a power loss or
kernel crash can lose the last transactions (SQLite's documented trade-off).

Threads: sqlite calls block, so they do not run on the event loop, except point
reads by primary key on the hot path (:meth:`Database.read_sync`): in WAL mode a
reader never waits for the writer, and such a lookup costs less than handing it to
a thread. All writes go through one serialised writer thread (SQLite allows one
writer anyway), which commits the writes queued meanwhile together (group commit:
one transaction, a savepoint each, one wake-up of the event loop per batch); each
caller still resumes only after its write is committed. Other reads use a small
pool of threads, each with its own connection (WAL lets them read while the writer
writes). ``inline=True`` runs everything on the calling thread with one
connection, for command-line tools and tests.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ...errors import ConfigError
from .schema import CREATE, SCHEMA_VERSION, UPGRADES

T = TypeVar("T")

log = logging.getLogger(__name__)


def connect(path: str | Path, busy_timeout_ms: int = 10000) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with a busy timeout, autocommit, Row results.

    Args:
        path: The database file.
        busy_timeout_ms: How long a statement waits for another process's lock.

    Returns:
        A connection usable from any thread (each thread must still use its own).
    """
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction: commit, or roll back on error.

    The immediate lock is taken up front so that a read-modify-write never
    fails half-way with ``database is locked``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _apply_schema(conn: sqlite3.Connection, path: Path) -> None:
    with transaction(conn):
        for statement in CREATE:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row["value"]) if row else None
        if version is None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            return
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"The server database {path} has schema version {version}, newer than this "
                f"jupyter-faas understands ({SCHEMA_VERSION}).",
                hint="Upgrade jupyter-faas, or point c.FunctionServer.data_dir at another directory.",
            )
        while version < SCHEMA_VERSION:
            for statement in UPGRADES[version]:
                if callable(statement):
                    statement(conn)
                else:
                    conn.execute(statement)
            version += 1
            log.info("Upgraded %s to schema version %d", path, version)
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )


class Database:
    """The server's database: one serialised writer thread and a small read pool.

    Args:
        path: The SQLite file; its directory is created.
        readers: Threads (and connections) serving reads.
        inline: Run every call on the caller's thread with a single connection
            (no threads). For command-line tools and single-threaded tests.
    """

    def __init__(self, path: str | Path, readers: int = 2, inline: bool = False):
        self.path = Path(path)
        self.readers = max(1, readers)
        self.inline = inline
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._inline_conn: sqlite3.Connection | None = None
        #: Writes waiting for the writer thread: ``(fn, args, future)``.
        self._queue: collections.deque = collections.deque()
        #: Whether a drain of the queue is scheduled on the writer thread.
        self._draining = False
        self._queue_lock = threading.Lock()

    def open(self) -> None:
        """Create the file (owner-only) and schema (or upgrade it), start the threads."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
        # mode of the database file.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = connect(self.path)
        _apply_schema(conn, self.path)
        self.restrict_files()
        if self.inline:
            self._inline_conn = conn
            return
        conn.close()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="faas-db-writer")
        self._reader = ThreadPoolExecutor(self.readers, thread_name_prefix="faas-db-reader")

    @property
    def keys_changed_file(self) -> Path:
        """A file replaced after every key change: a server notices one with a ``stat``."""
        return self.path.with_name(self.path.name + "-keys-changed")

    def mark_keys_changed(self) -> None:
        """Replace :attr:`keys_changed_file` (a new inode); call after the change committed."""
        fresh = self.keys_changed_file.with_name(f"{self.keys_changed_file.name}.{os.getpid()}")
        fresh.write_text(f"{time.time_ns()}\n")
        os.chmod(fresh, 0o600)
        os.replace(fresh, self.keys_changed_file)

    def restrict_files(self) -> None:
        """Make the database file and its -wal / -shm readable by the owner only."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = self.path.with_name(self.path.name + suffix)
            try:
                os.chmod(path, 0o600)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Stop the threads and close every connection; safe to call twice."""
        for pool in (self._writer, self._reader):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._reader = None
        with self._lock:
            conns, self._conns = self._conns, []
        if self._inline_conn is not None:
            conns.append(self._inline_conn)
            self._inline_conn = None
        for conn in conns:
            conn.close()

    def _thread_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[..., T], args: tuple) -> T:
        return fn(self._inline_conn or self._thread_conn(), *args)

    def _run_write(self, fn: Callable[..., T], args: tuple) -> T:
        conn = self._inline_conn or self._thread_conn()
        with transaction(conn):
            return fn(conn, *args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(conn, *args)`` on this thread with its own connection: for inline use,
        tools, and primary-key lookups on the event loop's hot path (a WAL reader does not
        wait for the writer; keep anything that scans out of the loop)."""
        return self._run_read(fn, args)

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(conn, *args)`` in one immediate transaction on this thread."""
        return self._run_write(fn, args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(conn, *args)`` on a reader thread and return its result."""
        if self.inline:
            return self._run_read(fn, args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, partial(self._run_read, fn, args))

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(conn, *args)`` in an immediate transaction on the writer thread.

        Returns once the transaction is committed. Writes queued while the writer is busy
        share one transaction, each in a savepoint of its own: one that raises is rolled
        back alone and raises here, the others commit.
        """
        if self.inline:
            return self._run_write(fn, args)
        if self._writer is None:
            raise RuntimeError("the database is closed")
        future = asyncio.get_running_loop().create_future()
        with self._queue_lock:
            self._queue.append((fn, args, future))
            if not self._draining:
                self._draining = True
                self._writer.submit(self._drain)
        return await future

    def _drain(self) -> None:
        """On the writer thread: commit what is queued, batch after batch, until none is."""
        while True:
            with self._queue_lock:
                batch = list(self._queue)
                self._queue.clear()
                if not batch:
                    self._draining = False
                    return
            outcomes = self._run_batch(batch)
            by_loop: dict = {}
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                by_loop.setdefault(future.get_loop(), []).append((future, outcome))
            for loop, settled in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass

    def _run_batch(self, batch: list) -> list[tuple[bool, Any]]:
        """Run a batch of writes in one transaction: ``(ok, result or exception)`` each."""
        conn = self._thread_conn()
        if len(batch) == 1:
            fn, args, _ = batch[0]
            try:
                return [(True, self._run_write(fn, args))]
            except Exception as err:
                return [(False, err)]
        outcomes: list[tuple[bool, Any]] = []
        try:
            with transaction(conn):
                for fn, args, _ in batch:
                    conn.execute("SAVEPOINT w")
                    try:
                        outcomes.append((True, fn(conn, *args)))
                    except Exception as err:
                        conn.execute("ROLLBACK TO w")
                        outcomes.append((False, err))
                    conn.execute("RELEASE w")
        except Exception as err:  # BEGIN or COMMIT failed: nothing of the batch is stored
            return [(False, err)] * len(batch)
        return outcomes


def _settle(settled: list) -> None:
    """On the event loop: hand each waiting writer its result or exception."""
    for future, (ok, value) in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

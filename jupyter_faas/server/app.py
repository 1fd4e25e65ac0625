"""``jupyter faas serve``: a single-machine, OpenWhisk-compatible function server.

It speaks the Apache OpenWhisk REST API (``/api/v1``) so ``wsk``, the
``openwhisk`` npm client and jupyter-faas's own deployer can use it, keeps
its state in one SQLite database under ``data_dir``, and runs actions as
containers on the local Docker engine through a pluggable Invoker.

Start-up steps, in order: open the database, create the ``guest`` and
``whisk.system`` namespaces on first start (``guest``'s key is written to
``<data_dir>/auth.guest``), install the alarms package, start the Invoker,
recover activations left pending by a crash, start the alarm scheduler,
listen.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import signal
import string
import sys
import time
import uuid
from pathlib import Path

from tornado import httpserver, netutil, web
from traitlets import Bool, Float, Integer, Unicode, default, validate
from traitlets.config import Application

from .. import __version__
from ..errors import ConfigError, FaaSError
from ..paths import default_server_data_dir
from ..runtime.faas_protocol import MAX_PAYLOAD_BYTES
from ..traits import AUTO, EntryPointType, backend_default
from .alarms import SYSTEM_NAMESPACE, AlarmService
from .api import NotFoundHandler, routes
from .entities import LimitRanges, check_name, now_ms
from .metrics import ServerMetrics
from .pool import FaaSInvoker
from .store import Database, connect, keys, queries
from .throttle import LimitedActivator, MinuteThrottle

GUEST = "guest"
KEY_ALPHABET = string.ascii_letters + string.digits
DB_FILE = "server.sqlite"
#: How often a running server looks for key changes made by other processes (seconds).
KEYS_RECHECK_S = 0.2
#: In the data directory of a server whose invoker keeps no namespaces apart: why, for the
#: `namespace create` command to refuse with.
SINGLE_NAMESPACE_FILE = "single-namespace"


def new_subject() -> tuple[str, str]:
    """A fresh ``(uuid, key)``: a UUID and a 64-character random key, like OpenWhisk's."""
    return str(uuid.uuid4()), "".join(secrets.choice(KEY_ALPHABET) for _ in range(64))


def create_namespace(db: Database, name: str) -> str | None:
    """Create namespace ``name`` with a new subject; return ``uuid:key``, or None if it exists.

    Works on an inline :class:`Database` (command line) while a server runs on
    the same file: SQLite's locking and busy timeout serialise the writes.
    """
    check_name(name)
    subject_uuid, key = new_subject()
    created = db.write_sync(queries.add_namespace, name, subject_uuid, key, now_ms())
    db.mark_keys_changed()
    return f"{subject_uuid}:{key}" if created else None


def rotate_namespace(db: Database, name: str) -> str | None:
    """Give namespace ``name`` a new key; return ``uuid:key``, or None if there is none.

    The old key stops working at once, also on a running server: its subject cache
    follows the database's ``auth_epoch`` (see :meth:`FunctionServer.check_key`).
    """
    _, key = new_subject()
    subject_uuid = db.write_sync(queries.rotate_key, name, key)
    db.mark_keys_changed()
    return f"{subject_uuid}:{key}" if subject_uuid else None


def write_auth_file(path: Path, api_key: str) -> None:
    """Write ``uuid:key`` to ``path``, readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(api_key + "\n")


class FunctionServer(Application):
    """The OpenWhisk-compatible function server."""

    name = "jupyter-faas-server"

    @property
    def classes(self):
        """What `--help-all` documents: the server, its Invoker and the site settings."""
        from ..site import FaaSSite

        invokers = [
            EntryPointType.load("jupyter_faas.invokers", name) for name in ("docker", "process")
        ]
        return [FunctionServer, *invokers, FaaSSite]

    description = (
        "Serve the OpenWhisk REST API on this machine, running actions in Docker containers "
        "(or, without an engine, as runtime processes)."
    )
    version = __version__

    aliases = {
        "ip": "FunctionServer.ip",
        "port": "FunctionServer.port",
        "data-dir": "FunctionServer.data_dir",
        "config": "FunctionServer.config_file",
        "log-level": "Application.log_level",
    }

    @default("log_level")
    def _log_level_default(self) -> int:
        return logging.INFO

    config_file = Unicode(
        "",
        config=True,
        help="Python config file to load (e.g. ./faas_server_config.py); empty: none.",
    )
    ip = Unicode(
        "127.0.0.1",
        config=True,
        help="Address to listen on. Default 127.0.0.1 (this machine only); "
        "0.0.0.0 exposes the API (with its Basic-auth keys) to the network.",
    )
    port = Integer(
        3233,
        config=True,
        help="TCP port to listen on (OpenWhisk standalone's 3233 by default); 0 picks a free port.",
    )
    data_dir = Unicode(
        config=True,
        help="Directory holding the database and auth files. Default $FAAS_SERVER_DATA or "
        "~/.local/share/jupyter-faas/server, e.g. /var/lib/jupyter-faas.",
    )

    @default("data_dir")
    def _data_dir_default(self) -> str:
        return default_server_data_dir()

    invoker_class = EntryPointType(
        default_value=AUTO,
        klass=FaaSInvoker,
        entry_point_group="jupyter_faas.invokers",
        allow_auto=True,
        config=True,
        help='Class that runs activations, by entry-point name or import path: "docker" '
        '(containers on the Docker engine, c.DockerInvoker), "process" (runtime processes '
        "from virtualenvs, no engine; it keeps no namespaces apart, so the server then serves "
        'one namespace only; c.ProcessInvoker), or "auto": docker when its engine answers, '
        "else process, with a one-line notice. A FaaSInvoker subclass. "
        'Default: $FAAS_BACKEND or "auto".',
    )

    @default("invoker_class")
    def _invoker_class_default(self):
        return backend_default()

    min_action_timeout_ms = Integer(100, config=True, help="Smallest action timeout, in ms.")
    max_action_timeout_ms = Integer(
        300000, config=True, help="Largest action timeout, in ms (default 300000 = 5 minutes)."
    )
    default_action_timeout_ms = Integer(
        60000, config=True, help="Timeout of actions created without one, in ms."
    )
    min_action_memory_mb = Integer(128, config=True, help="Smallest action memory limit, in MB.")
    max_action_memory_mb = Integer(
        512, config=True, help="Largest action memory limit, in MB, e.g. 2048 for big models."
    )
    default_action_memory_mb = Integer(
        256, config=True, help="Memory limit of actions created without one, in MB."
    )
    max_action_logs_mb = Integer(10, config=True, help="Largest action log limit, in MB (min 0).")
    default_action_logs_mb = Integer(
        10, config=True, help="Log limit of actions created without one, in MB."
    )
    max_action_concurrency = Integer(
        1, config=True, help="Largest per-container concurrency an action may ask for (1: none)."
    )
    max_payload_bytes = Integer(
        MAX_PAYLOAD_BYTES,
        config=True,
        help="Largest invocation payload, parameter set and result, in bytes: default "
        "1048576 (1 MB, OpenWhisk's), e.g. 5242880 for 5 MB. The notebook side checks the "
        "same limits before a test or an invoke with c.FaaSWorkspace.max_payload_bytes and "
        "max_result_bytes (same default): change them together.",
    )
    max_code_bytes = Integer(
        48 * 1024 * 1024, config=True, help="Largest action code (or zip), in bytes (48 MB)."
    )
    max_blocking_wait_ms = Integer(
        60000,
        config=True,
        help="How long a blocking invoke waits before answering 202 with the activation id, "
        "in ms (also the largest accepted ?timeout=).",
    )
    max_running_activations = Integer(
        64,
        config=True,
        help="Container activations running at once; more wait in a queue. "
        "The Invoker may limit further by its own pool size.",
    )
    shutdown_grace_s = Float(
        5.0,
        config=True,
        help="Seconds running activations get to finish on shutdown; the rest are recorded "
        "as failed on the next start.",
    )
    invocations_per_minute = Integer(
        0,
        config=True,
        help="Action invocations a namespace may make per minute; more get 429 "
        '"Too many requests in the last minute". 0 means no limit (the default of this '
        "single-user server; OpenWhisk's own default is 120).",
    )
    concurrent_invocations = Integer(
        0,
        config=True,
        help="Invocations a namespace may have in flight at once (accepted and not yet "
        "finished, blocking or not, from the API, web actions and rules); one more gets 429 "
        '"Too many concurrent requests in flight". 0 means no limit (the default of this '
        "single-user server; OpenWhisk's own default is 30). Example: 30.",
    )
    fires_per_minute = Integer(
        0,
        config=True,
        help="Trigger fires a namespace may make per minute; more get 429. 0 means no limit "
        "(OpenWhisk's own default is 60).",
    )
    action_sequence_limit = Integer(
        50,
        config=True,
        help="Most atomic actions one sequence invocation may run in all, nested sequences "
        "included (OpenWhisk's actionSequenceLimit, default 50); the component that would go "
        'over ends the sequence with "Too many actions in the sequence.". Each component also '
        "counts against invocations_per_minute. 0 means no limit (a sequence of 50 sequences "
        "of 50 then runs 2500 actions), e.g. 200 for long pipelines.",
    )
    max_alarms_per_namespace = Integer(
        100,
        config=True,
        help="Most alarm feeds (alarm, interval, once) a namespace may have at once; "
        "creating one more fails with a message naming this setting. Default 100; 0 means "
        "no limit, e.g. 1000 for a namespace that schedules many jobs.",
    )
    activation_max_age_hours = Float(
        720.0,
        config=True,
        help="How long activation records are kept, in hours: older ones are deleted by the "
        "periodic clean-up (activation_cleanup_interval_s). Default 720 (30 days); 0 means "
        "keep them however old, e.g. 24 to keep one day.",
    )
    activation_max_count = Integer(
        10000,
        config=True,
        help="Most activation records kept per namespace: the periodic clean-up deletes the "
        "oldest beyond it. Default 10000; 0 means no limit, e.g. 1000 on a small disk.",
    )
    activation_cleanup_interval_s = Float(
        600.0,
        config=True,
        help="Seconds between two runs of the activation clean-up (activation_max_age_hours, "
        "activation_max_count); it also runs at start. Default 600 (10 minutes); 0 means "
        "never (records are then kept for ever), e.g. 60.",
    )
    max_activation_list_bytes = Integer(
        8 * 1024 * 1024,
        config=True,
        help="Largest sum of stored records one `GET activations?docs=true` answer holds, in "
        "bytes: a page stops before the record that would pass it (the first record is "
        "always sent), so list with skip= for the rest. Default 8388608 (8 MB); 0 means no "
        "bound (up to 200 records of up to 1 MB result and 10 MB logs each), e.g. 1048576.",
    )
    alarm_allow_seconds = Bool(
        False,
        config=True,
        help="Accept 6-field cron patterns (seconds first) in the alarms feed; default: "
        "5 fields, one minute finest.",
    )
    db_readers = Integer(2, config=True, help="Threads (and SQLite connections) serving reads.")
    metrics_token = Unicode(
        "",
        config=True,
        help="Token that shows every series of GET /metrics (Authorization: Bearer TOKEN), "
        "e.g. for the operator's Prometheus. A namespace key (Basic auth) shows that "
        "namespace's series only; without either, /metrics answers 401. Empty (the "
        "default): no token is accepted. Example: a long random string "
        "(python -c 'import secrets; print(secrets.token_urlsafe(32))').",
    )

    @validate("min_action_memory_mb", "max_action_memory_mb", "default_action_memory_mb")
    def _positive(self, proposal):
        if proposal.value <= 0:
            raise ConfigError(f"{proposal.trait.name} must be a positive number of MB.")
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.db: Database | None = None
        self.invoker: FaaSInvoker | None = None
        self.activator: LimitedActivator | None = None
        self.metrics: ServerMetrics | None = None
        self.alarms: AlarmService | None = None
        self.http_server: httpserver.HTTPServer | None = None
        self.bound_port: int | None = None
        self._subjects: dict[str, tuple[str, str]] = {}
        self._plain_keys: dict[str, str] = {}
        self._auth_epoch: int | None = None
        self._keys_changed: tuple[int, int] | None = None
        self._keys_recheck_at = 0.0
        self._auth_conn = None
        self._stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retiring: set[asyncio.Task] = set()
        self._cleanup: asyncio.Task | None = None

    def initialize(self, argv=None) -> None:
        """Parse the command line and load the config file."""
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)

    @property
    def ranges(self) -> LimitRanges:
        """The action limits in force."""
        return LimitRanges(
            min_timeout=self.min_action_timeout_ms,
            max_timeout=self.max_action_timeout_ms,
            default_timeout=self.default_action_timeout_ms,
            min_memory=self.min_action_memory_mb,
            max_memory=self.max_action_memory_mb,
            default_memory=self.default_action_memory_mb,
            max_logs=self.max_action_logs_mb,
            default_logs=self.default_action_logs_mb,
            max_concurrency=self.max_action_concurrency,
            max_payload=self.max_payload_bytes,
            max_code=self.max_code_bytes,
            max_wait=self.max_blocking_wait_ms,
        )

    @property
    def python_image(self) -> str:
        """What runs Python and native actions, as the invoker names it."""
        return self.invoker.python_image

    def _follow_auth_epoch(self) -> None:
        """Drop cached subjects when a key was created, rotated or a namespace deleted.

        Keys change from other processes (`jupyter faas namespace rotate/delete`), which
        replace the database's :attr:`~Database.keys_changed_file` after committing. It
        is looked at (one ``stat``) at most every :data:`KEYS_RECHECK_S`, and only when
        it changed is ``auth_epoch`` read again: a system call or a database read per
        request lets the other server threads take the GIL, a large share of the event
        loop's time under load. The command line waits as long before it returns, so a
        rotated key is refused once ``rotate`` has returned.
        """
        now = time.monotonic()
        if now < self._keys_recheck_at:
            return
        self._keys_recheck_at = now + KEYS_RECHECK_S
        try:
            st = os.stat(self.db.keys_changed_file)
            seen = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            seen = None
        if seen == self._keys_changed and self._auth_epoch is not None:
            return
        if self._auth_conn is None:
            self._auth_conn = connect(self.db.path, busy_timeout_ms=1000)
        self._keys_changed = seen
        epoch = queries.auth_epoch(self._auth_conn)
        if epoch != self._auth_epoch:
            self._subjects.clear()
            self._plain_keys.clear()
            self._auth_epoch = epoch

    async def check_key(self, subject_uuid: str, key: str) -> str | None:
        """The namespace of ``subject_uuid`` if ``key`` is its key, else None.

        Subjects (namespace and key digest) are cached until the auth epoch changes;
        checking a key is one salted SHA-256 and a constant-time comparison, or only the
        comparison for a key that was checked since (the usual case: one caller, many calls).
        """
        self._follow_auth_epoch()
        seen = self._plain_keys.get(subject_uuid)
        if seen is not None and hmac.compare_digest(seen.encode(), key.encode()):
            return self._subjects[subject_uuid][0]
        subject = self._subjects.get(subject_uuid)
        if subject is None:
            subject = await self.db.read(queries.subject_digest, subject_uuid)
            if subject is None:
                return None
            self._subjects[subject_uuid] = subject
        if not keys.verify_key(subject[1], key):
            return None
        self._plain_keys[subject_uuid] = key
        return subject[0]

    def known_key(self, subject_uuid: str) -> str:
        """The key of ``subject_uuid`` if a request showed it since the last key change.

        The database holds digests only, so work started without a caller's key (web
        actions, alarms, recovered activations) can pass ``__OW_API_KEY`` only when the
        owner's key was seen; otherwise it is "" and the action gets none.
        """
        self._follow_auth_epoch()
        return self._plain_keys.get(subject_uuid, "")

    # -- start-up ---------------------------------------------------------------------

    def _ensure_namespace(self, name: str) -> None:
        path = Path(self.data_dir) / f"auth.{name}"
        api_key = create_namespace(self.db, name)
        if api_key is None:
            if not path.exists():
                # Only the key's digest is stored: a lost auth file means a new key.
                write_auth_file(path, rotate_namespace(self.db, name))
                self.log.warning("%s was missing: namespace %s has a new key", path, name)
            else:
                os.chmod(path, 0o600)
            self.log.info("Namespace %s: key (uuid:key) in %s", name, path)
            return
        write_auth_file(path, api_key)
        self.log.info("Created namespace %s; its key (uuid:key) is in %s", name, path)

    def _install_catalog(self) -> None:
        def install(conn) -> None:
            for collection, name, doc in AlarmService.catalog(now_ms()):
                if queries.get_entity(conn, SYSTEM_NAMESPACE, name) is None:
                    queries.put_entity(conn, SYSTEM_NAMESPACE, name, collection, doc)

        self.db.write_sync(install)

    def _open_db(self) -> None:
        data = Path(self.data_dir)
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(data, 0o700)  # it holds the database and the auth files
        setup = Database(data / DB_FILE, inline=True)
        setup.open()
        self.db = setup
        try:
            self._ensure_namespace(GUEST)
            self._ensure_namespace(SYSTEM_NAMESPACE)
            self._install_catalog()
        finally:
            setup.close()
        self.db = Database(data / DB_FILE, readers=self.db_readers)
        self.db.open()

    def _pick_invoker(self) -> type[FaaSInvoker]:
        """The configured invoker class; for "auto", docker when its engine answers."""
        if self.invoker_class != AUTO:
            return self.invoker_class
        docker = EntryPointType.load("jupyter_faas.invokers", "docker")
        reason = docker.unavailable()
        if not reason:
            return docker
        self.log.warning("%s: container-less mode.", reason)
        return EntryPointType.load("jupyter_faas.invokers", "process")

    def _check_namespaces(self) -> None:
        """An invoker that keeps no namespaces apart serves one tenant namespace only.

        Raises:
            ConfigError: the database holds a second tenant namespace already.
        """
        marker = Path(self.data_dir) / SINGLE_NAMESPACE_FILE
        if self.invoker.isolates_namespaces:
            marker.unlink(missing_ok=True)
            return
        tenants = [n for n in self.db.read_sync(queries.namespace_names) if n != SYSTEM_NAMESPACE]
        others = [n for n in tenants if n != GUEST]
        if others:
            raise ConfigError(
                f"This server's invoker ({type(self.invoker).__name__}) keeps no namespaces "
                f"apart, and {Path(self.data_dir) / DB_FILE} holds more than one: "
                f"{', '.join(sorted(tenants))}.",
                hint="Serve it with c.FunctionServer.invoker_class = 'docker' (a Docker engine "
                "keeps tenants apart), or give this server its own --data-dir.",
            )
        marker.write_text(
            f"{type(self.invoker).__name__} runs every activation as a plain process, so this "
            "server serves the guest namespace only.\n"
        )

    async def start_async(self) -> None:
        """Open the state, start the Invoker and scheduler, recover, and listen."""
        self._open_db()
        self.log.info("Function server state in %s", Path(self.data_dir) / DB_FILE)
        invoker_class = await asyncio.to_thread(self._pick_invoker)
        self.log.info("Invoker: %s.%s", invoker_class.__module__, invoker_class.__name__)
        self.invoker = invoker_class(parent=self)
        if self.invoker.notice:
            self.log.warning("%s", self.invoker.notice)
        self._check_namespaces()
        await self.invoker.start()
        self.invocation_throttle = MinuteThrottle(self.invocations_per_minute, "requests")
        self.fire_throttle = MinuteThrottle(self.fires_per_minute, "trigger fires")
        self.metrics = ServerMetrics(self.invoker.pool_sizes)
        self.activator = LimitedActivator(
            self.db,
            self.invoker,
            self.ranges,
            self.python_image,
            self.max_running_activations,
            log=self.log,
            invocations=self.invocation_throttle,
            sequence_limit=self.action_sequence_limit,
            concurrent=self.concurrent_invocations,
            metrics=self.metrics,
        )
        self.alarms = AlarmService(
            self.db,
            self.activator,
            self.alarm_allow_seconds,
            log=self.log,
            keys=self,
            fire_throttle=self.fire_throttle,
            max_alarms=self.max_alarms_per_namespace,
        )
        await self.activator.recover()
        await self.alarms.start()
        if self.activation_cleanup_interval_s > 0:
            self._cleanup = asyncio.get_running_loop().create_task(self._clean_activations())
        app = web.Application(
            routes(), faas=self, default_handler_class=NotFoundHandler, compress_response=False
        )
        max_body = self.max_code_bytes + 4 * self.max_payload_bytes
        self.http_server = httpserver.HTTPServer(app, max_body_size=max_body)
        sockets = netutil.bind_sockets(self.port, self.ip)
        self.http_server.add_sockets(sockets)
        self.bound_port = sockets[0].getsockname()[1]
        self.log.info("OpenWhisk API at http://%s:%d/api/v1", self.ip, self.bound_port)

    async def stop_async(self) -> None:
        """Stop listening, let activations finish (up to the grace time), stop everything."""
        if self.http_server is not None:
            self.http_server.stop()
        if self._cleanup is not None:
            self._cleanup.cancel()
            await asyncio.gather(self._cleanup, return_exceptions=True)
            self._cleanup = None
        if self.alarms is not None:
            await self.alarms.stop()
        if self.activator is not None:
            await self.activator.stop(self.shutdown_grace_s)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self.invoker is not None:
            await self.invoker.stop()
        if self.http_server is not None:
            await self.http_server.close_all_connections()
            self.http_server = None
        if self.db is not None:
            self.db.close()
        if self._auth_conn is not None:
            self._auth_conn.close()
            self._auth_conn = None

    async def prune_activations(self) -> int:
        """Delete activation records past activation_max_age_hours / activation_max_count."""
        age_ms = int(self.activation_max_age_hours * 3600 * 1000)
        before = now_ms() - age_ms if age_ms > 0 else None
        removed = await self.db.write(
            queries.prune_activations, before, max(self.activation_max_count, 0)
        )
        if removed:
            self.log.info("Activation clean-up: removed %d old record(s)", removed)
        return removed

    async def _clean_activations(self) -> None:
        while True:
            try:
                await self.prune_activations()
            except Exception:  # the next run tries again
                self.log.exception("Activation clean-up failed")
            await asyncio.sleep(self.activation_cleanup_interval_s)

    def retire(self, action: str) -> None:
        """Remove the idle sandboxes of a deleted or replaced action, in the background.

        ``action``: ``ns/[pkg/]name`` (delete) or ``ns/[pkg/]name@version`` (update). The
        request answers at once; without this, the sandboxes would hold memory until the
        invoker's idle timeout.
        """
        if self.invoker is None:
            return
        task = asyncio.get_running_loop().create_task(self._retire(action))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, action: str) -> None:
        try:
            removed = await self.invoker.retire(action)
        except Exception:  # a delete has succeeded; its clean-up must not fail it
            self.log.exception("Removing the sandboxes of /%s failed", action)
            return
        if removed:
            self.log.info("Removed %d idle sandbox(es) of /%s", removed, action)

    def stop(self) -> None:
        """Ask a server run by :meth:`start` to shut down (thread-safe)."""
        if self._stop_event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._loop.add_signal_handler(sig, self._stop_event.set)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread: stop() is the way out
        await self.start_async()
        try:
            await self._stop_event.wait()
        finally:
            self.log.info("Shutting down")
            await self.stop_async()

    def start(self) -> None:
        """Run the server until SIGINT/SIGTERM or :meth:`stop`; a refused start exits 1."""
        try:
            asyncio.run(self._serve())
        except FaaSError as err:
            self.log.error("%s", err)
            self.exit(1)


def namespace_main(argv: list[str] | None = None) -> int:
    """``jupyter faas namespace create|rotate|delete NAME [--data-dir DIR]``.

    ``create`` and ``rotate`` print the new ``uuid:key``. ``delete`` removes the
    namespace with its entities, activations and alarms; it refuses ``guest`` (whose key
    the server writes to ``auth.guest``: rotate it instead) and ``whisk.system``.
    Both take effect at once on a running server on the same data directory.

    Returns:
        The process exit status.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="jupyter faas namespace", description="Manage the function server's namespaces."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "create": "Create a namespace and print its key (uuid:key).",
        "rotate": "Give a namespace a new key and print it; the old key is refused at once.",
        "delete": "Delete a namespace with its actions, triggers, rules, packages, "
        "activations and alarms (not guest or whisk.system).",
    }
    for command, text in helps.items():
        p = sub.add_parser(command, help=text, description=text)
        p.add_argument("name", help="Namespace name, e.g. alice.")
        p.add_argument(
            "--data-dir", default=default_server_data_dir(), help="The server's data directory."
        )
    args = parser.parse_args(argv)
    if args.command == "create":
        single = Path(args.data_dir) / SINGLE_NAMESPACE_FILE
        if single.exists():
            print(
                f"error: cannot create namespace {args.name!r}: {single.read_text().strip()} "
                "Serve it with c.FunctionServer.invoker_class = 'docker' to have namespaces "
                "kept apart, or start another server with its own --data-dir for another user.",
                file=sys.stderr,
            )
            return 1
    if args.command == "delete" and args.name in (GUEST, SYSTEM_NAMESPACE):
        print(
            f"error: namespace {args.name!r} cannot be deleted: the server recreates it on "
            f"every start. Use `jupyter faas namespace rotate {args.name}` to revoke its key.",
            file=sys.stderr,
        )
        return 1
    db_path = Path(args.data_dir) / DB_FILE
    if args.command != "create" and not db_path.exists():
        print(
            f"error: no function server database at {db_path}; check --data-dir.", file=sys.stderr
        )
        return 1
    db = Database(db_path, inline=True)
    try:
        db.open()
        if args.command == "create":
            result = create_namespace(db, args.name)
        elif args.command == "rotate":
            result = rotate_namespace(db, args.name)
        else:
            result = db.write_sync(queries.delete_namespace, args.name)
            db.mark_keys_changed()
    except Exception as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if result is None:
        problem = "exists already" if args.command == "create" else "does not exist"
        fix = "pick another name" if args.command == "create" else "check the name"
        print(
            f"error: namespace {args.name!r} {problem} in {args.data_dir}; {fix}.", file=sys.stderr
        )
        return 1
    if args.command != "create":
        # A running server notices within KEYS_RECHECK_S: the old key is dead on return.
        time.sleep(KEYS_RECHECK_S * 1.25)
    if args.command == "delete":
        (Path(args.data_dir) / f"auth.{args.name}").unlink(missing_ok=True)
        print(
            f"Deleted namespace {args.name}: {result['entities']} entities, "
            f"{result['activations']} activations, {result['alarms']} alarms, "
            f"{result['pending']} pending activations."
        )
        return 0
    auth_file = Path(args.data_dir) / f"auth.{args.name}"
    if args.command == "rotate" and auth_file.exists():
        write_auth_file(auth_file, result)
    print(result)
    return 0


main = FunctionServer.launch_instance

"""Activation logs: follow a sandbox's output and cut it at the sentinels.

OpenWhisk runtimes print the end-of-activation marker on stdout and on stderr
after every activation (protocols.md B.4). The server's event loop follows a
container's attached output (a daemon thread does for a runtime process's pipes,
or for an engine reached through something other than a plain socket) into a
buffer, so a warm activation collects its logs without any Docker API call: it
only waits (briefly) until both sentinels are in the buffer.

Our runtime prints the activation's log token after the marker (``marker(token)``);
while a collector expects a token, other marker lines (a function printing the plain
marker, or a guessed token) are ordinary log lines. Lines longer than
``MAX_LINE_BYTES`` are split, so output without newlines costs linear time and
bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import Counter

from ...runtime.faas_protocol import SENTINEL, marker

#: How the line starts that our runtime prints once it listens (runtime/proxy.py, ``main``).
RUNTIME_STARTED = "faas runtime: listening on "
#: Output kept between activations beyond this is dropped (and reported as truncated).
BUFFER_LIMIT_BYTES = 16 * 1024 * 1024
#: Longer lines are split into pieces of at most this many bytes.
MAX_LINE_BYTES = 64 * 1024
#: Bytes of an unfinished line held back when it is split, so a marker arriving in pieces
#: stays whole.
_TAIL_BYTES = 256

log = logging.getLogger(__name__)


def timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, as Docker writes log timestamps."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def format_line(ts: str, stream: str, message: str) -> str:
    """One OpenWhisk log line: timestamp padded to 30 characters, stream, trimmed message."""
    return f"{ts:<30} {stream}: {message.strip()}"


def truncation_message(limit_bytes: int) -> str:
    """OpenWhisk's note appended (on stderr) when an activation's logs exceed its limit."""
    return (
        "Logs were truncated because the total bytes size exceeds the limit of "
        f"{limit_bytes} bytes."
    )


class LogCollector:
    """Follows one sandbox's stdout and stderr and hands out activation logs.

    Made by :meth:`attach` (a container) or :meth:`pipes` (a process).

    Args:
        name: Used for the thread names and log messages.
    """

    def __init__(self, name: str):
        self.name = name
        self.saw_sentinel = False
        self.ended = False
        #: The log token of the running activation; None: the plain marker ends the logs.
        self.token: str | None = None
        self._cond = threading.Condition()
        self._lines: list[tuple[str, str, str]] = []
        #: How many lines of each marker text (plain or with a token) each stream holds.
        self._markers = {"stdout": Counter(), "stderr": Counter()}
        self._partial: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self._partial_len = {"stdout": 0, "stderr": 0}
        self._bytes = 0
        self._dropped = False
        self._open = 0
        self._closers: list = []
        #: The start-up line still to come, dropped when it does (see ``discard``).
        self._late_startup: str | None = None
        #: Futures of event loops waiting in :meth:`take_async` for a marker or the end.
        self._waiters: list[asyncio.Future] = []

    @classmethod
    def attach(
        cls, api, container_id: str, name: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> LogCollector:
        """Follow a running container's output.

        Args:
            api: A docker-py low-level client whose sockets have no read timeout
                (a container may be silent for longer than any timeout).
            container_id: The container to attach to; it must be running.
            loop: The event loop to follow it on (no thread per container, and the
                end-of-activation markers reach :meth:`take_async` without a thread
                hand-off), when the engine's connection is a plain socket; None: a
                thread follows it.
        """
        collector = cls(name)
        if loop is not None:
            params = {"stdout": 1, "stderr": 1, "stream": 1, "logs": 0}
            raw = api.attach_socket(container_id, params=params)
            sock = getattr(raw, "_sock", raw)
            if isinstance(sock, socket.socket):
                collector._follow_on(loop, sock, raw)
                return collector
            raw.close()
        stream = api.attach(
            container_id, stdout=True, stderr=True, stream=True, logs=False, demux=True
        )
        collector._follow(stream, stream.close)
        return collector

    @classmethod
    def pipes(cls, stdout, stderr, name: str) -> LogCollector:
        """Follow a process's stdout and stderr pipes (binary, unbuffered reads)."""
        collector = cls(name)
        collector._follow(_chunks(stdout, 0), stdout.close)
        collector._follow(_chunks(stderr, 1), stderr.close)
        return collector

    def take(self, wait_s: float, limit_bytes: int, token: str | None = None) -> list[str]:
        """The formatted log lines of the activation that just ended, sentinels stripped.

        Args:
            wait_s: How long to wait for both sentinels (0 for images that
                print none); returns early once the container's output ends.
            limit_bytes: The action's log limit; beyond it lines are dropped
                and OpenWhisk's truncation note is appended.
            token: The activation's log token (default: ``self.token``); only markers
                carrying it end the logs.

        Returns:
            Lines of the form ``<timestamp padded to 30> stdout: <message>``.
        """
        with self._cond:
            end = marker(token or self.token)
            if wait_s > 0:
                self._cond.wait_for(lambda: self._complete(end), timeout=wait_s)
            done = {"stdout": False, "stderr": False}
            taken, kept = [], []
            for entry in self._lines:
                stream = entry[1]
                if done[stream]:
                    kept.append(entry)
                elif entry[2] == end:
                    done[stream] = True
                else:
                    taken.append(entry)
            self._lines = kept
            self._recount()
            dropped, self._dropped = self._dropped, False
        out, size = [], 0
        for ts, stream, message in taken:
            size += len(message.encode())
            if size > limit_bytes:
                dropped = True
                break
            out.append(format_line(ts, stream, message))
        if dropped:
            out.append(
                format_line(timestamp(time.time_ns()), "stderr", truncation_message(limit_bytes))
            )
        return out

    async def take_async(self, wait_s: float, limit_bytes: int) -> list[str]:
        """:meth:`take` on the event loop: waits for the sentinels without blocking it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while wait_s > 0:
            with self._cond:
                if self._complete():
                    break
                waiter = loop.create_future()
                self._waiters.append(waiter)
            left = deadline - loop.time()
            if left <= 0:
                break
            timer = loop.call_later(left, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
            if loop.time() >= deadline:
                break
        return self.take(0, limit_bytes)

    def discard(self, startup: str | None = None) -> None:
        """Drop what the container printed so far (its runtime's start-up lines).

        ``startup``: how the line starts that the runtime prints once it listens. The port
        can answer before that line has come through the output stream; if it is not here
        yet, it is dropped when it comes, so it never joins an activation's logs.
        """
        with self._cond:
            seen = startup is None or any(e[2].startswith(startup) for e in self._lines)
            self._lines = [e for e in self._lines if _is_marker(e[2])]
            self._recount()
            self._dropped = False
            self._late_startup = None if seen else startup

    def wait_ended(self, timeout: float) -> None:
        """Block until the container's output has ended (it exited or was removed)."""
        with self._cond:
            self._cond.wait_for(lambda: self.ended, timeout=timeout)

    def close(self) -> None:
        """Stop following; safe to call twice and after the sandbox is gone."""
        for close in self._closers:
            try:
                close()
            except (OSError, ValueError) as err:
                log.debug("closing the log stream of %s: %s", self.name, err)

    def _complete(self, end: str | None = None) -> bool:
        """Whether the output ended or both streams hold the marker ``end`` (default: expected)."""
        end = end or marker(self.token)
        return self.ended or (self._markers["stdout"][end] > 0 and self._markers["stderr"][end] > 0)

    def _recount(self) -> None:
        self._markers = {"stdout": Counter(), "stderr": Counter()}
        self._bytes = 0
        for _, stream, text in self._lines:
            self._bytes += len(text)
            if _is_marker(text):
                self._markers[stream][text] += 1

    def _follow(self, chunks, close) -> None:
        """Read ``(stdout bytes, stderr bytes)`` pairs from ``chunks`` on a daemon thread."""
        self._open += 1
        self._closers.append(close)
        thread = threading.Thread(
            target=self._read, args=(chunks,), name=f"faas-logs-{self.name}", daemon=True
        )
        thread.start()

    def _follow_on(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, keep) -> None:
        """Read the engine's multiplexed attach stream (frames of an 8-byte header: stream,
        3 zero bytes, big-endian length; then the data) on ``loop``."""
        self._open += 1
        sock.setblocking(False)
        buffer = bytearray()
        done = []

        def readable() -> None:
            try:
                data = sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.warning("following the output of %s failed: %s", self.name, err)
                data = b""
            if not data:
                stop()
                return
            buffer.extend(data)
            out: dict[int, list[bytes]] = {1: [], 2: []}
            while len(buffer) >= 8:
                end = 8 + int.from_bytes(buffer[4:8], "big")
                if len(buffer) < end:
                    break
                if buffer[0] in out:
                    out[buffer[0]].append(bytes(buffer[8:end]))
                del buffer[:end]
            for kind, stream in ((1, "stdout"), (2, "stderr")):
                if out[kind]:
                    self._feed(stream, b"".join(out[kind]))

        def stop() -> None:
            if done:
                return
            done.append(True)
            loop.remove_reader(sock)
            sock.close()
            keep.close()
            self._stream_ended()

        def close() -> None:
            try:
                loop.call_soon_threadsafe(stop)
            except RuntimeError:  # the loop is closed: so is everything it followed
                pass

        self._closers.append(close)
        loop.call_soon_threadsafe(loop.add_reader, sock, readable)

    def _read(self, chunks) -> None:
        try:
            for out, err in chunks:
                if out:
                    self._feed("stdout", out)
                if err:
                    self._feed("stderr", err)
        except Exception as err:  # the thread must always mark the end below
            log.warning("following the output of %s failed: %s", self.name, err)
        finally:
            self._stream_ended()

    def _stream_ended(self) -> None:
        """One followed stream ended; after the last, flush unfinished lines and say so."""
        with self._cond:
            self._open -= 1
            if self._open == 0:
                for stream, parts in self._partial.items():
                    if parts:
                        for piece in _pieces(b"".join(parts)):
                            self._add(stream, piece, time.time_ns())
                self._partial = {"stdout": [], "stderr": []}
                self._partial_len = {"stdout": 0, "stderr": 0}
                self.ended = True
                self._cond.notify_all()
                self._wake_waiters()

    def _feed(self, stream: str, chunk: bytes) -> None:
        """Add the complete lines of ``chunk``; an unfinished line waits in pieces (no re-copy)."""
        now = time.time_ns()
        parts = self._partial[stream]
        lines, start = [], 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start:newline])
            lines.append(b"".join(parts))
            parts.clear()
            start = newline + 1
        if start == 0:
            parts.append(chunk)
            size = self._partial_len[stream] + len(chunk)
        else:
            rest = chunk[start:]
            parts[:] = [rest] if rest else []
            size = len(rest)
        if size > MAX_LINE_BYTES + _TAIL_BYTES:
            # A line this long is logged in pieces now; its tail waits for the newline.
            data = b"".join(parts)
            cut = _utf8_cut(data, len(data) - _TAIL_BYTES)
            lines.append(data[:cut])
            parts[:] = [data[cut:]]
            size = len(data) - cut
        self._partial_len[stream] = size
        with self._cond:
            marked = False
            for line in lines:
                for piece in _pieces(line):
                    marked = self._add(stream, piece, now) or marked
            if marked:  # a waiter may expect any token (take's argument): let it check
                self._cond.notify_all()
                self._wake_waiters()

    def _wake_waiters(self) -> None:
        """With ``_cond`` held: let every :meth:`take_async` look again."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for waiter in self._waiters:
            if waiter.get_loop() is running:  # followed on the waiter's own loop
                _wake(waiter)
                continue
            try:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
            except RuntimeError:  # its loop is closed: nobody waits
                pass
        self._waiters.clear()

    def _add(self, stream: str, raw: bytes, ns: int) -> bool:
        """Buffer one line; True when it is a marker line."""
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self._late_startup is not None and text.startswith(self._late_startup):
            self._late_startup = None
            return False
        is_marker = _is_marker(text)
        limit = BUFFER_LIMIT_BYTES
        if is_marker:
            self.saw_sentinel = True
            # Markers are kept beyond the limit (the expected one always), so a flood of
            # imitations can neither push the real one out nor fill memory.
            limit = None if text == marker(self.token) else 2 * BUFFER_LIMIT_BYTES
        if limit is not None and self._bytes + len(text) > limit:
            self._dropped = True
            return False
        if is_marker:
            self._markers[stream][text] += 1
        self._bytes += len(text)
        self._lines.append((timestamp(ns), stream, text))
        return is_marker


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _is_marker(text: str) -> bool:
    """Whether a line is the plain marker or the marker with a token (forged or not)."""
    return text.startswith(SENTINEL) and (len(text) == len(SENTINEL) or text[len(SENTINEL)] == " ")


def _utf8_cut(data: bytes, at: int) -> int:
    """``at``, moved back (at most 3 bytes) so it does not split a UTF-8 character."""
    at = max(0, min(at, len(data)))
    for _ in range(3):
        if at <= 0 or at >= len(data) or (data[at] & 0xC0) != 0x80:
            return at
        at -= 1
    return at


def _pieces(line: bytes):
    """``line`` split before a marker at its end (output lacking a final newline before the
    runtime's marker) and into pieces of at most MAX_LINE_BYTES."""
    found = line.rfind(SENTINEL.encode())
    if found > 0 and _is_marker(line[found:].decode("utf-8", errors="replace")):
        line, end = line[:found], line[found:]
    else:
        end = None
    while len(line) > MAX_LINE_BYTES:
        cut = _utf8_cut(line, MAX_LINE_BYTES) or MAX_LINE_BYTES
        yield line[:cut]
        line = line[cut:]
    if line or end is None:
        yield line
    if end is not None:
        yield end


def _chunks(pipe, index: int):
    """A pipe's reads as (stdout, stderr) pairs, the data at ``index``, until end of file."""
    while True:
        try:
            data = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
        except (OSError, ValueError):
            return
        if not data:
            return
        yield (data, None) if index == 0 else (None, data)

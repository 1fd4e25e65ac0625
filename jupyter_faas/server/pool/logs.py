"""Activation logs: follow a sandbox's output and cut it at the sentinels.

OpenWhisk runtimes print the end-of-activation marker on stdout and on stderr
after every activation (protocols.md B.4). Daemon threads follow a
container's attached output (or a runtime process's pipes) into a buffer, so
a warm activation collects its logs without any Docker API call: it only
waits (briefly) until both sentinels are in the buffer.
"""

from __future__ import annotations

import logging
import threading
import time

from ...runtime.faas_protocol import SENTINEL

#: Output kept between activations beyond this is dropped (and reported as truncated).
BUFFER_LIMIT_BYTES = 16 * 1024 * 1024

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
        self._cond = threading.Condition()
        self._lines: list[tuple[str, str, str]] = []
        self._pending = {"stdout": 0, "stderr": 0}
        self._partial = {"stdout": b"", "stderr": b""}
        self._bytes = 0
        self._dropped = False
        self._open = 0
        self._closers: list = []

    @classmethod
    def attach(cls, api, container_id: str, name: str) -> LogCollector:
        """Follow a running container's output.

        Args:
            api: A docker-py low-level client whose sockets have no read timeout
                (a container may be silent for longer than any timeout).
            container_id: The container to attach to; it must be running.
        """
        collector = cls(name)
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

    def take(self, wait_s: float, limit_bytes: int) -> list[str]:
        """The formatted log lines of the activation that just ended, sentinels stripped.

        Args:
            wait_s: How long to wait for both sentinels (0 for images that
                print none); returns early once the container's output ends.
            limit_bytes: The action's log limit; beyond it lines are dropped
                and OpenWhisk's truncation note is appended.

        Returns:
            Lines of the form ``<timestamp padded to 30> stdout: <message>``.
        """
        with self._cond:
            if wait_s > 0:
                self._cond.wait_for(self._complete, timeout=wait_s)
            done = {"stdout": False, "stderr": False}
            taken, kept = [], []
            for entry in self._lines:
                stream = entry[1]
                if done[stream]:
                    kept.append(entry)
                elif entry[2] == SENTINEL:
                    done[stream] = True
                    self._pending[stream] -= 1
                else:
                    taken.append(entry)
            self._lines = kept
            self._bytes = sum(len(e[2]) for e in kept)
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

    def discard(self) -> None:
        """Drop what the container printed so far (its runtime's start-up lines)."""
        with self._cond:
            self._lines = [e for e in self._lines if e[2] == SENTINEL]
            self._bytes = 0
            self._dropped = False

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

    def _complete(self) -> bool:
        return self.ended or (self._pending["stdout"] > 0 and self._pending["stderr"] > 0)

    def _follow(self, chunks, close) -> None:
        """Read ``(stdout bytes, stderr bytes)`` pairs from ``chunks`` on a daemon thread."""
        self._open += 1
        self._closers.append(close)
        thread = threading.Thread(
            target=self._read, args=(chunks,), name=f"faas-logs-{self.name}", daemon=True
        )
        thread.start()

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
            with self._cond:
                self._open -= 1
                if self._open == 0:
                    for stream, rest in self._partial.items():
                        if rest:
                            self._add(stream, rest, time.time_ns())
                    self._partial = {"stdout": b"", "stderr": b""}
                    self.ended = True
                    self._cond.notify_all()

    def _feed(self, stream: str, chunk: bytes) -> None:
        now = time.time_ns()
        data = self._partial[stream] + chunk
        *lines, rest = data.split(b"\n")
        with self._cond:
            self._partial[stream] = rest
            for line in lines:
                self._add(stream, line, now)
            if self._complete():
                self._cond.notify_all()

    def _add(self, stream: str, raw: bytes, ns: int) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if text == SENTINEL:
            self._pending[stream] += 1
            self.saw_sentinel = True
        elif self._bytes + len(text) > BUFFER_LIMIT_BYTES:
            self._dropped = True
            return
        else:
            self._bytes += len(text)
        self._lines.append((timestamp(ns), stream, text))


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

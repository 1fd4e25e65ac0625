"""``/run`` of a warm container from the event loop, over one kept-alive connection.

A warm activation is one small HTTP exchange with a container that already has its
code. Sending it from an activation thread (:class:`~jupyter_faas.actionclient.ActionClient`
blocks) costs two thread hand-offs and the GIL transfers that come with them, more
than the exchange itself; an asyncio connection costs none. Only our runtime is
talked to this way: it answers every request in one write with a ``Content-Length``.
Cold starts (readiness probes, ``/init``) stay on the activation threads.
"""

from __future__ import annotations

import asyncio
import json
import time

from ...actionclient import ActionResponse, ContainerGone
from ...runtime import protocol

#: Read errors that mean the container closed the connection or answered nonsense.
_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError)


class AsyncRunClient:
    """POSTs activations to ``http://host:port/run`` with the sandbox's secret.

    Args:
        host: The container's address on its network.
        port: The runtime's port.
        secret: The sandbox's secret (``ActionClient.for_sandbox``); None: none sent.
    """

    def __init__(self, host: str, port: int, secret: str | None):
        self.host, self.port = host, port
        lines = ["POST /run HTTP/1.1", "Host: action", "Content-Type: application/json"]
        if secret:
            lines.append(f"{protocol.SECRET_HEADER}: {secret}")
        self._head = ("\r\n".join(lines) + "\r\n").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, payload: dict, timeout: float, token: str | None = None) -> ActionResponse:
        """POST one activation; as ``ActionClient.run``, TimeoutError or ContainerGone on failure.

        Never retried: the activation may have run before the connection broke.
        """
        if token:
            payload = {**payload, protocol.LOG_TOKEN_KEY: token}
        data = json.dumps(payload).encode()
        loop = asyncio.get_running_loop()
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            self.close()  # wakes the pending read with an error

        timer = loop.call_later(timeout, expire)
        start = time.perf_counter()
        try:
            return await self._post(loop, data, start)
        except _BROKEN as err:
            self.close()
            if expired:
                raise TimeoutError(f"/run did not answer within {timeout:.3g} s") from err
            raise ContainerGone(f"/run failed: {err}") from err
        finally:
            timer.cancel()

    async def _post(self, loop, data: bytes, start: float) -> ActionResponse:
        if self._writer is None or self._reader.at_eof():
            self.close()
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._loop = loop
        writer, reader = self._writer, self._reader
        writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(data), data))
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
        raw = await reader.readexactly(int(protocol.header(headers, "Content-Length")))
        if (protocol.header(headers, "Connection") or "").lower() == "close":
            self.close()
        return ActionResponse.read(status, raw, headers, time.perf_counter() - start)

    def close(self) -> None:
        """Close the connection; safe to call twice and from any thread."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            writer.close()
            return
        try:
            self._loop.call_soon_threadsafe(writer.close)
        except RuntimeError:  # its loop is closed, and the connection with it
            pass

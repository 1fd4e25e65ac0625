"""A lean, kept-alive HTTP client for one action container's ``/init`` and ``/run``.

This is the hot path (the local tester and the function server talk to their
containers through it), so it uses ``http.client`` with one persistent
connection rather than ``requests`` (about 1 ms less per call, machine.md).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import select
import socket
import time
from dataclasses import dataclass, field

from .runtime import protocol

#: Per-process key that sandbox secrets are derived from (see ``ActionClient.for_sandbox``).
_SANDBOX_KEY = secrets.token_bytes(32)


def sandbox_secret(name: str) -> str:
    """The secret of the sandbox called ``name``: HMAC of a per-process key, so an invoker can
    give it to the container and to the client without storing it, and one container's secret
    tells nothing about another's."""
    return hmac.new(_SANDBOX_KEY, name.encode(), hashlib.sha256).hexdigest()


@dataclass
class ActionResponse:
    """What an action container answered: status, parsed JSON body (or None) and raw text."""

    status: int
    body: object
    text: str
    headers: dict = field(default_factory=dict)
    elapsed: float = 0.0

    @classmethod
    def read(cls, status: int, raw: bytes, headers: dict, elapsed: float) -> ActionResponse:
        """The answer from its raw body: JSON when it parses, else None beside the text."""
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return cls(status, parsed, text, headers, elapsed)


class ContainerGone(Exception):
    """The container closed the connection or stopped answering (it crashed or was killed)."""


class ActionClient:
    """Talks the OpenWhisk action protocol to ``host:port`` over one kept-alive connection.

    Args:
        host: The container's address (its IP on a Docker network, or 127.0.0.1).
        port: The runtime's port (8080 for every OpenWhisk runtime).
        secret: The runtime's ``FAAS_RUNTIME_SECRET``, sent on every request (None: none).
    """

    def __init__(self, host: str, port: int = 8080, secret: str | None = None):
        self.host = host
        self.port = port
        self.secret = secret
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def for_sandbox(cls, host: str, name: str, port: int = 8080) -> ActionClient:
        """A client of the sandbox called ``name`` started with :meth:`secret_env` ``(name)``."""
        return cls(host, port, secret=sandbox_secret(name))

    @staticmethod
    def secret_env(name: str) -> dict[str, str]:
        """The environment entry that gives the sandbox called ``name`` its secret."""
        return {protocol.SECRET_ENV: sandbox_secret(name)}

    def wait_ready(self, timeout: float) -> None:
        """Block until the runtime accepts TCP connections, or raise ContainerGone after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise ContainerGone(
                        f"The runtime at {self.host}:{self.port} did not start listening "
                        f"within {timeout:.0f} s."
                    ) from None
                time.sleep(0.005)

    def init(self, value: dict, timeout: float, token: str | None = None) -> ActionResponse:
        """POST ``{"value": value}`` to ``/init``; ``token`` follows its log markers (if any)."""
        body = {"value": value, **({protocol.LOG_TOKEN_KEY: token} if token else {})}
        return self.post("/init", body, timeout)

    def run(self, payload: dict, timeout: float, token: str | None = None) -> ActionResponse:
        """POST an activation (``{"value": …, "activation_id": …, …}``) to ``/run``.

        ``token`` is printed after its log markers, so the logs cannot be cut by the function.
        """
        if token:
            payload = {**payload, protocol.LOG_TOKEN_KEY: token}
        return self.post("/run", payload, timeout)

    def post(self, path: str, body: object, timeout: float) -> ActionResponse:
        """POST JSON ``body`` to ``path``; raise TimeoutError or ContainerGone on failure."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        if self.secret:
            headers[protocol.SECRET_HEADER] = self.secret
        start = time.perf_counter()
        try:
            conn = self._connection(timeout)
            conn.request("POST", path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except TimeoutError as err:
            self.close()
            raise TimeoutError(f"{path} did not answer within {timeout:.3g} s") from err
        except (http.client.HTTPException, OSError) as err:
            # Never retried: the activation may have run before the connection broke.
            self.close()
            raise ContainerGone(f"{path} failed: {err}") from err
        elapsed = time.perf_counter() - start
        return ActionResponse.read(resp.status, raw, dict(resp.getheaders()), elapsed)

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is not None and _peer_closed(self._conn.sock):
            self.close()
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self._conn.connect()
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            self._conn.sock.settimeout(timeout)
        return self._conn


def _peer_closed(sock) -> bool:
    """Whether an idle kept-alive socket was closed by the other side (readable means EOF here)."""
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)

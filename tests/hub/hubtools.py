"""Helpers of the hub tests: a kernel of a user's JupyterLab, driven over its REST and
websocket API (imported as ``hubtools``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from support import loopback


@dataclass
class Output:
    """What a cell printed and displayed (plain text), and its error, if it raised."""

    text: str
    error: str | None


class Kernel:
    """A kernel of a user's JupyterLab, driven through the Jupyter server's REST and websocket API."""

    def __init__(self, hub, user: str, token: str):
        import websocket

        self.headers = {"Authorization": f"token {token}"}
        base = f"{hub.url}/user/{user}/api/kernels"
        resp = loopback().post(base, headers=self.headers, json={"name": "python3"}, timeout=60)
        assert resp.status_code == 201, resp.text
        self.id = resp.json()["id"]
        self.channels = f"{base.replace('http://', 'ws://')}/{self.id}/channels"
        self.token = token
        self.ws: websocket.WebSocket | None = None
        self.session = uuid.uuid4().hex

    def _connect(self) -> None:
        """A new channels connection for each cell: between cells nobody answers the server's
        pings, so it may have closed an older one (30 s ping timeout)."""
        import websocket

        if self.ws is not None:
            self.ws.close()
        self.ws = websocket.create_connection(
            self.channels, header=[f"Authorization: token {self.token}"], timeout=900
        )

    def run(self, code: str) -> Output:
        self._connect()
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "session": self.session,
                        "username": "test",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        texts: list[str] = []
        error = None
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                texts.append(content["text"])
            elif kind in ("display_data", "execute_result", "update_display_data"):
                texts.append(content.get("data", {}).get("text/plain", ""))
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return Output("\n".join(texts), error)

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


def run_ok(kernel: Kernel, code: str) -> str:
    """What a cell printed; it must not have raised."""
    out = kernel.run(code)
    assert out.error is None, f"{out.error}\n{out.text}"
    return out.text


def run_error(kernel: Kernel, code: str) -> str:
    """What a refused magic says: IPython prints a UsageError (no traceback, no error reply)."""
    out = kernel.run(code)
    assert out.error is None and "UsageError: " in out.text, out
    return out.text


def namespace_key(hub, person: dict) -> tuple[str, str]:
    """A person's function-server namespace and key, as the faas service hands them out."""
    resp = hub.service("GET", "api/namespace", person["token"])
    assert resp.status_code == 200, resp.text
    user, _, key = resp.json()["api_key"].partition(":")
    return user, key

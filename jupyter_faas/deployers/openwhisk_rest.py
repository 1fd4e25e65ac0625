"""A client of the OpenWhisk REST API, and nothing else: the plumbing of ``OpenWhiskDeployer``.

It talks to our single-machine function server and to a real Apache
OpenWhisk deployment alike: only the documented routes, bodies and status
codes of OpenWhisk's published API description are used.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import quote

import requests
from traitlets import Bool, Float, Unicode, default
from traitlets.config import LoggingConfigurable

from ..errors import ServerError
from ..paths import default_server_data_dir

ALARM_FEED = "/whisk.system/alarms/alarm"


class OpenWhiskClient(LoggingConfigurable):
    """Settings and calls for one OpenWhisk API host and key."""

    api_host = Unicode(
        help="""Function server URL, e.g. "http://127.0.0.1:3233" (the embedded server) or
        "https://openwhisk.example.org". A host without scheme means https, as in wsk.
        Default: $__OW_API_HOST, else APIHOST in ~/.wskprops, else http://127.0.0.1:3233.""",
    ).tag(config=True)

    auth = Unicode(
        help="""API key "uuid:key". Default: $__OW_API_KEY, else AUTH in ~/.wskprops, else
        the key `jupyter faas serve` wrote to its data directory (auth.guest).""",
    ).tag(config=True)

    namespace = Unicode(
        "_",
        help='Namespace to work in; "_" means the default namespace of the key.',
    ).tag(config=True)

    verify_tls = Bool(
        True, help="Verify the server's TLS certificate (wsk -i turns this off)."
    ).tag(config=True)

    trust_env = Bool(
        True,
        help="""Whether requests follow the proxy settings of the environment ($HTTPS_PROXY,
        $NO_PROXY…), e.g. False for a function server on this host behind a site proxy.""",
    ).tag(config=True)

    request_timeout = Float(
        70.0,
        help="Seconds to wait for an answer; blocking invocations wait up to 60 s on the server.",
    ).tag(config=True)

    @default("api_host")
    def _api_host_default(self):
        return (
            os.environ.get("__OW_API_HOST") or _wskprops().get("APIHOST") or "http://127.0.0.1:3233"
        )

    @default("auth")
    def _auth_default(self):
        if os.environ.get("__OW_API_KEY"):
            return os.environ["__OW_API_KEY"]
        if _wskprops().get("AUTH"):
            return _wskprops()["AUTH"]
        path = Path(default_server_data_dir()) / "auth.guest"
        return path.read_text().strip() if path.exists() else ""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._session = requests.Session()
        self._session.trust_env = self.trust_env

    def base_url(self, namespace: str | None = None) -> str:
        """``…/api/v1/namespaces/NS`` for ``namespace`` (default: the configured one)."""
        if namespace == "":
            return f"{self.host_url()}/api/v1/namespaces"
        return f"{self.host_url()}/api/v1/namespaces/{quote(namespace or self.namespace, safe='')}"

    def host_url(self) -> str:
        """``api_host`` with its scheme (https when it has none, as in wsk)."""
        host = self.api_host.rstrip("/")
        return host if "://" in host else f"https://{host}"

    def request(self, method: str, path: str, *, params=None, body=None, ok=(200,), namespace=None):
        """One API call; returns (status, parsed body). Raises ServerError on other statuses."""
        if not self.auth:
            raise ServerError(
                "No API key for the function server.",
                status=401,
                hint="Start the embedded server (`jupyter faas serve`, which writes auth.guest), or "
                "set c.OpenWhiskClient.auth / $__OW_API_KEY to uuid:key.",
            )
        user, _, key = self.auth.partition(":")
        url = f"{self.base_url(namespace)}/{path}".rstrip("/")
        try:
            resp = self._session.request(
                method,
                url,
                params=params,
                json=body,
                auth=(user, key),
                timeout=self.request_timeout,
                verify=self.verify_tls,
            )
        except requests.RequestException as err:
            raise ServerError(
                f"The function server {self.api_host} is not reachable ({type(err).__name__}).",
                status=503,
                hint="Start it with `jupyter faas serve`, or set c.OpenWhiskClient.api_host.",
            ) from err
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = resp.text
        if resp.status_code not in ok:
            raise _server_error(resp.status_code, data, method, path)
        return resp.status_code, data

    def namespaces(self) -> list[str]:
        """The namespaces the key may use (``GET /api/v1/namespaces``)."""
        return self.request("GET", "", namespace="", ok=(200,))[1]

    # -- actions ------------------------------------------------------------------------------

    def put_action(self, name: str, doc: dict) -> dict:
        return self.request("PUT", f"actions/{name}", params={"overwrite": "true"}, body=doc)[1]

    def get_action(self, name: str, code: bool = False, namespace: str | None = None) -> dict:
        params = {"code": str(code).lower()}
        return self.request("GET", f"actions/{name}", params=params, namespace=namespace)[1]

    def list_actions(self, limit: int = 200) -> list[dict]:
        return self.request("GET", "actions", params={"limit": limit, "skip": 0})[1]

    def delete_action(self, name: str) -> dict:
        return self.request("DELETE", f"actions/{name}")[1]

    def invoke(
        self, name: str, params: dict, blocking: bool = True, namespace: str | None = None
    ) -> tuple[int, dict]:
        """Invoke ``name`` (of ``namespace``, default the configured one): (200, activation)
        on success, (502, activation) when the function failed, (202, {"activationId"}) when
        non-blocking or when the server's wait ran out."""
        return self.request(
            "POST",
            f"actions/{name}",
            params={"blocking": str(blocking).lower(), "result": "false"},
            body=params,
            ok=(200, 202, 502),
            namespace=namespace,
        )

    # -- packages ----------------------------------------------------------------------------

    def put_package(self, name: str, doc: dict) -> dict:
        return self.request("PUT", f"packages/{name}", params={"overwrite": "true"}, body=doc)[1]

    def get_package(self, name: str, namespace: str | None = None) -> dict:
        """The package with its ``actions`` (``[{name, version, annotations}]``)."""
        return self.request("GET", f"packages/{name}", namespace=namespace)[1]

    def list_packages(self, namespace: str | None = None, public: bool = False) -> list[dict]:
        """Packages of ``namespace``; ``public``: also those other namespaces published (our
        server; OpenWhisk lists another namespace's published ones when asked for it)."""
        params = {"limit": 200, "skip": 0, **({"public": "true"} if public else {})}
        return self.request("GET", "packages", params=params, namespace=namespace)[1]

    def delete_package(self, name: str) -> dict:
        return self.request("DELETE", f"packages/{name}")[1]

    # -- activations --------------------------------------------------------------------------

    def list_activations(
        self, name: str | None = None, limit: int = 30, since_ms: int | None = None
    ) -> list[dict]:
        params = {"limit": limit, "skip": 0}
        if name:
            params["name"] = name
        if since_ms is not None:
            params["since"] = since_ms
        return self.request("GET", "activations", params=params)[1]

    def get_activation(self, activation_id: str) -> dict:
        return self.request("GET", f"activations/{activation_id}")[1]

    def activation_logs(self, activation_id: str) -> list[str]:
        return self.request("GET", f"activations/{activation_id}/logs")[1]["logs"]

    def wait_activation(self, activation_id: str, timeout: float) -> dict:
        """Poll until the activation record exists (404 until it is stored)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get_activation(activation_id)
            except ServerError as err:
                if err.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    # -- triggers, rules, feeds -------------------------------------------------------------------

    def put_trigger(self, name: str, annotations: list | None = None) -> dict:
        body = {"annotations": annotations or []}
        return self.request("PUT", f"triggers/{name}", params={"overwrite": "true"}, body=body)[1]

    def delete_trigger(self, name: str) -> dict:
        return self.request("DELETE", f"triggers/{name}")[1]

    def list_triggers(self) -> list[dict]:
        return self.request("GET", "triggers", params={"limit": 200})[1]

    def list_rules(self) -> list[dict]:
        return self.request("GET", "rules", params={"limit": 200})[1]

    def put_rule(self, name: str, trigger: str, action: str) -> dict:
        body = {"trigger": f"/_/{trigger}", "action": f"/_/{action}"}
        return self.request("PUT", f"rules/{name}", params={"overwrite": "true"}, body=body)[1]

    def delete_rule(self, name: str) -> dict:
        return self.request("DELETE", f"rules/{name}")[1]

    def alarm_feed(self, event: str, trigger: str, **params) -> dict:
        """Call the alarms feed (CREATE/READ/DELETE) for ``trigger``, as `wsk trigger create --feed` does."""
        namespace, _, feed = ALARM_FEED.lstrip("/").partition("/")
        body = {
            "lifecycleEvent": event,
            "triggerName": f"/_/{trigger}",
            "authKey": self.auth,
            **params,
        }
        try:
            return self.request(
                "POST",
                f"actions/{feed}",
                params={"blocking": "true", "result": "false"},
                body=body,
                namespace=namespace,
            )[1]
        except ServerError as err:
            if "cron" in err.message:
                raise ServerError(
                    err.message, status=err.status, hint=_CRON_HINT, body=err.body
                ) from None
            raise


_CRON_HINT = (
    "A cron schedule has five fields, minute hour day-of-month month day-of-week, in UTC, "
    "e.g. '*/5 * * * *' (every five minutes) or '0 6 * * 1' (Mondays at 06:00)."
)


def _server_error(status: int, data, method: str, path: str) -> ServerError:
    message = data.get("error") if isinstance(data, dict) else None
    if message is None and isinstance(data, dict):
        message = ((data.get("response") or {}).get("result") or {}).get("error")
    message = message if isinstance(message, str) else str(message or data)
    hints = {
        401: "Check the API key (c.OpenWhiskClient.auth / $__OW_API_KEY).",
        403: "This key may not use that namespace.",
        404: "Check the activation id: `%faas activations` lists recent ones."
        if path.startswith("activations")
        else "Check the name: `%faas list` shows the deployed functions.",
        409: "It exists already.",
        413: "Send a smaller input (OpenWhisk allows 1 MB), or pass data by reference.",
    }
    return ServerError(
        f"{method} {path} failed (HTTP {status}): {message}",
        status=status,
        hint=hints.get(status, ""),
        body=data,
    )


def _wskprops() -> dict[str, str]:
    path = Path(os.environ.get("WSK_CONFIG_FILE", Path.home() / ".wskprops"))
    if not path.exists():
        return {}
    props = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props

"""The faas service's HTTP API, under its hub prefix (``/services/faas/``).

Every call but ``api/health`` and the relay names its caller with a hub token
(``Authorization: token …``: a kernel's ``$JUPYTERHUB_API_TOKEN`` or a user's
own token) checked by the hub; the caller acts on its own namespace only, and
no route takes a user or namespace from the request except the operators'.
``api/v1/…`` relays the OpenWhisk REST API to the function server unchanged:
the namespace's key, not a hub token, authenticates it there.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict

from jupyterhub.services.auth import HubAuthenticated, UserNotAllowed
from tornado import httpclient, web
from tornado.iostream import StreamClosedError

from ..bundle import check_base
from ..errors import BadRequest, FaaSError
from .protocol import NDJSON, encode, error_line

#: A dependency key as DockerBuilder makes it.
_KEY = re.compile(r"^[0-9a-f]{64}$")
#: Headers the relay passes to the function server, and back.
_RELAYED_IN = ("Authorization", "Content-Type", "Accept")
_RELAYED_OUT = ("Content-Type", "Location", "Retry-After")


class ServiceHandler(HubAuthenticated, web.RequestHandler):
    """JSON in and out, errors in the project's one shape, the caller from its hub token."""

    #: Whether the route is for operators (the service's operator scope) instead of users.
    operator = False

    @property
    def service(self):
        return self.settings["faas_service"]

    @property
    def hub_auth(self):
        return self.service.hub_auth

    def check_xsrf_cookie(self):
        """Token-authenticated API: no cookies, so no cross-site forgery to guard against."""

    async def prepare(self):
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            model = model and self.check_hub_user(model)
        except UserNotAllowed:
            model = None
        if not model:
            raise web.HTTPError(
                403,
                "A hub token with the scope access:services!service="
                f"{self.service.service_name} is required (Authorization: token …).",
            )
        if self.operator:
            if self.service.operator_scope not in model.get("scopes", []):
                raise web.HTTPError(
                    403, f"This route needs the scope {self.service.operator_scope}."
                )
        elif model.get("kind") != "user":
            raise web.HTTPError(403, "Only hub users have namespaces; use a user's token.")
        self.current_user = model

    def write_error(self, status_code, **kwargs):
        err = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(err, FaaSError):
            body = error_line(err)
        elif isinstance(err, web.HTTPError) and err.log_message:
            reason = {403: "forbidden", 404: "not-found"}.get(status_code, "hub-api")
            body = {"error": err.log_message, "reason": reason}
        else:
            body = {
                "error": "The faas service failed; its log has the details.",
                "reason": "internal",
            }
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({**body, "status": status_code}))

    def log_exception(self, typ, value, tb):
        if isinstance(value, FaaSError):
            self.set_status(value.status)
            self.service.log.info(
                "%s %s: %s", self.request.method, self.request.path, value.message
            )
            return
        super().log_exception(typ, value, tb)

    def send_error(self, status_code=500, **kwargs):
        err = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(err, FaaSError):
            status_code = err.status
        super().send_error(status_code, **kwargs)

    def body(self) -> dict:
        try:
            value = json.loads(self.request.body or b"{}")
        except ValueError as err:
            raise BadRequest(f"The request body is not JSON ({err}).") from None
        if not isinstance(value, dict):
            raise BadRequest("The request body must be a JSON object.")
        return value

    def key(self, value) -> str:
        if not isinstance(value, str) or not _KEY.match(value):
            raise BadRequest(
                f"key = {value!r} is not a dependency key (64 hex digits, as a build returned)."
            )
        return value

    async def entry(self):
        """The caller's namespace, made on first use."""
        return await self.service.quick(self.service.namespaces.ensure, self.current_user["name"])


class HealthHandler(web.RequestHandler):
    """``GET api/health``: the service answers (no token needed)."""

    def get(self):
        self.finish({"ok": True})


class NamespaceHandler(ServiceHandler):
    """``GET api/namespace``: the caller's namespace, its key and where to use it."""

    async def get(self):
        entry = await self.entry()
        self.finish(
            {
                "user": entry.user,
                "namespace": entry.namespace,
                "api_key": entry.api_key,
                "api_host": self.service.user_api_host,
                "registry": entry.registry_path,
            }
        )


class NamespacesHandler(ServiceHandler):
    """``GET api/namespaces``: every user's namespace (no keys), for operators."""

    operator = True

    async def get(self):
        entries = await self.service.quick(self.service.namespaces.entries)
        self.finish({"namespaces": [e.public() for e in entries.values()]})


class UserNamespaceHandler(ServiceHandler):
    """``DELETE api/namespaces/USER``: delete a user's namespace with all it holds."""

    operator = True

    async def delete(self, user):
        entry = await self.service.quick(self.service.namespaces.remove, user)
        if entry is None:
            raise web.HTTPError(404, f"Hub user {user!r} has no namespace.")
        await self.service.quick(self.service.jobs.forget, entry.namespace)
        self.finish({"deleted": entry.public()})


class JobHandler(ServiceHandler):
    """A job whose progress streams back as NDJSON lines, ending in its result."""

    async def stream(self, job, *args) -> None:
        entry = await self.entry()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def progress(event):
            loop.call_soon_threadsafe(events.put_nowait, event)

        async with self.service.user_lock(entry.namespace):
            future = self.service.slow(job, entry, *args, progress)
            future.add_done_callback(lambda _: events.put_nowait(None))
            self.set_header("Content-Type", NDJSON)
            self.set_header("Cache-Control", "no-cache")
            while (event := await events.get()) is not None:
                await self._send({"progress": event})
            try:
                result = future.result()
            except FaaSError as err:
                line = error_line(err)
            except Exception:
                self.service.log.exception("%s for %s failed", job.__name__, entry.user)
                line = {
                    "error": f"The faas service's {job.__name__} failed unexpectedly; its log "
                    "has the details.",
                    "reason": "internal",
                    "status": 500,
                }
            else:
                line = {"result": asdict(result) if result is not None else None}
        await self._send(line)
        self.finish()

    async def _send(self, line: dict) -> None:
        try:
            self.write(encode(line))
            await self.flush()
        except StreamClosedError:
            pass  # the client left; the job still ends, and its result is dropped


class BuildHandler(JobHandler):
    """``POST api/build {"requirements", "base"}``: build or reuse the dependency image.

    ``base`` (optional) names a published function, ``OWNER/PACKAGE/NAME``, never an
    image: the service resolves it with the caller's own key and builds on its image only
    if its owner published it.
    """

    async def post(self):
        body = self.body()
        requirements = body.get("requirements")
        if not isinstance(requirements, str):
            raise BadRequest('The body needs "requirements": the text of requirements.txt.')
        base = body.get("base")
        if base is not None:
            try:
                check_base(base)
            except FaaSError as err:
                raise BadRequest(err.message, hint=err.hint) from None
        await self.stream(self.service.jobs.build, requirements, base)


class TestHandler(JobHandler):
    """``POST api/test {"bundle", "key", "args", "max_result_bytes"}``: a local container test."""

    async def post(self):
        body = self.body()
        args = body.get("args")
        if not isinstance(args, dict):
            raise BadRequest('The body needs "args": the test input, a JSON object.')
        if not isinstance(body.get("bundle"), str):
            raise BadRequest('The body needs "bundle": the bundle folder as a base64 zip.')
        limit = body.get("max_result_bytes", 0)
        cap = self.service.max_result_bytes
        if not isinstance(limit, int) or limit < 0:
            raise BadRequest('"max_result_bytes" must be an integer, 0 or more.')
        limit = min(limit or cap, cap) if cap else limit
        key = self.key(body.get("key"))
        await self.stream(self.service.jobs.test, body["bundle"], key, args, limit)


class PushHandler(JobHandler):
    """``POST api/push {"key"}``: push the dependency image under the namespace's path."""

    async def post(self):
        await self.stream(self.service.jobs.push, self.key(self.body().get("key")))


class PublishedHandler(ServiceHandler):
    """``GET api/published?key=…``: where the image is published for the namespace, or null."""

    async def get(self):
        key = self.key(self.get_argument("key", ""))
        entry = await self.entry()
        found = await self.service.quick(self.service.jobs.published, entry, key)
        self.finish({"published": asdict(found) if found else None})


class RelayHandler(web.RequestHandler):
    """``api/v1/…``: the function server's OpenWhisk REST API, for user containers.

    Only that API is relayed (never the server's other routes), with the caller's
    own Authorization header; dot segments are refused, so nothing else is reached.
    """

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")

    def check_xsrf_cookie(self):
        """The relayed API authenticates by its Authorization header, never by cookie."""

    async def _relay(self, path: str) -> None:
        service = self.settings["faas_service"]
        raw = self.request.path.split("/api/v1/", 1)[1] if "/api/v1/" in self.request.path else ""
        if any(part in (".", "..") for part in raw.split("/")):
            raise web.HTTPError(400)
        url = f"{service.namespaces.server_url.rstrip('/')}/api/v1/{raw}"
        if self.request.query:
            url += f"?{self.request.query}"
        method = self.request.method
        request = httpclient.HTTPRequest(
            url,
            method=method,
            headers={h: self.request.headers[h] for h in _RELAYED_IN if h in self.request.headers},
            body=self.request.body if method in ("POST", "PUT", "PATCH") else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            request_timeout=service.relay_timeout_s,
        )
        try:
            resp = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError:
            resp = None
        if resp is None or resp.code == 599:
            self.set_status(503)
            self.finish(
                {
                    "error": f"The function server {service.namespaces.server_url} is not "
                    "reachable from the faas service; ask the hub's operator to start it "
                    "(`bash scripts/up.sh --hub`).",
                    "reason": "function-server",
                }
            )
            return
        self.set_status(resp.code, resp.reason)
        for header in _RELAYED_OUT:
            if header in resp.headers:
                self.set_header(header, resp.headers[header])
        self.finish(resp.body or None)  # None: a 204 must carry no body, not even b""

    get = head = post = put = delete = patch = _relay

"""What every function server handler shares: auth, errors, JSON, lists, CORS.

Error bodies are OpenWhisk's ``{"error": message, "code": request_id}``,
built by :meth:`BaseHandler.error_body` and nowhere else. Every response
carries ``X-Request-ID``; unexpected exceptions become a 500 with a generic
message (the detail goes to the log only).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from tornado import httputil, web

from ..entities import Identity, check_name
from ..errors import (
    AUTH_INVALID,
    AUTH_MISSING,
    INTERNAL,
    NOT_ENTITLED,
    NOT_FOUND,
    BadRequest,
    Forbidden,
    TooLarge,
    Unauthorized,
    WhiskError,
)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, DELETE, POST, PUT, HEAD",
    "Access-Control-Allow-Headers": (
        "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
    ),
}
REALM = 'Basic realm="OpenWhisk secure realm"'
LIST_MAX = 200
LIST_DEFAULT = 30
#: Body size limit set on a connection whose request was refused before its body: the body
#: is never passed on, and the connection closes once the refusal is sent.
UNREAD_BODY_MAX = 2**62


def dumps(obj: Any) -> str:
    """Compact JSON, as OpenWhisk's CompactPrinter writes it."""
    return json.dumps(obj, separators=(",", ":"))


@web.stream_request_body
class BaseHandler(web.RequestHandler):
    """Base of every route: OpenWhisk error shape, Basic auth, JSON bodies, CORS.

    Bodies are streamed: :meth:`prepare` runs on the headers alone, so a request
    with a body is refused before any of it is read when its credentials are
    missing or wrong (401) or its declared ``Content-Length`` is over the route's
    limit (413, OpenWhisk's message). Tornado then closes the connection instead of
    reading the rest.
    """

    request_id = ""
    #: Whether a request with a body needs valid credentials before the body is read.
    auth_before_body = True
    _identity: Identity | None = None
    _body_buf: bytearray | None = None
    #: Set when the request was refused before its body was read: the connection closes.
    _body_unread = False

    def body_limit(self) -> int:
        """The largest body this route takes for this request's method, in bytes."""
        return self.faas.ranges.max_payload

    async def prepare(self) -> None:
        """Check credentials and the declared body size before the body is read."""
        headers = self.request.headers
        length = headers.get("Content-Length")
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        try:
            declared = int(length) if length else None
        except ValueError:
            declared = None  # tornado answers 400 for it
        if not declared and not chunked:
            return
        try:
            if self.auth_before_body:
                self._identity = await self.authenticate()
            limit = self.body_limit()
            if declared is not None and declared > limit:
                raise TooLarge(f"Request larger than allowed: {declared} > {limit} bytes.")
        except WhiskError:
            # Answered before the body: keep tornado from answering its own 400 for a length
            # over the server-wide maximum; it closes the connection after our answer and
            # passes none of the body on.
            self.request.connection.set_max_body_size(UNREAD_BODY_MAX)
            self._body_unread = True
            raise
        self.request.connection.set_max_body_size(limit)
        self._body_buf = bytearray()
        self.request._body_future.add_done_callback(self._body_complete)

    def data_received(self, chunk: bytes) -> None:
        if self._body_buf is not None and not self._finished:
            self._body_buf += chunk

    def _body_complete(self, future) -> None:
        # Runs before the handler method: this callback was added before tornado awaited it.
        if future.cancelled() or future.exception() is not None or self._body_buf is None:
            return
        self.request.body = bytes(self._body_buf)
        self._body_buf = None
        httputil.parse_body_arguments(
            self.request.headers.get("Content-Type", ""),
            self.request.body,
            self.request.body_arguments,
            self.request.files,
            self.request.headers,
        )

    @property
    def faas(self):
        """The :class:`~jupyter_faas.server.app.FunctionServer` serving this request."""
        return self.settings["faas"]

    @property
    def log(self):
        """The server's logger."""
        return self.faas.log

    def set_default_headers(self) -> None:
        # Called again by send_error's clear(): keep the id of this request.
        if not getattr(self, "request_id", None):
            self.request_id = secrets.token_hex(16)
        self.set_header("X-Request-ID", self.request_id)
        self.set_header("Content-Type", "application/json")
        for name, value in CORS_HEADERS.items():
            self.set_header(name, value)

    def options(self, *args: str) -> None:
        """CORS preflight: 200 with the CORS headers and no body."""
        self.set_status(200)
        self.finish()

    # -- output -----------------------------------------------------------------------

    def error_body(self, message: str) -> dict:
        """The one error shape of the function server: ``{"error", "code"}``."""
        return {"error": message, "code": self.request_id}

    def send_json(self, obj: Any, status: int = 200) -> None:
        """Finish the request with ``obj`` as compact JSON."""
        self.set_status(status)
        self.finish(dumps(obj))

    def send_error_message(self, status: int, message: str) -> None:
        """Finish the request with the error shape."""
        self.send_json(self.error_body(message), status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        err = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(err, WhiskError):
            message = str(err)
            self.set_status(err.status)
            if isinstance(err, Unauthorized):
                self.set_header("WWW-Authenticate", REALM)
        elif isinstance(err, web.HTTPError) and status_code < 500:
            message = err.log_message or self._reason
            if status_code == 404:
                message = NOT_FOUND
        else:
            message = INTERNAL
        self.set_header("Content-Type", "application/json")
        for name, value in CORS_HEADERS.items():
            self.set_header(name, value)
        if self._body_unread:
            # The unread body stays on the connection, which closes after this answer: say so,
            # so that clients do not send their next request on it.
            self.set_header("Connection", "close")
        self.finish(dumps(self.error_body(message)))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, WhiskError):
            self.log.debug(
                "%s %s -> %d %s", self.request.method, self.request.path, value.status, value
            )
            return
        if isinstance(value, web.HTTPError) and value.status_code < 500:
            return
        self.log.error(
            "Request %s %s (%s) failed",
            self.request.method,
            self.request.path,
            self.request_id,
            exc_info=(typ, value, tb),
        )

    # -- input ------------------------------------------------------------------------

    async def identity_from_header(self) -> Identity | None:
        """The subject named by the ``Authorization`` header, or None when absent.

        Raises:
            Unauthorized: the header is present but not valid credentials.
        """
        header = self.request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise Unauthorized(AUTH_INVALID)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(AUTH_INVALID) from None
        uuid_, _, key = decoded.partition(":")
        namespace = await self.faas.check_key(uuid_, key)
        if namespace is None:
            raise Unauthorized(AUTH_INVALID)
        return Identity(namespace, uuid_, key)

    async def authenticate(self) -> Identity:
        """The caller's identity; 401 (with WWW-Authenticate) when missing or invalid."""
        if self._identity is not None:
            return self._identity
        identity = await self.identity_from_header()
        if identity is None:
            raise Unauthorized(AUTH_MISSING)
        return identity

    def namespace_for(self, namespace: str, identity: Identity) -> str:
        """Resolve ``_`` to the caller's namespace and check the name."""
        if namespace == "_":
            return identity.namespace
        return check_name(namespace)

    def own_namespace(self, namespace: str, identity: Identity) -> str:
        """Like :meth:`namespace_for`, but 403 for any namespace other than the caller's."""
        namespace = self.namespace_for(namespace, identity)
        if namespace != identity.namespace:
            raise Forbidden(NOT_ENTITLED)
        return namespace

    def json_body(self, limit: int, require_object: bool = True) -> Any:
        """The request body as JSON; an empty body is ``{}``.

        Raises:
            TooLarge: the body exceeds ``limit`` bytes.
            BadRequest: the body is not JSON, or not an object when one is required.
        """
        body = self.request.body
        if len(body) > limit:
            raise TooLarge(f"Request larger than allowed: {len(body)} > {limit} bytes.")
        if not body.strip():
            return {}
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest(f"The request content was malformed: {err}") from None
        if require_object and not isinstance(value, dict):
            raise BadRequest("The request content was malformed: expected a JSON object.")
        return value

    def bool_arg(self, name: str, default: bool = False) -> bool:
        """A ``true``/``false`` query parameter."""
        value = self.get_query_argument(name, None)
        if value is None:
            return default
        return value.strip().lower() == "true"

    def int_arg(self, name: str, collection: str, default: int | None = None) -> int | None:
        """A non-negative integer query parameter; 400 with OpenWhisk's message otherwise."""
        value = self.get_query_argument(name, None)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise BadRequest(f"The value '{value}' is not an integer for {collection}.") from None
        if number < 0:
            raise BadRequest(f"The value '{value}' must not be negative for {collection}.")
        return number

    def list_args(self, collection: str) -> tuple[int, int, bool]:
        """``(limit, skip, count)`` of a list route: ``limit=0`` means the maximum, 200."""
        limit = self.int_arg("limit", collection, LIST_DEFAULT)
        if limit > LIST_MAX:
            raise BadRequest(
                f"The value '{limit}' is not in the range of 0 to {LIST_MAX} for {collection}."
            )
        return (limit or LIST_MAX), self.int_arg("skip", collection, 0), self.bool_arg("count")


class NotFoundHandler(BaseHandler):
    """Any path the server does not serve: 404 in the error shape.

    With a body, the 404 comes before the body is read (and the connection closes);
    without one, it comes from the method, so the connection stays open for the next
    request.
    """

    auth_before_body = False

    def body_limit(self) -> int:
        return 0

    async def prepare(self) -> None:
        headers = self.request.headers
        if self.request.method != "OPTIONS" and (
            headers.get("Content-Length", "0") not in ("", "0")
            or "chunked" in headers.get("Transfer-Encoding", "").lower()
        ):
            self.request.connection.set_max_body_size(UNREAD_BODY_MAX)
            self._body_unread = True
            raise web.HTTPError(404)

    def _not_found(self, *args: str) -> None:
        raise web.HTTPError(404)

    get = head = post = put = delete = patch = _not_found

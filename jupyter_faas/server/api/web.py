"""``/api/v1/web/{ns}/{pkg}/{action}[.ext][/path]``: web actions.

No credentials are needed unless the action has ``require-whisk-auth``
(``true``: any valid Basic credentials; a string: the same string in the
``X-Require-Whisk-Auth`` header). Only actions annotated ``web-export: true``
are served; others are 404. The action runs as its owner and gets the HTTP
context as ``__ow_method``, ``__ow_headers``, ``__ow_path`` (and
``__ow_user`` when authenticated). Extensions: ``.http`` (the default: the
result is ``{statusCode, headers, body}``), ``.json`` (the result, or the
field named by the extra path), ``.text``, ``.html`` and ``.svg`` (the result
field of that name).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any
from urllib.parse import urlencode

from ...runtime.faas_protocol import annotation
from ..entities import Identity, check_name
from ..errors import AUTH_INVALID, NOT_FOUND, BadRequest, NotFound, TooLarge, Unauthorized
from ..store import queries
from .base import BaseHandler, dumps

EXTENSIONS = {
    "json": "application/json",
    "http": None,
    "text": "text/plain",
    "html": "text/html",
    "svg": "image/svg+xml",
}
_PROJECT = {"text": "text", "html": "html", "svg": "svg"}


def _split(rest: str) -> tuple[str, str, str]:
    """``action.ext/extra/path`` → ``(action, ext, "/extra/path")``."""
    head, _, tail = rest.partition("/")
    name, ext = head, "http"
    base, dot, suffix = head.rpartition(".")
    if dot and suffix in EXTENSIONS:
        name, ext = base, suffix
    return name, ext, f"/{tail}" if tail else ""


class WebActionHandler(BaseHandler):
    """Every HTTP method on a web action."""

    #: Web actions may be public: the body is read without credentials (up to max_payload).
    auth_before_body = False

    async def _handle(self, namespace: str, package: str, rest: str) -> None:
        name, ext, extra = _split(rest)
        check_name(namespace)
        action = (
            check_name(name)
            if package == "default"
            else f"{check_name(package)}/{check_name(name)}"
        )
        subject = await self.faas.db.read(queries.namespace_subject, namespace)
        if subject is None:
            raise NotFound(NOT_FOUND)
        owner = Identity(namespace, subject[0], self.faas.known_key(subject[0]))
        target = await self.faas.activator.resolve(owner, namespace, action)
        if annotation(target.doc, "web-export") not in (True, "true"):
            raise NotFound(NOT_FOUND)
        user = await self._check_auth(target.doc)
        if self.request.method == "OPTIONS" and annotation(
            target.doc, "web-custom-options"
        ) not in (True, "true"):
            self.set_status(200)
            self.finish()
            return
        params = self._params(target.doc, extra, user)
        self.faas.invocation_throttle.admit(namespace)  # counts against the owner's limit
        activation_id, record = await self.faas.activator.invoke(
            owner, target, params, blocking=True, wait_ms=self.faas.ranges.max_wait
        )
        self.set_header("x-openwhisk-activation-id", activation_id)
        if record is None:
            self.send_json({"activationId": activation_id}, 202)
            return
        response = record["response"]
        result = response["result"]
        if response["statusCode"] == 1 and isinstance(result, dict):
            error = result.get("error")
            if ext == "http" and isinstance(error, dict):
                self._send_http(error)
                return
            self.send_error_message(400, error if isinstance(error, str) else dumps(error))
            return
        if response["statusCode"] != 0:
            error = result.get("error") if isinstance(result, dict) else None
            message = (
                error if isinstance(error, str) else "The action did not produce a valid response."
            )
            self.send_error_message(502, message)
            return
        self._send_result(result, ext, extra)

    async def _check_auth(self, doc: dict) -> str | None:
        required = annotation(doc, "require-whisk-auth")
        try:
            identity = await self.identity_from_header()
        except Unauthorized:
            identity = None
        if required in (None, False, "false"):
            return identity.namespace if identity else None
        if required in (True, "true"):
            if identity is None:
                raise Unauthorized(AUTH_INVALID)
            return identity.namespace
        given = self.request.headers.get("X-Require-Whisk-Auth", "")
        if not hmac.compare_digest(given.encode(), str(required).encode()):
            raise Unauthorized(AUTH_INVALID)
        return identity.namespace if identity else None

    def _params(self, doc: dict, extra: str, user: str | None) -> dict:
        raw = annotation(doc, "raw-http") in (True, "true")
        headers = {k.lower(): v for k, v in self.request.headers.items()}
        headers.pop("authorization", None)
        context: dict[str, Any] = {
            "__ow_method": self.request.method.lower(),
            "__ow_headers": headers,
            "__ow_path": extra,
        }
        if user:
            context["__ow_user"] = user
        body = self.request.body
        limit = self.faas.ranges.max_payload
        if len(body) > limit:
            raise TooLarge(f"Request larger than allowed: {len(body)} > {limit} bytes.")
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if raw:
            query = urlencode(
                [(k, v.decode()) for k, vs in self.request.query_arguments.items() for v in vs]
            )
            context["__ow_query"] = query
            if body:
                context["__ow_body"] = (
                    base64.b64encode(body).decode()
                    if not content_type.startswith("text/") and content_type != "application/json"
                    else body.decode("utf-8", "replace")
                )
            return context
        params: dict[str, Any] = {
            k: self.get_query_argument(k) for k in self.request.query_arguments
        }
        if body:
            if content_type == "application/json":
                value = self.json_body(self.faas.ranges.max_payload, require_object=False)
                if isinstance(value, dict):
                    params.update(value)
                else:
                    params["__ow_body"] = value
            elif (
                content_type.startswith("text/")
                or content_type == "application/x-www-form-urlencoded"
            ):
                if content_type == "application/x-www-form-urlencoded":
                    params.update(
                        {k: self.get_body_argument(k) for k in self.request.body_arguments}
                    )
                else:
                    params["__ow_body"] = body.decode("utf-8", "replace")
            else:
                params["__ow_body"] = base64.b64encode(body).decode()
        return {**params, **context}

    def _send_result(self, result: Any, ext: str, extra: str) -> None:
        if ext == "http":
            if not isinstance(result, dict):
                raise BadRequest("The action did not return a dictionary.")
            self._send_http(result)
            return
        value = result
        projection = [p for p in extra.split("/") if p] or (
            [_PROJECT[ext]] if ext in _PROJECT else []
        )
        for field in projection:
            if not isinstance(value, dict) or field not in value:
                raise NotFound("The requested property does not exist.")
            value = value[field]
        if ext == "json":
            if not isinstance(value, (dict, list)):
                raise BadRequest("The action did not return a JSON object or array.")
            self.send_json(value)
            return
        self.set_header("Content-Type", EXTENSIONS[ext])
        self.finish(value if isinstance(value, str) else dumps(value))

    def _send_http(self, result: dict) -> None:
        status = result.get("statusCode", result.get("code", 200 if "body" in result else 204))
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise BadRequest(f"Invalid HTTP status code: {status}")
        headers = result.get("headers") or {}
        if not isinstance(headers, dict):
            raise BadRequest("The action returned 'headers' that is not an object.")
        self.clear_header("Content-Type")
        for key, value in headers.items():
            self.set_header(key, str(value))
        body = result.get("body")
        self.set_status(status)
        if body is None or status == 204:
            self.finish()
            return
        content_type = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "")
        if isinstance(body, (dict, list)):
            if not content_type:
                self.set_header("Content-Type", "application/json")
            self.finish(dumps(body))
            return
        text = body if isinstance(body, str) else json.dumps(body)
        if not content_type:
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.finish(text)
            return
        binary = not (
            content_type.startswith("text/") or "json" in content_type or "xml" in content_type
        )
        if binary:
            try:
                self.finish(base64.b64decode(text, validate=True))
            except binascii.Error:
                raise BadRequest(
                    "The response body is not base64 although its content type is binary."
                ) from None
            return
        self.finish(text)

    async def get(self, *args: str) -> None:
        await self._handle(*args)

    post = put = delete = patch = head = options = get


default_handlers = [
    (r"/api/v1/web/([^/]+)/([^/]+)/(.+)", WebActionHandler),
]

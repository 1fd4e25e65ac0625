"""``GET /metrics``: the server's metrics in Prometheus' text format.

A namespace key (Basic auth, as for the API) shows that namespace's series; the operator's
token (``Authorization: Bearer``, c.FunctionServer.metrics_token) shows every series,
the pool's prewarm containers included. Anything else is refused with 401.
"""

from __future__ import annotations

import hmac

from ..errors import Unauthorized
from ..metrics import CONTENT_TYPE
from .base import BaseHandler

METRICS_AUTH = (
    "Reading /metrics needs a namespace key (HTTP Basic auth with uuid:key, as for the API: "
    "that namespace's series) or the operator's token (Authorization: Bearer TOKEN, "
    "c.FunctionServer.metrics_token: every series)."
)


class MetricsHandler(BaseHandler):
    """The metrics a caller may see: its namespace's, or all of them for the operator."""

    async def get(self) -> None:
        namespace = await self._viewer()
        text = self.faas.metrics.exposition(namespace)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(text)

    async def _viewer(self) -> str | None:
        """The caller's namespace; None for the operator. 401 for anyone else."""
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = self.faas.metrics_token
            if token and hmac.compare_digest(value.strip().encode(), token.encode()):
                return None
            raise Unauthorized(METRICS_AUTH)
        if not scheme:
            raise Unauthorized(METRICS_AUTH)
        return (await self.authenticate()).namespace


default_handlers = [(r"/metrics", MetricsHandler)]

"""``/api/v1/namespaces/{ns}/activations``: list, get, result and logs."""

from __future__ import annotations

import re

from ..entities import activation_extended, activation_summary
from ..errors import NOT_FOUND, BadRequest, NotFound
from ..store import queries
from .base import BaseHandler

_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")


class ActivationListHandler(BaseHandler):
    """``GET .../activations``: newest first; ``name``, ``since``, ``upto``, ``docs``, ``count``."""

    async def get(self, namespace: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        limit, skip, count = self.list_args("activations")
        name = self.get_query_argument("name", None) or None
        if name is not None:
            name = name.strip("/")
            if name.startswith(f"{namespace}/"):
                name = name[len(namespace) + 1 :]
        since = self.int_arg("since", "activations")
        upto = self.int_arg("upto", "activations")
        db = self.faas.db
        if count:
            total = await db.read(queries.count_activations, namespace, name, since, upto)
            self.send_json({"activations": total})
            return
        with_docs = self.bool_arg("docs")
        budget = self.faas.max_activation_list_bytes if with_docs else 0
        docs = await db.read(
            queries.list_activations, namespace, name, since, upto, limit, skip, budget
        )
        if with_docs:
            if len(docs) < limit and budget:
                # Maybe cut short by the byte budget: say so, the next page starts here.
                self.set_header("X-Faas-List-Bytes-Limit", str(budget))
            self.send_json([activation_extended(doc) for doc in docs])
        else:
            self.send_json([activation_summary(doc) for doc in docs])


class ActivationHandler(BaseHandler):
    """``GET .../activations/{id}[/result|/logs]``."""

    async def get(self, namespace: str, activation_id: str, part: str | None = None) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        if len(activation_id) != 32:
            raise BadRequest(f"Activation id length is {len(activation_id)} but must be 32.")
        if not _ID_RE.match(activation_id):
            raise BadRequest("The activation id is not a 32-character lowercase hex string.")
        doc = await self.faas.db.read(queries.get_activation, namespace, activation_id)
        if doc is None:
            raise NotFound(NOT_FOUND)
        extended = activation_extended(doc)
        if part == "result":
            self.send_json(extended["response"])
        elif part == "logs":
            self.send_json({"logs": doc.get("logs", [])})
        else:
            self.send_json(extended)


default_handlers = [
    (r"/api/v1/namespaces/([^/]+)/activations/?", ActivationListHandler),
    (r"/api/v1/namespaces/([^/]+)/activations/([^/]+)", ActivationHandler),
    (r"/api/v1/namespaces/([^/]+)/activations/([^/]+)/(result|logs)", ActivationHandler),
]

"""``/api/v1/namespaces/{ns}/actions``: create, get, list, delete and invoke actions."""

from __future__ import annotations

import sqlite3

from ...runtime.faas_protocol import annotation
from ..entities import (
    Identity,
    action_summary,
    action_view,
    activation_extended,
    check_exec,
    check_limits,
    check_name,
    check_params_size,
    exec_size,
    set_annotation,
    split_path,
)
from ..errors import NOT_FOUND, BadRequest, Forbidden, NotFound, TooLarge
from ..store import queries
from . import crud
from .base import BaseHandler
from .packages import not_shared

STATUS_FOR_CODE = {0: 200, 1: 502, 2: 502, 3: 500}


def split_name(name: str) -> tuple[str, str]:
    """``pkg/name`` or ``name`` → ``(pkg, name)`` with both checked (pkg may be '')."""
    pkg, _, simple = name.rpartition("/")
    if pkg:
        check_name(pkg)
    return pkg, check_name(simple)


class ActionListHandler(BaseHandler):
    """``GET .../actions`` and ``GET .../actions/{pkg}/``: newest first."""

    async def get(self, namespace: str, package: str | None = None) -> None:
        identity = await self.authenticate()
        limit, skip, count = self.list_args("actions")
        if package is None:
            namespace = self.own_namespace(namespace, identity)
            prefix = None
        else:
            namespace = self.namespace_for(namespace, identity)
            pkg = await self.faas.activator.package(identity, namespace, check_name(package))
            if pkg.get("binding"):
                # The bound package must be readable by the binding's namespace now: a
                # package unpublished after the binding was made lists nothing through it.
                bound = pkg["binding"]
                owner = Identity(namespace, identity.uuid, identity.key)
                await self.faas.activator.package(owner, bound["namespace"], bound["name"])
                namespace, package = bound["namespace"], bound["name"]
            prefix = f"{package}/"
        if count:
            total = await self.faas.db.read(queries.count_entities, namespace, "actions", prefix)
            self.send_json({"actions": total})
            return
        docs = await self.faas.db.read(
            queries.list_entities, namespace, "actions", limit, skip, prefix
        )
        self.send_json([action_summary(doc) for doc in docs])


class ActionHandler(BaseHandler):
    """``/actions/[{pkg}/]{name}``: PUT, GET, DELETE and POST (invoke)."""

    def body_limit(self) -> int:
        ranges = self.faas.ranges
        if self.request.method == "PUT":
            return ranges.max_code + 4 * ranges.max_payload
        return ranges.max_payload

    async def get(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.namespace_for(namespace, identity)
        split_name(name)
        target = await self.faas.activator.resolve(identity, namespace, name)
        doc = action_view(target.doc, code=self.bool_arg("code", True))
        if target.binding:
            doc["namespace"] = target.binding
        self.send_json(doc)

    async def delete(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        split_name(name)
        doc = await crud.remove(self.faas.db, namespace, name, "actions")
        self.faas.retire(f"{namespace}/{name}")
        self.send_json(doc)

    async def put(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        pkg, simple = split_name(name)
        ranges = self.faas.ranges
        body = self.json_body(ranges.max_code + 4 * ranges.max_payload)
        overwrite = self.bool_arg("overwrite")
        if pkg:
            pkg_doc = await self.faas.activator.entity(namespace, pkg, "packages")
            if pkg_doc is None:
                raise NotFound(NOT_FOUND)
            if pkg_doc.get("binding"):
                raise BadRequest(
                    f"Cannot create or update an action in package binding '{pkg}'; "
                    "put it in the bound package instead."
                )
        exec_ = None
        if body.get("exec") is not None:
            exec_ = check_exec(body["exec"], namespace)
            size = exec_size(exec_)
            if size > ranges.max_code:
                raise TooLarge(f"Request larger than allowed: {size} > {ranges.max_code} bytes.")
            if exec_["kind"] == "sequence":
                await self._check_components(identity, namespace, name, exec_["components"])
        if body.get("parameters") is not None:
            check_params_size(body["parameters"], ranges)
        entity_ns = f"{namespace}/{pkg}" if pkg else namespace
        replaced: list[str] = []

        def build(conn: sqlite3.Connection, old: dict | None) -> dict:
            if old is not None:
                replaced.append(old["version"])
            if old is None and exec_ is None:
                raise BadRequest("exec undefined")
            new_exec = exec_ or old["exec"]
            doc = crud.meta(old, body, entity_ns, simple, ranges.max_payload)
            doc["exec"] = new_exec
            doc["parameters"] = crud.parameters(old, body)
            base = old["limits"] if old else ranges.defaults()
            doc["limits"] = check_limits(body.get("limits"), base, ranges)
            annotations = set_annotation(doc["annotations"], "exec", new_exec["kind"])
            if old is None and annotation(doc, "provide-api-key") is None:
                annotations = set_annotation(annotations, "provide-api-key", False)
            doc["annotations"] = annotations
            return doc

        doc = await crud.save(self.faas.db, namespace, name, "actions", overwrite, build)
        for version in replaced:  # a new version never reuses the old one's sandboxes
            self.faas.retire(f"{namespace}/{name}@{version}")
        self.send_json(doc)

    async def _check_components(
        self, identity, namespace: str, name: str, components: list[str]
    ) -> None:
        for component in components:
            ns, rest = split_path(component, namespace)
            if ns == namespace and rest == name:
                raise BadRequest("Sequence may not refer to itself.")
            try:
                await self.faas.activator.resolve(identity, ns, rest)
            except NotFound:
                raise BadRequest("Sequence component does not exist.") from None

    async def post(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.namespace_for(namespace, identity)
        split_name(name)
        ranges = self.faas.ranges
        payload = self.json_body(ranges.max_payload)
        blocking = self.bool_arg("blocking")
        result_only = self.bool_arg("result")
        wait_ms = self._wait_ms()
        try:
            target = await self.faas.activator.resolve(identity, namespace, name)
        except Forbidden:
            raise Forbidden(await not_shared(self.faas, identity, namespace, name)) from None
        self.faas.invocation_throttle.admit(identity.namespace)
        activation_id, record = await self.faas.activator.invoke(
            identity, target, payload, blocking=blocking, wait_ms=wait_ms
        )
        self.set_header("x-openwhisk-activation-id", activation_id)
        if record is None:
            self.send_json({"activationId": activation_id}, 202)
            return
        self.send_record(record, result_only)

    def _wait_ms(self) -> int:
        max_wait = self.faas.ranges.max_wait
        value = self.get_query_argument("timeout", None)
        if value is None:
            return max_wait
        try:
            wait = int(value)
        except ValueError:
            wait = 0
        if not 0 < wait <= max_wait:
            raise BadRequest(f"Timeout must be number of milliseconds up to {max_wait}.")
        return wait

    def send_record(self, record: dict, result_only: bool) -> None:
        """Answer a finished blocking invoke: 200, 502 (failed, no ``code``) or 500."""
        response = record["response"]
        status = STATUS_FOR_CODE[response["statusCode"]]
        result = response["result"]
        body = result if result_only or isinstance(result, list) else activation_extended(record)
        self.send_json(body, status)


default_handlers = [
    (r"/api/v1/namespaces/([^/]+)/actions/?", ActionListHandler),
    (r"/api/v1/namespaces/([^/]+)/actions/([^/]+)/", ActionListHandler),
    (r"/api/v1/namespaces/([^/]+)/actions/([^/]+(?:/[^/]+)?)", ActionHandler),
]

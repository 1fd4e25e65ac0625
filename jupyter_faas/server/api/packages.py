"""``/api/v1/namespaces/{ns}/packages``: packages, bindings and sharing.

A package with ``publish: true`` can be read, listed and bound from any
namespace, and its actions invoked; a binding (``binding: {namespace, name}``)
is a package in the caller's namespace that stands for another package with
extra parameters. ``GET /namespaces/_/packages?public=true`` lists the caller's
packages and the published ones of every other namespace ("Include publicly
shared entities in the result", as OpenWhisk's API description words it): how
people find what others share.
"""

from __future__ import annotations

import json
import sqlite3

from ..entities import Identity, check_name, check_params_size, package_summary
from ..errors import NOT_ENTITLED, BadRequest, Conflict, Forbidden, NotFound
from ..store import queries
from . import crud
from .base import BaseHandler


def _published_elsewhere(conn: sqlite3.Connection, namespace: str) -> list[dict]:
    """The published packages of every namespace but ``namespace``, newest first."""
    rows = conn.execute(
        "SELECT doc FROM entities WHERE collection = 'packages' AND namespace != ? "
        "ORDER BY updated DESC, rowid DESC",
        (namespace,),
    )
    docs = (json.loads(row["doc"]) for row in rows)
    return [doc for doc in docs if doc.get("publish") and not doc.get("binding")]


async def not_shared(faas, identity: Identity, namespace: str, name: str) -> str:
    """Why ``identity`` may not reach action ``namespace/name``, naming the package and owner.

    The 403 of an invoke says which package is not (or no longer) published by whom,
    following a binding to the package it stands for, so the caller knows whom to ask.
    """
    pkg, _, action = name.rpartition("/")
    owner = namespace
    if pkg and namespace == identity.namespace:
        found = await faas.activator.entity(namespace, pkg, "packages")
        if found and found.get("binding"):
            owner, pkg = found["binding"]["namespace"], found["binding"]["name"]
    if owner == identity.namespace:
        return NOT_ENTITLED
    if not pkg:
        return (
            f"{NOT_ENTITLED} Action {action} of namespace {owner} is not in a package, so it "
            f"is not shared: {owner} can publish it in a package (publish: true)."
        )
    return (
        f"{NOT_ENTITLED} Package {pkg} of namespace {owner} is not published (any more), "
        f"so its action {action} cannot be used from namespace {identity.namespace}: "
        f"ask {owner} to publish it again, or use a copy of your own."
    )


def _contents(actions: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(actions, feeds)`` of a package GET: ``[{name, version, annotations}]`` each."""
    plain: list[dict] = []
    feeds: list[dict] = []
    for action in actions:
        annotations = action.get("annotations", [])
        brief = {"name": action["name"], "version": action["version"], "annotations": annotations}
        is_feed = any(a["key"] == "feed" for a in annotations)
        (feeds if is_feed else plain).append(brief)
    return plain, feeds


class PackageListHandler(BaseHandler):
    """``GET .../packages``: all of the caller's (with ``public=true`` also every other
    namespace's published ones), or the published ones of another namespace."""

    async def get(self, namespace: str) -> None:
        identity = await self.authenticate()
        namespace = self.namespace_for(namespace, identity)
        limit, skip, count = self.list_args("packages")
        docs = await self.faas.db.read(queries.list_entities, namespace, "packages")
        if namespace != identity.namespace:
            docs = [d for d in docs if d.get("publish")]
        elif self.bool_arg("public"):
            docs += await self.faas.db.read(_published_elsewhere, namespace)
        if count:
            self.send_json({"packages": len(docs)})
            return
        self.send_json([package_summary(d) for d in docs[skip : skip + limit]])


class PackageHandler(BaseHandler):
    """``/packages/{name}``: PUT (package or binding), GET (with contents), DELETE."""

    def body_limit(self) -> int:
        return 4 * self.faas.ranges.max_payload

    async def get(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.namespace_for(namespace, identity)
        doc = await self.faas.activator.package(identity, namespace, check_name(name))
        contents_ns, contents_pkg = namespace, name
        if doc.get("binding"):
            bound = doc["binding"]
            owner = identity if namespace == identity.namespace else None
            if owner is None:
                raise Forbidden(
                    "The supplied authentication is not authorized to access this resource."
                )
            bound_doc = await self.faas.activator.package(owner, bound["namespace"], bound["name"])
            contents_ns, contents_pkg = bound["namespace"], bound["name"]
            doc = {
                **doc,
                "parameters": [*(bound_doc.get("parameters") or []), *doc.get("parameters", [])],
            }
        actions = await self.faas.db.read(
            queries.list_entities, contents_ns, "actions", None, 0, f"{contents_pkg}/"
        )
        doc["actions"], doc["feeds"] = _contents(actions)
        self.send_json(doc)

    async def put(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        if name == "default":
            raise BadRequest("Package name 'default' is reserved.")
        ranges = self.faas.ranges
        body = self.json_body(4 * ranges.max_payload)
        if body.get("parameters") is not None:
            check_params_size(body["parameters"], ranges)
        binding = await self._binding(identity, namespace, body.get("binding"))

        def build(conn: sqlite3.Connection, old: dict | None) -> dict:
            if old is not None and binding and not old.get("binding"):
                raise BadRequest(f"Package {name} is not a binding and cannot become one.")
            if old is not None and binding is None and body.get("binding") is None:
                new_binding = old.get("binding") or {}
            else:
                new_binding = binding or {}
            if new_binding and queries.count_entities(conn, namespace, "actions", f"{name}/"):
                raise BadRequest(f"Package {name} holds actions and cannot become a binding.")
            doc = crud.meta(old, body, namespace, name, ranges.max_payload)
            doc["parameters"] = crud.parameters(old, body)
            doc["binding"] = new_binding
            return doc

        overwrite = self.bool_arg("overwrite")
        self.send_json(await crud.save(self.faas.db, namespace, name, "packages", overwrite, build))

    async def _binding(self, identity, namespace: str, value) -> dict | None:
        if value is None or value == {}:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise BadRequest(
                'The request content was malformed: \'binding\' must be {"namespace", "name"}.'
            )
        bound_ns = value.get("namespace") or "_"
        bound_ns = namespace if bound_ns == "_" else check_name(bound_ns)
        bound_name = check_name(value["name"])
        try:
            bound = await self.faas.activator.package(identity, bound_ns, bound_name)
        except NotFound:
            raise BadRequest(
                f"Binding refers to package /{bound_ns}/{bound_name}, which does not exist."
            ) from None
        if bound.get("binding"):
            raise BadRequest("Cannot bind to another package binding.")
        return {"namespace": bound_ns, "name": bound_name}

    async def delete(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        force = self.bool_arg("force")
        prefix = f"{name}/"

        def also(conn: sqlite3.Connection, doc: dict) -> None:
            inside = queries.count_entities(conn, namespace, "actions", prefix)
            if inside and not force:
                raise Conflict(
                    f"Package not empty (contains {inside} "
                    f"{'entity' if inside == 1 else 'entities'}). "
                    "Set force param or delete package contents."
                )
            queries.delete_prefix(conn, namespace, prefix)

        self.send_json(await crud.remove(self.faas.db, namespace, name, "packages", also))


default_handlers = [
    (r"/api/v1/namespaces/([^/]+)/packages/?", PackageListHandler),
    (r"/api/v1/namespaces/([^/]+)/packages/([^/]+)", PackageHandler),
]

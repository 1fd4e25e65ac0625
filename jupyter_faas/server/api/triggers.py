"""``/api/v1/namespaces/{ns}/triggers`` and ``/rules``: CRUD, firing, rule state.

As in OpenWhisk, a trigger document carries its rules (``rules``: map of
``ns/rule`` → ``{action, status}``); a rule's status is read from there, so a
rule whose trigger is gone reports ``inactive``.
"""

from __future__ import annotations

import sqlite3

from ..entities import (
    check_name,
    check_params_size,
    rule_summary,
    split_path,
    trigger_summary,
)
from ..errors import NOT_FOUND, BadRequest, NotFound
from ..store import queries
from . import crud
from .base import BaseHandler

RULE_STATES = ("active", "inactive")


def _path_name(fq: str) -> dict:
    """``/ns/[pkg/]name`` → ``{"path": "ns[/pkg]", "name": "name"}``."""
    path, _, name = fq[1:].rpartition("/")
    return {"path": path, "name": name}


class ListHandler(BaseHandler):
    """``GET .../triggers`` and ``GET .../rules``."""

    async def get(self, namespace: str, collection: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        limit, skip, count = self.list_args(collection)
        db = self.faas.db
        if count:
            self.send_json(
                {collection: await db.read(queries.count_entities, namespace, collection)}
            )
            return
        docs = await db.read(queries.list_entities, namespace, collection, limit, skip)
        if collection == "triggers":
            self.send_json([trigger_summary(doc) for doc in docs])
            return
        out = []
        for doc in docs:
            doc["status"] = await rule_status(db, namespace, doc)
            out.append(rule_summary(doc))
        self.send_json(out)


async def rule_status(db, namespace: str, rule: dict) -> str:
    """A rule's state, read from its trigger's document (``inactive`` if the trigger is gone)."""
    trigger = rule["trigger"]
    found = await db.read(queries.get_entity, trigger["path"], trigger["name"])
    if found is None or found[0] != "triggers":
        return "inactive"
    link = (found[1].get("rules") or {}).get(f"{namespace}/{rule['name']}")
    return link["status"] if link else "inactive"


class TriggerHandler(BaseHandler):
    """``/triggers/{name}``: PUT, GET, DELETE, and POST to fire."""

    def body_limit(self) -> int:
        ranges = self.faas.ranges
        return 4 * ranges.max_payload if self.request.method == "PUT" else ranges.max_payload

    async def get(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        doc = await self.faas.activator.entity(namespace, check_name(name), "triggers")
        if doc is None:
            raise NotFound(NOT_FOUND)
        self.send_json(doc)

    async def put(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        ranges = self.faas.ranges
        body = self.json_body(4 * ranges.max_payload)
        if body.get("parameters") is not None:
            check_params_size(body["parameters"], ranges)

        def build(conn: sqlite3.Connection, old: dict | None) -> dict:
            doc = crud.meta(old, body, namespace, name, ranges.max_payload)
            doc["parameters"] = crud.parameters(old, body)
            doc["limits"] = {}
            for item in doc["annotations"]:
                if item["key"] == "feed":
                    try:
                        split_path(str(item["value"]), namespace)
                    except BadRequest:
                        raise BadRequest("Feed name is not valid") from None
            if old and old.get("rules"):
                doc["rules"] = old["rules"]
            return doc

        overwrite = self.bool_arg("overwrite")
        self.send_json(await crud.save(self.faas.db, namespace, name, "triggers", overwrite, build))

    async def delete(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        self.send_json(await crud.remove(self.faas.db, namespace, name, "triggers"))

    async def post(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        payload = self.json_body(self.faas.ranges.max_payload)
        doc = await self.faas.activator.entity(namespace, check_name(name), "triggers")
        if doc is None:
            raise NotFound(NOT_FOUND)
        self.faas.fire_throttle.admit(identity.namespace)
        headers = {k.lower(): v for k, v in self.request.headers.items()}
        headers.pop("authorization", None)
        activation_id = await self.faas.activator.fire(identity, doc, payload, headers)
        if activation_id is None:
            self.set_status(204)
            self.clear_header("Content-Type")
            self.finish()
            return
        self.set_header("x-openwhisk-activation-id", activation_id)
        self.send_json({"activationId": activation_id}, 202)


class RuleHandler(BaseHandler):
    """``/rules/{name}``: PUT, GET, DELETE, and POST to enable or disable."""

    async def get(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        doc = await self.faas.activator.entity(namespace, check_name(name), "rules")
        if doc is None:
            raise NotFound(NOT_FOUND)
        doc["status"] = await rule_status(self.faas.db, namespace, doc)
        self.send_json(doc)

    async def put(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        body = self.json_body(self.faas.ranges.max_payload)
        trigger_ref, action_ref = body.get("trigger"), body.get("action")
        if not isinstance(trigger_ref, str) or not isinstance(action_ref, str):
            raise BadRequest("rule requires a valid trigger and a valid action")
        trigger_ns, trigger_name = split_path(trigger_ref, namespace)
        action_ns, action_name = split_path(action_ref, namespace)
        if trigger_ns != namespace or "/" in trigger_name:
            raise BadRequest(f"Trigger {trigger_ref} must be in the rule's namespace {namespace}.")
        try:
            await self.faas.activator.resolve(identity, action_ns, action_name)
        except NotFound:
            raise BadRequest(f"Action /{action_ns}/{action_name} does not exist.") from None
        trigger = {"path": namespace, "name": trigger_name}
        action = _path_name(f"/{action_ns}/{action_name}")
        rule_key = f"{namespace}/{name}"

        def build(conn: sqlite3.Connection, old: dict | None) -> dict:
            found = queries.get_entity(conn, namespace, trigger_name)
            if found is None or found[0] != "triggers":
                raise BadRequest(f"Trigger /{namespace}/{trigger_name} does not exist.")
            if old is not None and old["trigger"] != trigger:
                _unlink(conn, old["trigger"], rule_key)
            new_trigger = found[1]
            rules = dict(new_trigger.get("rules") or {})
            rules[rule_key] = {"action": action, "status": "active"}
            new_trigger["rules"] = rules
            queries.put_entity(conn, namespace, trigger_name, "triggers", new_trigger)
            doc = crud.meta(old, body, namespace, name, self.faas.ranges.max_payload)
            doc.update({"trigger": trigger, "action": action})
            return doc

        overwrite = self.bool_arg("overwrite")
        doc = await crud.save(self.faas.db, namespace, name, "rules", overwrite, build)
        self.send_json({**doc, "status": "active"})

    async def delete(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        rule_key = f"{namespace}/{name}"

        def also(conn: sqlite3.Connection, doc: dict) -> None:
            _unlink(conn, doc["trigger"], rule_key)

        doc = await crud.remove(self.faas.db, namespace, name, "rules", also)
        self.send_json({**doc, "status": "inactive"})

    async def post(self, namespace: str, name: str) -> None:
        identity = await self.authenticate()
        namespace = self.own_namespace(namespace, identity)
        check_name(name)
        body = self.json_body(self.faas.ranges.max_payload)
        status = body.get("status")
        if status not in RULE_STATES:
            raise BadRequest(
                f"'{status}' is not a recognized rule state, must be one of ['active', 'inactive']"
            )
        rule_key = f"{namespace}/{name}"

        def write(conn: sqlite3.Connection) -> None:
            found = queries.get_entity(conn, namespace, name)
            if found is None or found[0] != "rules":
                raise NotFound(NOT_FOUND)
            rule = found[1]
            trigger = queries.get_entity(conn, rule["trigger"]["path"], rule["trigger"]["name"])
            if trigger is None or trigger[0] != "triggers":
                raise NotFound("Only rules with existing triggers can be activated")
            doc = trigger[1]
            rules = dict(doc.get("rules") or {})
            rules[rule_key] = {"action": rule["action"], "status": status}
            doc["rules"] = rules
            queries.put_entity(
                conn, rule["trigger"]["path"], rule["trigger"]["name"], "triggers", doc
            )

        await self.faas.db.write(write)
        self.set_status(200)
        self.finish()


def _unlink(conn: sqlite3.Connection, trigger: dict, rule_key: str) -> None:
    """Remove ``rule_key`` from a trigger's rules (no-op when the trigger is gone)."""
    found = queries.get_entity(conn, trigger["path"], trigger["name"])
    if found is None or found[0] != "triggers":
        return
    doc = found[1]
    rules = dict(doc.get("rules") or {})
    if rules.pop(rule_key, None) is None:
        return
    if rules:
        doc["rules"] = rules
    else:
        doc.pop("rules", None)
    queries.put_entity(conn, trigger["path"], trigger["name"], "triggers", doc)


default_handlers = [
    (r"/api/v1/namespaces/([^/]+)/(triggers|rules)/?", ListHandler),
    (r"/api/v1/namespaces/([^/]+)/triggers/([^/]+)", TriggerHandler),
    (r"/api/v1/namespaces/([^/]+)/rules/([^/]+)", RuleHandler),
]

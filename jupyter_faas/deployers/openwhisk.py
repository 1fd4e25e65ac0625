"""``OpenWhiskDeployer``: functions as OpenWhisk blackbox actions, over the OpenWhisk REST API.

The default deployer. It speaks only the documented REST API, so it works
against our single-machine server and a real Apache OpenWhisk alike. A
function is a blackbox action (its dependency image from the registry plus its
code, which reaches the containers through ``/init``); a schedule is an alarm
trigger plus a rule, as ``wsk`` would create them.
"""

from __future__ import annotations

import hashlib
import time

from traitlets import Instance, default

from ..builders import PushedImage
from ..bundle import Bundle, check_name
from ..errors import ServerError
from ..runtime import protocol
from .interface import (
    STATUSES,
    Accepted,
    ActivationRecord,
    DeployedFunction,
    Deployment,
    FaaSDeployer,
    Schedule,
)
from .openwhisk_rest import ALARM_FEED, OpenWhiskClient

#: Trigger annotation marking the schedules this deployer made.
SCHEDULE_ANNOTATION = "jupyter-faas-schedule"
#: OpenWhisk's response.status words, as our status names.
_STATUS_WORDS = {
    "success": "success",
    "application error": "application error",
    "action developer error": "developer error",
    "whisk internal error": "internal error",
}


class OpenWhiskDeployer(FaaSDeployer):
    """Deploys to an OpenWhisk REST API (``c.OpenWhiskClient.api_host`` and ``.auth``)."""

    client = Instance(OpenWhiskClient, help="The OpenWhisk REST client (c.OpenWhiskClient).")

    @default("client")
    def _client_default(self):
        return OpenWhiskClient(parent=self.parent or self)

    @property
    def location(self) -> str:
        return self.client.api_host

    def deploy(self, bundle: Bundle, image: PushedImage) -> Deployment:
        code = bundle.init_value()
        meta = bundle.metadata
        action = self.client.put_action(
            bundle.name,
            {
                "exec": {
                    "kind": "blackbox",
                    "image": image.ref,
                    "code": code["code"],
                    "main": meta.handler,
                    "binary": code["binary"],
                },
                "limits": {"timeout": int(meta.timeout_s * 1000), "memory": meta.memory_mb},
                "annotations": [
                    {
                        "key": protocol.FAAS_ANNOTATION,
                        "value": {"source_sha256": bundle.code_sha256()},
                    }
                ],
            },
        )
        return Deployment(
            name=bundle.name,
            server=self.client.api_host,
            namespace=action.get("namespace"),
            version=action.get("version"),
            image=image.ref,
            digest=image.digest,
            code_sha256=bundle.code_sha256(),
            time=time.time(),
        )

    def invoke(self, name: str, params: dict, blocking: bool = True) -> ActivationRecord | Accepted:
        _, body = self.client.invoke(check_name(name), params, blocking=blocking)
        if "response" not in body:
            return Accepted(body.get("activationId", ""))
        return activation_record(body)

    def activation(self, activation_id: str) -> ActivationRecord:
        return activation_record(self.client.get_activation(activation_id))

    def activations(self, name: str | None = None, limit: int = 30) -> list[ActivationRecord]:
        return [activation_record(r) for r in self.client.list_activations(name, limit)]

    def schedule(self, name: str, cron: str, payload: dict | None = None) -> str:
        check_name(name)
        self.client.get_action(name)
        trigger = f"{name}-cron-{hashlib.sha256(cron.encode()).hexdigest()[:8]}"
        self.client.put_trigger(
            trigger,
            [
                {"key": "feed", "value": ALARM_FEED},
                {"key": SCHEDULE_ANNOTATION, "value": {"action": name, "cron": cron}},
            ],
        )
        try:
            self.client.alarm_feed("CREATE", trigger, cron=cron, trigger_payload=payload or {})
        except ServerError:
            self.client.delete_trigger(trigger)
            raise
        self.client.put_rule(_rule_name(trigger), trigger, name)
        return trigger

    def schedules(self, name: str | None = None) -> list[Schedule]:
        found = []
        for trigger in self.client.list_triggers():
            mark = protocol.annotation(trigger, SCHEDULE_ANNOTATION)
            if isinstance(mark, dict) and (name is None or mark.get("action") == name):
                found.append(Schedule(trigger["name"], mark.get("action"), mark.get("cron")))
        return found

    def unschedule(self, name: str, cron: str | None = None) -> list[str]:
        removed = []
        for entry in self.schedules(check_name(name)):
            if cron is not None and entry.cron != cron:
                continue
            steps = (
                (self.client.delete_rule, (_rule_name(entry.trigger),)),
                (self.client.alarm_feed, ("DELETE", entry.trigger)),
                (self.client.delete_trigger, (entry.trigger,)),
            )
            for call, args in steps:
                try:
                    call(*args)
                except ServerError as err:
                    if err.status != 404:  # already gone counts as removed
                        raise
            removed.append(entry.trigger)
        return removed

    def functions(self) -> list[DeployedFunction]:
        return [_deployed(action) for action in self.client.list_actions()]

    def function(self, name: str) -> DeployedFunction:
        return _deployed(self.client.get_action(check_name(name)))

    def delete(self, name: str) -> None:
        self.unschedule(name)
        self.client.delete_action(check_name(name))


def activation_record(record: dict) -> ActivationRecord:
    """An OpenWhisk activation (full record or list item) as a neutral record."""
    response = record.get("response") or {}
    code = record.get("statusCode", response.get("statusCode"))
    if isinstance(code, int) and 0 <= code < len(STATUSES):
        status = STATUSES[code]
    elif response.get("status"):
        status = _STATUS_WORDS.get(response["status"], response["status"])
    else:
        status = "running"
    init_ms = protocol.annotation(record, "initTime")
    return ActivationRecord(
        activation_id=record.get("activationId", ""),
        name=record.get("name", ""),
        status=status,
        start_ms=record.get("start"),
        duration_ms=record.get("duration"),
        cold=init_ms is not None,
        result=response.get("result"),
        logs=list(record.get("logs") or []),
        wait_ms=protocol.annotation(record, "waitTime"),
        init_ms=init_ms,
        version=record.get("version"),
    )


def _deployed(action: dict) -> DeployedFunction:
    return DeployedFunction(
        name=action["name"],
        version=action.get("version"),
        updated_ms=action.get("updated"),
        namespace=action.get("namespace"),
    )


def _rule_name(trigger: str) -> str:
    """Rules and triggers share one name space in OpenWhisk, so the rule gets a suffix."""
    return f"{trigger}-rule"

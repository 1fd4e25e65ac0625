"""The ``/whisk.system/alarms`` feed package, run inside the server.

OpenWhisk ships alarms as a separate provider service; here the three feed
actions (``alarm`` for cron schedules, ``interval`` for every N minutes,
``once`` for a single date) are built-in actions of the server and a small
in-process scheduler fires the triggers, through the same code path as
``POST /triggers/{name}``. Alarms are stored in SQLite, so they survive
restarts; fire times missed while the server was down are not caught up
(the next fire is computed from the restart time).

Differences from the OpenWhisk provider, on purpose: fires happen exactly at
the scheduled second (``strict`` is accepted and ignored), and 6-field cron
patterns (seconds first) are refused unless the operator allows them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .activator import Activator
from .entities import BUILTIN_KIND, Identity, now_ms, split_path
from .errors import WhiskError
from .pool.types import APPLICATION_ERROR, SUCCESS
from .store import Database, queries
from .store.keys import verify_key

SYSTEM_NAMESPACE = "whisk.system"
PACKAGE = "alarms"
FEEDS = {
    "alarm": [],
    "interval": [{"key": "isInterval", "value": True}],
    "once": [{"key": "fireOnce", "value": True}],
}
EVENTS = ("CREATE", "READ", "UPDATE", "DELETE")
INTERVAL_DEFAULT_DELAY_MS = 30000


class FeedError(Exception):
    """A feed invocation the alarms package refuses (becomes an application error)."""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


def _date(value: Any, name: str) -> int:
    """Epoch ms from an epoch-ms number or an ISO-8601 string."""
    if isinstance(value, bool):
        raise FeedError(f"{name} parameter '{value}' is not a valid Date")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise FeedError(f"{name} parameter '{value}' is not a valid Date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp() * 1000)
    raise FeedError(f"{name} parameter '{value}' is not a valid Date")


def next_fire(config: dict, after_ms: int) -> int | None:
    """The first fire time strictly after ``after_ms`` (epoch ms), or None if there is none."""
    kind = config["kind"]
    start = config.get("startDate")
    if kind == "once":
        nxt = config["date"] if config["date"] > after_ms else None
    elif kind == "interval":
        period = config["minutes"] * 60000
        if after_ms < start:
            nxt = start
        else:
            nxt = start + (math.floor((after_ms - start) / period) + 1) * period
    else:
        base = max(after_ms, (start or 0) - 1)
        tz = ZoneInfo(config.get("timezone") or "UTC")
        begin = datetime.fromtimestamp(base / 1000, tz)
        six = len(config["cron"].split()) == 6
        nxt = int(croniter(config["cron"], begin, second_at_beginning=six).get_next(float) * 1000)
    stop = config.get("stopDate")
    if nxt is not None and stop is not None and nxt > stop:
        return None
    return nxt


def _payload(params: dict) -> dict:
    payload = params.get("trigger_payload", "")
    if isinstance(payload, str):
        return {"payload": payload}
    if isinstance(payload, dict):
        return payload
    raise FeedError("trigger_payload must be a string or a JSON object")


def build_config(kind: str, params: dict, allow_seconds: bool, now: int) -> dict:
    """Validate feed parameters into a stored alarm configuration.

    Raises:
        FeedError: with the alarms package's message for the first problem.
    """
    config: dict[str, Any] = {"kind": kind, "payload": _payload(params)}
    if params.get("startDate") is not None:
        config["startDate"] = _date(params["startDate"], "startDate")
    if params.get("stopDate") is not None:
        config["stopDate"] = _date(params["stopDate"], "stopDate")
        if config["stopDate"] <= config.get("startDate", now):
            raise FeedError(
                f"stopDate parameter '{params['stopDate']}' must be greater than the startDate"
            )
    if kind == "once":
        if params.get("date") is None:
            raise FeedError("alarms once trigger feed is missing the date parameter")
        config["date"] = _date(params["date"], "date")
        if config["date"] <= now:
            raise FeedError(f"date parameter '{params['date']}' must be in the future")
        delete = params.get("deleteAfterFire", False)
        if str(delete).lower() not in ("false", "true", "rules"):
            raise FeedError("deleteAfterFire parameter must be one of false, true or rules")
        config["deleteAfterFire"] = str(delete).lower()
        config.pop("stopDate", None)
    elif kind == "interval":
        minutes = params.get("minutes")
        if minutes is None:
            raise FeedError("interval trigger feed is missing the minutes parameter")
        if isinstance(minutes, str) and minutes.strip().isdigit():
            minutes = int(minutes)
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise FeedError("the minutes parameter must be a positive integer")
        config["minutes"] = minutes
        config.setdefault("startDate", now + INTERVAL_DEFAULT_DELAY_MS)
    else:
        cron = params.get("cron")
        if not cron:
            raise FeedError("alarms trigger feed is missing the cron parameter")
        fields = str(cron).split()
        if len(fields) == 6 and not allow_seconds:
            raise FeedError(
                "cron pattern is limited to 5 fields with 1 minute as the finest granularity"
            )
        if len(fields) not in (5, 6) or not croniter.is_valid(
            str(cron), second_at_beginning=len(fields) == 6
        ):
            raise FeedError(f"cron pattern '{cron}' is not valid")
        config["cron"] = str(cron)
        zone = params.get("timezone")
        if zone:
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                raise FeedError("Invalid timezone.") from None
            config["timezone"] = str(zone)
        max_triggers = params.get("maxTriggers")
        if max_triggers is not None:
            if "stopDate" in config:
                raise FeedError(
                    "maxTriggers is not allowed when the stopDate parameter is specified"
                )
            if isinstance(max_triggers, bool) or not isinstance(max_triggers, int):
                raise FeedError("maxTriggers must be an integer (-1 for no limit)")
            config["maxTriggers"] = max_triggers
        config["strict"] = str(params.get("strict", False)).lower() == "true"
    if next_fire(config, now) is None:
        raise FeedError("the first scheduled trigger fire is not until after the stop date")
    return config


class AlarmService:
    """The alarm feed actions and the scheduler that fires their triggers.

    Args:
        db: The server database.
        activator: Fires triggers and hosts the built-in feed actions.
        allow_seconds: Accept 6-field cron patterns (seconds first).
        log: Logger to report to (default: this module's).
    """

    def __init__(
        self,
        db: Database,
        activator: Activator,
        allow_seconds: bool = False,
        log: logging.Logger | None = None,
        keys: Any = None,
        fire_throttle: Any = None,
        max_alarms: int = 0,
    ):
        self.log = log or logging.getLogger(__name__)
        #: What checks keys: the FunctionServer (``check_key``, ``known_key``); None
        #: checks against the database directly.
        self.keys = keys
        #: MinuteThrottle of trigger fires (alarm fires count like POST /triggers); or None.
        self.fire_throttle = fire_throttle
        #: Most alarms per namespace; 0: no limit.
        self.max_alarms = max_alarms
        self.db = db
        self.activator = activator
        self.allow_seconds = allow_seconds
        self._alarms: dict[tuple[str, str], dict] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        for feed in FEEDS:
            activator.builtins[f"{SYSTEM_NAMESPACE}/{PACKAGE}/{feed}"] = self._handler(feed)

    def _handler(self, kind: str):
        async def feed(identity: Identity, params: dict) -> tuple[int, Any]:
            try:
                return SUCCESS, await self.lifecycle(kind, params)
            except FeedError as err:
                return APPLICATION_ERROR, {"error": str(err)}

        return feed

    # -- catalog ----------------------------------------------------------------------

    @staticmethod
    def catalog(now: int) -> list[tuple[str, str, dict]]:
        """``(collection, name, doc)`` of the alarms package and its feed actions."""
        meta = {"namespace": SYSTEM_NAMESPACE, "version": "0.0.1", "publish": True, "updated": now}
        package = {
            **meta,
            "name": PACKAGE,
            "binding": {},
            "parameters": [{"key": "trigger_payload", "value": ""}],
            "annotations": [
                {"key": "description", "value": "Alarms and periodic utility"},
                {"key": "parameters", "value": [{"name": "trigger_payload", "required": False}]},
            ],
        }
        docs = [("packages", PACKAGE, package)]
        for feed, params in FEEDS.items():
            action = {
                **meta,
                "namespace": f"{SYSTEM_NAMESPACE}/{PACKAGE}",
                "name": feed,
                "exec": {"kind": BUILTIN_KIND, "binary": False},
                "parameters": params,
                "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
                "annotations": [
                    {"key": "feed", "value": True},
                    {"key": "exec", "value": BUILTIN_KIND},
                    {"key": "provide-api-key", "value": False},
                ],
            }
            docs.append(("actions", f"{PACKAGE}/{feed}", action))
        return docs

    # -- feed lifecycle ---------------------------------------------------------------

    async def _owner(self, params: dict) -> tuple[Identity, str, str]:
        auth = params.get("authKey")
        trigger_name = params.get("triggerName")
        if not isinstance(trigger_name, str) or not trigger_name:
            raise FeedError("alarms trigger feed is missing the triggerName parameter")
        if not isinstance(auth, str) or ":" not in auth:
            raise FeedError("alarms trigger feed is missing the authKey parameter")
        uuid, _, key = auth.partition(":")
        namespace = await self._check_key(uuid, key)
        if namespace is None:
            raise FeedError("The supplied authKey is invalid")
        owner = Identity(namespace, uuid, key)
        try:
            namespace, name = split_path(trigger_name, owner.namespace)
        except WhiskError:
            raise FeedError(f"triggerName '{trigger_name}' is not a valid trigger name") from None
        if namespace != owner.namespace or "/" in name:
            raise FeedError(f"The supplied authKey is not authorized for trigger {trigger_name}")
        return owner, namespace, name

    async def _check_key(self, uuid: str, key: str) -> str | None:
        """The namespace whose key ``uuid:key`` is, or None (constant-time comparison)."""
        if self.keys is not None:
            return await self.keys.check_key(uuid, key)
        subject = await self.db.read(queries.subject_digest, uuid)
        return subject[0] if subject and verify_key(subject[1], key) else None

    async def lifecycle(self, kind: str, params: dict) -> dict:
        """Handle one feed invocation (``lifecycleEvent`` CREATE, READ, UPDATE or DELETE).

        Raises:
            FeedError: invalid parameters, unknown trigger, missing alarm.
        """
        event = str(params.get("lifecycleEvent", "")).upper()
        if event not in EVENTS:
            raise FeedError(f"lifecycleEvent must be one of {', '.join(EVENTS)}")
        owner, namespace, name = await self._owner(params)
        stored = await self.db.read(queries.get_alarm, namespace, name)
        label = f"/{namespace}/{name}"
        if event in ("READ", "UPDATE", "DELETE") and stored is None:
            raise FeedError(f"could not find trigger {label} in the database")
        if event == "READ":
            config = {"name": name, "namespace": namespace, **stored["config"]}
            return {"config": config, "status": stored["status"]}
        if event == "DELETE":
            await self.db.write(queries.delete_alarm, namespace, name)
            self._alarms.pop((namespace, name), None)
            self._wake.set()
            return {"status": "success"}
        found = await self.db.read(queries.get_entity, namespace, name)
        if found is None or found[0] != "triggers":
            raise FeedError(
                f"Trigger {label} does not exist or cannot be accessed with the authKey"
            )
        if event == "CREATE" and stored is not None:
            raise FeedError(f"trigger {label} already has an alarm; delete it first")
        if event == "CREATE" and self.max_alarms:
            count = await self.db.read(queries.count_alarms, namespace)
            if count >= self.max_alarms:
                raise FeedError(
                    f"namespace {namespace} has {count} alarms, the most allowed "
                    f"(c.FunctionServer.max_alarms_per_namespace = {self.max_alarms}); delete "
                    "an alarm trigger first, or ask the server's operator to raise the limit"
                )
        if event == "UPDATE":
            merged = {**stored["config"], **{k: v for k, v in params.items() if v is not None}}
            # "" is the package's default trigger_payload: it means "not given" here.
            if params.get("trigger_payload") in (None, ""):
                merged["trigger_payload"] = stored["config"]["payload"]
            params = merged
        now = now_ms()
        config = build_config(kind, params, self.allow_seconds, now)
        status = {"active": True, "dateChanged": now, "dateChangedISO": _iso(now)}
        await self.db.write(queries.put_alarm, namespace, name, owner.uuid, config, status)
        self._schedule(namespace, name, owner.uuid, config, status, now)
        return {"status": "success"}

    # -- scheduler --------------------------------------------------------------------

    def _schedule(
        self, namespace: str, trigger: str, owner: str, config: dict, status: dict, now: int
    ) -> None:
        entry = {"owner": owner, "config": config, "status": status, "fired": 0}
        entry["next"] = next_fire(config, now) if status.get("active") else None
        self._alarms[(namespace, trigger)] = entry
        self._wake.set()

    async def start(self) -> None:
        """Load the stored alarms and start the scheduler task."""
        now = now_ms()
        for alarm in await self.db.read(queries.list_alarms):
            self._schedule(
                alarm["namespace"],
                alarm["trigger"],
                alarm["owner"],
                alarm["config"],
                alarm["status"],
                now,
            )
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop the scheduler; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            now = now_ms()
            for key, entry in list(self._alarms.items()):
                if entry["next"] is not None and entry["next"] <= now:
                    try:
                        await self._fire(key, entry, now)
                    except Exception:
                        self.log.exception("Alarm for /%s/%s failed to fire", *key)
            pending = [e["next"] for e in self._alarms.values() if e["next"] is not None]
            delay = min(max((min(pending, default=now + 60000) - now_ms()) / 1000, 0), 60)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _disable(self, key: tuple[str, str], entry: dict, reason: str) -> None:
        now = now_ms()
        entry["next"] = None
        entry["status"] = {
            "active": False,
            "dateChanged": now,
            "dateChangedISO": _iso(now),
            "reason": {"kind": "AUTO", "message": reason},
        }
        self.log.info("Alarm for /%s/%s disabled: %s", key[0], key[1], reason)
        await self.db.write(
            queries.put_alarm, key[0], key[1], entry["owner"], entry["config"], entry["status"]
        )

    async def _fire(self, key: tuple[str, str], entry: dict, now: int) -> None:
        namespace, name = key
        config = entry["config"]
        entry["next"] = next_fire(config, now)
        subject = await self.db.read(queries.subject_by_uuid, entry["owner"])
        if subject is None or subject[0] != namespace:
            # The namespace was deleted: forget the alarm (writing its status back would
            # bring its row back).
            self._alarms.pop(key, None)
            await self.db.write(queries.delete_alarm, namespace, name)
            self.log.info("Alarm for /%s/%s dropped: its namespace is gone", namespace, name)
            return
        trigger = await self.activator.entity(namespace, name, "triggers")
        if trigger is None:
            await self._disable(key, entry, f"Trigger /{namespace}/{name} no longer exists")
            return
        known = self.keys.known_key(entry["owner"]) if self.keys is not None else ""
        owner = Identity(subject[0], entry["owner"], known)
        try:
            if self.fire_throttle is not None:
                self.fire_throttle.admit(namespace)
        except WhiskError as err:
            self.log.warning("Alarm for /%s/%s skipped a fire: %s", namespace, name, err)
        else:
            await self.activator.fire(owner, trigger, dict(config["payload"]), {})
        entry["fired"] += 1
        max_triggers = config.get("maxTriggers", -1)
        if config["kind"] == "once":
            await self._after_once(key, entry, trigger)
        elif 0 <= max_triggers <= entry["fired"]:
            await self._disable(key, entry, f"Maximum allowed triggers ({max_triggers}) reached")
        elif entry["next"] is None:
            await self._disable(key, entry, "The stop date has passed")

    async def _after_once(self, key: tuple[str, str], entry: dict, trigger: dict) -> None:
        mode = entry["config"].get("deleteAfterFire", "false")
        if mode == "false":
            await self._disable(key, entry, "The one-time alarm has fired")
            return

        def delete(conn, namespace: str, name: str, rules: list[str]) -> None:
            for rule in rules:
                queries.delete_entity(conn, namespace, rule)
            queries.delete_entity(conn, namespace, name)
            queries.delete_alarm(conn, namespace, name)

        rules = []
        if mode == "rules":
            rules = [r.partition("/")[2] for r in trigger.get("rules") or {}]
        await self.db.write(delete, key[0], key[1], rules)
        self._alarms.pop(key, None)

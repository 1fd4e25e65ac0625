"""Turning invocations into activations: resolve, run, record, recover.

The :class:`Activator` is the one path every activation takes, whether it
comes from ``POST /actions/...``, a web action, a sequence, a rule fired by a
trigger or an alarm. It resolves the action (packages, bindings, sharing),
merges parameters, writes a ``pending`` row before anyone is told the
activation id, runs the action (in a container through the Invoker, in-process
for built-in feed actions, component by component for sequences), builds the
OpenWhisk activation record from the outcome and stores it.

Crash recovery (:meth:`Activator.recover`): pending rows whose run had not
started are re-run with the same activation id; rows whose run had started
are recorded as whisk internal errors, because the action may have had side
effects and must not silently run twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..errors import FaaSError
from ..runtime.faas_protocol import annotation
from .entities import (
    BUILTIN_KIND,
    NATIVE_IMAGES,
    PYTHON_KIND,
    Identity,
    LimitRanges,
    now_ms,
    params_dict,
)
from .errors import NOT_ENTITLED, NOT_FOUND, WRONG_COLLECTION, BadRequest, Conflict, Forbidden
from .errors import NotFound as NotFoundError
from .metrics import ServerMetrics
from .pool.types import WHISK_ERROR, ActivationJob, RunOutcome
from .store import Database, queries

#: A built-in action: ``(invoking identity, parameters) -> (status code, result)``.
Builtin = Callable[[Identity, dict], Awaitable[tuple[int, Any]]]

RESTARTED = "whisk internal error: server restarted during the activation"
DELETED = (
    "whisk internal error: the action was deleted while the server was down, before it could run"
)
INTERNAL_RUN_ERROR = "The activation could not be run because of an internal error."
MAX_SEQUENCE_DEPTH = 10


def new_activation_id() -> str:
    """32 lowercase hex characters, like OpenWhisk's activation ids.

    16 random bytes, as uuid4 has less two fixed version digits, without building
    a UUID object (a noticeable share of the event loop's time under load).
    """
    return secrets.token_hex(16)


@dataclass
class Target:
    """A resolved action, ready to run.

    Attributes:
        doc: The stored action document.
        namespace: Namespace holding the action (may differ from the caller's for shared packages).
        name: Stored name, ``pkg/name`` or ``name``.
        params: Package (and binding) parameters overlaid with the action's.
        init_keys: Names of parameters marked ``init``.
        binding: ``ns/pkg`` of the binding it was reached through, or None.
    """

    doc: dict
    namespace: str
    name: str
    params: dict
    init_keys: frozenset
    binding: str | None = None

    @property
    def path(self) -> str:
        """``ns/[pkg/]name``: the form of the ``path`` annotation."""
        return f"{self.namespace}/{self.name}"

    @property
    def kind(self) -> str:
        """The exec kind."""
        return self.doc["exec"]["kind"]


def _init_keys(*param_lists: list[dict] | None) -> frozenset:
    return frozenset(p["key"] for params in param_lists for p in params or [] if p.get("init"))


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class Activator:
    """Runs activations and stores their records.

    Args:
        db: The server database.
        invoker: Object with ``async run(ActivationJob) -> RunOutcome``.
        ranges: Limits (payload, result and wait sizes).
        python_image: Image that runs Python and native actions.
        max_running: Container activations allowed to run at once; others wait
            (and count as not started for crash recovery).
        log: Logger to report to (default: this module's).
        metrics: Where finished activations are counted (default: a registry of its own).
    """

    def __init__(
        self,
        db: Database,
        invoker: Any,
        ranges: LimitRanges,
        python_image: str,
        max_running: int = 64,
        log: logging.Logger | None = None,
        metrics: ServerMetrics | None = None,
    ):
        self.log = log or logging.getLogger(__name__)
        self.metrics = metrics or ServerMetrics()
        self.db = db
        self.invoker = invoker
        self.ranges = ranges
        self.python_image = python_image
        self.builtins: dict[str, Builtin] = {}
        self._slots = asyncio.Semaphore(max_running)
        self._tasks: set[asyncio.Task] = set()
        #: Activations with a pending row (non-blocking, or re-run after a crash).
        self._durable: set[str] = set()
        #: Activations whose record is being written (a pending row must not follow it).
        self._finishing: set[str] = set()

    # -- resolution -------------------------------------------------------------------

    async def entity(self, namespace: str, name: str, collection: str) -> dict | None:
        """The stored document, None if missing; 409 if the name is in another collection.

        A primary-key lookup on every invocation: read on the event loop (see
        :meth:`Database.read_sync`), not handed to a reader thread."""
        found = self.db.read_sync(queries.get_entity, namespace, name)
        if found is None:
            return None
        if found[0] != collection:
            raise Conflict(WRONG_COLLECTION)
        return found[1]

    async def package(self, identity: Identity, namespace: str, name: str) -> dict:
        """A package the caller may read: its own, or a published one elsewhere.

        Raises:
            Forbidden: another namespace's package that is missing or not published.
            NotFound: the caller's own package is missing.
        """
        doc = await self.entity(namespace, name, "packages")
        if namespace != identity.namespace:
            if doc is None or not doc.get("publish"):
                raise Forbidden(NOT_ENTITLED)
        elif doc is None:
            raise NotFoundError(NOT_FOUND)
        return doc

    async def resolve(self, identity: Identity, namespace: str, name: str) -> Target:
        """Find the action ``namespace/name`` (``name`` may be ``pkg/action``) for ``identity``.

        Actions outside the caller's namespace are reachable only inside published
        packages. A package binding is followed to the bound package, whose
        parameters the binding's own parameters override.

        Raises:
            Forbidden, NotFound, Conflict: with OpenWhisk's messages.
        """
        pkg, _, simple = name.rpartition("/")
        if not pkg:
            if namespace != identity.namespace:
                raise Forbidden(NOT_ENTITLED)
            doc = await self.entity(namespace, name, "actions")
            if doc is None:
                raise NotFoundError(NOT_FOUND)
            params = doc.get("parameters")
            return Target(doc, namespace, name, params_dict(params), _init_keys(params))
        pkg_doc = await self.package(identity, namespace, pkg)
        pkg_params = [*(pkg_doc.get("parameters") or [])]
        binding = None
        if pkg_doc.get("binding"):
            bound = pkg_doc["binding"]
            binding = f"{namespace}/{pkg}"
            owner = Identity(namespace, identity.uuid, identity.key)
            bound_doc = await self.package(owner, bound["namespace"], bound["name"])
            pkg_params = [*(bound_doc.get("parameters") or []), *pkg_params]
            namespace, pkg = bound["namespace"], bound["name"]
        stored = f"{pkg}/{simple}"
        doc = await self.entity(namespace, stored, "actions")
        if doc is None:
            raise NotFoundError(NOT_FOUND)
        action_params = doc.get("parameters") or []
        params = {**params_dict(pkg_params), **params_dict(action_params)}
        return Target(
            doc, namespace, stored, params, _init_keys(pkg_params, action_params), binding
        )

    def merge_payload(self, target: Target, payload: Any) -> Any:
        """Parameters for a run: the target's parameters overlaid with the payload.

        Raises:
            BadRequest: the action is ``final`` and the payload redefines its parameters.
        """
        if not isinstance(payload, dict):
            return payload
        if annotation(target.doc, "final") in (True, "true") and set(payload) & set(target.params):
            raise BadRequest(
                "Request defines parameters that are not allowed (e.g., reserved properties)."
            )
        return {**target.params, **payload}

    # -- invocation -------------------------------------------------------------------

    async def invoke(
        self,
        identity: Identity,
        target: Target,
        payload: dict,
        *,
        blocking: bool,
        wait_ms: int,
        cause: str | None = None,
    ) -> tuple[str, dict | None]:
        """Accept an activation, start it, and for blocking calls wait up to ``wait_ms``.

        A pending row is committed before the caller is given an activation id
        (at once for non-blocking calls; for blocking calls only if the wait runs
        out), so an accepted activation survives a crash. A blocking call that
        finishes in time costs no pending row: its caller gets the record itself.

        Returns:
            ``(activation_id, record)``: the stored record when it finished in
            time (blocking only), else None.
        """
        params = self.merge_payload(target, payload)
        activation_id = new_activation_id()
        job = {
            "subject": identity.uuid,
            "namespace": identity.namespace,
            "action": f"/{target.path}",
            "binding": target.binding,
            "payload": payload,
            "cause": cause,
        }
        if not blocking:
            await self.db.write(queries.add_pending, activation_id, job, now_ms())
            self._durable.add(activation_id)
            self._spawn(self._activate(identity, target, params, activation_id, cause))
            return activation_id, None
        task = self._spawn(self._activate(identity, target, params, activation_id, cause))
        try:
            record = await asyncio.wait_for(asyncio.shield(task), wait_ms / 1000)
        except asyncio.TimeoutError:
            # The caller now holds an id: make the running activation durable first, unless
            # its record is already on its way to the database (that write would come first).
            if activation_id not in self._finishing:
                await self.db.write(queries.add_pending, activation_id, job, now_ms(), True)
            return activation_id, None
        return activation_id, record

    def _spawn(self, coro: Awaitable[dict]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _activate(
        self, identity: Identity, target: Target, params: Any, activation_id: str, cause: str | None
    ) -> dict:
        """Run a pending activation and commit its record together with the pending row's removal."""
        in_flight = self.metrics.in_flight.labels(identity.namespace)
        in_flight.inc()
        try:
            return await self._activate_counted(identity, target, params, activation_id, cause)
        finally:
            in_flight.dec()

    async def _activate_counted(
        self, identity: Identity, target: Target, params: Any, activation_id: str, cause: str | None
    ) -> dict:
        try:
            record = await self.execute(identity, target, params, activation_id, cause)
        except asyncio.CancelledError:
            raise
        except FaaSError as err:
            # Written for people (e.g. "the Docker engine is not reachable"): safe to record.
            self.log.warning("Activation %s of /%s failed: %s", activation_id, target.path, err)
            record = self._failed_record(identity, target, activation_id, cause, str(err))
        except Exception:
            self.log.exception(
                "Activation %s of /%s failed inside the server", activation_id, target.path
            )
            record = self._failed_record(identity, target, activation_id, cause, INTERNAL_RUN_ERROR)
        self._finishing.add(activation_id)
        try:
            await self.db.write(queries.finish_activation, record, target.name)
        finally:
            self._finishing.discard(activation_id)
            self._durable.discard(activation_id)
        self.metrics.observe(record)
        return record

    async def execute(
        self,
        identity: Identity,
        target: Target,
        params: Any,
        activation_id: str,
        cause: str | None,
        depth: int = 0,
    ) -> dict:
        """Run one activation of any kind and return its (not yet stored) record."""
        if target.kind == "sequence":
            await self._mark_started(activation_id)
            return await self._run_sequence(identity, target, params, activation_id, cause, depth)
        if target.kind == BUILTIN_KIND:
            await self._mark_started(activation_id)
            return await self._run_builtin(identity, target, params, activation_id, cause)
        accepted = now_ms()
        async with self._slots:
            await self._mark_started(activation_id)
            job = self._job(identity, target, params, activation_id)
            outcome = await self.invoker.run(job)
        outcome.wait_time_ms = max(outcome.wait_time_ms, outcome.start_ms - accepted, 0)
        return self._record(identity, target, activation_id, outcome, cause)

    async def _mark_started(self, activation_id: str) -> None:
        """Note in its pending row (if it has one) that the activation will not be re-run."""
        if activation_id in self._durable:
            await self.db.write(queries.mark_started, activation_id)

    def _job(
        self, identity: Identity, target: Target, params: Any, activation_id: str
    ) -> ActivationJob:
        doc = target.doc
        exec_ = dict(doc["exec"])
        if exec_["kind"] == PYTHON_KIND or exec_.get("image", "").split(":")[0] in NATIVE_IMAGES:
            exec_["image"] = self.python_image
        limits = doc["limits"]
        deadline = now_ms() + limits["timeout"]
        provide_key = annotation(doc, "provide-api-key", True) not in (False, "false")
        api_key = identity.api_key if provide_key else None
        env = {k: _env_value(target.params[k]) for k in target.init_keys if k in target.params}
        env.update(
            {
                "__OW_NAMESPACE": identity.namespace,
                "__OW_ACTION_NAME": f"/{target.path}",
                "__OW_ACTION_VERSION": doc["version"],
                "__OW_ACTIVATION_ID": activation_id,
                "__OW_TRANSACTION_ID": activation_id,
                "__OW_DEADLINE": str(deadline),
            }
        )
        if api_key:
            env["__OW_API_KEY"] = api_key
        return ActivationJob(
            activation_id=activation_id,
            namespace=identity.namespace,
            action_name=f"/{target.path}",
            action_version=doc["version"],
            exec=exec_,
            params=params,
            init_env=env,
            limits=dict(limits),
            deadline_ms=deadline,
            api_key=api_key,
            # Warm containers are never shared between callers (OpenWhisk keys them by the
            # invoking namespace too): module-level state stays with one caller. The caller
            # comes last, escaped so it holds no "@": retiring "ns/name[@version]" still
            # finds the containers of every caller by prefix.
            action_key=f"{target.path}@{doc['version']}@{quote(identity.namespace, safe='')}",
        )

    # -- records ----------------------------------------------------------------------

    def _response(self, status: int, result: Any) -> dict:
        if not isinstance(result, (dict, list)):
            status = max(status, 2)
            result = {
                "error": "The action did not produce a valid JSON or JSON Array response: "
                + json.dumps(result)[:1000]
            }
        size = len(json.dumps(result, separators=(",", ":")).encode())
        if size > self.ranges.max_payload:
            status = 1
            result = {
                "error": "The action produced a response that exceeded the allowed length: "
                f"{size} > {self.ranges.max_payload} bytes."
            }
            size = len(json.dumps(result, separators=(",", ":")).encode())
        return {"statusCode": status, "result": result, "size": size}

    def _base_record(
        self, identity: Identity, target: Target, activation_id: str, cause: str | None
    ) -> dict:
        record = {
            "namespace": identity.namespace,
            "name": target.name.rpartition("/")[2],
            "version": target.doc["version"],
            "subject": identity.namespace,
            "activationId": activation_id,
            "publish": False,
        }
        if cause:
            record["cause"] = cause
        return record

    def _annotations(self, target: Target, outcome: RunOutcome | None) -> list[dict]:
        annotations = [{"key": "path", "value": target.path}]
        if outcome is not None:
            annotations.append({"key": "waitTime", "value": int(outcome.wait_time_ms)})
        annotations += [
            {"key": "kind", "value": target.kind},
            {"key": "timeout", "value": bool(outcome and outcome.timed_out)},
            {"key": "limits", "value": target.doc.get("limits", {})},
        ]
        if outcome is not None and outcome.init_time_ms is not None:
            annotations.append({"key": "initTime", "value": int(outcome.init_time_ms)})
        if target.binding:
            annotations.append({"key": "binding", "value": target.binding})
        return annotations

    def _record(
        self,
        identity: Identity,
        target: Target,
        activation_id: str,
        outcome: RunOutcome,
        cause: str | None,
    ) -> dict:
        record = self._base_record(identity, target, activation_id, cause)
        record.update(
            {
                "start": outcome.start_ms,
                "end": outcome.end_ms,
                "duration": max(outcome.end_ms - outcome.start_ms, 0),
                "response": self._response(outcome.status_code, outcome.result),
                "logs": list(outcome.logs),
                "annotations": self._annotations(target, outcome),
            }
        )
        return record

    def _failed_record(
        self, identity: Identity, target: Target, activation_id: str, cause: str | None, error: str
    ) -> dict:
        now = now_ms()
        outcome = RunOutcome(WHISK_ERROR, {"error": error}, now, now)
        return self._record(identity, target, activation_id, outcome, cause)

    # -- sequences and built-ins ------------------------------------------------------

    async def _run_sequence(
        self,
        identity: Identity,
        target: Target,
        params: Any,
        activation_id: str,
        cause: str | None,
        depth: int,
    ) -> dict:
        start = now_ms()
        component_ids: list[str] = []
        response: dict = {"statusCode": 0, "result": params, "size": 0}
        duration = 0
        value = params
        for component in target.doc["exec"]["components"]:
            ns, _, rest = component[1:].partition("/")
            try:
                if depth >= MAX_SEQUENCE_DEPTH:
                    raise BadRequest("Too many actions in the sequence.")
                part = await self.resolve(identity, ns, rest)
                part_params = self.merge_payload(part, value)
            except (BadRequest, Forbidden, NotFoundError, Conflict) as err:
                message = "Sequence component does not exist." if err.status == 404 else str(err)
                response = self._response(1, {"error": message})
                break
            part_id = new_activation_id()
            record = await self.execute(
                identity, part, part_params, part_id, activation_id, depth + 1
            )
            await self.db.write(queries.put_activation, record, part.name)
            self.metrics.observe(record)
            component_ids.append(part_id)
            duration += record.get("duration", 0)
            response = record["response"]
            if response["statusCode"] != 0:
                break
            value = response["result"]
        end = now_ms()
        record = self._base_record(identity, target, activation_id, cause)
        annotations = [{"key": "topmost", "value": True}] if depth == 0 else []
        annotations += self._annotations(target, None)
        annotations.append({"key": "waitTime", "value": 0})
        record.update(
            {
                "start": start,
                "end": end,
                "duration": duration,
                "response": self._response(response["statusCode"], response["result"]),
                "logs": component_ids,
                "annotations": annotations,
            }
        )
        return record

    async def _run_builtin(
        self, identity: Identity, target: Target, params: Any, activation_id: str, cause: str | None
    ) -> dict:
        start = now_ms()
        handler = self.builtins.get(target.path)
        if handler is None:
            status, result = WHISK_ERROR, {"error": f"No built-in action /{target.path}."}
        else:
            status, result = await handler(identity, params if isinstance(params, dict) else {})
        outcome = RunOutcome(status, result, start, now_ms())
        return self._record(identity, target, activation_id, outcome, cause)

    # -- triggers ---------------------------------------------------------------------

    async def fire(
        self, owner: Identity, trigger: dict, payload: dict, headers: dict
    ) -> str | None:
        """Fire ``trigger`` (a stored document in ``owner``'s namespace).

        Each active rule's action is invoked non-blocking with the trigger's
        parameters, ``__ow_headers`` and the payload (payload wins).

        Returns:
            The trigger activation id, or None when no rule is active (HTTP 204).
        """
        active = [
            (k, r) for k, r in (trigger.get("rules") or {}).items() if r["status"] == "active"
        ]
        if not active:
            return None
        activation_id = new_activation_id()
        args = {**params_dict(trigger.get("parameters")), "__ow_headers": headers, **payload}
        logs = []
        for rule, link in active:
            action = f"{link['action']['path']}/{link['action']['name']}"
            ns, _, rest = action.partition("/")
            entry: dict[str, Any]
            try:
                target = await self.resolve(owner, ns, rest)
                child, _ = await self.invoke(
                    owner, target, args, blocking=False, wait_ms=0, cause=activation_id
                )
                entry = {"statusCode": 0, "success": True, "activationId": child}
            except (BadRequest, Forbidden, NotFoundError, Conflict) as err:
                entry = {"statusCode": 1, "success": False, "error": str(err)}
            logs.append(json.dumps({**entry, "rule": rule, "action": action}))
        result = payload
        record = {
            "namespace": owner.namespace,
            "name": trigger["name"],
            "version": trigger["version"],
            "subject": owner.namespace,
            "activationId": activation_id,
            "publish": False,
            "start": now_ms(),
            "end": 0,
            "response": {
                "statusCode": 0,
                "result": result,
                "size": len(json.dumps(result, separators=(",", ":")).encode()),
            },
            "logs": logs,
            "annotations": [],
        }
        await self.db.write(queries.put_activation, record, trigger["name"])
        return activation_id

    # -- lifecycle --------------------------------------------------------------------

    async def recover(self) -> None:
        """Handle pending rows left by a crash: re-run the unstarted, fail the started."""
        for activation_id, started, _, job in await self.db.read(queries.list_pending):
            subject = await self.db.read(queries.subject_by_uuid, job["subject"])
            ns, _, rest = job["action"][1:].partition("/")
            if subject is None:
                # The whole namespace is gone: nobody could read a record any more.
                self.log.warning(
                    "Dropping pending activation %s: namespace %s is gone", activation_id, ns
                )
                await self.db.write(queries.drop_pending, activation_id)
                continue
            identity = Identity(subject[0], job["subject"], subject[1])
            try:
                target = await self.resolve(identity, ns, rest)
            except (Forbidden, NotFoundError, Conflict):
                self.log.warning(
                    "Activation %s: %s was deleted before it ran", activation_id, job["action"]
                )
                gone = Target(
                    {"name": rest, "version": "0.0.0", "exec": {"kind": "unknown"}},
                    ns,
                    rest,
                    {},
                    frozenset(),
                )
                record = self._failed_record(
                    identity, gone, activation_id, job.get("cause"), DELETED
                )
                await self.db.write(queries.finish_activation, record, rest)
                continue
            target.binding = job.get("binding")
            cause = job.get("cause")
            if started:
                self.log.warning("Activation %s was running when the server stopped", activation_id)
                record = self._failed_record(identity, target, activation_id, cause, RESTARTED)
                await self.db.write(queries.finish_activation, record, target.name)
                continue
            self.log.info(
                "Re-running activation %s of %s accepted before a restart",
                activation_id,
                job["action"],
            )
            try:
                params = self.merge_payload(target, job["payload"])
            except BadRequest as err:
                record = self._failed_record(identity, target, activation_id, cause, str(err))
                await self.db.write(queries.finish_activation, record, target.name)
                continue
            self._durable.add(activation_id)
            self._spawn(self._activate(identity, target, params, activation_id, cause))

    async def stop(self, grace_s: float) -> None:
        """Let running activations finish for up to ``grace_s`` seconds, then cancel them.

        Cancelled activations keep their pending rows and are handled by
        :meth:`recover` on the next start.
        """
        tasks = list(self._tasks)
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=grace_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished, timeout=1)

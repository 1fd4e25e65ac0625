"""The sidebar's REST API under ``{base_url}faas/api/``; routes are listed at the bottom.

Every handler needs a logged-in user (token or cookie; 403 otherwise), takes
and returns JSON, validates its input before doing anything, and reports
every failure in one shape, ``{"error": message, "reason": machine reason}``:
a ``FaaSError`` with its own status and message, anything unexpected as 500
with a fixed message (the details go to the server log only).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict

from croniter import croniter
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..bundle import check_name
from ..deployers import Accepted, ActivationRecord, Schedule
from ..errors import BadRequest, FaaSError, NotFound
from ..failure import log_lines
from .jobs import ACTIONS, INTERNAL_ERROR

_ACTIVATION_ID = re.compile(r"\A[0-9a-f]{32}\Z")
_JOB_ID = re.compile(r"\A[0-9a-f]{32}\Z")
#: Most activations one request lists (OpenWhisk's own maximum).
MAX_LIMIT = 200
#: Statuses of the function server that would mean "your Jupyter login failed" to a browser.
_UPSTREAM_AUTH = (401, 403, 407)


class FaaSHandler(ExtensionHandlerMixin, APIHandler):
    """Base: the extension app, JSON bodies, and the one error shape."""

    @property
    def faas(self):
        """The ``FaaSExtension`` serving this request."""
        return self.extensionapp

    async def actor(self):
        """Who this request acts as (``acting.Actor``): the server's owner, or a guest of a
        shared hub server as themselves. Asked once per request.

        Raises:
            GuestError: the request is a guest's and the hub's faas service cannot act for them.
        """
        if getattr(self, "_actor", None) is None:
            self._actor = await self.faas.actor_for(self)
        return self._actor

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, FaaSError):
            status = error.status
            # The function server refusing our key is a gateway problem, not the browser's
            # login; the hub's service refusing a guest's own token is the guest's 403.
            upstream = status in _UPSTREAM_AUTH and error.reason != "guest-refused"
            self.set_status(502 if upstream else status)
            body = error.to_json()
        elif isinstance(error, web.HTTPError):
            message = error.log_message % error.args if error.log_message else self._reason
            slug = self._reason.lower().replace(" ", "-")
            body = {"error": message, "reason": slug}
        else:
            body = dict(INTERNAL_ERROR)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, FaaSError):
            # Expected failures: one line, no traceback; the detail (a build log) at debug.
            level = logging.WARNING if value.status >= 500 else logging.INFO
            self.log.log(level, "%s %s: %s", self.request.method, self.request.uri, value)
            if value.detail:
                self.log.debug("Detail:\n%s", value.detail)
        else:
            super().log_exception(typ, value, tb)

    def send_json(self, body: dict, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def json_body(self, fields: tuple[str, ...], example: str) -> dict:
        """The request body as a dict with no fields other than ``fields``."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as err:
            raise BadRequest(
                f"The request body is not valid JSON ({err}).", hint=f"Send e.g. {example}."
            ) from None
        if not isinstance(body, dict):
            raise BadRequest(
                f"The request body must be a JSON object, not {_kind(body)}.",
                hint=f"Send e.g. {example}.",
            )
        unknown = sorted(set(body) - set(fields))
        if unknown:
            raise BadRequest(
                f"Unknown field(s) in the request body: {', '.join(unknown)}.",
                hint=f"Accepted fields: {', '.join(fields)}; e.g. {example}.",
            )
        return body

    def bundle_argument(self) -> str | None:
        """?bundle=: which bundle folder, when several hold a function of one name."""
        return self.get_query_argument("bundle", None) or None

    def name_argument(self, required: bool) -> str | None:
        name = self.get_query_argument("name", None) or None
        if name is None and required:
            raise BadRequest(
                "The query argument 'name' is missing.",
                hint="Add ?name=FUNCTION, e.g. ?name=peaks.",
            )
        return None if name is None else check_name(name)


def activation_summary(record: ActivationRecord | None) -> dict | None:
    """An activation as the sidebar lists it."""
    if record is None:
        return None
    return {
        "activationId": record.activation_id,
        "name": record.name,
        "status": record.status,
        "ok": record.ok,
        "start": record.start_ms,
        "duration": record.duration_ms,
        "cold": record.cold,
        "version": record.version,
        "cause": record.started_by(),
    }


def activation_detail(record: ActivationRecord, error: dict | None) -> dict:
    """An activation as the sidebar shows it opened: the summary, result, logs and error."""
    return {
        **activation_summary(record),
        "result": record.result,
        "logs": record.logs,
        "lines": [
            {k: line[k] for k in ("time", "stream", "text")} for line in log_lines(record.logs)
        ],
        "waitTime": record.wait_ms,
        "initTime": record.init_ms,
        "error": error,
    }


def schedule_json(entry: Schedule, now: float | None = None) -> dict:
    """A schedule with its next run, in epoch seconds and in words (UTC, as cron runs)."""
    now = time.time() if now is None else now
    try:
        # Six fields: seconds first, as the alarms feed reads them.
        seconds_first = len(entry.cron.split()) == 6
        following = croniter(entry.cron, now, second_at_beginning=seconds_first).get_next(float)
    except (ValueError, KeyError, TypeError):
        return {**asdict(entry), "next_run": None}
    return {**asdict(entry), "next_run": {"time": following, "words": in_words(following, now)}}


def in_words(when: float, now: float) -> str:
    """ "in 4 minutes, at 12:05 UTC" (the date too when it is not today)."""
    seconds = max(0, round(when - now))
    if seconds < 60:
        ahead = "in less than a minute" if seconds else "now"
    elif seconds < 3600:
        minutes = round(seconds / 60)
        ahead = f"in {minutes} minute{'s' if minutes != 1 else ''}"
    elif seconds < 48 * 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        ahead = f"in {hours} hour{'s' if hours != 1 else ''}" + (
            f" {minutes} minute{'s' if minutes != 1 else ''}" if minutes else ""
        )
    else:
        days = round(seconds / 86400)
        ahead = f"in {days} days"
    stamp = time.gmtime(when)
    same_day = time.gmtime(now)[:3] == stamp[:3]
    at = time.strftime("%H:%M" if same_day else "%a %d %b %H:%M", stamp)
    return f"{ahead}, at {at} UTC"


def _kind(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _text(body: dict, key: str, example: str) -> str:
    value = body.get(key)
    if key not in body:
        problem = "is missing"
    elif not isinstance(value, str):
        problem = f"must be a string, not {_kind(value)}"
    elif not value.strip():
        problem = "is empty"
    else:
        return value
    raise BadRequest(f"The field {key!r} {problem}.", hint=f"Send e.g. {example}.")


def _object(body: dict, key: str) -> dict | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(
            f"The field {key!r} must be a JSON object, not {_kind(value)}.",
            hint=f'Wrap the value in an object, e.g. "{key}": {{"values": [1, 2, 3]}}.',
        )
    return value


class FunctionsHandler(FaaSHandler):
    @web.authenticated
    async def get(self) -> None:
        """Bundles under the root folder merged with the function server's actions."""
        self.send_json(await self.faas.call((await self.actor()).functions))


class JobsHandler(FaaSHandler):
    _example = '{"action": "test", "bundle": "functions/peaks", "input": {"threshold": 3}}'

    @web.authenticated
    async def post(self) -> None:
        """Start a build, test, push or deploy job; 202 with its id."""
        body = self.json_body(("action", "bundle", "input"), self._example)
        action = _text(body, "action", self._example)
        if action not in ACTIONS:
            raise BadRequest(
                f"Unknown action {action!r}.", hint=f"Use one of: {', '.join(ACTIONS)}."
            )
        bundle_path = _text(body, "bundle", self._example)
        test_input = _object(body, "input")
        if test_input is not None and action != "test":
            raise BadRequest(
                f"Only the test action takes an input; {action} does not.",
                hint='Leave out "input", or use "action": "test".',
            )
        bundle = self.faas.resolve_bundle(bundle_path)
        job = (await self.actor()).start_job(action, bundle, test_input)
        self.send_json({"id": job.id}, status=202)


class JobHandler(FaaSHandler):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        """A job's state and its events from index ``after`` on (long-polls while it runs)."""
        text = self.get_query_argument("after", "0")
        if not text.isdigit():
            raise BadRequest(
                f"The query argument after={text!r} is not a whole number.",
                hint="Send the 'next' value of the previous answer, or 0.",
            )
        job = self.faas.jobs.get(job_id) if _JOB_ID.match(job_id) else None
        if job is not None and job.user != (await self.actor()).user:
            job = None  # another person's job (a guest's, or the owner's for a guest)
        if job is None:
            raise NotFound(
                f"There is no job {job_id!r}.",
                hint=f"Job ids come from POST faas/api/jobs; finished jobs are kept for "
                f"{self.faas.job_retention_s:g} s (c.FaaSExtension.job_retention_s).",
            )
        after = int(text)
        await job.wait(after, self.faas.poll_wait_s)
        self.send_json(job.to_json(after))


class InvokeHandler(FaaSHandler):
    _example = '{"name": "peaks", "input": {"threshold": 3}, "async": false}'

    @web.authenticated
    async def post(self) -> None:
        """Invoke a deployed function: its activation record, or 202 with the activation id."""
        body = self.json_body(("name", "input", "async"), self._example)
        name = check_name(_text(body, "name", self._example))
        if isinstance(body.get("input"), str) and not body["input"].strip():
            body["input"] = None  # an empty input box means {}
        params = _object(body, "input") or {}
        is_async = body.get("async", False)
        if not isinstance(is_async, bool):
            raise BadRequest(
                f"The field 'async' must be true or false, not {_kind(is_async)}.",
                hint=f"Send e.g. {self._example}.",
            )
        actor = await self.actor()
        actor.workspace.check_payload(params, f"The input of {name}")  # 413 before sending
        deployer = actor.workspace.deployer
        record = await self.faas.call(deployer.invoke, name, params, not is_async)
        if isinstance(record, Accepted):
            self.send_json({"activationId": record.activation_id}, status=202)
        else:
            error = await self.faas.call(actor.explain, record)
            self.send_json(activation_detail(record, error))


class ActivationsHandler(FaaSHandler):
    @web.authenticated
    async def get(self) -> None:
        """Recent activations, newest first, of one function (?name=) or all."""
        name = self.name_argument(required=False)
        text = self.get_query_argument("limit", "30")
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise BadRequest(
                f"The query argument limit={text!r} is not a number from 1 to {MAX_LIMIT}.",
                hint="For example ?limit=30.",
            )
        since = self.get_query_argument("since", None)
        if since is not None and not since.isdigit():
            raise BadRequest(
                f"The query argument since={since!r} is not a time in epoch milliseconds.",
                hint="Send the start of the newest activation you have, e.g. ?since=1764660184123.",
            )
        deployer = (await self.actor()).workspace.deployer
        records = await self.faas.call(
            deployer.activations, name, int(text), None if since is None else int(since)
        )
        self.send_json({"activations": [activation_summary(r) for r in records]})


class ActivationHandler(FaaSHandler):
    @web.authenticated
    async def get(self, activation_id: str) -> None:
        """One activation's full record, with its logs and response."""
        if not _ACTIVATION_ID.match(activation_id):
            raise BadRequest(
                f"{activation_id!r} is not an activation id (32 lowercase hex characters).",
                hint="Take the activationId of an entry of GET faas/api/activations.",
            )
        actor = await self.actor()
        record = await self.faas.call(actor.workspace.deployer.activation, activation_id)
        error = await self.faas.call(actor.explain, record)
        self.send_json(activation_detail(record, error))


class SchedulesHandler(FaaSHandler):
    _example = '{"name": "peaks", "cron": "*/5 * * * *", "payload": {"threshold": 3}}'

    @web.authenticated
    async def get(self) -> None:
        """The schedules of one function (?name=) or of all."""
        name = self.name_argument(required=False)
        found = await self.faas.call((await self.actor()).workspace.deployer.schedules, name)
        self.send_json({"schedules": [schedule_json(entry) for entry in found]})

    @web.authenticated
    async def post(self) -> None:
        """Run a function on a cron schedule; 201 with the trigger's name."""
        body = self.json_body(("name", "cron", "payload"), self._example)
        name = check_name(_text(body, "name", self._example))
        cron = _text(body, "cron", self._example).strip()
        if not croniter.is_valid(cron):
            raise BadRequest(
                f"{cron!r} is not a cron pattern.",
                hint="Use five fields: minute hour day-of-month month day-of-week, "
                "e.g. '*/5 * * * *' (every 5 minutes) or '0 6 * * 1' (Mondays at 06:00).",
            )
        payload = _object(body, "payload")
        deployer = (await self.actor()).workspace.deployer
        trigger = await self.faas.call(deployer.schedule, name, cron, payload)
        self.send_json({"trigger": trigger}, status=201)

    @web.authenticated
    async def delete(self) -> None:
        """Remove a function's schedules (all, or the one with ?cron=)."""
        name = self.name_argument(required=True)
        cron = self.get_query_argument("cron", None) or None
        removed = await self.faas.call(
            (await self.actor()).workspace.deployer.unschedule, name, cron
        )
        self.send_json({"removed": removed})


class StatusHandler(FaaSHandler):
    @web.authenticated
    async def get(self) -> None:
        """Each function's server state (version, digest, last run), cheap enough to poll."""
        self.send_json(await self.faas.call((await self.actor()).status))


class FunctionHandler(FaaSHandler):
    """One function: GET its detail, DELETE it everywhere."""

    @web.authenticated
    async def get(self, name: str) -> None:
        """The function's row, its curl and wsk commands, web URL and schedules."""
        check_name(name)
        self.send_json(
            await self.faas.call((await self.actor()).function_detail, name, self.bundle_argument())
        )

    @web.authenticated
    async def delete(self, name: str) -> None:
        """Delete the action, its schedules and its bundle folders (the history stays)."""
        check_name(name)
        self.send_json(
            await self.faas.call((await self.actor()).delete_function, name, self.bundle_argument())
        )


class BundleFilesHandler(FaaSHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        """handler.py, requirements.txt and faas.json of the function's bundle."""
        check_name(name)
        self.send_json(await self.faas.call(self.faas.bundle_files, name, self.bundle_argument()))


class VersionsHandler(FaaSHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        """Every recorded deploy of the function, newest first."""
        check_name(name)
        self.send_json(await self.faas.call((await self.actor()).versions, name))


class RollbackHandler(FaaSHandler):
    _example = '{"version": "0.0.2"}'

    @web.authenticated
    async def post(self, name: str) -> None:
        """Deploy a recorded version again, in one step; the new version's entry."""
        check_name(name)
        body = self.json_body(("version",), self._example)
        version = _text(body, "version", self._example).strip()
        self.send_json(await self.faas.call((await self.actor()).rollback, name, version))


class ClaimsHandler(FaaSHandler):
    _example = '{"name": "peaks", "notebook": "demo/peaks.ipynb", "cell_id": "f3a1"}'

    @web.authenticated
    async def post(self) -> None:
        """May this cell deploy as NAME? 200, or 409 naming the cell that did."""
        body = self.json_body(("name", "notebook", "cell_id", "cell_sha256"), self._example)
        name = check_name(_text(body, "name", self._example))
        origin = {"notebook": _text(body, "notebook", self._example)}
        for key in ("cell_id", "cell_sha256"):
            value = body.get(key)
            if value is not None and not isinstance(value, str):
                raise BadRequest(
                    f"The field {key!r} must be a string, not {_kind(value)}.",
                    hint=f"Send e.g. {self._example}.",
                )
            origin[key] = value or None
        self.send_json(await self.faas.call(self.faas.claim, name, origin))


class NamesHandler(FaaSHandler):
    @web.authenticated
    async def get(self) -> None:
        """Whether ?name= is a valid function name; 400 says why not, with a suggestion."""
        name = self.get_query_argument("name", None)
        if name is None:
            raise BadRequest(
                "The query argument 'name' is missing.",
                hint="Add ?name=FUNCTION, e.g. ?name=peaks.",
            )
        self.send_json({"name": check_name(name), "valid": True})


class MissingHandler(FaaSHandler):
    """Any other path under faas/api/: a JSON 404 naming the endpoints."""

    def _missing(self, path: str) -> None:
        raise NotFound(
            f"There is no endpoint faas/api/{path}.",
            hint="Endpoints: functions, functions/NAME, functions/NAME/bundle, "
            "functions/NAME/versions, functions/NAME/rollback, status, claims, names, jobs, "
            "jobs/ID, invoke, activations, activations/ID, schedules, shared, shared/invoke, "
            "shared/pull.",
        )

    @web.authenticated
    def get(self, path: str) -> None:
        self._missing(path)

    post = put = patch = delete = get


_API = r"/faas/api"

_NAME = r"([^/]+)"

default_handlers = [
    (rf"{_API}/functions", FunctionsHandler),
    (rf"{_API}/functions/{_NAME}", FunctionHandler),
    (rf"{_API}/functions/{_NAME}/bundle", BundleFilesHandler),
    (rf"{_API}/functions/{_NAME}/versions", VersionsHandler),
    (rf"{_API}/functions/{_NAME}/rollback", RollbackHandler),
    (rf"{_API}/status", StatusHandler),
    (rf"{_API}/claims", ClaimsHandler),
    (rf"{_API}/names", NamesHandler),
    (rf"{_API}/jobs", JobsHandler),
    (rf"{_API}/jobs/([^/]+)", JobHandler),
    (rf"{_API}/invoke", InvokeHandler),
    (rf"{_API}/activations", ActivationsHandler),
    (rf"{_API}/activations/([^/]+)", ActivationHandler),
    (rf"{_API}/schedules", SchedulesHandler),
    (rf"{_API}/(.*)", MissingHandler),
]

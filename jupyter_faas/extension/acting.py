"""The sidebar's work on behalf of one person: ``Actor``.

A request of the sidebar's API acts for somebody: on a single-user server and for a
hub server's owner, with the extension's own workspace (the server's builder and
function server key); for a guest of a shared hub server, with a workspace of the
guest's own (``guests.GuestWorkspaces``), so the guest's builds, tests, pushes,
deploys and invocations land in the guest's namespace. Bundles are the server's
folders either way; what the function server holds is the actor's.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

from ..builders import Progress
from ..builders.hub import HubBuilder
from ..bundle import Bundle, check_name
from ..deployers import ActivationRecord, DeployedFunction
from ..errors import FaaSError, NotFound, ServerError
from ..failure import explain
from ..workspace import DEPLOYED_FILE, TEST_FILE, FaaSWorkspace
from .handlers import activation_summary, schedule_json
from .jobs import Job

#: Order of a function's states in the sidebar, from just captured to running on the server.
_STATES = ("bundle", "built", "test-failed", "tested", "deployed")

#: Activations read to find each function's latest one.
_RECENT_ACTIVATIONS = 200
#: Seconds between two attempts to learn the owner's namespace name from the hub's service.
_NAMESPACE_RETRY_S = 60.0


class Actor:
    """Builds, tests, deploys and lists functions as one person.

    Args:
        app: The ``FaaSExtension`` (bundle folders, pools, jobs).
        workspace: Whose builder and deployer do the work.
        user: The hub user acted for; None outside JupyterHub.
        namespace: That user's function-server namespace, when known (None: asked once
            from the hub's faas service, when the builder is a ``HubBuilder``).
        guest_of: The server's owner when ``user`` is a guest of this server, else None.
    """

    def __init__(
        self,
        app,
        workspace: FaaSWorkspace,
        user: str | None = None,
        namespace: str | None = None,
        guest_of: str | None = None,
    ):
        self.app = app
        self.workspace = workspace
        self.user = user
        self.namespace = namespace
        self.guest_of = guest_of
        self._namespace_asked = -_NAMESPACE_RETRY_S

    def acting_as(self) -> dict | None:
        """Whose namespace this acts on: ``{"user", "namespace", "guest_of"}``; None
        outside JupyterHub. Blocking (the owner's namespace is asked once)."""
        if self.user is None:
            return None
        builder = self.workspace.builder
        now = time.monotonic()
        if (
            self.namespace is None
            and isinstance(builder, HubBuilder)
            and now - self._namespace_asked > _NAMESPACE_RETRY_S
        ):
            self._namespace_asked = now
            try:
                self.namespace = builder.namespace()["namespace"]
            except FaaSError as err:
                self.app.log.debug("No namespace for %s yet: %s", self.user, err)
        return {"user": self.user, "namespace": self.namespace, "guest_of": self.guest_of}

    def start_job(self, action: str, bundle: Bundle, test_input: dict | None) -> Job:
        """Start ``action`` on ``bundle`` in the job pool (call on the event loop)."""
        work = {
            "build": self._build,
            "test": functools.partial(self._test, test_input=test_input),
            "push": self._push,
            "deploy": self._deploy,
        }[action]
        return self.app.jobs.start(
            action, self.app.relative(bundle.path), functools.partial(work, bundle), self.user
        )

    # -- job work (runs in the job pool) ---------------------------------------------------

    def _note(self, bundle: Bundle, state: str, image: str) -> None:
        self.app.notes[(self.user, bundle.path.resolve())] = {
            "state": state,
            "image": image,
            "requirements": bundle.requirements,
            "code_sha256": bundle.code_sha256(),
        }

    def _build(self, bundle: Bundle, progress: Progress) -> dict:
        built = self.workspace.build(bundle, progress)
        self._note(bundle, "built", built.ref)
        return {"image": built.ref, "reused": built.reused}

    def _test(self, bundle: Bundle, progress: Progress, test_input: dict | None) -> dict:
        args = test_input if test_input is not None else (bundle.metadata.test_input or {})
        # Built outside the lock, so a long build does not hold up other tests; the test
        # itself then finds the image ready.
        built = self.workspace.ensure_built(bundle, progress)
        with self.app.test_lock(self.user, bundle):
            report = self.workspace.test(bundle, args, progress, quiet_reuse=True)
        container = report.container
        self._note(bundle, "tested" if container.ok else "test-failed", built.ref)
        recorded = _read_json(bundle.path / TEST_FILE) or {}
        return {
            **report.to_json(),
            "message": recorded.get("message"),
            "error": recorded.get("error"),
        }

    def _push(self, bundle: Bundle, progress: Progress) -> dict:
        pushed = self.workspace.push(bundle, progress, quiet_reuse=True)
        return {"image": pushed.ref, "digest": pushed.digest}

    def _deploy(self, bundle: Bundle, progress: Progress) -> dict:
        return self.workspace.deploy(bundle, progress, quiet_reuse=True).to_json()

    # -- the function list and one function (run in the quick pool) ---------------------------

    def functions(self) -> dict:
        """The GET faas/api/functions body: bundles here merged with the server's actions."""
        body: dict = {}
        actions: dict[str, DeployedFunction] = {}
        latest: dict[str, ActivationRecord] = {}
        deployer = self.workspace.deployer
        try:
            actions = {f.name: f for f in deployer.functions()}
            for record in deployer.activations(limit=_RECENT_ACTIVATIONS):
                latest.setdefault(record.name, record)
            reachable = True
        except FaaSError as err:
            body["server_error"] = str(err)
            reachable = False
        rows = []
        for path in self.app.find_bundles():
            try:
                bundle = self.workspace.load(str(path))
            except FaaSError as err:
                self.app.log.warning("Skipping the bundle %s: %s", path, err)
                continue
            row = self._bundle_row(bundle, actions.get(bundle.name), reachable)
            row["last_activation"] = activation_summary(latest.get(bundle.name))
            row["web_url"] = getattr(actions.get(bundle.name), "web_url", None)
            rows.append(row)
        named = {row["name"] for row in rows}
        for name, action in actions.items():
            if name not in named:
                rows.append(
                    {
                        "name": name,
                        "bundle": None,
                        "state": "deployed",
                        "image": None,
                        "digest": None,
                        "deployed": self._deployed(action),
                        "last_activation": activation_summary(latest.get(name)),
                        "test": None,
                        "provenance": None,
                        "web_url": action.web_url,
                    }
                )
        rows.sort(key=lambda r: (r["name"], r["bundle"] or ""))
        return {"functions": rows, **body, "acting_as": self.acting_as()}

    def _deployed(self, function: DeployedFunction) -> dict:
        updated = function.updated_ms
        return {
            "version": function.version,
            "time": updated / 1000 if isinstance(updated, (int, float)) else None,
            "server": self.workspace.deployer.location,
            "namespace": function.namespace,
            "digest": function.digest,
        }

    def _bundle_row(self, bundle: Bundle, action: DeployedFunction | None, reachable: bool) -> dict:
        state, image, digest, deployed = "bundle", None, None, None
        pushed = _read_json(bundle.path / "image.json")
        record = _read_json(bundle.path / "deployed.json")
        if pushed:
            state, image, digest = "built", pushed.get("image"), pushed.get("digest")
        code_sha256 = bundle.code_sha256()
        note = self.app.notes.get((self.user, bundle.path.resolve()))
        if note and note["requirements"] == bundle.requirements:
            noted = note["state"]
            if noted in ("tested", "test-failed") and note["code_sha256"] != code_sha256:
                noted = "built"
            if _STATES.index(noted) > _STATES.index(state):
                state = noted
            image = image or note["image"] or None
        # The last test (from the sidebar or the magic) of this very code.
        tested = _read_json(bundle.path / TEST_FILE)
        if tested and tested.get("code_sha256") != code_sha256:
            tested = None
        if tested and state in ("bundle", "built", "tested", "test-failed"):
            state = "tested" if tested.get("ok") else "test-failed"
        if action is not None:
            deployed = self._deployed(action)
        elif record and not reachable:
            # The server cannot say; show the last deploy recorded in the bundle.
            deployed = {key: record.get(key) for key in ("version", "time", "server", "namespace")}
        if deployed is not None:
            state = "deployed"
            if record:
                image, digest = record.get("image") or image, record.get("digest") or digest
        return {
            "name": bundle.name,
            "bundle": self.app.relative(bundle.path),
            "state": state,
            "image": image,
            "digest": digest,
            "deployed": deployed,
            "test": _test_summary(tested),
            "provenance": self.app.provenance(record),
        }

    def function_row(self, name: str, bundle: str | None = None) -> dict:
        """The GET functions row of ``name`` (404 when it has neither a bundle nor an action)."""
        bundles = self.app.bundles_named(name, bundle)
        deployer = self.workspace.deployer
        try:
            action = deployer.function(name)
        except ServerError as err:
            if err.status != 404:
                raise
            action = None
        latest = deployer.activations(name, 1)
        if bundles:
            row = self._bundle_row(bundles[0], action, True)
        elif action is not None:
            row = {
                "name": name,
                "bundle": None,
                "state": "deployed",
                "image": None,
                "digest": action.digest,
                "deployed": self._deployed(action),
                "test": None,
                "provenance": None,
            }
        else:
            raise NotFound(
                f"There is no function {name!r}: no bundle under {self.app.root} and no action on "
                f"{deployer.location}.",
                hint="GET faas/api/functions lists the functions.",
            )
        row["last_activation"] = activation_summary(latest[0] if latest else None)
        row["web_url"] = action.web_url if action is not None else None
        return row

    def function_detail(self, name: str, bundle: str | None = None) -> dict:
        """GET functions/NAME: the row, the commands that invoke it and its schedules."""
        row = self.function_row(name, bundle)
        bundles = self.app.bundles_named(name, bundle)
        params = (bundles[0].metadata.test_input if bundles else None) or {}
        deployer = self.workspace.deployer
        row["commands"] = {**deployer.commands(name, params), "web_url": row["web_url"]}
        row["schedules"] = [schedule_json(entry) for entry in deployer.schedules(name)]
        return row

    def delete_function(self, name: str, bundle: str | None = None) -> dict:
        """DELETE functions/NAME: its schedules, its action and its bundle folders."""
        bundles = self.app.bundles_named(name, bundle)
        deployer = self.workspace.deployer
        schedules: list[str] = []
        try:
            schedules = [entry.trigger for entry in deployer.schedules(name)]
            deployer.delete(name)
            deleted = True
        except ServerError as err:
            # Never deployed from here (a failed test): the server need not answer.
            never = bundles and not any((b.path / DEPLOYED_FILE).exists() for b in bundles)
            if err.status != 404 and not (never and err.status == 503):
                raise
            deleted = False
        removed = []
        for found in bundles:
            self.workspace.delete_bundle(found.path)
            self.app.forget_notes(found.path)
            removed.append(self.app.relative(found.path))
        if not deleted and not removed:
            raise NotFound(
                f"There is no function {name!r}: no bundle under {self.app.root} and no action on "
                f"{deployer.location}.",
                hint="GET faas/api/functions lists the functions.",
            )
        return {
            "name": name,
            "action_deleted": deleted,
            "schedules_removed": schedules,
            "bundles_removed": removed,
        }

    def versions(self, name: str) -> dict:
        """GET functions/NAME/versions."""
        found = self.workspace.deployer.versions(check_name(name))
        rows = []
        for version in found:
            row = version.to_json()
            row["notebook"] = self.app.notebook_path(row["notebook"])
            rows.append(row)
        return {"versions": rows}

    def rollback(self, name: str, version: str) -> dict:
        """POST functions/NAME/rollback: redeploy a recorded version; the new entry."""
        deployment = self.workspace.deployer.rollback(check_name(name), version)
        for found in self.app.bundles_named(name):
            if (found.path / DEPLOYED_FILE).exists():
                (found.path / DEPLOYED_FILE).write_text(
                    json.dumps(deployment.to_json(), indent=2) + "\n"
                )
        entry = next(
            (v for v in self.versions(name)["versions"] if v["version"] == deployment.version),
            None,
        )
        return entry or {**deployment.to_json(), "rollback_of": version, "current": True}

    def explain(self, record: ActivationRecord) -> dict | None:
        """What went wrong in ``record``, mapped to the cell of the bundle that ran."""
        if record.ok or record.status == "running":
            return None
        try:
            bundles = self.app.bundles_named(record.name)
        except FaaSError:  # not a name of ours (made with other tools)
            bundles = []
        for found in bundles:
            deployed = _read_json(found.path / DEPLOYED_FILE) or {}
            if deployed.get("version") == record.version:
                return self.workspace.explain(record, found.path.parent)
        return explain(record.status, record.result, record.logs)  # no bundle: handler.py lines

    def status(self) -> dict:
        """GET status: each function's server state, from one action and one activation list."""
        deployer = self.workspace.deployer
        try:
            actions = deployer.functions()
            records = deployer.activations(limit=_RECENT_ACTIVATIONS)
        except FaaSError as err:
            return {"functions": {}, "server_error": str(err), "acting_as": self.acting_as()}
        latest: dict[str, ActivationRecord] = {}
        for record in records:
            latest.setdefault(record.name, record)
        return {
            "functions": {
                action.name: {
                    "version": action.version,
                    "updated": action.updated_ms,
                    "digest": action.digest,
                    "last_activation": activation_summary(latest.get(action.name)),
                }
                for action in actions
            },
            "acting_as": self.acting_as(),
        }


def _test_summary(record: dict | None) -> dict | None:
    """The last test, as a function row shows it."""
    if not record:
        return None
    return {key: record.get(key) for key in ("ok", "verdict", "status", "message", "time")}


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None

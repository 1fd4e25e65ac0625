"""The Jupyter server extension behind the jupyter-faas sidebar.

It serves ``{base_url}faas/api/`` (see ``handlers.py``) and does the work with
the same ``FaaSWorkspace`` as the ``%%faas`` magics: settings in
``jupyter_faas_config.py`` (or the server's own config) apply to both. Blocking
work goes through two thread pools: a small one for jobs (builds, tests,
pushes, deploys, minutes each) and one for quick calls (the function server,
folder scans), so a long build never delays the function list.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Instance, Integer, default, validate

from ..builders import Progress
from ..bundle import HANDLER_FILE, METADATA_FILE, REQUIREMENTS_FILE, Bundle, check_name
from ..config import CONFIG_NAME
from ..deployers import ActivationRecord, DeployedFunction
from ..errors import BadRequest, ConfigError, FaaSError, NotFound, ServerError
from ..failure import explain
from ..workspace import DEPLOYED_FILE, TEST_FILE, FaaSWorkspace
from .handlers import activation_summary, default_handlers
from .jobs import Job, JobRegistry
from .sharing import sharing_handlers

#: Folders never searched for bundles: hidden ones (.git, .ipynb_checkpoints, .venv) and these.
_SKIPPED_FOLDERS = {"node_modules", "__pycache__", "site-packages"}

#: Order of a function's states in the sidebar, from just captured to running on the server.
_STATES = ("bundle", "built", "test-failed", "tested", "deployed")
#: The fields of a deploy's provenance, as the sidebar writes them into cell.metadata.faas.
_PROVENANCE = (
    "name",
    "image",
    "digest",
    "server",
    "namespace",
    "version",
    "time",
    "cell_sha256",
    "cell_id",
    "notebook",
)

#: Activations read to find each function's latest one.
_RECENT_ACTIVATIONS = 200


class FaaSExtension(ExtensionApp):
    """Serves the sidebar's REST API and runs its jobs."""

    name = "jupyter_faas"
    description = "Build, test, deploy and invoke notebook functions from the jupyter-faas sidebar."
    load_other_extensions = True

    max_jobs = Integer(
        2,
        help="""Jobs (build, test, push, deploy) running at once; more wait in a queue. Each
        build uses a CPU core or more, so keep it at or below the number of cores. Example: 2.""",
    ).tag(config=True)

    server_threads = Integer(
        4,
        help="""Threads for quick blocking calls: the function server (a blocking invoke waits
        up to a minute in one of them) and folder scans. Example: 4.""",
    ).tag(config=True)

    search_depth = Integer(
        3,
        help="""How many folder levels below the server's root folder are searched for bundle
        folders (FaaSWorkspace.bundle_dir's last part, e.g. "functions", holding
        functions/<name>/faas.json). 0 searches the root folder only. Hidden folders and
        node_modules are skipped. Example: 3 finds a/b/c/functions/peaks.""",
    ).tag(config=True)

    job_retention_s = Float(
        3600.0,
        help="""Seconds a finished job (its events and result) stays readable at
        faas/api/jobs/<id>. Keep it well above the sidebar's polling pause (a second or
        two), or a job that ends between two polls is gone before its result is read.
        Example: 3600.""",
    ).tag(config=True)

    poll_wait_s = Float(
        10.0,
        help="""Longest wait, in seconds, of GET faas/api/jobs/<id> while a job runs and has no
        new events (a long poll, so the sidebar shows progress as it happens). Example: 10.""",
    ).tag(config=True)

    workspace = Instance(
        FaaSWorkspace, help="The workspace whose builder and function server client do the work."
    )

    @default("config_file_name")
    def _config_file_name_default(self):
        # The magics' file, so one jupyter_faas_config.py configures the kernel and the server.
        return CONFIG_NAME

    @default("workspace")
    def _workspace_default(self):
        return FaaSWorkspace(parent=self)

    @validate("max_jobs", "server_threads")
    def _at_least_one(self, proposal):
        if proposal.value < 1:
            raise ConfigError(
                f"FaaSExtension.{proposal.trait.name} = {proposal.value} must be at least 1.",
                hint=f"For example c.FaaSExtension.{proposal.trait.name} = 2.",
            )
        return proposal.value

    @validate("search_depth")
    def _not_negative(self, proposal):
        if proposal.value < 0:
            raise ConfigError(
                f"FaaSExtension.search_depth = {proposal.value} must be 0 or more.",
                hint="For example c.FaaSExtension.search_depth = 3.",
            )
        return proposal.value

    def initialize_settings(self) -> None:
        self.jobs = JobRegistry(self.max_jobs, self.job_retention_s, self.log)
        self._quick = ThreadPoolExecutor(self.server_threads, thread_name_prefix="faas-call")
        # Test containers are kept warm per dependency image and memory limit and run one
        # test at a time: tests that would share one wait for each other, others run freely.
        self._test_locks: dict[str, threading.Lock] = {}
        self._test_locks_guard = threading.Lock()
        # What this server's jobs built and tested, by bundle folder (the bundle's files
        # record pushes and deploys themselves).
        self._notes: dict[Path, dict] = {}
        builder = self.workspace.builder
        self.log.info(
            "jupyter-faas: builder %s.%s, function server %s, bundles in %s/ under %s",
            type(builder).__module__,
            type(builder).__name__,
            self.workspace.deployer.location,
            self.bundle_folder,
            self.root,
        )

    def initialize_handlers(self) -> None:
        # The shared routes first: the default ones end with a catch-all 404.
        self.handlers.extend(sharing_handlers + default_handlers)

    async def stop_extension(self) -> None:
        self.jobs.close()
        self._quick.shutdown(wait=False, cancel_futures=True)
        # Removes this server's warm test containers (blocking Docker calls).
        await asyncio.to_thread(self.workspace.close)

    # -- helpers for the handlers --------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.serverapp.root_dir).resolve()

    @property
    def bundle_folder(self) -> str:
        return Path(self.workspace.bundle_dir).name or "functions"

    async def call(self, function, *args):
        """Run a quick blocking call (function server, file system) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._quick, functools.partial(function, *args))

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def resolve_bundle(self, text: str) -> Bundle:
        """The bundle at ``text``, a path relative to the root folder (or absolute inside it).

        Raises:
            BadRequest: the path leaves the root folder, or the folder is not a valid bundle.
            NotFound: there is no such folder.
        """
        path = (self.root / text).resolve()
        if not path.is_relative_to(self.root):
            raise BadRequest(
                f"The bundle {text!r} is outside the server's root folder {self.root}.",
                hint="Give a bundle folder inside it, relative to it, e.g. functions/peaks.",
            )
        if not path.is_dir():
            raise NotFound(
                f"There is no bundle folder {self.relative(path)!r} under {self.root}.",
                hint="Capture the cell again from the sidebar (it writes the bundle), or "
                "refresh the function list.",
            )
        return self.workspace.load(str(path))

    def start_job(self, action: str, bundle: Bundle, test_input: dict | None) -> Job:
        """Start ``action`` on ``bundle`` in the job pool (call on the event loop)."""
        work = {
            "build": self._build,
            "test": functools.partial(self._test, test_input=test_input),
            "push": self._push,
            "deploy": self._deploy,
        }[action]
        return self.jobs.start(action, self.relative(bundle.path), functools.partial(work, bundle))

    # -- job work (runs in the job pool) ---------------------------------------------------

    def _note(self, bundle: Bundle, state: str, image: str) -> None:
        self._notes[bundle.path.resolve()] = {
            "state": state,
            "image": image,
            "requirements": bundle.requirements,
            "code_sha256": bundle.code_sha256(),
        }

    def _build(self, bundle: Bundle, progress: Progress) -> dict:
        built = self.workspace.build(bundle, progress)
        self._note(bundle, "built", built.ref)
        return {"image": built.ref, "reused": built.reused}

    def _test_lock(self, bundle: Bundle) -> threading.Lock:
        # Same requirements and memory limit: same dependency image and warm container.
        key = hashlib.sha256(
            f"{bundle.metadata.memory_mb}\0{bundle.requirements}".encode()
        ).hexdigest()
        with self._test_locks_guard:
            return self._test_locks.setdefault(key, threading.Lock())

    def _test(self, bundle: Bundle, progress: Progress, test_input: dict | None) -> dict:
        args = test_input if test_input is not None else (bundle.metadata.test_input or {})
        # Built outside the lock, so a long build does not hold up other tests; the test
        # itself then finds the image ready.
        built = self.workspace.ensure_built(bundle, progress)
        with self._test_lock(bundle):
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

    # -- the function list (runs in the quick pool) ------------------------------------------

    def find_bundles(self) -> list[Path]:
        """Bundle folders under the root folder, at most ``search_depth`` levels down."""
        found: list[Path] = []
        folder_name = self.bundle_folder

        def visit(folder: Path, depth: int) -> None:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                self.log.debug("Not searching %s for bundles: %s", folder, err)
                return
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                if entry.name == folder_name:
                    found.extend(
                        child.resolve()
                        for child in sorted(path.iterdir())
                        if (child / METADATA_FILE).is_file()
                        # A symlink out of the root folder is not served.
                        and child.resolve().is_relative_to(self.root)
                    )
                elif depth < self.search_depth and entry.name not in _SKIPPED_FOLDERS:
                    visit(path, depth + 1)

        visit(self.root, 0)
        return found

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
        for path in self.find_bundles():
            try:
                bundle = self.workspace.load(str(path))
            except FaaSError as err:
                self.log.warning("Skipping the bundle %s: %s", path, err)
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
        return {"functions": rows, **body}

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
        note = self._notes.get(bundle.path.resolve())
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
            "bundle": self.relative(bundle.path),
            "state": state,
            "image": image,
            "digest": digest,
            "deployed": deployed,
            "test": _test_summary(tested),
            "provenance": self.provenance(record),
        }

    def provenance(self, record: dict | None) -> dict | None:
        """A bundle's deployed.json as the cell metadata's provenance (notebook root-relative)."""
        if not record:
            return None
        out = {key: record.get(key) for key in _PROVENANCE}
        out["notebook"] = self.notebook_path(out["notebook"])
        return out

    def notebook_path(self, notebook: str | None) -> str | None:
        """A notebook path as the front end names it: relative to the root folder when inside."""
        if not notebook:
            return None
        path = Path(notebook)
        if path.is_absolute() and path.resolve().is_relative_to(self.root):
            return self.relative(path.resolve())
        return notebook

    # -- one function (runs in the quick pool) ------------------------------------------------

    def bundles_named(self, name: str, bundle: str | None = None) -> list[Bundle]:
        """The bundles of function ``name`` (the one at ``bundle``, a root-relative folder)."""
        check_name(name)
        if bundle is not None:
            found = self.resolve_bundle(bundle)
            if found.name != name:
                raise BadRequest(
                    f"The bundle {bundle!r} holds the function {found.name!r}, not {name!r}.",
                    hint="Leave out ?bundle=, or give the bundle folder of this function.",
                )
            return [found]
        found = []
        for path in self.find_bundles():
            if path.name != name:
                continue
            try:
                loaded = self.workspace.load(str(path))
            except FaaSError:
                continue
            if loaded.name == name:
                found.append(loaded)
        return found

    def function_row(self, name: str, bundle: str | None = None) -> dict:
        """The GET functions row of ``name`` (404 when it has neither a bundle nor an action)."""
        bundles = self.bundles_named(name, bundle)
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
                f"There is no function {name!r}: no bundle under {self.root} and no action on "
                f"{deployer.location}.",
                hint="GET faas/api/functions lists the functions.",
            )
        row["last_activation"] = activation_summary(latest[0] if latest else None)
        row["web_url"] = action.web_url if action is not None else None
        return row

    def function_detail(self, name: str, bundle: str | None = None) -> dict:
        """GET functions/NAME: the row, the commands that invoke it and its schedules."""
        from .handlers import schedule_json

        row = self.function_row(name, bundle)
        bundles = self.bundles_named(name, bundle)
        params = (bundles[0].metadata.test_input if bundles else None) or {}
        deployer = self.workspace.deployer
        row["commands"] = {**deployer.commands(name, params), "web_url": row["web_url"]}
        row["schedules"] = [schedule_json(entry) for entry in deployer.schedules(name)]
        return row

    def bundle_files(self, name: str, bundle: str | None = None) -> dict:
        """GET functions/NAME/bundle: handler.py, requirements.txt and faas.json as text."""
        bundles = self.bundles_named(name, bundle)
        if not bundles:
            raise NotFound(
                f"There is no bundle of {name!r} under {self.root} (the function may be on the "
                "server only).",
                hint="Deploy it from its cell to make a bundle here.",
            )
        found = bundles[0]
        files = {}
        for file in (HANDLER_FILE, REQUIREMENTS_FILE, METADATA_FILE):
            try:
                files[file] = (found.path / file).read_text()
            except OSError:
                files[file] = ""
        return {"bundle": self.relative(found.path), "files": files}

    def delete_function(self, name: str, bundle: str | None = None) -> dict:
        """DELETE functions/NAME: its schedules, its action and its bundle folders."""
        bundles = self.bundles_named(name, bundle)
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
            self._notes.pop(found.path.resolve(), None)
            removed.append(self.relative(found.path))
        if not deleted and not removed:
            raise NotFound(
                f"There is no function {name!r}: no bundle under {self.root} and no action on "
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
            row["notebook"] = self.notebook_path(row["notebook"])
            rows.append(row)
        return {"versions": rows}

    def rollback(self, name: str, version: str) -> dict:
        """POST functions/NAME/rollback: redeploy a recorded version; the new entry."""
        deployment = self.workspace.deployer.rollback(check_name(name), version)
        for found in self.bundles_named(name):
            if (found.path / DEPLOYED_FILE).exists():
                (found.path / DEPLOYED_FILE).write_text(
                    json.dumps(deployment.to_json(), indent=2) + "\n"
                )
        entry = next(
            (v for v in self.versions(name)["versions"] if v["version"] == deployment.version),
            None,
        )
        return entry or {**deployment.to_json(), "rollback_of": version, "current": True}

    def claim(self, name: str, origin: dict) -> dict:
        """POST claims: 200 when the cell may deploy as ``name``, else NameTaken (409)."""
        check_name(name)
        notebook = origin.get("notebook") or ""
        folder = (self.root / notebook).parent
        if not folder.resolve().is_relative_to(self.root):
            raise BadRequest(
                f"The notebook {notebook!r} is outside the server's root folder.",
                hint="Give the notebook's path relative to the root folder, e.g. demo/peaks.ipynb.",
            )
        bundle_dir = Path(self.workspace.bundle_dir)
        path = (bundle_dir if bundle_dir.is_absolute() else folder / bundle_dir) / name
        self.workspace.check_claim(path, origin, base=self.root)
        return {"name": name, "free": True}

    def explain(self, record: ActivationRecord) -> dict | None:
        """What went wrong in ``record``, mapped to the cell of the bundle that ran."""
        if record.ok or record.status == "running":
            return None
        try:
            bundles = self.bundles_named(record.name)
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
            return {"functions": {}, "server_error": str(err)}
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
            }
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

"""The Jupyter server extension behind the jupyter-faas sidebar.

It serves ``{base_url}faas/api/`` (see ``handlers.py``) and does the work with
the same ``FaaSWorkspace`` as the ``%%faas`` magics: settings in
``jupyter_faas_config.py`` (or the server's own config) apply to both. Blocking
work goes through two thread pools: a small one for jobs (builds, tests,
pushes, deploys, minutes each) and one for quick calls (the function server,
folder scans), so a long build never delays the function list.

Each request acts for the person making it (``acting.Actor``): the server's own
workspace for its owner (and outside JupyterHub), a workspace of the guest's own
for a guest of a shared hub server (``guests.GuestWorkspaces``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Instance, Integer, default, validate

from ..bundle import HANDLER_FILE, METADATA_FILE, REQUIREMENTS_FILE, Bundle, check_name
from ..config import CONFIG_NAME
from ..errors import BadRequest, ConfigError, FaaSError, NotFound
from ..workspace import FaaSWorkspace
from .acting import Actor
from .guests import GuestWorkspaces, hub_caller
from .handlers import default_handlers
from .jobs import JobRegistry
from .sharing import sharing_handlers

#: Folders never searched for bundles: hidden ones (.git, .ipynb_checkpoints, .venv) and these.
_SKIPPED_FOLDERS = {"node_modules", "__pycache__", "site-packages"}

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

    guests_act_as_themselves = Bool(
        True,
        help="""On JupyterHub: whether a guest of this shared server (a hub user other than
        its owner, $JUPYTERHUB_USER) acts as themselves: builds, tests and pushes through
        the hub's faas service with the guest's own hub token (the browser's), deploys and
        invocations in the guest's namespace, never with the owner's credentials. A guest's
        request then fails, saying why, when the service cannot act for them. False: guests
        act as the owner, in the owner's namespace (the server's own token and key).
        Outside JupyterHub there are no guests. Example: True.""",
    ).tag(config=True)

    guest_lookup_s = Float(
        300.0,
        help="""Seconds a guest's namespace lookup at the hub's faas service is reused while
        the guest's token stays the same; a new token is looked up at once. 0 looks up on
        every request. The key is kept in memory only. Example: 300.""",
    ).tag(config=True)

    workspace = Instance(
        FaaSWorkspace,
        help="The workspace whose builder and function server client do the work (the owner's).",
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

    @validate("search_depth", "guest_lookup_s")
    def _not_negative(self, proposal):
        if proposal.value < 0:
            raise ConfigError(
                f"FaaSExtension.{proposal.trait.name} = {proposal.value} must be 0 or more.",
                hint=f"For example c.FaaSExtension.{proposal.trait.name} = 3.",
            )
        return proposal.value

    def initialize_settings(self) -> None:
        self.jobs = JobRegistry(self.max_jobs, self.job_retention_s, self.log)
        self._quick = ThreadPoolExecutor(self.server_threads, thread_name_prefix="faas-call")
        # Test containers are kept warm per dependency image and memory limit and run one
        # test at a time: tests that would share one wait for each other, others run freely.
        self._test_locks: dict[str, threading.Lock] = {}
        self._test_locks_guard = threading.Lock()
        # What this server's jobs built and tested, by the user acted for and bundle folder
        # (the bundle's files record pushes and deploys themselves).
        self.notes: dict[tuple[str | None, Path], dict] = {}
        #: The hub user this server belongs to; None outside JupyterHub.
        self.owner = os.environ.get("JUPYTERHUB_USER") or None
        self.owner_actor = Actor(self, self.workspace, self.owner)
        self.guests = GuestWorkspaces(self, self.guest_lookup_s)
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
        await asyncio.to_thread(self.guests.close)

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

    async def actor_for(self, handler) -> Actor:
        """Who ``handler``'s request acts as: the owner's actor, or a guest's own.

        Raises:
            GuestError: a guest's request the hub's faas service cannot act for.
        """
        caller = hub_caller(handler)
        if (
            caller is None
            or self.owner is None
            or caller.name == self.owner
            or caller.kind != "user"  # a hub service (e.g. the culler) acts as the server
            or not self.guests_act_as_themselves
        ):
            return self.owner_actor
        return await self.call(self.guests.actor, caller.name, caller.token)

    def test_lock(self, user: str | None, bundle: Bundle) -> threading.Lock:
        """The lock of the warm test container ``bundle`` runs in, for ``user``."""
        # Same user, requirements and memory limit: same dependency image and warm container.
        key = hashlib.sha256(
            f"{user}\0{bundle.metadata.memory_mb}\0{bundle.requirements}".encode()
        ).hexdigest()
        with self._test_locks_guard:
            return self._test_locks.setdefault(key, threading.Lock())

    def forget_notes(self, path: Path) -> None:
        """Drop what jobs noted about the bundle at ``path``, for every user."""
        for key in [key for key in self.notes if key[1] == path.resolve()]:
            self.notes.pop(key, None)

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

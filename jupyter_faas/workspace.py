"""The function loop's steps in one place, shared by the magics, the CLI and the server extension.

One implementation, several faces: every face turns its input into calls of
``FaaSWorkspace`` methods and shows the progress events and results its own way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from traitlets import Float, Instance, Integer, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .builders import BaseImage, BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .bundle import (
    Bundle,
    FunctionMetadata,
    check_base,
    check_ignore_keys,
    check_limits,
    check_name,
)
from .capture import capture
from .deployers import Accepted, ActivationRecord, Deployment, FaaSDeployer
from .errors import ActivationFailed, BundleError, ConfigError, FaaSError, LimitExceeded
from .localtest import FLOAT_TOLERANCE, KernelRun, TestReport, run_in_kernel
from .pinning import pinned_requirements
from .runtime.faas_protocol import MAX_PAYLOAD_BYTES, MAX_RESULT_BYTES
from .traits import EntryPointType, backend_default

#: Container outcomes after which the function is not also run in the kernel.
_NOT_REPEATED = ("timeout", "out of memory")
#: A Dockerfile step of a build's log ("Step 3/7 : RUN pip install …").
_BUILD_STEP = re.compile(r"\AStep (\d+)/(\d+) :")
#: Files a bundle folder keeps about its function's life: the last test and the last deploy.
TEST_FILE = "test.json"
DEPLOYED_FILE = "deployed.json"


class NameTaken(FaaSError):
    """Another cell already deployed a function of this name; ``owner`` says which."""

    status = 409
    reason = "name-taken"

    def __init__(self, message: str, *, owner: dict, hint: str = ""):
        super().__init__(message, hint=hint)
        self.owner = owner

    def to_json(self) -> dict:
        return {**super().to_json(), "owner": self.owner}


def describe_cell(cell: dict, base: Path | None = None) -> str:
    """A cell as people find it: "cell 3 of peaks.ipynb", read from the notebook when it can be."""
    notebook = cell.get("notebook")
    number = None
    if notebook and cell.get("cell_id"):
        path = Path(notebook)
        # A root-relative path (the sidebar's) or one the kernel's folder holds.
        candidates = [path] if path.is_absolute() else [base / path, base / path.name]
        for candidate in candidates if base is not None or path.is_absolute() else []:
            try:
                cells = json.loads(candidate.read_text()).get("cells", [])
                ids = [c.get("id") for c in cells if isinstance(c, dict)]
                number = ids.index(cell["cell_id"]) + 1
                break
            except (OSError, ValueError, AttributeError):
                continue
    where = f" of {Path(notebook).name}" if notebook else ""
    if number is not None:
        return f"cell {number}{where}"
    if cell.get("execution_count"):
        return f"the cell run as In [{cell['execution_count']}]{where}"
    if cell.get("cell_id"):
        return f"the cell with id {cell['cell_id']}{where}"
    return f"another cell{where}"


def same_cell(a: dict | None, b: dict | None) -> bool:
    """Whether two cell records name one cell; unknown ids (no JupyterLab) count as the same."""
    if not a or not b:
        return True
    if a.get("notebook") and b.get("notebook") and _notebook_key(a) != _notebook_key(b):
        return False
    if a.get("cell_id") and b.get("cell_id"):
        return a["cell_id"] == b["cell_id"]
    return True


def _notebook_key(cell: dict) -> str:
    return Path(cell["notebook"]).name


class FaaSWorkspace(LoggingConfigurable):
    """Where bundles live and which builder builds them."""

    bundle_dir = Unicode(
        help="""Folder holding one bundle folder per function, e.g. "functions" gives
        functions/peaks/handler.py. Relative paths are relative to the kernel's working
        directory (the notebook's folder). Default: $FAAS_BUNDLE_DIR or "functions".""",
    ).tag(config=True)

    builder_class = EntryPointType(
        "auto",
        klass=FaaSBuilder,
        entry_point_group="jupyter_faas.builders",
        allow_auto=True,
        help="""Class that builds, tests and pushes, by entry-point name or import path:
        "docker" (the local Docker engine and a registry), "process" (no container engine:
        virtualenvs and runtime processes, for Binder and HPC login nodes; no isolation
        beyond a process), or "auto": docker when its engine answers, else process, with a
        one-line notice. On JupyterHub a build-service client implements the same interface.
        Default: $FAAS_BACKEND or "auto".""",
    ).tag(config=True)

    deployer_class = EntryPointType(
        "openwhisk",
        klass=FaaSDeployer,
        entry_point_group="jupyter_faas.deployers",
        help="""Class that deploys, invokes and schedules functions, by entry-point name or
        import path: "openwhisk" (the OpenWhisk REST API of our function server or of a real
        OpenWhisk; c.OpenWhiskClient.api_host and .auth say which).""",
    ).tag(config=True)

    float_tolerance = Float(
        FLOAT_TOLERANCE,
        help="""Relative tolerance when the local test compares floats of the kernel's and the
        container's results: 1e-9 (the default) accepts last-digit noise, e.g. 1e-6 for
        float32 code. 0 means floats must be exactly equal. Ints, strings, bools and None
        are always compared exactly.""",
    ).tag(config=True)

    max_payload_bytes = Integer(
        MAX_PAYLOAD_BYTES,
        help="""Largest function input, in bytes of JSON, checked before a local test and
        before an invoke, so a too-large input fails here with a message rather than as an
        HTTP 413 from the server. Keep it equal to the server's c.FunctionServer.
        max_payload_bytes; both default to OpenWhisk's 1048576 (1 MB), e.g. 5242880 for
        5 MB. 0 means no check here.""",
    ).tag(config=True)

    max_result_bytes = Integer(
        MAX_RESULT_BYTES,
        help="""Largest function result, in bytes of JSON: a larger one makes the local test
        an application error, as the function server does. Keep it equal to the server's
        c.FunctionServer.max_payload_bytes (which limits results too); both default to
        OpenWhisk's 1048576 (1 MB), e.g. 5242880 for 5 MB. 0 means no limit here.""",
    ).tag(config=True)

    @validate("float_tolerance", "max_payload_bytes", "max_result_bytes")
    def _not_negative(self, proposal):
        if proposal.value < 0:
            raise ConfigError(
                f"c.FaaSWorkspace.{proposal.trait.name} is {proposal.value}; it must be 0 or "
                "more (0 turns the check off)."
            )
        return proposal.value

    builder = Instance(FaaSBuilder, help="The builder instance (made from builder_class).")

    deployer = Instance(FaaSDeployer, help="The deployer instance (made from deployer_class).")

    notice = Unicode(help="A one-line notice for the user about the chosen backends, or ''.")

    @default("bundle_dir")
    def _bundle_dir_default(self):
        return os.environ.get("FAAS_BUNDLE_DIR", "functions")

    @default("builder_class")
    def _builder_class_default(self):
        return backend_default()

    @default("builder")
    def _builder_default(self):
        klass = self.builder_class
        if klass == "auto":
            klass = self._pick_builder()
        builder = klass(parent=self)
        self.log.debug("Builder: %s.%s", type(builder).__module__, type(builder).__name__)
        if builder.notice:
            self.notice = "; ".join(filter(None, (self.notice, builder.notice)))
        return builder

    def _pick_builder(self) -> type[FaaSBuilder]:
        """DockerBuilder when an engine answers, else the container-less ProcessBuilder."""
        docker = EntryPointType.load("jupyter_faas.builders", "docker")
        reason = docker.unavailable()
        if not reason:
            return docker
        self.notice = reason
        self.log.warning("%s: container-less mode.", reason)
        return EntryPointType.load("jupyter_faas.builders", "process")

    @default("deployer")
    def _deployer_default(self):
        deployer = self.deployer_class(parent=self)
        self.log.debug("Deployer: %s.%s", type(deployer).__module__, type(deployer).__name__)
        return deployer

    def bundle_path(self, name: str) -> Path:
        return Path(self.bundle_dir) / check_name(name)

    def capture_cell(
        self,
        name: str,
        cell: str,
        namespace: dict,
        history: list[str],
        *,
        handler: str = "main",
        memory_mb: int = 256,
        timeout_s: float = 60.0,
        test_input: dict | None = None,
        ignore_keys: list[str] | None = None,
        origin: dict | None = None,
        first_line: int = 1,
        replace: bool = False,
        base: str | None = None,
    ) -> Bundle:
        """Capture ``cell`` as the bundle of function ``name`` (validated before anything is written).

        Args:
            origin: The notebook cell it comes from (``notebook``, ``cell_id``,
                ``cell_sha256``, ``execution_count``), recorded in faas.json.
            first_line: The cell's line number of ``cell``'s first line (2 below a
                ``%%faas`` line), so tracebacks point at the cell's own lines.
            replace: Take over ``name`` when another cell deployed it.
            base: A published function (``OWNER/PACKAGE/NAME``) whose image the function's
                starts FROM: what that image installed is left out of requirements.txt
                (the base's versions are the ones the function gets).

        Raises:
            NameTaken: another cell deployed ``name`` and ``replace`` is false.
            ServerError: ``base`` is not published (403); nothing is written then.
        """
        check_name(name)
        check_limits(memory_mb, timeout_s)
        ignore_keys = check_ignore_keys(ignore_keys or [])
        check_base(base)
        path = self.bundle_path(name)
        if not replace:
            self.check_claim(path, origin)
        captured = capture(cell, namespace, history, handler=handler)
        requirements = pinned_requirements(captured.modules)
        if base:
            requirements = self._without_inherited(requirements, self.deployer.base(base))
        metadata = FunctionMetadata(
            name=name,
            handler=handler,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            test_input=test_input,
            ignore_keys=ignore_keys,
            cell=origin,
            base=base,
        )
        own = captured.cell_source
        leading = len(own) - len(own.lstrip("\n"))
        bundle = Bundle.write(
            path,
            metadata,
            captured.source(),
            requirements,
            captured.local_modules,
            captured.data_files,
            cell_tail=(first_line + leading, own.strip("\n").count("\n") + 1),
        )
        (path / TEST_FILE).unlink(missing_ok=True)  # a new capture is not tested yet
        return bundle

    def _without_inherited(self, requirements: list[str], base: BaseImage) -> list[str]:
        """``requirements`` less the distributions ``base``'s image installed already."""
        inherited = {}
        for line in base.requirements:
            try:
                found = Requirement(line)
            except InvalidRequirement:
                continue
            inherited[canonicalize_name(found.name)] = str(found.specifier)
        kept = []
        for line in requirements:
            try:
                name = canonicalize_name(Requirement(line).name)
            except InvalidRequirement:
                kept.append(line)
                continue
            if name not in inherited:
                kept.append(line)
            elif inherited[name] != str(Requirement(line).specifier):
                self.log.warning(
                    "The kernel has %s, the image of %s has %s%s: the function gets the image's.",
                    line,
                    base.ref,
                    name,
                    inherited[name],
                )
        return kept

    def check_claim(self, path: Path, origin: dict | None, base: Path | None = None) -> None:
        """Raise NameTaken when the bundle at ``path`` was deployed from a cell other than ``origin``.

        ``base`` is the folder relative notebook paths start from (default: the working one).
        """
        deployed = _read_json(path / DEPLOYED_FILE)
        if not deployed:
            return
        try:
            owner = Bundle.load(path).metadata.cell
        except FaaSError:
            return  # a broken bundle claims nothing
        if same_cell(owner, origin):
            return
        name = path.name
        raise NameTaken(
            f"{name} is already deployed from {describe_cell(owner, base or Path.cwd())} "
            f"(version {deployed.get('version')}); deploying this cell as {name} would replace it.",
            owner={**owner, "version": deployed.get("version")},
            hint=f"Choose another name, or replace it on purpose: %%faas {name} --replace "
            "(the sidebar asks first).",
        )

    def load(self, name_or_path: str) -> Bundle:
        """A bundle by function name (in bundle_dir) or by folder path."""
        path = Path(name_or_path)
        if not path.is_dir() and "/" not in name_or_path:
            candidate = Path(self.bundle_dir) / name_or_path
            if not candidate.is_dir():
                raise BundleError(
                    f"There is no function {name_or_path!r} in {self.bundle_dir}/.",
                    hint="Create it with a %%faas cell first, or give the bundle's folder path.",
                )
            path = candidate
        return Bundle.load(path)

    def build(self, bundle: Bundle, progress: Progress = no_progress) -> BuiltImage:
        """Build (or reuse) ``bundle``'s image; a build's "Step 3/7" lines move its bar.

        A bundle with a ``base`` has it resolved through the deployer at every build (one
        request): only a function still published is built on, and a new version of it
        (a new image digest) gives a new image, while a code-only edit reuses the image.

        Raises:
            ServerError: the base is not published (any more) (403).
            BaseUnusable: it has no image this builder can start from.
        """
        base = self.deployer.base(bundle.metadata.base) if bundle.metadata.base else None

        def relay(event: dict) -> None:
            found = _BUILD_STEP.match(str(event.get("message", "")))
            if found and event.get("step") == "build" and event.get("progress") is None:
                done, total = int(found[1]), int(found[2])
                event = {**event, "progress": (done - 1) / total if total else None}
            progress(event)

        return self.builder.build(bundle, relay, base=base)

    def test(
        self,
        bundle: Bundle,
        args: dict,
        progress: Progress = no_progress,
        kernel_function=None,
        quiet_reuse: bool = False,
    ) -> TestReport:
        """Build (or reuse) the image, run the function in a container and, if given, in the kernel.

        ``quiet_reuse``: the image was just built or reported (the sidebar's jobs); a reuse
        is then not reported again.
        """
        if not isinstance(args, dict):
            raise BundleError(
                f"The test input must be a JSON object, not {type(args).__name__}.",
                hint="For example --test '{\"threshold\": 3.0}'.",
            )
        self.check_payload(args, f"The test input of {bundle.name}")
        built = self._built(bundle, progress, quiet_reuse)
        self.builder.max_result_bytes = self.max_result_bytes
        container = self.builder.test(bundle, built, args, progress)
        kernel: KernelRun | None = None
        # The kernel has no limits: a function that outran or outgrew its container would
        # hang the notebook or take the kernel's memory, so it is not repeated there.
        if kernel_function is not None and container.status not in _NOT_REPEATED:
            kernel = run_in_kernel(kernel_function, args)
        report = TestReport(
            bundle.name,
            args,
            container,
            kernel,
            tolerance=self.float_tolerance,
            ignore_keys=list(bundle.metadata.ignore_keys),
            limits={"payload": self.max_payload_bytes, "result": self.max_result_bytes},
        )
        self._record_test(bundle, report)
        return report

    def _record_test(self, bundle: Bundle, report: TestReport) -> None:
        """Keep the outcome in the bundle (test.json), so every face shows "test failed"."""
        from .failure import explain

        container = report.container
        error = explain(
            "success" if container.ok else "developer error",
            container.result,
            container.logs,
            bundle.metadata,
            bundle.code,
        )
        record = {
            "ok": report.ok,
            "verdict": report.verdict,
            "status": container.status,
            "input": report.args,
            "code_sha256": bundle.code_sha256(),
            "time": time.time(),
            "message": _test_message(bundle.name, report, error),
            "error": error,
        }
        try:
            (bundle.path / TEST_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
        except OSError as err:
            self.log.warning("Cannot record the test of %s: %s", bundle.name, err)

    def ensure_built(self, bundle: Bundle, progress: Progress = no_progress) -> BuiltImage:
        """Build ``bundle``'s image as a step of another one: says nothing when it is reused.

        A build streams its lines; a reuse is one event, which is held back and dropped,
        so a test or deploy right after a build does not report "Reusing" again.
        """
        held: list[dict] = []

        def relay(event: dict) -> None:
            if event.get("step") == "build" and not held:
                held.append(event)
                return
            if held and held[0] is not None:
                progress(held[0])
                held[0] = None
            progress(event)

        built = self.build(bundle, relay)
        if held and held[0] is not None and not built.reused:
            progress(held[0])
        return built

    def check_payload(self, params: dict, what: str) -> None:
        """Refuse an input over max_payload_bytes here, as the function server would (413)."""
        limit = self.max_payload_bytes
        if not limit:
            return
        size = len(json.dumps(params, separators=(",", ":")).encode())
        if size > limit:
            raise LimitExceeded(
                f"{what} is {size} bytes of JSON, over the {limit}-byte input limit of the "
                "function server (c.FaaSWorkspace.max_payload_bytes; OpenWhisk's default is "
                "1 MB).",
                hint="Pass a reference instead of the data (a URL, a file or object-store "
                "key), or raise the limit on both sides: c.FaaSWorkspace.max_payload_bytes "
                "and the server's c.FunctionServer.max_payload_bytes.",
            )

    def invoke(self, name: str, params: dict, blocking: bool = True) -> ActivationRecord | Accepted:
        """Run deployed function ``name`` on ``params``: its record, or Accepted.

        Raises:
            LimitExceeded: ``params`` is over max_payload_bytes (nothing was sent).
            ActivationFailed: the function ran and failed; ``err.record`` holds the record.
        """
        if not isinstance(params, dict):
            raise BundleError(
                f"The input of {name} must be a dict (a JSON object), not {type(params).__name__}.",
                hint='For example {"threshold": 3.0}.',
            )
        self.check_payload(params, f"The input of {name}")
        record = self.deployer.invoke(name, params, blocking=blocking)
        if isinstance(record, ActivationRecord) and not record.ok:
            raise ActivationFailed(record)
        return record

    def _built(self, bundle: Bundle, progress: Progress, quiet_reuse: bool) -> BuiltImage:
        if quiet_reuse:
            return self.ensure_built(bundle, progress)
        return self.build(bundle, progress)

    def push(
        self, bundle: Bundle, progress: Progress = no_progress, quiet_reuse: bool = False
    ) -> PushedImage:
        built = self._built(bundle, progress, quiet_reuse)
        progress({"step": "push", "message": "", "progress": 0.0})
        pushed = self.builder.push(built, progress)
        record = bundle.path / "image.json"
        record.write_text(
            json.dumps({"image": pushed.ref, "digest": pushed.digest}, indent=2) + "\n"
        )
        return pushed

    # -- the function server ---------------------------------------------------------------

    def deploy(
        self, bundle: Bundle, progress: Progress = no_progress, quiet_reuse: bool = False
    ) -> Deployment:
        """Deploy ``bundle``: its published dependency environment plus its code.

        The environment is pushed only when it is not published yet; a code-only edit
        sends just the code (it reaches the function's sandboxes through ``/init``).
        """
        start = time.perf_counter()
        built = self._built(bundle, progress, quiet_reuse)
        # The push step starts here: a failure before its first message is the push's.
        progress({"step": "push", "message": "", "progress": 0.0})
        published = self.builder.published(built)
        if published is not None:
            progress(
                {
                    "step": "push",
                    "message": f"{published.ref} is published already",
                    "progress": 1.0,
                }
            )
        else:
            published = self.builder.push(built, progress)
        progress({"step": "deploy", "message": f"Deploying {bundle.name}", "progress": 0.0})
        deployment = self.deployer.deploy(bundle, published, base=built.base)
        (bundle.path / DEPLOYED_FILE).write_text(json.dumps(deployment.to_json(), indent=2) + "\n")
        progress(
            {
                "step": "deploy",
                "message": f"Deployed {bundle.name} version {deployment.version} "
                f"in {time.perf_counter() - start:.2f} s",
                "progress": 1.0,
            }
        )
        return deployment

    def explain(self, record: ActivationRecord, bundle_dir: Path | None = None) -> dict | None:
        """``failure.explain`` for a run of a deployed function, mapped to its bundle's cell.

        The bundle is the one in ``bundle_dir`` (default: this workspace's) when it holds the
        code that ran; otherwise frames keep handler.py's line numbers.
        """
        from .failure import explain

        if record.ok or record.status == "running":
            return None
        metadata, code = None, ""
        path = (Path(bundle_dir) if bundle_dir is not None else Path(self.bundle_dir)) / (
            record.name
        )
        try:
            bundle = Bundle.load(path)
            deployed = _read_json(path / DEPLOYED_FILE) or {}
            ran = record.version in (None, deployed.get("version"))
            if ran and deployed.get("code_sha256") == bundle.code_sha256():
                metadata, code = bundle.metadata, bundle.code
        except FaaSError:
            pass
        return explain(record.status, record.result, record.logs, metadata, code)

    def rollback(self, name: str, version: str) -> Deployment:
        """Deploy ``name``'s recorded ``version`` again; its bundle's deployed.json follows."""
        deployment = self.deployer.rollback(name, version)
        path = self.bundle_path(name)
        if (path / DEPLOYED_FILE).exists():
            (path / DEPLOYED_FILE).write_text(json.dumps(deployment.to_json(), indent=2) + "\n")
        return deployment

    def delete(self, name: str, bundle: Path | None = None, keep_bundle: bool = False) -> dict:
        """Delete ``name`` from the server (schedules too) and, unless kept, its bundle folder.

        The version history stays, so ``rollback`` can bring the function back.
        """
        from .errors import NotFound, ServerError

        check_name(name)
        schedules = [entry.trigger for entry in self.deployer.schedules(name)]
        try:
            self.deployer.delete(name)
            deleted = True
        except ServerError as err:
            if err.status != 404:
                raise
            deleted = False
        path = Path(bundle) if bundle is not None else self.bundle_path(name)
        removed = None
        if not keep_bundle and (path / "faas.json").is_file():
            self.delete_bundle(path)
            removed = str(path)
        if not deleted and removed is None:
            raise NotFound(
                f"There is no function {name!r}: neither on {self.deployer.location} nor a "
                f"bundle in {path.parent}/.",
                hint="`%faas list` shows the functions here and on the server.",
            )
        return {
            "name": name,
            "action_deleted": deleted,
            "schedules_removed": schedules,
            "bundle_removed": removed,
        }

    def delete_bundle(self, path: Path) -> None:
        """Remove a bundle folder (only one: it must hold faas.json)."""
        path = Path(path)
        if not (path / "faas.json").is_file():
            raise BundleError(f"{path} is not a function bundle (no faas.json); left as it is.")
        shutil.rmtree(path)

    def functions(self) -> list[dict]:
        """Bundles in bundle_dir and functions on the server, merged by name."""
        rows: dict[str, dict] = {}
        root = Path(self.bundle_dir)
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if (path / "faas.json").is_file():
                    rows[path.name] = {"name": path.name, "bundle": str(path), "deployed": False}
        for function in self.deployer.functions():
            row = rows.setdefault(function.name, {"name": function.name, "bundle": None})
            row.update(deployed=True, version=function.version, updated=function.updated_ms)
        return sorted(rows.values(), key=lambda r: r["name"])

    def close(self) -> None:
        """Release the builder's test sandboxes; safe to call twice."""
        if "builder" in self._trait_values:
            self.builder.close()


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _test_message(name: str, report: TestReport, error: dict | None) -> str:
    """One line on a test's outcome, the same for the magic and the sidebar."""
    if report.ok:
        return f"The test of {name} passed: {report.verdict}."
    if error is not None and report.verdict == "container failed":
        return f"The container test of {name} failed: {error['headline']}."
    return f"The test of {name}: {report.verdict}."


def parse_json_object(text: str, what: str = "input") -> dict:
    """Parse a JSON object given on a command line, with an error that shows an example."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise BundleError(
            f"The {what} is not valid JSON ({err.msg} at column {err.colno}): {text}",
            hint="Give a JSON object in single quotes, e.g. '{\"threshold\": 3.0}'.",
        ) from None
    if not isinstance(value, dict):
        raise BundleError(
            f"The {what} must be a JSON object, not {type(value).__name__}: {text}",
            hint="Wrap it in an object, e.g. '{\"values\": [1, 2, 3]}'.",
        )
    return value

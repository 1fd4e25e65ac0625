"""The function loop's steps in one place, shared by the magics, the CLI and the server extension.

One implementation, several faces: every face turns its input into calls of
``FaaSWorkspace`` methods and shows the progress events and results its own way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from traitlets import Instance, Unicode, default
from traitlets.config import LoggingConfigurable

from .builders import BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .bundle import Bundle, FunctionMetadata, check_limits, check_name
from .capture import capture, pinned_requirements
from .deployers import Deployment, FaaSDeployer
from .errors import BundleError
from .localtest import KernelRun, TestReport, run_in_kernel
from .traits import EntryPointType, backend_default

#: Container outcomes after which the function is not also run in the kernel.
_NOT_REPEATED = ("timeout", "out of memory")


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
    ) -> Bundle:
        """Capture ``cell`` as the bundle of function ``name`` (validated before anything is written)."""
        check_name(name)
        check_limits(memory_mb, timeout_s)
        captured = capture(cell, namespace, history, handler=handler)
        metadata = FunctionMetadata(
            name=name,
            handler=handler,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            test_input=test_input,
        )
        return Bundle.write(
            self.bundle_path(name),
            metadata,
            captured.source(),
            pinned_requirements(captured.modules),
            captured.local_modules,
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
        return self.builder.build(bundle, progress)

    def test(
        self,
        bundle: Bundle,
        args: dict,
        progress: Progress = no_progress,
        kernel_function=None,
    ) -> TestReport:
        """Build (or reuse) the image, run the function in a container and, if given, in the kernel."""
        if not isinstance(args, dict):
            raise BundleError(
                f"The test input must be a JSON object, not {type(args).__name__}.",
                hint="For example --test '{\"threshold\": 3.0}'.",
            )
        built = self.build(bundle, progress)
        container = self.builder.test(bundle, built, args, progress)
        kernel: KernelRun | None = None
        # The kernel has no limits: a function that outran or outgrew its container would
        # hang the notebook or take the kernel's memory, so it is not repeated there.
        if kernel_function is not None and container.status not in _NOT_REPEATED:
            kernel = run_in_kernel(kernel_function, args)
        return TestReport(bundle.name, args, container, kernel)

    def push(self, bundle: Bundle, progress: Progress = no_progress) -> PushedImage:
        built = self.build(bundle, progress)
        pushed = self.builder.push(built, progress)
        record = bundle.path / "image.json"
        record.write_text(
            json.dumps({"image": pushed.ref, "digest": pushed.digest}, indent=2) + "\n"
        )
        return pushed

    # -- the function server ---------------------------------------------------------------

    def deploy(self, bundle: Bundle, progress: Progress = no_progress) -> Deployment:
        """Deploy ``bundle``: its published dependency environment plus its code.

        The environment is pushed only when it is not published yet; a code-only edit
        sends just the code (it reaches the function's sandboxes through ``/init``).
        """
        start = time.perf_counter()
        built = self.build(bundle, progress)
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
        deployment = self.deployer.deploy(bundle, published)
        (bundle.path / "deployed.json").write_text(
            json.dumps(deployment.to_json(), indent=2) + "\n"
        )
        progress(
            {
                "step": "deploy",
                "message": f"Deployed {bundle.name} version {deployment.version} "
                f"in {time.perf_counter() - start:.2f} s",
                "progress": 1.0,
            }
        )
        return deployment

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

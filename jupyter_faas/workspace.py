"""The function loop's steps in one place, shared by the magics, the CLI and the server extension.

One implementation, several faces: every face turns its input into calls of
``FaaSWorkspace`` methods and shows the progress events and results its own way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from traitlets import Instance, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from .builder import BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .bundle import Bundle, FunctionMetadata, check_limits, check_name
from .capture import capture, pinned_requirements
from .deploy.local import DockerBuilder
from .errors import BundleError
from .localtest import KernelRun, TestReport, run_in_kernel


class FaaSWorkspace(LoggingConfigurable):
    """Where bundles live and which builder builds them."""

    bundle_dir = Unicode(
        help="""Folder holding one bundle folder per function, e.g. "functions" gives
        functions/peaks/handler.py. Relative paths are relative to the kernel's working
        directory (the notebook's folder). Default: $FAAS_BUNDLE_DIR or "functions".""",
    ).tag(config=True)

    builder_class = Type(
        DockerBuilder,
        klass=FaaSBuilder,
        help="""Class that does the Docker work. Installed: jupyter_faas.deploy.local.DockerBuilder
        (the local Docker engine). On JupyterHub a build-service client implements the same
        interface.""",
    ).tag(config=True)

    builder = Instance(FaaSBuilder, help="The builder instance (made from builder_class).")

    @default("bundle_dir")
    def _bundle_dir_default(self):
        return os.environ.get("FAAS_BUNDLE_DIR", "functions")

    @default("builder")
    def _builder_default(self):
        builder = self.builder_class(parent=self)
        self.log.debug("Using builder %s", type(builder).__name__)
        return builder

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
        if kernel_function is not None:
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

"""The function loop's steps in one place, shared by the magics, the CLI and the server extension.

One implementation, several faces: every face turns its input into calls of
``FaaSWorkspace`` methods and shows the progress events and results its own way.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from traitlets import Instance, Unicode, default
from traitlets.config import LoggingConfigurable

from .builder import BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .bundle import Bundle, FunctionMetadata, check_limits, check_name
from .capture import capture, pinned_requirements
from .client import ALARM_FEED, OpenWhiskClient, ServerError
from .deploy.local import DockerBuilder
from .errors import BundleError
from .localtest import KernelRun, TestReport, run_in_kernel
from .traits import EntryPointType

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
        DockerBuilder,
        klass=FaaSBuilder,
        entry_point_group="jupyter_faas.builders",
        help="""Class that does the Docker work, by entry-point name (e.g. "docker", the local
        Docker engine) or import path. On JupyterHub a build-service client implements the same
        interface.""",
    ).tag(config=True)

    builder = Instance(FaaSBuilder, help="The builder instance (made from builder_class).")

    client = Instance(OpenWhiskClient, help="The function server client.")

    @default("client")
    def _client_default(self):
        return OpenWhiskClient(parent=self)

    @default("bundle_dir")
    def _bundle_dir_default(self):
        return os.environ.get("FAAS_BUNDLE_DIR", "functions")

    @default("builder")
    def _builder_default(self):
        builder = self.builder_class(parent=self)
        self.log.info("Builder: %s.%s", type(builder).__module__, type(builder).__name__)
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

    def deploy(self, bundle: Bundle, progress: Progress = no_progress) -> dict:
        """Deploy ``bundle`` as a blackbox action: its dependency image plus its code.

        The image is pushed only when the registry does not have it yet; a code-only edit
        sends just the code (it reaches the action's containers through ``/init``).
        """
        start = time.perf_counter()
        built = self.build(bundle, progress)
        registry = self.builder.registry
        ref = registry.image_ref(built.key)
        digest = registry.manifest_digest(ref)
        if digest:
            progress(
                {"step": "push", "message": f"{ref} is in the registry already", "progress": 1.0}
            )
        else:
            pushed = self.builder.push(built, progress)
            ref, digest = pushed.ref, pushed.digest
        code = bundle.init_value()
        meta = bundle.metadata
        action = self.client.put_action(
            bundle.name,
            {
                "exec": {
                    "kind": "blackbox",
                    "image": ref,
                    "code": code["code"],
                    "main": meta.handler,
                    "binary": code["binary"],
                },
                "limits": {"timeout": int(meta.timeout_s * 1000), "memory": meta.memory_mb},
                "annotations": [
                    {"key": "jupyter-faas", "value": {"source_sha256": bundle.code_sha256()}}
                ],
            },
        )
        record = {
            "name": bundle.name,
            "server": self.client.api_host,
            "namespace": action.get("namespace"),
            "version": action.get("version"),
            "image": ref,
            "digest": digest,
            "code_sha256": bundle.code_sha256(),
            "time": time.time(),
        }
        (bundle.path / "deployed.json").write_text(json.dumps(record, indent=2) + "\n")
        progress(
            {
                "step": "deploy",
                "message": f"Deployed {bundle.name} version {record['version']} "
                f"in {time.perf_counter() - start:.2f} s",
                "progress": 1.0,
            }
        )
        return record

    def invoke(self, name: str, params: dict, blocking: bool = True) -> dict:
        """Invoke a deployed function; returns the activation record, or {"activationId"}."""
        _, body = self.client.invoke(check_name(name), params, blocking=blocking)
        return body

    def schedule(self, name: str, cron: str, payload: dict | None = None) -> str:
        """Run ``name`` periodically: an alarm trigger plus a rule, as `wsk` would create them."""
        check_name(name)
        self.client.get_action(name)
        trigger = f"{name}-cron-{hashlib.sha256(cron.encode()).hexdigest()[:8]}"
        self.client.put_trigger(
            trigger,
            [
                {"key": "feed", "value": ALARM_FEED},
                {"key": "jupyter-faas-schedule", "value": {"action": name, "cron": cron}},
            ],
        )
        try:
            self.client.alarm_feed("CREATE", trigger, cron=cron, trigger_payload=payload or {})
        except ServerError:
            self.client.delete_trigger(trigger)
            raise
        self.client.put_rule(_rule_name(trigger), trigger, name)
        return trigger

    def schedules(self, name: str | None = None) -> list[dict]:
        """The schedules made by ``schedule`` (for one function, or all)."""
        found = []
        for trigger in self.client.list_triggers():
            mark = _annotation(trigger, "jupyter-faas-schedule")
            if mark and (name is None or mark.get("action") == name):
                found.append({"trigger": trigger["name"], **mark})
        return found

    def unschedule(self, name: str, cron: str | None = None) -> list[str]:
        """Remove ``name``'s schedules (all, or the one with ``cron``); returns the triggers removed."""
        removed = []
        for entry in self.schedules(check_name(name)):
            if cron is not None and entry["cron"] != cron:
                continue
            trigger = entry["trigger"]
            steps = (
                (self.client.delete_rule, (_rule_name(trigger),)),
                (self.client.alarm_feed, ("DELETE", trigger)),
                (self.client.delete_trigger, (trigger,)),
            )
            for call, args in steps:
                try:
                    call(*args)
                except ServerError as err:
                    if err.status != 404:  # already gone counts as removed
                        raise
            removed.append(entry["trigger"])
        return removed

    def functions(self) -> list[dict]:
        """Bundles in bundle_dir and actions on the server, merged by name."""
        rows: dict[str, dict] = {}
        root = Path(self.bundle_dir)
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if (path / "faas.json").is_file():
                    rows[path.name] = {"name": path.name, "bundle": str(path), "deployed": False}
        for action in self.client.list_actions():
            row = rows.setdefault(action["name"], {"name": action["name"], "bundle": None})
            row.update(deployed=True, version=action.get("version"), updated=action.get("updated"))
        return sorted(rows.values(), key=lambda r: r["name"])

    def delete(self, name: str) -> dict:
        """Delete a deployed function and its schedules (its bundle folder stays)."""
        self.unschedule(name)
        return self.client.delete_action(check_name(name))


def _rule_name(trigger: str) -> str:
    """Rules and triggers share one name space in OpenWhisk, so the rule gets a suffix."""
    return f"{trigger}-rule"


def _annotation(entity: dict, key: str):
    for item in entity.get("annotations") or []:
        if item.get("key") == key:
            return item.get("value")
    return None


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

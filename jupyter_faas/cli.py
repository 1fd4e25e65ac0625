"""``jupyter faas …``: the function loop on bundle folders, outside a notebook.

Every subcommand is a traitlets Application, so any setting can be given as
``--FaaSRegistry.url=…`` and ``jupyter_faas_config.py`` is read as for Jupyter.
"""

from __future__ import annotations

import json
import sys

from jupyter_core.application import JupyterApp
from traitlets import Bool

from . import __version__
from .deployers import Accepted
from .deployers.openwhisk_rest import OpenWhiskClient
from .display import ACTIVATION_COLUMNS, Activation, Table, activation_rows
from .errors import ActivationFailed, FaaSError, for_cli
from .image import FaaSImages
from .registry import FaaSRegistry
from .site import FaaSSite
from .traits import EntryPointType
from .widgets import TextProgress
from .workspace import FaaSWorkspace, parse_json_object


def _parts() -> list[type]:
    """The configurable classes whose settings the commands accept and document."""
    builders = [EntryPointType.load("jupyter_faas.builders", n) for n in ("docker", "process")]
    return [FaaSWorkspace, *builders, FaaSSite, FaaSImages, FaaSRegistry, OpenWhiskClient]


class _Command(JupyterApp):
    """Shared plumbing: the config file, word arguments, FaaSError → message and exit 1."""

    name = "jupyter-faas"
    version = __version__
    usage = ""
    min_args = 1
    max_args = 1

    @property
    def config_file_name(self):
        return "jupyter_faas_config"

    @property
    def classes(self):
        return _parts()

    def start(self):
        words = self.extra_args
        if not self.min_args <= len(words) <= self.max_args:
            print(f"Usage: {self.usage}", file=sys.stderr)
            self.exit(2)
        workspace = FaaSWorkspace(parent=self)
        try:
            code = self.run(workspace, *words)
        except FaaSError as err:
            # One set of messages for every face; here their hints name CLI commands.
            print(f"error: {for_cli(str(err))}", file=sys.stderr)
            code = 1
        finally:
            workspace.close()
        if workspace.notice:
            print(f"note: {workspace.notice}", file=sys.stderr)
        self.exit(code)

    def run(self, workspace: FaaSWorkspace, *words: str) -> int:
        raise NotImplementedError


class _BundleCommand(_Command):
    """A command on a bundle folder, given as the first argument."""

    def run(self, workspace, path, *rest):
        return self.run_bundle(workspace, workspace.load(path), list(rest))

    def run_bundle(self, workspace: FaaSWorkspace, bundle, rest: list[str]) -> int:
        raise NotImplementedError


class BuildCommand(_BundleCommand):
    description = "Build (or reuse) the dependency image of a bundle."
    usage = "jupyter faas build PATH"

    def run_bundle(self, workspace, bundle, rest):
        progress = TextProgress()
        built = workspace.build(bundle, progress)
        progress.finish(
            True, f"{built.ref} {'reused' if built.reused else 'built'} in {built.seconds:.1f} s"
        )
        return 0


class TestCommand(_BundleCommand):
    __test__ = False
    description = "Run a bundle's function in a local container on a JSON input."
    usage = 'jupyter faas test PATH [\'{"key": "value"}\']'
    max_args = 2

    json_output = Bool(False, help="Print the report as JSON instead of text.").tag(config=True)
    flags = {"json": ({"TestCommand": {"json_output": True}}, "Print the report as JSON.")}

    def run_bundle(self, workspace, bundle, rest):
        if rest:
            args = parse_json_object(rest[0], "test input")
        else:
            args = bundle.metadata.test_input or {}
        report = workspace.test(bundle, args, TextProgress())
        if self.json_output:
            c = report.container
            print(
                json.dumps(
                    {
                        "status": c.status,
                        "result": c.result,
                        "logs": c.logs,
                        "seconds": c.seconds,
                        "peak_memory_bytes": c.peak_memory_bytes,
                    }
                )
            )
        else:
            print(report)
        return 0 if report.container.ok else 1


class PushCommand(_BundleCommand):
    description = "Push a bundle's dependency image to the configured registry."
    usage = "jupyter faas push PATH"

    def run_bundle(self, workspace, bundle, rest):
        progress = TextProgress()
        pushed = workspace.push(bundle, progress)
        print(f"{pushed.ref} {pushed.digest}")
        return 0


class DeployCommand(_BundleCommand):
    description = "Deploy a bundle to the function server (its image is pushed only if new)."
    usage = "jupyter faas deploy PATH"

    def run_bundle(self, workspace, bundle, rest):
        progress = TextProgress()
        deployment = workspace.deploy(bundle, progress)
        print(json.dumps(deployment.to_json()))
        return 0


class _ServerCommand(_Command):
    """A command on deployed functions: arguments are words, output is JSON or a table."""


class InvokeCommand(_ServerCommand):
    description = "Invoke a deployed function and print its activation (or, with --async, its id)."
    usage = "jupyter faas invoke NAME ['{\"key\": 1}'] [--async]"
    max_args = 2
    non_blocking = Bool(False, help="Return the activation id at once.").tag(config=True)
    flags = {"async": ({"InvokeCommand": {"non_blocking": True}}, "Do not wait for the result.")}

    def run(self, workspace, name, text="{}"):
        params = parse_json_object(text, "invoke input")
        try:
            record = workspace.invoke(name, params, blocking=not self.non_blocking)
        except ActivationFailed as err:
            print(Activation(err.record))
            raise
        if isinstance(record, Accepted):
            print(record.activation_id)
            return 0
        print(Activation(record))
        return 0


class ScheduleCommand(_ServerCommand):
    description = "Run a deployed function periodically (an alarm trigger and a rule)."
    usage = "jupyter faas schedule NAME 'CRON' ['{\"payload\": 1}']"
    min_args, max_args = 2, 3

    def run(self, workspace, name, cron, payload="{}"):
        print(workspace.deployer.schedule(name, cron, parse_json_object(payload, "payload")))
        return 0


class UnscheduleCommand(_ServerCommand):
    description = "Remove a function's schedules (all, or the one with CRON)."
    usage = "jupyter faas unschedule NAME ['CRON']"
    max_args = 2

    def run(self, workspace, name, cron=None):
        print("\n".join(workspace.deployer.unschedule(name, cron)) or "no schedules")
        return 0


class ActivationsCommand(_ServerCommand):
    description = "List recent activations (of one function)."
    usage = "jupyter faas activations [NAME]"
    min_args = 0

    def run(self, workspace, name=None):
        records = workspace.deployer.activations(name)
        print(Table(activation_rows(records), ACTIVATION_COLUMNS))
        return 0


class LogsCommand(_ServerCommand):
    description = "Show an activation's record and logs."
    usage = "jupyter faas logs ACTIVATION_ID"

    def run(self, workspace, activation_id):
        print(Activation(workspace.deployer.activation(activation_id)))
        return 0


class ListCommand(_ServerCommand):
    description = "List functions: bundles here and actions on the server."
    usage = "jupyter faas list"
    min_args = max_args = 0

    def run(self, workspace):
        print(Table(workspace.functions(), ["name", "bundle", "deployed", "version", "updated"]))
        return 0


class DeleteCommand(_ServerCommand):
    description = "Delete a function from the server (and its schedules); the bundle stays."
    usage = "jupyter faas delete NAME"

    def run(self, workspace, name):
        workspace.deployer.delete(name)
        return 0


class BaseCommand(JupyterApp):
    name = "jupyter-faas-base"
    description = "Make the base image offline from Debian packages: jupyter faas base build."

    def start(self):
        from .baseimage import base_build_main

        if not self.extra_args or self.extra_args[0] != "build":
            print("Usage: jupyter faas base build [--image NAME] [--mirror URL]", file=sys.stderr)
            self.exit(2)
        self.exit(base_build_main(sys.argv[sys.argv.index("build") + 1 :]))


class NamespaceCommand(JupyterApp):
    name = "jupyter-faas-namespace"
    description = (
        "Manage the function server's namespaces and keys: namespace create|rotate|delete NAME."
    )

    def parse_command_line(self, argv=None):
        """Its options are argparse's (see namespace_main), not traitlets'."""
        self.extra_args = list(argv or [])

    def start(self):
        from .server.app import namespace_main

        self.exit(namespace_main(self.extra_args))


class FaaSApp(JupyterApp):
    """jupyter faas: serverless functions from notebook code."""

    name = "jupyter-faas"
    version = __version__
    description = "Turn notebook code into serverless functions (bundle, build, test, push, serve)."
    subcommands = {
        "build": (BuildCommand, BuildCommand.description),
        "test": (TestCommand, TestCommand.description),
        "push": (PushCommand, PushCommand.description),
        "deploy": (DeployCommand, DeployCommand.description),
        "invoke": (InvokeCommand, InvokeCommand.description),
        "schedule": (ScheduleCommand, ScheduleCommand.description),
        "unschedule": (UnscheduleCommand, UnscheduleCommand.description),
        "activations": (ActivationsCommand, ActivationsCommand.description),
        "logs": (LogsCommand, LogsCommand.description),
        "list": (ListCommand, ListCommand.description),
        "delete": (DeleteCommand, DeleteCommand.description),
        "base": (BaseCommand, BaseCommand.description),
    }

    def start(self):
        if self.subapp is None:
            self.print_subcommands()
            self.exit(2)
        self.subapp.start()


def _add_server_commands() -> None:
    """The function server's commands (imported only when the CLI runs: it pulls in tornado)."""
    from .server.app import FunctionServer

    FaaSApp.subcommands["serve"] = (
        FunctionServer,
        "Start the OpenWhisk-compatible function server.",
    )
    FaaSApp.subcommands["namespace"] = (NamespaceCommand, NamespaceCommand.description)


def main(argv=None):
    _add_server_commands()
    FaaSApp.launch_instance(argv)


if __name__ == "__main__":
    main()

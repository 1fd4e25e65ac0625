"""``%%faas`` and ``%faas``: the function loop from a notebook.

The magics only parse arguments, call ``FaaSWorkspace`` and show results;
every failure the user can fix becomes a ``UsageError`` (a message, no
traceback) so the kernel stays usable and nothing already written is lost.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import sys
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Enum, Instance, default

from .deployers import Accepted
from .display import ACTIVATION_COLUMNS, Activation, Table, activation_rows, short_times
from .errors import ActivationFailed, BundleError, FaaSError
from .failure import TRACEBACK_HEAD
from .fanout import FanOutFailed, fan_out
from .widgets import InvokeForm, ProgressDisplay, TextProgress
from .workspace import FaaSWorkspace, parse_json_object

LINE_USAGE = """Usage:
  %faas build NAME          build (or reuse) the dependency image of function NAME
  %faas test NAME 'JSON'    run NAME in a local container on a JSON input
  %faas push NAME           push NAME's dependency image to the registry
  %faas deploy NAME         deploy NAME to the function server (pushes the image only if new)
  %faas invoke NAME 'JSON' [--async]   invoke NAME (--async returns the activation id)
  %faas invoke NAME params  invoke NAME on a dict of the kernel (any Python expression,
                            or -i/--input EXPR)
  %faas map NAME CHUNKS [--concurrency N] [--retries R] [--timeout S]
                            invoke NAME once per dict of CHUNKS (a Python expression),
                            N at a time, each failed chunk retried R times (default 4, 1);
                            results in input order (r = %faas map …)
  %faas form NAME           an invoke form (JSON input, Invoke button, result and logs)
  %faas schedule NAME 'CRON' ['JSON']  run NAME periodically, e.g. '*/5 * * * *'
  %faas unschedule NAME ['CRON']       remove NAME's schedules (or the one with CRON)
  %faas activations [NAME]  recent activations
  %faas logs ID             an activation's record and logs
  %faas list                functions: bundles here and actions on the server
  %faas versions NAME       every deploy of NAME (version, digest, code hash, time, who)
  %faas rollback NAME VERSION          deploy VERSION of NAME again, exactly as it was
  %faas delete NAME [--keep-bundle]    delete NAME from the server and its bundle folder
Sharing (OpenWhisk published packages):
  %faas publish NAME [--package P] [--description TEXT]  share NAME's deployed version
  %faas unpublish NAME [--package P]   stop sharing NAME
  %faas shared              functions every namespace published (OWNER/PACKAGE/NAME)
  %faas invoke OWNER/PACKAGE/NAME 'JSON'  invoke a shared function (runs count as yours)
  %faas bind OWNER/PACKAGE [--as NAME]    your own name for a shared package
                            (then %faas invoke NAME/FUNCTION)
  %faas sequence NAME STEP [STEP …]    NAME runs the steps in turn (yours or shared ones)
  %faas pull OWNER/PACKAGE/NAME [--as NEWNAME]  copy its bundle to derive your own:
                            a new %%faas NEWNAME cell with its code
Functions are made with a %%faas cell:
  %%faas NAME [--memory MB] [--timeout S] [--test 'JSON'] [--ignore-keys time,stats.elapsed]
         [--replace] [--base OWNER/PACKAGE/NAME]
         (--replace: take NAME over from the other cell that deployed it;
          --base: build on a published function's image, inheriting what it installed)"""

#: ``%faas map NAME CHUNKS [--concurrency N] [--retries R] [--timeout S]``.
_MAP_LINE = re.compile(
    r"^(?P<name>\S+)\s+(?P<chunks>.+?)"
    r"(?P<options>(?:\s+--(?:concurrency|retries|timeout)[ =]\d+(?:\.\d+)?)*)$",
    re.S,
)
_MAP_OPTION = re.compile(r"--(concurrency|retries|timeout)[ =](\d+(?:\.\d+)?)")

#: MIME type of the provenance a deploy hands the front end (it writes cell.metadata.faas).
PROVENANCE_MIME = "application/vnd.jupyter-faas.provenance+json"


@magics_class
class FaaSMagics(Magics):
    """The ``%%faas`` cell magic and the ``%faas`` line magic."""

    progress_style = Enum(
        ["auto", "widgets", "text"],
        default_value="auto",
        help="""How progress is shown: "widgets" (an ipywidgets bar and log, with a plain-text
        copy kept in the output), "text" (plain lines), or "auto" (widgets inside a Jupyter
        kernel, text elsewhere).""",
    ).tag(config=True)

    workspace = Instance(FaaSWorkspace, help="The workspace the magics act on.")

    @default("workspace")
    def _workspace_default(self):
        return FaaSWorkspace(parent=self)

    @magic_arguments()
    @argument("name", help="Function name: lowercase letters, digits and '-'.")
    @argument("--memory", type=int, default=256, help="Memory limit in MB (128-512).")
    @argument("--timeout", type=float, default=60.0, help="Time limit in seconds (0.1-300).")
    @argument("--handler", default="main", help="Function that receives the input dict.")
    @argument(
        "--test",
        default=None,
        help="JSON input to run the function on, in a container and in the kernel.",
    )
    @argument(
        "--ignore-keys",
        default=None,
        help="Comma-separated result keys the test's verdict leaves out (timestamps, timings, "
        "random values): a name at any depth, or a dotted path (stats.elapsed).",
    )
    @argument(
        "--replace",
        action="store_true",
        help="Take NAME over when another cell deployed it (otherwise that is refused).",
    )
    @argument(
        "--base",
        default=None,
        metavar="OWNER/PACKAGE/NAME",
        help="Start the dependency image FROM this published function's image (pinned by "
        "digest): inherit what it installed and add only this function's own requirements.",
    )
    @cell_magic
    def faas(self, line, cell):
        """Turn this cell into function NAME: capture, build or reuse its image, test it."""
        try:
            # shlex rather than parse_argstring: IPython's splitter keeps the quotes
            # around --test '{"threshold": 3.0}', which then is not JSON.
            args = self.faas.parser.parse_args(shlex.split(line))
        except ValueError as err:
            raise UsageError(
                f"Cannot split the %%faas line ({err}): {line}\n{LINE_USAGE}"
            ) from None
        except UsageError as err:
            raise UsageError(f"{err}\n{LINE_USAGE}") from None
        try:
            test_input = parse_json_object(args.test, "--test input") if args.test else None
            ignore_keys = split_keys(args.ignore_keys)
            history = [str(c) for c in self.shell.user_ns.get("In", [])[:-1]]
            bundle = self.workspace.capture_cell(
                args.name,
                cell,
                self.shell.user_ns,
                history,
                handler=args.handler,
                memory_mb=args.memory,
                timeout_s=args.timeout,
                test_input=test_input,
                ignore_keys=ignore_keys,
                origin=self._origin(f"%%faas {line}\n{cell}"),
                first_line=2,
                replace=args.replace,
                base=args.base,
            )
        except FaaSError as err:
            raise UsageError(str(err)) from None
        self._run_in_kernel(cell)
        progress = self._progress(f"Function {bundle.name}")
        try:
            with progress.failing_as(f"{bundle.name}: failed"):
                if test_input is None:
                    built = self.workspace.build(bundle, progress)
                else:
                    report = self.workspace.test(
                        bundle,
                        test_input,
                        progress,
                        kernel_function=self.shell.user_ns.get(args.handler),
                    )
        except FaaSError as err:
            raise UsageError(str(err)) from None
        if test_input is None:
            progress.finish(True, f"{bundle.name}: bundle {bundle.path}, image {built.ref}")
            return
        progress.finish(report.ok, f"{bundle.name}: {report.verdict}")
        display(report)

    @line_magic("faas")
    def faas_line(self, line):
        """%faas build|test|push NAME …: the steps on an existing function."""
        command, _, rest_text = line.strip().partition(" ")
        if command == "invoke" and rest_text.strip():
            # Not shlex: a 150 KB JSON input would cost ~0.3 s of splitting.
            try:
                return self._invoke(*parse_invoke_line(rest_text, self.shell.user_ns))
            except ActivationFailed as err:
                # Chained: sys.last_value.__cause__.record keeps the whole record.
                raise UsageError(str(err)) from err
            except FaaSError as err:
                raise UsageError(str(err)) from None
        if command == "map" and rest_text.strip():
            # Not shlex either: CHUNKS is a Python expression, spaces and all.
            try:
                return self._map(rest_text)
            except FanOutFailed as err:
                # Chained: sys.last_value.__cause__.result keeps every chunk's outcome.
                raise UsageError(str(err)) from err
            except FaaSError as err:
                raise UsageError(str(err)) from None
        words = shlex.split(line)
        if not words or words[0] in ("-h", "--help", "help"):
            print(LINE_USAGE)
            return
        command, rest = words[0], words[1:]
        handler = getattr(self, f"_line_{command}", None)
        if handler is None or (not rest and command not in ("list", "activations", "shared")):
            raise UsageError(f"Unknown or incomplete command: %faas {line}\n{LINE_USAGE}")
        try:
            inspect.signature(handler).bind(*rest)
        except TypeError:
            raise UsageError(f"Wrong arguments: %faas {line}\n{LINE_USAGE}") from None
        try:
            return handler(*rest)
        except FaaSError as err:
            raise UsageError(str(err)) from None

    def _map(self, text: str):
        """``%faas map NAME CHUNKS [options]``: a fan-out over the chunks of an expression."""
        found = _MAP_LINE.match(text.strip())
        if not found:
            raise UsageError(
                f"Usage: %faas map NAME CHUNKS [--concurrency N] [--retries R] "
                f"[--timeout S]; got: %faas map {text}"
            )
        options = dict(_MAP_OPTION.findall(found["options"] or ""))
        try:
            chunks = eval(found["chunks"], self.shell.user_ns)  # noqa: S307 - the user's kernel
        except Exception as err:
            raise UsageError(
                f"%faas map: CHUNKS {found['chunks']!r} is not a Python expression in the kernel "
                f"({type(err).__name__}: {err})."
            ) from None
        return fan_out(
            self.workspace,
            found["name"],
            chunks,
            concurrency=int(options.get("concurrency", 4)),
            retries=int(options.get("retries", 1)),
            timeout_s=float(options.get("timeout", 600)),
            progress=self.progress_style,
        )

    def _line_build(self, name):
        bundle = self.workspace.load(name)
        progress = self._progress(f"Build {name}")
        with progress.failing_as(f"{name}: build failed"):
            built = self.workspace.build(bundle, progress)
        progress.finish(True, f"{name}: image {built.ref}{' (reused)' if built.reused else ''}")

    def _line_test(self, name, text="{}"):
        bundle = self.workspace.load(name)
        args = parse_json_object(text, "test input")
        progress = self._progress(f"Test {name}")
        with progress.failing_as(f"{name}: test failed"):
            report = self.workspace.test(
                bundle, args, progress, kernel_function=kernel_twin(self.shell.user_ns, bundle)
            )
        progress.finish(report.ok, f"{name}: {report.verdict}")
        display(report)

    def _line_push(self, name):
        bundle = self.workspace.load(name)
        progress = self._progress(f"Push {name}")
        with progress.failing_as(f"{name}: push failed"):
            pushed = self.workspace.push(bundle, progress)
        progress.finish(True, f"{name}: pushed {pushed.ref} ({pushed.digest})")

    def _line_deploy(self, name):
        bundle = self.workspace.load(name)
        progress = self._progress(f"Deploy {name}")
        with progress.failing_as(f"{name}: deploy failed"):
            record = self.workspace.deploy(bundle, progress)
        progress.finish(True, f"{name}: version {record.version} on {record.server}")
        self._publish_provenance(record)

    def _publish_provenance(self, record) -> None:
        """Hand the deploy's provenance to the front end, which writes it into the cell.

        The same fields the sidebar writes into ``cell.metadata.faas``; ``cell_id`` says
        which cell (the one captured, not the one running this line).
        """
        provenance = provenance_of(record)
        if provenance["cell_id"]:
            display(
                {
                    PROVENANCE_MIME: provenance,
                    "text/plain": f"{record.name}: provenance of version {record.version} "
                    f"for its cell ({provenance['cell_id']})",
                },
                raw=True,
            )

    def _origin(self, source: str) -> dict:
        """The notebook cell running now: its notebook, id, hash and execution count."""
        import hashlib
        import os

        kernel = getattr(self.shell, "kernel", None)
        parent = kernel.get_parent("shell") if kernel is not None else {}
        parent = parent or {}
        code = (parent.get("content") or {}).get("code")
        if not isinstance(code, str) or not code.lstrip().startswith("%%faas"):
            code = source
        return {
            "notebook": os.environ.get("JPY_SESSION_NAME") or None,
            "cell_id": (parent.get("metadata") or {}).get("cellId"),
            "cell_sha256": hashlib.sha256(code.encode()).hexdigest(),
            "execution_count": getattr(self.shell, "execution_count", None),
        }

    def _line_versions(self, name):
        versions = self.workspace.deployer.versions(name)
        rows = [
            {
                "version": f"{v.version}{' (current)' if v.current else ''}",
                "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.time)),
                "who": v.who,
                "digest": v.digest,
                "code": v.code_sha256[:12],
                "rollback of": v.rollback_of,
            }
            for v in versions
        ]
        columns = ["version", "time", "who", "digest", "code", "rollback of"]
        display(Table(rows, columns, f"(no deploys of {name} recorded)"))

    def _line_rollback(self, name, version):
        record = self.workspace.rollback(name, version)
        print(f"{name}: version {version} deployed again as version {record.version}")
        self._publish_provenance(record)

    def _line_invoke(self, name):
        return self._invoke(name, {}, False)

    def _invoke(self, name: str, params: dict, is_async: bool):
        try:
            record = self.workspace.invoke(name, params, blocking=not is_async)
        except ActivationFailed as err:
            raise ExplainedFailure(err.record, self.workspace.explain(err.record)) from err
        if isinstance(record, Accepted):
            print(f"{name}: activation {record.activation_id} accepted; see %faas logs ID")
            return record.activation_id
        display(Activation(record))
        return record.result

    def _line_form(self, name):
        test_input = None
        path = self.workspace.bundle_path(name)
        if (path / "faas.json").exists():
            test_input = self.workspace.load(name).metadata.test_input
        workspace = self.workspace
        deployer = workspace.deployer
        deployer.function(name)  # a clear 404 now rather than at the first click

        def invoke(params):
            workspace.check_payload(params, f"The input of {name}")
            return deployer.invoke(name, params)  # a failed run is shown, not raised

        display(InvokeForm(name, invoke, json.dumps(test_input or {}), workspace.explain))

    def _line_schedule(self, name, cron, payload="{}"):
        trigger = self.workspace.deployer.schedule(
            name, cron, parse_json_object(payload, "payload")
        )
        print(f"{name}: scheduled {cron!r} (trigger and rule {trigger})")

    def _line_unschedule(self, name, cron=None):
        removed = self.workspace.deployer.unschedule(name, cron)
        print(f"{name}: removed {', '.join(removed) if removed else 'no schedules'}")

    def _line_publish(self, name, *words):
        options = _options("publish NAME", words, "--package", "--description")
        shared = self.workspace.deployer.publish(
            name, options.get("package", ""), options.get("description", "")
        )
        print(
            f"{name}: version {shared.version} published as {shared.ref}; others invoke it "
            f"with %faas invoke {shared.ref} and copy it with %faas pull {shared.ref}"
        )

    def _line_unpublish(self, name, *words):
        options = _options("unpublish NAME", words, "--package")
        self.workspace.deployer.unpublish(name, options.get("package", ""))
        print(f"{name}: no longer published; copies others pulled are theirs to keep")

    def _line_shared(self):
        rows = [
            {
                "function": f.ref + (" (yours)" if f.mine else ""),
                "description": f.description,
                "input": ", ".join(p.get("name", "") for p in f.contract.get("parameters") or []),
                "version": f.version,
                "updated": f.updated_ms,
            }
            for f in self.workspace.deployer.shared()
        ]
        columns = ["function", "description", "input", "version", "updated"]
        display(Table(rows, columns, "(nothing is published yet: %faas publish NAME shares one)"))

    def _line_bind(self, package_ref, *words):
        options = _options("bind OWNER/PACKAGE", words, "--as")
        name = self.workspace.deployer.bind(package_ref, options.get("as", ""))
        print(f"{package_ref} bound as {name}: %faas invoke {name}/FUNCTION 'JSON'")
        return name

    def _line_sequence(self, name, *steps):
        made = self.workspace.deployer.sequence(name, list(steps))
        print(f"{name}: version {made.version}, a sequence of {' → '.join(steps)}")

    def _line_pull(self, ref, *words):
        options = _options("pull OWNER/PACKAGE/NAME", words, "--as")
        pulled = self.workspace.deployer.pull(ref)
        name = options.get("as") or ref.rstrip("/").rpartition("/")[2]
        path = pulled.write_bundle(self.workspace.bundle_path(name), name).path
        cell = pulled.cell_text(name)
        self.shell.set_next_input(cell, replace=False)
        print(
            f"{ref} (version {pulled.version}) copied to {path}; the %%faas {name} cell below "
            "holds its code: edit it and run it to make it yours."
        )
        return cell

    def _line_activations(self, name=None):
        records = self.workspace.deployer.activations(name)
        display(Table(activation_rows(records), ACTIVATION_COLUMNS, "(no activations)"))

    def _line_logs(self, activation_id):
        record = self.workspace.deployer.activation(activation_id)
        display(Activation(record, self.workspace.explain(record)))

    def _line_list(self):
        columns = ["name", "bundle", "deployed", "version", "updated"]
        display(Table(self.workspace.functions(), columns, "(no functions)"))

    def _line_delete(self, name, *flags):
        unknown = [f for f in flags if f != "--keep-bundle"]
        if unknown:
            raise UsageError(f"Unknown option {unknown[0]}: %faas delete NAME [--keep-bundle]")
        done = self.workspace.delete(name, keep_bundle="--keep-bundle" in flags)
        parts = []
        if done["action_deleted"]:
            parts.append(f"deleted from {self.workspace.deployer.location}")
        if done["schedules_removed"]:
            parts.append(f"schedules {', '.join(done['schedules_removed'])} removed")
        parts.append(
            f"bundle {done['bundle_removed']} removed" if done["bundle_removed"] else "bundle kept"
        )
        print(f"{name}: {'; '.join(parts)} (%faas versions {name} still lists its deploys)")

    def _run_in_kernel(self, cell: str) -> None:
        """Define the cell's names in the kernel too, as running a plain cell would."""
        filename = self.shell.compile.cache(cell)
        exec(compile(cell, filename, "exec"), self.shell.user_ns)

    def _progress(self, title: str):
        style = self.progress_style
        if style == "auto":
            style = (
                "widgets"
                if "ipykernel" in sys.modules and self.shell.has_trait("kernel")
                else "text"
            )
        if style == "widgets":
            return ProgressDisplay(title)
        return TextProgress(sys.stdout)


class ExplainedFailure(ActivationFailed):
    """A failed run whose message leads with what went wrong, on the cell's lines."""

    def __init__(self, record, error: dict | None, logs_tail: int = 10):
        super().__init__(record)
        if error is None:
            return
        lines = [f"{record.name}: {error['headline']} (activation {record.activation_id})"]
        if error["traceback"]:
            lines.extend(error["traceback"].splitlines())
        printed = short_times(record.logs)
        if error["traceback"]:
            # The traceback is shown above, on the cell's lines: leave out its stderr lines.
            starts = [i for i, line in enumerate(printed) if line.endswith(TRACEBACK_HEAD)]
            if starts:
                printed = printed[: starts[-1]] + [
                    line for line in printed[starts[-1] :] if " stdout: " in line
                ]
        if printed:
            lines.append(
                f"Its output before it failed (last {min(logs_tail, len(printed))} lines):"
            )
            lines.extend(f"  {line}" for line in printed[-logs_tail:])
        FaaSError.__init__(
            self, "\n".join(lines), hint=f"The whole record: %faas logs {record.activation_id}"
        )


def provenance_of(record) -> dict:
    """A deploy's provenance, as the sidebar writes it into ``cell.metadata.faas``."""
    return {
        "name": record.name,
        "image": record.image,
        "digest": record.digest,
        "server": record.server,
        "namespace": record.namespace,
        "version": record.version,
        "time": record.time,
        "cell_sha256": record.cell_sha256,
        "cell_id": record.cell_id,
        "notebook": record.notebook,
    }


def _options(usage: str, words: tuple[str, ...], *names: str) -> dict[str, str]:
    """``--name VALUE`` (or ``--name=VALUE``) pairs of a line magic, by name without dashes."""
    found: dict[str, str] = {}
    items = list(words)
    while items:
        word = items.pop(0)
        flag, eq, value = word.partition("=")
        if flag not in names or (not eq and not items):
            allowed = " ".join(f"[{n} VALUE]" for n in names)
            raise UsageError(f"Unknown or incomplete option {word!r}: %faas {usage} {allowed}")
        found[flag.lstrip("-")] = value if eq else items.pop(0)
    return found


def split_keys(text: str | None) -> list[str]:
    """``--ignore-keys time, stats.elapsed`` as a list of keys."""
    return [key.strip() for key in (text or "").split(",") if key.strip()]


def kernel_twin(user_ns: dict, bundle):
    """The kernel's handler if its source is in the bundle (the same function), else None:
    comparing with another cell's ``main`` would only ever say "different"."""
    function = user_ns.get(bundle.metadata.handler)
    if not callable(function):
        return None
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return function if source.strip() in bundle.code else None


def parse_invoke_line(text: str, namespace: dict) -> tuple[str, dict, bool]:
    """``(name, input, async)`` from what follows ``%faas invoke``.

    The input is JSON text (quoted or not), or a Python expression evaluated in
    ``namespace`` (``params``, ``-i params``, or what IPython made of ``$params``): a dict
    in the kernel needs no JSON round trip through the line. JSON is parsed directly,
    never split by shlex, which costs ~0.3 s on a 150 KB input.
    """
    parts = text.strip().split(None, 1)
    name, rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")
    is_async = False
    while True:
        if rest == "--async":
            rest, is_async = "", True
        elif rest.endswith((" --async", "\t--async", "\n--async")):
            rest, is_async = rest[: -len("--async")].rstrip(), True
        elif rest.startswith("--async") and rest[7:8].isspace():
            rest, is_async = rest[7:].lstrip(), True
        else:
            break
    if not rest:
        return name, {}, is_async
    for flag in ("-i", "--input"):
        if rest.startswith(flag) and rest[len(flag) : len(flag) + 1].isspace():
            return name, _evaluate(rest[len(flag) :].strip(), namespace, None), is_async
    json_text = rest
    quote = rest[0]
    if quote in "'\"" and len(rest) > 1 and rest[-1] == quote:
        json_text = rest[1:-1]
        if not json_text.strip():
            return name, {}, is_async  # an empty input is the empty object
        if quote in json_text:
            try:
                json.loads(json_text)
            except ValueError:
                json_text = _unquote(rest)
        return name, parse_json_object(json_text, "invoke input"), is_async
    try:
        value = json.loads(json_text)
    except ValueError as err:
        return name, _evaluate(rest, namespace, err), is_async
    if not isinstance(value, dict):
        parse_json_object(json_text, "invoke input")  # raises, naming the type
    return name, value, is_async


def _unquote(text: str) -> str:
    """``text`` as the shell would read it, when it must be one quoted word (slow: shlex)."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise BundleError(
            f"Cannot read the invoke input ({err}): {text[:200]}",
            hint="Give a JSON object in single quotes, e.g. '{\"threshold\": 3.0}', "
            "or the name of a dict in the kernel.",
        ) from None
    if len(words) != 1:
        raise BundleError(
            f"%faas invoke takes NAME and one input, not {len(words)} words: {text[:200]}",
            hint="Quote the JSON input as one word, or pass a dict of the kernel by name.",
        )
    return words[0]


def _evaluate(expression: str, namespace: dict, json_error: ValueError | None) -> dict:
    """The dict ``expression`` evaluates to in the kernel's namespace."""
    try:
        value = eval(expression, namespace)  # noqa: S307 - the user's own kernel and code
    except Exception as err:
        what = f"{type(err).__name__}: {err}"
        if json_error is not None:
            head = (
                f"The invoke input is not valid JSON ({json_error.msg} at column "
                f"{json_error.colno}) nor a Python expression in the kernel ({what})"
            )
        else:
            head = f"The invoke input {expression[:200]!r} cannot be evaluated ({what})"
        raise BundleError(
            f"{head}: {expression[:200]}",
            hint="Give a JSON object in single quotes, e.g. '{\"threshold\": 3.0}', or the "
            "name of a dict in the kernel, e.g. %faas invoke NAME params.",
        ) from None
    if not isinstance(value, dict):
        raise BundleError(
            f"The invoke input {expression[:200]!r} is of type {type(value).__name__}, not a dict.",
            hint='Pass a dict, e.g. params = {"threshold": 3.0}; %faas invoke NAME params.',
        )
    return value

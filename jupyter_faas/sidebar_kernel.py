"""The kernel side of the sidebar's "capture this cell" button.

Capturing needs the live kernel namespace (names defined by earlier cells), so
the sidebar runs, silently in the notebook's kernel::

    import jupyter_faas.sidebar_kernel as _faas
    _faas.capture(NAME, SOURCE, MEMORY, TIMEOUT)

where SOURCE is the cell text written as a JSON string literal (which Python
reads as the same string). The answer's ``text/plain`` is a JSON object, never
an exception: a failure here must not leave a traceback in someone's notebook.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shlex
from pathlib import Path

from IPython import get_ipython
from IPython.core.error import UsageError

from .config import load_jupyter_config
from .errors import FaaSError
from .magics import FaaSMagics, kernel_twin, split_keys
from .workspace import TEST_FILE, FaaSWorkspace, parse_json_object

log = logging.getLogger(__name__)

_MAGIC = "%%faas"
_USAGE = (
    "Usage: %%faas NAME [--memory MB] [--timeout S] [--handler NAME] [--test 'JSON'] "
    "[--ignore-keys time,stats.elapsed]"
)


class CaptureReply(str):
    """JSON text whose ``repr`` is itself, so IPython's text/plain shows bare JSON.

    A plain ``str`` would come back quoted and escaped (its repr), which the
    sidebar would have to un-repr before it could parse the JSON.
    """

    def __repr__(self) -> str:
        return str(self)


def _reply(body: dict) -> CaptureReply:
    return CaptureReply(json.dumps(body))


def _workspace(shell) -> FaaSWorkspace:
    """The magics' workspace when ``%load_ext jupyter_faas`` ran (it follows %config), else a new one."""
    magics = shell.magics_manager.registry.get("FaaSMagics")
    if magics is not None:
        return magics.workspace
    config = load_jupyter_config()
    config.merge(shell.config)
    return FaaSWorkspace(config=config)


def _limits(memory, timeout) -> tuple:
    """The sidebar's limits, or the magic's defaults where it gave none."""
    parser = FaaSMagics.faas.parser
    return (
        parser.get_default("memory") if memory is None else memory,
        parser.get_default("timeout") if timeout is None else timeout,
    )


def _parse_line(line: str, memory, timeout) -> argparse.Namespace:
    """Options of a ``%%faas`` first line, parsed as the magic parses them."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        raise UsageError(f"Cannot split the {_MAGIC} line ({err}): {line}\n{_USAGE}") from None
    # argparse keeps the attributes the namespace it is given already has: the sidebar's
    # limits act as defaults that --memory / --timeout on the line override.
    namespace = argparse.Namespace(memory=memory, timeout=timeout)
    try:
        return FaaSMagics.faas.parser.parse_args(words, namespace=namespace)
    except UsageError as err:
        raise UsageError(f"{err}\n{_USAGE}") from None


def capture(
    name: str | None,
    source: str,
    memory: int | None = None,
    timeout=None,
    *,
    replace: bool = False,
    cell_id: str | None = None,
    notebook: str | None = None,
    test_input: dict | None = None,
) -> CaptureReply:
    """Capture a cell as a function bundle, then run the cell so its definitions exist.

    Args:
        name: The function name for a plain cell (one defining ``main``); a ``%%faas NAME``
            first line names the function itself and wins.
        source: The cell's text.
        memory: Memory limit in MB (128-512) unless the ``%%faas`` line gives ``--memory``;
            None: the magic's default.
        timeout: Time limit in seconds (0.1-300) unless the line gives ``--timeout``;
            None: the magic's default.
        replace: Take the name over when another cell deployed it (after asking).
        cell_id: The notebook cell's id, recorded as the function's origin.
        notebook: The notebook's path (default: the kernel's session, $JPY_SESSION_NAME).
        test_input: The test input the sidebar keeps in the cell's metadata; it wins over
            a ``--test`` on the ``%%faas`` line.

    Returns:
        JSON text: ``{"ok": true, "bundle": ABSOLUTE PATH, "name", "code_sha256"}`` or
        ``{"ok": false, "error": MESSAGE, "reason": WORD}`` (``"name-taken"`` with ``owner``
        when another cell deployed the name).
    """
    origin = {
        "notebook": notebook or os.environ.get("JPY_SESSION_NAME") or None,
        "cell_id": cell_id,
        "cell_sha256": hashlib.sha256(source.encode()).hexdigest()
        if isinstance(source, str)
        else None,
        "execution_count": None,
    }
    try:
        if test_input is not None and not isinstance(test_input, dict):
            raise UsageError(
                f"The test input must be a JSON object, not {type(test_input).__name__}."
            )
        return _capture(name, source, memory, timeout, origin, replace, test_input)
    except (FaaSError, UsageError) as err:
        body = err.to_json() if isinstance(err, FaaSError) else {"error": str(err)}
        return _reply({"ok": False, "reason": "usage", **body})
    except Exception as err:
        log.exception("Capturing the cell failed")
        return _reply(
            {"ok": False, "error": f"Capturing the cell failed: {type(err).__name__}: {err}"}
        )


def _capture(name, source, memory, timeout, origin, replace, given_input) -> CaptureReply:
    shell = get_ipython()
    if shell is None:
        raise UsageError("capture() runs inside an IPython kernel (the sidebar calls it there).")
    if not isinstance(source, str):
        raise UsageError(f"The cell source must be a string, not {type(source).__name__}.")
    first, _, body = source.lstrip().partition("\n")
    if first.startswith(_MAGIC):
        args = _parse_line(first[len(_MAGIC) :], *_limits(memory, timeout))
        name, cell, memory, timeout = args.name, body, args.memory, args.timeout
        handler, first_line = args.handler, 2
        test_input = parse_json_object(args.test, "--test input") if args.test else None
        ignore_keys = split_keys(args.ignore_keys)
    else:
        if not name:
            raise UsageError(
                "Give the function a name, or start the cell with a line like "
                f"{_MAGIC} peaks --memory 256."
            )
        cell, handler, test_input, ignore_keys = source, "main", None, []
        memory, timeout, first_line = *_limits(memory, timeout), 1
        args = None
    if given_input is not None:
        test_input = given_input
    if not isinstance(memory, int) or isinstance(memory, bool):
        raise UsageError(f"The memory limit must be a whole number of MB, not {memory!r}.")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise UsageError(f"The time limit must be a number of seconds, not {timeout!r}.")
    history = [str(entry) for entry in shell.user_ns.get("In", [])]
    bundle = _workspace(shell).capture_cell(
        name,
        cell,
        shell.user_ns,
        history,
        handler=handler,
        memory_mb=memory,
        timeout_s=float(timeout),
        test_input=test_input,
        ignore_keys=ignore_keys,
        origin=origin,
        first_line=first_line,
        replace=replace or getattr(args, "replace", False),
        base=getattr(args, "base", None),
    )
    path = Path(bundle.path).resolve()
    # As %%faas does: the cell's definitions exist in the kernel afterwards.
    try:
        exec(compile(cell, shell.compile.cache(cell), "exec"), shell.user_ns)
    except Exception as err:
        raise UsageError(
            f"The function {bundle.name} was captured to {path}, but running the cell in the "
            f"kernel raised {type(err).__name__}: {err}"
        ) from None
    return _reply(
        {"ok": True, "bundle": str(path), "name": bundle.name, "code_sha256": bundle.code_sha256()}
    )


def test(name: str, input_json: str = "{}") -> CaptureReply:
    """Test function ``name`` in its container and, beside it, in this kernel, as ``%%faas
    NAME --test`` does: the function page's Test tab runs this in the notebook's kernel.

    Args:
        name: The function (its bundle, as the magics find it).
        input_json: The test input, JSON text of an object ("" means {}).

    Returns:
        JSON text: the report (``ok``, ``verdict``, ``container``, ``kernel`` or null when the
        kernel's handler is not this function's, ``differences``, ``limits``) with the
        recorded ``message`` and ``error``; ``{"ok": false, "error", "reason"}`` when it
        cannot run. The outcome is kept in the bundle (test.json) as every test's is.
    """
    shell = get_ipython()
    try:
        if shell is None:
            raise UsageError(
                "test() runs inside an IPython kernel (the function page calls it there)."
            )
        workspace = _workspace(shell)
        bundle = workspace.load(name)
        args = parse_json_object(input_json.strip() or "{}", "test input")
        report = workspace.test(bundle, args, kernel_function=kernel_twin(shell.user_ns, bundle))
    except (FaaSError, UsageError) as err:
        body = err.to_json() if isinstance(err, FaaSError) else {"error": str(err)}
        return _reply({"ok": False, "reason": "usage", **body})
    except Exception as err:
        log.exception("Testing %s failed", name)
        return _reply({"ok": False, "error": f"Testing {name} failed: {type(err).__name__}: {err}"})
    try:
        recorded = json.loads((bundle.path / TEST_FILE).read_text())
    except (OSError, ValueError):
        recorded = {}
    return _reply(
        {**report.to_json(), "message": recorded.get("message"), "error": recorded.get("error")}
    )

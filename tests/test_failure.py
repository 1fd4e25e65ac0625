"""Failed runs read as the notebook's own errors (issue 12, finding 5), without a server.

The tracebacks here are real: a captured bundle's handler.py runs in our runtime
(``jupyter_faas.runtime.proxy``, the code the containers run) in a subprocess, and its
stderr becomes log lines the way the function server writes them (``server.pool.logs``).
The end-to-end path (a deployed function on the real server, through the REST API) is in
tests/extension/test_function_life.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from jupyter_faas.bundle import Bundle
from jupyter_faas.failure import explain, log_lines
from jupyter_faas.server.pool.logs import format_line, timestamp
from jupyter_faas.workspace import FaaSWorkspace

EARLIER = (
    "def helper(x):\n    if x < 0:\n        raise ValueError(f'negative: {x}')\n    return x\n"
)
CELL = (
    "import json\n"
    "\n"
    "def main(args):\n"
    "    print('checking', args['x'])\n"
    "    return {'y': helper(args['x'])}\n"
)


@pytest.fixture
def bundle(tmp_path, monkeypatch) -> Bundle:
    """``CELL`` captured below a ``%%faas`` line, using ``helper`` from an earlier cell."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    exec(EARLIER, namespace)
    workspace = FaaSWorkspace(bundle_dir=str(tmp_path / "functions"))
    return workspace.capture_cell("checker", CELL, namespace, [EARLIER], first_line=2)


def run_in_runtime(bundle: Bundle, args: dict, tmp_path) -> tuple[dict, list[str]]:
    """Run the bundle's handler in our runtime; its result and its output as server log lines."""
    script = (
        "import json, sys\n"
        "from jupyter_faas.runtime import proxy\n"
        "action = proxy.load_code(sys.stdin.read(), 'main', False)\n"
        "status, result, _ = action.call(json.loads(sys.argv[1]), {}, {})\n"
        "sys.stdout.flush()\n"
        "print('RESULT', json.dumps(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        input=bundle.code,
        capture_output=True,
        text=True,
        env={"FAAS_ACTION_DIR": str(tmp_path / "action"), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    out = done.stdout.splitlines()
    result = json.loads(out[-1].removeprefix("RESULT "))
    now = time.time_ns()
    lines = [format_line(timestamp(now), "stdout", line) for line in out[:-1]]
    lines += [format_line(timestamp(now), "stderr", line) for line in done.stderr.splitlines()]
    return result, lines


def test_a_raised_exception_reads_as_the_cell_would(bundle, tmp_path):
    result, logs = run_in_runtime(bundle, {"x": -2}, tmp_path)
    assert result == {"error": "ValueError: negative: -2"}
    error = explain("developer error", result, logs, bundle.metadata, bundle.code)
    assert error["headline"] == "your function raised ValueError: negative: -2"
    assert (error["type"], error["message"]) == ("ValueError", "negative: -2")
    # The runtime's own frame is gone; main is on the cell's line 6 (the %%faas line is 1),
    # helper (captured from an earlier cell) on its handler.py line.
    cell_line = CELL.splitlines().index("    return {'y': helper(args['x'])}") + 2
    assert [(f["where"], f["function"]) for f in error["frames"]] == [
        ("cell", "main"),
        ("handler.py", "helper"),
    ]
    assert error["frames"][0]["line"] == cell_line
    assert error["frames"][0]["text"] == "    return {'y': helper(args['x'])}"
    handler_lines = bundle.code.splitlines()
    helper_line = error["frames"][1]["line"]
    assert handler_lines[helper_line - 1] == "        raise ValueError(f'negative: {x}')"
    assert "proxy.py" not in error["traceback"]
    assert error["traceback"].splitlines() == [
        "Traceback (most recent call last):",
        f"  Cell checker, line {cell_line}, in main",
        "    return {'y': helper(args['x'])}",
        f'  File "handler.py" (from an earlier cell), line {helper_line}, in helper',
        "    raise ValueError(f'negative: {x}')",
        "ValueError: negative: -2",
    ]


def test_log_lines_get_a_short_time_and_keep_their_text(bundle, tmp_path):
    result, logs = run_in_runtime(bundle, {"x": -2}, tmp_path)
    lines = log_lines(logs)
    assert lines[0]["text"] == "checking -2" and lines[0]["stream"] == "stdout"
    for line in lines:
        assert len(line["time"]) == len("12:03:04.123") and line["time"][2] == ":"
        assert line["time"] in logs[lines.index(line)]  # the same instant, shortened
    # A local test container's lines have no OpenWhisk prefix: kept as they are.
    assert log_lines(["  indented"]) == [
        {"time": None, "ms": None, "stream": None, "text": "  indented"}
    ]


def test_a_success_has_no_error_and_other_failures_say_what_they_are(bundle, tmp_path):
    result, logs = run_in_runtime(bundle, {"x": 2}, tmp_path)
    assert result == {"y": 2}
    assert explain("success", result, logs, bundle.metadata, bundle.code) is None
    timeout = {"error": "The action exceeded its time limits of 1000 milliseconds."}
    assert explain("developer error", timeout, [])["headline"].startswith(
        "your function ran out of time"
    )
    returned = explain("application error", {"error": "no such user"}, [])
    assert returned["headline"] == "your function returned an error: no such user"
    assert returned["frames"] == [] and returned["traceback"] == ""


def test_without_its_bundle_frames_keep_handler_lines(bundle, tmp_path):
    result, logs = run_in_runtime(bundle, {"x": -1}, tmp_path)
    error = explain("developer error", result, logs)
    assert [f["where"] for f in error["frames"]] == ["handler.py", "handler.py"]
    assert error["headline"] == "your function raised ValueError: negative: -1"


def test_output_printed_between_the_traceback_lines_does_not_cut_it(bundle, tmp_path):
    # The server timestamps stdout and stderr apart: a print can land inside the traceback.
    result, logs = run_in_runtime(bundle, {"x": -2}, tmp_path)
    printed = [line for line in logs if " stdout: " in line]
    rest = [line for line in logs if " stdout: " not in line]
    interleaved = rest[:2] + printed + rest[2:]
    error = explain("developer error", result, interleaved, bundle.metadata, bundle.code)
    assert [f["function"] for f in error["frames"]] == ["main", "helper"]


def test_a_test_containers_mixed_output_inside_the_traceback_is_skipped(bundle, tmp_path):
    # A local test container's log has no stream prefix and mixes stdout into stderr.
    result, logs = run_in_runtime(bundle, {"x": -2}, tmp_path)
    plain = [line["text"] for line in log_lines(logs)]
    printed = plain.pop(0)
    assert printed == "checking -2"
    main_frame = next(i for i, text in enumerate(plain) if text.endswith(", in main"))
    for at in (main_frame + 1, main_frame + 2, len(plain) - 1):
        mixed = plain[:at] + [printed] + plain[at:]
        error = explain("developer error", result, mixed, bundle.metadata, bundle.code)
        assert [(f["where"], f["function"]) for f in error["frames"]] == [
            ("cell", "main"),
            ("handler.py", "helper"),
        ], mixed
        assert error["frames"][0]["text"] == "    return {'y': helper(args['x'])}"

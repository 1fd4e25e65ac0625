"""The runtime's start-up line never joins an activation's logs (issue 12, finding 1).

The port of a new sandbox can answer before its "listening" line has come through the
output stream; ``LogCollector.discard`` then drops the line when it comes. Real pipes and
the real collector thread; the writes stand in for the runtime's.
"""

from __future__ import annotations

import os
import time

from jupyter_faas.runtime.faas_protocol import marker
from jupyter_faas.server.pool.logs import RUNTIME_STARTED, LogCollector

TOKEN = "a" * 32


def collector():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    logs = LogCollector.pipes(
        os.fdopen(out_r, "rb", buffering=0), os.fdopen(err_r, "rb", buffering=0), "test"
    )
    return logs, out_w, err_w


def end_activation(out_w: int, err_w: int) -> None:
    os.write(out_w, f"{marker(TOKEN)}\n".encode())
    os.write(err_w, f"{marker(TOKEN)}\n".encode())


def texts(lines: list[str]) -> list[str]:
    return [line.split(": ", 1)[1] for line in lines]


def test_a_late_start_up_line_is_dropped_when_it_comes():
    logs, out_w, err_w = collector()
    try:
        logs.discard(RUNTIME_STARTED)  # before the line came through
        os.write(err_w, f"{RUNTIME_STARTED}0.0.0.0:8080\n".encode())
        os.write(out_w, b"init output\n")
        os.write(out_w, b"run output\n")
        end_activation(out_w, err_w)
        assert texts(logs.take(5, 1 << 20, TOKEN)) == ["init output", "run output"]
        # Only that one line: a later activation printing the same words keeps them.
        os.write(err_w, f"{RUNTIME_STARTED}by the function\n".encode())
        end_activation(out_w, err_w)
        assert texts(logs.take(5, 1 << 20, TOKEN)) == [f"{RUNTIME_STARTED}by the function"]
    finally:
        logs.close()
        os.close(out_w)
        os.close(err_w)


def test_a_start_up_line_already_here_is_dropped_at_once():
    logs, out_w, err_w = collector()
    try:
        os.write(err_w, f"{RUNTIME_STARTED}0.0.0.0:8080\n".encode())
        # A marker of another activation after it: once seen, the line before it is in.
        os.write(err_w, f"{marker('b' * 32)}\n".encode())
        deadline = time.monotonic() + 5
        while not logs.saw_sentinel:
            assert time.monotonic() < deadline, "the reader thread saw nothing"
            time.sleep(0.001)
        logs.discard(RUNTIME_STARTED)
        os.write(err_w, f"{RUNTIME_STARTED}printed by the function\n".encode())
        end_activation(out_w, err_w)
        lines = texts(logs.take(5, 1 << 20, TOKEN))
        assert f"{RUNTIME_STARTED}printed by the function" in lines
        assert f"{RUNTIME_STARTED}0.0.0.0:8080" not in lines
    finally:
        logs.close()
        os.close(out_w)
        os.close(err_w)

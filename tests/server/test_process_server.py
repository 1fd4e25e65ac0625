"""The real function server in container-less mode (``invoker_class=process``), as a subprocess.

One server serves the module: a python:3 action made through the REST API runs in a
runtime process; while it serves, ``namespace create`` refuses to add a second
tenant to its data directory; and a process-mode server refuses to start on a data
directory that already holds one. No Docker engine is needed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HERE, ROOT, Client, ServerProcess
from support import free_port

from jupyter_faas.server.app import SINGLE_NAMESPACE_FILE, namespace_main

A = "/api/v1/namespaces/_"
#: Seconds the server may take to start: the first start makes the runtime environment.
START_TIMEOUT = 300
LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr): (.*)$")

HELLO = """
import os, sys

def main(args):
    print("hello from", os.getpid())
    print("to err", file=sys.stderr)
    return {"greeting": "Hello, " + args.get("name", "world"), "pid": os.getpid()}
"""


@pytest.fixture(scope="session")
def env_root(tmp_path_factory) -> Path:
    """The session's environments root, shared with test_process_invoker (made once)."""
    root = tmp_path_factory.getbasetemp() / "process-envs"
    root.mkdir(exist_ok=True)
    return root


def process_args(env_root: Path) -> list[str]:
    return [
        "--FunctionServer.invoker_class=process",
        f"--FaaSEnvironments.root={env_root}",
        "--FunctionServer.shutdown_grace_s=1",
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory, env_root):
    data = tmp_path_factory.mktemp("process-server") / "data"
    proc = ServerProcess(data, free_port(), process_args(env_root), START_TIMEOUT).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def guest(server) -> Client:
    return server.client()


def test_python_action_runs_in_a_runtime_process(server, guest):
    r = guest.put(f"{A}/actions/hello", json={"exec": {"kind": "python:3", "code": HELLO}})
    assert r.status_code == 200, r.text
    r = guest.post(f"{A}/actions/hello?blocking=true", json={"name": "Ada"}, timeout=90)
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["response"]["status"] == "success", record
    result = record["response"]["result"]
    assert result["greeting"] == "Hello, Ada"
    assert result["pid"] not in (os.getpid(), server.proc.pid)
    logs = record["logs"]
    assert all(LINE_RE.match(line) for line in logs), logs
    assert any(line.endswith(f"stdout: hello from {result['pid']}") for line in logs), logs
    assert any(line.endswith("stderr: to err") for line in logs), logs
    assert not any("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX" in line for line in logs)
    # Warm: the same process answers again, without an init.
    again = guest.post(f"{A}/actions/hello?blocking=true&result=true", json={}, timeout=90)
    assert again.status_code == 200, again.text
    assert again.json() == {"greeting": "Hello, world", "pid": result["pid"]}
    text = server.log_path.read_text(errors="replace")
    assert "plain processes" in text and "guest namespace only" in text


def test_action_errors_read_as_in_a_container(guest):
    code = "import time\ndef main(args):\n    time.sleep(30)\n"
    r = guest.put(
        f"{A}/actions/sleeper",
        json={"exec": {"kind": "python:3", "code": code}, "limits": {"timeout": 1000}},
    )
    assert r.status_code == 200, r.text
    r = guest.post(f"{A}/actions/sleeper?blocking=true", json={}, timeout=90)
    record = r.json()
    assert record["response"]["status"] == "action developer error", record
    assert record["response"]["result"] == {
        "error": "The action exceeded its time limits of 1000 milliseconds."
    }


def test_namespace_create_refuses_while_the_server_serves_one(server, capsys):
    marker = server.data_dir / SINGLE_NAMESPACE_FILE
    assert "guest namespace only" in marker.read_text()
    assert namespace_main(["create", "bob", "--data-dir", str(server.data_dir)]) == 1
    err = capsys.readouterr().err
    assert "cannot create namespace 'bob'" in err
    assert "plain process" in err and "guest namespace only" in err
    assert "invoker_class = 'docker'" in err


def test_process_server_refuses_a_data_dir_with_a_second_tenant(tmp_path, env_root, capsys):
    data = tmp_path / "data"
    data.mkdir()
    assert namespace_main(["create", "alice", "--data-dir", str(data)]) == 0
    assert re.fullmatch(r"[0-9a-f-]{36}:\w{64}\n", capsys.readouterr().out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_faas.server",
            f"--data-dir={data}",
            f"--port={free_port()}",
            *process_args(env_root),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "keeps no namespaces apart" in output, output
    assert "alice" in output and "guest" in output
    assert "invoker_class = 'docker'" in output or "--data-dir" in output
    assert not (data / SINGLE_NAMESPACE_FILE).exists()

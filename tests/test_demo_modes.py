"""The demo notebook, unchanged, in both modes: on the Docker engine, and container-less.

``demo/peaks.ipynb`` is what ``scripts/up.sh`` runs. Here it runs in a real kernel against
a real function server twice: once with the Docker engine (builder and invoker on Docker),
once with ``DOCKER_HOST`` pointing at nothing, where the magics and ``jupyter faas serve``
pick the container-less mode by themselves and say so in one line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from support import running_function_server

from jupyter_faas.demo import DEMO, output_text

pytestmark = pytest.mark.docker

#: A Docker endpoint where nothing listens (port 9, discard, is closed here).
NO_ENGINE = "tcp://127.0.0.1:9"


def _run_demo(workdir: Path, env: dict[str, str]) -> tuple[list, bool]:
    shutil.copy(DEMO, workdir / DEMO.name)
    notebook = nbformat.read(workdir / DEMO.name, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute(env=env)
        ok = True
    except CellExecutionError:
        ok = False
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return [output_text(cell.get("outputs", [])) for cell in code], ok


@pytest.mark.parametrize("mode", ["docker", "process"])
def test_demo_notebook_runs_unchanged(mode, tmp_path, base_image, registry, test_labels):
    envs = tmp_path / "envs"
    server_env = {**os.environ, "FAAS_ENV_DIR": str(envs)}
    options = ["--DockerInvoker.prewarm_count=0"]
    if mode == "process":
        server_env["DOCKER_HOST"] = NO_ENGINE
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    labels = {k: v for k, v in test_labels.items()}
    (config_dir / "jupyter_faas_config.py").write_text(
        f"c.DockerBuilder.extra_labels = {labels!r}\n"
    )
    data = tmp_path / "server"
    data.mkdir()
    with running_function_server(data, test_labels, *options, env=server_env) as server:
        kernel_env = server.kernel_env(server_env, config_dir, registry, base_image)
        outputs, ok = _run_demo(tmp_path, kernel_env)
        log = server.log_tail(200)
    text = "\n---\n".join(outputs)
    assert ok, text
    load, _, test, push, deploy, invoke, activations, _ = outputs
    if mode == "process":
        assert "container-less mode" in load, load
        assert "No Docker engine answers" in log and "ProcessInvoker" in log, log
        assert "stays on this machine" in push, push
    else:
        assert load == "", load
        assert "ProcessInvoker" not in log
        assert "pushed 127.0.0.1:5000/" in push, push
    assert "peaks: equal" in test, test
    assert "peaks: version 0.0.1" in deploy, deploy
    assert ": success" in invoke and '"n":' in invoke, invoke
    assert "peaks" in activations, activations
    deployed = json.loads((tmp_path / "functions" / "peaks" / "deployed.json").read_text())
    assert deployed["version"] == "0.0.1" and deployed["name"] == "peaks"

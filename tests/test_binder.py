"""What Binder does with ``binder/``, done here: no Docker engine, nothing but ``binder/``.

repo2docker makes a fresh Python environment, installs ``binder/requirements.txt``, runs
``binder/postBuild`` in the repository and starts every session through ``binder/start``.
This test does the same with a clone of the committed repository (what Binder builds), a
new virtualenv, a fresh home directory and ``DOCKER_HOST`` pointing at nothing, then runs
both notebooks, one after the other, through one ``binder/start`` (one function server):
the demo, checked in the container-less mode from capture to invoke, and the
crystallography notebook with the small run its own test uses.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import venv
from pathlib import Path

import nbformat
import pytest
from support import NotebookRun, free_port
from test_crystallography_notebook import PARAMETERS, inject_parameters

from jupyter_faas.demo import output_text

ROOT = Path(__file__).resolve().parent.parent
#: A Docker endpoint where nothing listens.
NO_ENGINE = "tcp://127.0.0.1:9"
#: Bounds: installing JupyterLab and building the extension in a fresh environment (about
#: 5 min on a quiet 2-core machine, over 15 min on one shared with other test runs).
INSTALL_TIMEOUT_S = 1500
RUN_TIMEOUT_S = 1200
#: The crystallography notebook with the small run injected, written beside the original.
XTAL_NOTEBOOK = "examples/crystallography-binder.ipynb"

#: The environment's build and both notebooks fall on the first test (the module's fixtures).
pytestmark = pytest.mark.timeout(2 * INSTALL_TIMEOUT_S + RUN_TIMEOUT_S)


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory):
    """The repository as Binder sees it, with its environment built from ``binder/`` alone."""
    top = tmp_path_factory.mktemp("binder")
    repo = top / "repo"
    run(["git", "clone", "-q", str(ROOT), str(repo)], 120)
    env_dir = top / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    home = top / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "FAAS_"))},
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(env_dir),
        "HOME": str(home),
        "DOCKER_HOST": NO_ENGINE,
        "PYTHONNOUSERSITE": "1",
    }
    for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "__OW_API_HOST"):
        env.pop(key, None)
    python = str(env_dir / "bin" / "python")
    run(
        [python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
        INSTALL_TIMEOUT_S,
        cwd=repo,
        env=env,
    )
    run(["bash", "binder/postBuild"], INSTALL_TIMEOUT_S, cwd=repo, env=env)
    return repo, env, python


@pytest.fixture(scope="module")
def binder_session(binder_env):
    """Both notebooks run through one ``binder/start``: (repo, env, python, output, server log)."""
    repo, env, python = binder_env
    notebook = nbformat.read(repo / "examples" / "crystallography.ipynb", as_version=4)
    inject_parameters(notebook, PARAMETERS)
    nbformat.write(notebook, repo / XTAL_NOTEBOOK)
    port = free_port()
    log = Path(env["HOME"]) / "server.log"
    env = {**env, "FAAS_SERVER_PORT": str(port), "FAAS_SERVER_LOG": str(log)}
    # What Binder's start does with the notebook server, done with the demo runner instead.
    runner = f"{shlex.quote(python)} -m jupyter_faas.demo"
    proc = subprocess.Popen(
        [
            "bash",
            "binder/start",
            "bash",
            "-c",
            f"{runner} demo/peaks.ipynb; {runner} {XTAL_NOTEBOOK}",
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the function server start left running
        proc.wait()
    server_log = log.read_text() if log.exists() else "(no server log)"
    return repo, env, python, out, server_log


def test_binder_builds_and_the_demo_runs_without_an_engine(binder_session):
    repo, env, python, out, server_log = binder_session
    demo_part = out.split("\ndemo: ", 1)[0]  # the first runner's cells
    assert "demo: done; executed notebook: demo/peaks.out.ipynb" in out, (
        f"{demo_part[-4000:]}\n--- server log ---\n{server_log[-3000:]}"
    )
    assert "ProcessInvoker" in server_log, server_log[-3000:]
    notebook = nbformat.read(repo / "demo" / "peaks.out.ipynb", as_version=4)
    outputs = [output_text(c.get("outputs", [])) for c in notebook.cells if c.cell_type == "code"]
    load, _, test, push, deploy, invoke, activations, _ = outputs
    assert "container-less mode" in load, load
    assert "stays on this machine" in push, push
    assert "Error" not in "\n".join(outputs), outputs
    # The extension Binder's JupyterLab would load was built and installed.
    listing = run([python, "-m", "jupyter", "labextension", "list"], 120, cwd=repo, env=env)
    assert "jupyter-faas" in listing.stdout + listing.stderr


def test_binder_runs_the_crystallography_notebook_without_an_engine(binder_session):
    repo, _, _, out, server_log = binder_session
    executed = XTAL_NOTEBOOK.replace(".ipynb", ".out.ipynb")
    assert f"demo: done; executed notebook: {executed}" in out, (
        f"{out[-6000:]}\n--- server log ---\n{server_log[-3000:]}"
    )
    notebook = NotebookRun(nbformat.read(repo / executed, as_version=4))
    fan_out = notebook.text("fan-out")
    chunks = PARAMETERS["N_FRAMES"] // PARAMETERS["CHUNK_SIZE"]
    assert f"{chunks} activations over {chunks} chunks" in fan_out, fan_out
    text = "\n".join(
        output_text(c.get("outputs", [])) for c in notebook.nb.cells if c.cell_type == "code"
    )
    assert "container-less" in text, text[-3000:]
    for name in ("xtal-peaks", "xtal-chunk", "xtal-merge"):  # process test and kernel agree
        assert f"{name}: equal" in text and f"{name}: version 0.0.1" in text, text[-3000:]
    summary = json.loads((repo / "examples" / "xtal-out" / "summary.json").read_text())
    assert summary["frames"] == PARAMETERS["N_FRAMES"], summary
    assert summary["indexing_rate"] >= 0.9 and 0 < summary["cc_half"] <= 1, summary
    pictures = [o for o in notebook.outputs("pictures") if "image/png" in o.get("data", {})]
    assert pictures, notebook.text("pictures")


def test_binder_files_are_what_repo2docker_reads():
    """postBuild and start are executable scripts; start hands over to its arguments."""
    for name in ("postBuild", "start"):
        path = ROOT / "binder" / name
        assert os.access(path, os.X_OK), f"binder/{name} must be executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert (ROOT / "binder" / "start").read_text().rstrip().endswith('exec "$@"')

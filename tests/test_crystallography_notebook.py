"""``examples/crystallography.ipynb`` executed in a real kernel against a real function server.

Twice, with a small simulated run: on the Docker engine (functions read the run through a data
mount of the run's folder, mounted at its own path in the kernel's local test containers and
the server's action containers), and with no engine reachable (container-less, as on Binder).
Parameters are injected after the ``parameters`` cell as papermill does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from support import NotebookRun, running_function_server

from jupyter_faas.deployers.openwhisk_rest import OpenWhiskClient

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "crystallography.ipynb"
XTAL = ROOT / "examples" / "crystallography" / "xtal"
NATIVE = ROOT / "examples" / "crystallography" / "native"
#: A Docker endpoint where nothing listens (port 9, discard, is closed here).
NO_ENGINE = "tcp://127.0.0.1:9"
#: The small run: 24 frames in 4 chunks, two activations at a time.
PARAMETERS = {"N_FRAMES": 24, "CHUNK_SIZE": 6, "CONCURRENCY": 2, "SEED": 7}
CHUNKS = 4


def inject_parameters(notebook: nbformat.NotebookNode, parameters: dict) -> None:
    """Papermill's convention: a cell tagged injected-parameters right after the parameters."""
    index = next(
        i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
    )
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, cell)


def _cell_lengths(text: str) -> list[float]:
    """The a, b, c of a CrystFEL .cell file, in Å."""
    values = {
        k.strip(): v for k, v in (line.split("=", 1) for line in text.splitlines() if "=" in line)
    }
    return [float(values[k].split()[0]) for k in ("a", "b", "c")]


@pytest.fixture
def workdir():
    """A folder outside /tmp (a reserved container path), so it can be mounted at its own path."""
    folder = Path(tempfile.mkdtemp(prefix="faas-xtal-", dir="/var/tmp"))
    folder.chmod(0o755)  # actions run as uid 65534: they must reach the run below it
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("mode", ["docker", "process"])
def test_crystallography_notebook_runs(mode, workdir, base_image, registry, test_labels):
    shutil.copy(NOTEBOOK, workdir / NOTEBOOK.name)
    shutil.copytree(XTAL, workdir / "crystallography" / "xtal")
    shutil.copytree(
        NATIVE, workdir / "crystallography" / "native", ignore=shutil.ignore_patterns("build")
    )
    env = {**os.environ, "FAAS_ENV_DIR": str(workdir / "envs")}
    options = ["--DockerInvoker.prewarm_count=0"]
    config = f"c.DockerBuilder.extra_labels = {test_labels!r}\n"
    if mode == "process":
        env["DOCKER_HOST"] = NO_ENGINE
    else:
        mount = {str(workdir): f"{workdir}:rw"}
        options.append(f"--FaaSSite.data_mounts={workdir}={workdir}:rw")
        config += f"c.FaaSSite.data_mounts = {mount!r}\n"
    config_dir = workdir / "config"
    config_dir.mkdir()
    (config_dir / "jupyter_faas_config.py").write_text(config)
    server_data = workdir / "server"
    server_data.mkdir()
    notebook = nbformat.read(workdir / NOTEBOOK.name, as_version=4)
    inject_parameters(notebook, PARAMETERS)
    with running_function_server(server_data, test_labels, *options, env=env) as server:
        kernel_env = server.kernel_env(env, config_dir, registry, base_image)
        client = NotebookClient(
            notebook,
            timeout=900,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        try:
            client.execute(env=kernel_env)
            failed = None
        except CellExecutionError as err:
            failed = err
        run = NotebookRun(notebook, workdir)
        # Polls of running activations (404 until done) say nothing: left out of the log.
        log = [line for line in server.log_tail(400).splitlines() if " 404 GET " not in line]
        assert failed is None, f"{failed}\n--- server log ---\n" + "\n".join(log[-60:])
        listed = OpenWhiskClient(api_host=server.url, auth=server.key).list_activations(
            "xtal-chunk", limit=100
        )
    assert len(listed) == CHUNKS, listed
    text = _all_text(run)
    for name in ("xtal-peaks", "xtal-chunk", "xtal-merge"):  # container and kernel agree
        assert f"{name}: equal" in text and f"{name}: version 0.0.1" in text, text[-3000:]
    fan_out = run.text("fan-out")
    assert f"{CHUNKS} activations over {CHUNKS} chunks" in fan_out, fan_out
    assert "frames/s" in fan_out and "server/in-process" in fan_out, fan_out
    # The progress display: an ipywidgets bar in a kernel, with its plain-text copy.
    assert f"{CHUNKS}/{CHUNKS} chunks done" in fan_out, fan_out
    views = [o.data for o in run.outputs("fan-out") if o.output_type == "display_data"]
    assert any("application/vnd.jupyter.widget-view+json" in data for data in views), views
    if mode == "process":
        assert "container-less" in text
    out = workdir / "xtal-out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == PARAMETERS["N_FRAMES"]
    assert summary["hits"] >= 10 and summary["indexing_rate"] >= 0.9, summary
    truth = _cell_lengths((workdir / "xtal-data" / "run.cell").read_text())
    for refined, true in zip(summary["cell"][:3], truth, strict=True):
        assert abs(refined - true) / true < 0.005, (summary["cell"], truth)
    assert 0 < summary["cc_half"] <= 1, summary
    assert summary["frames_per_second"] > 0 and summary["in_process_frames_per_second"] > 0
    # Each activation left its chunk's stream in the run's folder, by reference.
    streams = sorted((out / "chunks").glob("chunk-*.stream"))
    assert len(streams) == CHUNKS, streams
    if mode == "docker":  # written through the mount by the action containers' user
        assert {path.stat().st_uid for path in streams} == {65534}
    stream = (out / "run.stream").read_text()
    assert stream.count("----- Begin chunk -----") == PARAMETERS["N_FRAMES"]
    assert (out / "merged.hkl").read_text().startswith("CrystFEL reflection list")
    assert f"indexed {summary['indexed']}" in run.text("summary")
    pictures = [o for o in run.outputs("pictures") if "image/png" in o.get("data", {})]
    assert pictures, run.text("pictures")
    _check_native_step(run)


def _check_native_step(run: NotebookRun) -> None:
    """The C peak finder: built, deployed and in agreement with find_peaks where gcc and
    libhdf5-dev are installed (as here), else skipped with the reason printed."""
    built, native = run.text("native-build"), run.text("native")
    if not shutil.which("gcc") or not list(Path("/usr/lib").glob("*/hdf5/serial/lib/libhdf5.a")):
        assert "Skipped the native step: no" in built and "Skipped" in native, built
        return
    assert "deployed it as xtal-peaks-native" in built, built
    frames = PARAMETERS["N_FRAMES"]
    counts = re.search(
        r"(\d+) frames: the same peak count on (\d+) \(largest difference (\d+)\)", native
    )
    assert counts and int(counts[1]) == frames and int(counts[3]) <= 1, native
    near = re.search(r"(\d+) of (\d+) Python peaks have a native one within 0.5 px", native)
    assert near and int(near[2]) > 0 and int(near[1]) >= 0.98 * int(near[2]), native
    assert "xtal-peaks-native on the function server:" in native, native
    assert [o for o in run.outputs("native") if "image/png" in o.get("data", {})], native


def _all_text(run: NotebookRun) -> str:
    from jupyter_faas.demo import output_text

    return "\n".join(
        output_text(c.get("outputs", [])) for c in run.nb.cells if c.cell_type == "code"
    )

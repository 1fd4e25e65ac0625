"""A function's whole life from the magics (issue 12), in a real kernel sent what JupyterLab sends.

JupyterLab puts each cell's id in the execute request's metadata (``cellId``) and starts
the kernel with its notebook's path in ``$JPY_SESSION_NAME``; nbclient does neither, so
this module drives a real ipykernel with jupyter_client and builds those requests itself.
The kernel deploys to a real function server (Docker) through a registry namespace of this
run's own, so the first deploy really pushes, in plain text (a terminal or a headless run).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import uuid
from pathlib import Path

import nbformat
import pytest
import requests
from jupyter_client.manager import start_new_kernel
from support import running_function_server

from jupyter_faas import engine

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL = "org.jupyter-faas.run"
OWNER_LABEL = "org.jupyter-faas.owner"
PROVENANCE_MIME = "application/vnd.jupyter-faas.provenance+json"
#: Seconds one cell may run (a first deploy pushes the runtime image).
CELL_TIMEOUT = 300
NAME = f"mlife-{uuid.uuid4().hex[:6]}"

CELL_A = (
    f"%%faas {NAME} --test '{{\"x\": 1}}'\n"
    "def main(args):\n"
    "    print('got', args)\n"
    "    if args.get('x', 0) < 0:\n"
    "        raise ValueError(f\"x must not be negative: {args['x']}\")\n"
    "    return {'x': args['x'], 'from': 'a'}\n"
)
CELL_B = (
    f"%%faas {NAME} --test '{{\"x\": 1}}'\n"
    "def main(args):\n"
    "    return {'x': args['x'], 'from': 'b'}\n"
)
RAISE_LINE = 5


class Kernel:
    """A real ipykernel; ``run`` sends a cell as JupyterLab does and collects its outputs."""

    def __init__(self, cwd: Path, env: dict):
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=env)

    def run(self, code: str, cell_id: str) -> dict:
        """Execute ``code`` as cell ``cell_id``: {"text", "error", "displays", "result"}."""
        client = self.client
        msg = client.session.msg(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            metadata={"cellId": cell_id},
        )
        client.shell_channel.send(msg)
        out = {"text": "", "error": "", "displays": [], "result": None}
        while True:
            try:
                reply = client.get_iopub_msg(timeout=CELL_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"cell {cell_id} did not finish: {out}") from None
            if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, content = reply["msg_type"], reply["content"]
            if kind == "stream":
                out["text"] += content["text"]
            elif kind == "error":
                out["error"] += f"{content['ename']}: {content['evalue']}"
            elif kind == "display_data":
                out["displays"].append(content["data"])
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "status" and content["execution_state"] == "idle":
                return out

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory, run_label):
    folder = tmp_path_factory.mktemp("magics-life-server")
    with running_function_server(
        folder, {RUN_LABEL: run_label}, "--DockerInvoker.prewarm_count=0", cwd=ROOT
    ) as running:
        yield running


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory, docker_client, base_image, registry, test_labels, run_label):
    work = tmp_path_factory.mktemp("magics-life")
    config = work / "config"
    config.mkdir()
    # A registry namespace of this run: the first deploy must push the runtime image.
    (config / "jupyter_faas_config.py").write_text(
        f"c.DockerBuilder.extra_labels = {test_labels!r}\n"
        f"c.FaaSRegistry.namespace = 'faas-life-{run_label}'\n"
        "c.FaaSMagics.progress_style = 'text'\n"
    )
    notebook = work / "life.ipynb"
    cells = [
        nbformat.v4.new_markdown_cell("# life", id="intro"),
        nbformat.v4.new_code_cell(CELL_A, id="cell-a"),
        nbformat.v4.new_code_cell(CELL_B, id="cell-b"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JPY_SESSION_NAME": str(notebook),
        "FAAS_REGISTRY": registry,
        "FAAS_BASE_IMAGE": base_image,
        "FAAS_BUNDLE_DIR": "functions",
        "__OW_API_HOST": server.url,
        "__OW_API_KEY": server.key,
    }
    made = Kernel(work, env)
    made.work = work
    owner = made.run("import os, socket\nf'{socket.gethostname()}-{os.getpid()}'", "owner")
    made.run("%load_ext jupyter_faas", "load")
    try:
        yield made
    finally:
        made.stop()
        for container in engine.containers_with_label(
            docker_client, **{OWNER_LABEL: owner["result"].strip("'")}
        ):
            engine.remove_container(container)
        # The push tagged the image locally under this run's registry namespace.
        for image in docker_client.images.list(name=f"{registry}/faas-life-{run_label}/deps"):
            for tag in image.tags:
                if f"/faas-life-{run_label}/" in tag:
                    docker_client.images.remove(tag)


@pytest.fixture(scope="module")
def life(kernel) -> dict:
    """The whole story, in order; each step's outputs by name."""
    steps = [
        ("capture-a", CELL_A, "cell-a"),
        ("deploy", f"%faas deploy {NAME}", "cell-d1"),
        ("capture-b", CELL_B, "cell-b"),
        ("fail", f"%faas invoke {NAME} '{{\"x\": -2}}'", "cell-f"),
        ("replace-b", CELL_B.replace(" --test", " --replace --test", 1), "cell-b"),
        ("deploy-b", f"%faas deploy {NAME}", "cell-d2"),
        ("versions", f"%faas versions {NAME}", "cell-v"),
        ("rollback", f"%faas rollback {NAME} 0.0.1", "cell-r"),
        ("invoke", f"%faas invoke {NAME} '{{\"x\": 3}}'", "cell-i"),
        ("activations", f"%faas activations {NAME}", "cell-act"),
        ("delete", f"%faas delete {NAME}", "cell-del"),
    ]
    outputs = {}
    for tag, code, cell_id in steps:
        outputs[tag] = kernel.run(code, cell_id)
        if tag == "deploy":  # the bundle is gone at the end
            record = kernel.work / "functions" / NAME / "deployed.json"
            outputs[tag]["deployed.json"] = json.loads(record.read_text())
    return outputs


def failure(output: dict) -> str:
    """A magic's refusal: IPython prints a UsageError's message (not its stack) on stderr."""
    assert "UsageError" in output["text"], output
    assert "magics.py" not in output["text"] and "site-packages" not in output["text"]
    return output["text"]


def test_deploy_writes_the_sidebars_provenance_for_the_functions_cell(life, kernel, server):
    (provenance,) = [d[PROVENANCE_MIME] for d in life["deploy"]["displays"] if PROVENANCE_MIME in d]
    # The cell captured (cell-a), not the cell running %faas deploy; the hash the sidebar takes.
    assert provenance["cell_id"] == "cell-a"
    assert provenance["cell_sha256"] == hashlib.sha256(CELL_A.encode()).hexdigest()
    assert provenance["notebook"] == str(kernel.work / "life.ipynb")
    assert set(provenance) == {
        "name",
        "image",
        "digest",
        "server",
        "namespace",
        "version",
        "time",
        "cell_sha256",
        "cell_id",
        "notebook",
    }
    assert (provenance["name"], provenance["version"]) == (NAME, "0.0.1")
    assert provenance["server"] == server.url and provenance["digest"].startswith("sha256:")
    deployed = life["deploy"]["deployed.json"]
    assert {k: deployed[k] for k in provenance} == provenance


def test_plain_text_push_progress_is_compact(life):
    text = life["deploy"]["text"]
    lines = text.splitlines()
    assert any(line.startswith("[push] Pushed ") for line in lines), text
    layers = [line for line in lines if re.fullmatch(r"\[push\] \d+ layers?: .*", line)]
    assert len(layers) == 1, text
    assert sum("Pushing" in line for line in lines) <= 1, text  # "[push] Pushing <image>"
    assert len(lines) < 15, text
    assert "Reusing" not in text or text.count("Reusing") == 1


def test_a_second_cell_is_refused_naming_the_first_and_the_option(life):
    error = failure(life["capture-b"])
    assert f"{NAME} is already deployed from cell 2 of life.ipynb (version 0.0.1)" in error
    assert f"%%faas {NAME} --replace" in error
    replaced = life["replace-b"]
    assert "UsageError" not in replaced["text"] and not replaced["error"], replaced
    (provenance,) = [
        d[PROVENANCE_MIME] for d in life["deploy-b"]["displays"] if PROVENANCE_MIME in d
    ]
    assert provenance["cell_id"] == "cell-b" and provenance["version"] == "0.0.2"


def test_a_failed_invoke_reads_as_the_cells_error(life):
    error = failure(life["fail"])
    assert f"{NAME}: your function raised ValueError: x must not be negative: -2" in error
    assert f"Cell {NAME}, line {RAISE_LINE}, in main" in error
    assert "raise ValueError(f\"x must not be negative: {args['x']}\")" in error
    assert "proxy.py" not in error and "/faas/" not in error
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} stdout: got \{'x': -2\}", error), error


def test_versions_rollback_and_activations(life):
    table = life["versions"]["text"] or life["versions"]["displays"][0]["text/plain"]
    rows = [line.split() for line in table.splitlines()[1:]]
    assert [r[0] for r in rows] == ["0.0.2", "0.0.1"], table
    assert rows[0][1] == "(current)"
    assert f"{NAME}: version 0.0.1 deployed again as version 0.0.3" in life["rollback"]["text"]
    assert life["invoke"]["result"] == "{'x': 3, 'from': 'a'}"
    listing = life["activations"]["displays"][0]["text/plain"]
    latest = listing.splitlines()[1].split()
    assert latest[-2:] == ["0.0.3", "guest"], listing


def test_delete_removes_the_action_and_the_bundle(life, kernel, server):
    text = life["delete"]["text"]
    assert f"{NAME}: deleted from {server.url}; bundle functions/{NAME} removed" in text
    assert not (kernel.work / "functions" / NAME).exists()
    session = requests.Session()
    session.trust_env = False
    user, key = server.key.split(":")
    gone = session.get(
        f"{server.url}/api/v1/namespaces/_/actions/{NAME}", auth=(user, key), timeout=10
    )
    assert gone.status_code == 404

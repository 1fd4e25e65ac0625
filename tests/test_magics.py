"""The notebook side of the function loop: the real magics in a real IPython kernel.

One notebook is built here and executed once with nbclient (a real ipykernel, the real
Docker engine, the real registry); the tests then read its saved outputs, the bundle
folders it wrote and the engine's state. The kernel runs in a temporary folder, so bundles
land in ``<tmp>/functions``.

Cleanup: the kernel's ``DockerBuilder`` labels its test containers with role ``test`` and
the owner label ``<host>-<kernel pid>``. The notebook's first cell prints that owner; after
the run every container with exactly that owner label is removed (the kernel removes its own
at exit too, so usually none are left). Dependency image tags this run created (absent
before it, and named in the notebook's output) are untagged, which deletes the image once
its last tag goes. The pushed image stays in the registry, which the setup script owns.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import socket
from pathlib import Path

import docker.errors
import nbformat
import pytest
import requests
from nbclient import NotebookClient
from support import NotebookRun

from jupyter_faas import engine

pytestmark = pytest.mark.docker

OWNER_LABEL = "org.jupyter-faas.owner"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

#: Lists the ids of this kernel's test containers (by the owner label DockerBuilder sets).
OWN_CONTAINERS = (
    "import json\n"
    "json.dumps(sorted(c.id for c in _docker.from_env().containers.list(\n"
    "    all=True, filters={'label': [f'org.jupyter-faas.owner={_owner}']})))"
)

#: (tag, source) of every cell; tags name the cells the tests read.
CELLS = [
    (
        "owner",
        "import os, socket\nimport docker as _docker\n"
        "_owner = f'{socket.gethostname()}-{os.getpid()}'\n_owner",
    ),
    ("load", "%load_ext jupyter_faas"),
    (
        "frame",
        "import numpy as np\n\ndef make_frame():\n    return np.arange(10.0).reshape(2, 5)",
    ),
    (
        "peaks",
        "%%faas peaks --memory 512 --timeout 60 --test '{\"threshold\": 3.0}'\n"
        "import numpy as np\n\nSCALE = 1\n\n"
        "def main(args):\n"
        '    return {"n": int(np.sum(make_frame() > args["threshold"] * SCALE))}',
    ),
    ("kernel-main", 'main({"threshold": 3.0})'),
    (
        "peaks-edit",
        "%%faas peaks --memory 512 --timeout 60 --test '{\"threshold\": 3.0}'\n"
        "import numpy as np\n\nSCALE = 2\n\n"
        "def main(args):\n"
        '    return {"n": int(np.sum(make_frame() > args["threshold"] * SCALE))}',
    ),
    ("build-only", "%%faas tiny\ndef main(args):\n    return {}"),
    ("line-build", "%faas build peaks"),
    ("line-test", "%faas test peaks '{\"threshold\": 1.0}'"),
    ("push", "%faas push peaks"),
    ("line-bad", "%faas frobnicate peaks"),
    ("ok-line-bad", "1+1"),
    ("syntax", "%%faas broken --test '{}'\ndef main(args):\n    x = (1 +\n    return x"),
    ("ok-syntax", "1+1"),
    ("nomain", "%%faas nomain --test '{}'\ndef handler(args):\n    return {}"),
    ("ok-nomain", "1+1"),
    ("badname", "%%faas Bad_Name --test '{}'\ndef main(args):\n    return {}"),
    ("ok-badname", "1+1"),
    ("badmemory", "%%faas fine --memory 64 --test '{}'\ndef main(args):\n    return {}"),
    ("ok-badmemory", "1+1"),
    ("noname", "%%faas --test '{}'\ndef main(args):\n    return {}"),
    ("ok-noname", "1+1"),
    ("badjson", "%%faas fine --test '[1, 2]'\ndef main(args):\n    return {}"),
    ("ok-badjson", "1+1"),
    ("openfile", "data_file = open('data.txt', 'w')"),
    (
        "usesfile",
        "%%faas usesfile --test '{}'\ndef main(args):\n    return {'name': data_file.name}",
    ),
    ("ok-usesfile", "1+1"),
    (
        "raiser",
        "%%faas raiser --test '{\"x\": 1}'\n"
        "def main(args):\n    print('about to fail')\n    raise ValueError('broken on purpose')",
    ),
    ("ok-raiser", "1+1"),
    ("containers-after-raise", OWN_CONTAINERS),
    ("fixed", "%%faas raiser --test '{\"x\": 1}'\ndef main(args):\n    return {'x': args['x']}"),
    ("containers-after-fix", OWN_CONTAINERS),
    (
        "ndarray",
        "%%faas arr --test '{}'\nimport numpy as np\n\ndef main(args):\n"
        "    return {'a': np.arange(3)}",
    ),
    ("ok-ndarray", "1+1"),
    (
        "slow",
        "%%faas slow --timeout 1 --test '{}'\nimport time\n\ndef main(args):\n"
        "    time.sleep(3)\n    return {}",
    ),
    ("ok-slow", "1+1"),
    ("containers-after-timeout", OWN_CONTAINERS),
    (
        "after-timeout",
        "%%faas raiser --test '{\"x\": 2}'\ndef main(args):\n    return {'x': args['x']}",
    ),
    (
        "hog",
        "%%faas hog --memory 128 --test '{}'\ndef main(args):\n"
        "    blocks = [bytearray(50 * 2**20) for _ in range(8)]\n    return {'n': len(blocks)}",
    ),
    ("ok-hog", "1+1"),
    (
        "noisy",
        "%%faas noisy --ignore-keys time,stats.elapsed --test '{\"n\": 3}'\n"
        "import random, time\n\ndef main(args):\n    start = time.time()\n"
        "    noise = 1 + random.uniform(-1e-13, 1e-13)\n"
        "    return {'n': args['n'], 'time': start,\n"
        "            'stats': {'elapsed': time.time() - start + random.random(),\n"
        "                      'mean': 0.1 * 3 * noise}}",
    ),
    ("noisy-line", "%faas test noisy '{\"n\": 3}'"),
    ("strict", "%config FaaSWorkspace.float_tolerance = 0\n%faas test noisy '{\"n\": 3}'"),
    (
        "input-limit",
        "%config FaaSWorkspace.max_payload_bytes = 100\n"
        'try:\n    %faas test noisy \'{"n": 3, "pad": "' + "p" * 120 + "\"}'\n"
        "finally:\n    %config FaaSWorkspace.max_payload_bytes = 1048576",
    ),
    ("ok-input-limit", "1+1"),
    (
        "huge",
        "%%faas huge --test '{}'\ndef main(args):\n"
        "    for i in range(300):\n        print('line', i, 'y' * 50)\n"
        "    return {'s': 'x' * 900_000}",
    ),
    (
        "huge-full",
        "_ws = get_ipython().magics_manager.registry['FaaSMagics'].workspace\n"
        "_report = _ws.test(_ws.load('huge'), {})\n"
        "len(_report.container.result['s']), len(_report.container.logs), len(str(_report)), "
        "len(_report._repr_html_())",
    ),
    (
        "toobig",
        "%%faas toobig --test '{}'\ndef main(args):\n    return {'s': 'x' * 1_100_000}",
    ),
]


def _notebook() -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_code_cell(src, metadata={"tags": [tag]}) for tag, src in CELLS]
    return nbformat.v4.new_notebook(cells=cells)


def _kernel_env(registry: str, base_image: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FAAS_REGISTRY": registry,
        "FAAS_BASE_IMAGE": base_image,
        "FAAS_BUNDLE_DIR": "functions",
    }
    if Path(CA_BUNDLE).is_file():
        env["FAAS_CA_BUNDLE"] = CA_BUNDLE
    return env


def _deps_tags(client) -> set[str]:
    images = client.images.list(filters={"label": f"{engine.ROLE_LABEL}=deps"})
    return {tag for image in images for tag in image.tags}


def _cleanup(client, nb: nbformat.NotebookNode, tags_before: set[str]) -> None:
    """Remove this kernel's containers, then the dependency image tags this run created."""
    owner_outputs = [o for o in nb.cells[0].outputs if o.output_type == "execute_result"]
    if owner_outputs:
        owner = owner_outputs[0].data["text/plain"].strip("'\"")
        for container in engine.containers_with_label(client, **{OWNER_LABEL: owner}):
            engine.remove_container(container)
    text = json.dumps(nb.cells)
    for tag in sorted(_deps_tags(client) - tags_before):
        if tag.split("/")[-1] in text:  # "deps:<key>" is named in our output
            try:
                client.images.remove(tag)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as err:
                if err.status_code != 409:  # in use by someone else's container: keep it
                    raise


@pytest.fixture(scope="module")
def run(tmp_path_factory, docker_client, base_image, registry) -> NotebookRun:
    workdir = tmp_path_factory.mktemp("magics")
    nb = _notebook()
    tags_before = _deps_tags(docker_client)
    client = NotebookClient(
        nb,
        timeout=240,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute(env=_kernel_env(registry, base_image))
        yield NotebookRun(nb, workdir)
    finally:
        _cleanup(docker_client, nb, tags_before)


def _transcript(run: NotebookRun, tag: str) -> str:
    """The text/plain twin of a cell's progress widget (the first display with a widget)."""
    for out in run.outputs(tag):
        if out.output_type == "display_data" and WIDGET_MIME in out.data:
            return out.data["text/plain"]
    raise AssertionError(f"cell {tag!r} shows no progress widget; its output:\n{run.text(tag)}")


def _report(run: NotebookRun, tag: str) -> str:
    """The text/plain form of a cell's test report (the display after the progress)."""
    reports = [
        o.data["text/plain"]
        for o in run.outputs(tag)
        if o.output_type == "display_data" and "text/html" in o.data
    ]
    assert reports, f"cell {tag!r} shows no test report; its output:\n{run.text(tag)}"
    return reports[-1]


# -- the example -------------------------------------------------------------------------


def test_peaks_runs_equal_in_container_and_kernel(run):
    report = _report(run, "peaks")
    assert report.startswith('peaks({"threshold": 3.0}): equal')
    assert re.search(r"result\s+container: \{\"n\": 6\}", report), report
    assert 'kernel:    {"n": 6}' in report
    assert re.search(r"wall time\s+container: [\d.]+ ms", report), report
    assert re.search(r"peak memory\s+container: [\d.]+ MiB", report), report
    assert (
        "<b style='color:var(--jp-success-color1, green)'>equal</b>"
        in (run.outputs("peaks")[-1].data["text/html"])
    )


def test_progress_widget_keeps_a_text_transcript(run):
    out = next(o for o in run.outputs("peaks") if WIDGET_MIME in o.get("data", {}))
    assert out.data[WIDGET_MIME]["model_id"]
    transcript = out.data["text/plain"]
    assert transcript.startswith("Function peaks\n")
    assert "[build] " in transcript and "dependency image jupyter-faas/deps:" in transcript
    assert "[test] Running the function in its container" in transcript
    assert transcript.endswith("peaks: equal")


def test_peaks_bundle_folder(run):
    bundle = run.workdir / "functions" / "peaks"
    handler = (bundle / "handler.py").read_text()
    assert "import numpy as np" in handler
    assert "def make_frame():\n    return np.arange(10.0).reshape(2, 5)" in handler
    assert "SCALE = 2" in handler  # the latest run of the cell
    assert "%%faas" not in handler
    pinned = f"numpy=={importlib.metadata.version('numpy')}\n"
    assert (bundle / "requirements.txt").read_text() == pinned
    meta = json.loads((bundle / "faas.json").read_text())
    assert meta["name"] == "peaks"
    assert meta["memory_mb"] == 512 and meta["timeout_s"] == 60
    assert meta["test_input"] == {"threshold": 3.0}


def test_cell_also_defines_main_in_the_kernel(run):
    assert run.result("kernel-main") == "{'n': 6}"


def test_code_only_edit_reuses_image_and_container(run):
    transcript = _transcript(run, "peaks-edit")
    assert "Reusing dependency image" in transcript
    assert "Building" not in transcript
    assert "Starting a test container" not in transcript
    report = _report(run, "peaks-edit")
    assert report.startswith('peaks({"threshold": 3.0}): equal')
    assert re.search(r"result\s+container: \{\"n\": 3\}", report), report


def test_cell_without_test_input_builds_only(run):
    transcript = _transcript(run, "build-only")
    assert re.search(r"tiny: bundle functions/tiny, image jupyter-faas/deps:\w+$", transcript)
    assert "[test]" not in transcript
    assert (run.workdir / "functions" / "tiny" / "handler.py").is_file()
    assert all("text/html" not in o.get("data", {}) for o in run.outputs("build-only"))


def test_line_magics_build_and_test(run):
    assert re.search(
        r"peaks: image jupyter-faas/deps:\w+ \(reused\)", _transcript(run, "line-build")
    )
    report = _report(run, "line-test")
    assert report.startswith('peaks({"threshold": 1.0}): container only')
    assert re.search(r"result\s+container: \{\"n\": 7\}", report), report


def test_push_prints_the_pushed_ref(run, registry):
    transcript = _transcript(run, "push")
    found = re.search(
        rf"peaks: pushed ({re.escape(registry)}/jupyter-faas/deps):(\w+) \((sha256:[0-9a-f]{{64}})\)",
        transcript,
    )
    assert found, transcript
    repository, tag, digest = found.groups()
    recorded = json.loads((run.workdir / "functions" / "peaks" / "image.json").read_text())
    assert recorded == {"image": f"{repository}:{tag}", "digest": digest}
    session = requests.Session()
    session.trust_env = False
    tags = session.get(f"http://{registry}/v2/jupyter-faas/deps/tags/list", timeout=10).json()
    assert tag in tags["tags"]


# -- errors: each a message, and the kernel keeps working ----------------------------------------


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("line-bad", ["Unknown or incomplete command: %faas frobnicate peaks", "%faas build NAME"]),
        ("syntax", ["Syntax error in the cell, line 2", "x = (1 +", "nothing was built"]),
        ("nomain", ["no function 'main'", "handler", "--handler NAME"]),
        ("badname", ["'Bad_Name' is not a valid function name", "'bad-name'"]),
        ("badmemory", ["--memory 64 is outside 128-512 MB", "--memory 256"]),
        ("noname", ["the following arguments are required: name", "%%faas NAME"]),
        ("badjson", ["--test input must be a JSON object", "list"]),
        ("usesfile", ["'data_file' is an open file", "by reference"]),
    ],
)
def test_usage_errors_leave_the_kernel_working(run, tag, words):
    errors = [o for o in run.outputs(tag) if o.output_type in ("stream", "error")]
    text = run.text(tag)
    assert errors and "UsageError" in text, text
    assert "Traceback" not in text  # a message, not a stack
    for word in words:
        assert word in text
    assert run.result(f"ok-{tag}") == "2"


def test_only_captured_cells_leave_bundles(run):
    bundles = {p.name for p in (run.workdir / "functions").iterdir()}
    assert bundles == {"peaks", "tiny", "raiser", "arr", "slow", "hog", "noisy", "huge", "toobig"}


def test_function_raising_shows_traceback_and_fix_reuses_the_container(run):
    report = _report(run, "raiser")
    assert report.startswith('raiser({"x": 1}): container failed')
    assert "ValueError: broken on purpose" in report
    logs = report.split("container logs:", 1)[1]
    assert "about to fail" in logs
    assert "Traceback (most recent call last)" in logs
    assert "raise ValueError('broken on purpose')" in logs
    assert _transcript(run, "raiser").endswith("raiser: container failed")
    assert run.result("ok-raiser") == "2"

    fixed = _report(run, "fixed")
    assert fixed.startswith('raiser({"x": 1}): equal')
    assert "Starting a test container" not in _transcript(run, "fixed")
    assert run.result("containers-after-raise") == run.result("containers-after-fix")


def test_result_not_json_serialisable_names_the_type(run):
    report = _report(run, "ndarray")
    assert report.startswith("arr({}): container failed")
    assert "not JSON-serialisable" in report
    assert "result['a'] has type ndarray" in report
    assert ".tolist()" in report
    assert run.result("ok-ndarray") == "2"


def test_timeout_is_reported_and_the_container_killed(run, docker_client):
    report = _report(run, "slow")
    assert report.startswith("slow({}): container failed")
    assert re.search(r"status\s+container: timeout", report), report
    assert "longer than its timeout of 1 s" in report
    assert "kernel:" not in report  # not repeated in the kernel, which has no time limit
    assert run.result("ok-slow") == "2"
    before = set(json.loads(run.result("containers-after-fix").strip("'")))
    after = set(json.loads(run.result("containers-after-timeout").strip("'")))
    killed = before - after
    assert len(killed) == 1, (before, after)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(killed.pop())
    # The next test of the same image starts a fresh container.
    assert "Starting a test container" in _transcript(run, "after-timeout")
    assert _report(run, "after-timeout").startswith('raiser({"x": 2}): equal')


def test_memory_exhaustion_is_reported_as_such(run):
    report = _report(run, "hog")
    assert report.startswith("hog({}): container failed")
    assert re.search(r"status\s+container: out of memory", report), report
    assert "exhausted its memory limit of 128 MB" in report
    assert "kernel:" not in report  # not repeated in the kernel, which has no memory limit
    assert run.result("ok-hog") == "2"


def test_kernel_removes_its_containers_at_exit(run, docker_client):
    owner = run.result("owner").strip("'")
    assert owner.startswith(f"{socket.gethostname()}-")
    assert list(engine.containers_with_label(docker_client, **{OWNER_LABEL: owner})) == []


# -- issue 8: comparing with care, limits and long outputs ----------------------------------------


def test_ignored_keys_and_float_noise_read_equal_within_tolerance(run):
    report = _report(run, "noisy")
    assert report.startswith('noisy({"n": 3}): equal within tolerance'), report
    assert re.search(r"compared\s+floats to a relative 1e-09; ", report), report
    assert "ignored keys: stats.elapsed, time" in report
    html_out = run.outputs("noisy")[-1].data["text/html"]
    assert "<b style='color:var(--jp-success-color1, green)'>equal within tolerance</b>" in html_out
    meta = json.loads((run.workdir / "functions" / "noisy" / "faas.json").read_text())
    assert meta["ignore_keys"] == ["time", "stats.elapsed"]


def test_line_test_uses_the_stored_keys_and_the_kernel_twin(run):
    report = _report(run, "noisy-line")
    assert report.startswith('noisy({"n": 3}): equal within tolerance'), report
    assert "ignored keys: stats.elapsed, time" in report


def test_zero_tolerance_names_the_first_difference(run):
    report = _report(run, "strict")
    assert report.startswith('noisy({"n": 3}): different'), report
    assert "floats to a relative 0; ignored keys: stats.elapsed, time" in report
    assert re.search(r"first difference at stats\.mean: [\d.e-]+ in the kernel, ", report)
    assert "> tolerance 0)" in report


def test_report_states_the_limits_the_server_enforces(run):
    report = _report(run, "noisy")
    assert re.search(
        r"limits\s+input 7 B of 1048576 B, result \d+ B of 1048576 B "
        r"\(what the function server enforces: c\.FaaSWorkspace\.max_payload_bytes",
        report,
    ), report


def test_input_over_the_payload_limit_is_refused_before_the_run(run):
    text = run.text("input-limit")
    assert "UsageError" in text and "Traceback" not in text, text
    assert "The test input of noisy is 136 bytes of JSON, over the 100-byte input limit" in text
    assert "c.FunctionServer.max_payload_bytes" in text
    assert run.result("ok-input-limit") == "2"


def test_huge_results_and_logs_are_shortened_with_the_full_value_an_attribute_away(run):
    report = _report(run, "huge")
    assert len(report) < 20_000, len(report)
    assert "more characters; the whole value: report.container.result)" in report
    assert "earlier lines left out; all are in report.container.logs" in report
    html_out = run.outputs("huge")[-1].data["text/html"]
    assert len(html_out) < 30_000, len(html_out)
    sizes = run.result("huge-full")
    assert sizes.startswith("(900000, 300, "), sizes
    text_len, html_len = (int(n) for n in sizes.strip("()").split(", ")[2:])
    assert text_len < 20_000 and html_len < 30_000


def test_result_over_the_server_limit_fails_the_local_test(run):
    report = _report(run, "toobig")
    assert report.startswith("toobig({}): different"), report
    assert re.search(r"status\s+container: application error", report)
    assert (
        "The action produced a response that exceeded the allowed length: 1100009 > 1048576 bytes."
        in report
    )


def test_old_faas_json_without_ignore_keys_still_loads(tmp_path):
    from jupyter_faas.bundle import Bundle
    from jupyter_faas.errors import BundleError

    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "handler.py").write_text("def main(args):\n    return {}\n")
    (folder / "faas.json").write_text('{"name": "old", "handler": "main", "memory_mb": 256}')
    assert Bundle.load(folder).metadata.ignore_keys == []
    (folder / "faas.json").write_text('{"name": "old", "ignore_keys": ["a b"]}')
    with pytest.raises(BundleError, match=r'Cannot ignore keys "a b": each must be a key name'):
        Bundle.load(folder)

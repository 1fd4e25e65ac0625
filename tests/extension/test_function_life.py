"""A function's whole life through the sidebar's REST API (issue 12), on real parts.

Functions are captured from cell text with ``FaaSWorkspace.capture_cell`` (as the kernel
does, with the cell's notebook and id), then built, tested, pushed and deployed by the
extension's jobs on the real Docker engine and the real function server, and driven from
there: errors mapped to the cell, what started each run, versions and rollback, the bundle,
the curl command (run), claims between cells, failed tests and pushes, delete.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import uuid
from pathlib import Path

import nbformat
import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell
from test_handlers import call, run_job, wait_job

from jupyter_faas import sidebar_kernel
from jupyter_faas.deployers.openwhisk_rest import OpenWhiskClient
from jupyter_faas.workspace import FaaSWorkspace, NameTaken

pytestmark = pytest.mark.docker

NOTEBOOK = "nb/life.ipynb"
#: The function's cell, below its %%faas line (cell line 1): main raises for x < 0.
CELL = (
    "def main(args):\n"
    "    print('got', args)\n"
    "    if args.get('x', 0) < 0:\n"
    "        raise ValueError(f\"x must not be negative: {args['x']}\")\n"
    "    return {'args': args, 'version': VERSION}\n"
)
RAISE_LINE = 5  # the raise, counted as the editor counts (the %%faas line is line 1)


def capture(root: Path, name: str, version: int, cell_id: str = "cell-a", replace=False):
    """Capture CELL as ``name`` into nb/functions, from cell ``cell_id`` of nb/life.ipynb."""
    namespace = {"__name__": "__main__"}
    earlier = f"VERSION = {version}\n"
    exec(earlier, namespace)
    workspace = FaaSWorkspace(bundle_dir=str(root / "nb" / "functions"))
    source = f"%%faas {name}\n{CELL}"
    return workspace.capture_cell(
        name,
        CELL,
        namespace,
        [earlier],
        origin={"notebook": NOTEBOOK, "cell_id": cell_id, "cell_sha256": _sha(source)},
        first_line=2,
        replace=replace,
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_notebook(root: Path) -> None:
    """nb/life.ipynb: a markdown cell, then cell-a and cell-b (cell 2 and 3)."""
    cells = [
        nbformat.v4.new_markdown_cell("# life", id="intro"),
        nbformat.v4.new_code_cell("%%faas f\n" + CELL, id="cell-a"),
        nbformat.v4.new_code_cell("%%faas f\n" + CELL, id="cell-b"),
    ]
    (root / "nb").mkdir(exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), root / NOTEBOOK)


async def deploy(jp_fetch, name: str) -> tuple[dict, list[dict]]:
    body, events = await run_job(jp_fetch, "deploy", f"nb/functions/{name}")
    assert body["status"] == "done", body
    return body["result"], events


def server_client(function_server) -> OpenWhiskClient:
    return OpenWhiskClient(api_host=function_server.url, auth=function_server.key)


async def test_a_failure_reads_as_the_cells_error_and_says_who_started_what(
    jp_fetch, jp_root_dir, function_server
):
    name = f"life-{uuid.uuid4().hex[:6]}"
    write_notebook(jp_root_dir)
    capture(jp_root_dir, name, 1)
    record, events = await deploy(jp_fetch, name)
    # One call deploys (build, push if needed, deploy), recording where the cell is.
    assert (record["notebook"], record["cell_id"]) == (NOTEBOOK, "cell-a")
    assert not any("Reusing" in e["message"] for e in events)
    assert events[-1]["status"] == "done" and events[-1]["step"] == "deploy"

    # An empty input is {} (finding 9).
    status, ok = await call(jp_fetch, "POST", "invoke", body={"name": name, "input": ""})
    assert status == 200, ok
    assert ok["result"] == {"args": {}, "version": 1} and ok["error"] is None

    status, failed = await call(jp_fetch, "POST", "invoke", body={"name": name, "input": {"x": -3}})
    assert status == 200, failed
    assert failed["ok"] is False and failed["status"] == "developer error"
    error = failed["error"]
    assert error["headline"] == "your function raised ValueError: x must not be negative: -3"
    assert error["frames"] == [
        {
            "where": "cell",
            "line": RAISE_LINE,
            "function": "main",
            "text": "        raise ValueError(f\"x must not be negative: {args['x']}\")",
        }
    ]
    assert "/faas/" not in error["traceback"] and "proxy.py" not in error["traceback"]
    assert error["traceback"].splitlines()[1] == f"  Cell {name}, line {RAISE_LINE}, in main"
    # Short times for display, the raw lines kept.
    # (stdout and stderr come through apart: the print may follow the traceback's start)
    printed = next(line for line in failed["lines"] if line["stream"] == "stdout")
    assert printed["text"] == "got {'x': -3}"
    assert all(len(line["time"]) == 12 for line in failed["lines"]), failed["logs"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", failed["logs"][0])
    assert failed["lines"][0]["time"] in failed["logs"][0]
    assert printed["time"] in failed["logs"][failed["lines"].index(printed)]

    status, full = await call(jp_fetch, "GET", "activations", failed["activationId"])
    assert full["error"] == error and full["version"] == "0.0.1"
    assert full["cause"]["kind"] == "person" and full["cause"]["subject"] == "guest"

    # A schedule's trigger, fired now, and a sequence: each run says what started it.
    status, created = await call(
        jp_fetch, "POST", "schedules", body={"name": name, "cron": "0 3 * * *"}
    )
    assert status == 201, created
    trigger = created["trigger"]
    client = server_client(function_server)
    client.request("POST", f"triggers/{trigger}", body={"x": 5}, ok=(202,))
    sequence = f"{name}-seq"
    client.put_action(sequence, {"exec": {"kind": "sequence", "components": [f"/_/{name}"]}})
    _, seq_record = client.invoke(sequence, {"x": 7})

    async def causes() -> dict:
        _, listing = await call(jp_fetch, "GET", "activations", params={"name": name})
        return {a["cause"]["kind"]: a for a in listing["activations"]}

    for _ in range(300):
        found = await causes()
        if "schedule" in found and "sequence" in found:
            break
        await asyncio.sleep(0.2)
    assert found["schedule"]["cause"]["trigger"] == trigger
    assert found["schedule"]["cause"]["cron"] == "0 3 * * *"
    assert found["schedule"]["cause"]["label"] == "schedule 0 3 * * *"
    assert found["sequence"]["cause"]["sequence"] == sequence
    assert found["sequence"]["cause"]["parent"] == seq_record["activationId"]
    assert found["person"]["cause"]["label"] == "guest"

    # ?since= gives only what started at or after a moment (for live refresh).
    newest = max(a["start"] for a in found.values())
    _, later = await call(
        jp_fetch, "GET", "activations", params={"name": name, "since": str(newest)}
    )
    _, everything = await call(jp_fetch, "GET", "activations", params={"name": name})
    assert later["activations"] and all(a["start"] >= newest for a in later["activations"])
    assert len(later["activations"]) < len(everything["activations"])

    status, detail = await call(jp_fetch, "GET", "functions", name)
    (schedule,) = detail["schedules"]
    assert schedule["next_run"]["words"].startswith("in ")
    client.delete_action(sequence)
    status, done = await call(jp_fetch, "DELETE", "functions", name)
    assert done["schedules_removed"] == [trigger]


async def test_versions_rollback_bundle_commands_status_and_delete(
    jp_fetch, jp_root_dir, function_server
):
    name = f"life-{uuid.uuid4().hex[:6]}"
    write_notebook(jp_root_dir)
    capture(jp_root_dir, name, 1)
    first, _ = await deploy(jp_fetch, name)
    capture(jp_root_dir, name, 2)
    second, _ = await deploy(jp_fetch, name)
    assert (first["version"], second["version"]) == ("0.0.1", "0.0.2")

    status, listing = await call(jp_fetch, "GET", "functions", name, "versions")
    assert status == 200, listing
    versions = listing["versions"]
    assert [(v["version"], v["current"]) for v in versions] == [("0.0.2", True), ("0.0.1", False)]
    for entry, deployed in zip(versions, (second, first), strict=True):
        assert entry["digest"] == deployed["digest"] and entry["digest"].startswith("sha256:")
        assert entry["code_sha256"] == deployed["code_sha256"]
        assert entry["who"] and entry["time"] == pytest.approx(deployed["time"], abs=5)
    assert versions[0]["code_sha256"] != versions[1]["code_sha256"]

    # Rollback: one call; the old code runs again, as a new version.
    status, rolled = await call(
        jp_fetch, "POST", "functions", name, "rollback", body={"version": "0.0.1"}
    )
    assert status == 200, rolled
    assert rolled["version"] == "0.0.3" and rolled["rollback_of"] == "0.0.1"
    assert rolled["current"] is True and rolled["code_sha256"] == first["code_sha256"]
    status, ran = await call(jp_fetch, "POST", "invoke", body={"name": name, "input": {}})
    assert ran["result"]["version"] == 1 and ran["version"] == "0.0.3"
    status, answer = await call(
        jp_fetch, "POST", "functions", name, "rollback", body={"version": "9.9.9"}
    )
    assert status == 404 and "0.0.3, 0.0.2, 0.0.1" in answer["error"]

    # The cheap poll: server state of every function.
    status, polled = await call(jp_fetch, "GET", "status")
    state = polled["functions"][name]
    assert state["version"] == "0.0.3" and state["digest"] == first["digest"]
    assert state["last_activation"]["activationId"] == ran["activationId"]

    # The bundle as it is on disk.
    status, files = await call(jp_fetch, "GET", "functions", name, "bundle")
    folder = jp_root_dir / "nb" / "functions" / name
    assert files["bundle"] == f"nb/functions/{name}"
    for file in ("handler.py", "requirements.txt", "faas.json"):
        assert files["files"][file] == (folder / file).read_text()

    # The commands: curl, run as shown, gives the function's result.
    status, detail = await call(jp_fetch, "GET", "functions", name)
    commands = detail["commands"]
    assert (
        commands["wsk"].startswith("wsk --apihost ") and f"action invoke {name}" in commands["wsk"]
    )
    assert commands["web_url"] is None
    shown = subprocess.run(
        ["bash", "-c", commands["curl"]], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(shown.stdout) == {"args": {}, "version": 1}
    assert detail["provenance"]["version"] == "0.0.3"
    assert detail["provenance"]["cell_id"] == "cell-a"

    # Delete: action, bundle and local state go; the history stays for a rollback.
    status, done = await call(jp_fetch, "DELETE", "functions", name)
    assert status == 200, done
    assert done["action_deleted"] is True and done["bundles_removed"] == [f"nb/functions/{name}"]
    assert not folder.exists()
    session = requests.Session()
    session.trust_env = False
    user, key = function_server.key.split(":")
    gone = session.get(
        f"{function_server.url}/api/v1/namespaces/_/actions/{name}", auth=(user, key), timeout=10
    )
    assert gone.status_code == 404
    status, listing = await call(jp_fetch, "GET", "functions")
    assert name not in [f["name"] for f in listing["functions"]]
    status, again = await call(jp_fetch, "DELETE", "functions", name)
    assert status == 404
    status, listing = await call(jp_fetch, "GET", "functions", name, "versions")
    assert [v["version"] for v in listing["versions"]] == ["0.0.3", "0.0.2", "0.0.1"]
    assert not any(v["current"] for v in listing["versions"])


def sidebar_capture(root: Path, monkeypatch, name: str, **kwargs) -> dict:
    """What the sidebar's capture answers, in an IPython shell working in the notebook's folder."""
    monkeypatch.chdir(root / "nb")
    monkeypatch.setenv("FAAS_BUNDLE_DIR", "functions")
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        shell.run_cell(f"VERSION = 3\n{CELL}", store_history=True)
        reply = sidebar_kernel.capture(
            None, f"%%faas {name}\n{CELL}", None, None, notebook=NOTEBOOK, **kwargs
        )
        return json.loads(str(reply))
    finally:
        InteractiveShell.clear_instance()


async def test_a_second_cell_must_ask_for_a_deployed_name(
    jp_fetch, jp_root_dir, function_server, monkeypatch
):
    name = f"life-{uuid.uuid4().hex[:6]}"
    write_notebook(jp_root_dir)
    capture(jp_root_dir, name, 1, cell_id="cell-a")
    await deploy(jp_fetch, name)

    claim = {"name": name, "notebook": NOTEBOOK}
    status, free = await call(jp_fetch, "POST", "claims", body={**claim, "cell_id": "cell-a"})
    assert status == 200 and free == {"name": name, "free": True}  # a redeploy: no question
    status, taken = await call(jp_fetch, "POST", "claims", body={**claim, "cell_id": "cell-b"})
    assert status == 409, taken
    assert taken["reason"] == "name-taken"
    assert f"{name} is already deployed from cell 2 of life.ipynb" in taken["error"]
    assert taken["owner"]["cell_id"] == "cell-a" and taken["owner"]["version"] == "0.0.1"

    # The kernel side refuses the same way (the sidebar's capture answers with the owner),
    # and takes the name over when told to.
    with pytest.raises(NameTaken, match="--replace"):
        capture(jp_root_dir, name, 2, cell_id="cell-b")
    answer = sidebar_capture(jp_root_dir, monkeypatch, name, cell_id="cell-b")
    assert answer["ok"] is False and answer["reason"] == "name-taken"
    assert answer["owner"]["cell_id"] == "cell-a"
    assert f"{name} is already deployed from cell 2 of life.ipynb" in answer["error"]
    capture(jp_root_dir, name, 2, cell_id="cell-b", replace=True)
    record, _ = await deploy(jp_fetch, name)
    assert record["cell_id"] == "cell-b"
    status, taken = await call(jp_fetch, "POST", "claims", body={**claim, "cell_id": "cell-a"})
    assert status == 409 and "cell 3 of life.ipynb" in taken["error"]
    await call(jp_fetch, "DELETE", "functions", name)


async def test_a_failed_test_stays_listed_as_such_and_can_be_removed(jp_fetch, jp_root_dir):
    name = f"life-{uuid.uuid4().hex[:6]}"
    write_notebook(jp_root_dir)
    capture(jp_root_dir, name, 1)
    path = f"nb/functions/{name}"
    body, build_events = await run_job(jp_fetch, "build", path)
    assert body["status"] == "done", body
    # The sidebar's test input (kept in the cell's metadata) is sent with the job.
    body, events = await run_job(jp_fetch, "test", path, input={"x": -1})
    assert body["status"] == "done", body
    result = body["result"]
    assert result["ok"] is False and result["verdict"] == "container failed"
    assert result["message"] == (
        f"The container test of {name} failed: your function raised ValueError: "
        "x must not be negative: -1."
    )
    assert "%%faas" not in result["message"]
    assert result["error"]["frames"][0]["line"] == RAISE_LINE
    # Right after the build, the test does not say "Reusing" again.
    assert not any("Reusing" in e["message"] for e in events)

    status, listing = await call(jp_fetch, "GET", "functions")
    row = next(f for f in listing["functions"] if f["name"] == name)
    assert row["state"] == "test-failed"
    assert row["test"]["ok"] is False and row["test"]["message"] == result["message"]

    status, done = await call(jp_fetch, "DELETE", "functions", name)
    assert status == 200 and done["bundles_removed"] == [path] and done["action_deleted"] is False
    status, listing = await call(jp_fetch, "GET", "functions")
    assert name not in [f["name"] for f in listing["functions"]]


async def test_a_failed_push_ends_the_push_step_as_failed(
    jp_fetch, jp_root_dir, faas_app, closed_port
):
    name = f"life-{uuid.uuid4().hex[:6]}"
    write_notebook(jp_root_dir)
    capture(jp_root_dir, name, 1)
    # This server's registry is a closed port: the push fails (connection refused).
    faas_app.workspace.builder.registry.url = f"127.0.0.1:{closed_port}"
    status, started = await call(
        jp_fetch, "POST", "jobs", body={"action": "deploy", "bundle": f"nb/functions/{name}"}
    )
    body, events = await wait_job(jp_fetch, started["id"])
    assert body["status"] == "failed"
    assert events[-1]["step"] == "push" and events[-1]["status"] == "failed"
    assert events[-1]["message"] == body["error"]["error"].split("\n")[0]
    assert not any(e["step"] == "deploy" for e in events)


async def test_a_web_action_shows_its_url_and_the_url_works(jp_fetch, function_server):
    name = f"life-web-{uuid.uuid4().hex[:6]}"
    client = server_client(function_server)
    code = "def main(args):\n    return {'hello': args.get('who', 'world')}\n"
    client.put_action(
        name,
        {
            "exec": {"kind": "python:3.11", "code": code},
            "annotations": [{"key": "web-export", "value": True}],
        },
    )
    status, detail = await call(jp_fetch, "GET", "functions", name)
    assert status == 200, detail
    url = detail["commands"]["web_url"]
    assert url == f"{function_server.url}/api/v1/web/guest/default/{name}.json"
    assert detail["web_url"] == url and detail["bundle"] is None
    session = requests.Session()
    session.trust_env = False
    answer = session.get(url, params={"who": "sidebar"}, timeout=60)
    assert answer.status_code == 200 and answer.json() == {"hello": "sidebar"}
    status, listing = await call(jp_fetch, "GET", "functions")
    assert next(f for f in listing["functions"] if f["name"] == name)["web_url"] == url
    status, done = await call(jp_fetch, "DELETE", "functions", name)
    assert done["action_deleted"] is True and done["bundles_removed"] == []

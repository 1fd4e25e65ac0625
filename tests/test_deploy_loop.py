"""Deploy, invoke, schedule and delete against a real function server, from every face.

One function server runs as a ``python -m jupyter_faas.server`` subprocess for this module:
the real DockerInvoker on the real Docker engine, pulling from the real registry on
127.0.0.1:5000. Its action containers carry this run's label (``--DockerInvoker.extra_labels``), so
its start-up orphan cleanup and the session's final cleanup touch only them; stopping the
server (SIGTERM) removes them as well.

The same loop is driven three ways: ``FaaSWorkspace`` in this process, the magics in a real
kernel (one nbclient notebook), and the ``jupyter faas`` command line in subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support import FunctionServer, NotebookRun, free_port, running_function_server
from traitlets.config import Config

from jupyter_faas import engine
from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.deployers import Accepted, Schedule
from jupyter_faas.deployers.openwhisk_rest import OpenWhiskClient
from jupyter_faas.errors import BundleError, ServerError
from jupyter_faas.workspace import FaaSWorkspace, parse_json_object

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL = "org.jupyter-faas.run"
OWNER_LABEL = "org.jupyter-faas.owner"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: A 6-field (seconds first) cron: the server is started with alarm_allow_seconds.
EVERY_2_S = "*/2 * * * * *"
#: Upper bound on waiting for a scheduled activation (three periods plus a cold start).
SCHEDULE_WAIT = 30

CODE_V1 = (
    "def main(args):\n"
    "    print('got', args.get('x'))\n"
    "    return {'version': 1, 'x': args.get('x')}\n"
)
CODE_V2 = CODE_V1.replace("'version': 1", "'version': 2")


@pytest.fixture(scope="module")
def server(tmp_path_factory, docker_client, registry, run_label):
    """``python -m jupyter_faas.server`` on a free port, stopped (SIGTERM) at the end."""
    folder = tmp_path_factory.mktemp("deploy-server")
    options = ("--FunctionServer.alarm_allow_seconds=True", "--DockerInvoker.prewarm_count=0")
    with running_function_server(folder, {RUN_LABEL: run_label}, *options, cwd=ROOT) as running:
        yield running


@pytest.fixture(scope="module")
def workspace(server, tmp_path_factory, base_image, registry, test_labels) -> FaaSWorkspace:
    """A workspace on this module's server, its images labelled for this run."""
    config = Config()
    config.FaaSWorkspace.bundle_dir = str(tmp_path_factory.mktemp("bundles"))
    config.OpenWhiskClient.api_host = server.url
    config.OpenWhiskClient.auth = server.key
    config.DockerBuilder.extra_labels = test_labels
    config.FaaSImages.base_image = base_image
    config.FaaSRegistry.url = registry
    made = FaaSWorkspace(config=config)
    yield made
    made.close()


def _messages(events: list[dict]) -> str:
    return "\n".join(str(e.get("message", "")) for e in events)


def _write_bundle(workspace: FaaSWorkspace, name: str, code: str, requirements: list[str]):
    meta = FunctionMetadata(name=name, memory_mb=256, timeout_s=30)
    return Bundle.write(workspace.bundle_path(name), meta, code, requirements)


def _wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition()`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


# -- FaaSWorkspace against the server ---------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(workspace, registry):
    """Function ``loop``: deployed once (a new image: pushed), then edited and redeployed.

    Its requirements file carries a comment unique to this run, so its dependency key (and
    image tag) is new: the first deploy must push it.
    """
    requirements = [f"# deploy-loop {uuid.uuid4().hex}"]
    first_events: list[dict] = []
    bundle = _write_bundle(workspace, "loop", CODE_V1, requirements)
    built = workspace.build(bundle)
    ref = workspace.builder.registry.image_ref(built.key)
    in_registry_before = workspace.builder.published(built) is not None
    first = workspace.deploy(bundle, first_events.append)
    first_run = workspace.deployer.invoke("loop", {"x": 1})
    edit_events: list[dict] = []
    edited = _write_bundle(workspace, "loop", CODE_V2, requirements)
    second = workspace.deploy(edited, edit_events.append)
    return {
        "ref": ref,
        "in_registry_before": in_registry_before,
        "first": first,
        "first_events": first_events,
        "first_run": first_run,
        "second": second,
        "edit_events": edit_events,
        "bundle": edited,
    }


def test_first_deploy_pushes_the_new_image(deployed, workspace):
    assert not deployed["in_registry_before"]
    text = _messages(deployed["first_events"])
    assert f"Pushing {deployed['ref']}" in text
    assert re.search(rf"Pushed {re.escape(deployed['ref'])} sha256:[0-9a-f]{{64}}", text), text
    assert workspace.builder.registry.manifest_digest(deployed["ref"]) == deployed["first"].digest
    record = deployed["first"]
    assert record.image == deployed["ref"]
    assert record.version == "0.0.1" and record.namespace == "guest"
    assert record.digest.startswith("sha256:")
    run = deployed["first_run"]
    assert run.ok and run.result == {"version": 1, "x": 1}


def test_code_only_edit_does_not_push_and_bumps_the_version(deployed, workspace):
    text = _messages(deployed["edit_events"])
    assert f"{deployed['ref']} is published already" in text
    assert "Pushing" not in text and "Building" not in text
    assert deployed["second"].version == "0.0.2"
    assert deployed["second"].image == deployed["ref"]
    # The digest of the image pushed by the first deploy is carried over, not lost.
    assert deployed["second"].digest == deployed["first"].digest
    saved = json.loads((deployed["bundle"].path / "deployed.json").read_text())
    assert saved["version"] == "0.0.2" and saved["digest"] == deployed["first"].digest
    action = workspace.deployer.client.get_action("loop", code=True)
    assert action["version"] == "0.0.2"
    assert action["exec"]["kind"] == "blackbox" and action["exec"]["image"] == deployed["ref"]
    assert "'version': 2" in action["exec"]["code"]
    run = workspace.deployer.invoke("loop", {"x": 2})
    assert run.version == "0.0.2"
    assert run.result == {"version": 2, "x": 2}


def test_invoke_form_checks_the_input_and_shows_the_activation(deployed, workspace):
    from jupyter_faas.widgets import InvokeForm

    form = InvokeForm("loop", lambda params: workspace.deployer.invoke("loop", params))
    form.input.value = "{bad"
    assert form.button.disabled and "Not valid JSON" in form.status.value
    assert form.submit() is None, "an invalid input is never sent"
    form.input.value = "[1, 2]"
    assert form.button.disabled and "not list" in form.status.value
    form.input.value = '{"x": 7}'
    assert not form.button.disabled and form.status.value == ""
    record = form.submit()
    assert record.result == {"version": 2, "x": 7}
    assert "success" in form.result.value and "got 7" in form.result.value
    missing = InvokeForm(
        "no-such-function", lambda params: workspace.deployer.invoke("no-such-function", params)
    )
    assert missing.submit() is None and "does not exist" in missing.status.value
    text = form._repr_mimebundle_()["text/plain"]
    assert (
        text
        == "Invoke form for loop (shown where widgets are rendered); elsewhere use: %faas invoke loop '{\"x\": 7}'"
    )


def test_blocking_invoke_returns_result_and_logs(deployed, workspace):
    record = workspace.deployer.invoke("loop", {"x": 3})
    assert record.ok and record.status == "success"
    assert record.result == {"version": 2, "x": 3}
    assert any(line.endswith("stdout: got 3") for line in record.logs), record.logs
    assert workspace.deployer.client.activation_logs(record.activation_id) == record.logs
    assert workspace.deployer.activation(record.activation_id) == record


def test_non_blocking_invoke_then_the_record(deployed, workspace):
    accepted = workspace.deployer.invoke("loop", {"x": 4}, blocking=False)
    assert isinstance(accepted, Accepted)
    activation_id = accepted.activation_id
    assert re.fullmatch(r"[0-9a-f]{32}", activation_id)
    record = workspace.deployer.client.wait_activation(activation_id, timeout=30)
    assert record["activationId"] == activation_id
    assert record["response"]["result"] == {"version": 2, "x": 4}
    assert workspace.deployer.activation(activation_id).name == "loop"
    listed = workspace.deployer.activations("loop")
    assert activation_id in [a.activation_id for a in listed]
    assert {a.name for a in listed} == {"loop"}


def test_schedule_fires_and_unschedule_removes_everything(deployed, workspace):
    client = workspace.deployer.client
    before = {a["activationId"] for a in client.list_activations("loop", limit=200)}
    trigger = workspace.deployer.schedule("loop", EVERY_2_S, {"x": 5})
    assert workspace.deployer.schedules("loop") == [Schedule(trigger, "loop", EVERY_2_S)]
    assert f"{trigger}-rule" in [r["name"] for r in client.list_rules()]
    assert client.alarm_feed("READ", trigger)["response"]["result"]["config"]["cron"] == EVERY_2_S

    def scheduled():
        return [
            a
            for a in client.list_activations("loop", limit=200)
            if a["activationId"] not in before and a.get("cause")
        ]

    fired = _wait_for(scheduled, SCHEDULE_WAIT, "an activation caused by the schedule")
    record = client.wait_activation(fired[-1]["activationId"], timeout=30)
    assert record["response"]["result"] == {"version": 2, "x": 5}

    assert workspace.deployer.unschedule("loop") == [trigger]
    assert workspace.deployer.schedules("loop") == []
    assert trigger not in [t["name"] for t in client.list_triggers()]
    assert f"{trigger}-rule" not in [r["name"] for r in client.list_rules()]
    with pytest.raises(ServerError, match="could not find trigger"):
        client.alarm_feed("READ", trigger)
    assert workspace.deployer.unschedule("loop") == []  # nothing left: still fine


def test_list_shows_bundle_and_deployment(deployed, workspace):
    rows = {row["name"]: row for row in workspace.functions()}
    row = rows["loop"]
    assert row["deployed"] is True and row["version"] == "0.0.2"
    assert row["bundle"] == str(deployed["bundle"].path)


def test_delete_removes_the_action_and_keeps_the_bundle(deployed, workspace):
    _write_bundle(workspace, "gone", CODE_V1, [])
    workspace.deploy(workspace.load("gone"))
    workspace.deployer.schedule("gone", EVERY_2_S)
    workspace.deployer.delete("gone")
    assert workspace.deployer.schedules("gone") == []
    with pytest.raises(ServerError) as caught:
        workspace.deployer.function("gone")
    assert caught.value.status == 404
    row = next(r for r in workspace.functions() if r["name"] == "gone")
    assert row["deployed"] is False and Path(row["bundle"]).is_dir()


# -- errors ------------------------------------------------------------------------------------


def test_unreachable_server_says_how_to_start_one():
    client = OpenWhiskClient(api_host=f"http://127.0.0.1:{free_port()}", auth="u:k")
    with pytest.raises(ServerError) as caught:
        client.list_actions()
    text = str(caught.value)
    assert "is not reachable" in text and "jupyter faas serve" in text
    assert caught.value.status == 503


def test_wrong_key_is_401_with_a_hint(server):
    wrong = f"{uuid.uuid4()}:{'k' * 64}"
    client = OpenWhiskClient(api_host=server.url, auth=wrong)
    with pytest.raises(ServerError) as caught:
        client.list_actions()
    assert caught.value.status == 401
    text = str(caught.value)
    assert "The supplied authentication is invalid" in text and "$__OW_API_KEY" in text


def test_missing_key_says_where_keys_come_from(server):
    client = OpenWhiskClient(api_host=server.url, auth="")
    with pytest.raises(ServerError, match="No API key") as caught:
        client.list_actions()
    assert "auth.guest" in str(caught.value)


def test_invoking_a_missing_function_is_404_with_a_hint(workspace):
    with pytest.raises(ServerError) as caught:
        workspace.deployer.invoke("no-such-function", {})
    assert caught.value.status == 404
    text = str(caught.value)
    assert "does not exist" in text and "%faas list" in text


def test_unknown_activation_is_404_pointing_at_the_activation_list(workspace):
    with pytest.raises(ServerError) as caught:
        workspace.deployer.activation("0" * 32)
    assert caught.value.status == 404 and "%faas activations" in str(caught.value)


def test_bad_cron_says_what_a_schedule_looks_like(deployed, workspace):
    with pytest.raises(ServerError) as caught:
        workspace.deployer.schedule("loop", "every monday")
    text = str(caught.value)
    assert "every monday" in text and "five fields" in text and "*/5 * * * *" in text
    assert not workspace.deployer.schedules("loop"), "the failed schedule left no trigger"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{bad", ["not valid JSON", "column 2", "{bad"]),
        ("[1, 2]", ["must be a JSON object, not list"]),
    ],
)
def test_bad_json_input_is_explained(text, words):
    with pytest.raises(BundleError) as caught:
        parse_json_object(text, "invoke input")
    for word in words:
        assert word in str(caught.value)
    assert "e.g." in str(caught.value)


def test_bad_function_name_is_refused_before_any_request(workspace):
    with pytest.raises(BundleError, match="'Bad_Name' is not a valid function name"):
        workspace.deployer.invoke("Bad_Name", {})


# -- the magics in a real kernel ---------------------------------------------------------------

#: Evaluates to the magics' workspace in the kernel.
KERNEL_WORKSPACE = "get_ipython().magics_manager.registry['FaaSMagics'].workspace"

NB_CELLS = [
    (
        "owner",
        "import os, socket\n_owner = f'{socket.gethostname()}-{os.getpid()}'\n_owner",
    ),
    ("load", "%load_ext jupyter_faas"),
    (
        "capture",
        "%%faas nbloop --test '{\"x\": 2}'\n"
        "def main(args):\n    print('nb got', args['x'])\n    return {'y': args['x'] * 10}",
    ),
    ("deploy", "%faas deploy nbloop"),
    ("invoke", "%faas invoke nbloop '{\"x\": 3}'"),
    ("invoke-async", "aid = %faas invoke nbloop '{\"x\": 4}' --async\naid"),
    (
        "wait-async",
        f"{KERNEL_WORKSPACE}.deployer.client.wait_activation(aid, 30)['activationId'] == aid",
    ),
    ("logs", "%faas logs $aid"),
    ("activations", "%faas activations nbloop"),
    ("form", "%faas form nbloop"),
    ("schedule", "%faas schedule nbloop '*/2 * * * * *' '{\"x\": 5}'"),
    (
        "wait-schedule",
        "import time\n"
        f"_client = {KERNEL_WORKSPACE}.deployer.client\n"
        f"_deadline = time.monotonic() + {SCHEDULE_WAIT}\n"
        "while not [a for a in _client.list_activations('nbloop') if a.get('cause')]:\n"
        "    assert time.monotonic() < _deadline, 'the schedule did not fire'\n"
        "    time.sleep(0.2)\n"
        "'fired'",
    ),
    ("unschedule", "%faas unschedule nbloop"),
    ("invoke-var", "params = {'x': 6}\nr = %faas invoke nbloop params\nr"),
    ("invoke-dollar", "%faas invoke nbloop $params"),
    (
        "invoke-big",
        "import json, time\nbig = {'x': 7, 'pad': 'p' * 150_000}\n"
        '_line = "invoke nbloop \'" + json.dumps(big) + "\'"\n'
        "r1 = get_ipython().run_line_magic('faas', _line)\n"
        "r2 = %faas invoke nbloop -i big\n"
        "r1 == r2 == {'y': 70}",
    ),
    (
        "payload-limit",
        "%config FaaSWorkspace.max_payload_bytes = 1000\n"
        "try:\n    %faas invoke nbloop big\n"
        "finally:\n    %config FaaSWorkspace.max_payload_bytes = 1048576",
    ),
    ("ok-payload-limit", "1+1"),
    (
        "fail-capture",
        "%%faas nbfail\ndef main(args):\n"
        "    for i in range(30):\n        print('step', i)\n"
        "    return {'error': f\"no data for {args['x']}\"}",
    ),
    ("fail-deploy", "%faas deploy nbfail"),
    ("fail-invoke", "%faas invoke nbfail '{\"x\": 9}'"),
    (
        "fail-record",
        "import sys\n_failed = sys.last_value.__cause__\n"
        "from jupyter_faas.errors import ActivationFailed\n"
        "(type(_failed).__name__, _failed.record.result, _failed.record.status,\n"
        " isinstance(_failed, ActivationFailed))",
    ),
    (
        "huge-capture",
        "%%faas nbhuge\ndef main(args):\n"
        "    for i in range(200):\n        print('row', i)\n"
        "    return {'s': 'z' * 600_000}",
    ),
    ("huge-deploy", "%faas deploy nbhuge"),
    ("huge-invoke", "r = %faas invoke nbhuge\nlen(r['s'])"),
    ("list", "%faas list"),
    ("delete", "%faas delete nbloop"),
    ("missing", "%faas invoke nbloop '{}'"),
    ("ok-missing", "1+1"),
    ("badjson", "%faas invoke nbloop '{bad'"),
    ("ok-badjson", "1+1"),
    ("nojsonarg", "%faas invoke"),
    ("ok-nojsonarg", "1+1"),
    (
        "unreachable",
        f"{KERNEL_WORKSPACE}.deployer.client.api_host, _host = 'http://127.0.0.1:9', "
        f"{KERNEL_WORKSPACE}.deployer.client.api_host\n"
        "try:\n    %faas list\nfinally:\n"
        f"    {KERNEL_WORKSPACE}.deployer.client.api_host = _host",
    ),
    ("ok-unreachable", "1+1"),
]


@pytest.fixture(scope="module")
def notebook(server, tmp_path_factory, docker_client, base_image, registry) -> NotebookRun:
    workdir = tmp_path_factory.mktemp("deploy-magics")
    cells = [nbformat.v4.new_code_cell(src, metadata={"tags": [tag]}) for tag, src in NB_CELLS]
    nb = nbformat.v4.new_notebook(cells=cells)
    env = {
        **os.environ,
        "FAAS_REGISTRY": registry,
        "FAAS_BASE_IMAGE": base_image,
        "FAAS_BUNDLE_DIR": "functions",
        "__OW_API_HOST": server.url,
        "__OW_API_KEY": server.key,
    }
    if Path(CA_BUNDLE).is_file():
        env["FAAS_CA_BUNDLE"] = CA_BUNDLE
    client = NotebookClient(
        nb,
        timeout=180,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute(env=env)
        yield NotebookRun(nb)
    finally:
        owners = [o for o in nb.cells[0].outputs if o.output_type == "execute_result"]
        if owners:
            owner = owners[0].data["text/plain"].strip("'\"")
            for container in engine.containers_with_label(docker_client, **{OWNER_LABEL: owner}):
                engine.remove_container(container)


def test_magics_test_then_deploy(notebook):
    assert 'nbloop({"x": 2}): equal' in notebook.text("capture")
    text = notebook.text("deploy")
    assert "is published already" in text or "Pushed " in text, text
    assert re.search(r"nbloop: version 0\.0\.1 on http://127\.0\.0\.1:\d+", text), text


def test_magics_invoke_shows_the_activation_and_returns_the_result(notebook):
    assert notebook.result("invoke") == "{'y': 30}"
    text = notebook.text("invoke")
    assert re.search(r"nbloop [0-9a-f]{32}: success", text), text
    assert "stdout: nb got 3" in text
    # The first run after a deploy is a cold start: its cost is in wait and init time.
    assert re.search(r"wait \d+ ms, init \d+ ms, duration \d+ ms, (cold|warm)", text), text


def test_magics_invoke_takes_a_dict_of_the_kernel(notebook):
    assert notebook.result("invoke-var") == "{'y': 60}"
    assert "stdout: nb got 6" in notebook.text("invoke-dollar")
    assert notebook.result("invoke-big") == "True"


def test_invoke_line_with_150_kb_of_json_is_parsed_without_shlex(monkeypatch):
    """shlex took ~0.3-0.6 s on such a line: the parser must not call it."""
    import shlex

    from jupyter_faas.magics import parse_invoke_line

    def no_shlex(*args, **kwargs):
        raise AssertionError("shlex.split was called")

    monkeypatch.setattr(shlex, "split", no_shlex)
    big = {"x": 1, "values": list(range(25_000))}
    text = json.dumps(big)
    assert len(text) > 150_000
    for line in (f"fn '{text}'", f"fn {text}", f"fn '{text}' --async"):
        name, params, is_async = parse_invoke_line(line, {})
        assert (name, params, is_async) == ("fn", big, line.endswith("--async"))
    assert parse_invoke_line("fn -i p --async", {"p": {"a": 1}}) == ("fn", {"a": 1}, True)
    with pytest.raises(BundleError, match="nor a Python expression in the kernel"):
        parse_invoke_line("fn nothing", {})
    with pytest.raises(BundleError, match="is of type list, not a dict"):
        parse_invoke_line("fn -i p", {"p": [1]})


def test_magics_payload_limit_is_checked_before_invoke(notebook):
    text = notebook.text("payload-limit")
    assert "UsageError" in text and "Traceback" not in text, text
    assert re.search(r"The input of nbloop is 150\d+ bytes of JSON, over the 1000-byte", text)
    assert notebook.result("ok-payload-limit") == "2"


def test_magics_failed_activation_is_an_error_with_id_error_and_logs(notebook):
    text = notebook.text("fail-invoke")
    assert "UsageError" in text and "Traceback" not in text, text
    # What went wrong first, then what it printed, with short times (issue 12, finding 5).
    assert re.search(
        r"nbfail: your function returned an error: no data for 9 \(activation [0-9a-f]{32}\)",
        text,
    ), text
    assert "Its output before it failed (last 10 lines):" in text
    assert re.search(r"\n  \d\d:\d\d:\d\d\.\d{3} stdout: step 29\n", text), text
    assert "stdout: step 19" not in text
    assert re.search(r"The whole record: %faas logs [0-9a-f]{32}", text)
    # Still an ActivationFailed, its whole record one attribute away.
    assert notebook.result("fail-record") == (
        "('ExplainedFailure', {'error': 'no data for 9'}, 'application error', True)"
    )


def test_magics_huge_result_is_shortened_in_the_display(notebook):
    assert notebook.result("huge-invoke") == "600000"
    text = notebook.text("huge-invoke")
    assert len(text) < 20_000, len(text)
    assert "more characters; the whole value: .record.result)" in text
    assert "earlier lines left out; all are in .record.logs" in text


def test_magics_async_invoke_logs_and_activations(notebook):
    activation_id = notebook.result("invoke-async").strip("'")
    assert re.fullmatch(r"[0-9a-f]{32}", activation_id)
    assert f"activation {activation_id} accepted" in notebook.text("invoke-async")
    assert notebook.result("wait-async") == "True"
    logs = notebook.text("logs")
    assert f"nbloop {activation_id}: success" in logs
    assert 'result {"y": 40}' in logs and "stdout: nb got 4" in logs
    listing = notebook.text("activations")
    assert listing.splitlines()[0].split() == ["activationId", "name", "status", "start"] + [
        "wait",
        "ms",
        "init",
        "ms",
        "duration",
        "ms",
        "start",
        "kind",
        "version",
        "started",
        "by",
    ]
    assert activation_id in listing
    row = next(line for line in listing.splitlines() if activation_id in line)
    # Which version ran and who started it (issue 12).
    assert row.split()[-1] == "guest", row
    assert re.fullmatch(r"\d+\.\d+\.\d+", row.split()[-2]), row


def test_magics_invoke_form_is_a_widget_with_a_text_twin(notebook):
    """The form starts from the bundle's --test input; headless, its text says what to run."""
    (output,) = notebook.outputs("form")
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert output.data["text/plain"] == (
        "Invoke form for nbloop (shown where widgets are rendered); "
        "elsewhere use: %faas invoke nbloop '{\"x\": 2}'"
    )


def test_magics_schedule_and_unschedule(notebook):
    assert re.search(
        r"nbloop: scheduled '\*/2 \* \* \* \* \*' \(trigger and rule nbloop-cron-\w+\)",
        notebook.text("schedule"),
    )
    assert notebook.result("wait-schedule") == "'fired'"
    assert re.search(r"nbloop: removed nbloop-cron-\w+", notebook.text("unschedule"))


def test_magics_list_and_delete(notebook):
    listing = notebook.text("list")
    assert re.search(r"nbloop\s+functions/nbloop\s+True\s+0\.0\.1", listing), listing
    deleted = notebook.text("delete")
    assert re.search(r"nbloop: deleted from http://127\.0\.0\.1:\d+; bundle \S+ removed", deleted)
    assert "%faas versions nbloop still lists its deploys" in deleted


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ("missing", ["HTTP 404", "does not exist", "%faas list"]),
        ("badjson", ["invoke input is not valid JSON", "{bad"]),
        ("nojsonarg", ["Unknown or incomplete command: %faas invoke", "%faas invoke NAME"]),
        ("unreachable", ["http://127.0.0.1:9 is not reachable", "jupyter faas serve"]),
    ],
)
def test_magics_errors_are_messages_and_the_kernel_goes_on(notebook, tag, words):
    text = notebook.text(tag)
    assert "UsageError" in text, text
    assert "Traceback" not in text
    for word in words:
        assert word in text
    assert notebook.result(f"ok-{tag}") == "2"


# -- the command line --------------------------------------------------------------------------


def _cli(server: FunctionServer, registry: str, base_image: str, *words: str, cwd: Path):
    env = {
        **os.environ,
        "__OW_API_HOST": server.url,
        "__OW_API_KEY": server.key,
        "FAAS_REGISTRY": registry,
        "FAAS_BASE_IMAGE": base_image,
    }
    return subprocess.run(
        [sys.executable, "-m", "jupyter_faas.cli", *words],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_deploy_invoke_list_delete(server, registry, base_image, tmp_path):
    meta = FunctionMetadata(name="clifn", memory_mb=256, timeout_s=30)
    Bundle.write(tmp_path / "functions" / "clifn", meta, CODE_V1, [])

    def cli(*words):
        return _cli(server, registry, base_image, *words, cwd=tmp_path)

    deployed = cli("deploy", "functions/clifn")
    assert deployed.returncode == 0, deployed.stderr
    record = json.loads(deployed.stdout.strip().splitlines()[-1])
    assert record["name"] == "clifn" and record["version"] == "0.0.1"

    invoked = cli("invoke", "clifn", '{"x": 7}')
    assert invoked.returncode == 0, invoked.stderr
    assert re.search(r"clifn [0-9a-f]{32}: success", invoked.stdout)
    assert 'result {"version": 1, "x": 7}' in invoked.stdout
    assert "stdout: got 7" in invoked.stdout

    queued = cli("invoke", "clifn", '{"x": 8}', "--async")
    assert queued.returncode == 0, queued.stderr
    assert re.fullmatch(r"[0-9a-f]{32}\n", queued.stdout)

    listing = cli("list")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"clifn\s+\S*clifn\s+True\s+0\.0\.1", listing.stdout), listing.stdout

    deleted = cli("delete", "clifn")
    assert deleted.returncode == 0, deleted.stderr
    gone = cli("invoke", "clifn", "{}")
    assert gone.returncode == 1
    assert "HTTP 404" in gone.stderr and "does not exist" in gone.stderr
    # Hints fit the face: the CLI names its own commands, not the notebook's.
    assert "`jupyter faas list` shows the deployed functions" in gone.stderr
    assert "%faas" not in gone.stderr


def test_cli_failed_invoke_shows_the_record_and_exits_1(server, registry, base_image, tmp_path):
    code = "def main(args):\n    print('checking', args)\n    return {'error': 'nope'}\n"
    Bundle.write(
        tmp_path / "functions" / "clifail",
        FunctionMetadata(name="clifail", memory_mb=256, timeout_s=30),
        code,
        [],
    )

    def cli(*words):
        return _cli(server, registry, base_image, *words, cwd=tmp_path)

    assert cli("deploy", "functions/clifail").returncode == 0
    try:
        failed = cli("invoke", "clifail", '{"x": 1}')
        assert failed.returncode == 1
        assert re.search(r"clifail [0-9a-f]{32}: application error", failed.stdout)
        assert re.search(r"wait \d+ ms, init \d+ ms, duration \d+ ms, cold", failed.stdout)
        assert re.search(
            r"error: clifail: activation [0-9a-f]{32} failed \(application error\): nope",
            failed.stderr,
        ), failed.stderr
        assert "stdout: checking {'x': 1}" in failed.stderr
        assert re.search(r"The whole record: jupyter faas logs [0-9a-f]{32}", failed.stderr)
        assert "Traceback" not in failed.stderr
    finally:
        cli("delete", "clifail")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["invoke", "clifn", "{bad"], "invoke input is not valid JSON"),
        (["invoke", "clifn", "[1]"], "invoke input must be a JSON object, not list"),
        (["deploy", "functions/none"], "is not a folder"),
        (["invoke", "Bad_Name"], "'Bad_Name' is not a valid function name"),
    ],
)
def test_cli_errors_exit_1_with_a_message(server, registry, base_image, tmp_path, words, message):
    done = _cli(server, registry, base_image, *words, cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_unreachable_server(registry, base_image, tmp_path):
    nowhere = FunctionServer(f"http://127.0.0.1:{free_port()}", "u:k", tmp_path / "none.log")
    done = _cli(nowhere, registry, base_image, "list", cwd=tmp_path)
    assert done.returncode == 1
    assert "is not reachable" in done.stderr and "jupyter faas serve" in done.stderr

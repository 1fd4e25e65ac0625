"""The official OpenWhisk JavaScript client (npm ``openwhisk``) against the real server.

``tests/js/client_calls.js`` drives a server subprocess with the real DockerInvoker on
Docker through the client's actions, activations, triggers, rules and feeds calls
and prints what each returned; this test asserts on every field. The blackbox
action's image is in the local registry only, so its cold start pulls it.
``bash scripts/setup.sh`` installs the client (``npm ci`` in tests/js).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import REAL_START_TIMEOUT, ROOT, ServerProcess
from support import free_port

pytestmark = pytest.mark.docker

JS_DIR = ROOT / "tests" / "js"
SCRIPT = JS_DIR / "client_calls.js"
#: Seconds the whole script may take (cold starts, one image pull, polling).
SCRIPT_TIMEOUT = 240
PREFIX = "js"
NOT_FOUND = "The requested resource does not exist."
#: How the client (needle) resolves 200 with an empty JSON body, and 204 No Content.
EMPTY_JSON = ""
NO_CONTENT = {"type": "Buffer", "data": []}


@pytest.fixture(scope="module")
def calls(tmp_path_factory, real_server_args, server_images) -> dict:
    """Run client_calls.js once against a fresh server; its JSON line, parsed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; install Node.js 18 or newer.", pytrace=False)
    if not (JS_DIR / "node_modules" / "openwhisk").is_dir():
        pytest.fail(
            f"The openwhisk npm client is not installed in {JS_DIR}; run `bash scripts/setup.sh` "
            "(or `npm ci` there).",
            pytrace=False,
        )
    server = ServerProcess(
        tmp_path_factory.mktemp("js") / "data",
        free_port(),
        real_server_args,
        REAL_START_TIMEOUT,
    ).start()
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith("__OW_")
    }
    env.update(
        FAAS_APIHOST=server.base,
        FAAS_API_KEY=server.api_key(),
        FAAS_IMAGE=server_images.pushed,
        FAAS_PREFIX=PREFIX,
    )
    try:
        proc = subprocess.run(
            [node, str(SCRIPT)],
            cwd=JS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
        )
    finally:
        server.stop()
    assert proc.returncode == 0, (
        f"client_calls.js failed:\n{proc.stderr}\n--- server log ---\n{server.log_path.read_text()}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def annotations(doc: dict) -> dict:
    return {a["key"]: a["value"] for a in doc.get("annotations", [])}


def test_actions_create_get_list_update(calls, server_images):
    box = calls["createBox"]
    assert box["name"] == f"{PREFIX}-box" and box["namespace"] == "guest"
    assert box["exec"]["kind"] == "blackbox"
    assert box["exec"]["image"] == server_images.pushed
    assert annotations(box)["exec"] == "blackbox"

    py = calls["createPy"]
    assert py["exec"]["kind"] == "python:3.11"  # python:default is stored resolved
    assert py["version"] == "0.0.1"
    assert py["parameters"] == [{"key": "greeting", "value": "hello"}]
    assert annotations(py)["provide-api-key"] is False

    got = calls["getPy"]
    assert got["name"] == f"{PREFIX}-py" and "def main(args)" in got["exec"]["code"]
    assert {f"{PREFIX}-box", f"{PREFIX}-py", f"{PREFIX}-fail"} <= set(calls["listNames"])

    updated = calls["updatePy"]
    assert updated["version"] == "0.0.2"
    assert '", " +' in updated["exec"]["code"]
    # Parameters not in the update are kept.
    assert updated["parameters"] == [{"key": "greeting", "value": "hello"}]


def test_invoke_blocking_result_and_full_activation(calls):
    # The update took effect: ", " joins greeting and name.
    assert calls["invokeResult"] == {"greeting": "hello, ada"}
    assert calls["invokeBox"] == {"box": 8}

    full = calls["invokeFull"]
    assert re.fullmatch(r"[0-9a-f]{32}", full["activationId"])
    assert full["name"] == f"{PREFIX}-py" and full["namespace"] == "guest"
    assert full["version"] == "0.0.2"
    assert full["response"] == {
        "result": {"greeting": "hello, bob"},
        "success": True,
        "status": "success",
        "size": len('{"greeting":"hello, bob"}'),
    }
    assert full["end"] >= full["start"] and full["duration"] == full["end"] - full["start"]
    assert any("hello from bob" in line for line in full["logs"])
    marks = full["annotationMap"]
    assert marks["path"] == f"guest/{PREFIX}-py"
    assert marks["kind"] == "python:3.11" and marks["timeout"] is False
    assert marks["limits"]["timeout"] == 60000 and marks["limits"]["memory"] == 256
    assert "waitTime" in marks


def test_non_blocking_invoke_and_activation_calls(calls):
    activation_id = calls["invokeAsync"]["activationId"]
    assert set(calls["invokeAsync"]) == {"activationId"}

    record = calls["activationGet"]
    assert record["activationId"] == activation_id
    assert record["response"]["result"] == {"greeting": "hello, cyd"}
    assert activation_id in calls["activationList"]
    assert calls["invokeFull"]["activationId"] in calls["activationList"]

    logs = calls["activationLogs"]["logs"]
    assert any(line.endswith("stdout: hello from cyd") for line in logs), logs
    assert calls["activationResult"] == {
        "result": {"greeting": "hello, cyd"},
        "success": True,
        "status": "success",
        "size": len('{"greeting":"hello, cyd"}'),
    }


def test_triggers_rules_and_fire(calls):
    assert calls["triggerCreate"]["name"] == f"{PREFIX}-trigger"
    rule = calls["ruleCreate"]
    assert rule["status"] == "active"
    assert rule["trigger"] == {"path": "guest", "name": f"{PREFIX}-trigger"}
    assert rule["action"] == {"path": "guest", "name": f"{PREFIX}-box"}

    assert re.fullmatch(r"[0-9a-f]{32}", calls["fire"]["activationId"])
    (entry,) = calls["fireLogs"]
    assert entry["success"] is True and entry["statusCode"] == 0
    assert entry["rule"] == f"guest/{PREFIX}-rule" and entry["action"] == f"guest/{PREFIX}-box"
    child = calls["fireChild"]
    assert child["activationId"] == entry["activationId"]
    assert child["cause"] == calls["fire"]["activationId"]
    assert child["response"]["result"] == {"box": 42}

    # Enable/disable answer 200 with an empty body.
    assert calls["ruleDisable"] == EMPTY_JSON
    assert calls["ruleAfterDisable"] == "inactive"
    # No active rule: 204 and no body.
    assert calls["fireInactive"] == NO_CONTENT
    assert calls["ruleEnable"] == EMPTY_JSON
    assert calls["ruleAfterEnable"] == "active"


def test_alarm_feed(calls):
    assert annotations(calls["alarmTrigger"])["feed"] == "/whisk.system/alarms/alarm"
    created = calls["feedCreate"]
    assert created["response"]["success"] is True
    assert created["response"]["result"] == {"status": "success"}
    read = calls["feedRead"]["response"]["result"]
    assert read["config"]["cron"] == "*/5 * * * *"
    assert read["config"]["name"] == f"{PREFIX}-alarm"
    assert read["status"]["active"] is True


def test_failures_reject_with_the_server_message(calls):
    missing = calls["missing"]
    assert missing["isError"] is True
    assert missing["statusCode"] == 404
    assert missing["message"].endswith(f'--> "{NOT_FOUND}"'), missing["message"]
    assert missing["body"]["error"] == NOT_FOUND and missing["body"]["code"]

    app_error = calls["appError"]
    assert app_error["isError"] is True and app_error["statusCode"] == 502
    assert app_error["message"].endswith('--> "no way"'), app_error["message"]
    assert app_error["body"]["response"]["status"] == "application error"
    assert "code" not in app_error["body"]

    bad_feed = calls["badFeed"]
    assert bad_feed["isError"] is True and bad_feed["statusCode"] == 502
    assert "cron pattern 'not a cron' is not valid" in bad_feed["message"]


def test_delete(calls):
    assert calls["deleteBox"]["name"] == f"{PREFIX}-box"
    gone = calls["afterDelete"]
    assert gone["statusCode"] == 404 and gone["body"]["error"] == NOT_FOUND

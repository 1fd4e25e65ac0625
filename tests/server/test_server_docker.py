"""Bad input and failing actions on the real server: OpenWhisk's status codes and messages.

One server subprocess with the real DockerInvoker on Docker serves the module. Each
failure a user can cause (credentials, names, bodies) and each way an action
can fail in its container (missing image, exception, death, bad result,
timeout, memory, failed init) must give OpenWhisk's status code and a message
that says what happened. The rest checks what a working activation looks
like: the record's fields, warm reuse, bare arrays, the 202 after the blocking
wait, and a code-only update of a blackbox action.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from conftest import Client
from support import labelled_image

pytestmark = pytest.mark.docker

A = "/api/v1/namespaces/_"
MB = 1024 * 1024
#: Seconds a polled activation record may take to appear.
RECORD_WAIT = 60
DEVELOPER_ERROR = "action developer error"

#: A blackbox action server that is not our runtime: it answers /run with what the
#: parameter ``answer`` says, verbatim, to produce answers our runtime never gives.
RAW_SERVER = """
import http.server, json

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        text = "{}" if self.path == "/init" else body["value"].get("answer", "{}")
        data = text.encode()
        # "503": this container says it is shutting down (OpenWhisk then reschedules).
        self.send_response(503 if text == "503" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def server(start_real_server):
    return start_real_server()


@pytest.fixture(scope="module")
def guest(server) -> Client:
    client = server.client()
    client.session.headers["Content-Type"] = "application/json"
    return client


@pytest.fixture(scope="module")
def raw_image(docker_client, base_image, test_labels, run_label):
    """The RAW_SERVER image on the offline base image, for this run."""
    tag = f"jupyter-faas-test-raw:{run_label}"
    files = {
        "Dockerfile": f'FROM {base_image}\nCOPY server.py /server.py\nCMD ["python3", "/server.py"]\n'.encode(),
        "server.py": RAW_SERVER.encode(),
    }
    with labelled_image(docker_client, tag, files, test_labels) as image:
        yield image


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def python_action(guest: Client, code: str, limits: dict | None = None, stem: str = "act") -> str:
    name = unique(stem)
    body = {"exec": {"kind": "python:3.11", "code": code}}
    if limits:
        body["limits"] = limits
    r = guest.put(f"{A}/actions/{name}", json=body)
    assert r.status_code == 200, r.text
    return name


def blackbox_action(guest: Client, image: str, code: str | None = None, **limits) -> str:
    name = unique("box")
    exec_ = {"kind": "blackbox", "image": image}
    if code is not None:
        exec_["code"] = code
    body = {"exec": exec_, **({"limits": limits} if limits else {})}
    r = guest.put(f"{A}/actions/{name}", json=body)
    assert r.status_code == 200, r.text
    return name


def invoke(guest: Client, name: str, params: dict | None = None, **query):
    query.setdefault("blocking", "true")
    return guest.post(f"{A}/actions/{name}", json=params or {}, params=query, timeout=120)


def annotations(record: dict) -> dict:
    return {a["key"]: a["value"] for a in record["annotations"]}


def wait_record(guest: Client, activation_id: str) -> dict:
    deadline = time.monotonic() + RECORD_WAIT
    while time.monotonic() < deadline:
        r = guest.get(f"{A}/activations/{activation_id}")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 404, r.text
        time.sleep(0.1)
    raise AssertionError(f"activation {activation_id} was not stored within {RECORD_WAIT} s")


def developer_error(r) -> str:
    """The error text of a blocking invoke that failed with a developer error."""
    assert r.status_code == 502, r.text
    body = r.json()
    assert "code" not in body  # how clients tell a failed action from a refused request
    assert body["response"]["status"] == DEVELOPER_ERROR
    assert body["response"]["success"] is False
    return body["response"]["result"]["error"]


# ---- requests the server refuses ---------------------------------------------------------


def test_wrong_key_is_401(server):
    uuid_ = server.api_key().split(":")[0]
    client = Client(server.base, f"{uuid_}:{'x' * 64}")
    r = client.get(f"{A}/actions")
    assert r.status_code == 401
    assert r.json()["error"] == "The supplied authentication is invalid"
    assert r.json()["code"]
    assert r.headers["WWW-Authenticate"] == 'Basic realm="OpenWhisk secure realm"'
    missing = Client(server.base, None).get(f"{A}/actions")
    assert missing.status_code == 401
    assert "requires authentication" in missing.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "actions/nope",
        "triggers/nope",
        "rules/nope",
        "packages/nope",
        f"activations/{'0' * 32}",
    ],
)
def test_unknown_entity_is_404(guest, path):
    r = guest.get(f"{A}/{path}")
    assert r.status_code == 404
    assert r.json()["error"] == "The requested resource does not exist."


def test_invoking_an_unknown_action_is_404(guest):
    r = invoke(guest, "nope")
    assert r.status_code == 404
    assert r.json()["error"] == "The requested resource does not exist."


@pytest.mark.parametrize("name", ["bad$name", "-dash-first", "trailing%20"])
def test_bad_name_is_400(guest, name):
    r = guest.put(f"{A}/actions/{name}", json={"exec": {"kind": "python:3.11", "code": "x"}})
    assert r.status_code == 400
    assert r.json()["error"] == "The name of the entity contains illegal characters."


def test_bad_activation_id_is_400(guest):
    r = guest.get(f"{A}/activations/abc")
    assert r.status_code == 400
    assert r.json()["error"] == "Activation id length is 3 but must be 32."


def test_oversized_parameters_are_413(guest):
    name = python_action(guest, "def main(args):\n    return {}\n")
    big = {"blob": "x" * (MB + 10)}
    r = invoke(guest, name, big)
    assert r.status_code == 413
    assert re.fullmatch(r"Request larger than allowed: \d+ > 1048576 bytes\.", r.json()["error"])
    r = guest.put(
        f"{A}/actions/{name}?overwrite=true",
        json={"parameters": [{"key": "blob", "value": big["blob"]}]},
    )
    assert r.status_code == 413, r.text
    assert "larger than allowed" in r.json()["error"]


def test_invalid_json_is_400(guest):
    name = python_action(guest, "def main(args):\n    return {}\n")
    r = guest.post(f"{A}/actions/{name}?blocking=true", data=b'{"a": ')
    assert r.status_code == 400
    assert r.json()["error"].startswith("The request content was malformed:")
    r = guest.put(f"{A}/actions/{unique('bad')}", data=b"not json")
    assert r.status_code == 400
    assert r.json()["error"].startswith("The request content was malformed:")


@pytest.mark.parametrize("payload", [[1, 2], "text", 42])
def test_non_object_parameters_are_400(guest, payload):
    name = python_action(guest, "def main(args):\n    return {}\n")
    r = guest.post(f"{A}/actions/{name}?blocking=true", json=payload)
    assert r.status_code == 400
    assert r.json()["error"] == "The request content was malformed: expected a JSON object."


def test_bad_parameters_in_an_action_are_400(guest):
    r = guest.put(
        f"{A}/actions/{unique('bad')}",
        json={"exec": {"kind": "python:3.11", "code": "x"}, "parameters": {"a": 1}},
    )
    assert r.status_code == 400
    assert "parameters" in r.json()["error"]


def test_bad_blocking_wait_is_400(guest):
    name = python_action(guest, "def main(args):\n    return {}\n")
    r = invoke(guest, name, timeout="70000")
    assert r.status_code == 400
    assert r.json()["error"] == "Timeout must be number of milliseconds up to 60000."


# ---- actions that fail in their container ------------------------------------------------


def test_missing_image_is_a_pull_failure(guest, registry, run_label):
    image = f"{registry}/faas-test-{run_label}/missing:1"
    name = blackbox_action(guest, image)
    error = developer_error(invoke(guest, name))
    assert error.startswith(f"Failed to pull container image '{image}'."), error
    assert f"docker push {image}" in error


def test_exception_is_a_developer_error(guest):
    name = python_action(
        guest, "def main(args):\n    raise ValueError('bad input: ' + args['x'])\n"
    )
    r = invoke(guest, name, {"x": "zz"})
    error = developer_error(r)
    assert "ValueError" in error and "bad input: zz" in error
    assert any("Traceback" in line for line in r.json()["logs"])


def test_exit_during_run_exited_unexpectedly(guest):
    name = python_action(guest, "import os\n\ndef main(args):\n    os._exit(1)\n")
    error = developer_error(invoke(guest, name))
    assert error == "The action did not produce a valid response and exited unexpectedly."


def test_python_non_object_result(guest):
    name = python_action(guest, "def main(args):\n    return 42\n")
    error = developer_error(invoke(guest, name))
    assert error == "The action did not return a dictionary or array (it returned int)."


@pytest.mark.parametrize("answer", ["42", '"text"', "not json"])
def test_non_json_run_answer(guest, raw_image, answer):
    name = blackbox_action(guest, raw_image)
    error = developer_error(invoke(guest, name, {"answer": answer}))
    assert error == f"The action did not produce a valid JSON or JSON Array response: {answer}"


def test_503_reschedules_once_on_another_container(server, guest, raw_image):
    name = blackbox_action(guest, raw_image)
    r = invoke(guest, name, {"answer": "503"})
    assert r.status_code == 502, r.text
    assert r.json()["response"]["status"] == DEVELOPER_ERROR
    log = server.log_path.read_text()
    assert f"answered 503 (shutting down): running {r.json()['activationId']} on another" in log
    fine = invoke(guest, name, {"answer": '{"ok": true}'})
    assert (fine.status_code, fine.json()["response"]["result"]) == (200, {"ok": True})


def test_timeout(guest):
    name = python_action(
        guest, "import time\n\ndef main(args):\n    time.sleep(30)\n", {"timeout": 1000}
    )
    r = invoke(guest, name)
    assert developer_error(r) == "The action exceeded its time limits of 1000 milliseconds."
    assert annotations(r.json())["timeout"] is True


def test_memory_exhausted(guest):
    code = "def main(args):\n    blob = b'x' * (400 * 1024 * 1024)\n    return {'n': len(blob)}\n"
    name = python_action(guest, code, {"memory": 128})
    r = invoke(guest, name)
    assert developer_error(r) == "The action exhausted its memory and was aborted."
    assert annotations(r.json())["limits"]["memory"] == 128


def test_exit_at_import_fails_init(guest):
    name = python_action(guest, "import os\nos._exit(3)\n\ndef main(args):\n    return {}\n")
    error = developer_error(invoke(guest, name))
    assert error == "The action did not initialize and exited unexpectedly."


def test_application_error_is_502_with_the_error(guest):
    name = python_action(guest, "def main(args):\n    return {'error': 'no such user'}\n")
    r = invoke(guest, name)
    assert r.status_code == 502
    assert r.json()["response"]["status"] == "application error"
    r = invoke(guest, name, result="true")
    assert (r.status_code, r.json()) == (502, {"error": "no such user"})


# ---- what working activations look like -------------------------------------------------


def test_blocking_wait_expires_then_record_appears(guest):
    name = python_action(
        guest, "import time\n\ndef main(args):\n    time.sleep(3)\n    return {'done': True}\n"
    )
    r = invoke(guest, name, timeout="500")
    assert r.status_code == 202, r.text
    activation_id = r.json()["activationId"]
    assert r.json() == {"activationId": activation_id}
    assert r.headers["x-openwhisk-activation-id"] == activation_id
    record = wait_record(guest, activation_id)
    assert record["response"]["result"] == {"done": True}
    assert record["duration"] >= 3000


def test_array_result_is_returned_bare(guest):
    name = python_action(guest, "def main(args):\n    return [1, 'two', {'three': 3}]\n")
    r = invoke(guest, name)
    assert (r.status_code, r.json()) == (200, [1, "two", {"three": 3}])
    record = wait_record(guest, r.headers["x-openwhisk-activation-id"])
    assert record["response"]["result"] == [1, "two", {"three": 3}]


def test_record_fields_and_warm_reuse(guest):
    code = "def main(args):\n    print('got', args['n'])\n    return {'n': args['n'] + 1}\n"
    name = python_action(guest, code, {"timeout": 20000, "memory": 256})
    first = invoke(guest, name, {"n": 1})
    assert first.status_code == 200, first.text
    record = first.json()
    assert re.fullmatch(r"[0-9a-f]{32}", record["activationId"])
    assert record["namespace"] == "guest" and record["subject"] == "guest"
    assert record["name"] == name and record["version"] == "0.0.1"
    assert record["publish"] is False
    assert record["start"] > 0 and record["end"] >= record["start"]
    assert record["duration"] == record["end"] - record["start"]
    assert record["response"] == {
        "status": "success",
        "success": True,
        "result": {"n": 2},
        "size": len('{"n":2}'),
    }
    assert len(record["logs"]) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z\s+stdout: got 1", record["logs"][0])
    marks = annotations(record)
    assert marks["path"] == f"guest/{name}"
    assert marks["kind"] == "python:3.11"
    assert marks["timeout"] is False
    assert marks["limits"] == {"timeout": 20000, "memory": 256, "logs": 10, "concurrency": 1}
    assert isinstance(marks["waitTime"], int) and marks["waitTime"] >= 0
    assert isinstance(marks["initTime"], int) and marks["initTime"] >= 0
    # The stored record is the same as the one answered.
    assert wait_record(guest, record["activationId"]) == record

    second = invoke(guest, name, {"n": 5})
    assert second.json()["response"]["result"] == {"n": 6}
    assert "initTime" not in annotations(second.json()), "the warm container was not reused"


def test_code_only_update_of_a_blackbox_action(guest, server_images):
    v1 = "def main(args):\n    return {'version': 1}\n"
    v2 = "def main(args):\n    return {'version': 2}\n"
    name = blackbox_action(guest, server_images.pushed, v1)
    assert invoke(guest, name, result="true").json() == {"version": 1}
    r = guest.put(
        f"{A}/actions/{name}?overwrite=true",
        json={"exec": {"kind": "blackbox", "image": server_images.pushed, "code": v2}},
    )
    assert r.status_code == 200 and r.json()["version"] == "0.0.2"
    after = invoke(guest, name)
    assert after.json()["response"]["result"] == {"version": 2}
    assert after.json()["version"] == "0.0.2"
    assert "initTime" in annotations(after.json())  # a new version starts its own container


# ---- pipelines and the public REST face, on real containers ------------------------------


def test_sequence_is_a_pipeline_of_real_actions(guest):
    """Each component's result is the next one's input (the seed's processing pipelines)."""
    find = python_action(
        guest, "def main(args):\n    return {'peaks': [1.0, 4.0, 9.0], 'cut': args['cut']}\n"
    )
    count = python_action(
        guest, "def main(args):\n    return {'n': sum(p > args['cut'] for p in args['peaks'])}\n"
    )
    pipeline = unique("pipeline")
    components = [f"/_/{find}", f"/_/{count}"]
    r = guest.put(
        f"{A}/actions/{pipeline}", json={"exec": {"kind": "sequence", "components": components}}
    )
    assert r.status_code == 200, r.text
    r = invoke(guest, pipeline, {"cut": 2.0})
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["response"]["result"] == {"n": 2}
    assert len(record["logs"]) == 2, "a sequence's logs are its components' activation ids"
    first = wait_record(guest, record["logs"][0])
    assert first["cause"] == record["activationId"]
    assert first["response"]["result"] == {"peaks": [1.0, 4.0, 9.0], "cut": 2.0}


def test_web_action_answers_without_a_key(server, guest):
    """A web-exported action is a public REST endpoint; without the annotation it is not."""
    code = "def main(args):\n    return {'hello': args.get('who', 'world')}\n"
    name = python_action(guest, code)
    anonymous = Client(server.base, None)
    assert anonymous.get(f"/api/v1/web/guest/default/{name}.json").status_code == 404
    r = guest.put(
        f"{A}/actions/{name}?overwrite=true",
        json={"annotations": [{"key": "web-export", "value": True}]},
    )
    assert r.status_code == 200, r.text
    r = anonymous.get(f"/api/v1/web/guest/default/{name}.json", params={"who": "sfx"})
    assert (r.status_code, r.json()) == (200, {"hello": "sfx"})


# ---- deleted and replaced actions free their containers ------------------------------------


def test_delete_and_update_remove_the_idle_containers_at_once(guest, server_images, docker_client):
    """Without retiring, they would hold memory until the idle timeout (10 minutes)."""
    from jupyter_faas.server.pool.containers import ACTION_LABEL

    v1 = "def main(args):\n    return {'version': 1}\n"
    # Memory limits no other test uses: a container prewarmed for this image after another
    # test's cold start (256 MB) carries no version label and must not serve v1 or v2.
    name = blackbox_action(guest, server_images.pushed, v1, memory=272)

    def containers(version: str) -> list:
        key = f"guest/{name}@{version}@guest"
        # Sparse: a full listing inspects each container and fails on one removed meanwhile,
        # which is what this test waits for.
        filters = {"label": f"{ACTION_LABEL}={key}"}
        return docker_client.containers.list(all=True, sparse=True, filters=filters)

    def gone(version: str) -> bool:
        deadline = time.monotonic() + 10
        while containers(version):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    assert invoke(guest, name, result="true").json() == {"version": 1}
    assert len(containers("0.0.1")) == 1
    r = guest.put(
        f"{A}/actions/{name}?overwrite=true",
        json={
            "exec": {
                "kind": "blackbox",
                "image": server_images.pushed,
                "code": v1.replace("1", "2"),
            },
            # Nor the one prewarmed after v1's cold start (272 MB).
            "limits": {"memory": 320},
        },
    )
    assert r.status_code == 200 and r.json()["version"] == "0.0.2", r.text
    assert gone("0.0.1"), "the replaced version's idle container is still there"
    assert invoke(guest, name, result="true").json() == {"version": 2}
    assert len(containers("0.0.2")) == 1
    assert guest.delete(f"{A}/actions/{name}").status_code == 200
    assert gone("0.0.2"), "the deleted action's idle container is still there"


def test_result_over_max_payload_bytes_is_an_application_error(guest):
    """The server's one result limit (c.FunctionServer.max_payload_bytes, 1 MB by default) is
    applied by the activator; the local test applies the same default."""
    code = "def main(args):\n    return {'s': 'x' * args['n']}\n"
    name = python_action(guest, code, stem="bigres")
    r = invoke(guest, name, {"n": MB + 100})
    assert r.status_code == 502, r.text
    response = r.json()["response"]
    assert response["status"] == "application error"
    assert re.fullmatch(
        r"The action produced a response that exceeded the allowed length: \d+ > 1048576 bytes\.",
        response["result"]["error"],
    )
    assert invoke(guest, name, {"n": MB - 100}).status_code == 200

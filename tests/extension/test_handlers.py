"""The sidebar's REST API on a real Jupyter server, real Docker and a real function server.

Tests without the ``docker`` mark point the builder and the function server client at a
closed port (see conftest.py), so they need neither and show how the API reports them
missing. The ``docker`` tests build, test, push and deploy for real.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import threading
import time
import uuid

import pytest

from jupyter_faas.builders import BuiltImage
from jupyter_faas.bundle import Bundle, FunctionMetadata, check_name
from jupyter_faas.deployers import Schedule
from jupyter_faas.extension.handlers import schedule_json
from jupyter_faas.extension.jobs import INTERNAL_ERROR

CODE = "def main(args):\n    print('got', args)\n    return {'n': args.get('n', 0) * 2}\n"
#: Longest a job may take here (a first build of a dependency image included).
JOB_LIMIT_S = 600


def write_bundle(folder, name="double", code=CODE, requirements=(), **meta) -> Bundle:
    return Bundle.write(
        folder / name, FunctionMetadata(name=name, **meta), code, list(requirements)
    )


def unique_requirements() -> list[str]:
    """Requirements whose dependency image is new in this run (pip ignores the comment)."""
    return [f"# extension test {uuid.uuid4().hex}"]


async def call(jp_fetch, method, *path, body=None, params=None, raw=None, **kwargs):
    """One API request: (status, parsed JSON body); errors are returned, not raised."""
    payload = raw if raw is not None else (None if body is None else json.dumps(body))
    response = await jp_fetch(
        "faas",
        "api",
        *path,
        method=method,
        body=payload,
        params=params,
        raise_error=False,
        allow_nonstandard_methods=True,
        **kwargs,
    )
    return response.code, json.loads(response.body)


async def wait_job(jp_fetch, job_id: str) -> tuple[dict, list[dict]]:
    """Poll GET jobs/{id}?after=N until the job is over: (last answer, all events in order)."""
    events: list[dict] = []
    after = 0
    deadline = time.monotonic() + JOB_LIMIT_S
    for _ in range(10_000):
        status, body = await call(
            jp_fetch, "GET", "jobs", job_id, params={"after": after}, request_timeout=60
        )
        assert status == 200, body
        assert body["next"] == after + len(body["events"])
        events.extend(body["events"])
        after = body["next"]
        if body["status"] != "running":
            return body, events
        assert time.monotonic() < deadline, f"job {job_id} still running: {events[-5:]}"
    raise AssertionError(f"job {job_id} did not finish")


async def run_job(jp_fetch, action: str, bundle: str, **extra) -> tuple[dict, list[dict]]:
    status, body = await call(
        jp_fetch, "POST", "jobs", body={"action": action, "bundle": bundle, **extra}
    )
    assert status == 202, body
    return await wait_job(jp_fetch, body["id"])


# -- authentication ------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "functions", None),
    ("POST", "jobs", {"action": "build", "bundle": "functions/double"}),
    ("GET", f"jobs/{'0' * 32}", None),
    ("POST", "invoke", {"name": "double"}),
    ("GET", "activations", None),
    ("GET", f"activations/{'0' * 32}", None),
    ("GET", "schedules", None),
    ("POST", "schedules", {"name": "double", "cron": "*/5 * * * *"}),
    ("DELETE", "schedules?name=double", None),
    ("GET", "status", None),
    ("GET", "functions/double", None),
    ("DELETE", "functions/double", None),
    ("GET", "functions/double/bundle", None),
    ("GET", "functions/double/versions", None),
    ("POST", "functions/double/rollback", {"version": "0.0.1"}),
    ("POST", "claims", {"name": "double", "notebook": "n.ipynb"}),
    ("GET", "names?name=double", None),
    ("GET", "no-such-endpoint", None),
]


@pytest.mark.parametrize("token", [None, "wrong-token"])
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_every_endpoint_refuses_requests_without_a_valid_token(
    jp_fetch, http_server_client, jp_base_url, method, path, body, token
):
    # A plain client, so no token can slip in; the matching _xsrf cookie and header get
    # POST and DELETE past the XSRF check, so the 403 comes from the missing login.
    headers = {"Cookie": "_xsrf=same", "X-XSRFToken": "same"}
    if token:
        headers["Authorization"] = f"token {token}"
    response = await http_server_client.fetch(
        f"{jp_base_url}faas/api/{path}",
        method=method,
        headers=headers,
        body=None if body is None else json.dumps(body),
        raise_error=False,
        allow_nonstandard_methods=True,
    )
    assert response.code == 403
    assert json.loads(response.body) == {"error": "Forbidden", "reason": "forbidden"}
    # The same request with the server's token gets past authentication.
    bare, _, query = path.partition("?")
    params = dict([query.split("=")]) if query else None
    status, _ = await call(jp_fetch, method, *bare.split("/"), body=body, params=params)
    assert status != 403


# -- the function list -----------------------------------------------------------------------


async def test_functions_lists_bundles_to_the_search_depth_and_reports_the_server(
    jp_fetch, jp_root_dir
):
    write_bundle(jp_root_dir / "functions", "top")
    write_bundle(jp_root_dir / "a" / "b" / "c" / "functions", "deep")
    write_bundle(jp_root_dir / "a" / "b" / "c" / "d" / "functions", "too-deep")
    write_bundle(jp_root_dir / ".hidden" / "functions", "hidden")
    (jp_root_dir / "functions" / "not-a-bundle").mkdir()
    outside = write_bundle(jp_root_dir.parent / "outside" / "functions", "outside")
    (jp_root_dir / "functions" / "escape").symlink_to(outside.path)
    status, body = await call(jp_fetch, "GET", "functions")
    assert status == 200
    assert "not reachable" in body["server_error"]
    assert [(f["name"], f["bundle"]) for f in body["functions"]] == [
        ("deep", "a/b/c/functions/deep"),
        ("top", "functions/top"),
    ]
    first = body["functions"][0]
    assert first == {
        "name": "deep",
        "bundle": "a/b/c/functions/deep",
        "state": "bundle",
        "image": None,
        "digest": None,
        "deployed": None,
        "last_activation": None,
        "test": None,
        "provenance": None,
        "web_url": None,
    }


# -- bad input -------------------------------------------------------------------------------

BAD_JOBS = [
    ({"action": "fly", "bundle": "functions/double"}, 400, "Unknown action 'fly'"),
    ({"bundle": "functions/double"}, 400, "The field 'action' is missing"),
    ({"action": 3, "bundle": "functions/double"}, 400, "'action' must be a string, not a number"),
    ({"action": "build", "bundle": "functions/escape"}, 400, "outside the server's root folder"),
    ({"action": "build", "bundle": ""}, 400, "'bundle' is empty"),
    ({"action": "build", "bundle": "../outside"}, 400, "outside the server's root folder"),
    ({"action": "build", "bundle": "/etc"}, 400, "outside the server's root folder"),
    ({"action": "build", "bundle": "functions/missing"}, 404, "no bundle folder"),
    ({"action": "build", "bundle": "functions"}, 400, "is not a function bundle"),
    (
        {"action": "test", "bundle": "functions/double", "input": [1, 2]},
        400,
        "must be a JSON object, not an array",
    ),
    ({"action": "build", "bundle": "functions/double", "input": {}}, 400, "Only the test action"),
    (
        {"action": "build", "bundle": "functions/double", "force": True},
        400,
        "Unknown field(s) in the request body: force",
    ),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_JOBS)
async def test_bad_job_requests_are_refused_with_a_message(
    jp_fetch, jp_root_dir, body, status, message
):
    write_bundle(jp_root_dir / "functions")
    outside = write_bundle(jp_root_dir.parent / "outside" / "functions")
    (jp_root_dir / "functions" / "escape").symlink_to(outside.path)
    got, answer = await call(jp_fetch, "POST", "jobs", body=body)
    assert got == status, answer
    assert message in answer["error"]
    assert answer["reason"] in ("bad-request", "not-found", "bundle")
    assert set(answer) == {"error", "reason"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "The request body is not valid JSON"),
        ("[1, 2]", "must be a JSON object, not an array"),
        ('"build"', "must be a JSON object, not a string"),
    ],
)
@pytest.mark.parametrize("path", ["jobs", "invoke", "schedules"])
async def test_bodies_that_are_not_json_objects_are_refused(jp_fetch, path, raw, message):
    status, answer = await call(jp_fetch, "POST", path, raw=raw)
    assert status == 400
    assert answer["reason"] == "bad-request"
    assert message in answer["error"]


BAD_REQUESTS = [
    ("POST", "invoke", {"name": "Bad_Name"}, None, "'Bad_Name' is not a valid function name"),
    ("POST", "invoke", {"name": "double", "input": 3}, None, "'input' must be a JSON object"),
    ("POST", "invoke", {"name": "double", "async": "yes"}, None, "'async' must be true or false"),
    ("POST", "invoke", {}, None, "The field 'name' is missing"),
    (
        "POST",
        "schedules",
        {"name": "double", "cron": "every minute"},
        None,
        "is not a cron pattern",
    ),
    ("POST", "schedules", {"name": "double", "cron": "61 * * * *"}, None, "is not a cron pattern"),
    ("POST", "schedules", {"name": "-x", "cron": "* * * * *"}, None, "not a valid function name"),
    (
        "POST",
        "schedules",
        {"name": "double", "cron": "* * * * *", "payload": []},
        None,
        "'payload' must be a JSON object",
    ),
    ("DELETE", "schedules", None, None, "The query argument 'name' is missing"),
    ("GET", "schedules", None, {"name": "UPPER"}, "not a valid function name"),
    ("GET", "activations", None, {"limit": "0"}, "not a number from 1 to 200"),
    ("GET", "activations", None, {"limit": "many"}, "not a number from 1 to 200"),
    ("GET", "activations", None, {"name": "a b"}, "not a valid function name"),
    ("GET", "activations/not-an-id", None, None, "is not an activation id"),
    ("GET", "activations", None, {"since": "yesterday"}, "not a time in epoch milliseconds"),
    ("GET", "names", None, {"name": "p" * 70}, "70 characters long, over the limit of 63"),
    ("GET", "names", None, None, "The query argument 'name' is missing"),
    ("GET", "functions/Bad_Name", None, None, "'Bad_Name' is not a valid function name"),
    ("POST", "functions/double/rollback", {}, None, "The field 'version' is missing"),
    ("POST", "functions/double/rollback", {"version": 2}, None, "must be a string"),
    ("POST", "claims", {"name": "double"}, None, "The field 'notebook' is missing"),
    ("POST", "claims", {"name": "double", "notebook": "n.ipynb", "cell_id": 3}, None, "string"),
    ("POST", "claims", {"name": "Bad Name", "notebook": "n.ipynb"}, None, "not a valid"),
    ("GET", f"jobs/{'0' * 32}", None, {"after": "-1"}, "is not a whole number"),
]


@pytest.mark.parametrize(("method", "path", "body", "params", "message"), BAD_REQUESTS)
async def test_bad_requests_are_refused_before_the_server_is_asked(
    jp_fetch, method, path, body, params, message
):
    # The function server is unreachable here: a 400 proves validation comes first.
    status, answer = await call(jp_fetch, method, *path.split("/"), body=body, params=params)
    assert status == 400, answer
    assert message in answer["error"]
    if answer["reason"] == "bad-name":  # a bad name comes with a valid, different one
        assert set(answer) == {"error", "reason", "suggestion"}
        given = (body or params or {}).get("name") or path.split("/")[-1]
        assert check_name(answer["suggestion"]) != given
    else:
        assert set(answer) == {"error", "reason"}


async def test_unknown_job_and_endpoint_are_404(jp_fetch):
    status, answer = await call(jp_fetch, "GET", "jobs", "f" * 32)
    assert status == 404
    assert answer["reason"] == "not-found"
    assert "There is no job" in answer["error"] and "job_retention_s" in answer["error"]
    status, answer = await call(jp_fetch, "PUT", "function", "x", body={})
    assert status == 404
    assert "There is no endpoint faas/api/function/x" in answer["error"]
    status, answer = await call(jp_fetch, "PUT", "functions", "x", body={})
    assert status == 405 and answer["reason"] == "method-not-allowed"


async def test_an_unreachable_function_server_is_503_with_advice(jp_fetch):
    status, answer = await call(jp_fetch, "POST", "invoke", body={"name": "double"})
    assert status == 503
    assert answer["reason"] == "server"
    assert "is not reachable" in answer["error"] and "jupyter faas serve" in answer["error"]
    for path in (("activations",), ("schedules",), ("activations", "a" * 32)):
        status, answer = await call(jp_fetch, "GET", *path)
        assert status == 503 and "is not reachable" in answer["error"]


async def test_a_missing_function_server_key_is_502_not_a_login_failure(jp_fetch, faas_app):
    # A 401 would tell the browser its Jupyter login failed; the key is the server's problem.
    faas_app.workspace.deployer.client.auth = ""
    status, answer = await call(jp_fetch, "GET", "activations")
    assert status == 502
    assert answer["reason"] == "server"
    assert "No API key for the function server" in answer["error"]
    assert "c.OpenWhiskClient.auth" in answer["error"]


async def test_unexpected_errors_are_500_without_their_text(jp_fetch, faas_app, monkeypatch):
    # Real parts cannot fail this way on demand, so one of our own calls is made to.
    def broken(name=None):
        raise RuntimeError("secret detail from deep inside")

    monkeypatch.setattr(faas_app.workspace.deployer, "schedules", broken)
    status, answer = await call(jp_fetch, "GET", "schedules")
    assert status == 500
    assert (
        answer
        == INTERNAL_ERROR
        == {
            "error": "Internal error; see the Jupyter server log.",
            "reason": "internal",
        }
    )


# -- jobs without Docker ----------------------------------------------------------------------


async def test_a_job_that_cannot_reach_docker_fails_with_the_engine_advice(jp_fetch, jp_root_dir):
    bundle = write_bundle(jp_root_dir / "functions")
    # An absolute path inside the root folder is accepted and reported relative to it.
    body, events = await run_job(jp_fetch, "build", str(bundle.path))
    assert body["status"] == "failed"
    assert body["action"] == "build" and body["bundle"] == "functions/double"
    assert body["result"] is None
    assert body["error"]["reason"] == "engine-unavailable"
    assert "Docker engine" in body["error"]["error"] and "docker_url" in body["error"]["error"]
    status, again = await call(jp_fetch, "GET", "jobs", body["id"], params={"after": 0})
    assert status == 200 and again["status"] == "failed" and again["events"] == events


async def test_an_unexpected_job_failure_is_internal(jp_fetch, jp_root_dir, faas_app, monkeypatch):
    write_bundle(jp_root_dir / "functions")

    def broken(bundle, progress):
        progress({"step": "build", "message": "starting", "progress": 0.0})
        raise RuntimeError("secret detail")

    monkeypatch.setattr(faas_app.workspace, "build", broken)
    body, events = await run_job(jp_fetch, "build", "functions/double")
    assert body["status"] == "failed"
    assert body["error"] == INTERNAL_ERROR
    # The step that was running ends as failed, with the error's first line.
    assert events == [
        {"step": "build", "message": "starting", "progress": 0.0, "status": "running"},
        {
            "step": "build",
            "message": INTERNAL_ERROR["error"],
            "progress": None,
            "status": "failed",
        },
    ]


async def test_a_running_job_is_long_polled_until_its_next_event(
    jp_fetch, jp_root_dir, faas_app, monkeypatch
):
    # A build that waits for the test's go-ahead, so the job is surely running meanwhile.
    write_bundle(jp_root_dir / "functions")
    gate = threading.Event()

    def gated_build(bundle, progress):
        progress({"step": "build", "message": "first", "progress": 0.0})
        assert gate.wait(60), "the test never released the build"
        progress({"step": "build", "message": "second", "progress": 1.0})
        return BuiltImage("jupyter-faas/deps:gated", "gated", "sha256:gated", True)

    monkeypatch.setattr(faas_app.workspace, "build", gated_build)
    monkeypatch.setattr(faas_app, "poll_wait_s", 60.0)
    status, started = await call(
        jp_fetch, "POST", "jobs", body={"action": "build", "bundle": "functions/double"}
    )
    job_id = started["id"]
    status, first = await call(jp_fetch, "GET", "jobs", job_id, params={"after": 0})
    assert first["status"] == "running" and first["next"] == 1
    assert [e["message"] for e in first["events"]] == ["first"]
    poll = asyncio.ensure_future(
        call(jp_fetch, "GET", "jobs", job_id, params={"after": 1}, request_timeout=90)
    )
    await asyncio.sleep(0.5)
    assert not poll.done(), "the request waits while the job runs and has nothing new"
    gate.set()
    status, second = await poll
    assert status == 200 and second["next"] >= 2
    assert second["events"][0]["message"] == "second"
    body, _ = await wait_job(jp_fetch, job_id)
    assert body["status"] == "done"
    assert body["result"] == {"image": "jupyter-faas/deps:gated", "reused": True}


# -- jobs on the real Docker engine -----------------------------------------------------------


@pytest.mark.docker
async def test_build_then_test_streams_progress_and_reports_the_container(jp_fetch, jp_root_dir):
    bundle = write_bundle(
        jp_root_dir / "work" / "functions",
        requirements=unique_requirements(),
        test_input={"n": 5},
    )
    path = "work/functions/double"
    body, events = await run_job(jp_fetch, "build", path)
    assert body["status"] == "done", body
    assert body["error"] is None
    assert body["result"]["reused"] is False
    image = body["result"]["image"]
    assert image.startswith("jupyter-faas/deps:")
    assert events[0] == {
        "step": "build",
        "message": f"Building dependency image {image}",
        "progress": 0.0,
        "status": "running",
    }
    assert events[-1] == {
        "step": "build",
        "message": f"Built {image}",
        "progress": 1.0,
        "status": "done",
    }
    assert any(e["message"].startswith("Step ") for e in events), "the build log is streamed"
    # Each Dockerfile step moves the bar (issue 12, finding 8).
    fractions = [e["progress"] for e in events if e["message"].startswith("Step ")]
    assert fractions == sorted(fractions) and len(set(fractions)) > 1, fractions
    assert all(0 <= f < 1 for f in fractions), fractions
    assert all(set(e) == {"step", "message", "progress", "status"} for e in events)

    body, events = await run_job(jp_fetch, "test", path, input={"n": 21})
    assert body["status"] == "done", body
    result = body["result"]
    assert result["verdict"] == "container only"
    container = result["container"]
    assert container["status"] == "success"
    assert container["result"] == {"n": 42}
    assert any("got {'n': 21}" in line for line in container["logs"])
    assert container["seconds"] > 0 and container["peak_memory_bytes"] > 0
    # Right after the build, the test job does not say "Reusing" again (issue 12, finding 8).
    assert events[0]["message"] == f"Starting a test container of {image}"
    assert not any("Reusing" in e["message"] for e in events)
    assert [e["step"] for e in events][-1] == "test"
    assert body["result"]["ok"] is True and body["result"]["error"] is None

    # Without an input the test uses the bundle's saved test input.
    body, _ = await run_job(jp_fetch, "test", path)
    assert body["result"]["container"]["result"] == {"n": 10}

    status, listing = await call(jp_fetch, "GET", "functions")
    assert status == 200
    (row,) = listing["functions"]
    assert row["bundle"] == path and row["state"] == "tested" and row["image"] == image

    # Editing the code makes the test stale: the image stays, the state falls back to built.
    write_bundle(
        bundle.path.parent,
        code=CODE.replace("* 2", "* 3"),
        requirements=bundle.requirements.splitlines(),
    )
    status, listing = await call(jp_fetch, "GET", "functions")
    assert listing["functions"][0]["state"] == "built"


@pytest.mark.docker
async def test_a_failing_function_is_a_finished_job_with_its_error(jp_fetch, jp_root_dir):
    write_bundle(jp_root_dir / "functions", code="def main(args):\n    return {'x': 1 / 0}\n")
    body, _ = await run_job(jp_fetch, "test", "functions/double", input={})
    assert body["status"] == "done"
    assert body["result"]["verdict"] == "container failed"
    assert body["result"]["container"]["status"] == "error"
    assert "ZeroDivisionError" in body["result"]["container"]["result"]["error"]


# -- the function server ------------------------------------------------------------------------


@pytest.mark.docker
async def test_deploy_invoke_activations_and_schedules(jp_fetch, jp_root_dir, function_server):
    name = f"ext-{uuid.uuid4().hex[:8]}"
    write_bundle(jp_root_dir / "functions", name)
    path = f"functions/{name}"

    body, events = await run_job(jp_fetch, "push", path)
    assert body["status"] == "done", body
    assert body["result"]["image"].startswith("127.0.0.1:5000/")
    assert body["result"]["digest"].startswith("sha256:")

    body, events = await run_job(jp_fetch, "deploy", path)
    assert body["status"] == "done", body
    record = body["result"]
    assert set(record) == {
        "name",
        "server",
        "namespace",
        "version",
        "image",
        "digest",
        "code_sha256",
        "time",
        "notebook",
        "cell_id",
        "cell_sha256",
    }
    assert record["name"] == name and record["server"] == function_server.url
    assert record["namespace"] == "guest" and record["version"] == "0.0.1"
    assert events[-1]["step"] == "deploy" and events[-1]["progress"] == 1.0

    status, activation = await call(
        jp_fetch, "POST", "invoke", body={"name": name, "input": {"n": 4}}
    )
    assert status == 200, activation
    assert activation["result"] == {"n": 8} and activation["ok"] is True
    assert activation["name"] == name
    first_id = activation["activationId"]

    status, accepted = await call(
        jp_fetch, "POST", "invoke", body={"name": name, "input": {"n": 1}, "async": True}
    )
    assert status == 202 and set(accepted) == {"activationId"}

    status, listing = await call(
        jp_fetch, "GET", "activations", params={"name": name, "limit": "10"}
    )
    assert status == 200
    ids = [a["activationId"] for a in listing["activations"]]
    assert first_id in ids
    summary = next(a for a in listing["activations"] if a["activationId"] == first_id)
    assert set(summary) == {
        "activationId",
        "name",
        "status",
        "ok",
        "start",
        "duration",
        "cold",
        "version",
        "cause",
    }
    assert summary["name"] == name and summary["status"] == "success"
    assert summary["version"] == "0.0.1" and summary["cause"]["kind"] == "person"
    assert isinstance(summary["cold"], bool)

    status, full = await call(jp_fetch, "GET", "activations", first_id)
    assert status == 200
    assert full["result"] == {"n": 8}
    assert any("got {'n': 4}" in line for line in full["logs"])

    status, listing = await call(jp_fetch, "GET", "functions")
    assert "server_error" not in listing
    row = next(f for f in listing["functions"] if f["name"] == name)
    assert row["state"] == "deployed" and row["bundle"] == path
    assert row["deployed"]["version"] == "0.0.1" and row["deployed"]["namespace"] == "guest"
    assert row["deployed"]["server"] == function_server.url
    assert row["image"] == record["image"] and row["digest"] == record["digest"]
    # The non-blocking run may have finished since the listing: it is then the latest.
    assert row["last_activation"]["activationId"] in {*ids, accepted["activationId"]}

    status, created = await call(
        jp_fetch, "POST", "schedules", body={"name": name, "cron": "0 3 * * *", "payload": {"n": 2}}
    )
    assert status == 201, created
    trigger = created["trigger"]
    status, listing = await call(jp_fetch, "GET", "schedules", params={"name": name})
    (entry,) = listing["schedules"]
    assert {k: entry[k] for k in ("trigger", "action", "cron")} == {
        "trigger": trigger,
        "action": name,
        "cron": "0 3 * * *",
    }
    assert entry["next_run"]["words"].endswith(":00 UTC")
    status, removed = await call(jp_fetch, "DELETE", "schedules", params={"name": name})
    assert status == 200 and removed == {"removed": [trigger]}
    status, listing = await call(jp_fetch, "GET", "schedules", params={"name": name})
    assert listing == {"schedules": []}

    status, answer = await call(jp_fetch, "POST", "invoke", body={"name": "no-such-function"})
    assert status == 404 and answer["reason"] == "server"


# -- schedules in words ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "now", "words"),
    [
        ("*/5 * * * *", "2026-12-02 12:01:00", "in 4 minutes, at 12:05 UTC"),
        ("0 6 * * *", "2026-12-02 12:01:00", "in 17 hours 59 minutes, at Thu 03 Dec 06:00 UTC"),
        ("*/2 * * * * *", "2026-12-02 12:01:01", "in less than a minute, at 12:01 UTC"),
        ("0 0 1 1 *", "2026-12-02 12:00:00", "in 30 days, at Fri 01 Jan 00:00 UTC"),
    ],
)
def test_a_schedule_gives_its_next_run_in_words(cron, now, words):
    start = calendar.timegm(time.strptime(now, "%Y-%m-%d %H:%M:%S"))
    entry = schedule_json(Schedule("t-cron-1", "peaks", cron), now=start)
    assert entry["next_run"]["words"] == words
    assert entry["next_run"]["time"] > start
    assert {k: entry[k] for k in ("trigger", "action", "cron")} == {
        "trigger": "t-cron-1",
        "action": "peaks",
        "cron": cron,
    }

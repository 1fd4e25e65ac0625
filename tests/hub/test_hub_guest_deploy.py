"""A guest of a shared server deploys as themselves, on a real hub.

Alice shares her server with Bob. Bob, with a token of his own that has the scopes a
visiting browser's token has there (Alice's server and the faas service), drives the
Functions sidebar's API of Alice's server (``/user/alice/faas/api/…``): his build, test,
push, deploy and invocation land in Bob's namespace and under Bob's registry path, never
in Alice's; Alice doing the same in her server lands in hers. A guest token the faas
service refuses gets a 403 that says why and what to do, and nothing is done as Alice.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from support import loopback

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

#: Longest one sidebar job may take (a first build of the dependency image included).
JOB_LIMIT_S = 900
CODE = "def main(args):\n    return {'y': 2 * args.get('x', 0), 'by': args.get('who')}\n"


@pytest.fixture(scope="module")
def people(hub):
    """aliceRUN and bobRUN with servers; Alice's server shared with Bob. Tokens with the
    scopes their browsers' tokens have: Alice's own in her server, Bob's as a visitor of
    it (made after the share, so Alice's server has not cached a refusal of it)."""
    rid = uuid.uuid4().hex[:6]
    alice, bob = f"alice{rid}", f"bob{rid}"
    for name in (alice, bob):
        hub.add_user(name)
    hub.start_server(alice)
    hub.start_server(bob)
    hub.wait_ready(alice)
    hub.wait_ready(bob)
    share = hub.api("POST", f"shares/{alice}/", _token(hub, alice, ["inherit"]), json={"user": bob})
    assert share.status_code == 200, share.text
    browser = [f"access:servers!server={alice}/", "access:services!service=faas"]
    return {
        "rid": rid,
        "alice": {"name": alice, "token": _token(hub, alice, browser)},
        "bob": {"name": bob, "token": _token(hub, bob, browser)},
        # Bob's token without the faas service's scope: Alice's server admits it, the
        # service does not.
        "bob_no_service": {"name": bob, "token": _token(hub, bob, browser[:1])},
    }


def _token(hub, name: str, scopes: list[str]) -> str:
    resp = hub.api(
        "POST",
        f"users/{name}/tokens",
        json={"scopes": scopes, "expires_in": 7200, "note": "guest deploy tests"},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def sidebar(hub, owner: str, caller: dict, method: str, path: str, **kwargs) -> requests.Response:
    """``caller`` calls the sidebar API of ``owner``'s server through the hub's proxy."""
    return loopback().request(
        method,
        f"{hub.url}/user/{owner}/faas/api/{path}",
        headers={"Authorization": f"token {caller['token']}"},
        timeout=120,
        **kwargs,
    )


def contents(hub, owner: str, caller: dict, path: str, model: dict) -> None:
    resp = loopback().put(
        f"{hub.url}/user/{owner}/api/contents/{path}",
        headers={"Authorization": f"token {caller['token']}"},
        json=model,
        timeout=60,
    )
    assert resp.status_code in (200, 201), resp.text


def write_bundle(hub, owner: str, caller: dict, folder: str, name: str) -> str:
    """A bundle folder ``folder/functions/name`` in ``owner``'s server, written by ``caller``
    through the contents API; its path relative to the server's root."""
    path = folder
    for part in ("functions", name):
        contents(hub, owner, caller, path, {"type": "directory"})
        path = f"{path}/{part}"
    contents(hub, owner, caller, path, {"type": "directory"})
    files = {
        "handler.py": CODE,
        "requirements.txt": "",
        "faas.json": f'{{"name": "{name}", "handler": "main"}}\n',
    }
    for file, text in files.items():
        contents(
            hub,
            owner,
            caller,
            f"{path}/{file}",
            {"type": "file", "format": "text", "content": text},
        )
    return path


def run_job(hub, owner: str, caller: dict, action: str, bundle: str) -> dict:
    """POST jobs, then follow it (long polls) until it is over; its last answer."""
    resp = sidebar(hub, owner, caller, "POST", "jobs", json={"action": action, "bundle": bundle})
    assert resp.status_code == 202, resp.text
    job_id, after = resp.json()["id"], 0
    deadline = time.monotonic() + JOB_LIMIT_S
    while time.monotonic() < deadline:
        answer = sidebar(hub, owner, caller, "GET", f"jobs/{job_id}?after={after}")
        assert answer.status_code == 200, answer.text
        job = answer.json()
        after = job["next"]
        if job["status"] != "running":
            assert job["status"] == "done", job["error"]
            return job
    pytest.fail(f"The {action} job of {bundle} did not end in {JOB_LIMIT_S} s:\n{hub.log_tail()}")


def namespace_of(hub, person: dict) -> dict:
    resp = hub.service("GET", "api/namespace", person["token"])
    assert resp.status_code == 200, resp.text
    return resp.json()


def actions_of(hub, api_key: str) -> set[str]:
    user, _, key = api_key.partition(":")
    resp = loopback().get(
        f"{hub.server_url}/api/v1/namespaces/_/actions", auth=(user, key), timeout=30
    )
    assert resp.status_code == 200, resp.text
    return {action["name"] for action in resp.json()}


def deploy_and_invoke(hub, owner: str, caller: dict, bundle: str, name: str) -> dict:
    """Build, test, deploy and invoke ``bundle`` through ``owner``'s sidebar as ``caller``:
    the deploy job's result, with the invocation's result under "invoked"."""
    built = run_job(hub, owner, caller, "build", bundle)["result"]
    assert built["image"], built
    tested = run_job(hub, owner, caller, "test", bundle)["result"]
    assert tested["ok"] is True, tested
    deployed = run_job(hub, owner, caller, "deploy", bundle)["result"]
    resp = sidebar(
        hub,
        owner,
        caller,
        "POST",
        "invoke",
        json={"name": name, "input": {"x": 21, "who": caller["name"]}},
    )
    assert resp.status_code == 200, resp.text
    return {**deployed, "invoked": resp.json()}


def test_a_guest_deploys_into_their_own_namespace(hub, people):
    alice, bob = people["alice"], people["bob"]
    owner = alice["name"]
    status = sidebar(hub, owner, bob, "GET", "status")
    assert status.status_code == 200, status.text
    assert status.json()["acting_as"] == {
        "user": bob["name"],
        "namespace": bob["name"],
        "guest_of": owner,
    }
    name = f"guest-{people['rid']}"
    bundle = write_bundle(hub, owner, bob, f"work/by-bob-{people['rid']}", name)
    result = deploy_and_invoke(hub, owner, bob, bundle, name)
    assert result["invoked"]["ok"] is True and result["invoked"]["result"] == {
        "y": 42,
        "by": bob["name"],
    }
    bobs, alices = namespace_of(hub, bob), namespace_of(hub, alice)
    assert result["namespace"] == bobs["namespace"] == bob["name"]
    # The service pushed the image under Bob's registry path, not Alice's.
    assert result["image"].startswith(f"127.0.0.1:5000/{bobs['registry']}/deps:"), result
    assert bobs["registry"] != alices["registry"]
    # On the function server: in Bob's namespace, not in Alice's.
    assert name in actions_of(hub, bobs["api_key"])
    assert name not in actions_of(hub, alices["api_key"])
    # Bob's sidebar in Alice's server lists his namespace's state and his run.
    listed = sidebar(hub, owner, bob, "GET", "functions").json()
    row = next(r for r in listed["functions"] if r["name"] == name)
    assert row["state"] == "deployed" and row["deployed"]["namespace"] == bob["name"], row
    assert row["last_activation"]["ok"] is True
    assert listed["acting_as"]["guest_of"] == owner
    # Alice's sidebar shows her namespace: the bundle is there, not deployed for her.
    mine = sidebar(hub, owner, alice, "GET", "functions").json()
    assert mine["acting_as"] == {"user": owner, "namespace": owner, "guest_of": None}
    row = next(r for r in mine["functions"] if r["name"] == name)
    assert row["deployed"] is None, row


def test_the_owner_still_deploys_into_her_own_namespace(hub, people):
    alice, bob = people["alice"], people["bob"]
    owner = alice["name"]
    name = f"owner-{people['rid']}"
    bundle = write_bundle(hub, owner, alice, f"work/by-alice-{people['rid']}", name)
    result = deploy_and_invoke(hub, owner, alice, bundle, name)
    assert result["invoked"]["result"] == {"y": 42, "by": owner}
    alices, bobs = namespace_of(hub, alice), namespace_of(hub, bob)
    assert result["namespace"] == alices["namespace"] == owner
    assert result["image"].startswith(f"127.0.0.1:5000/{alices['registry']}/deps:"), result
    assert name in actions_of(hub, alices["api_key"])
    assert name not in actions_of(hub, bobs["api_key"])


def test_a_guests_job_is_the_guests_alone(hub, people):
    alice, bob = people["alice"], people["bob"]
    owner = alice["name"]
    name = f"jobs-{people['rid']}"
    bundle = write_bundle(hub, owner, bob, f"work/jobs-{people['rid']}", name)
    resp = sidebar(hub, owner, bob, "POST", "jobs", json={"action": "build", "bundle": bundle})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    assert sidebar(hub, owner, alice, "GET", f"jobs/{job_id}").status_code == 404
    seen = sidebar(hub, owner, bob, "GET", f"jobs/{job_id}")
    assert seen.status_code == 200 and seen.json()["id"] == job_id


def test_a_guest_the_service_refuses_is_told_why_and_nothing_acts_as_the_owner(hub, people):
    alice, guest = people["alice"], people["bob_no_service"]
    owner = alice["name"]
    # Alice's server admits the token (it has access to her server) ...
    assert (
        loopback()
        .get(
            f"{hub.url}/user/{owner}/api/contents",
            headers={"Authorization": f"token {guest['token']}"},
            timeout=60,
        )
        .status_code
        == 200
    )
    # ... but the faas service refuses it, and the sidebar says so instead of using Alice's.
    for method, path, body in (
        ("GET", "status", None),
        ("GET", "functions", None),
        ("POST", "invoke", {"name": f"owner-{people['rid']}", "input": {"x": 1}}),
    ):
        resp = sidebar(hub, owner, guest, method, path, json=body)
        assert resp.status_code == 403, resp.text
        error = resp.json()
        assert error["reason"] == "guest-refused", error
        assert f"refused your ({guest['name']}'s) token" in error["error"], error
        assert "access:services!service=faas" in error["error"], error
        assert f"/user/{guest['name']}/" in error["error"], error

"""What a hub refuses and how it says so: a spawn that times out, builds over the
service's quota or with requirements pip cannot read, and a namespace over the function
server's per-namespace limits (hub/faas_server_config.py)."""

from __future__ import annotations

import json
import time
import uuid

import docker.errors
import pytest
from support import loopback

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


def test_a_spawn_that_times_out_says_so_and_leaves_nothing_running(stuck_hub):
    name = f"sloth{uuid.uuid4().hex[:6]}"
    stuck_hub.add_user(name)
    stuck_hub.start_server(name)
    # The progress stream the spawn page shows ends with the failure and its reason.
    events = []
    with loopback().get(
        f"{stuck_hub.url}/hub/api/users/{name}/server/progress",
        headers={"Authorization": f"token {stuck_hub.admin_token}"},
        stream=True,
        timeout=300,
    ) as resp:
        assert resp.status_code == 200, resp.text
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("failed") or events[-1].get("ready"):
                    break
    last = events[-1]
    assert last.get("failed") is True, events
    assert "didn't respond in 10 seconds" in last["message"], last
    assert stuck_hub.api("GET", f"users/{name}").json()["servers"] == {}
    # The container is gone (DockerSpawner's remove), so a later start begins afresh.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            stuck_hub.container(name)
        except docker.errors.NotFound:
            break
        time.sleep(1)
    else:
        pytest.fail(f"{stuck_hub.prefix}-{name} is still there:\n{stuck_hub.log_tail()}")


@pytest.fixture(scope="module")
def dave(hub):
    """A user without a server: the service's and the function server's API only."""
    name = f"dave{uuid.uuid4().hex[:6]}"
    hub.add_user(name)
    token = hub.user_token(name)
    resp = hub.service("GET", "api/namespace", token)
    assert resp.status_code == 200, resp.text
    return {"name": name, "token": token, "key": resp.json()["api_key"]}


def test_builds_over_the_quota_or_with_unreadable_requirements_are_refused(hub, dave):
    huge = "".join(f"package-{i}==1.0\n" for i in range(20000))  # ~300 KB
    resp = hub.service("POST", "api/build", dave["token"], json={"requirements": huge})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines[-1]["reason"] == "bad-request", lines[-1]
    assert "c.BuildJobs.max_requirements_bytes" in lines[-1]["error"]
    assert "Pin only what the function imports" in lines[-1]["hint"]
    # pip refuses the line before it asks any index; the build log says why.
    bad = f"# hub test {uuid.uuid4().hex}\nthis is not a requirement!!\n"
    resp = hub.service("POST", "api/build", dave["token"], json={"requirements": bad})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines[-1]["reason"] == "build", lines[-1]
    assert "this is not a requirement" in json.dumps(lines), lines


def test_each_namespace_has_the_hubs_rate_limits(hub, dave):
    """fires_per_minute = 60 from hub/faas_server_config.py, on the hub's function server,
    through the service's relay as from a user container, with the namespace's key (a trigger
    without rules costs no container; its fire answers 204, which the relay passes on)."""
    user, _, key = dave["key"].partition(":")
    base = f"{hub.url}/services/faas/api/v1/namespaces/_/triggers/tick"
    session = loopback()
    resp = session.put(base, auth=(user, key), json={}, timeout=30)
    assert resp.status_code == 200, resp.text
    codes = [
        session.post(base, auth=(user, key), json={}, timeout=30).status_code for _ in range(60)
    ]
    assert set(codes) == {204}, codes
    over = session.post(base, auth=(user, key), json={}, timeout=30)
    assert over.status_code == 429, over.text
    assert "Too many trigger fires in the last minute" in over.json()["error"]
    # Another namespace is not slowed by Dave's.
    other = hub.service("GET", "api/namespace", hub.user_token(_new_user(hub))).json()
    o_user, _, o_key = other["api_key"].partition(":")
    resp = session.put(base, auth=(o_user, o_key), json={}, timeout=30)
    assert session.post(base, auth=(o_user, o_key), json={}, timeout=30).status_code == 204


def _new_user(hub) -> str:
    name = f"erin{uuid.uuid4().hex[:6]}"
    hub.add_user(name)
    return name

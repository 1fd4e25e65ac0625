"""Triggers, rules, the alarms feed, and durability of the function server's state.

Real server (in-process thread or ``python -m jupyter_faas.server`` subprocess) with
the FakeInvoker; every wait is bounded.
"""

from __future__ import annotations

import time

import pytest
from conftest import ServerProcess
from support import free_port

from jupyter_faas.server.store import Database, queries

A = "/api/v1/namespaces/_"
FEED = "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true"


def setup_rule(guest, trigger: str, action: str, rule: str, **trigger_body) -> None:
    assert guest.put(
        f"{A}/actions/{action}?overwrite=true",
        json={"exec": {"kind": "blackbox", "image": "fake/echo"}},
    ).ok
    assert guest.put(f"{A}/triggers/{trigger}?overwrite=true", json=trigger_body).ok
    r = guest.put(
        f"{A}/rules/{rule}?overwrite=true",
        json={"trigger": f"/_/{trigger}", "action": f"/_/{action}"},
    )
    assert r.status_code == 200, r.text


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# -- triggers and rules ---------------------------------------------------------------------


def test_trigger_crud_and_fire_without_rules(guest):
    r = guest.put(f"{A}/triggers/t0", json={"parameters": [{"key": "a", "value": 1}]})
    assert r.status_code == 200
    doc = r.json()
    assert doc["limits"] == {} and doc["parameters"] == [{"key": "a", "value": 1}]
    assert guest.put(f"{A}/triggers/t0", json={}).status_code == 409
    assert guest.get(f"{A}/triggers").json()[0]["name"] == "t0"
    r = guest.post(f"{A}/triggers/t0", json={"x": 1})
    assert r.status_code == 204 and r.content == b""
    assert guest.delete(f"{A}/triggers/t0").json()["name"] == "t0"
    assert guest.post(f"{A}/triggers/t0").status_code == 404


def test_trigger_feed_annotation_must_be_a_name(guest):
    r = guest.put(
        f"{A}/triggers/tf",
        json={"annotations": [{"key": "feed", "value": "not a/valid/feed/name"}]},
    )
    assert r.status_code == 400 and r.json()["error"] == "Feed name is not valid"


def test_rule_fires_action_with_merged_params(guest):
    setup_rule(
        guest,
        "t1",
        "a1",
        "r1",
        parameters=[{"key": "tp", "value": "trigger"}, {"key": "x", "value": 0}],
    )
    rule = guest.get(f"{A}/rules/r1").json()
    assert rule["status"] == "active"
    assert rule["trigger"] == {"path": "guest", "name": "t1"}
    assert rule["action"] == {"path": "guest", "name": "a1"}
    trigger = guest.get(f"{A}/triggers/t1").json()
    assert trigger["rules"] == {
        "guest/r1": {"action": {"path": "guest", "name": "a1"}, "status": "active"}
    }
    r = guest.post(f"{A}/triggers/t1", json={"x": 1}, headers={"X-Custom": "yes"})
    assert r.status_code == 202
    tid = r.json()["activationId"]
    assert r.headers["x-openwhisk-activation-id"] == tid
    fired = guest.wait_activation(tid)
    assert fired["name"] == "t1" and "end" not in fired
    log = __import__("json").loads(fired["logs"][0])
    assert log["rule"] == "guest/r1" and log["action"] == "guest/a1" and log["success"] is True
    child = guest.wait_activation(log["activationId"])
    result = child["response"]["result"]
    assert result["tp"] == "trigger" and result["x"] == 1
    assert (
        result["__ow_headers"]["x-custom"] == "yes"
        and "authorization" not in result["__ow_headers"]
    )
    assert child["cause"] == tid


def test_rule_enable_disable(guest):
    setup_rule(guest, "t2", "a2", "r2")
    r = guest.post(f"{A}/rules/r2", json={"status": "inactive"})
    assert r.status_code == 200 and r.content == b""
    assert guest.get(f"{A}/rules/r2").json()["status"] == "inactive"
    assert guest.post(f"{A}/triggers/t2").status_code == 204
    r = guest.post(f"{A}/rules/r2", json={"status": "active", "trigger": None, "action": None})
    assert r.status_code == 200
    assert guest.post(f"{A}/triggers/t2").status_code == 202
    r = guest.post(f"{A}/rules/r2", json={"status": "paused"})
    assert r.status_code == 400
    assert (
        r.json()["error"]
        == "'paused' is not a recognized rule state, must be one of ['active', 'inactive']"
    )
    listed = {x["name"]: x for x in guest.get(f"{A}/rules").json()}
    assert listed["r2"]["status"] == "active"
    deleted = guest.delete(f"{A}/rules/r2").json()
    assert deleted["status"] == "inactive"
    assert "rules" not in guest.get(f"{A}/triggers/t2").json()


def test_rule_validation(guest):
    assert (
        guest.put(f"{A}/rules/rb", json={"trigger": "/_/t"}).json()["error"]
        == "rule requires a valid trigger and a valid action"
    )
    assert (
        guest.put(f"{A}/rules/rb", json={"trigger": "/_/nope", "action": "/_/nope"}).status_code
        == 400
    )
    setup_rule(guest, "t3", "a3", "r3")
    guest.delete(f"{A}/triggers/t3")
    assert guest.get(f"{A}/rules/r3").json()["status"] == "inactive"
    r = guest.post(f"{A}/rules/r3", json={"status": "active"})
    assert (
        r.status_code == 404
        and r.json()["error"] == "Only rules with existing triggers can be activated"
    )


# -- alarms ---------------------------------------------------------------------------------


def feed(guest, server, **params):
    body = {"authKey": server.guest_key(), "triggerName": "/_/tick", **params}
    return guest.post(FEED, json=body)


def test_alarms_package_is_visible_everywhere(guest):
    pkg = guest.get("/api/v1/namespaces/whisk.system/packages/alarms").json()
    assert sorted(f["name"] for f in pkg["feeds"]) == ["alarm", "interval", "once"]
    names = [p["name"] for p in guest.get("/api/v1/namespaces/whisk.system/packages").json()]
    assert names == ["alarms"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lifecycleEvent": "CREATE"}, "alarms trigger feed is missing the cron parameter"),
        (
            {"lifecycleEvent": "CREATE", "cron": "not a cron"},
            "cron pattern 'not a cron' is not valid",
        ),
        (
            {"lifecycleEvent": "CREATE", "cron": "* * * * *", "timezone": "Mars/Base"},
            "Invalid timezone.",
        ),
        (
            {"lifecycleEvent": "CREATE", "cron": "* * * * *", "startDate": "soon"},
            "startDate parameter 'soon' is not a valid Date",
        ),
        (
            {
                "lifecycleEvent": "CREATE",
                "cron": "0 0 1 1 *",
                "stopDate": lambda: int(time.time() * 1000) + 60000,
            },
            "the first scheduled trigger fire is not until after the stop date",
        ),
        ({"lifecycleEvent": "READ"}, "could not find trigger /guest/tick in the database"),
        (
            {"lifecycleEvent": "EXPLODE"},
            "lifecycleEvent must be one of CREATE, READ, UPDATE, DELETE",
        ),
        (
            {"lifecycleEvent": "CREATE", "cron": "* * * * *", "authKey": "bad:key"},
            "The supplied authKey is invalid",
        ),
    ],
)
def test_alarm_feed_validation(guest, server, params, message):
    """Dates relative to now are given as callables: parametrize runs at collection, long before."""
    params = {k: v() if callable(v) else v for k, v in params.items()}
    guest.put(f"{A}/triggers/tick?overwrite=true", json={})
    r = feed(guest, server, **params)
    assert r.status_code == 502
    assert r.json()["response"]["result"] == {"error": message}


def test_alarm_create_read_update_delete(guest, server):
    guest.put(
        f"{A}/triggers/tick?overwrite=true",
        json={"annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]},
    )
    r = feed(guest, server, lifecycleEvent="CREATE", cron="*/5 * * * *", trigger_payload="hello")
    assert r.status_code == 200 and r.json()["response"]["result"] == {"status": "success"}
    assert feed(guest, server, lifecycleEvent="CREATE", cron="* * * * *").status_code == 502
    read = feed(guest, server, lifecycleEvent="READ").json()["response"]["result"]
    assert read["config"]["cron"] == "*/5 * * * *" and read["config"]["payload"] == {
        "payload": "hello"
    }
    assert read["config"]["name"] == "tick" and read["status"]["active"] is True
    assert feed(guest, server, lifecycleEvent="UPDATE", cron="0 * * * *").status_code == 200
    read = feed(guest, server, lifecycleEvent="READ").json()["response"]["result"]
    assert read["config"]["cron"] == "0 * * * *" and read["config"]["payload"] == {
        "payload": "hello"
    }
    assert feed(guest, server, lifecycleEvent="DELETE").json()["response"]["result"] == {
        "status": "success"
    }
    assert feed(guest, server, lifecycleEvent="READ").status_code == 502


def test_alarm_fires_trigger(guest, server):
    setup_rule(guest, "tock", "onalarm", "ralarm")
    r = guest.post(
        FEED,
        json={
            "authKey": server.guest_key(),
            "triggerName": "/guest/tock",
            "lifecycleEvent": "CREATE",
            "cron": "* * * * * *",
            "trigger_payload": {"k": "v"},
        },
    )
    assert r.status_code == 200, r.text

    def fired():
        acts = guest.get(f"{A}/activations?name=onalarm&docs=true").json()
        return acts[0] if acts else None

    rec = wait_for(fired, timeout=10)
    assert rec["response"]["result"]["k"] == "v"
    guest.post(
        FEED,
        json={
            "authKey": server.guest_key(),
            "triggerName": "/guest/tock",
            "lifecycleEvent": "DELETE",
        },
    )


def test_interval_and_once_validation(guest, server):
    guest.put(f"{A}/triggers/tick?overwrite=true", json={})
    base = {"authKey": server.guest_key(), "triggerName": "/_/tick", "lifecycleEvent": "CREATE"}
    r = guest.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/interval?blocking=true", json=base
    )
    assert (
        r.json()["response"]["result"]["error"]
        == "interval trigger feed is missing the minutes parameter"
    )
    r = guest.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/once?blocking=true",
        json={**base, "date": "2001-01-01T00:00:00Z"},
    )
    assert (
        r.json()["response"]["result"]["error"]
        == "date parameter '2001-01-01T00:00:00Z' must be in the future"
    )
    r = guest.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/interval?blocking=true",
        json={**base, "minutes": 2},
    )
    assert r.status_code == 200
    read = guest.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/interval?blocking=true",
        json={**base, "lifecycleEvent": "READ"},
    )
    assert read.json()["response"]["result"]["config"]["minutes"] == 2
    guest.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/interval?blocking=true",
        json={**base, "lifecycleEvent": "DELETE"},
    )


# -- durability -----------------------------------------------------------------------------


def test_restart_keeps_everything(fresh_server):
    first = fresh_server()
    c = first.client()
    key = first.guest_key()
    assert c.put(f"{A}/actions/keep", json={"exec": {"kind": "blackbox", "image": "i"}}).ok
    assert c.put(f"{A}/packages/p", json={}).ok
    assert c.put(f"{A}/triggers/t", json={}).ok
    assert c.put(f"{A}/rules/r", json={"trigger": "/_/t", "action": "/_/keep"}).ok
    aid = c.post(f"{A}/actions/keep?blocking=true").json()["activationId"]
    assert c.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true",
        json={
            "authKey": key,
            "triggerName": "/_/t",
            "lifecycleEvent": "CREATE",
            "cron": "0 0 * * *",
        },
    ).ok
    first.stop()
    second = fresh_server()
    assert second.guest_key() == key
    c = second.client()
    assert c.get(f"{A}/actions/keep").ok and c.get(f"{A}/packages/p").ok
    assert c.get(f"{A}/rules/r").json()["status"] == "active"
    assert c.get(f"{A}/activations/{aid}").ok
    read = c.post(
        "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true",
        json={"authKey": key, "triggerName": "/_/t", "lifecycleEvent": "READ"},
    )
    assert read.json()["response"]["result"]["config"]["cron"] == "0 0 * * *"


def test_pending_activations_after_a_crash(fresh_server, tmp_path):
    first = fresh_server()
    c = first.client()
    assert c.put(f"{A}/actions/slow", json={"exec": {"kind": "blackbox", "image": "i"}}).ok
    running = c.post(f"{A}/actions/slow", json={"fake": "sleep", "seconds": 5}).json()[
        "activationId"
    ]
    wait_for(lambda: any(j.activation_id == running for j in first.server.invoker.jobs), 5)
    first.stop()  # grace 0.2 s: the running activation is cancelled and stays pending
    uuid = first.guest_key().split(":")[0]
    db = Database(tmp_path / "data" / "server.sqlite", inline=True)
    db.open()
    job = {
        "subject": uuid,
        "namespace": "guest",
        "action": "/guest/slow",
        "binding": None,
        "payload": {"n": 7},
        "cause": None,
    }
    db.write_sync(queries.add_pending, "f" * 32, job, 1)
    db.write_sync(queries.add_pending, "e" * 32, {**job, "action": "/guest/deleted"}, 1)
    db.close()
    second = fresh_server()
    c = second.client()
    failed = c.wait_activation(running)
    assert failed["response"]["status"] == "whisk internal error"
    assert failed["response"]["result"] == {
        "error": "whisk internal error: server restarted during the activation"
    }
    rerun = c.wait_activation("f" * 32)
    assert rerun["response"]["result"] == {"n": 7}
    gone = c.wait_activation("e" * 32)
    assert gone["name"] == "deleted"
    assert "deleted while the server was down" in gone["response"]["result"]["error"]


def test_kill_9_loses_no_entity(tmp_path):
    data = tmp_path / "data"
    proc = ServerProcess(data, free_port()).start()
    try:
        c = proc.client()
        for i in range(20):
            assert c.put(f"{A}/actions/k{i}", json={"exec": {"kind": "blackbox", "image": "i"}}).ok
        assert c.put(f"{A}/triggers/kt", json={}).ok
        aid = c.post(f"{A}/actions/k0?blocking=true").json()["activationId"]
    finally:
        proc.kill()
    proc = ServerProcess(data, free_port()).start()
    try:
        c = proc.client()
        assert c.get(f"{A}/actions?count=true").json() == {"actions": 20}
        assert c.get(f"{A}/triggers/kt").ok
        assert c.get(f"{A}/activations/{aid}").ok
    finally:
        proc.stop()


# -- throttling -----------------------------------------------------------------------------


def test_invocations_and_fires_over_the_minute_limit_get_429(fresh_server):
    srv = fresh_server(invocations_per_minute=3, fires_per_minute=1)
    c = srv.client()
    assert c.put(f"{A}/actions/t", json={"exec": {"kind": "blackbox", "image": "i"}}).ok
    for _ in range(3):
        assert c.post(f"{A}/actions/t?blocking=true").status_code == 200
    r = c.post(f"{A}/actions/t?blocking=true")
    assert r.status_code == 429
    assert r.json()["error"].startswith(
        "Too many requests in the last minute (count: 3, allowed: 3)."
    )
    assert r.json()["code"]
    assert c.put(f"{A}/triggers/tick", json={}).ok
    assert c.post(f"{A}/triggers/tick").status_code == 204
    r = c.post(f"{A}/triggers/tick")
    assert r.status_code == 429 and "trigger fires" in r.json()["error"]

"""``kill -9`` of the real server under load, then a restart on the same data directory.

Nothing may be lost: entities (actions, triggers, rules, a published package,
an alarm) are all still there; activations that had finished are still
retrievable; every invocation that was answered 202 ends up with a record,
either run after the restart (if it had not started) or recorded as a whisk
internal error (if it was running at the time of the kill); and the containers
the killed server left behind are removed when the new one starts.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests
from conftest import REAL_START_TIMEOUT, RUN_LABEL, Client, ServerProcess
from support import free_port

from jupyter_faas import engine
from jupyter_faas.server.activator import RESTARTED
from jupyter_faas.server.pool.containers import INSTANCE_LABEL

pytestmark = pytest.mark.docker

A = "/api/v1/namespaces/_"
FEED = "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true"
BURST = 100
#: Kill the server once this many invocations of the burst were accepted.
KILL_AFTER = 40
#: Run slots of the server: accepted activations beyond these wait unstarted, so the
#: kill leaves both kinds of pending activation (re-run and failed on restart).
MAX_RUNNING = 4
#: Seconds every accepted activation gets to be recorded after the restart.
SETTLE_WAIT = 180
SLOW = "import time\n\ndef main(args):\n    time.sleep(0.5)\n    return {'i': args.get('i')}\n"
QUICK = "def main(args):\n    return {'echo': args}\n"
ACTIONS = ("slow", "quick", "ruled")
TRIGGERS = ("t-rule", "t-alarm")


@pytest.fixture
def labels(run_label) -> dict[str, str]:
    """Labels of this test's action containers: the run's, plus one of the test's own.

    The extra label scopes the restarted server's start-up cleanup to this test.
    """
    return {RUN_LABEL: run_label, "org.jupyter-faas.test": uuid.uuid4().hex}


@pytest.fixture
def server_args(real_server_args, labels) -> list[str]:
    """The real-server settings with ``labels`` on its containers."""
    args = [a for a in real_server_args if not a.startswith("--DockerInvoker.extra_labels=")]
    return [
        *args,
        f"--DockerInvoker.extra_labels={json.dumps(labels)}",
        f"--FunctionServer.max_running_activations={MAX_RUNNING}",
    ]


def put(c: Client, path: str, body: dict) -> dict:
    r = c.put(f"{A}/{path}", json=body)
    assert r.status_code == 200, f"PUT {path}: {r.text}"
    return r.json()


def wait_record(c: Client, activation_id: str, deadline: float) -> dict:
    while True:
        r = c.get(f"{A}/activations/{activation_id}")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 404, r.text
        assert time.monotonic() < deadline, f"activation {activation_id} was never recorded"
        time.sleep(0.1)


def names(c: Client, collection: str) -> set[str]:
    r = c.get(f"{A}/{collection}?limit=0")
    assert r.status_code == 200, r.text
    return {doc["name"] for doc in r.json()}


def setup_entities(c: Client) -> None:
    for name, code in zip(ACTIONS, (SLOW, QUICK, QUICK), strict=True):
        put(c, f"actions/{name}", {"exec": {"kind": "python:3.11", "code": code}})
    put(c, "packages/shelf", {"publish": True, "parameters": [{"key": "p", "value": 1}]})
    put(c, "actions/shelf/inner", {"exec": {"kind": "python:3.11", "code": QUICK}})
    put(c, "triggers/t-rule", {})
    put(c, "rules/r1", {"trigger": "/_/t-rule", "action": "/_/ruled"})
    feed = [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]
    put(c, "triggers/t-alarm", {"annotations": feed})
    r = c.post(
        FEED,
        json={
            "lifecycleEvent": "CREATE",
            "triggerName": "/_/t-alarm",
            "authKey": ":".join(c.session.auth),
            "cron": "*/5 * * * *",
        },
    )
    assert r.status_code == 200, r.text


def finished_before_kill(c: Client) -> dict[str, dict]:
    """Activations that finish before the kill: blocking invokes and a fired rule."""
    done = {}
    for name, params in (("quick", {"n": 1}), ("shelf/inner", {"n": 2}), ("slow", {"i": -1})):
        r = c.post(f"{A}/actions/{name}?blocking=true", json=params, timeout=120)
        assert r.status_code == 200, r.text
        done[r.json()["activationId"]] = r.json()
    fired = c.post(f"{A}/triggers/t-rule", json={"x": 1})
    assert fired.status_code == 202, fired.text
    deadline = time.monotonic() + 60
    trigger_record = wait_record(c, fired.json()["activationId"], deadline)
    done[trigger_record["activationId"]] = trigger_record
    child = json.loads(trigger_record["logs"][0])["activationId"]
    done[child] = wait_record(c, child, deadline)
    return done


class Burst(threading.Thread):
    """Non-blocking invocations of ``slow``, one after another, until one fails."""

    def __init__(self, client: Client):
        super().__init__(daemon=True)
        self.client = client
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.halfway = threading.Event()

    def run(self) -> None:
        try:
            for i in range(BURST):
                try:
                    r = self.client.post(f"{A}/actions/slow", json={"i": i}, timeout=10)
                except requests.RequestException:
                    return  # the server is gone: this one may or may not have been accepted
                if r.status_code == 202:
                    self.accepted.append(r.json()["activationId"])
                else:
                    self.refused.append(f"{r.status_code} {r.text}")
                if len(self.accepted) == KILL_AFTER:
                    self.halfway.set()
        finally:
            self.halfway.set()


def test_kill_9_under_load_loses_nothing(tmp_path, server_args, labels, docker_client):
    data = tmp_path / "data"
    first = ServerProcess(data, free_port(), server_args, REAL_START_TIMEOUT).start()
    try:
        c = first.client()
        setup_entities(c)
        done = finished_before_kill(c)
        burst = Burst(first.client())
        burst.start()
        assert burst.halfway.wait(60), "the burst did not get going"
    finally:
        first.kill()
    # The action containers outlive the killed server.
    left_behind = list(engine.containers_with_label(docker_client, **labels))
    old = {container.labels[INSTANCE_LABEL] for container in left_behind}
    burst.join(30)
    assert not burst.is_alive()
    assert not burst.refused, burst.refused
    assert KILL_AFTER <= len(burst.accepted) < BURST, "the kill did not land inside the burst"
    assert old, "the first server had no containers at the time of the kill"

    second = ServerProcess(data, free_port(), server_args, REAL_START_TIMEOUT).start()
    try:
        c = second.client()
        # Crash cleanup happens before the server listens.
        for instance in old:
            left = list(engine.containers_with_label(docker_client, **{INSTANCE_LABEL: instance}))
            assert not left, f"containers of the killed invoker {instance} remain: {left}"

        assert set(ACTIONS) <= names(c, "actions")
        assert names(c, "actions/shelf/") == {"inner"}
        assert names(c, "packages") == {"shelf"}
        assert names(c, "triggers") == set(TRIGGERS)
        assert names(c, "rules") == {"r1"}
        assert c.get(f"{A}/rules/r1").json()["status"] == "active"
        shelf = c.get(f"{A}/packages/shelf").json()
        assert shelf["publish"] is True and shelf["parameters"] == [{"key": "p", "value": 1}]
        alarm = c.post(
            FEED,
            json={
                "lifecycleEvent": "READ",
                "triggerName": "/_/t-alarm",
                "authKey": ":".join(c.session.auth),
            },
        )
        assert alarm.status_code == 200, alarm.text
        assert alarm.json()["response"]["result"]["config"]["cron"] == "*/5 * * * *"

        for activation_id, record in done.items():
            r = c.get(f"{A}/activations/{activation_id}")
            assert r.status_code == 200, f"finished activation {activation_id} lost: {r.text}"
            assert r.json() == record

        deadline = time.monotonic() + SETTLE_WAIT
        outcomes = {"success": 0, "restarted": 0}
        for activation_id in burst.accepted:
            record = wait_record(c, activation_id, deadline)
            response = record["response"]
            if response["success"]:
                outcomes["success"] += 1
                assert response["result"] == {"i": burst.accepted.index(activation_id)}
            else:
                assert response["status"] == "whisk internal error", record
                assert response["result"] == {"error": RESTARTED}
                outcomes["restarted"] += 1
        # Only activations holding a run slot at the kill may have failed; the rest re-ran.
        assert outcomes["restarted"] <= MAX_RUNNING, outcomes
        assert outcomes["success"] >= len(burst.accepted) - MAX_RUNNING, outcomes
        # The server still works.
        r = c.post(f"{A}/actions/quick?blocking=true&result=true", json={"after": 1})
        assert r.json() == {"echo": {"after": 1}}
    finally:
        second.stop()
    assert not list(engine.containers_with_label(docker_client, **labels))

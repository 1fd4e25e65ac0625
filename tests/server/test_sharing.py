"""Sharing functions between namespaces, as OpenWhisk does it: published packages.

Alice publishes a package; Bob lists it, reads and invokes its action, binds
it, and uses it in a sequence of his own. The server is real (tornado, SQLite,
on 127.0.0.1); only the Invoker is the FakeInvoker (an echo), because these
tests pin who may reach what and where records land, not containers.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from jupyter_faas.server.app import namespace_main

A = "/api/v1/namespaces/_"
ECHO = {"exec": {"kind": "blackbox", "image": "fake/echo", "code": "def main(a): return a"}}


@pytest.fixture(scope="module")
def people(server):
    """Alice and Bob: two namespaces made with the CLI while the server runs."""
    clients = {}
    for name in ("alice", "bob"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert namespace_main(["create", name, "--data-dir", str(server.data_dir)]) == 0
        clients[name] = server.client(out.getvalue().strip())
    return clients["alice"], clients["bob"]


def publish_shelf(alice, publish: bool = True) -> None:
    body = {
        "publish": publish,
        "annotations": [{"key": "description", "value": "peak finding"}],
    }
    assert alice.put(f"{A}/packages/shelf?overwrite=true", json=body).ok
    assert alice.put(f"{A}/actions/shelf/peaks?overwrite=true", json=ECHO).ok


def test_only_published_packages_are_listed_to_others(people):
    alice, bob = people
    publish_shelf(alice)
    assert alice.put(f"{A}/packages/private?overwrite=true", json={}).ok
    assert bob.put(f"{A}/packages/own?overwrite=true", json={}).ok
    listed = bob.get("/api/v1/namespaces/alice/packages").json()
    assert [p["name"] for p in listed] == ["shelf"]
    # public=true: Bob's own packages plus what every other namespace published.
    found = {(p["namespace"], p["name"]) for p in bob.get(f"{A}/packages?public=true").json()}
    assert ("alice", "shelf") in found and ("bob", "own") in found
    assert ("alice", "private") not in found
    # Without public, Bob sees his own only; Alice sees both of hers.
    assert {p["namespace"] for p in bob.get(f"{A}/packages").json()} == {"bob"}
    assert {p["name"] for p in alice.get(f"{A}/packages").json()} >= {"shelf", "private"}
    pkg = bob.get("/api/v1/namespaces/alice/packages/shelf").json()
    assert [a["name"] for a in pkg["actions"]] == ["peaks"]
    assert {"key": "description", "value": "peak finding"} in pkg["annotations"]


def test_a_published_action_is_read_and_invoked_from_another_namespace(people):
    alice, bob = people
    publish_shelf(alice)
    doc = bob.get("/api/v1/namespaces/alice/actions/shelf/peaks").json()
    assert doc["exec"]["code"] == ECHO["exec"]["code"] and doc["namespace"] == "alice/shelf"
    r = bob.post("/api/v1/namespaces/alice/actions/shelf/peaks?blocking=true", json={"x": 1})
    assert r.status_code == 200, r.text
    record = r.json()
    # OpenWhisk: the activation belongs to the invoker's namespace, not the action's.
    assert record["namespace"] == "bob" and record["subject"] == "bob"
    path = {a["key"]: a["value"] for a in record["annotations"]}["path"]
    assert path == "alice/shelf/peaks"
    assert bob.get(f"{A}/activations/{record['activationId']}").ok
    assert alice.get(f"{A}/activations/{record['activationId']}").status_code == 404


def test_others_cannot_change_a_published_package(people):
    alice, bob = people
    publish_shelf(alice)
    for method, path, body in (
        ("PUT", "actions/shelf/peaks?overwrite=true", ECHO),
        ("DELETE", "actions/shelf/peaks", None),
        ("PUT", "packages/shelf?overwrite=true", {"publish": False}),
        ("DELETE", "packages/shelf?force=true", None),
    ):
        r = bob.request(method, f"/api/v1/namespaces/alice/{path}", json=body)
        assert r.status_code == 403, (method, path, r.text)
    assert alice.get(f"{A}/packages/shelf").json()["publish"] is True


def test_binding_and_sequence_through_a_published_package(people):
    alice, bob = people
    publish_shelf(alice)
    binding = {
        "binding": {"namespace": "alice", "name": "shelf"},
        "parameters": [{"key": "threshold", "value": 3}],
    }
    assert bob.put(f"{A}/packages/alices?overwrite=true", json=binding).ok
    record = bob.post(f"{A}/actions/alices/peaks?blocking=true", json={"x": 2}).json()
    assert record["response"]["result"] == {"threshold": 3, "x": 2}
    keys = {a["key"]: a["value"] for a in record["annotations"]}
    assert keys["binding"] == "bob/alices" and keys["path"] == "alice/shelf/peaks"
    assert bob.put(f"{A}/actions/tail?overwrite=true", json=ECHO).ok
    sequence = {"exec": {"kind": "sequence", "components": ["/alice/shelf/peaks", "/_/tail"]}}
    assert bob.put(f"{A}/actions/pipeline?overwrite=true", json=sequence).ok
    record = bob.post(f"{A}/actions/pipeline?blocking=true", json={"y": 1}).json()
    assert record["response"]["success"] and record["response"]["result"] == {"y": 1}
    assert record["namespace"] == "bob" and len(record["logs"]) == 2


def test_unpublished_while_in_use_says_whose_package_and_loses_nothing(people):
    alice, bob = people
    publish_shelf(alice)
    assert bob.put(f"{A}/actions/mine?overwrite=true", json=ECHO).ok
    binding = {"binding": {"namespace": "alice", "name": "shelf"}}
    assert bob.put(f"{A}/packages/alices?overwrite=true", json=binding).ok
    sequence = {"exec": {"kind": "sequence", "components": ["/alice/shelf/peaks"]}}
    assert bob.put(f"{A}/actions/uses-shelf?overwrite=true", json=sequence).ok
    # Bob's run in flight when Alice unpublishes finishes: it was resolved when accepted.
    r = bob.post(
        "/api/v1/namespaces/alice/actions/shelf/peaks", json={"fake": "sleep", "seconds": 0.5}
    )
    assert r.status_code == 202
    in_flight = r.json()["activationId"]
    publish_shelf(alice, publish=False)
    assert bob.wait_activation(in_flight)["response"]["success"]

    for path in ("/api/v1/namespaces/alice/actions/shelf/peaks", f"{A}/actions/alices/peaks"):
        r = bob.post(f"{path}?blocking=true", json={})
        assert r.status_code == 403, r.text
        message = r.json()["error"]
        assert "Package shelf of namespace alice is not published" in message, message
        assert "ask alice to publish it again" in message
    record = bob.post(f"{A}/actions/uses-shelf?blocking=true", json={}).json()
    assert not record["response"]["success"]
    # Bob's own things are untouched: his action runs, his bindings, sequence and
    # activations are all still there.
    assert bob.post(f"{A}/actions/mine?blocking=true", json={"z": 1}).json()["response"]["success"]
    names = {a["name"] for a in bob.get(f"{A}/actions?limit=0").json()}
    assert {"mine", "uses-shelf"} <= names
    assert bob.get(f"{A}/packages/alices").status_code == 403  # reading through it is refused
    assert any(p["name"] == "alices" for p in bob.get(f"{A}/packages").json())
    assert bob.get(f"{A}/activations/{in_flight}").ok
    # Published again, everything works again.
    publish_shelf(alice)
    assert bob.post(f"{A}/actions/alices/peaks?blocking=true", json={}).ok


def test_a_namespace_that_shares_nothing_lists_nothing(people, server):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert namespace_main(["create", "carol", "--data-dir", str(server.data_dir)]) == 0
    carol = server.client(out.getvalue().strip())
    assert carol.get("/api/v1/namespaces/carol/packages").json() == []
    _, bob = people
    assert bob.get("/api/v1/namespaces/carol/packages").json() == []
    r = bob.post("/api/v1/namespaces/carol/actions/nothing/here?blocking=true", json={})
    assert r.status_code == 403
    assert "Package nothing of namespace carol is not published" in r.json()["error"]

"""Project issue 9: hostile callers against a real server (FakeInvoker subprocesses).

Each test reproduces one attack and fails without its fix.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import sqlite3
import stat
import time

import pytest
from conftest import Client, ServerProcess
from support import free_port

from jupyter_faas.server.app import namespace_main
from jupyter_faas.server.store import keys

A = "/api/v1/namespaces/_"
FEED = "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true"
ECHO = {"exec": {"kind": "blackbox", "image": "fake/echo"}}


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = namespace_main(list(argv))
    return status, out.getvalue().strip(), err.getvalue().strip()


@pytest.fixture(scope="module")
def proc(tmp_path_factory):
    """A server subprocess of this module's own."""
    data = tmp_path_factory.mktemp("isolation") / "data"
    srv = ServerProcess(data, free_port(), ["--FunctionServer.alarm_allow_seconds=True"]).start()
    yield srv
    srv.stop()


def new_namespace(proc: ServerProcess, name: str) -> Client:
    status, key, err = cli("create", name, "--data-dir", str(proc.data_dir))
    assert status == 0, err
    return Client(proc.base, key)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- 12. keys -----------------------------------------------------------------------------


def test_state_files_are_owner_only_and_keys_are_hashed(proc):
    c = proc.client()
    assert c.put(f"{A}/actions/perm", json=ECHO).ok  # a write: the WAL exists
    data = proc.data_dir
    assert mode(data) == 0o700
    for name in ("server.sqlite", "server.sqlite-wal", "server.sqlite-shm", "auth.guest"):
        assert (data / name).exists(), name
        assert mode(data / name) == 0o600, name
    guest_key = proc.api_key().split(":", 1)[1]
    conn = sqlite3.connect(data / "server.sqlite")
    stored = dict(conn.execute("SELECT name, key FROM namespaces").fetchall())
    conn.close()
    assert keys.is_hashed(stored["guest"]) and guest_key not in stored["guest"]
    for path in data.iterdir():
        if path.name != "auth.guest":
            assert guest_key.encode() not in path.read_bytes(), path


def test_rotate_refuses_the_old_key_at_once(proc):
    old = new_namespace(proc, "rot")
    assert old.get(f"{A}/actions").status_code == 200  # cached by the server now
    status, new_key, err = cli("rotate", "rot", "--data-dir", str(proc.data_dir))
    assert status == 0, err
    assert new_key.split(":")[0] == old.api_key.split(":")[0]
    r = old.get(f"{A}/actions")
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "The supplied authentication is invalid"
    assert Client(proc.base, new_key).get(f"{A}/actions").status_code == 200
    assert cli("rotate", "nosuch", "--data-dir", str(proc.data_dir))[0] == 1


def test_rotate_guest_rewrites_its_auth_file(proc):
    before = proc.api_key()
    status, new_key, _ = cli("rotate", "guest", "--data-dir", str(proc.data_dir))
    assert status == 0 and proc.api_key() == new_key != before
    assert mode(proc.data_dir / "auth.guest") == 0o600
    assert Client(proc.base, before).get(f"{A}/actions").status_code == 401
    assert proc.client().get(f"{A}/actions").status_code == 200


def test_delete_removes_the_namespace_and_all_it_owns(proc):
    bob = new_namespace(proc, "bob")
    assert bob.put(f"{A}/actions/a", json=ECHO).ok
    assert bob.post(f"{A}/actions/a?blocking=true").status_code == 200
    assert bob.put(
        f"{A}/triggers/tick",
        json={"annotations": [{"key": "feed", "value": "/whisk.system/alarms/alarm"}]},
    ).ok
    body = {"authKey": bob.api_key, "triggerName": "/_/tick", "lifecycleEvent": "CREATE"}
    assert bob.post(FEED, json={**body, "cron": "* * * * * *"}).status_code == 200
    status, out, err = cli("delete", "bob", "--data-dir", str(proc.data_dir))
    assert status == 0, err
    assert "Deleted namespace bob" in out
    assert bob.get(f"{A}/actions").status_code == 401
    time.sleep(1.5)  # the alarm's next fire finds the namespace gone and must not revive it
    conn = sqlite3.connect(proc.data_dir / "server.sqlite")
    for table in ("entities", "activations", "alarms"):
        n = conn.execute(f"SELECT count(*) FROM {table} WHERE namespace = 'bob'").fetchone()[0]
        assert n == 0, table
    assert conn.execute("SELECT count(*) FROM namespaces WHERE name='bob'").fetchone()[0] == 0
    conn.close()
    # A new namespace of the same name starts empty.
    bob2 = new_namespace(proc, "bob")
    assert bob2.get(f"{A}/actions").json() == []
    assert bob2.get(f"{A}/activations").json() == []


@pytest.mark.parametrize("name", ["guest", "whisk.system"])
def test_delete_refuses_the_built_in_namespaces(proc, name):
    status, _, err = cli("delete", name, "--data-dir", str(proc.data_dir))
    assert status == 1 and "cannot be deleted" in err and "rotate" in err


def test_plain_keys_of_an_old_database_keep_working(tmp_path):
    """A schema-1 database (plain keys) is upgraded on start; its keys still work."""
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "server.sqlite")
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE namespaces (name TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,
            key TEXT NOT NULL, created INTEGER NOT NULL);
        INSERT INTO namespaces VALUES ('guest', 'u-guest', 'plainguestkey', 0);
        INSERT INTO namespaces VALUES ('old', 'u-old', 'plainoldkey', 0);
        """
    )
    conn.close()
    (data / "auth.guest").write_text("u-guest:plainguestkey\n")
    (data / "auth.guest").chmod(0o644)
    srv = ServerProcess(data, free_port()).start()
    try:
        assert Client(srv.base, "u-old:plainoldkey").get(f"{A}/actions").status_code == 200
        assert Client(srv.base, "u-guest:plainguestkey").get(f"{A}/actions").status_code == 200
        assert Client(srv.base, "u-old:wrong").get(f"{A}/actions").status_code == 401
        assert mode(data / "auth.guest") == 0o600 and mode(data / "server.sqlite") == 0o600
    finally:
        srv.stop()
    conn = sqlite3.connect(data / "server.sqlite")
    stored = [k for (k,) in conn.execute("SELECT key FROM namespaces")]
    conn.close()
    assert all(keys.is_hashed(k) for k in stored)


# -- 9. bodies are not read before the key and the declared size are checked --------------


def raw_request(
    proc: ServerProcess, method: str, path: str, headers: dict, answer_headers: dict | None = None
) -> tuple[int, dict]:
    """Send the headers and a first piece of the body, and read the answer (its headers go
    into ``answer_headers`` when given).

    The rest of the body is never sent: a server that waits for it times the test out.
    """
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{proc.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.sendall(b"{" + b" " * 65536)
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
                if len(body) >= int(fields.get("Content-Length", "0")):
                    break
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer after {data!r}"
            data += chunk
    if answer_headers is not None:
        answer_headers.update(fields)
    return int(head.split()[1]), json.loads(body) if body else {}


def basic(api_key: str) -> str:
    return "Basic " + base64.b64encode(api_key.encode()).decode()


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", f"{A}/actions/big"), ("POST", f"{A}/actions/big"), ("PUT", f"{A}/triggers/t")],
)
def test_a_body_with_a_bad_key_is_refused_before_it_is_read(proc, method, path):
    uuid = proc.api_key().split(":")[0]
    for auth in ({"Authorization": basic(f"{uuid}:wrong")}, {}):
        status, body = raw_request(proc, method, path, {"Content-Length": str(50_000_000), **auth})
        assert status == 401, body
        assert body["error"] in (
            "The supplied authentication is invalid",
            "The resource requires authentication, which was not supplied with the request",
        )


def test_a_chunked_body_with_a_bad_key_is_refused_before_it_is_read(proc):
    uuid = proc.api_key().split(":")[0]
    headers = {"Authorization": basic(f"{uuid}:wrong"), "Transfer-Encoding": "chunked"}
    status, body = raw_request(proc, "PUT", f"{A}/actions/big", headers)
    assert status == 401 and body["error"] == "The supplied authentication is invalid"


def test_an_over_limit_length_gets_openwhisks_json_413(proc):
    good = {"Authorization": basic(proc.api_key()), "Content-Type": "application/json"}
    answer: dict = {}
    status, body = raw_request(
        proc, "POST", f"{A}/actions/big", {"Content-Length": str(2_000_000), **good}, answer
    )
    assert status == 413
    assert body["error"] == "Request larger than allowed: 2000000 > 1048576 bytes."
    assert set(body) == {"error", "code"}
    # The unread body stays on the connection: the answer says it closes, so no client
    # sends its next request on it.
    assert answer.get("Connection") == "close", answer
    # Over the server-wide maximum too: still the JSON 413, not a closed connection.
    status, body = raw_request(
        proc, "PUT", f"{A}/actions/big", {"Content-Length": str(10**12), **good}
    )
    assert status == 413 and body["error"].startswith(
        "Request larger than allowed: 1000000000000 >"
    )


def test_bodies_within_the_limit_still_work(proc):
    c = proc.client()
    assert c.put(f"{A}/actions/echo2?overwrite=true", json=ECHO).ok
    r = c.post(f"{A}/actions/echo2?blocking=true&result=true", json={"x": "y" * 500_000})
    assert r.status_code == 200 and r.json()["x"] == "y" * 500_000


# -- 7. sequence amplification ------------------------------------------------------------


def echo_jobs(srv) -> int:
    return len(srv.server.invoker.jobs)


def test_nested_sequences_run_at_most_the_sequence_limit(fresh_server):
    srv = fresh_server()
    c = srv.client()
    assert c.put(f"{A}/actions/a", json=ECHO).ok
    fifty = {"exec": {"kind": "sequence", "components": ["/_/a"] * 50}}
    assert c.put(f"{A}/actions/s50", json=fifty).ok
    two = {"exec": {"kind": "sequence", "components": ["/_/s50", "/_/s50", "/_/s50"]}}
    assert c.put(f"{A}/actions/s150", json=two).ok
    before = echo_jobs(srv)
    r = c.post(f"{A}/actions/s150?blocking=true")
    assert r.status_code == 502, r.text  # an application error of the sequence
    assert r.json()["response"]["result"] == {"error": "Too many actions in the sequence."}
    assert echo_jobs(srv) - before == 50
    # Exactly the limit still works.
    r = c.post(f"{A}/actions/s50?blocking=true")
    assert r.status_code == 200 and echo_jobs(srv) - before == 100


def test_sequence_components_count_against_the_minute_limit(fresh_server):
    srv = fresh_server(invocations_per_minute=5)
    c = srv.client()
    assert c.put(f"{A}/actions/a", json=ECHO).ok
    seq = {"exec": {"kind": "sequence", "components": ["/_/a"] * 10}}
    assert c.put(f"{A}/actions/s10", json=seq).ok
    r = c.post(f"{A}/actions/s10?blocking=true")  # 1 for the sequence, 4 components, then no
    assert r.status_code == 502, r.text
    assert r.json()["response"]["result"]["error"].startswith(
        "Too many requests in the last minute (count: 5, allowed: 5)."
    )
    assert echo_jobs(srv) == 4
    assert c.post(f"{A}/actions/a?blocking=true").status_code == 429


# -- 8. web actions and alarms respect the limits ------------------------------------------


def test_web_actions_count_against_the_minute_limit(fresh_server):
    srv = fresh_server(invocations_per_minute=2)
    c = srv.client()
    body = {**ECHO, "annotations": [{"key": "web-export", "value": True}]}
    assert c.put(f"{A}/actions/page", json=body).ok
    anon = srv.client(None)
    url = "/api/v1/web/guest/default/page.json"
    assert [anon.get(url).status_code for _ in range(3)] == [200, 200, 429]
    r = anon.get(url)
    assert r.json()["error"].startswith("Too many requests in the last minute")
    assert echo_jobs(srv) == 2


def test_alarm_fires_count_against_the_minute_limits(fresh_server):
    srv = fresh_server(invocations_per_minute=3)  # the feed's CREATE is one of them
    c = srv.client()
    assert c.put(f"{A}/actions/onalarm", json=ECHO).ok
    assert c.put(f"{A}/triggers/tock", json={}).ok
    rule = {"trigger": "/_/tock", "action": "/_/onalarm"}
    assert c.put(f"{A}/rules/r", json=rule).ok
    feed = {"authKey": srv.guest_key(), "triggerName": "/_/tock", "lifecycleEvent": "CREATE"}
    assert c.post(FEED, json={**feed, "cron": "* * * * * *"}).status_code == 200
    time.sleep(4.5)
    c.post(FEED, json={**feed, "lifecycleEvent": "DELETE"})
    assert echo_jobs(srv) == 2
    fires = c.get(f"{A}/activations?name=tock&docs=true&limit=0").json()
    refused = [f for f in fires if "Too many requests" in "".join(f["logs"])]
    assert len(fires) >= 3 and refused


def test_alarm_fires_count_against_fires_per_minute(fresh_server):
    srv = fresh_server(fires_per_minute=1)
    c = srv.client()
    assert c.put(f"{A}/triggers/tock", json={}).ok
    assert c.put(f"{A}/actions/onalarm", json=ECHO).ok
    assert c.put(f"{A}/rules/r", json={"trigger": "/_/tock", "action": "/_/onalarm"}).ok
    feed = {"authKey": srv.guest_key(), "triggerName": "/_/tock", "lifecycleEvent": "CREATE"}
    assert c.post(FEED, json={**feed, "cron": "* * * * * *"}).status_code == 200
    time.sleep(3.5)
    c.post(FEED, json={**feed, "lifecycleEvent": "DELETE"})
    assert len(c.get(f"{A}/activations?name=tock").json()) == 1


def test_alarms_per_namespace_are_limited(fresh_server):
    srv = fresh_server(max_alarms_per_namespace=2)
    c = srv.client()
    for name in ("t1", "t2", "t3"):
        assert c.put(f"{A}/triggers/{name}", json={}).ok
    feed = {"authKey": srv.guest_key(), "lifecycleEvent": "CREATE", "cron": "0 0 1 1 *"}
    for name in ("t1", "t2"):
        assert c.post(FEED, json={**feed, "triggerName": f"/_/{name}"}).status_code == 200
    r = c.post(FEED, json={**feed, "triggerName": "/_/t3"})
    assert r.status_code == 502
    error = r.json()["response"]["result"]["error"]
    assert "has 2 alarms" in error and "max_alarms_per_namespace = 2" in error
    c.post(FEED, json={**feed, "triggerName": "/_/t1", "lifecycleEvent": "DELETE"})
    assert c.post(FEED, json={**feed, "triggerName": "/_/t3"}).status_code == 200


# -- 10. activation retention, annotation size, bounded lists ------------------------------


def test_activation_retention_by_count(fresh_server):
    srv = fresh_server(activation_max_count=3, activation_cleanup_interval_s=0.2)
    c = srv.client()
    assert c.put(f"{A}/actions/a", json=ECHO).ok
    for _ in range(6):
        assert c.post(f"{A}/actions/a?blocking=true").status_code == 200
    deadline = time.monotonic() + 5
    while c.get(f"{A}/activations?count=true").json()["activations"] > 3:
        assert time.monotonic() < deadline, "the clean-up did not run"
        time.sleep(0.1)
    assert len(c.get(f"{A}/activations").json()) == 3


def test_activation_retention_by_age(fresh_server):
    srv = fresh_server(activation_max_age_hours=0.5 / 3600, activation_cleanup_interval_s=0.2)
    c = srv.client()
    assert c.put(f"{A}/actions/a", json=ECHO).ok
    assert c.post(f"{A}/actions/a?blocking=true").status_code == 200
    deadline = time.monotonic() + 5
    while c.get(f"{A}/activations").json():
        assert time.monotonic() < deadline, "the clean-up did not run"
        time.sleep(0.1)


def test_annotations_are_bounded_like_parameters(fresh_server):
    srv = fresh_server(max_payload_bytes=10_000)
    c = srv.client()
    big = [{"key": "k", "value": "x" * 11_000}]
    r = c.put(f"{A}/actions/a", json={**ECHO, "annotations": big})
    assert r.status_code == 413
    assert r.json()["error"].startswith("annotations larger than allowed: ")
    assert r.json()["error"].endswith(" > 10000 bytes.")
    # Growing them update by update is refused too.
    half = [{"key": "k1", "value": "x" * 6_000}]
    assert c.put(f"{A}/actions/a", json={**ECHO, "annotations": half}).ok
    more = {"annotations": [{"key": "k2", "value": "x" * 6_000}]}
    for path in ("actions/a", "triggers/t", "packages/p"):
        first = {} if path != "actions/a" else ECHO
        if path != "actions/a":
            assert c.put(f"{A}/{path}", json={**first, **{"annotations": half}}).ok
        r = c.put(f"{A}/{path}?overwrite=true", json=more)
        assert r.status_code == 413, (path, r.text)


def test_activation_lists_with_docs_are_bounded(fresh_server):
    srv = fresh_server(max_activation_list_bytes=20_000)
    c = srv.client()
    assert c.put(f"{A}/actions/a", json=ECHO).ok
    for _ in range(5):
        assert c.post(f"{A}/actions/a?blocking=true", json={"p": "x" * 6_000}).ok
    assert len(c.get(f"{A}/activations?limit=5").json()) == 5
    r = c.get(f"{A}/activations?limit=5&docs=true")
    assert 1 <= len(r.json()) < 5 and r.headers["X-Faas-List-Bytes-Limit"] == "20000"
    assert len(r.content) < 30_000
    rest = c.get(f"{A}/activations?limit=5&docs=true&skip={len(r.json())}").json()
    assert rest and rest[0]["activationId"] != r.json()[-1]["activationId"]


# -- 11. bindings do not expose unpublished packages --------------------------------------


def test_a_binding_lists_nothing_once_its_package_is_unpublished(fresh_server):
    srv = fresh_server()
    ns = {}
    for name in ("alice2", "bob2", "carol2"):
        status, key, err = cli("create", name, "--data-dir", str(srv.data_dir))
        assert status == 0, err
        ns[name] = srv.client(key)
    alice, bob, carol = ns["alice2"], ns["bob2"], ns["carol2"]
    assert alice.put(f"{A}/packages/common", json={"publish": True}).ok
    assert alice.put(f"{A}/actions/common/secret", json=ECHO).ok
    binding = {"binding": {"namespace": "alice2", "name": "common"}}
    assert bob.put(f"{A}/packages/b", json=binding).ok
    assert [a["name"] for a in bob.get(f"{A}/actions/b/").json()] == ["secret"]
    # carol publishes a binding to alice's package, for bob to list through.
    assert carol.put(f"{A}/packages/c", json={**binding, "publish": True}).ok
    assert len(bob.get("/api/v1/namespaces/carol2/actions/c/").json()) == 1
    assert alice.put(f"{A}/packages/common?overwrite=true", json={"publish": False}).ok
    for path in (
        f"{A}/actions/b/",
        f"{A}/actions/b/?count=true",
        "/api/v1/namespaces/carol2/actions/c/",
        f"{A}/packages/b",
        f"{A}/actions/b/secret",
    ):
        r = bob.get(path)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"] == (
            "The supplied authentication is not authorized to access this resource."
        )
    assert bob.post(f"{A}/actions/b/secret?blocking=true").status_code == 403
    assert alice.get(f"{A}/actions/common/").status_code == 200  # the owner still can


def test_concurrent_invocations_per_namespace_are_limited(fresh_server):
    """OpenWhisk's concurrentInvocations: a namespace with 2 in flight gets 429 on a third,
    blocking or not, and is admitted again once one finishes."""
    srv = fresh_server(concurrent_invocations=2)
    c = srv.client()
    assert c.put(f"{A}/actions/slow", json=ECHO).ok
    slow = {"fake": "sleep", "seconds": 1.5}
    first = c.post(f"{A}/actions/slow?blocking=false", json=slow)
    second = c.post(f"{A}/actions/slow?blocking=false", json=slow)
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    third = c.post(f"{A}/actions/slow?blocking=true", json={})
    assert third.status_code == 429, third.text
    assert third.json()["error"].startswith(
        "Too many concurrent requests in flight (count: 2, allowed: 2)."
    )
    record = c.wait_activation(first.json()["activationId"], timeout=10)
    assert record["response"]["success"], record
    deadline = time.monotonic() + 10
    while srv.server.activator.in_flight["guest"] >= 2:
        assert time.monotonic() < deadline, "the finished activations were not released"
        time.sleep(0.05)
    again = c.post(f"{A}/actions/slow?blocking=true", json={})
    assert again.status_code == 200, again.text

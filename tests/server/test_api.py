"""The function server's OpenWhisk REST API over HTTP: auth, errors, actions, invokes,
activations, packages, sequences and web actions.

The server is real (tornado, SQLite, on 127.0.0.1); only the Invoker is the FakeInvoker,
because these tests pin the API layer's semantics, not containers.
"""

from __future__ import annotations

import contextlib
import io
import time

import pytest
from conftest import Client

from jupyter_faas.server.app import namespace_main

A = "/api/v1/namespaces/_"


def make_action(client: Client, name: str, **body) -> dict:
    body.setdefault("exec", {"kind": "blackbox", "image": "fake/echo"})
    r = client.put(f"{A}/actions/{name}?overwrite=true", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r, status: int, message: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code"}, body
    assert body["code"] == r.headers["X-Request-ID"]
    if message is not None:
        assert body["error"] == message
    return body


@pytest.fixture(scope="module")
def alice(server) -> Client:
    """A second namespace, created with the CLI entry point while the server runs."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert namespace_main(["create", "alice", "--data-dir", str(server.data_dir)]) == 0
    return server.client(out.getvalue().strip())


# -- info, auth, error shape ----------------------------------------------------------------


def test_info_routes_need_no_auth(server):
    anon = server.client(None)
    r = anon.get("/api/v1")
    assert r.status_code == 200
    assert r.json()["api_version_path"] == "v1"
    assert r.headers["X-Request-ID"]
    root = anon.get("/").json()
    assert root["api_paths"] == ["/api/v1"]
    assert root["limits"]["max_action_duration"] == 300000


def test_guest_key_file_and_format(server):
    uuid, key = server.guest_key().split(":")
    assert len(uuid) == 36 and len(key) == 64
    assert (server.data_dir / "auth.guest").stat().st_mode & 0o077 == 0


def test_missing_and_wrong_credentials_are_401(server):
    r = server.client(None).get("/api/v1/namespaces")
    assert_error(
        r, 401, "The resource requires authentication, which was not supplied with the request"
    )
    assert r.headers["WWW-Authenticate"] == 'Basic realm="OpenWhisk secure realm"'
    uuid = server.guest_key().split(":")[0]
    r = server.client(f"{uuid}:{'x' * 64}").get("/api/v1/namespaces")
    assert_error(r, 401, "The supplied authentication is invalid")
    r = server.client("not-a-uuid:nope").get(f"{A}/actions")
    assert_error(r, 401)


def test_namespaces_lists_own(guest, alice):
    assert guest.get("/api/v1/namespaces").json() == ["guest"]
    assert alice.get("/api/v1/namespaces").json() == ["alice"]


def test_other_namespace_is_403(alice):
    for path in ("actions", "actions/x", "triggers", "rules", "activations", "limits"):
        r = alice.get(f"/api/v1/namespaces/guest/{path}")
        assert_error(
            r, 403, "The supplied authentication is not authorized to access this resource."
        )
    r = alice.put(
        "/api/v1/namespaces/guest/actions/x", json={"exec": {"kind": "blackbox", "image": "i"}}
    )
    assert_error(r, 403)


def test_namespace_cli_refuses_duplicates(server, alice, capsys):
    assert namespace_main(["create", "alice", "--data-dir", str(server.data_dir)]) == 1
    assert "exists already" in capsys.readouterr().err


def test_unknown_route_and_method(guest):
    assert_error(guest.get("/api/v1/nothing/here"), 404, "The requested resource does not exist.")
    r = guest.request("PATCH", f"{A}/actions/x")
    assert r.status_code == 405
    assert set(r.json()) == {"error", "code"}


def test_cors_preflight(server):
    r = server.client(None).request("OPTIONS", f"{A}/actions/x")
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]


def test_limits_route(guest):
    limits = guest.get(f"{A}/limits").json()
    assert limits["maxActionMemory"] == 512 and limits["minActionTimeout"] == 100


# -- actions --------------------------------------------------------------------------------


def test_create_python_resolves_kind_and_annotations(guest):
    doc = make_action(
        guest, "py", exec={"kind": "python:default", "code": "def main(a):\n  return a"}
    )
    assert doc["exec"] == {
        "kind": "python:3.11",
        "code": "def main(a):\n  return a",
        "binary": False,
    }
    assert {"key": "exec", "value": "python:3.11"} in doc["annotations"]
    assert {"key": "provide-api-key", "value": False} in doc["annotations"]
    assert doc["version"] == "0.0.1" and doc["namespace"] == "guest"
    assert doc["limits"] == {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}
    for kind in ("python:3", "python:3.10", "python:3.11"):
        d = make_action(guest, "py", exec={"kind": kind, "code": "x"})
        assert d["exec"]["kind"] == "python:3.11"


def test_binary_is_decided_by_the_server(guest):
    doc = make_action(
        guest, "zip", exec={"kind": "blackbox", "image": "i", "code": "UEsDBAo=", "binary": False}
    )
    assert doc["exec"]["binary"] is True


def test_put_without_overwrite_conflicts(guest):
    make_action(guest, "dup")
    r = guest.put(f"{A}/actions/dup", json={"exec": {"kind": "blackbox", "image": "i"}})
    assert_error(r, 409, "resource already exists")


def test_update_bumps_version_and_merges(guest):
    make_action(
        guest,
        "upd",
        annotations=[{"key": "a", "value": 1}],
        parameters=[{"key": "p", "value": 1}],
        limits={"memory": 300},
    )
    r = guest.put(
        f"{A}/actions/upd?overwrite=true",
        json={"annotations": [{"key": "b", "value": 2}], "limits": {"timeout": 1000}},
    )
    doc = r.json()
    assert doc["version"] == "0.0.2"
    keys = {a["key"]: a["value"] for a in doc["annotations"]}
    assert keys["a"] == 1 and keys["b"] == 2 and keys["exec"] == "blackbox"
    assert doc["parameters"] == [{"key": "p", "value": 1}]
    assert doc["limits"]["memory"] == 300 and doc["limits"]["timeout"] == 1000
    doc = guest.put(
        f"{A}/actions/upd?overwrite=true", json={"delAnnotations": ["a"], "version": "1.0.0"}
    ).json()
    assert doc["version"] == "1.0.0"
    assert "a" not in {a["key"] for a in doc["annotations"]}


def test_get_with_and_without_code(guest):
    make_action(guest, "code", exec={"kind": "python:3.11", "code": "def main(a): return a"})
    assert guest.get(f"{A}/actions/code").json()["exec"]["code"]
    assert "code" not in guest.get(f"{A}/actions/code?code=false").json()["exec"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "exec undefined"),
        ({"exec": {"kind": "cobol:1"}}, None),
        ({"exec": {"kind": "blackbox"}}, None),
        ({"exec": {"kind": "python:3.11"}}, None),
        (
            {"exec": {"kind": "blackbox", "image": "i"}, "limits": {"memory": 1024}},
            "memory 1024 MB exceeds allowed threshold of 512 MB",
        ),
        (
            {"exec": {"kind": "blackbox", "image": "i"}, "limits": {"timeout": 10}},
            "duration 10 milliseconds below allowed threshold of 100 milliseconds",
        ),
        (
            {"exec": {"kind": "blackbox", "image": "i"}, "limits": {"logs": 11}},
            "log size 11 MB exceeds allowed threshold of 10 MB",
        ),
        (
            {"exec": {"kind": "blackbox", "image": "i"}, "limits": {"concurrency": 2}},
            "concurrency 2 exceeds allowed threshold of 1",
        ),
        ({"exec": {"kind": "blackbox", "image": "i"}, "limits": {"memory": "big"}}, None),
        ({"exec": {"kind": "blackbox", "image": "i"}, "parameters": {"a": 1}}, None),
        ({"exec": {"kind": "blackbox", "image": "i"}, "annotations": [{"value": 1}]}, None),
    ],
)
def test_bad_action_bodies_are_400(guest, body, message):
    r = guest.put(f"{A}/actions/bad?overwrite=true", json=body)
    err = assert_error(r, 400, message)
    if body.get("exec", {}).get("kind") == "cobol:1":
        assert err["error"].startswith(
            "The specified runtime 'cobol:1' is not supported by this platform. Valid values are: blackbox, python:default"
        )


@pytest.mark.parametrize("name", [" lead", "trail ", "a$b", "-x", "x" * 257])
def test_bad_names_are_400(guest, name):
    r = guest.put(f"{A}/actions/{name}", json={"exec": {"kind": "blackbox", "image": "i"}})
    assert r.status_code == 400
    assert "illegal characters" in r.json()["error"] or "longer than allowed" in r.json()["error"]


def test_name_with_allowed_punctuation(guest):
    doc = make_action(guest, "a b@c.d&e-f")
    assert doc["name"] == "a b@c.d&e-f"
    assert guest.get(f"{A}/actions/a b@c.d&e-f").status_code == 200


def test_invalid_json_is_400(guest):
    r = guest.put(f"{A}/actions/j", data="{not json", headers={"Content-Type": "application/json"})
    assert_error(r, 400)
    assert guest.put(f"{A}/actions/j", json=[1, 2]).status_code == 400


def test_oversized_code_is_413(guest, server):
    code = "x" * (48 * 1024 * 1024 + 1)
    r = guest.put(f"{A}/actions/huge", json={"exec": {"kind": "python:3.11", "code": code}})
    assert_error(r, 413, f"Request larger than allowed: {len(code)} > {48 * 1024 * 1024} bytes.")


def test_oversized_parameters_are_413(guest):
    r = guest.put(
        f"{A}/actions/bigp",
        json={
            "exec": {"kind": "blackbox", "image": "i"},
            "parameters": [{"key": "a", "value": "x" * (1024 * 1024)}],
        },
    )
    assert_error(r, 413)


def test_delete_returns_doc_then_404(guest):
    make_action(guest, "gone")
    r = guest.delete(f"{A}/actions/gone")
    assert r.status_code == 200 and r.json()["name"] == "gone"
    assert_error(guest.get(f"{A}/actions/gone"), 404, "The requested resource does not exist.")
    assert_error(guest.delete(f"{A}/actions/gone"), 404)


def test_name_shared_across_collections_is_409(guest):
    make_action(guest, "shared")
    r = guest.put(f"{A}/triggers/shared", json={})
    assert_error(r, 409, "Resource by this name exists but is not in this collection.")
    assert_error(guest.get(f"{A}/triggers/shared"), 409)


def test_list_semantics(alice):
    base = "/api/v1/namespaces/alice/actions"
    for i in range(3):
        r = alice.put(f"{base}/l{i}", json={"exec": {"kind": "python:3.11", "code": "c"}})
        assert r.status_code == 200
    items = alice.get(base).json()
    names = [i["name"] for i in items]
    assert names[:3] == ["l2", "l1", "l0"]
    item = items[0]
    assert set(item) == {
        "namespace",
        "name",
        "version",
        "publish",
        "annotations",
        "limits",
        "exec",
        "updated",
    }
    assert item["exec"] == {"binary": False}
    assert alice.get(f"{base}?limit=1&skip=1").json()[0]["name"] == "l1"
    assert len(alice.get(f"{base}?limit=0").json()) == len(items)
    assert alice.get(f"{base}?count=true").json() == {"actions": len(items)}
    assert_error(
        alice.get(f"{base}?limit=201"),
        400,
        "The value '201' is not in the range of 0 to 200 for actions.",
    )
    assert_error(alice.get(f"{base}?limit=x"), 400, "The value 'x' is not an integer for actions.")


# -- invoke ---------------------------------------------------------------------------------


def test_nonblocking_invoke_is_202_then_stored(guest):
    make_action(guest, "echo", parameters=[{"key": "d", "value": 1}])
    r = guest.post(f"{A}/actions/echo", json={"x": 1})
    assert r.status_code == 202
    aid = r.json()["activationId"]
    assert r.headers["x-openwhisk-activation-id"] == aid and len(aid) == 32
    record = guest.wait_activation(aid)
    assert record["response"] == {
        "result": {"d": 1, "x": 1},
        "size": 13,
        "status": "success",
        "success": True,
    }


def test_blocking_invoke_record(guest, server):
    make_action(guest, "echo2")
    r = guest.post(f"{A}/actions/echo2?blocking=true", json={"x": 2})
    assert r.status_code == 200
    rec = r.json()
    assert rec["activationId"] == r.headers["x-openwhisk-activation-id"]
    assert rec["namespace"] == "guest" and rec["name"] == "echo2" and rec["subject"] == "guest"
    assert rec["response"]["status"] == "success" and "statusCode" not in rec["response"]
    keys = {a["key"]: a["value"] for a in rec["annotations"]}
    assert keys["path"] == "guest/echo2" and keys["kind"] == "blackbox" and keys["timeout"] is False
    assert "initTime" in keys and "waitTime" in keys
    assert rec["logs"][0].endswith("stdout: ran /guest/echo2")
    assert guest.post(f"{A}/actions/echo2?blocking=true&result=true", json={"x": 3}).json() == {
        "x": 3
    }
    job = server.server.invoker.jobs[-1]
    assert job.action_name == "/guest/echo2" and job.api_key is None
    assert job.init_env["__OW_ACTION_NAME"] == "/guest/echo2"
    assert job.action_key.startswith("guest/echo2@")


def test_provide_api_key(guest, server):
    make_action(guest, "withkey", annotations=[{"key": "provide-api-key", "value": True}])
    guest.post(f"{A}/actions/withkey?blocking=true")
    job = server.server.invoker.jobs[-1]
    assert job.api_key == server.guest_key() == job.init_env["__OW_API_KEY"]


@pytest.mark.parametrize(("mode", "status"), [("error", 502), ("developer", 502)])
def test_failed_blocking_invoke_is_502_without_code(guest, mode, status):
    make_action(guest, "fails")
    r = guest.post(f"{A}/actions/fails?blocking=true", json={"fake": mode})
    assert r.status_code == status
    body = r.json()
    assert "code" not in body and body["response"]["success"] is False
    r = guest.post(f"{A}/actions/fails?blocking=true&result=true", json={"fake": mode})
    assert r.status_code == status and "error" in r.json()


def test_internal_failure_is_500_without_leaking(guest):
    make_action(guest, "raises")
    r = guest.post(f"{A}/actions/raises?blocking=true", json={"fake": "raise"})
    assert r.status_code == 500
    assert "secret" not in r.text
    assert r.json()["response"]["status"] == "whisk internal error"


def test_array_result_is_bare(guest):
    make_action(guest, "arr")
    r = guest.post(f"{A}/actions/arr?blocking=true", json={"fake": "array"})
    assert r.status_code == 200 and r.json() == [1, 2, 3]


def test_oversized_result_is_truncated_to_application_error(guest):
    make_action(guest, "bigres")
    r = guest.post(f"{A}/actions/bigres?blocking=true&result=true", json={"fake": "big"})
    assert r.status_code == 502
    assert r.json()["error"].startswith(
        "The action produced a response that exceeded the allowed length:"
    )


def test_blocking_wait_expires_to_202(guest):
    make_action(guest, "slow")
    r = guest.post(
        f"{A}/actions/slow?blocking=true&timeout=100", json={"fake": "sleep", "seconds": 0.5}
    )
    assert r.status_code == 202
    record = guest.wait_activation(r.json()["activationId"])
    assert record["response"]["result"] == {"slept": True}


@pytest.mark.parametrize("value", ["0", "60001", "abc"])
def test_bad_timeout_param(guest, value):
    make_action(guest, "echo3")
    r = guest.post(f"{A}/actions/echo3?blocking=true&timeout={value}")
    assert_error(r, 400, "Timeout must be number of milliseconds up to 60000.")


def test_invoke_payload_checks(guest):
    make_action(guest, "echo4")
    assert_error(guest.post(f"{A}/actions/echo4", json=[1]), 400)
    assert_error(
        guest.post(f"{A}/actions/echo4", data="nope", headers={"Content-Type": "application/json"}),
        400,
    )
    assert_error(guest.post(f"{A}/actions/echo4", json={"a": "x" * (1024 * 1024)}), 413)
    assert guest.post(f"{A}/actions/echo4", data="").status_code == 202
    assert_error(guest.post(f"{A}/actions/missing"), 404)


def test_final_parameters_cannot_be_overridden(guest):
    make_action(
        guest,
        "fin",
        parameters=[{"key": "p", "value": 1}],
        annotations=[{"key": "final", "value": True}],
    )
    r = guest.post(f"{A}/actions/fin", json={"p": 2})
    assert_error(
        r, 400, "Request defines parameters that are not allowed (e.g., reserved properties)."
    )


# -- activations ----------------------------------------------------------------------------


def test_activation_routes(alice):
    base = "/api/v1/namespaces/_"
    alice.put(f"{base}/actions/act", json={"exec": {"kind": "blackbox", "image": "i"}})
    ids = [
        alice.post(f"{base}/actions/act?blocking=true", json={"i": i}).json()["activationId"]
        for i in range(3)
    ]
    listed = alice.get(f"{base}/activations?name=act").json()
    assert [a["activationId"] for a in listed] == ids[::-1]
    assert listed[0]["statusCode"] == 0 and "response" not in listed[0]
    docs = alice.get(f"{base}/activations?name=act&docs=true&limit=1").json()
    assert docs[0]["response"]["result"] == {"i": 2}
    assert alice.get(f"{base}/activations?name=act&count=true").json() == {"activations": 3}
    assert alice.get(f"{base}/activations?name=act&skip=2").json()[0]["activationId"] == ids[0]
    since = listed[-1]["start"]
    assert len(alice.get(f"{base}/activations?name=act&since={since}").json()) == 3
    assert alice.get(f"{base}/activations?name=act&upto={since - 1}").json() == []
    result = alice.get(f"{base}/activations/{ids[1]}/result").json()
    assert result == {"result": {"i": 1}, "size": 7, "status": "success", "success": True}
    assert (
        alice.get(f"{base}/activations/{ids[1]}/logs").json()["logs"][0].endswith("ran /alice/act")
    )
    assert_error(
        alice.get(f"{base}/activations/abc"), 400, "Activation id length is 3 but must be 32."
    )
    assert_error(alice.get(f"{base}/activations/{'0' * 32}"), 404)


# -- packages -------------------------------------------------------------------------------


def test_packages_binding_and_sharing(guest, alice):
    assert_error(
        guest.put(f"{A}/packages/default", json={}), 400, "Package name 'default' is reserved."
    )
    r = guest.put(
        f"{A}/packages/utils?overwrite=true",
        json={"parameters": [{"key": "pp", "value": "pkg"}, {"key": "both", "value": "pkg"}]},
    )
    assert r.status_code == 200 and r.json()["binding"] == {}
    make_action(guest, "utils/echo", parameters=[{"key": "both", "value": "action"}])
    pkg = guest.get(f"{A}/packages/utils").json()
    assert [a["name"] for a in pkg["actions"]] == ["echo"] and pkg["feeds"] == []
    assert guest.get(f"{A}/actions/utils/").json()[0]["namespace"] == "guest/utils"
    res = guest.post(f"{A}/actions/utils/echo?blocking=true&result=true", json={"x": 1}).json()
    assert res == {"pp": "pkg", "both": "action", "x": 1}
    # not published: alice cannot see it or bind to it
    assert_error(alice.get("/api/v1/namespaces/guest/packages/utils"), 403)
    assert_error(alice.post("/api/v1/namespaces/guest/actions/utils/echo"), 403)
    assert_error(
        alice.put(f"{A}/packages/mine", json={"binding": {"namespace": "guest", "name": "utils"}}),
        403,
    )
    guest.put(f"{A}/packages/utils?overwrite=true", json={"publish": True})
    assert alice.get("/api/v1/namespaces/guest/packages/utils").status_code == 200
    assert [p["name"] for p in alice.get("/api/v1/namespaces/guest/packages").json()] == ["utils"]
    shared = alice.post("/api/v1/namespaces/guest/actions/utils/echo?blocking=true", json={}).json()
    assert shared["namespace"] == "alice"
    assert_error(
        alice.put(
            "/api/v1/namespaces/guest/actions/utils/x",
            json={"exec": {"kind": "blackbox", "image": "i"}},
        ),
        403,
    )
    r = alice.put(
        f"{A}/packages/mine?overwrite=true",
        json={
            "binding": {"namespace": "guest", "name": "utils"},
            "parameters": [{"key": "pp", "value": "binding"}],
        },
    )
    assert r.status_code == 200 and r.json()["binding"] == {"namespace": "guest", "name": "utils"}
    listed = alice.get(f"{A}/packages").json()
    assert any(
        p["name"] == "mine" and p["binding"] == {"namespace": "guest", "name": "utils"}
        for p in listed
    )
    rec = alice.post(f"{A}/actions/mine/echo?blocking=true", json={}).json()
    assert rec["response"]["result"]["pp"] == "binding"
    keys = {a["key"]: a["value"] for a in rec["annotations"]}
    assert keys["binding"] == "alice/mine" and keys["path"] == "guest/utils/echo"
    assert_error(
        alice.put(f"{A}/actions/mine/x", json={"exec": {"kind": "blackbox", "image": "i"}}), 400
    )
    assert_error(
        alice.put(f"{A}/packages/twice", json={"binding": {"namespace": "alice", "name": "mine"}}),
        400,
        "Cannot bind to another package binding.",
    )
    assert_error(
        guest.delete(f"{A}/packages/utils"),
        409,
        "Package not empty (contains 1 entity). Set force param or delete package contents.",
    )
    assert guest.delete(f"{A}/packages/utils?force=true").status_code == 200
    assert_error(guest.get(f"{A}/actions/utils/echo"), 404)


def test_action_in_missing_package_is_404(guest):
    assert_error(
        guest.put(f"{A}/actions/nopkg/a", json={"exec": {"kind": "blackbox", "image": "i"}}), 404
    )


# -- sequences ------------------------------------------------------------------------------


def test_sequence_runs_components_in_order(guest):
    make_action(guest, "inc", exec={"kind": "blackbox", "image": "fake/inc"})
    make_action(guest, "fail")
    seq = make_action(
        guest, "seq", exec={"kind": "sequence", "components": ["/_/inc", "inc", "/guest/inc"]}
    )
    assert seq["exec"] == {
        "kind": "sequence",
        "components": ["/guest/inc", "/guest/inc", "/guest/inc"],
    }
    rec = guest.post(f"{A}/actions/seq?blocking=true", json={"n": 1}).json()
    assert rec["response"]["result"] == {"n": 4}
    assert len(rec["logs"]) == 3
    child = guest.get(f"{A}/activations/{rec['logs'][0]}").json()
    assert child["cause"] == rec["activationId"] and child["response"]["result"] == {"n": 2}
    assert {"key": "topmost", "value": True} in rec["annotations"]
    make_action(
        guest, "seq2", exec={"kind": "sequence", "components": ["/guest/fail", "/guest/inc"]}
    )
    r = guest.post(f"{A}/actions/seq2?blocking=true", json={"fake": "error"})
    assert r.status_code == 502 and len(r.json()["logs"]) == 1


def test_sequence_validation(guest):
    r = guest.put(
        f"{A}/actions/s3", json={"exec": {"kind": "sequence", "components": ["/guest/nothere"]}}
    )
    assert_error(r, 400, "Sequence component does not exist.")
    r = guest.put(
        f"{A}/actions/s3", json={"exec": {"kind": "sequence", "components": ["/guest/s3"]}}
    )
    assert_error(r, 400, "Sequence may not refer to itself.")


# -- web actions ----------------------------------------------------------------------------


def test_web_actions(server, guest):
    anon = server.client(None)
    make_action(guest, "hidden")
    assert_error(anon.get("/api/v1/web/guest/default/hidden.json"), 404)
    make_action(guest, "page", annotations=[{"key": "web-export", "value": True}])
    r = anon.get("/api/v1/web/guest/default/page.json?q=1")
    assert r.status_code == 200
    body = r.json()
    assert body["q"] == "1" and body["__ow_method"] == "get" and body["__ow_path"] == ""
    r = anon.post("/api/v1/web/guest/default/page.json/__ow_headers", json={"a": 1})
    assert r.status_code == 200 and r.json()["content-type"] == "application/json"
    assert_error(anon.post("/api/v1/web/guest/default/page.json/__ow_method"), 400)
    r = anon.post(
        "/api/v1/web/guest/default/page.http",
        json={"statusCode": 201, "body": "hi", "headers": {"Content-Type": "text/plain"}},
    )
    assert r.status_code == 201 and r.text == "hi" and r.headers["Content-Type"] == "text/plain"
    make_action(
        guest,
        "locked",
        annotations=[
            {"key": "web-export", "value": True},
            {"key": "require-whisk-auth", "value": "s3cret"},
        ],
    )
    assert anon.get("/api/v1/web/guest/default/locked.json").status_code == 401
    r = anon.get(
        "/api/v1/web/guest/default/locked.json", headers={"X-Require-Whisk-Auth": "s3cret"}
    )
    assert r.status_code == 200


def test_activation_ids_are_unique_and_fast_to_list(guest):
    make_action(guest, "many")
    ids = {guest.post(f"{A}/actions/many").json()["activationId"] for _ in range(10)}
    assert len(ids) == 10
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if guest.get(f"{A}/activations?name=many&count=true").json()["activations"] == 10:
            break
        time.sleep(0.05)
    assert guest.get(f"{A}/activations?name=many&count=true").json() == {"activations": 10}


def test_unexpected_errors_are_generic_500s(server, guest, monkeypatch, caplog):
    # Real failures (a corrupt database, a bug) cannot be produced on demand: make one.
    async def broken(*args):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.server.activator, "entity", broken)
    r = guest.get(f"{A}/triggers/any")
    assert_error(r, 500, "Internal server error")
    assert "secret" not in r.text
    assert any("secret internal detail" in str(rec.exc_info) for rec in caplog.records)


def test_native_and_python_actions_run_on_the_runtime_image(guest, server):
    make_action(
        guest,
        "native",
        exec={
            "kind": "blackbox",
            "image": "openwhisk/dockerskeleton",
            "code": "#!/bin/sh\necho '{}'",
        },
    )
    guest.post(f"{A}/actions/native?blocking=true")
    job = server.server.invoker.jobs[-1]
    assert job.exec["image"] == server.server.python_image and job.exec["kind"] == "blackbox"
    assert guest.get(f"{A}/actions/native").json()["exec"]["image"] == "openwhisk/dockerskeleton"

"""``GET /metrics`` of a real server with the DockerInvoker: Prometheus' text format, counts
that follow the invocations made, histograms, per-namespace visibility and its auth."""

from __future__ import annotations

import contextlib
import io

import pytest
from conftest import Client
from prometheus_client.parser import text_string_to_metric_families

from jupyter_faas.server.app import namespace_main

A = "/api/v1/namespaces/_"
TOKEN = "operator-token-for-the-metrics-test"
CODE = (
    "def main(args):\n"
    "    if args.get('fail'):\n"
    "        return {'error': 'asked to fail'}\n"
    "    return {'n': args.get('n', 0)}\n"
)


@pytest.fixture(scope="module")
def server(start_real_server):
    return start_real_server(f"--FunctionServer.metrics_token={TOKEN}")


@pytest.fixture(scope="module")
def guest(server) -> Client:
    return server.client()


@pytest.fixture(scope="module")
def alice(server) -> Client:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert namespace_main(["create", "alice", "--data-dir", str(server.data_dir)]) == 0
    return Client(server.base, out.getvalue().strip())


def operator(server) -> Client:
    client = Client(server.base, None)
    client.session.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


def scrape(client: Client) -> dict:
    """``{(sample name, frozen labels): value}`` of one read of /metrics."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def make_action(client: Client, name: str) -> None:
    r = client.put(
        f"{A}/actions/{name}?overwrite=true", json={"exec": {"kind": "python:3.11", "code": CODE}}
    )
    assert r.status_code == 200, r.text


def test_counts_rise_by_the_invocations_made(server, guest):
    make_action(guest, "counted")
    labels = {"namespace": "guest", "action": "guest/counted"}
    before = scrape(guest)
    for n in range(5):
        r = guest.post(f"{A}/actions/counted?blocking=true&result=true", json={"n": n})
        assert r.status_code == 200 and r.json() == {"n": n}, r.text
    r = guest.post(f"{A}/actions/counted?blocking=true&result=true", json={"fail": True})
    assert r.status_code == 502, r.text
    after = scrape(guest)

    def rise(name: str, **extra) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert rise("faas_invocations_total", status="success") == 5
    assert rise("faas_invocations_total", status="application_error") == 1
    assert rise("faas_invocation_errors_total", status="application_error") == 1
    assert rise("faas_invocation_errors_total", status="success") == 0
    assert rise("faas_invocation_duration_seconds_count") == 6
    assert rise("faas_invocation_wait_seconds_count") == 6
    # The first invoke of a new action needs an /init (a prewarmed or a new container).
    assert value(after, "faas_cold_starts_total", **labels) >= 1
    assert value(after, "faas_invocations_in_flight", namespace="guest") == 0
    # The warm container that served them waits, idle, for the next invoke.
    assert value(after, "faas_pool_sandboxes", namespace="guest", state="idle") >= 1


def test_histogram_buckets_are_cumulative_and_match_the_count(server, guest):
    make_action(guest, "histogram")
    for _ in range(3):
        assert guest.post(f"{A}/actions/histogram?blocking=true", json={}).status_code == 200
    samples = scrape(guest)
    for name in ("faas_invocation_duration_seconds", "faas_invocation_wait_seconds"):
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (sample, labels), v in samples.items()
            if sample == f"{name}_bucket" and ("action", "guest/histogram") in labels
        )
        counts = [v for _, v in buckets]
        assert buckets[-1][0] == float("inf")
        assert counts == sorted(counts), f"{name} buckets are not cumulative: {buckets}"
        total = value(samples, f"{name}_count", namespace="guest", action="guest/histogram")
        assert counts[-1] == total == 3


def test_a_namespace_sees_only_its_own_series(server, guest, alice):
    make_action(guest, "mine")
    assert guest.post(f"{A}/actions/mine?blocking=true", json={}).status_code == 200
    make_action(alice, "hers")
    assert alice.post(f"{A}/actions/hers?blocking=true", json={}).status_code == 200

    def namespaces(samples: dict) -> set:
        return {dict(labels).get("namespace") for _, labels in samples}

    assert namespaces(scrape(guest)) == {"guest"}
    assert namespaces(scrape(alice)) == {"alice"}
    everything = scrape(operator(server))
    assert {"guest", "alice"} <= namespaces(everything)
    assert (
        value(
            everything,
            "faas_invocations_total",
            namespace="alice",
            action="alice/hers",
            status="success",
        )
        == 1
    )
    for namespace in ("guest", "alice"):
        assert value(everything, "faas_pool_sandboxes", namespace=namespace, state="idle") >= 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Bearer "}],
    ids=["none", "wrong-token", "empty-token"],
)
def test_without_a_key_or_the_token_is_401(server, headers):
    client = Client(server.base, None)
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 401, r.text
    assert "needs a namespace key" in r.json()["error"]
    assert "metrics_token" in r.json()["error"]
    assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_a_wrong_namespace_key_is_401(server, guest):
    uuid_, _ = guest.api_key.split(":", 1)
    r = Client(server.base, f"{uuid_}:{'x' * 64}").get("/metrics")
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "The supplied authentication is invalid"

"""Sharing functions between two hub users, on a real hub (DockerSpawner, the faas service,
the function server): Alice publishes from her container's kernel; Bob, in his, lists,
invokes, binds and pulls it, cannot change or unpublish it, and is told clearly once
Alice unpublishes it. Every call of the kernels goes through the service's relay with
the user's own namespace key.
"""

from __future__ import annotations

import pytest
from hubtools import namespace_key, run_error, run_ok
from support import loopback

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

CODE = (
    "def main(args):\n"
    "    values = [1, 5, 2, 7, 3]\n"
    "    return {'peaks': [v for v in values if v > args['threshold']]}"
)


def test_publish_list_invoke_bind_pull_and_unpublish(hub, pair):
    alice, bob = pair["alice"]["kernel"], pair["bob"]["kernel"]
    owner = pair["alice"]["name"]  # her namespace is her user name
    ref = f"{owner}/shared/peaks"
    run_ok(alice, f"%%faas peaks --test '{{\"threshold\": 2}}'\n{CODE}")
    assert "Deployed peaks" in run_ok(alice, "%faas deploy peaks")
    text = run_ok(alice, "%faas publish peaks --description 'Peaks above a threshold'")
    assert f"published as {ref}" in text, text

    # Bob finds it with its owner, description and input, and runs it as his own run.
    listed = run_ok(bob, "%faas shared")
    assert ref in listed and "Peaks above a threshold" in listed and "threshold" in listed
    assert "[5, 7]" in run_ok(bob, f"%faas invoke {ref} '{{\"threshold\": 4}}'")
    runs = run_ok(bob, "%faas activations peaks")
    assert pair["bob"]["name"] in runs and "success" in runs, runs  # started by Bob
    # A binding of his own to Alice's package.
    assert "alices" in run_ok(bob, f"%faas bind {owner}/shared --as alices")
    assert "[7]" in run_ok(bob, "%faas invoke alices/peaks '{\"threshold\": 6}'")
    # A copy to derive from: the cell's text and a bundle in his own home.
    cell = run_ok(bob, f"_cell = %faas pull {ref} --as my-peaks\nprint(_cell)")
    assert "%%faas my-peaks --test" in cell and "def main(args):" in cell, cell
    assert "threshold" in run_ok(bob, "print(open('functions/my-peaks/handler.py').read())")

    # He can neither unpublish nor change it.
    error = run_error(bob, f"%faas unpublish {ref}")
    assert f"only {owner} can unpublish it" in error, error
    user, key = namespace_key(hub, pair["bob"])
    url = f"{hub.server_url}/api/v1/namespaces/{owner}/actions/shared/peaks"
    for method in ("PUT", "DELETE"):
        resp = loopback().request(
            method,
            url,
            auth=(user, key),
            json={"exec": {"kind": "blackbox", "image": "x"}},
            timeout=30,
        )
        assert resp.status_code == 403, resp.text

    # Alice unpublishes while Bob uses it: a clear message; his copy stays.
    assert "no longer published" in run_ok(alice, "%faas unpublish peaks")
    error = run_error(bob, f"%faas invoke {ref} '{{\"threshold\": 4}}'")
    assert "is not shared with you" in error and f"Ask {owner} to publish it" in error, error
    error = run_error(bob, "%faas invoke alices/peaks '{\"threshold\": 4}'")
    assert "binding to a package that is not shared" in error, error
    assert ref not in run_ok(bob, "%faas shared")
    assert "threshold" in run_ok(bob, "print(open('functions/my-peaks/handler.py').read())")
    # Her own function still runs.
    assert "[7]" in run_ok(alice, "%faas invoke peaks '{\"threshold\": 6}'")

"""Who the sidebar's server extension acts as, on a real Jupyter server.

Outside JupyterHub every request acts with the server's own workspace and says so
(``acting_as`` null). A guest of a shared hub server gets a workspace of their own from
the hub's faas service; where that service is not configured or does not answer, the
guest is told why and what to do, and nothing falls back to the owner's credentials.
The whole guest path on a real hub is tests/hub/test_hub_guest_deploy.py.
"""

from __future__ import annotations

import json

import pytest

from jupyter_faas.extension.guests import GuestError, GuestRefused, GuestWorkspaces


async def test_outside_jupyterhub_requests_act_as_the_server(jp_fetch, faas_app):
    assert faas_app.owner is None
    for route in ("functions", "status"):
        response = await jp_fetch("faas", "api", route, method="GET")
        assert json.loads(response.body)["acting_as"] is None


def test_a_guest_without_a_faas_service_is_told_what_to_do(faas_app, monkeypatch):
    monkeypatch.setattr(faas_app, "owner", "alice")
    monkeypatch.delenv("FAAS_HUB_SERVICE_URL", raising=False)
    guests = GuestWorkspaces(faas_app, 300)
    with pytest.raises(GuestError) as caught:
        guests.actor("bob", "a-token-of-bobs")
    err = caught.value
    assert err.status == 503 and err.reason == "guest-unavailable"
    assert "You (bob) are a guest on alice's server" in str(err)
    assert "FAAS_HUB_SERVICE_URL" in str(err) and "/user/bob/" in str(err)
    assert "guests_act_as_themselves = False" in str(err)


def test_a_guest_whose_service_does_not_answer_is_told_so(faas_app, monkeypatch, closed_port):
    monkeypatch.setattr(faas_app, "owner", "alice")
    monkeypatch.setenv("FAAS_HUB_SERVICE_URL", f"http://127.0.0.1:{closed_port}/services/faas/")
    guests = GuestWorkspaces(faas_app, 300)
    with pytest.raises(GuestError) as caught:
        guests.actor("bob", "a-token-of-bobs")
    err = caught.value
    assert not isinstance(err, GuestRefused) and err.status == 503
    assert "cannot act in your (bob's) namespace on alice's server" in str(err)
    assert "is not reachable" in str(err) and "/user/bob/" in str(err)


def test_a_request_without_a_token_is_refused(faas_app, monkeypatch):
    monkeypatch.setattr(faas_app, "owner", "alice")
    with pytest.raises(GuestRefused) as caught:
        GuestWorkspaces(faas_app, 300).actor("bob", None)
    assert caught.value.status == 403 and "Open alice's server from the hub" in str(caught.value)

"""Logging in to the hub in a real browser (Debian's Chromium through Playwright).

Alice and Bob log in on the hub's login page with the demo's shared password, their
servers spawn and JupyterLab opens with the Functions sidebar; Alice's page is the
screenshot docs/images/hub-lab.png. Then Alice shares her server with Bob, and Bob's
browser opens it (authorizing it on the hub's page first): the token JupyterLab holds
there is Bob's, and the faas service names Bob's namespace for it.

Playwright's sync API runs in a thread of its own: in the main pytest process
(scripts/test.sh) another suite's event loop may be set on the main thread.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "hub-lab.png"
SIDEBAR_TAB = '.jp-SideBar .lm-TabBar-tab[data-id="jupyter-faas:sidebar"]'
PAGE_TIMEOUT_MS = 120_000
#: A login waits for the spawn (as conftest.SPAWN_TIMEOUT).
SPAWN_TIMEOUT_MS = 300_000

#: The faas service asked from the page with the token JupyterLab holds (PageConfig).
WHO_AM_I_JS = """async () => {
  const config = JSON.parse(document.getElementById('jupyter-config-data').textContent);
  const resp = await fetch('/services/faas/api/namespace',
    {headers: {Authorization: 'token ' + config.token}});
  return {status: resp.status, body: await resp.json()};
}"""


def log_in(browser, hub, name: str, password: str):
    """A browser context of its own for ``name``: log in, wait for JupyterLab, open the
    Functions sidebar. Returns the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login", timeout=PAGE_TIMEOUT_MS)
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab**", timeout=SPAWN_TIMEOUT_MS)
    page.locator(SIDEBAR_TAB).click(timeout=PAGE_TIMEOUT_MS)
    page.get_by_test_id("faas-deploy-cell").wait_for(timeout=PAGE_TIMEOUT_MS)
    return page


def browse(hub, names: dict[str, str], password: str) -> dict:
    from playwright.sync_api import sync_playwright

    seen = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = {short: log_in(browser, hub, name, password) for short, name in names.items()}
            alice = pages["alice"]
            alice.wait_for_timeout(500)  # let the sidebar's first list settle for the picture
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            alice.screenshot(path=str(SCREENSHOT))
            for short, page in pages.items():
                seen[short] = page.evaluate(WHO_AM_I_JS)
            share = hub.api(
                "POST",
                f"shares/{names['alice']}/",
                _inheriting_token(hub, names["alice"]),
                json={"user": names["bob"]},
            )
            assert share.status_code == 200, share.text
            # Bob's browser on Alice's server: the hub asks Bob to authorize it (not his
            # own server), then its OAuth gives the page a token of Bob's.
            guest = pages["bob"].context.new_page()
            guest.goto(f"{hub.url}/user/{names['alice']}/lab", timeout=PAGE_TIMEOUT_MS)
            guest.get_by_role("button", name="Authorize").click(timeout=PAGE_TIMEOUT_MS)
            guest.wait_for_url(f"**/user/{names['alice']}/lab**", timeout=PAGE_TIMEOUT_MS)
            guest.locator(SIDEBAR_TAB).wait_for(timeout=PAGE_TIMEOUT_MS)
            seen["bob-at-alice"] = guest.evaluate(WHO_AM_I_JS)
        finally:
            browser.close()
    return seen


def _inheriting_token(hub, name: str) -> str:
    resp = hub.api("POST", f"users/{name}/tokens", json={"scopes": ["inherit"], "expires_in": 3600})
    assert resp.status_code == 201, resp.text
    return resp.json()["token"]


def test_users_log_in_in_a_browser_and_get_lab_with_the_functions_sidebar(hub):
    rid = uuid.uuid4().hex[:6]
    names = {"alice": f"alice{rid}b", "bob": f"bob{rid}b"}
    password = (hub.state / "password").read_text().strip()
    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(browse, hub, names, password).result()
    for short in ("alice", "bob"):
        assert seen[short]["status"] == 200, json.dumps(seen[short])
        assert seen[short]["body"]["namespace"] == names[short]
    # In Alice's shared server the page acts as Bob: the sidebar could deploy as the guest.
    assert seen["bob-at-alice"]["status"] == 200, json.dumps(seen["bob-at-alice"])
    assert seen["bob-at-alice"]["body"]["namespace"] == names["bob"]
    assert SCREENSHOT.stat().st_size > 10_000

"""What the browser tests do in JupyterLab as a person would: notebooks, the palette, deploys.

Imported as ``lab`` by the test modules beside it (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support import loopback

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

#: Upper bounds for the slow steps: a first image build, a cold start, page loads.
DEPLOY_TIMEOUT_S = 600
INVOKE_TIMEOUT_MS = 120_000
PAGE_TIMEOUT_MS = 60_000

#: The visible notebook's cells.
CELLS = ".jp-NotebookPanel:visible .jp-Cell"


def write_notebook(path: Path, cells: int = 1) -> None:
    """A notebook of empty code cells with the Python kernel, so no kernel picker appears."""
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"c{i + 1}",
                "metadata": {},
                "outputs": [],
                "source": [],
            }
            for i in range(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))


def by_id(page, test_id: str):
    return page.get_by_test_id(test_id)


def open_notebook(page, lab, name: str) -> None:
    """Open ``name`` in a workspace of its own and wait until its kernel is idle.

    Its own workspace: the tabs an earlier test left open are not restored around it (the
    browser's profile is shared by the tests), while a reload still restores its layout.
    """
    workspace = Path(name).stem
    page.goto(
        f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?token={lab.token}",
        timeout=PAGE_TIMEOUT_MS,
    )
    page.locator(f"{CELLS} .cm-content").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.locator(
        ".jp-NotebookPanel:visible .jp-NotebookPanel-toolbar "
        ".jp-Notebook-ExecutionIndicator[data-status='idle']"
    ).wait_for(timeout=PAGE_TIMEOUT_MS)


def type_into_cell(page, index: int, text: str) -> None:
    """Click into cell ``index`` of the visible notebook and type ``text`` at its end.

    insert_text: no auto-indent or bracket closing on the way.
    """
    page.locator(f"{CELLS} .cm-content").nth(index).click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text(text)


def replace_cell(page, index: int, text: str) -> None:
    """Replace the whole source of cell ``index`` with ``text``."""
    page.locator(f"{CELLS} .cm-content").nth(index).click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def open_palette(page):
    """Open the command palette with its shortcut; returns its search box.

    Just after an edit JupyterLab (4.6, with or without this extension) may re-activate the
    notebook a moment after the palette opened, which closes it again: so the palette must
    still be open a second later, else the shortcut is pressed again (three tries).
    """
    search = page.locator(".lm-CommandPalette-input")
    for _ in range(3):
        page.keyboard.press("Control+Shift+C")
        page.wait_for_timeout(1_000)
        if search.is_visible():
            return search
    pytest.fail("Control+Shift+C did not open the command palette (three tries).")


def run_palette_command(page, label: str, also_listed: tuple[str, ...] = ()) -> None:
    """Run a command by its label from the command palette (and check others are listed)."""
    search = open_palette(page)
    search.fill("Functions")
    items = page.locator(".lm-CommandPalette-item .lm-CommandPalette-itemLabel")
    for other in (label, *also_listed):
        items.filter(has_text=other).first.wait_for()
    search.fill(label)
    page.locator(".lm-CommandPalette-item").filter(has_text=label).first.click()


def open_sidebar(page) -> None:
    run_palette_command(page, "Open Functions panel", also_listed=("Deploy cell as function",))
    by_id(page, "faas-deploy-cell").wait_for()


def widen_left_panel(page, by: int = 120) -> None:
    """Drag the handle between the left panel and the main area, so screenshots read well."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    assert box, "the left panel's resize handle is not visible"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + by, y, steps=5)
    page.mouse.up()


#: Records every (step, status, moving) the progress view shows, on each change of the page,
#: so a fast deploy's short states are seen too. Moving: an animation runs on the step's bar,
#: or it is partly filled.
_WATCH_STEPS_JS = """() => {
  window.__faasSteps = new Set();
  const record = () => {
    for (const row of document.querySelectorAll('[data-testid=faas-deploy-progress] [data-step]')) {
      const bar = row.querySelector('[role=progressbar]');
      const now = Number(bar.getAttribute('aria-valuenow') || 0);
      const moving = bar.firstElementChild.getAnimations().length > 0 || (now > 0 && now < 100);
      window.__faasSteps.add(JSON.stringify([row.dataset.step, row.dataset.status, moving]));
    }
  };
  window.__faasWatch?.disconnect();
  window.__faasWatch = new MutationObserver(record);
  window.__faasWatch.observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def deploy_active_cell(page, name: str | None = None) -> set[tuple[str, str, bool]]:
    """Press "Deploy active cell" (answering the name dialog when given), follow it to its
    end; returns every (step, status, moving) the progress view showed."""
    old = by_id(page, "faas-deploy-progress")
    before = old.get_attribute("data-status") if old.count() else None
    page.evaluate(_WATCH_STEPS_JS)
    by_id(page, "faas-deploy-cell").click()
    if name is not None:
        dialog = page.locator(".jp-Dialog")
        dialog.locator("input").fill(name)
        dialog.locator("button.jp-mod-accept").click()
    progress = by_id(page, "faas-deploy-progress")
    if before is not None:
        # The previous deploy's view stays until this one begins.
        page.locator("[data-testid='faas-deploy-progress'][data-status='running']").wait_for(
            timeout=PAGE_TIMEOUT_MS
        )
    progress.wait_for(timeout=PAGE_TIMEOUT_MS)
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while progress.get_attribute("data-status") == "running":
        if time.monotonic() > deadline:
            pytest.fail(f"the deploy did not finish within {DEPLOY_TIMEOUT_S} s")
        time.sleep(0.2)
    seen = page.evaluate("() => [...window.__faasSteps].map(JSON.parse)")
    return {tuple(row) for row in seen}


def step_statuses(page) -> dict[str, str]:
    progress = by_id(page, "faas-deploy-progress")
    return {
        s.get_attribute("data-step"): s.get_attribute("data-status")
        for s in progress.locator("[data-step]").all()
    }


def saved_cell_metadata(
    path: Path, index: int, until=lambda value: True, key: str = "faas", timeout: float = 30
) -> dict:
    """Cell ``index``'s ``metadata[key]`` once the notebook on disk has one that ``until`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cell = json.loads(path.read_text())["cells"][index]
        except ValueError:
            # Caught while Jupyter rewrites the file: read it again.
            time.sleep(0.2)
            continue
        value = cell.get("metadata", {}).get(key)
        if value is not None and until(value):
            return value
        time.sleep(0.2)
    pytest.fail(
        f"{path}: cell {index} has no such metadata.{key} after {timeout} s:\n{path.read_text()}"
    )


def deployed(value: dict) -> bool:
    """``until`` for saved_cell_metadata: the cell's metadata holds a deploy's provenance."""
    return "version" in value


def open_function_page(page, name: str):
    """Open ``name``'s page from the sidebar; returns the page's root element."""
    by_id(page, f"faas-open-{name}").click()
    root = page.locator(f"#jp-main-dock-panel [data-testid='faas-page-{name}']")
    root.wait_for(timeout=PAGE_TIMEOUT_MS)
    return root


def invoke_from_server(server, name: str, params: dict) -> dict:
    """A blocking invoke of ``name`` straight through the function server's REST API (another client)."""
    user, key = server.auth.split(":", 1)
    answer = loopback().post(
        f"{server.url}/api/v1/namespaces/_/actions/{name}",
        params={"blocking": "true"},
        json=params,
        auth=(user, key),
        timeout=120,
    )
    answer.raise_for_status()
    return answer.json()


def action_status(server, name: str) -> int:
    """HTTP status of GET action ``name`` on the function server (404: gone)."""
    user, key = server.auth.split(":", 1)
    return (
        loopback()
        .get(f"{server.url}/api/v1/namespaces/_/actions/{name}", auth=(user, key), timeout=30)
        .status_code
    )


def make_web_action(server, name: str) -> None:
    """Mark action ``name`` as a web action, as `wsk action update NAME --web true` does."""
    user, key = server.auth.split(":", 1)
    url = f"{server.url}/api/v1/namespaces/_/actions/{name}"
    session = loopback()
    action = session.get(url, auth=(user, key), timeout=30).json()
    annotations = [a for a in action.get("annotations", []) if a["key"] != "web-export"]
    body = {
        "exec": action["exec"],
        "limits": action.get("limits", {}),
        "parameters": action.get("parameters", []),
        "annotations": [*annotations, {"key": "web-export", "value": True}],
    }
    answer = session.put(url, params={"overwrite": "true"}, json=body, auth=(user, key), timeout=30)
    answer.raise_for_status()


def wait_for_saved_layout(lab, notebook: str, widget_key: str, timeout: float = 30) -> None:
    """Wait until the notebook's workspace on the server holds ``widget_key`` (e.g. an open
    page), so a reload restores it (JupyterLab saves the layout a moment after a change)."""
    url = f"{lab.url}/lab/api/workspaces/{Path(notebook).stem}"
    session = loopback()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = session.get(url, params={"token": lab.token}, timeout=10)
        if answer.ok and widget_key in answer.json().get("data", {}):
            return
        time.sleep(0.2)
    pytest.fail(f"the workspace of {notebook} did not save {widget_key!r} in {timeout} s")

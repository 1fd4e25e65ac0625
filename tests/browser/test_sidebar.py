"""The Functions sidebar end to end: Chromium, JupyterLab, the function server, Docker, registry.

One scenario, as a person would do it: open a notebook, type a cell defining ``main``,
deploy it from the sidebar (watching the steps move), invoke it from its page, save,
reload and find the provenance mark, then edit the cell and see "changed since deploy",
and the same in the dark theme. Screenshots go to docs/images/ (the README shows them).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from lab import (
    CELLS,
    DOCS_IMAGES,
    INVOKE_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    by_id,
    deploy_active_cell,
    deployed,
    open_function_page,
    open_notebook,
    open_palette,
    open_sidebar,
    run_palette_command,
    saved_cell_metadata,
    step_statuses,
    type_into_cell,
    wait_for_saved_layout,
    widen_left_panel,
    write_notebook,
)

pytestmark = pytest.mark.docker

NOTEBOOK = "sidebar-demo.ipynb"
NAME = "greet"
CELL = """GREETING = "hello"


def main(args):
    who = args.get("who", "world")
    print(f"greeting {who}")
    return {"greeting": f"{GREETING} {who}"}
"""


def luminance(page, selector: str) -> float:
    """Relative luminance (0 black, 1 white) of an element's computed background."""
    rgb = page.locator(selector).first.evaluate(
        "el => getComputedStyle(el).backgroundColor.match(/[\\d.]+/g).slice(0, 3).map(Number)"
    )
    return sum(w * c / 255 for w, c in zip((0.2126, 0.7152, 0.0722), rgb, strict=True))


def test_deploy_invoke_and_provenance_from_the_sidebar(page, jupyterlab, function_server):
    path = jupyterlab.root / NOTEBOOK
    write_notebook(path)
    open_notebook(page, jupyterlab, NOTEBOOK)
    type_into_cell(page, 0, CELL)
    open_sidebar(page)
    widen_left_panel(page)
    assert by_id(page, "faas-deploy-cell").get_attribute("aria-label")

    # A plain cell: the sidebar asks for the function's name.
    seen = deploy_active_cell(page, NAME)
    steps = step_statuses(page)
    assert by_id(page, "faas-deploy-progress").get_attribute("data-status") == "done", steps
    assert steps["capture"] == steps["build"] == steps["test"] == steps["deploy"] == "done", steps
    assert steps["push"] in ("done", "skipped"), steps
    # Progress arrived while the jobs ran, not only at the end.
    assert {s for s, state, _ in seen if state == "running"} - {"capture"}, seen
    assert f"Deployed {NAME}" in by_id(page, "faas-deploy-result").inner_text()

    page.locator(f"[data-testid='faas-function-{NAME}'][data-state='deployed']").wait_for()
    page.locator(f"{CELLS}[data-faas-state='deployed']").wait_for()
    assert by_id(page, "faas-active-cell").get_attribute("data-state") == "deployed"
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "sidebar-deploy.png"))

    # Provenance: saved with the deploy, with the hash of the deployed source.
    provenance = saved_cell_metadata(path, 0, deployed)
    assert provenance["name"] == NAME
    assert provenance["server"] == function_server.url
    assert provenance["image"]
    assert provenance["digest"] == "" or provenance["digest"].startswith("sha256:")
    assert provenance["version"] and provenance["time"] > 0
    assert provenance["cell_sha256"] == hashlib.sha256(CELL.encode()).hexdigest()

    # Invoke from the function's page, next to the sidebar.
    open_function_page(page, NAME)
    by_id(page, "faas-invoke-input").fill('{"who": "sidebar"}')
    by_id(page, "faas-invoke").click()
    result = by_id(page, "faas-invoke-result")
    result.wait_for(timeout=INVOKE_TIMEOUT_MS)
    assert result.get_attribute("data-status") == "success", result.inner_text()
    assert json.loads(by_id(page, "faas-invoke-result-result").inner_text()) == {
        "greeting": "hello sidebar"
    }
    assert "greeting sidebar" in by_id(page, "faas-invoke-result-logs").inner_text()
    page.locator(f"[data-testid='faas-last-{NAME}']", has_text="success").wait_for(
        timeout=PAGE_TIMEOUT_MS
    )
    page.screenshot(path=str(DOCS_IMAGES / "sidebar-invoke.png"))

    # After a reload the layout (sidebar and page included) comes back, the cell still marked.
    # The layout restorer keeps the page as "<its tracker's namespace>:<function name>".
    wait_for_saved_layout(jupyterlab, NOTEBOOK, f"jupyter-faas-function:{NAME}")
    page.reload(timeout=PAGE_TIMEOUT_MS)
    page.locator(f"[data-testid='faas-page-{NAME}']").wait_for(timeout=PAGE_TIMEOUT_MS)
    by_id(page, "faas-deploy-cell").wait_for(timeout=PAGE_TIMEOUT_MS)
    page.locator(f"[data-testid='faas-function-{NAME}'][data-state='deployed']").wait_for()
    page.get_by_role("tab", name=NOTEBOOK).click()
    page.locator(f"{CELLS}[data-faas-state='deployed']").wait_for(timeout=PAGE_TIMEOUT_MS)

    # Editing the cell marks it "changed since deploy", on the cell and in the sidebar.
    type_into_cell(page, 0, "\n# tuned after the deploy\n")
    page.locator(f"{CELLS}[data-faas-state='changed']").wait_for()
    by_id(page, f"faas-changed-{NAME}").wait_for()
    active = by_id(page, "faas-active-cell")
    assert active.get_attribute("data-state") == "changed"
    assert "changed since deploy" in active.inner_text()
    page.screenshot(path=str(DOCS_IMAGES / "sidebar-changed.png"))

    # The dark theme: JupyterLab's variables only, so the sidebar and the page turn dark.
    light_page = luminance(page, ".jp-faas-Page")
    search = open_palette(page)
    search.fill("JupyterLab Dark")
    page.locator(".lm-CommandPalette-item").filter(has_text="JupyterLab Dark").first.click()
    page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
    page.get_by_role("tab", name=f"ƒ {NAME}").click()
    page.wait_for_timeout(500)
    assert luminance(page, ".jp-faas-Page") < 0.2 < light_page
    assert luminance(page, ".jp-faas-Sidebar") < 0.2
    page.screenshot(path=str(DOCS_IMAGES / "sidebar-dark.png"))


def test_bad_name_and_cell_without_main_are_explained(page, jupyterlab):
    """An invalid name is asked again saying why, with a valid suggestion; no main fails at capture."""
    path = jupyterlab.root / "no-main.ipynb"
    write_notebook(path)
    open_notebook(page, jupyterlab, path.name)
    type_into_cell(page, 0, "def handler(args):\n    return args\n")

    run_palette_command(page, "Deploy cell as function")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("Bad Name")
    dialog.locator("button.jp-mod-accept").click()
    # Asked again, saying why, with a suggestion filled in.
    page.locator(".jp-Dialog").filter(has_text="is not a valid function name").wait_for()
    assert page.locator(".jp-Dialog input").input_value() == "bad-name"
    # Too long: the reason names the limit, and the suggestion differs from the input.
    long_name = "a" * 70
    page.locator(".jp-Dialog input").fill(long_name)
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    page.locator(".jp-Dialog").filter(has_text="63").wait_for()
    suggestion = page.locator(".jp-Dialog input").input_value()
    assert suggestion != long_name and 0 < len(suggestion) <= 63
    page.locator(".jp-Dialog input").fill("no-main")
    page.locator(".jp-Dialog button.jp-mod-accept").click()

    progress = page.locator("[data-testid='faas-deploy-progress'][data-status='failed']")
    progress.wait_for(timeout=INVOKE_TIMEOUT_MS)
    assert progress.locator("[data-step='capture']").get_attribute("data-status") == "failed"
    error = by_id(page, "faas-deploy-error").inner_text()
    assert "main" in error, error
    assert page.locator(f"{CELLS}[data-faas-state]").count() == 0

"""A function's whole life from the sidebar and its page: Chromium, JupyterLab, the function
server, Docker and the registry, all real.

The sidebar stays a compact list; a function opens in a page of its own in the main area
(invoke, test, activations with their picture, versions with rollback, bundle, schedules,
go to cell, delete). Screenshots of the versions view and of a failure go to docs/images/.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from lab import (
    CELLS,
    DOCS_IMAGES,
    INVOKE_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    action_status,
    by_id,
    deploy_active_cell,
    deployed,
    invoke_from_server,
    make_web_action,
    open_function_page,
    open_notebook,
    open_sidebar,
    replace_cell,
    saved_cell_metadata,
    step_statuses,
    type_into_cell,
    widen_left_panel,
    write_notebook,
)
from support import loopback

pytestmark = pytest.mark.docker

NAME = "pager"
#: Line 5 raises: the traceback must name the cell's own line 5.
CELL = """def main(args):
    x = args.get("x", 1)
    print(f"got {x}")
    if x < 0:
        raise ValueError(f"x must not be negative, got {x}")
    return {"double": 2 * x, "code": "one"}
"""
#: A log line's time as the page shows it: local, to the millisecond, no date.
SHORT_TIME = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")


def invoke_result(page) -> dict:
    result = by_id(page, "faas-invoke-result")
    result.wait_for(timeout=INVOKE_TIMEOUT_MS)
    return json.loads(by_id(page, "faas-invoke-result-result").inner_text())


def wait_for_new_result(page, old_id: str | None):
    """The invoke result once it is another activation than ``old_id``."""
    result = by_id(page, "faas-invoke-result")
    deadline = time.monotonic() + INVOKE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if result.count() and result.locator("code[title='activation id']").inner_text() != old_id:
            return result
        time.sleep(0.1)
    pytest.fail("no new invoke result appeared")


def result_id(page) -> str | None:
    result = by_id(page, "faas-invoke-result")
    return result.locator("code[title='activation id']").inner_text() if result.count() else None


def css(locator, prop: str) -> str:
    return locator.evaluate(f"(el) => getComputedStyle(el).getPropertyValue('{prop}')")


def test_function_page_from_deploy_to_delete(page, jupyterlab, function_server):
    notebook = jupyterlab.root / "pager.ipynb"
    write_notebook(notebook)
    open_notebook(page, jupyterlab, notebook.name)
    type_into_cell(page, 0, CELL)
    open_sidebar(page)
    widen_left_panel(page)

    # Progress: honest and compact. Running steps' bars move; no line twice in the log.
    seen = deploy_active_cell(page, NAME)
    assert step_statuses(page)["deploy"] == "done", by_id(page, "faas-deploy-progress").inner_text()
    moving = {step for step, status, moves in seen if status == "running" and moves}
    assert moving - {"capture"}, f"no running step's bar moved: {seen}"
    page.locator("details.jp-faas-Log summary").click()
    log_lines = by_id(page, "faas-deploy-log").inner_text().splitlines()
    assert len(log_lines) == len(set(log_lines)), log_lines

    # Every deploy saves the notebook: the provenance is on disk without Ctrl+S.
    provenance = saved_cell_metadata(notebook, 0, deployed)
    assert provenance["name"] == NAME and provenance["version"]
    assert provenance["cell_id"] == "c1" and provenance["notebook"] == notebook.name
    first_version = provenance["version"]

    # The sidebar is a compact list: name, state, last run; no image or forms in it.
    item = by_id(page, f"faas-function-{NAME}")
    page.locator(f"[data-testid='faas-function-{NAME}'][data-state='deployed']").wait_for()
    assert "never run" in by_id(page, f"faas-last-{NAME}").inner_text()
    assert item.locator("textarea, table, pre").count() == 0

    # The function opens (from the keyboard too) in a page of its own in the main area.
    by_id(page, f"faas-open-{NAME}").focus()
    page.keyboard.press("Enter")
    root = page.locator(f"#jp-main-dock-panel [data-testid='faas-page-{NAME}']")
    root.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert root.bounding_box()["width"] > 800
    tabs = [t.inner_text() for t in root.get_by_role("tab").all()]
    assert tabs == ["Invoke", "Test", "Activations", "Versions", "Bundle", "Schedules"], tabs
    # Arrow keys move between the tabs.
    by_id(page, "faas-tab-invoke").focus()
    page.keyboard.press("ArrowRight")
    assert by_id(page, "faas-tab-test").get_attribute("aria-selected") == "true"
    page.keyboard.press("ArrowLeft")
    assert by_id(page, "faas-tab-invoke").get_attribute("aria-selected") == "true"
    # Image names stay whole: one line, never broken mid-word (here, and in the sidebar).
    for image in (
        root.locator(".jp-faas-PageImage code.jp-faas-Ref").first,
        by_id(page, "faas-deploy-result").locator("code.jp-faas-Ref").first,
    ):
        assert css(image, "white-space") == "nowrap"
        assert image.evaluate("el => el.getClientRects().length") == 1

    # Invoke: an empty input means {}; a half-typed one disables Invoke, visibly.
    form_input = by_id(page, "faas-invoke-input")
    invoke = by_id(page, "faas-invoke")
    enabled_opacity = float(css(invoke, "opacity"))
    form_input.fill("")
    assert invoke.is_enabled()
    invoke.click()
    assert invoke_result(page) == {"double": 2, "code": "one"}
    form_input.fill('{"x": ')
    assert "Not valid JSON" in by_id(page, "faas-invoke-input-problem").inner_text()
    assert invoke.is_disabled()
    assert float(css(invoke, "opacity")) < enabled_opacity
    assert css(invoke, "cursor") == "not-allowed"

    # Ctrl+Enter in the input invokes; log lines carry a short time, not an ISO timestamp.
    old = result_id(page)
    form_input.fill('{"x": 21}')
    form_input.press("Control+Enter")
    result = wait_for_new_result(page, old)
    assert result.get_attribute("data-status") == "success"
    assert json.loads(by_id(page, "faas-invoke-result-result").inner_text())["double"] == 42
    logs = by_id(page, "faas-invoke-result-logs")
    assert "got 21" in logs.inner_text()
    times = [t.inner_text() for t in logs.locator("time").all()]
    assert times and all(SHORT_TIME.match(t) for t in times), times
    assert not re.search(r"\d{4}-\d\d-\d\dT", logs.inner_text())
    success_border = css(result, "border-left-color")

    # A failure reads as a failure: its own style, the exception first, the cell's lines.
    old = result_id(page)
    form_input.fill('{"x": -3}')
    form_input.press("Control+Enter")
    failed = wait_for_new_result(page, old)
    assert failed.get_attribute("data-status") != "success"
    assert "jp-faas-mod-failed" in failed.get_attribute("class")
    assert css(failed, "border-left-color") != success_border
    headline = by_id(page, "faas-invoke-result-headline").inner_text()
    assert headline.startswith("your function raised ValueError: x must not be negative, got -3")
    traceback = by_id(page, "faas-invoke-result-traceback").inner_text()
    assert "line 5" in traceback and "raise ValueError" in traceback, traceback
    assert "proxy.py" not in traceback and "runtime" not in traceback, traceback
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "function-failure.png"))

    # Closing the page keeps the last result: it opens again with it.
    shown = result_id(page)
    page.get_by_role("tab", name=f"ƒ {NAME}").locator(".lm-TabBar-tabCloseIcon").click()
    root.wait_for(state="detached")
    open_function_page(page, NAME)
    assert result_id(page) == shown

    # The copyable curl command works as shown (the wsk one is shown beside it).
    curl = by_id(page, "faas-command-curl").inner_text()
    ran = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"double": 2, "code": "one"}, ran.stdout
    wsk = by_id(page, "faas-command-wsk").inner_text()
    assert f"action invoke {NAME}" in wsk and function_server.url in wsk
    # Copy puts the command as shown on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyterlab.url)
    by_id(page, "faas-command-curl-copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == curl

    # Activations: the picture (bars per run; cold, warm and failed marked) and the table,
    # with the version that ran and who started it.
    by_id(page, "faas-tab-activations").click()
    rows = by_id(page, "faas-activation-row")
    rows.nth(3).wait_for()
    count = rows.count()
    bars = by_id(page, "faas-chart-bar")
    assert bars.count() == count
    kinds = [b.get_attribute("data-kind") for b in bars.all()]
    assert "failed" in kinds and "cold" in kinds, kinds
    assert {v.inner_text() for v in by_id(page, "faas-activation-version").all()} == {first_version}
    assert all(c.inner_text() for c in by_id(page, "faas-activation-cause").all())

    # ... and refresh live: a run by another client appears without a click, here and in
    # the sidebar's last run.
    invoke_from_server(function_server, NAME, {"x": 100})
    rows.nth(count).wait_for(timeout=15_000)
    assert bars.count() == count + 1
    page.locator(f"[data-testid='faas-last-{NAME}']", has_text="success").wait_for(timeout=15_000)
    by_id(page, "faas-activation-open").nth(1).click()
    by_id(page, "faas-activation-detail").wait_for()
    page.screenshot(path=str(DOCS_IMAGES / "function-activations.png"))

    # A schedule shows its next run in words.
    by_id(page, "faas-tab-schedules").click()
    by_id(page, "faas-cron").fill("*/5 * * * *")
    by_id(page, "faas-schedule-add").click()
    next_run = by_id(page, "faas-schedule-next")
    next_run.wait_for()
    assert next_run.inner_text().startswith("next run in "), next_run.inner_text()
    page.get_by_role("button", name=f"Remove schedule */5 * * * * of {NAME}").click()
    next_run.wait_for(state="detached")

    # The bundle, as written.
    by_id(page, "faas-tab-bundle").click()
    assert "def main(args):" in by_id(page, "faas-bundle-file-handler.py").inner_text()
    by_id(page, "faas-bundle-file-requirements.txt").wait_for()
    assert json.loads(by_id(page, "faas-bundle-file-faas.json").inner_text())["name"] == NAME

    # A redeploy of a known cell is one click: no name asked.
    page.get_by_role("tab", name="pager.ipynb").click()
    replace_cell(page, 0, CELL.replace('"one"', '"two"'))
    by_id(page, "faas-deploy-cell").click()
    page.locator("[data-testid='faas-deploy-progress'][data-status='running']").wait_for()
    assert page.locator(".jp-Dialog").count() == 0
    page.locator("[data-testid='faas-deploy-progress'][data-status='done']").wait_for(
        timeout=INVOKE_TIMEOUT_MS
    )
    second = saved_cell_metadata(notebook, 0, lambda m: m.get("version") != first_version)
    assert second["cell_sha256"] != provenance["cell_sha256"]
    # The old version's result is gone from the page.
    page.get_by_role("tab", name=f"ƒ {NAME}").click()
    by_id(page, "faas-tab-invoke").click()
    assert by_id(page, "faas-invoke-result").count() == 0

    # Versions: each deploy with its code hash, time and who; rollback in one step.
    by_id(page, "faas-tab-versions").click()
    versions = by_id(page, "faas-version-row")
    versions.nth(1).wait_for()
    current = page.locator("[data-testid='faas-version-row'][data-current='true']")
    assert current.get_attribute("data-version") == second["version"]
    older = page.locator(f"[data-testid='faas-version-row'][data-version='{first_version}']")
    assert re.search(r"[0-9a-f]{12}", older.inner_text()), older.inner_text()
    older.get_by_test_id("faas-rollback").click()
    by_id(page, "faas-rollback-done").wait_for(timeout=INVOKE_TIMEOUT_MS)
    page.locator("[data-testid='faas-version-row'][data-current='true']").filter(
        has_text=f"rollback of {first_version}"
    ).wait_for()
    page.screenshot(path=str(DOCS_IMAGES / "function-versions.png"))
    by_id(page, "faas-tab-invoke").click()
    old = result_id(page)
    by_id(page, "faas-invoke-input").fill("{}")
    by_id(page, "faas-invoke").click()
    wait_for_new_result(page, old)
    assert json.loads(by_id(page, "faas-invoke-result-result").inner_text())["code"] == "one"

    # Made a web action by another client, it shows its web URL, which works as shown.
    make_web_action(function_server, NAME)
    web_url = by_id(page, "faas-web-url")
    web_url.wait_for(timeout=30_000)
    answer = loopback().post(web_url.inner_text(), json={"x": 4}, timeout=120)
    assert answer.json()["double"] == 8, answer.text

    # Go to its cell: the notebook comes forward with the cell active.
    by_id(page, "faas-go-to-cell").click()
    active = page.locator(f"{CELLS}.jp-mod-active")
    active.wait_for()
    assert "def main(args):" in active.inner_text()

    # Delete asks first; cancelling keeps everything, confirming removes it everywhere.
    page.get_by_role("tab", name=f"ƒ {NAME}").click()
    by_id(page, "faas-delete").click()
    dialog = page.locator(".jp-Dialog")
    assert "version history stays" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert action_status(function_server, NAME) == 200
    by_id(page, "faas-delete").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    by_id(page, f"faas-function-{NAME}").wait_for(state="detached", timeout=PAGE_TIMEOUT_MS)
    root.wait_for(state="detached")
    assert action_status(function_server, NAME) == 404
    assert not (jupyterlab.root / "functions" / NAME).exists()


def test_a_second_cell_with_a_deployed_name_asks(page, jupyterlab, function_server):
    notebook = jupyterlab.root / "twins.ipynb"
    write_notebook(notebook, cells=2)
    open_notebook(page, jupyterlab, notebook.name)
    type_into_cell(page, 0, '%%faas twin\ndef main(args):\n    return {"cell": 1}\n')
    type_into_cell(page, 1, '%%faas twin\ndef main(args):\n    return {"cell": 2}\n')
    open_sidebar(page)
    page.locator(f"{CELLS} .cm-content").nth(0).click()
    deploy_active_cell(page)
    assert step_statuses(page)["deploy"] == "done"
    assert saved_cell_metadata(notebook, 0, deployed)["name"] == "twin"

    # The second cell asks; cancelling deploys nothing.
    page.locator(f"{CELLS} .cm-content").nth(1).click()
    by_id(page, "faas-deploy-cell").click()
    dialog = page.locator(".jp-Dialog")
    dialog.filter(has_text="twin is deployed from another cell").wait_for()
    dialog.get_by_role("button", name="Cancel").click()
    assert by_id(page, "faas-deploy-progress").get_attribute("data-status") == "done"
    assert invoke_from_server(function_server, "twin", {})["response"]["result"] == {"cell": 1}

    # Replacing moves the name: the second cell owns it, the first no longer claims it.
    by_id(page, "faas-deploy-cell").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Replace twin").click()
    page.locator("[data-testid='faas-deploy-progress'][data-status='running']").wait_for()
    page.locator("[data-testid='faas-deploy-progress'][data-status='done']").wait_for(
        timeout=INVOKE_TIMEOUT_MS
    )
    assert saved_cell_metadata(notebook, 1, deployed)["name"] == "twin"
    assert "faas" not in json.loads(notebook.read_text())["cells"][0]["metadata"]
    assert invoke_from_server(function_server, "twin", {})["response"]["result"] == {"cell": 2}


def test_a_failed_test_is_listed_takes_a_test_input_and_is_removable(page, jupyterlab):
    notebook = jupyterlab.root / "needs-input.ipynb"
    write_notebook(notebook)
    open_notebook(page, jupyterlab, notebook.name)
    type_into_cell(page, 0, 'def main(args):\n    return {"twice": args["threshold"] * 2}\n')
    open_sidebar(page)

    # With {} the container test raises KeyError: nothing deployed, listed as "test failed".
    deploy_active_cell(page, "needs-input")
    steps = step_statuses(page)
    assert steps["test"] == "failed" and steps["deploy"] != "done", steps
    assert "KeyError" in by_id(page, "faas-deploy-error").inner_text()
    item = page.locator("[data-testid='faas-function-needs-input'][data-state='test-failed']")
    item.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert "test failed" in item.inner_text()

    # The page takes a test input, keeps it in the cell's metadata and shows the verdict.
    open_function_page(page, "needs-input")
    assert "KeyError" in by_id(page, "faas-page-test-failed").inner_text()
    by_id(page, "faas-tab-test").click()
    by_id(page, "faas-test-input").fill('{"threshold": 4}')
    by_id(page, "faas-test-run").click()
    report = by_id(page, "faas-test-report")
    report.wait_for(timeout=INVOKE_TIMEOUT_MS)
    assert report.get_attribute("data-ok") == "true", report.inner_text()
    assert report.get_attribute("data-verdict") == "equal", report.inner_text()  # kernel too
    assert json.loads(by_id(page, "faas-test-container-result").inner_text()) == {"twice": 8}
    kept = saved_cell_metadata(notebook, 0, lambda m: "test_input" in m)
    assert kept["test_input"] == {"threshold": 4}

    # A failed test is removable like any function.
    by_id(page, "faas-delete").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    by_id(page, "faas-function-needs-input").wait_for(state="detached", timeout=PAGE_TIMEOUT_MS)
    assert not (jupyterlab.root / "functions" / "needs-input").exists()


def test_a_failed_push_fails_the_deploy_step(page, jupyterlab_without_registry):
    lab = jupyterlab_without_registry
    notebook = lab.root / "no-registry.ipynb"
    write_notebook(notebook)
    open_notebook(page, lab, notebook.name)
    type_into_cell(page, 0, 'def main(args):\n    return {"ok": True}\n')
    open_sidebar(page)
    deploy_active_cell(page, "unpushed")
    steps = step_statuses(page)
    assert steps["push"] == "failed" and steps["deploy"] == "failed", steps
    assert "running" not in steps.values(), steps
    error = by_id(page, "faas-deploy-error").inner_text()
    assert "registry" in error.lower(), error


def test_a_deploy_by_the_magic_marks_its_cell(page, jupyterlab, function_server):
    """`%faas deploy` in the kernel: the panel writes its provenance into the `%%faas` cell."""
    notebook = jupyterlab.root / "by-magic.ipynb"
    write_notebook(notebook, cells=3)
    open_notebook(page, jupyterlab, notebook.name)
    type_into_cell(page, 0, "%load_ext jupyter_faas")
    type_into_cell(page, 1, '%%faas by-magic\ndef main(args):\n    return {"from": "magic"}\n')
    type_into_cell(page, 2, "%faas deploy by-magic")
    open_sidebar(page)
    page.locator(f"{CELLS} .cm-content").nth(0).click()
    for _ in range(3):
        page.keyboard.press("Shift+Enter")
    marked = page.locator(f"{CELLS}[data-faas-state='deployed']")
    marked.wait_for(timeout=INVOKE_TIMEOUT_MS)
    assert "%%faas by-magic" in marked.inner_text()
    # The notebook has the person's unsaved edits, so saving it stays theirs to do.
    page.keyboard.press("Control+s")
    provenance = saved_cell_metadata(notebook, 1, deployed)
    assert provenance["name"] == "by-magic" and provenance["server"] == function_server.url
    assert invoke_from_server(function_server, "by-magic", {})["response"]["result"] == {
        "from": "magic"
    }

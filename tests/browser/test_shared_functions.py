"""The sidebar's Shared section end to end: Chromium, JupyterLab, the function server, Docker.

Alice (a second namespace on the test function server) deploys and publishes ``peaks``
through the API; the lab (the server's guest namespace: Bob) finds it in the Shared
section with its owner, description and call contract, invokes it, copies it into his
notebook as a ``%%faas`` cell, publishes a function of his own from the sidebar, and gets
a clear message once Alice unpublishes hers. The screenshot goes to docs/images/.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path

import pytest
from lab import (
    CELLS,
    DOCS_IMAGES,
    INVOKE_TIMEOUT_MS,
    PAGE_TIMEOUT_MS,
    by_id,
    open_notebook,
    widen_left_panel,
    write_notebook,
)
from traitlets.config import Config

from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.server.app import namespace_main
from jupyter_faas.workspace import FaaSWorkspace

pytestmark = pytest.mark.docker

NOTEBOOK = "shared-demo.ipynb"
REF = "alice/shared/peaks"
CODE = (
    "def main(args):\n"
    "    values = [1, 5, 2, 7, 3]\n"
    "    return {'peaks': [v for v in values if v > args['threshold']]}\n"
)


def workspace_for(key: str, bundles: Path, server, test_labels, base_image, registry):
    config = Config()
    config.FaaSWorkspace.bundle_dir = str(bundles)
    config.OpenWhiskClient.api_host = server.url
    config.OpenWhiskClient.auth = key
    config.OpenWhiskDeployer.history_dir = str(bundles / ".history")
    config.DockerBuilder.extra_labels = dict(test_labels)
    config.FaaSImages.base_image = base_image
    config.FaaSRegistry.url = registry
    return FaaSWorkspace(config=config)


def deploy(workspace: FaaSWorkspace, name: str) -> None:
    meta = FunctionMetadata(name=name, test_input={"threshold": 2})
    requirements = [f"# shared-browser {uuid.uuid4().hex[:8]}"]
    workspace.deploy(Bundle.write(workspace.bundle_path(name), meta, CODE, requirements))


@pytest.fixture
def alice(function_server, tmp_path, test_labels, base_image, registry):
    """Alice's workspace: a namespace of her own on the lab's function server."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        data_dir = function_server.log_path.parent
        assert namespace_main(["create", "alice", "--data-dir", str(data_dir)]) == 0
    made = workspace_for(
        out.getvalue().strip(),
        tmp_path / "alice",
        function_server,
        test_labels,
        base_image,
        registry,
    )
    yield made
    made.close()


def test_find_invoke_copy_and_publish_shared_functions(
    page, jupyterlab, function_server, alice, test_labels, base_image, registry
):
    deploy(alice, "peaks")
    alice.deployer.publish("peaks", description="Peaks above a threshold")
    # A function of the lab's own (guest), deployed from its root's functions/ folder.
    own = workspace_for(
        function_server.auth,
        jupyterlab.root / "functions",
        function_server,
        test_labels,
        base_image,
        registry,
    )
    try:
        deploy(own, "smooth")
    finally:
        own.close()

    write_notebook(jupyterlab.root / NOTEBOOK)
    open_notebook(page, jupyterlab, NOTEBOOK)
    # The sidebar's tab (the palette route is test_sidebar's).
    page.locator(".jp-SideBar li[data-id='jupyter-faas:sidebar']").click()
    by_id(page, "faas-deploy-cell").wait_for()
    widen_left_panel(page, by=220)
    item = by_id(page, f"faas-shared-{REF}")
    item.wait_for(timeout=PAGE_TIMEOUT_MS)
    text = item.inner_text()
    assert "peaks" in text and "by alice" in text and "Peaks above a threshold" in text, text
    contract = by_id(page, f"faas-shared-contract-{REF}").inner_text()
    assert "input: threshold" in contract and '{"threshold":2}' in contract, contract
    assert "v0.0.1" in contract

    # Invoke on its sample input: the run is the lab's.
    by_id(page, f"faas-shared-invoke-{REF}").click()
    note = by_id(page, f"faas-shared-note-{REF}")
    page.locator(f"[data-testid='faas-shared-note-{REF}']:has-text('success')").wait_for(
        timeout=INVOKE_TIMEOUT_MS
    )
    assert '{"peaks":[5,7,3]}' in note.inner_text()

    # Copy to notebook: the bundle in functions/peaks-copy, a %%faas cell below.
    by_id(page, f"faas-shared-copy-{REF}").click()
    page.locator(f"[data-testid='faas-shared-note-{REF}']:has-text('Copied to')").wait_for()
    assert (jupyterlab.root / "functions" / "peaks-copy" / "handler.py").is_file()
    cell = page.locator(f"{CELLS} .cm-content").nth(1)
    cell.wait_for()
    assert cell.inner_text().startswith("%%faas peaks-copy --test")
    assert "def main(args):" in cell.inner_text()

    # Publish one's own deployed function from the sidebar.
    by_id(page, "faas-publish-name").select_option("smooth")
    by_id(page, "faas-publish-description").fill("Moving average")
    by_id(page, "faas-publish").click()
    page.locator("[data-testid='faas-publish-message']:has-text('Published')").wait_for()
    mine = by_id(page, "faas-shared-guest/shared/smooth")
    mine.wait_for()
    assert "(you)" in mine.inner_text() and "Moving average" in mine.inner_text()
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGES / "shared-functions.png"))

    # Alice unpublishes: Bob's next invoke says whose package and what to do.
    alice.deployer.unpublish("peaks")
    by_id(page, f"faas-shared-invoke-{REF}").click()
    page.locator(
        f"[data-testid='faas-shared-note-{REF}']:has-text('is not shared with you')"
    ).wait_for(timeout=INVOKE_TIMEOUT_MS)
    assert "Ask alice to publish it" in note.inner_text()
    # Reloaded, the list no longer has it; his copy and his own function stay.
    by_id(page, "faas-shared-refresh").click()
    item.wait_for(state="detached", timeout=PAGE_TIMEOUT_MS)
    assert (jupyterlab.root / "functions" / "peaks-copy" / "faas.json").is_file()
    by_id(page, "faas-shared-unpublish-guest/shared/smooth").click()
    by_id(page, "faas-shared-empty").wait_for(timeout=PAGE_TIMEOUT_MS)

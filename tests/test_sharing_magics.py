"""Sharing functions from the magics: publish, shared, invoke, bind, pull, unpublish.

Two namespaces on one real function server (Docker, the real registry): Alice (the
server's guest namespace) deploys and publishes ``peaks``; Bob (a namespace made with
``jupyter faas namespace create``) lists it, invokes it, binds it, pulls a copy and
deploys his derived version, which keeps working once Alice unpublishes hers. The
magics run in a real IPython shell, each person with a workspace of their own.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from support import running_function_server
from traitlets.config import Config

from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.magics import FaaSMagics
from jupyter_faas.server.app import namespace_main
from jupyter_faas.workspace import FaaSWorkspace

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL = "org.jupyter-faas.run"
CODE = (
    "def main(args):\n"
    "    values = [1, 5, 2, 7, 3]\n"
    "    return {'peaks': [v for v in values if v > args['threshold']]}\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, run_label):
    folder = tmp_path_factory.mktemp("sharing-server")
    with running_function_server(
        folder, {RUN_LABEL: run_label}, "--DockerInvoker.prewarm_count=0", cwd=ROOT
    ) as running:
        yield running, folder


def _magics(server, key: str, folder: Path, base_image, registry, test_labels) -> FaaSMagics:
    config = Config()
    config.FaaSWorkspace.bundle_dir = str(folder)
    config.OpenWhiskClient.api_host = server.url
    config.OpenWhiskClient.auth = key
    config.OpenWhiskDeployer.history_dir = str(folder / "history")
    config.DockerBuilder.extra_labels = test_labels
    config.FaaSImages.base_image = base_image
    config.FaaSRegistry.url = registry
    config.FaaSMagics.progress_style = "text"
    shell = InteractiveShell.instance()
    return FaaSMagics(shell=shell, config=config, workspace=FaaSWorkspace(config=config))


@pytest.fixture(scope="module")
def people(server, tmp_path_factory, base_image, registry, test_labels):
    server, data_dir = server
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert namespace_main(["create", "bob", "--data-dir", str(data_dir)]) == 0
    bob_key = out.getvalue().strip()
    alice = _magics(
        server, server.key, tmp_path_factory.mktemp("alice"), base_image, registry, test_labels
    )
    bob = _magics(
        server, bob_key, tmp_path_factory.mktemp("bob"), base_image, registry, test_labels
    )
    yield alice, bob
    alice.workspace.close()
    bob.workspace.close()


def deploy(magics: FaaSMagics, name: str, code: str) -> None:
    workspace = magics.workspace
    meta = FunctionMetadata(name=name, test_input={"threshold": 2})
    requirements = [f"# sharing {uuid.uuid4().hex[:8]}"]
    workspace.deploy(Bundle.write(workspace.bundle_path(name), meta, code, requirements))


def test_share_a_function_between_two_namespaces(people, capsys):
    alice, bob = people
    deploy(alice, "peaks", CODE)
    alice.faas_line("publish peaks --description 'Peaks above a threshold'")
    assert "published as guest/shared/peaks" in capsys.readouterr().out

    # Bob finds it with its owner, description, call contract and version.
    found = {f.ref: f for f in bob.workspace.deployer.shared()}
    peaks = found["guest/shared/peaks"]
    assert not peaks.mine and peaks.description == "Peaks above a threshold"
    assert peaks.contract["parameters"] == [{"name": "threshold", "required": True}]
    assert peaks.contract["sample_input"] == {"threshold": 2}
    assert peaks.version == alice.workspace.deployer.function("peaks").version
    bob.faas_line("shared")
    table = capsys.readouterr().out
    assert "guest/shared/peaks" in table and "Peaks above a threshold" in table

    # He invokes it; the run is his (his namespace's activations), not Alice's.
    assert bob.faas_line("invoke guest/shared/peaks '{\"threshold\": 4}'") == {"peaks": [5, 7]}
    mine = bob.workspace.deployer.activations("peaks")
    assert mine and mine[0].subject == "bob"
    theirs = {r.activation_id for r in alice.workspace.deployer.activations()}
    assert mine[0].activation_id not in theirs

    # A binding: his own name for Alice's package.
    assert bob.faas_line("bind guest/shared --as alices") == "alices"
    assert bob.faas_line("invoke alices/peaks '{\"threshold\": 6}'") == {"peaks": [7]}

    # A sequence of his own with Alice's function as its step.
    bob.faas_line("sequence pipeline guest/shared/peaks")
    assert bob.faas_line("invoke pipeline '{\"threshold\": 5}'") == {"peaks": [7]}

    # He cannot unpublish it, nor change it.
    with pytest.raises(UsageError, match="only guest can unpublish it"):
        bob.faas_line("unpublish guest/shared/peaks")

    # A copy to derive from: a %%faas cell and a bundle of his own.
    cell = bob.faas_line("pull guest/shared/peaks --as my-peaks")
    assert cell.startswith("%%faas my-peaks --test '{\"threshold\":2}'\n")
    assert "def main(args):" in cell and "generated by jupyter-faas" not in cell
    assert bob.shell.rl_next_input == cell
    path = bob.workspace.bundle_path("my-peaks")
    copied = Bundle.load(path)
    assert copied.metadata.test_input == {"threshold": 2}
    assert copied.requirements.startswith("# sharing ")
    with pytest.raises(UsageError, match="--as my-peaks-mine"):
        bob.faas_line("pull guest/shared/peaks --as my-peaks")
    body = CODE.replace("v > args['threshold']", "v >= args['threshold']")
    deploy(bob, "my-peaks", body)

    # Alice unpublishes while Bob uses it: a clear message, nothing of Bob's lost.
    alice.faas_line("unpublish peaks")
    with pytest.raises(UsageError) as refused:
        bob.faas_line("invoke guest/shared/peaks '{\"threshold\": 4}'")
    message = str(refused.value)
    assert "package shared of guest is not published" in message, message
    assert "Ask guest to publish it" in message
    with pytest.raises(UsageError, match="binding to a package that is not shared"):
        bob.faas_line("invoke alices/peaks '{\"threshold\": 4}'")
    with pytest.raises(UsageError, match="not authorized"):
        bob.faas_line("invoke pipeline '{\"threshold\": 5}'")
    assert "guest/shared/peaks" not in {f.ref for f in bob.workspace.deployer.shared()}
    assert bob.faas_line("invoke my-peaks '{\"threshold\": 5}'") == {"peaks": [5, 7]}
    assert any(
        r.activation_id == mine[0].activation_id for r in bob.workspace.deployer.activations()
    )
    # Alice's own function is still deployed and runs.
    assert alice.faas_line("invoke peaks '{\"threshold\": 6}'") == {"peaks": [7]}


def test_sharing_mistakes_say_what_to_do(people, capsys):
    alice, bob = people
    with pytest.raises(UsageError, match="%faas deploy never-deployed"):
        alice.faas_line("publish never-deployed")
    with pytest.raises(UsageError, match="is not published in package shared"):
        alice.faas_line("unpublish never-deployed")
    with pytest.raises(UsageError, match="OWNER/PACKAGE/NAME"):
        bob.faas_line("pull just-a-name")
    with pytest.raises(UsageError, match="Ask nobody to publish it"):
        bob.faas_line("pull nobody/shared/peaks")
    with pytest.raises(UsageError, match="Every step must be deployed, or published"):
        bob.faas_line("sequence broken nobody/shared/peaks")
    with pytest.raises(UsageError, match="Unknown or incomplete option"):
        alice.faas_line("publish peaks --colour red")
    # Nothing published (the first test unpublished peaks): the table says how to share.
    bob.faas_line("shared")
    assert "nothing is published yet: %faas publish NAME" in capsys.readouterr().out

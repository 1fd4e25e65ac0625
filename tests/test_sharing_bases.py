"""Images of others as a base: ``%%faas NAME --base OWNER/PACKAGE/NAME``.

Two namespaces on one real function server (Docker, the real registry, the package
index): Alice (the server's guest namespace) deploys and publishes ``six-info``, whose
image installs ``six``; Bob derives ``my-six`` from it in a real IPython shell, without
``six`` in his requirements, and his function imports it. A code-only edit reuses his
image, a new published image of Alice's gives him a new one, and a base that is not
published, unknown, not jupyter-faas's or used container-less is refused, saying what
to do, with nothing of Bob's lost.
"""

from __future__ import annotations

import importlib.metadata
import json
import uuid
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from jupyter_faas import image
from jupyter_faas.builders import BaseUnusable
from jupyter_faas.builders.process import ProcessBuilder
from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.magics import FaaSMagics

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL = "org.jupyter-faas.run"
#: The kernel's own six: Alice pins what she tested with, so Bob's kernel agrees with her image.
SIX = importlib.metadata.version("six")
ALICE_CODE = "import six\n\n\ndef main(args):\n    return {'six': six.__version__}\n"
BOB_CELL = (
    "import six\n"
    "\n"
    "def main(args):\n"
    "    return {'six': six.__version__, 'scale': {scale} * args['n']}\n"
)


def publish_six(alice: FaaSMagics) -> str:
    """Alice deploys and publishes six-info on an image of her own (a new one each call)."""
    workspace = alice.workspace
    requirements = [f"six=={SIX}", f"# base test {uuid.uuid4().hex[:8]}"]
    meta = FunctionMetadata(name="six-info", test_input={})
    bundle = Bundle.write(workspace.bundle_path("six-info"), meta, ALICE_CODE, requirements)
    deployment = workspace.deploy(bundle)
    alice.faas_line("publish six-info --description 'six, installed'")
    return deployment.digest


def capture(bob: FaaSMagics, scale: int, base: str = "guest/shared/six-info") -> None:
    cell = BOB_CELL.replace("{scale}", str(scale))
    bob.faas(f"my-six --base {base} --test '{{\"n\": 2}}'", cell)


def test_derive_from_a_published_image(people, docker_client, capsys):
    alice, bob = people
    digest = publish_six(alice)
    assert digest.startswith("sha256:")

    # Bob derives: six is not in his requirements, yet his function imports it.
    capture(bob, 1)
    out = capsys.readouterr().out
    bundle = bob.workspace.load("my-six")
    assert bundle.metadata.base == "guest/shared/six-info"
    assert "six" not in bundle.requirements, bundle.requirements
    tested = json.loads((bundle.path / "test.json").read_text())
    assert tested["ok"] and tested["verdict"] == "equal", (tested, out)

    # His image starts FROM Alice's, pinned by the digest she published.
    built = bob.workspace.build(bundle)
    assert built.reused and built.base["digest"] == digest
    assert built.base["ref"] == "guest/shared/six-info"
    mine = docker_client.images.get(built.ref)
    assert mine.labels[image.BASE_LABEL].endswith(f"@{digest}"), mine.labels
    alices = docker_client.images.get(built.base["image"].rsplit(":", 1)[0] + f"@{digest}")
    layers = alices.attrs["RootFS"]["Layers"]
    assert mine.attrs["RootFS"]["Layers"][: len(layers)] == layers

    # Deployed, it runs on the function server from his own image, and records its base.
    deployment = bob.workspace.deploy(bundle)
    assert deployment.image != built.base["image"]
    assert bob.faas_line("invoke my-six '{\"n\": 3}'") == {"six": SIX, "scale": 3}
    action = bob.workspace.deployer.client.get_action("my-six")
    recorded = next(a["value"] for a in action["annotations"] if a["key"] == "jupyter-faas-bundle")
    assert recorded["base"]["digest"] == digest
    assert f"six=={SIX}" in recorded["base"]["requirements"]
    assert recorded["metadata"]["base"] == "guest/shared/six-info"
    # A copy of Bob's function keeps his base (his requirements alone would lack six).
    bob.faas_line("publish my-six")
    cell = alice.faas_line("pull bob/shared/my-six --as six-copy")
    assert cell.startswith("%%faas six-copy --base guest/shared/six-info --test "), cell
    assert alice.workspace.load("six-copy").metadata.base == "guest/shared/six-info"

    # A code-only edit: the same image, the warm test container, no build.
    capture(bob, 5)
    out = capsys.readouterr().out
    assert "Building dependency image" not in out, out
    again = bob.workspace.build(bob.workspace.load("my-six"))
    assert again.reused and again.key == built.key and again.image_id == built.image_id
    tested = json.loads((bob.workspace.bundle_path("my-six") / "test.json").read_text())
    assert tested["ok"], tested

    # Alice publishes a new image: Bob's next build is a new image FROM it.
    new_digest = publish_six(alice)
    assert new_digest != digest
    rebuilt = bob.workspace.build(bob.workspace.load("my-six"))
    assert not rebuilt.reused and rebuilt.key != built.key
    assert rebuilt.base["digest"] == new_digest

    # Alice unpublishes: Bob is told why and what to do; his bundle and function stay.
    alice.faas_line("unpublish six-info")
    handler = (bob.workspace.bundle_path("my-six") / "handler.py").read_text()
    with pytest.raises(UsageError) as refused:
        capture(bob, 9)
    message = str(refused.value)
    assert "guest/shared/six-info cannot be a base: it is not published" in message, message
    assert "ask guest to publish it (%faas publish six-info)" in message, message
    assert (bob.workspace.bundle_path("my-six") / "handler.py").read_text() == handler
    with pytest.raises(UsageError, match="cannot be a base: it is not published"):
        bob.faas_line("build my-six")
    assert bob.faas_line("invoke my-six '{\"n\": 4}'") == {"six": SIX, "scale": 4}


def test_bases_that_cannot_be_used_say_why(people, tmp_path):
    alice, bob = people
    with pytest.raises(UsageError, match="cannot be a base: it is not published"):
        capture(bob, 1, base="guest/shared/no-such-function")
    with pytest.raises(UsageError, match="cannot be a base: it is not published"):
        capture(bob, 1, base="nobody/shared/six-info")
    # An image is never a base by name: only what its owner published is.
    with pytest.raises(UsageError, match="does not name a published function"):
        capture(bob, 1, base="127.0.0.1:5000/jupyter-faas/deps:0123456789abcdef01234567")

    # Published, but an image jupyter-faas did not build: nothing to add requirements to.
    client = alice.workspace.deployer.client
    client.put_package("tools", {"publish": True})
    client.put_action("tools/skeleton", {"exec": {"kind": "blackbox", "image": "openwhisk/x"}})
    with pytest.raises(UsageError, match="which jupyter-faas did not build"):
        capture(bob, 1, base="guest/tools/skeleton")
    client.put_action(
        "tools/seq", {"exec": {"kind": "sequence", "components": ["/guest/six-info"]}}
    )
    with pytest.raises(UsageError, match="without an image of its own"):
        capture(bob, 1, base="guest/tools/seq")

    # Container-less: refused before anything is built, saying why and what works.
    bundle = Bundle.write(
        tmp_path / "derived",
        FunctionMetadata(name="derived", base="guest/shared/six-info"),
        "def main(args):\n    return {}\n",
        [],
    )
    with pytest.raises(BaseUnusable) as refused:
        ProcessBuilder().build(bundle)
    message = str(refused.value)
    assert "not supported in container-less mode, because" in message, message
    assert "%faas pull guest/shared/six-info" in message

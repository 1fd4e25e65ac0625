"""A published function's image as a base, between two hub users, through the faas service
(real hub, DockerSpawner containers, the function server, the registry, the package index).

Alice publishes ``six-info`` (its image installs ``six``); Bob, in his own container,
derives ``my-six --base ALICE/shared/six-info``: the service resolves the name with Bob's
key, pulls nothing it may not and builds FROM Alice's image by digest, so Bob's function
imports ``six`` without listing it. Bob cannot base on what Alice did not publish: not by
its name, not by its registry path, not by publishing an action of his own that names
her image.
"""

from __future__ import annotations

import json

import pytest
from hubtools import Kernel, namespace_key, run_error, run_ok
from support import loopback

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

SIX_INFO = "import six\n\ndef main(args):\n    return {'six': six.__version__}"
HIDDEN = "import packaging\n\ndef main(args):\n    return {'packaging': packaging.__version__}"
MY_SIX = (
    "import six\n\ndef main(args):\n    return {'six': six.__version__, 'n': {scale} * args['n']}"
)


def read_json(kernel: Kernel, path: str) -> dict:
    return json.loads(run_ok(kernel, f"print(open({path!r}).read())"))


def my_six(scale: int, base: str, name: str = "my-six") -> str:
    cell = MY_SIX.replace("{scale}", str(scale))
    return f"%%faas {name} --base {base} --test '{{\"n\": 2}}'\n{cell}"


def test_derive_from_a_published_image_through_the_service(hub, pair):
    alice, bob = pair["alice"]["kernel"], pair["bob"]["kernel"]
    owner = pair["alice"]["name"]  # her namespace is her user name
    ref = f"{owner}/shared/six-info"
    run_ok(alice, f"%%faas six-info --test '{{}}'\n{SIX_INFO}")
    assert "six==" in run_ok(alice, "print(open('functions/six-info/requirements.txt').read())")
    assert "Deployed six-info" in run_ok(alice, "%faas deploy six-info")
    run_ok(alice, "%faas publish six-info")
    published = read_json(alice, "functions/six-info/deployed.json")
    assert f"/{hub.registry_prefix}/{owner}/deps:" in published["image"], published

    # Bob derives: the service builds FROM Alice's image; six is not in his requirements.
    text = run_ok(bob, my_six(1, ref))
    assert "equal" in text, text
    requirements = run_ok(bob, "print(open('functions/my-six/requirements.txt').read())")
    assert "six" not in requirements, requirements
    assert read_json(bob, "functions/my-six/faas.json")["base"] == ref
    assert "Deployed my-six" in run_ok(bob, "%faas deploy my-six")
    deployed = read_json(bob, "functions/my-six/deployed.json")
    assert f"/{hub.registry_prefix}/{pair['bob']['name']}/deps:" in deployed["image"], deployed
    result = run_ok(bob, "%faas invoke my-six '{\"n\": 3}'")
    assert "'n': 3" in result and "'six': '1." in result, result

    # A code-only edit: no build, the same image.
    text = run_ok(bob, my_six(5, ref))
    assert "equal" in text and "Building dependency image" not in text, text
    assert "Reusing dependency image" in text, text

    # Alice unpublishes: Bob's next build is refused, his deployed function still runs.
    run_ok(alice, "%faas unpublish six-info")
    error = run_error(bob, my_six(7, ref))
    assert f"{ref} cannot be a base: it is not published" in error, error
    result = run_ok(bob, "%faas invoke my-six '{\"n\": 4}'")
    assert "'n': 4" in result, result


def test_unpublished_images_of_others_cannot_be_a_base(hub, pair):
    alice, bob = pair["alice"]["kernel"], pair["bob"]["kernel"]
    owner, other = pair["alice"]["name"], pair["bob"]["name"]
    # Alice's function, deployed on an image of her own and never published.
    run_ok(alice, f"%%faas hidden --test '{{}}'\n{HIDDEN}")
    assert "Deployed hidden" in run_ok(alice, "%faas deploy hidden")
    hidden = read_json(alice, "functions/hidden/deployed.json")

    # By its name: not published, so not found for Bob (in a kernel and at the service).
    error = run_error(bob, my_six(1, f"{owner}/shared/hidden", "stolen-six"))
    assert "cannot be a base: it is not published" in error, error
    token = pair["bob"]["token"]
    resp = hub.service(
        "POST", "api/build", token, json={"requirements": "", "base": f"{owner}/shared/hidden"}
    )
    last = json.loads(resp.text.strip().splitlines()[-1])
    assert last.get("status") == 403 and "not published" in last["error"], resp.text

    # By its registry path: the service takes published functions only, never an image.
    resp = hub.service(
        "POST", "api/build", token, json={"requirements": "", "base": hidden["image"]}
    )
    assert resp.status_code == 400, resp.text
    assert "does not name a published function" in resp.json()["error"], resp.text

    # By publishing an action of his own that names her image: refused by the service.
    user, key = namespace_key(hub, pair["bob"])
    session = loopback()
    base = f"{hub.server_url}/api/v1/namespaces/{other}"
    resp = session.put(
        f"{base}/packages/decoy?overwrite=true", auth=(user, key), json={"publish": True}
    )
    assert resp.status_code == 200, resp.text
    decoy = {
        "exec": {"kind": "blackbox", "image": hidden["image"], "code": SIX_INFO},
        "annotations": [
            {"key": "jupyter-faas", "value": {"digest": hidden["digest"]}},
            {"key": "jupyter-faas-bundle", "value": {"requirements": [], "metadata": {}}},
        ],
    }
    resp = session.put(f"{base}/actions/decoy/stolen?overwrite=true", auth=(user, key), json=decoy)
    assert resp.status_code == 200, resp.text
    error = run_error(bob, my_six(1, f"{other}/decoy/stolen", "stolen-six"))
    assert f"which is not an image this service pushed for {other}" in error, error

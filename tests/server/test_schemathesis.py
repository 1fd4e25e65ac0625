"""Fuzz the real function server with OpenWhisk's published REST API description.

schemathesis reads Apache OpenWhisk's ``apiv1swagger.json`` (Swagger 2.0,
copied into ``tests/server/openwhisk-api/`` with its licence) and generates valid and
invalid requests for each of its operations; every answer must be something
other than a 5xx. The server is a subprocess with the real DockerInvoker on Docker.
Besides schemathesis's own valid and invalid cases, a third kind puts the
caller's namespace ``_`` and one of two fixed, valid entity names in the path,
so that cases reach the handlers (instead of a 403 for a foreign namespace or
a 400 for a bad name). Before each operation those names are (re)created as a
Python action, a blackbox action, a package with an action, a trigger and a
rule, so that gets, updates, invocations (in real containers), fires and
deletes meet real entities.

Bounds: ``MAX_EXAMPLES`` cases per operation and kind, no Hypothesis deadline,
no shrinking, and ``TOTAL_SECONDS`` for the whole module (later operations are
then skipped, not failed).
"""

from __future__ import annotations

import time
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from conftest import REAL_START_TIMEOUT, ServerProcess
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from support import free_port

pytestmark = pytest.mark.docker

SWAGGER = Path(__file__).with_name("openwhisk-api") / "openwhisk-apiv1swagger.json"
MAX_EXAMPLES = 20
TOTAL_SECONDS = 100
#: Client-side bound per request; the server answers blocking invokes within its own wait.
REQUEST_TIMEOUT = 70
#: Entity names the "reachable" cases put in each path parameter (one namespace holds
#: every collection, so the names differ across collections).
NAMES = {
    "actionName": ("fz-a", "fz-b"),
    "packageName": ("fz-p",),
    "triggerName": ("fz-t",),
    "ruleName": ("fz-r",),
}


def reachable(case):
    """``case`` with the caller's namespace and valid entity names in its path."""
    web = case.path.startswith("/web/")
    for key, value in case.path_parameters.items():
        if key == "namespace":
            # Web actions are addressed by the real namespace; the API resolves "_".
            case.path_parameters[key] = "guest" if web else "_"
        elif key == "extension":
            case.path_parameters[key] = "json"
        elif key in NAMES:
            case.path_parameters[key] = NAMES[key][len(str(value)) % len(NAMES[key])]
    return case


def object_body(case) -> bool:
    """The swagger's bodies lack ``type: object``; the reachable cases send objects only."""
    return case.body is NOT_SET or isinstance(case.body, dict)


def _operations() -> list:
    if not SWAGGER.is_file():
        return []
    schema = schemathesis.openapi.from_path(SWAGGER)
    return [result.ok() for result in schema.get_all_operations()]


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def server(tmp_path_factory, real_server_args):
    if not SWAGGER.is_file():
        pytest.fail(
            f"OpenWhisk's REST API description is missing: {SWAGGER}. Copy apache/openwhisk's "
            "core/controller/src/main/resources/apiv1swagger.json there.",
            pytrace=False,
        )
    proc = ServerProcess(
        tmp_path_factory.mktemp("fuzz") / "data", free_port(), real_server_args, REAL_START_TIMEOUT
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def seeded(server, session, server_images) -> None:
    """(Re)create the entities the "reachable" cases name."""
    a, b = NAMES["actionName"]
    (package,), (trigger,), (rule,) = (NAMES[k] for k in ("packageName", "triggerName", "ruleName"))
    code = "def main(args):\n    return {'keys': sorted(args)}\n"
    python = {"exec": {"kind": "python:3.11", "code": code}}
    entities = [
        (f"actions/{a}", python),
        (f"actions/{b}", {"exec": {"kind": "blackbox", "image": server_images.runtime}}),
        (f"packages/{package}", {"publish": True}),
        (f"actions/{package}/{a}", python),
        (
            f"actions/{package}/{b}",
            {**python, "annotations": [{"key": "web-export", "value": True}]},
        ),
        (f"triggers/{trigger}", {}),
        (f"rules/{rule}", {"trigger": f"/_/{trigger}", "action": f"/_/{a}"}),
    ]
    for path, body in entities:
        url = f"{server.base}/api/v1/namespaces/_/{path}?overwrite=true"
        response = session.put(url, json=body, timeout=10)
        assert response.status_code == 200, f"seeding {path}: {response.text}"


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + TOTAL_SECONDS


@pytest.fixture(scope="module")
def session(server) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.auth = tuple(server.api_key().split(":", 1))
    return http


def test_swagger_file_is_there():
    assert SWAGGER.is_file(), (
        f"OpenWhisk's REST API description is missing: {SWAGGER}; the fuzz tests below "
        "were not generated."
    )


def is_failed_activation(response) -> bool:
    """OpenWhisk answers a blocking invoke whose action failed with 502 and the activation (or,
    with result=true, its ``{"error"}``), without the ``code`` that marks the server's own
    errors: the action failed, not the server (protocols.md A.5, A.7)."""
    if response.status_code != 502:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "code" not in body and ("error" in body or "response" in body)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_server_error(operation, server, session, deadline, seeded):
    if time.monotonic() > deadline:
        pytest.skip(f"the {TOTAL_SECONDS} s budget of this module is spent")
    strategies = {
        "valid": operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        "invalid": operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        "reachable": operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        .filter(object_body)
        .map(reachable),
    }
    base_url = f"{server.base}/api/v1"

    def check(case):
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT)
        if not is_failed_activation(response):
            case.validate_response(response, checks=[not_a_server_error])

    for strategy in strategies.values():
        hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy)(check))()
    # A 5xx is reported by the check; this catches a crash of the whole server.
    assert server.proc.poll() is None, f"the server died:\n{server.log_path.read_text()[-4000:]}"

"""Warm activation logs are exact (issue 12, finding 1), on the real server and Docker.

Two actions run 1 000 activations between them, alternating and four at a time, so each
action keeps two or more warm containers busy. Every activation prints its own input (on
stdout, once without a newline, and on stderr); its record must hold exactly those lines,
none of another activation's and none missing, whether it ran cold or warm.
"""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import Client

pytestmark = pytest.mark.docker

A = "/api/v1/namespaces/_"
ACTIVATIONS = 1000
PARALLEL = 4
#: Upper bound for the whole run (a warm activation takes milliseconds; cold ones ~1 s).
DEADLINE_S = 600
CODE = (
    "import sys\n"
    "def main(args):\n"
    "    tag = f\"{args['action']}#{args['n']}\"\n"
    "    print('begin', tag)\n"
    "    print('middle', tag, 'x' * (args['n'] % 50))\n"
    "    print('end', tag, end='')\n"
    "    print('err', tag, file=sys.stderr)\n"
    "    return {'tag': tag}\n"
)
_LINE = re.compile(r"\A\d{4}-\d\d-\d\dT[\d:.]+Z\s+(stdout|stderr): (.*)\Z")


def expected(action: str, n: int) -> list[tuple[str, str]]:
    tag = f"{action}#{n}"
    return sorted(
        [
            ("stdout", f"begin {tag}"),
            ("stdout", f"middle {tag} {'x' * (n % 50)}".rstrip()),
            ("stdout", f"end {tag}"),
            ("stderr", f"err {tag}"),
        ]
    )


def parsed(logs: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in logs:
        match = _LINE.match(line)
        assert match, f"not an OpenWhisk log line: {line!r}"
        out.append((match[1], match[2]))
    return sorted(out)


@pytest.fixture(scope="module")
def server(start_real_server):
    return start_real_server("--DockerInvoker.prewarm_count=0")


def test_every_warm_activation_holds_exactly_its_own_lines(server):
    guest: Client = server.client()
    guest.session.headers["Content-Type"] = "application/json"
    names = [f"logs-{uuid.uuid4().hex[:6]}-{side}" for side in ("a", "b")]
    for name in names:
        body = {"exec": {"kind": "python:3.11", "code": CODE}, "limits": {"memory": 128}}
        r = guest.put(f"{A}/actions/{name}", json=body)
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + DEADLINE_S

    def run(n: int) -> tuple[str, int, dict]:
        assert time.monotonic() < deadline, f"{ACTIVATIONS} activations took over {DEADLINE_S} s"
        name = names[n % 2]  # alternating between the two actions
        r = guest.post(
            f"{A}/actions/{name}",
            json={"action": name, "n": n},
            params={"blocking": "true"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        return name, n, r.json()

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(run, range(ACTIVATIONS)))

    wrong = []
    warm = 0
    for name, n, record in results:
        assert record["response"]["result"] == {"tag": f"{name}#{n}"}
        if parsed(record["logs"]) != expected(name, n):
            wrong.append((n, record["activationId"], record["logs"]))
        warm += not any(a["key"] == "initTime" for a in record["annotations"])
    assert not wrong, f"{len(wrong)} of {ACTIVATIONS} records hold other lines, e.g. {wrong[:3]}"
    # Nearly all ran warm, on several containers per action (four at a time).
    assert warm >= ACTIVATIONS - 4 * PARALLEL, warm
    # The stored records say the same (a sample of them, across the run).
    for name, n, record in results[:: ACTIVATIONS // 50]:
        stored = guest.get(f"{A}/activations/{record['activationId']}").json()
        assert parsed(stored["logs"]) == expected(name, n)

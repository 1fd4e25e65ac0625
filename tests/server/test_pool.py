"""The DockerInvoker against the real Docker engine: cold/warm/prewarm, failures, logs, pool upkeep.

Every test drives ``DockerInvoker.run`` directly with ActivationJobs. Containers carry role
``server`` plus this run's label (``extra_labels``), so the session teardown and the
DockerInvoker's own crash cleanup touch nothing else.
"""

from __future__ import annotations

import asyncio
import re
import time

import docker.errors
import pytest
from support import activation_job
from traitlets import TraitError
from traitlets.config import Config

from jupyter_faas import engine
from jupyter_faas.server.pool.containers import (
    ACTION_LABEL,
    OWNER_LABEL,
    escape_name,
    registry_host,
    wants_refresh,
)
from jupyter_faas.server.pool.docker import DockerInvoker
from jupyter_faas.server.pool.logs import SENTINEL
from jupyter_faas.site import FaaSSite

RUN_LABEL = "org.jupyter-faas.run"
LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr): (.*)$")

HOST = """
import socket

def main(args):
    return {"host": socket.gethostname(), "args": args}
"""


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def make_invoker(loop, runtime_image, run_label):
    """Start Invokers with test settings (no prewarm unless asked); stop them afterwards."""
    started = []

    def make(**traits) -> DockerInvoker:
        settings = {
            "python_image": runtime_image,
            "prewarm_count": 0,
            "extra_labels": {RUN_LABEL: run_label},
            **traits,
        }
        invoker = DockerInvoker(**settings)
        loop.run_until_complete(invoker.start())
        started.append(invoker)
        return invoker

    yield make
    for invoker in started:
        loop.run_until_complete(invoker.stop())


def job(code=HOST, **settings):
    """An ActivationJob for ``/guest/<name>`` (support.activation_job) running ``code``."""
    return activation_job(code, **settings)


def containers_of(client, **labels):
    filters = [engine.LABEL] + [f"{k}={v}" for k, v in labels.items()]
    return client.containers.list(all=True, sparse=True, filters={"label": filters})


def wait_until(loop, check, timeout=15.0):
    """Let the event loop run (reaper, prewarm tasks) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        loop.run_until_complete(asyncio.sleep(0.1))


# ---- settings and helpers (no Docker) ----------------------------------------------------


@pytest.mark.parametrize(
    ("traits", "words"),
    [
        ({"container_name_template": "faas-{action}"}, "lacks {n}"),
        ({"container_name_template": "faas-{n}-{bogus}"}, "{namespace}, {action}"),
        ({"container_name_template": "_x-{n}"}, "not a valid Docker container name"),
        ({"memory_budget_mb": 64}, "below 128"),
        ({"idle_timeout_s": -1}, "negative"),
        ({"prewarm_count": -1}, "at least 0"),
    ],
)
def test_bad_settings_are_refused_with_advice(traits, words):
    with pytest.raises(TraitError, match=re.escape(words)):
        DockerInvoker(**traits)


def test_image_ref_helpers():
    assert registry_host("127.0.0.1:5000/fn:1") == "127.0.0.1:5000"
    assert registry_host("localhost/fn") == "localhost"
    assert registry_host("team/fn:1") is None
    assert registry_host("fn") is None
    assert wants_refresh("fn") and wants_refresh("host:5000/fn:latest")
    assert not wants_refresh("host:5000/fn:1")
    assert not wants_refresh("fn@sha256:" + "0" * 64)
    assert escape_name("my act/ä_") == "my_20act_2f_c3_a4_5f"


# ---- runs -------------------------------------------------------------------------------


@pytest.mark.docker
def test_cold_start_then_warm_reuse(loop, make_invoker):
    invoker = make_invoker()
    first = loop.run_until_complete(invoker.run(job(params={"n": 1})))
    second = loop.run_until_complete(invoker.run(job(params={"n": 2})))
    assert first.status_code == 0, first.result
    assert first.result["args"] == {"n": 1}
    assert first.init_time_ms is not None
    assert second.status_code == 0, second.result
    assert second.result["host"] == first.result["host"]
    assert second.init_time_ms is None
    assert second.peak_memory_bytes and second.peak_memory_bytes > 1_000_000
    assert first.start_ms <= first.end_ms <= second.start_ms <= second.end_ms


@pytest.mark.docker
def test_activation_context_reaches_the_action(loop, make_invoker):
    invoker = make_invoker(api_host="http://172.17.0.1:3233")
    code = (
        "import os\n"
        "def main(args):\n"
        "    return {k: v for k, v in os.environ.items() if k.startswith(('__OW_', 'SECRET'))}\n"
    )
    request = job(code, name="ctx")
    request.api_key = "uuid:key"
    request.init_env["SECRET"] = "s3"
    outcome = loop.run_until_complete(invoker.run(request))
    assert outcome.status_code == 0, outcome.result
    env = outcome.result
    assert env["__OW_API_HOST"] == "http://172.17.0.1:3233"
    assert env["__OW_API_KEY"] == "uuid:key"
    assert env["__OW_ACTIVATION_ID"] == request.activation_id
    assert env["__OW_ACTION_NAME"] == "/guest/ctx"
    assert env["__OW_ACTION_VERSION"] == "0.0.1"
    assert env["__OW_DEADLINE"] == str(request.deadline_ms)
    assert env["__OW_NAMESPACE"] == "guest"
    assert env["SECRET"] == "s3"  # an init parameter, delivered through /init's env


@pytest.mark.docker
def test_site_settings_reach_action_containers(loop, make_invoker):
    """The site's CA bundle and proxy go into deployed functions, as into builds and tests."""
    site = FaaSSite(
        ca_bundle="/etc/ssl/certs/ca-certificates.crt", https_proxy="http://127.0.0.1:3128"
    )
    invoker = make_invoker(site=site)
    code = (
        "import os\n"
        "def main(args):\n"
        "    ca = os.environ['SSL_CERT_FILE']\n"
        "    return {'proxy': os.environ['HTTPS_PROXY'], 'ca': ca, 'certs': open(ca).read().count('BEGIN')}\n"
    )
    outcome = loop.run_until_complete(invoker.run(job(code, name="site")))
    assert outcome.status_code == 0, outcome.result
    assert outcome.result["proxy"] == "http://127.0.0.1:3128"
    assert outcome.result["ca"] == "/faas/site-ca.crt" and outcome.result["certs"] > 10


@pytest.mark.docker
def test_changed_action_key_gets_a_new_container(loop, make_invoker):
    invoker = make_invoker()
    old = loop.run_until_complete(invoker.run(job(version="0.0.1")))
    new = loop.run_until_complete(invoker.run(job(version="0.0.2")))
    assert old.status_code == new.status_code == 0
    assert new.result["host"] != old.result["host"]
    assert new.init_time_ms is not None


@pytest.mark.docker
def test_prewarm_container_takes_a_python_action(loop, make_invoker):
    invoker = make_invoker(prewarm_count=1)

    def prewarmed():
        return [s for s in invoker._slots.values() if s.state == "prewarm"]

    wait_until(loop, lambda: len(prewarmed()) == 1)
    prewarm_id = prewarmed()[0].id
    outcome = loop.run_until_complete(invoker.run(job()))
    assert outcome.status_code == 0, outcome.result
    assert prewarm_id.startswith(outcome.result["host"])
    assert outcome.init_time_ms is not None
    # A replacement prewarm container is started in the background.
    wait_until(loop, lambda: len(prewarmed()) == 1 and prewarmed()[0].id != prewarm_id)
    # Other memory limits do not use prewarm containers: they cold start.
    other = loop.run_until_complete(invoker.run(job(name="big", memory=512)))
    assert other.status_code == 0, other.result
    assert other.init_time_ms is not None
    assert other.result["host"] not in (outcome.result["host"], prewarmed()[0].id[:12])


@pytest.fixture
def function_image(docker_client, runtime_image, run_label):
    """Another name of the runtime image, as a function's dependency image is (it carries
    our label and takes code through /init); the name is removed afterwards."""
    ref = f"faas-test-deps-{run_label}:1"
    docker_client.images.get(runtime_image).tag(ref)
    yield ref
    docker_client.images.remove(ref)


@pytest.mark.docker
def test_code_only_version_on_a_function_image_takes_a_prewarmed_container(
    loop, make_invoker, function_image
):
    """A code-only edit is a new version on the same image: after the first cold start one
    container of that image waits without code, and the next version's /init goes to it."""
    invoker = make_invoker(idle_timeout_s=60)

    def prewarmed():
        return [
            s for s in invoker._slots.values() if s.state == "prewarm" and s.image == function_image
        ]

    def version(n):
        outcome = loop.run_until_complete(
            invoker.run(
                job(
                    HOST + f"\nVERSION = {n}\n",
                    kind="blackbox",
                    image=function_image,
                    version=f"0.0.{n}",
                )
            )
        )
        assert outcome.status_code == 0, outcome.result
        return outcome

    version(1)
    wait_until(loop, lambda: len(prewarmed()) == 1)
    waiting = prewarmed()[0].id
    second = version(2)
    assert waiting.startswith(second.result["host"]), "the second version ran in the waiting one"
    assert second.init_time_ms is not None
    wait_until(loop, lambda: len(prewarmed()) == 1 and prewarmed()[0].id != waiting)
    # Unused, it goes after the idle timeout like a warm container (the runtime image's
    # own prewarm containers stay).
    invoker.idle_timeout_s = 0.1
    loop.run_until_complete(asyncio.sleep(0.2))
    loop.run_until_complete(invoker._reap())
    assert not prewarmed()


@pytest.mark.docker
def test_prewarmed_function_image_never_evicts_a_warm_container(loop, make_invoker, function_image):
    invoker = make_invoker(memory_budget_mb=256)
    loop.run_until_complete(invoker.run(job(kind="blackbox", image=function_image)))
    wait_until(loop, lambda: all(s.state == "idle" for s in invoker._slots.values()))
    assert [s.state for s in invoker._slots.values()] == ["idle"], "no room: nothing prewarmed"


#: Reads its input from a read-only data mount and writes its output to a writable one.
DATA_STEP = """
import errno
import os


def main(args):
    with open(args["frames"]) as f:
        total = sum(int(line) for line in f)
    with open(os.path.join(args["out"], "total.txt"), "w") as f:
        f.write(str(total))
    try:
        open(os.path.join(os.path.dirname(args["frames"]), "x"), "w").close()
        readonly = "written"
    except OSError as err:
        readonly = errno.errorcode[err.errno]
    return {"total": total, "readonly": readonly}
"""


@pytest.mark.docker
def test_data_mounts_reach_action_containers_by_reference(loop, make_invoker, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    out.mkdir()
    out.chmod(0o777)  # the action runs as uid 65534
    (raw / "frames.txt").write_text("1\n2\n39\n")
    config = Config()
    config.FaaSSite.data_mounts = {str(raw): "/data", str(out): "/results:rw"}
    invoker = make_invoker(config=config)
    site = invoker.site
    params = {"frames": site.container_path(raw / "frames.txt"), "out": site.container_path(out)}
    outcome = loop.run_until_complete(invoker.run(job(DATA_STEP, params=params)))
    assert outcome.status_code == 0, outcome.result
    assert outcome.result == {"total": 42, "readonly": "EROFS"}
    assert (out / "total.txt").read_text() == "42"


@pytest.mark.docker
def test_application_error(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    return {'error': 'no such user', 'extra': 1}\n"
    outcome = loop.run_until_complete(invoker.run(job(code)))
    assert outcome.status_code == 1
    assert outcome.result == {"error": "no such user"}


@pytest.mark.docker
def test_exception_is_a_developer_error_with_traceback_in_logs(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    raise ValueError('boom')\n"
    outcome = loop.run_until_complete(invoker.run(job(code)))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "ValueError: boom"}
    assert any("stderr: ValueError: boom" in line for line in outcome.logs)
    # The container survived the exception and stays warm.
    again = loop.run_until_complete(invoker.run(job(code)))
    assert again.status_code == 2 and again.init_time_ms is None


@pytest.mark.docker
def test_logs_both_streams_formatted_sentinels_stripped(loop, make_invoker):
    invoker = make_invoker()
    code = (
        "import sys\n"
        "print('loading')\n"
        "def main(args):\n"
        "    print('to out', args['x'])\n"
        "    print('to err', file=sys.stderr)\n"
        "    return {}\n"
    )
    first = loop.run_until_complete(invoker.run(job(code, params={"x": 1})))
    second = loop.run_until_complete(invoker.run(job(code, params={"x": 2})))
    for outcome in (first, second):
        assert outcome.status_code == 0, outcome.result
        assert all(LINE_RE.match(line) for line in outcome.logs), outcome.logs
        assert not any(SENTINEL in line for line in outcome.logs)
    # Each stream keeps its order; how the two interleave depends on Docker's copiers.
    # A cold start may catch the runtime's own start-up line; the rest is the activation's.
    own = [LINE_RE.match(x).groups() for x in first.logs if "faas runtime:" not in x]
    assert [x for x in own if x[0] == "stdout"] == [("stdout", "loading"), ("stdout", "to out 1")]
    assert [x for x in own if x[0] == "stderr"] == [("stderr", "to err")]
    assert sorted(LINE_RE.match(x).groups() for x in second.logs) == [
        ("stderr", "to err"),
        ("stdout", "to out 2"),
    ]


@pytest.mark.docker
def test_logs_over_the_limit_are_truncated(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    for i in range(3000):\n        print('x' * 1000)\n    return {}\n"
    outcome = loop.run_until_complete(invoker.run(job(code, logs=1)))
    assert outcome.status_code == 0
    assert len(outcome.logs) < 3000
    assert outcome.logs[-1].endswith(
        "stderr: Logs were truncated because the total bytes size exceeds the limit "
        "of 1048576 bytes."
    )


@pytest.mark.docker
def test_timeout_kills_and_removes_the_container(loop, make_invoker, docker_client, run_label):
    invoker = make_invoker()
    code = "import time\ndef main(args):\n    print('sleeping')\n    time.sleep(60)\n"
    outcome = loop.run_until_complete(invoker.run(job(code, name="slow", timeout=1500)))
    assert outcome.status_code == 2
    assert outcome.timed_out is True
    assert outcome.result == {"error": "The action exceeded its time limits of 1500 milliseconds."}
    assert any(line.endswith("stdout: sleeping") for line in outcome.logs)
    labels = {RUN_LABEL: run_label, ACTION_LABEL: "guest/slow@0.0.1"}
    assert containers_of(docker_client, **labels) == []


@pytest.mark.docker
def test_out_of_memory_is_reported(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    blob = bytearray(400 * 1024 * 1024)\n    return {'n': len(blob)}\n"
    outcome = loop.run_until_complete(invoker.run(job(code, name="hog", memory=128)))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "The action exhausted its memory and was aborted."}


@pytest.mark.docker
def test_action_exiting_during_init(loop, make_invoker):
    invoker = make_invoker()
    code = "import os\nos._exit(3)\ndef main(args):\n    return {}\n"
    outcome = loop.run_until_complete(invoker.run(job(code, name="quitter")))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "The action did not initialize and exited unexpectedly."}


@pytest.mark.docker
def test_init_refused_is_a_developer_error_and_drops_the_container(loop, make_invoker):
    invoker = make_invoker()
    outcome = loop.run_until_complete(invoker.run(job("def main(args:\n", name="broken")))
    assert outcome.status_code == 2
    assert "SyntaxError" in outcome.result["error"]
    assert invoker._slots == {}


@pytest.mark.docker
def test_native_action_on_the_runtime_image(loop, make_invoker, runtime_image):
    invoker = make_invoker()
    script = '#!/bin/sh\necho "native log"\necho \'{"native": true}\'\n'
    outcome = loop.run_until_complete(
        invoker.run(job(script, name="native", kind="blackbox", image=runtime_image))
    )
    assert outcome.status_code == 0, outcome.result
    assert outcome.result == {"native": True}
    assert any(line.endswith("stdout: native log") for line in outcome.logs)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("127.0.0.1:5000/faas-test/missing-{run}:1", "Push it first"),
        ("faas-test-missing-{run}:1", "names no registry"),
    ],
)
@pytest.mark.docker
def test_missing_image_fails_to_pull_with_advice(loop, make_invoker, run_label, image, words):
    invoker = make_invoker()
    ref = image.format(run=run_label)
    outcome = loop.run_until_complete(
        invoker.run(job(None, name="ghost", kind="blackbox", image=ref))
    )
    assert outcome.status_code == 2
    assert outcome.result["error"].startswith(f"Failed to pull container image '{ref}'.")
    assert words in outcome.result["error"]


@pytest.mark.docker
def test_image_is_pulled_from_the_registry(
    loop, make_invoker, docker_client, registry, runtime_image, run_label
):
    repo = f"{registry}/faas-test/runtime-{run_label}"
    docker_client.images.get(runtime_image).tag(repo, "1")
    for line in docker_client.images.push(repo, tag="1", stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(f"{repo}:1")
    invoker = make_invoker()
    outcome = loop.run_until_complete(
        invoker.run(job(HOST, name="pulled", kind="blackbox", image=f"{repo}:1"))
    )
    assert outcome.status_code == 0, outcome.result
    assert engine.has_image(docker_client, f"{repo}:1")
    docker_client.images.remove(f"{repo}:1")


@pytest.mark.docker
def test_unknown_kind_is_refused(loop, make_invoker):
    invoker = make_invoker()
    outcome = loop.run_until_complete(invoker.run(job("x", kind="nodejs:20")))
    assert outcome.status_code == 2
    assert "cannot run on this function server" in outcome.result["error"]


# ---- pool upkeep ------------------------------------------------------------------------


@pytest.mark.docker
def test_idle_reaper_removes_idle_containers(loop, make_invoker, docker_client, run_label):
    invoker = make_invoker(idle_timeout_s=0.5)
    outcome = loop.run_until_complete(invoker.run(job(name="idler")))
    assert outcome.status_code == 0
    labels = {RUN_LABEL: run_label, ACTION_LABEL: "guest/idler@0.0.1"}
    assert len(containers_of(docker_client, **labels)) == 1
    wait_until(loop, lambda: not containers_of(docker_client, **labels))
    assert invoker._slots == {}


@pytest.mark.docker
def test_memory_budget_evicts_the_least_recently_used(loop, make_invoker, docker_client, run_label):
    invoker = make_invoker(memory_budget_mb=512)
    for name in ("a", "b", "c"):
        outcome = loop.run_until_complete(invoker.run(job(name=name)))
        assert outcome.status_code == 0, outcome.result
    keys = {s.action_key for s in invoker._slots.values()}
    assert keys == {"guest/b@0.0.1", "guest/c@0.0.1"}
    assert (
        containers_of(docker_client, **{RUN_LABEL: run_label, ACTION_LABEL: "guest/a@0.0.1"}) == []
    )


@pytest.mark.docker
def test_prewarm_is_refilled_when_idle_containers_fill_the_budget(loop, make_invoker):
    """A prewarm container taken by an action comes back even when idle warm containers hold
    the whole budget: the least recently used idle one makes room."""
    invoker = make_invoker(memory_budget_mb=512, prewarm_count=1)

    def prewarmed():
        return [s for s in invoker._slots.values() if s.state == "prewarm"]

    wait_until(loop, lambda: len(prewarmed()) == 1)
    for name in ("a", "b"):  # the first takes the prewarm container, the second cold starts
        outcome = loop.run_until_complete(invoker.run(job(name=name)))
        assert outcome.status_code == 0, outcome.result
    wait_until(loop, lambda: len(prewarmed()) == 1)
    keys = {s.action_key for s in invoker._slots.values() if s.state == "idle"}
    assert keys == {"guest/b@0.0.1"}, "the least recently used idle container made room"


@pytest.mark.docker
def test_no_capacity_when_busy_containers_hold_the_budget(loop, make_invoker):
    invoker = make_invoker(memory_budget_mb=256, capacity_wait_s=0.5)
    slow = "import time\ndef main(args):\n    time.sleep(4)\n    return {}\n"

    async def both():
        first = asyncio.create_task(invoker.run(job(slow, name="busy")))
        await asyncio.sleep(1.5)  # the first one holds the only slot by now
        second = await invoker.run(job(name="late"))
        return await first, second

    first, second = loop.run_until_complete(both())
    assert first.status_code == 0, first.result
    assert second.status_code == 3
    assert second.result["error"].startswith("No capacity")
    assert "memory_budget_mb" in second.result["error"]


@pytest.mark.docker
def test_recycle_after_max_activations(loop, make_invoker):
    invoker = make_invoker(max_activations_per_container=2)
    hosts = [loop.run_until_complete(invoker.run(job())).result["host"] for _ in range(3)]
    assert hosts[0] == hosts[1] != hosts[2]


@pytest.mark.docker
def test_start_removes_orphans_and_stop_removes_ours(
    loop, make_invoker, docker_client, runtime_image, run_label
):
    owner = f"pool-{run_label}"  # the crashed server's: only its orphans are removed
    labels = engine.labels("server", **{RUN_LABEL: run_label, OWNER_LABEL: owner})
    orphan = docker_client.containers.run(
        runtime_image, detach=True, labels=labels, name=f"faas-orphan-{run_label}"
    )
    invoker = make_invoker(prewarm_count=1, owner=owner)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(orphan.id)
    wait_until(loop, lambda: any(s.state == "prewarm" for s in invoker._slots.values()))
    loop.run_until_complete(invoker.run(job()))
    # By owner: other modules' servers of this run may still have containers.
    wait_until(loop, lambda: len(containers_of(docker_client, **{OWNER_LABEL: owner})) == 2)
    loop.run_until_complete(invoker.stop())
    loop.run_until_complete(invoker.stop())  # idempotent
    assert containers_of(docker_client, **{OWNER_LABEL: owner}) == []


# ---- tenant isolation: forged markers and huge lines (issue 9) ----------------------------

FORGER = """
import sys

def main(args):
    if args.get("forge"):
        for stream in (sys.stdout, sys.stderr):
            print("before", file=stream)
            print("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX", file=stream)
            print("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX 0123456789abcdef0123456789abcdef",
                  file=stream)
            print("after", file=stream, flush=True)
    if args.get("huge"):
        sys.stdout.write("y" * args["huge"])  # no newline at all
        sys.stdout.flush()
    print("run", args["n"])
    print("err", args["n"], file=sys.stderr)
    return {"n": args["n"]}
"""


def own_lines(outcome):
    """(stream, message) pairs of an outcome's logs, without the runtime's start-up line."""
    return sorted(
        LINE_RE.match(line).groups() for line in outcome.logs if "faas runtime:" not in line
    )


@pytest.mark.docker
def test_forged_markers_do_not_shift_the_next_activations_logs(loop, make_invoker):
    invoker = make_invoker()
    forged = loop.run_until_complete(invoker.run(job(FORGER, params={"n": 1, "forge": True})))
    assert forged.status_code == 0, forged.result
    plain = SENTINEL
    guessed = f"{SENTINEL} 0123456789abcdef0123456789abcdef"
    expected = [
        (stream, message)
        for stream in ("stdout", "stderr")
        for message in ("before", plain, guessed, "after")
    ] + [("stdout", "run 1"), ("stderr", "err 1")]
    assert own_lines(forged) == sorted(expected)
    after = loop.run_until_complete(invoker.run(job(FORGER, params={"n": 2})))
    assert own_lines(after) == [("stderr", "err 2"), ("stdout", "run 2")]


@pytest.mark.docker
def test_a_huge_line_is_cut_and_the_next_activations_logs_are_right(loop, make_invoker):
    invoker = make_invoker()
    huge = 32 * 1024 * 1024
    start = time.monotonic()
    outcome = loop.run_until_complete(invoker.run(job(FORGER, params={"n": 1, "huge": huge})))
    elapsed = time.monotonic() - start
    assert outcome.status_code == 0, outcome.result
    assert outcome.logs[-1].endswith(
        "stderr: Logs were truncated because the total bytes size exceeds the limit "
        "of 10485760 bytes."
    )
    assert sum(len(line) for line in outcome.logs) < 11 * 1024 * 1024
    # The cold start, 32 MB through Docker's attach stream and the collector (linear time;
    # the old quadratic re-copy alone took 13 s) on a loaded 2-core machine.
    assert elapsed < 15, f"{elapsed:.1f} s"
    after = loop.run_until_complete(invoker.run(job(FORGER, params={"n": 2})))
    assert own_lines(after) == [("stderr", "err 2"), ("stdout", "run 2")]

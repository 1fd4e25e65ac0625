"""The ProcessInvoker: DockerInvoker's contract (test_pool.py) with runtime processes, no engine.

Every test drives ``ProcessInvoker.run`` directly with ActivationJobs. The runtime
environment is made once per session in a temporary c.FaaSEnvironments.root; it is
also the dependency environment of an empty requirements list, which lets the
blackbox tests run an image name that names it.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest
from support import activation_job
from traitlets import TraitError

from jupyter_faas import environments
from jupyter_faas.environments import FaaSEnvironments
from jupyter_faas.runtime.faas_protocol import RUNTIME_IMAGE, SENTINEL
from jupyter_faas.server.app import FunctionServer
from jupyter_faas.server.pool.process import ProcessInvoker, environment_tag
from jupyter_faas.site import FaaSSite

LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr): (.*)$")
TAG = "0123456789abcdef01234567"

PID = """
import os

def main(args):
    return {"pid": os.getpid(), "args": args}
"""


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def env_root(tmp_path_factory):
    """The session's environments root, shared with test_process_server (made once)."""
    root = tmp_path_factory.getbasetemp() / "process-envs"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def make_invoker(loop, env_root):
    """Start ProcessInvokers on the session's environments; stop them afterwards."""
    started = []

    def make(**traits) -> ProcessInvoker:
        invoker = ProcessInvoker(environments=FaaSEnvironments(root=str(env_root)), **traits)
        loop.run_until_complete(asyncio.wait_for(invoker.start(), 300))
        started.append(invoker)
        return invoker

    yield make
    for invoker in started:
        loop.run_until_complete(asyncio.wait_for(invoker.stop(), 30))


def job(code=PID, **settings):
    """An ActivationJob for ``/guest/<name>`` (support.activation_job) running ``code``."""
    return activation_job(code, **settings)


def run(loop, invoker, request, timeout=60.0):
    """One activation, bounded in time."""
    return loop.run_until_complete(asyncio.wait_for(invoker.run(request), timeout))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped is a zombie: gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(loop, check, timeout=15.0):
    """Let the event loop run (the reaper) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        loop.run_until_complete(asyncio.sleep(0.05))


def runtime_tag(env_root) -> str:
    """The environment tag of the runtime environment (the empty requirements list)."""
    environments = FaaSEnvironments(root=str(env_root))
    return environments.key("")[:24]


# ---- settings and helpers (no processes) -------------------------------------------------


@pytest.mark.parametrize(
    ("traits", "words"),
    [
        ({"memory_budget_mb": 64}, "below 128"),
        ({"idle_timeout_s": -1}, "0 or more"),
        ({"capacity_wait_s": -0.5}, "0 or more"),
        ({"start_timeout_s": 0}, "more than 0"),
        ({"max_activations_per_process": -1}, "at least 0"),
        ({"api_host": "127.0.0.1:3233"}, "not an http(s) URL"),
    ],
)
def test_bad_settings_are_refused_with_advice(traits, words):
    with pytest.raises(TraitError, match=re.escape(words)):
        ProcessInvoker(**traits)


def test_it_says_what_it_does_not_isolate():
    assert ProcessInvoker.isolates_namespaces is False
    assert "plain processes" in ProcessInvoker.notice
    assert "guest namespace only" in ProcessInvoker.notice
    assert "\n" not in ProcessInvoker.notice
    assert ProcessInvoker.python_image == RUNTIME_IMAGE


def test_api_host_default(monkeypatch):
    monkeypatch.delenv("FAAS_API_HOST", raising=False)
    assert ProcessInvoker().api_host == "http://127.0.0.1:3233"
    server = FunctionServer(port=4321, ip="0.0.0.0")
    assert ProcessInvoker(parent=server).api_host == "http://127.0.0.1:4321"
    server = FunctionServer(port=4321, ip="::1")
    assert ProcessInvoker(parent=server).api_host == "http://[::1]:4321"
    monkeypatch.setenv("FAAS_API_HOST", "http://127.0.0.1:4000")
    assert ProcessInvoker(parent=server).api_host == "http://127.0.0.1:4000"


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        (f"jupyter-faas/deps:{TAG}", TAG),
        (f"127.0.0.1:5000/team/deps:{TAG}", TAG),
        (f"registry.example.org:443/a/b/deps:{TAG}", TAG),
        (f" jupyter-faas/deps:{TAG} ", TAG),
        ("127.0.0.1:5000/deps", None),  # the colon is the registry's port
        (f"127.0.0.1:5000/{TAG}", None),
        (f"jupyter-faas/deps:{TAG.upper()}", None),
        (f"jupyter-faas/deps:{TAG}0", None),
        (f"jupyter-faas/deps@sha256:{'0' * 64}", None),
        ("python:3.11-slim", None),
        (RUNTIME_IMAGE, None),
        ("", None),
    ],
)
def test_environment_tag(image, tag):
    assert environment_tag(image) == tag


# ---- runs -------------------------------------------------------------------------------


def test_cold_start_then_warm_reuse(loop, make_invoker):
    invoker = make_invoker()
    first = run(loop, invoker, job(params={"n": 1}))
    second = run(loop, invoker, job(params={"n": 2}))
    assert first.status_code == 0, first.result
    assert first.result["args"] == {"n": 1}
    assert first.init_time_ms is not None
    assert second.status_code == 0, second.result
    assert second.result["pid"] == first.result["pid"]
    assert second.init_time_ms is None
    assert second.peak_memory_bytes and second.peak_memory_bytes > 1_000_000
    assert first.start_ms <= first.end_ms <= second.start_ms <= second.end_ms
    assert first.wait_time_ms >= 0 and second.wait_time_ms >= 0
    assert first.result["pid"] != os.getpid()


def test_activation_context_reaches_the_action(loop, make_invoker):
    invoker = make_invoker(api_host="http://127.0.0.1:3999")
    code = (
        "import os\n"
        "def main(args):\n"
        "    return {k: v for k, v in os.environ.items() if k.startswith(('__OW_', 'SECRET'))}\n"
    )
    request = job(code, name="ctx")
    request.api_key = "uuid:key"
    request.init_env["SECRET"] = "s3"
    outcome = run(loop, invoker, request)
    assert outcome.status_code == 0, outcome.result
    env = outcome.result
    assert env["__OW_API_HOST"] == "http://127.0.0.1:3999"
    assert env["__OW_API_KEY"] == "uuid:key"
    assert env["__OW_ACTIVATION_ID"] == request.activation_id
    assert env["__OW_ACTION_NAME"] == "/guest/ctx"
    assert env["__OW_ACTION_VERSION"] == "0.0.1"
    assert env["__OW_DEADLINE"] == str(request.deadline_ms)
    assert env["__OW_NAMESPACE"] == "guest"
    assert env["SECRET"] == "s3"  # an init parameter, delivered through /init's env


def test_site_settings_reach_the_process(loop, make_invoker, tmp_path):
    """The site's CA bundle is read where it lies on this machine (no container path)."""
    ca = tmp_path / "site-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    invoker = make_invoker(site=FaaSSite(ca_bundle=str(ca), https_proxy="http://127.0.0.1:3128"))
    code = (
        "import os\n"
        "def main(args):\n"
        "    return {'proxy': os.environ['HTTPS_PROXY'], 'ca': os.environ['SSL_CERT_FILE']}\n"
    )
    outcome = run(loop, invoker, job(code, name="site"))
    assert outcome.status_code == 0, outcome.result
    assert outcome.result == {"proxy": "http://127.0.0.1:3128", "ca": str(ca)}


def test_changed_action_key_gets_a_new_process(loop, make_invoker):
    invoker = make_invoker()
    old = run(loop, invoker, job(version="0.0.1"))
    new = run(loop, invoker, job(version="0.0.2"))
    assert old.status_code == new.status_code == 0
    assert new.result["pid"] != old.result["pid"]
    assert new.init_time_ms is not None


def test_application_error(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    return {'error': 'no such user', 'extra': 1}\n"
    outcome = run(loop, invoker, job(code))
    assert outcome.status_code == 1
    assert outcome.result == {"error": "no such user"}


def test_exception_is_a_developer_error_with_traceback_in_logs(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    raise ValueError('boom')\n"
    outcome = run(loop, invoker, job(code))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "ValueError: boom"}
    assert any("stderr: ValueError: boom" in line for line in outcome.logs)
    # The process survived the exception and stays warm.
    again = run(loop, invoker, job(code))
    assert again.status_code == 2 and again.init_time_ms is None


def test_result_that_is_not_a_dictionary_is_a_developer_error(loop, make_invoker):
    invoker = make_invoker()
    outcome = run(loop, invoker, job("def main(args):\n    return 'text'\n", name="text"))
    assert outcome.status_code == 2
    assert "did not return a dictionary or array" in outcome.result["error"]


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
    first = run(loop, invoker, job(code, params={"x": 1}))
    second = run(loop, invoker, job(code, params={"x": 2}))
    for outcome in (first, second):
        assert outcome.status_code == 0, outcome.result
        assert all(LINE_RE.match(line) for line in outcome.logs), outcome.logs
        assert not any(SENTINEL in line for line in outcome.logs)
    own = [LINE_RE.match(x).groups() for x in first.logs if "faas runtime:" not in x]
    assert [x for x in own if x[0] == "stdout"] == [("stdout", "loading"), ("stdout", "to out 1")]
    assert [x for x in own if x[0] == "stderr"] == [("stderr", "to err")]
    assert sorted(LINE_RE.match(x).groups() for x in second.logs) == [
        ("stderr", "to err"),
        ("stdout", "to out 2"),
    ]


def test_logs_over_the_limit_are_truncated(loop, make_invoker):
    invoker = make_invoker()
    code = "def main(args):\n    for i in range(3000):\n        print('x' * 1000)\n    return {}\n"
    outcome = run(loop, invoker, job(code, logs=1))
    assert outcome.status_code == 0
    assert len(outcome.logs) < 3000
    assert outcome.logs[-1].endswith(
        "stderr: Logs were truncated because the total bytes size exceeds the limit "
        "of 1048576 bytes."
    )


def test_timeout_kills_the_process(loop, make_invoker):
    invoker = make_invoker()
    code = (
        "import os, time\n"
        "def main(args):\n"
        "    print('sleeping in', os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
    )
    started = time.monotonic()
    outcome = run(loop, invoker, job(code, name="slow", timeout=1500))
    assert time.monotonic() - started < 15
    assert outcome.status_code == 2
    assert outcome.timed_out is True
    assert outcome.result == {"error": "The action exceeded its time limits of 1500 milliseconds."}
    sleeping = [line for line in outcome.logs if "stdout: sleeping in" in line]
    assert sleeping, outcome.logs
    pid = int(sleeping[0].rsplit(" ", 1)[-1])
    wait_until(loop, lambda: not pid_alive(pid), timeout=5)
    assert invoker._slots == {}


def test_timeout_during_init_says_so(loop, make_invoker):
    invoker = make_invoker()
    code = "import time\ntime.sleep(60)\ndef main(args):\n    return {}\n"
    outcome = run(loop, invoker, job(code, name="slowinit", timeout=1000))
    assert outcome.status_code == 2 and outcome.timed_out is True
    assert outcome.result == {
        "error": "The action exceeded its time limits of 1000 milliseconds during initialization."
    }


def test_out_of_memory_is_reported(loop, make_invoker):
    invoker = make_invoker()
    # Held for a while, so a watchdog that samples sees it as surely as a cgroup would.
    code = (
        "import time\n"
        "def main(args):\n"
        "    blob = bytearray(400 * 1024 * 1024)\n"
        "    time.sleep(3)\n"
        "    return {'n': len(blob)}\n"
    )
    outcome = run(loop, invoker, job(code, name="hog", memory=128))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "The action exhausted its memory and was aborted."}
    assert invoker._slots == {}


def test_peak_the_watchdog_missed_is_out_of_memory(loop, make_invoker, monkeypatch):
    """A peak between two watchdog samples still counts: the runtime reports its peak."""
    monkeypatch.setattr(environments.RuntimeProcess, "_over_limit", lambda self: None)
    invoker = make_invoker()
    code = "def main(args):\n    blob = bytearray(400 * 1024 * 1024)\n    return {'n': len(blob)}\n"
    outcome = run(loop, invoker, job(code, name="spike", memory=128))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "The action exhausted its memory and was aborted."}
    assert invoker._slots == {}


def test_idle_processes_cost_the_watchdog_no_proc_scans(loop, make_invoker):
    """Between activations a process is idle: the watchdog scans /proc only while one runs."""
    invoker = make_invoker()
    code = "import time\ndef main(args):\n    time.sleep(args.get('sleep', 0))\n    return {}\n"
    assert run(loop, invoker, job(code, name="quiet")).status_code == 0
    (slot,) = invoker._slots.values()
    assert slot.process.busy is False
    scans = environments._WATCHDOG.scans
    loop.run_until_complete(asyncio.sleep(1.5))
    assert environments._WATCHDOG.scans == scans
    # A second activation of a second: busy again, so sampled and scanned meanwhile.
    assert run(loop, invoker, job(code, name="quiet", params={"sleep": 1})).status_code == 0
    assert environments._WATCHDOG.scans > scans
    assert slot.process.busy is False and list(invoker._slots.values()) == [slot]


def test_an_idle_process_growing_past_its_limit_is_killed(loop, make_invoker):
    """An idle process's own memory is still read (once a second): a thread the activation
    left behind that allocates is caught, as a container's cgroup would catch it."""
    invoker = make_invoker()
    code = (
        "import threading, time\n"
        "def grow():\n"
        "    time.sleep(0.3)\n"
        "    blob = bytearray(400 * 1024 * 1024)\n"
        "    time.sleep(60)\n"
        "def main(args):\n"
        "    threading.Thread(target=grow, daemon=True).start()\n"
        "    return {}\n"
    )
    assert run(loop, invoker, job(code, name="grower", memory=128)).status_code == 0
    (slot,) = invoker._slots.values()
    wait_until(loop, lambda: slot.process.oom_killed and not slot.process.alive())


@pytest.mark.parametrize(
    "code",
    [
        "def main(args):\n    blob = bytearray(1 << 40)\n    return {'n': len(blob)}\n",
        "blob = bytearray(1 << 40)\ndef main(args):\n    return {}\n",
    ],
    ids=["run", "init"],
)
def test_allocation_refused_outright_is_out_of_memory(loop, make_invoker, code):
    """The address-space backstop makes a huge allocation raise MemoryError at once; it
    reads as the container's out-of-memory kill, and the process is dropped."""
    invoker = make_invoker()
    outcome = run(loop, invoker, job(code, name="greedy", memory=128))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "The action exhausted its memory and was aborted."}
    assert invoker._slots == {}


def test_action_exiting_during_init(loop, make_invoker):
    invoker = make_invoker()
    code = "import os\nos._exit(3)\ndef main(args):\n    return {}\n"
    outcome = run(loop, invoker, job(code, name="quitter"))
    assert outcome.status_code == 2
    assert outcome.result == {"error": "The action did not initialize and exited unexpectedly."}


def test_action_exiting_during_run(loop, make_invoker):
    invoker = make_invoker()
    code = "import os\ndef main(args):\n    print('bye', flush=True)\n    os._exit(3)\n"
    outcome = run(loop, invoker, job(code, name="leaver"))
    assert outcome.status_code == 2
    assert outcome.result == {
        "error": "The action did not produce a valid response and exited unexpectedly."
    }
    assert any(line.endswith("stdout: bye") for line in outcome.logs), outcome.logs


def test_init_refused_is_a_developer_error_and_drops_the_process(loop, make_invoker):
    invoker = make_invoker()
    outcome = run(loop, invoker, job("def main(args:\n", name="broken"))
    assert outcome.status_code == 2
    assert "SyntaxError" in outcome.result["error"]
    assert invoker._slots == {}


def test_blackbox_image_naming_a_dependency_environment(loop, make_invoker, env_root):
    invoker = make_invoker()
    image = f"127.0.0.1:5000/faas/deps:{runtime_tag(env_root)}"
    outcome = run(loop, invoker, job(PID, name="deps", kind="blackbox", image=image))
    assert outcome.status_code == 0, outcome.result
    assert outcome.result["args"] == {"x": 1}


def test_native_action_on_the_runtime(loop, make_invoker):
    invoker = make_invoker()
    script = '#!/bin/sh\necho "native log"\necho \'{"native": true}\'\n'
    request = job(script, name="native", kind="blackbox", image=RUNTIME_IMAGE)
    outcome = run(loop, invoker, request)
    assert outcome.status_code == 0, outcome.result
    assert outcome.result == {"native": True}
    assert any(line.endswith("stdout: native log") for line in outcome.logs)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("python:3.11-slim", "can only run images built by jupyter-faas in container-less mode"),
        (f"jupyter-faas/deps@sha256:{'0' * 64}", "can only run images built by jupyter-faas"),
        (f"jupyter-faas/deps:{TAG}", f"The dependency environment {TAG} of image"),
        ("", "names no image"),
    ],
)
def test_image_it_cannot_run_is_a_developer_error_with_advice(
    loop, make_invoker, env_root, image, words
):
    invoker = make_invoker()
    outcome = run(loop, invoker, job(PID, name="ghost", kind="blackbox", image=image))
    assert outcome.status_code == 2
    error = outcome.result["error"]
    assert words in error
    assert "c.FaaSEnvironments.root" in error and str(env_root) in error
    assert "invoker_class = 'docker'" in error
    assert invoker._slots == {}


def test_unknown_kind_is_refused(loop, make_invoker):
    invoker = make_invoker()
    outcome = run(loop, invoker, job("x", kind="nodejs:20"))
    assert outcome.status_code == 2
    assert "cannot run on this function server" in outcome.result["error"]


# ---- pool upkeep ------------------------------------------------------------------------


def test_idle_reaper_kills_idle_processes(loop, make_invoker):
    invoker = make_invoker(idle_timeout_s=0.5)
    outcome = run(loop, invoker, job(name="idler"))
    assert outcome.status_code == 0
    pid = outcome.result["pid"]
    assert pid_alive(pid)
    wait_until(loop, lambda: not invoker._slots and not pid_alive(pid))


def test_reaper_forgets_a_process_that_died_while_idle(loop, make_invoker):
    invoker = make_invoker(idle_timeout_s=0.4)
    first = run(loop, invoker, job(name="victim"))
    (slot,) = invoker._slots.values()
    invoker.idle_timeout_s = 0  # only death counts now; the reaper keeps its pace
    slot.process.kill()
    wait_until(loop, lambda: not invoker._slots)
    second = run(loop, invoker, job(name="victim"))
    assert second.status_code == 0 and second.init_time_ms is not None
    assert second.result["pid"] != first.result["pid"]


def test_memory_budget_evicts_the_least_recently_used(loop, make_invoker):
    invoker = make_invoker(memory_budget_mb=512)
    pids = {}
    for name in ("a", "b", "c"):
        outcome = run(loop, invoker, job(name=name))
        assert outcome.status_code == 0, outcome.result
        pids[name] = outcome.result["pid"]
    keys = {s.action_key for s in invoker._slots.values()}
    assert keys == {"guest/b@0.0.1", "guest/c@0.0.1"}
    wait_until(loop, lambda: not pid_alive(pids["a"]), timeout=5)
    assert invoker._reserved_mb == 512


def test_no_capacity_when_busy_processes_hold_the_budget(loop, make_invoker):
    invoker = make_invoker(memory_budget_mb=256, capacity_wait_s=0.5)
    slow = "import time\ndef main(args):\n    time.sleep(4)\n    return {}\n"

    async def both():
        first = asyncio.create_task(invoker.run(job(slow, name="busy")))
        await asyncio.sleep(1.5)  # the first one holds the whole budget by now
        second = await invoker.run(job(name="late"))
        return await first, second

    first, second = loop.run_until_complete(asyncio.wait_for(both(), 60))
    assert first.status_code == 0, first.result
    assert second.status_code == 3
    assert second.result["error"].startswith("No capacity")
    assert "c.ProcessInvoker.memory_budget_mb" in second.result["error"]


def test_action_bigger_than_the_budget_has_no_capacity(loop, make_invoker):
    invoker = make_invoker(memory_budget_mb=256)
    outcome = run(loop, invoker, job(name="huge", memory=512))
    assert outcome.status_code == 3
    assert outcome.result["error"].startswith("No capacity: the action needs 512 MB")


def test_waiting_activation_gets_the_memory_once_released(loop, make_invoker):
    invoker = make_invoker(memory_budget_mb=256, capacity_wait_s=20)
    slow = "import time\ndef main(args):\n    time.sleep(1)\n    return {}\n"

    async def both():
        first = asyncio.create_task(invoker.run(job(slow, name="busy")))
        await asyncio.sleep(0.5)
        second = await invoker.run(job(name="patient"))
        return await first, second

    first, second = loop.run_until_complete(asyncio.wait_for(both(), 60))
    assert first.status_code == 0, first.result
    assert second.status_code == 0, second.result
    assert second.wait_time_ms >= 200


def test_recycle_after_max_activations(loop, make_invoker):
    invoker = make_invoker(max_activations_per_process=2)
    pids = [run(loop, invoker, job()).result["pid"] for _ in range(3)]
    assert pids[0] == pids[1] != pids[2]


def test_stop_kills_every_process_and_is_idempotent(loop, make_invoker):
    invoker = make_invoker()
    pids = [run(loop, invoker, job(name=name)).result["pid"] for name in ("one", "two")]
    assert all(pid_alive(pid) for pid in pids)
    loop.run_until_complete(invoker.stop())
    loop.run_until_complete(invoker.stop())
    wait_until(loop, lambda: not any(pid_alive(pid) for pid in pids), timeout=5)
    late = run(loop, invoker, job(name="late"))
    assert late.status_code == 3 and "shutting down" in late.result["error"]


def test_stop_during_an_activation_ends_it_with_an_outcome(loop, make_invoker):
    invoker = make_invoker()
    code = (
        "import os, time\ndef main(args):\n    print(os.getpid(), flush=True)\n    time.sleep(30)\n"
    )

    async def stop_midway():
        running = asyncio.create_task(invoker.run(job(code, name="busy")))
        await asyncio.sleep(1.0)
        (slot,) = invoker._slots.values()
        await invoker.stop()
        return slot.process.pid, await running

    pid, outcome = loop.run_until_complete(asyncio.wait_for(stop_midway(), 30))
    assert outcome.status_code == 3
    assert "stopped during the activation" in outcome.result["error"]
    wait_until(loop, lambda: not pid_alive(pid), timeout=5)

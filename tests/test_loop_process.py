"""The builder contract on both builders, and the container-less mode's own parts.

The contract tests (build and reuse by key, a test run with logs and peak memory,
a code-only edit on the warm sandbox, exceptions, bad results, timeouts, memory
exhaustion, syntax and build errors) run against ``ProcessBuilder`` and, marked
``docker``, ``DockerBuilder``: both must read the same to a scientist. Real
processes, a real pip and, for Docker, the real engine; environments live under
``tmp_path``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support import unique_requirements

from jupyter_faas.actionclient import ContainerGone
from jupyter_faas.builders.docker import DockerBuilder
from jupyter_faas.builders.interface import FaaSBuilder
from jupyter_faas.builders.process import ProcessBuilder
from jupyter_faas.builders.sandbox import oom_message, timeout_message
from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.environments import FaaSEnvironments, RuntimeProcess, address_space_limit
from jupyter_faas.errors import BuildError
from jupyter_faas.server.pool.logs import RUNTIME_STARTED
from jupyter_faas.site import FaaSSite

CODE = """
def main(args):
    print("threshold", args["threshold"])
    return {"n": sum(v > args["threshold"] for v in [1, 2, 3, 4, 5]), "scale": SCALE}
"""


def make_bundle(path: Path, code: str, requirements=(), name="peaks", **meta) -> Bundle:
    return Bundle.write(path / name, FunctionMetadata(name=name, **meta), code, list(requirements))


def process_builder(root: Path) -> ProcessBuilder:
    made = ProcessBuilder()
    made.environments.root = str(root)
    return made


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def builder(request, tmp_path):
    """Each builder in turn, with nothing outside this test run touched."""
    if request.param == "process":
        made: FaaSBuilder = process_builder(tmp_path / "envs")
    else:
        made = DockerBuilder(extra_labels=request.getfixturevalue("test_labels"))
        made.images.base_image = request.getfixturevalue("base_image")
        made.registry.url = request.getfixturevalue("registry")
    yield made
    made.close()


@pytest.fixture
def processes(tmp_path):
    """A ProcessBuilder alone, for what only the container-less mode has."""
    made = process_builder(tmp_path / "envs")
    yield made
    made.close()


# -- the contract, on both builders ----------------------------------------------------------


def test_rebuild_with_same_inputs_reuses_the_environment(builder, tmp_path):
    bundle = make_bundle(tmp_path, CODE.replace("SCALE", "1"), unique_requirements())
    events = []
    first = builder.build(bundle, events.append)
    second = builder.build(bundle, events.append)
    assert not first.reused and second.reused
    assert first.image_id == second.image_id and first.key == second.key
    assert first.ref == second.ref == builder.images.local_ref(first.key)
    assert any(e["message"].startswith("Building") for e in events)
    assert events[-1]["message"].startswith("Reusing") and events[-1]["progress"] == 1.0


def test_run_with_logs_and_memory_then_code_only_edit_reuses_the_sandbox(builder, tmp_path):
    requirements = unique_requirements()
    bundle = make_bundle(tmp_path, "SCALE = 1\n" + CODE, requirements)
    image = builder.build(bundle)
    first = builder.test(bundle, image, {"threshold": 2})
    assert first.status == "success", first
    assert first.result == {"n": 3, "scale": 1}
    assert first.logs == ["threshold 2"], "plain lines, no timestamps or markers"
    assert first.peak_memory_bytes and first.peak_memory_bytes > 1_000_000
    assert not first.container_reused

    edited = make_bundle(tmp_path, "SCALE = 7\n" + CODE, requirements)
    again = builder.build(edited)
    second = builder.test(edited, again, {"threshold": 4})
    assert again.reused and again.image_id == image.image_id
    assert second.container_reused
    assert second.result == {"n": 1, "scale": 7}
    assert second.logs == ["threshold 4"]


def test_exception_is_reported_and_the_sandbox_survives(builder, tmp_path):
    bundle = make_bundle(
        tmp_path, "def main(args):\n    return {'x': 1 / args['d']}\n", unique_requirements()
    )
    image = builder.build(bundle)
    failed = builder.test(bundle, image, {"d": 0})
    assert failed.status == "error"
    assert "ZeroDivisionError" in failed.result["error"]
    assert any("Traceback" in line for line in failed.logs)
    assert any("ZeroDivisionError" in line for line in failed.logs)
    fine = builder.test(bundle, image, {"d": 4})
    assert fine.ok and fine.result == {"x": 0.25} and fine.container_reused


def test_result_over_the_configured_limit_is_an_application_error(builder, tmp_path):
    """The local test applies the server's result limit (OpenWhisk: 1 MB), set per builder."""
    code = "def main(args):\n    return {'s': 'x' * args['n']}\n"
    bundle = make_bundle(tmp_path, code, unique_requirements())
    image = builder.build(bundle)
    assert builder.max_result_bytes == 1024 * 1024  # OpenWhisk's default
    big = builder.test(bundle, image, {"n": 1024 * 1024})
    assert big.status == "application error", big.status
    assert big.result["error"].startswith(
        "The action produced a response that exceeded the allowed length: "
    )
    assert f"> {1024 * 1024} bytes" in big.result["error"]
    builder.max_result_bytes = 2000
    small = builder.test(bundle, image, {"n": 2500})
    assert small.status == "application error" and "> 2000 bytes" in small.result["error"]
    fits = builder.test(bundle, image, {"n": 100})
    assert fits.ok and fits.result == {"s": "x" * 100}


def test_data_files_travel_with_the_code(builder, tmp_path):
    """Notebook-local files ride in the /init zip; handler.py reads them beside itself."""
    source = tmp_path / "notebook" / "template.txt"
    source.parent.mkdir()
    source.write_text("hello from a file")
    code = (
        "import os\n\nos.chdir(os.path.dirname(os.path.abspath(__file__)))\n\n"
        "def main(args):\n    return {'text': open('data/template.txt').read()}\n"
    )
    bundle = Bundle.write(
        tmp_path / "reader",
        FunctionMetadata(name="reader"),
        code,
        unique_requirements(),
        data_files={"data/template.txt": str(source)},
    )
    run = builder.test(bundle, builder.build(bundle), {})
    assert run.status == "success", run
    assert run.result == {"text": "hello from a file"}


def test_result_that_is_not_json_is_an_error(builder, tmp_path):
    code = "def main(args):\n    return {'when': {1, 2}} if args.get('set') else 'text'\n"
    bundle = make_bundle(tmp_path, code, unique_requirements())
    image = builder.build(bundle)
    run = builder.test(bundle, image, {"set": True})
    assert run.status == "error"
    assert "not JSON-serialisable" in run.result["error"]
    assert "result['when'] has type set" in run.result["error"]
    run = builder.test(bundle, image, {})
    assert run.status == "error" and "did not return a dictionary" in run.result["error"]
    assert run.container_reused


def test_timeout_stops_the_sandbox(builder, tmp_path):
    code = "import time\n\ndef main(args):\n    time.sleep(args['s'])\n    return {}\n"
    bundle = make_bundle(tmp_path, code, unique_requirements(), timeout_s=1)
    image = builder.build(bundle)
    start = time.monotonic()
    run = builder.test(bundle, image, {"s": 30})
    assert time.monotonic() - start < 15
    assert run.status == "timeout"
    assert run.result == {"error": timeout_message(1)}
    after = builder.test(bundle, image, {"s": 0})
    assert after.ok and not after.container_reused, "a fresh sandbox replaces the stopped one"


def test_memory_exhaustion_is_reported_as_such(builder, tmp_path):
    code = (
        "def main(args):\n"
        "    blocks = [bytearray(50 * 2**20) for _ in range(args['n'])]\n"
        "    return {'n': len(blocks)}\n"
    )
    bundle = make_bundle(tmp_path, code, unique_requirements(), memory_mb=128)
    image = builder.build(bundle)
    run = builder.test(bundle, image, {"n": 12})
    assert run.status == "out of memory", run
    assert run.result == {"error": oom_message(128)}
    assert "exhausted its memory limit of 128 MB" in run.result["error"]
    after = builder.test(bundle, image, {"n": 1})
    assert after.ok and after.result == {"n": 1} and not after.container_reused


def test_syntax_error_is_reported_with_its_line(builder, tmp_path):
    bundle = make_bundle(tmp_path, "def main(args):\n    return {\n", unique_requirements())
    image = builder.build(bundle)
    run = builder.test(bundle, image, {})
    assert run.status == "error"
    assert run.result["error"].startswith("SyntaxError in the action code, line ")
    assert "never closed" in run.result["error"]
    fixed = make_bundle(tmp_path, "def main(args):\n    return {'ok': True}\n")
    assert builder.test(fixed, image, {}).result == {"ok": True}


def test_build_error_keeps_the_log_and_says_what_to_do(builder, tmp_path):
    bundle = make_bundle(
        tmp_path, "def main(args):\n    return {}\n", unique_requirements("numpy==0.0.0")
    )
    with pytest.raises(BuildError) as failure:
        builder.build(bundle)
    assert "numpy==0.0.0" in str(failure.value)
    assert "version pin" in str(failure.value)
    assert (bundle.path / "handler.py").exists(), "the bundle is kept"


# -- the container-less mode -----------------------------------------------------------------


def test_environment_layout_push_and_published(processes, tmp_path):
    bundle = make_bundle(tmp_path, "SCALE = 1\n" + CODE, unique_requirements())
    assert processes.notice.startswith("container-less mode")
    image = processes.build(bundle)
    path = Path(image.image_id)
    assert path == processes.environments.path(image.key) == tmp_path / "envs" / image.key[:24]
    assert processes.environments.find(image.key[:24]) == path
    assert {p.name for p in path.iterdir()} == {
        "venv",
        "runtime.py",
        "faas_protocol.py",
        "requirements.txt",
        "ready",
    }
    assert not list(path.parent.glob(".*.build-*")), "no temporary folder is left"
    assert processes.environments.find("../" + image.key[:21]) is None
    assert processes.environments.find("0" * 24) is None

    events = []
    pushed = processes.push(image, events.append)
    assert pushed.ref == image.ref and pushed.digest == f"env:{image.key[:24]}"
    assert str(path) in events[-1]["message"] and events[-1]["progress"] == 1.0
    assert processes.published(image) == pushed
    other = processes.environments.key("# never built")
    assert processes.published(type(image)(image.ref, other, "", False)) is None


def test_numpy_environment_runs_within_256_mb(processes, tmp_path):
    """A real pip install; numpy imports under the address-space backstop of a 256 MB limit."""
    code = (
        "import numpy as np\n\n"
        "def main(args):\n"
        "    a = np.ones((500, 500))\n"
        "    return {'sum': float((a @ a).sum()), 'version': np.__version__}\n"
    )
    bundle = make_bundle(tmp_path, code, unique_requirements("numpy"), memory_mb=256)
    events = []
    start = time.perf_counter()
    image = processes.build(bundle, events.append)
    built_in = time.perf_counter() - start
    assert any("numpy" in e["message"] and e["progress"] is None for e in events), events
    venv = Path(image.image_id) / "venv"
    script = (venv / "bin" / "pip").read_text()
    assert f"{venv}/bin/python" in script and ".build-" not in script, (
        "console scripts name the environment's final path, not the temporary one"
    )
    run = processes.test(bundle, image, {})
    assert run.ok, run
    assert run.result["sum"] == 500.0**3
    assert address_space_limit(256) > 2 * 2**30
    print(f"numpy environment built in {built_in:.1f} s")


def test_memory_error_under_the_backstop_is_out_of_memory(processes, tmp_path):
    code = "def main(args):\n    return {'n': len(bytearray(2**40))}\n"
    bundle = make_bundle(tmp_path, code, unique_requirements(), memory_mb=128)
    image = processes.build(bundle)
    run = processes.test(bundle, image, {})
    assert run.status == "out of memory", run
    assert run.result == {"error": oom_message(128)}


def test_memory_of_native_children_counts(tmp_path):
    """A native executable runs as the runtime's child; the watchdog adds up the group."""
    environments = FaaSEnvironments(root=str(tmp_path / "envs"))
    _, path, _ = environments.ensure("", FaaSSite())
    process = RuntimeProcess.start(
        path, memory_mb=128, env={}, allow_reinit=False, name="native-oom"
    )
    try:
        script = (
            "#!/bin/sh\n"
            f"exec {path}/venv/bin/python -c 'import time; b = bytearray(400 * 2**20); "
            "time.sleep(20)'\n"
        )
        assert process.action.init({"code": script, "main": "main"}, timeout=10).status == 200
        start = time.monotonic()
        with pytest.raises(ContainerGone):
            process.action.run({"value": {}}, timeout=15)
        assert time.monotonic() - start < 10
        assert process.oom_killed
    finally:
        process.kill()


def test_runtime_process_lifecycle(tmp_path):
    environments = FaaSEnvironments(root=str(tmp_path / "envs"))
    _, path, _ = environments.ensure("", FaaSSite())
    process = RuntimeProcess.start(
        path, memory_mb=128, env={"GREETING": "hi"}, allow_reinit=False, name="life/cycle"
    )
    code = (
        "import os, resource, subprocess\n\n"
        "def main(args):\n"
        "    child = subprocess.Popen(['sleep', '60'])\n"
        "    return {k: os.environ.get(k) for k in ('GREETING', 'FAAS_BIND', 'FAAS_ALLOW_REINIT',\n"
        "            'PYTHONUNBUFFERED')} | {'child': child.pid, 'cwd': os.getcwd(),\n"
        "            'core': resource.getrlimit(resource.RLIMIT_CORE)[0]}\n"
    )
    try:
        assert process.alive() and process.returncode is None
        process.logs.discard(RUNTIME_STARTED)  # the runtime's line, even if it comes late
        assert process.action.init({"code": code, "main": "main"}, timeout=10).status == 200
        assert process.action.init({"code": code}, timeout=10).status == 403, "no re-init"
        run = process.action.run({"value": {}}, timeout=10)
        assert run.status == 200, run.text
        body = run.body
        assert body["GREETING"] == "hi" and body["FAAS_BIND"] == "127.0.0.1"
        assert body["FAAS_ALLOW_REINIT"] is None and body["PYTHONUNBUFFERED"] == "1"
        assert body["core"] == 0
        folder = Path(body["cwd"])
        assert folder.is_dir() and (folder / ".lock").exists()
        assert process.logs.take(2, 2**20) == [], "nothing printed since, markers stripped"
    finally:
        process.kill()
    process.kill()  # idempotent
    assert not process.alive() and process.returncode is not None
    assert not folder.exists(), "the private folder is removed"
    deadline = time.monotonic() + 5
    while _running(body["child"]):
        assert time.monotonic() < deadline, "the whole process group is killed"
        time.sleep(0.02)


def test_start_failure_says_why(tmp_path):
    environments = FaaSEnvironments(root=str(tmp_path / "envs"))
    _, path, _ = environments.ensure("", FaaSSite())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "venv").symlink_to(path / "venv")
    (broken / "runtime.py").write_text("raise SystemExit('no runtime here')\n")
    with pytest.raises(ContainerGone) as failure:
        RuntimeProcess.start(broken, memory_mb=128, env={}, allow_reinit=False, name="broken")
    assert "exited with code 1" in str(failure.value)
    assert "no runtime here" in str(failure.value)


def test_concurrent_builds_of_one_environment_build_once(tmp_path):
    environments = FaaSEnvironments(root=str(tmp_path / "envs"))
    requirements = "\n".join(unique_requirements())
    results, errors = [], []

    def ensure():
        try:
            results.append(environments.ensure(requirements, FaaSSite()))
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=ensure) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 3
    assert len({(key, path) for key, path, _ in results}) == 1
    assert sorted(reused for _, _, reused in results) == [False, True, True]


def test_site_settings_reach_test_processes(processes, tmp_path):
    processes.site.https_proxy = "http://127.0.0.1:3128"
    code = (
        "import os\n\ndef main(args):\n"
        "    return {k: os.environ.get(k) for k in ('HTTPS_PROXY', 'PIP_CERT', '__OW_API_HOST')}\n"
    )
    bundle = make_bundle(tmp_path, code, unique_requirements())
    run = processes.test(bundle, processes.build(bundle), {})
    assert run.result == {
        "HTTPS_PROXY": "http://127.0.0.1:3128",
        "PIP_CERT": processes.site.ca_bundle or None,
        "__OW_API_HOST": processes.api_host,
    }


def test_key_depends_on_interpreter_requirements_and_runtime(tmp_path):
    environments = FaaSEnvironments(root=str(tmp_path))
    assert environments.key("six\nnumpy\n") == environments.key("numpy\n\nsix")
    assert environments.key("six") != environments.key("numpy")
    assert len(environments.path(environments.key("six")).name) == 24


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

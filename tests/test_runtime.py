"""Black-box HTTP tests of the action runtime (jupyter_faas/runtime/proxy.py).

Each test starts proxy.py as a real subprocess on a free 127.0.0.1 port and talks the
OpenWhisk, OpenFaaS and Knative contracts to it; the class marked ``docker`` runs it inside
a container made from the base image, as function images do.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import free_port

from jupyter_faas import engine
from jupyter_faas.actionclient import ActionClient
from jupyter_faas.errors import FaaSError
from jupyter_faas.runtime import PROXY_PATH, RUNTIME_FILES, RUNTIME_VERSION

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
BASE_IMAGE = "jupyter-faas-base:bookworm"
RUN_ID = uuid.uuid4().hex[:12]
TIMEOUT = 30


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def zip_b64(files: dict[str, str]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


@dataclass
class Proxy:
    """One running proxy.py subprocess, with its stdout/stderr captured in files."""

    proc: subprocess.Popen
    port: int
    folder: Path

    def __post_init__(self):
        self.client = ActionClient("127.0.0.1", self.port)

    @property
    def stdout(self) -> str:
        return (self.folder / "stdout.log").read_text()

    @property
    def stderr(self) -> str:
        return (self.folder / "stderr.log").read_text()

    def init(self, source: str | None = None, **value):
        if source is not None:
            value["code"] = source
        return self.client.init(value, TIMEOUT)

    def run(self, value=None, **activation):
        return self.client.run({"value": {} if value is None else value, **activation}, TIMEOUT)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        """One request on a fresh connection: ``(status, headers, parsed JSON or text)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read().decode()
        finally:
            conn.close()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, dict(resp.getheaders()), json.loads(raw) if is_json else raw

    def stop(self):
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def start_proxy(tmp_path):
    """Start proxy.py with extra env; ``handler=`` bakes a handler.py into the function dir."""
    started: list[Proxy] = []

    def start(handler: str | None = None, **env: str) -> Proxy:
        folder = tmp_path / f"proxy{len(started)}"
        (folder / "function").mkdir(parents=True)
        if handler is not None:
            (folder / "function" / "handler.py").write_text(code(handler))
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("__OW_", "FAAS_"))}
        full_env = {
            **base,
            "PORT": str(port),
            "FAAS_BIND": "127.0.0.1",
            "FAAS_FUNCTION_DIR": str(folder / "function"),
            "FAAS_ACTION_DIR": str(folder / "action"),
            "FAAS_LOCK_FILE": str(folder / "lock"),
            **env,
        }
        with open(folder / "stdout.log", "wb") as out, open(folder / "stderr.log", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, PROXY_PATH], env=full_env, stdout=out, stderr=err
            )
        proxy = Proxy(proc, port, folder)
        started.append(proxy)
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert proc.poll() is None, f"proxy.py exited:\n{proxy.stderr}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proxy
            except OSError:
                assert time.monotonic() < deadline, f"proxy.py did not listen:\n{proxy.stderr}"
                time.sleep(0.02)

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(start_proxy) -> Proxy:
    return start_proxy()


HELLO = """
def main(args):
    return {"greeting": "hello " + args.get("name", "world")}
"""


def test_runtime_version_is_a_short_hash():
    assert len(RUNTIME_VERSION) == 12 and int(RUNTIME_VERSION, 16) >= 0


@pytest.mark.parametrize(
    "source, value, expected",
    [
        (HELLO, {"name": "Ada"}, {"greeting": "hello Ada"}),
        ("def main(args):\n    return args[::-1]\n", [1, 2, 3], [3, 2, 1]),
        ("def main(args):\n    return [len(args)]\n", {"a": 1, "b": 2}, [2]),
    ],
)
def test_init_then_run(proxy, source, value, expected):
    assert proxy.init(source).status == 200
    resp = proxy.run(value)
    assert (resp.status, resp.body) == (200, expected)


def test_activation_and_init_env_visible_and_not_leaked(proxy):
    source = """
    import os
    def main(args):
        return {k: os.environ.get(k) for k in
                ["__OW_ACTIVATION_ID", "__OW_API_KEY", "__OW_DEADLINE", "__OW_NAMESPACE", "GREETING", "N"]}
    """
    assert proxy.init(code(source), env={"GREETING": "hi", "N": 3}).status == 200
    resp = proxy.run(activation_id="a1", api_key="u:k", deadline="1717000060000", namespace="guest")
    assert resp.body == {
        "__OW_ACTIVATION_ID": "a1",
        "__OW_API_KEY": "u:k",
        "__OW_DEADLINE": "1717000060000",
        "__OW_NAMESPACE": "guest",
        "GREETING": "hi",
        "N": "3",
    }
    second = proxy.run(activation_id="a2").body
    assert second["__OW_ACTIVATION_ID"] == "a2" and second["__OW_API_KEY"] is None


def test_code_less_init_then_run_says_no_code(proxy):
    assert proxy.request("GET", "/_/health")[0] == 503
    assert proxy.init().status == 200
    resp = proxy.run({"x": 1})
    assert resp.status == 502
    assert resp.body == {"error": "The action has no code: call /init with code first."}


def test_second_init_is_refused(proxy):
    assert proxy.init(HELLO).status == 200
    resp = proxy.init("def main(a):\n    return {'v': 2}\n")
    assert resp.status == 403
    assert resp.body == {"error": "Cannot initialize the action more than once."}
    assert proxy.run().body == {"greeting": "hello world"}


def test_reinit_allowed_replaces_code_and_keeps_modules(start_proxy):
    proxy = start_proxy(FAAS_ALLOW_REINIT="1")
    assert (
        proxy.init("import json\ndef main(a):\n    return {'v': 1, 'id': id(json)}\n").status == 200
    )
    first = proxy.run().body
    assert (
        proxy.init("import json\ndef main(a):\n    return {'v': 2, 'id': id(json)}\n").status == 200
    )
    second = proxy.run().body
    assert (first["v"], second["v"]) == (1, 2)
    assert first["id"] == second["id"], "library modules should stay imported across re-inits"


@pytest.mark.parametrize(
    "value, message",
    [
        (
            {"code": "x = 1\ndef main(args)\n    return {}\n"},
            "SyntaxError in the action code, line 2:",
        ),
        (
            {"code": "def handle(a):\n    return {}\n"},
            "The action code defines no function 'main'.",
        ),
        ({"code": HELLO, "main": "handle"}, "The action code defines no function 'handle'."),
        ({"code": "import json\nraise RuntimeError('boom')\n"}, "RuntimeError: boom"),
        ({"code": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==", "binary": True}, "holds none of 'exec'"),
        ({"code": "not base64 at all!", "binary": True}, "not a base64-encoded zip"),
    ],
    ids=["syntax", "no-main", "no-named-main", "module-raises", "empty-zip", "bad-zip"],
)
def test_failed_init_says_why_and_prints_sentinels(proxy, value, message):
    resp = proxy.client.init(value, TIMEOUT)
    assert resp.status == 502
    assert message in resp.body["error"]
    assert proxy.stdout.count(SENTINEL) == 1 and proxy.stderr.count(SENTINEL) == 1


def test_module_exception_traceback_goes_to_stderr(proxy):
    proxy.init("import json\nraise RuntimeError('boom')\n")
    assert "Traceback" in proxy.stderr and "RuntimeError: boom" in proxy.stderr


def test_named_main(proxy):
    assert proxy.init("def handle(args):\n    return {'ok': True}\n", main="handle").status == 200
    assert proxy.run().body == {"ok": True}


def test_exception_in_function_is_502_and_server_keeps_running(proxy):
    proxy.init("def main(args):\n    return {'q': 1 / args['d']}\n")
    resp = proxy.run({"d": 0})
    assert resp.status == 502
    assert resp.body == {"error": "ZeroDivisionError: division by zero"}
    assert "Traceback (most recent call last)" in proxy.stderr
    assert "return {'q': 1 / args['d']}" in proxy.stderr, "traceback should show the source line"
    assert proxy.run({"d": 4}).body == {"q": 0.25}


@pytest.mark.parametrize(
    "returned, message",
    [
        ("{'when': datetime.date(2020, 1, 1)}", "value at result['when'] has type date"),
        ("{'a': [1, {'b': {1, 2}}]}", "value at result['a'][1]['b'] has type set"),
        ("{'x': float('nan')}", "not JSON-serialisable"),
        ("42", "did not return a dictionary or array (it returned int)"),
        ("None", "(it returned NoneType)"),
        ("'text'", "(it returned str)"),
    ],
)
def test_bad_results_are_explained(proxy, returned, message):
    proxy.init(f"import datetime\ndef main(args):\n    return {returned}\n")
    resp = proxy.run()
    assert resp.status == 502
    assert message in resp.body["error"]


def test_numpy_result_names_ndarray(proxy):
    pytest.importorskip("numpy")
    proxy.init("import numpy as np\ndef main(args):\n    return {'arr': np.arange(3)}\n")
    resp = proxy.run()
    assert resp.status == 502
    assert resp.body["error"] == (
        "The action's result is not JSON-serialisable: value at result['arr'] has type ndarray; "
        "convert it (e.g. .tolist(), str()) before returning."
    )


@pytest.mark.parametrize("value", ["text", 3, None])
def test_non_dict_value_is_400(proxy, value):
    proxy.init(HELLO)
    resp = proxy.client.run({"value": value}, TIMEOUT)
    assert resp.status == 400
    assert resp.body == {
        "error": "The action did not receive a dictionary or array as an argument."
    }


def test_application_error_is_200(proxy):
    proxy.init("def main(args):\n    return {'error': 'bad input'}\n")
    resp = proxy.run()
    assert (resp.status, resp.body) == (200, {"error": "bad input"})


def test_sentinels_follow_the_function_output_after_every_run(proxy):
    proxy.init(
        "import sys\ndef main(args):\n"
        "    print('out', args['n'])\n    print('err', args['n'], file=sys.stderr)\n"
        "    return {'n': 1 / args['n']}\n"
    )
    for n in (1, 0, 2):
        proxy.run({"n": n})
    proxy.client.run({"value": "bad"}, TIMEOUT)
    proxy.request("POST", "/run", b"{not json")
    out, err = proxy.stdout, proxy.stderr
    assert out.count(SENTINEL) == 5 and err.count(SENTINEL) == 5
    for stream, prefix in ((out, "out"), (err, "err")):
        blocks = stream.split(SENTINEL)
        for block, n in zip(blocks[:3], (1, 0, 2), strict=True):
            assert f"{prefix} {n}\n" in block


def test_peak_memory_and_duration_headers(proxy):
    proxy.init(
        "def main(args):\n    data = b'x' * (args['mb'] << 20)\n    return {'n': len(data)}\n"
    )
    small, big, small_again = (proxy.run({"mb": mb}) for mb in (0, 50, 0))
    peaks = [int(r.headers["X-Faas-Peak-Memory"]) for r in (small, big, small_again)]
    assert peaks[1] >= peaks[0] + (40 << 20)
    assert peaks[2] <= peaks[1] - (40 << 20), "the peak should be reset before each activation"
    assert float(big.headers["X-Faas-Duration-Ms"]) >= 0
    assert big.body == {"n": 50 << 20}


NATIVE = """#!/bin/sh
echo "log line from exec"
echo "stderr line from exec" >&2
read -r from_stdin
echo "{\\"argv\\": $1, \\"stdin\\": $from_stdin, \\"aid\\": \\"$__OW_ACTIVATION_ID\\", \\"cwd\\": \\"$(pwd)\\"}"
"""


@pytest.mark.parametrize("binary", [False, True], ids=["text", "zip"])
def test_native_executable(proxy, binary):
    source = zip_b64({"exec": NATIVE}) if binary else NATIVE
    assert proxy.init(source, binary=binary).status == 200
    resp = proxy.run({"name": "Ada"}, activation_id="a7")
    assert resp.status == 200
    assert resp.body == {
        "argv": {"name": "Ada"},
        "stdin": {"name": "Ada"},
        "aid": "a7",
        "cwd": str(proxy.folder / "action"),
    }
    assert int(resp.headers["X-Faas-Peak-Memory"]) > 0
    out, err = proxy.stdout, proxy.stderr
    assert out.index("log line from exec") < out.index(SENTINEL)
    assert err.index("stderr line from exec") < err.index(SENTINEL)
    assert '{"argv"' not in out, "the result line is not a log line"


def test_native_without_json_result(proxy):
    proxy.init("#!/bin/sh\necho starting\necho done, no json\nexit 3\n")
    resp = proxy.run()
    assert resp.status == 502
    assert resp.body == {"error": "The action did not return a dictionary or array."}
    assert "done, no json" in proxy.stdout


def test_python_zip_with_helper_module(proxy):
    source = zip_b64(
        {
            "__main__.py": "from helper import twice\ndef main(a):\n    return {'v': twice(a['v'])}\n",
            "helper.py": "def twice(x):\n    return 2 * x\n",
        }
    )
    assert proxy.init(source, binary=True).status == 200
    assert proxy.run({"v": 21}).body == {"v": 42}


BAKED = """
def handle(args):
    if args.get("fail"):
        raise ValueError("asked to fail")
    return {"baked": True, "args": args}
"""


@pytest.mark.parametrize(
    "how",
    ["handler", "action_code"],
)
def test_openfaas_invocation(start_proxy, how):
    if how == "handler":
        proxy = start_proxy(handler=BAKED, FAAS_HANDLER="handle")
    else:
        proxy = start_proxy(__OW_ACTION_CODE=code(BAKED), __OW_ACTION_MAIN="handle")
    assert (proxy.folder / "lock").exists()
    assert proxy.request("GET", "/_/health")[::2] == (200, "OK")
    assert proxy.request("GET", "/_/ready")[::2] == (200, "OK")
    headers = {"Content-Type": "application/json"}
    status, resp_headers, body = proxy.request("POST", "/", b'{"x": 2}', headers)
    assert (status, body) == (200, {"baked": True, "args": {"x": 2}})
    assert "X-Faas-Peak-Memory" in resp_headers
    assert proxy.request("POST", "/", b"")[::2] == (200, {"baked": True, "args": {}})
    assert proxy.request("POST", "/any/path", b'{"p": 1}')[::2] == (
        200,
        {"baked": True, "args": {"p": 1}},
    )
    status, _, body = proxy.request("POST", "/", b'{"fail": 1}')
    assert (status, body) == (500, {"error": "ValueError: asked to fail"})
    status, _, body = proxy.request("POST", "/", b"name=Ada")
    assert status == 400 and "not valid JSON" in body["error"]
    # OpenWhisk blackbox use of the same image: code-less init, then /run uses the baked code.
    assert proxy.init().status == 200
    assert proxy.run({"y": 1}).body == {"baked": True, "args": {"y": 1}}


def test_openfaas_without_code(proxy):
    status, _, body = proxy.request("POST", "/", b"{}")
    assert status == 503 and "no code" in body["error"]


def test_broken_baked_handler_is_reported(start_proxy):
    proxy = start_proxy(handler="def main(args):\n    return {\n")
    status, _, text = proxy.request("GET", "/_/health")
    assert status == 503 and "SyntaxError in the action code, line 2" in text
    resp = proxy.init()
    assert resp.status == 502 and "SyntaxError" in resp.body["error"]


def test_knative_single_entrypoint(start_proxy):
    proxy = start_proxy(__OW_RUNTIME_PLATFORM="knative")
    source = (
        "import os\ndef main(a):\n    return {'a': a, 'id': os.environ.get('__OW_ACTIVATION_ID')}\n"
    )
    message = {"init": {"code": source}, "activation": {"activation_id": "k1"}, "value": {"x": 1}}
    for _ in range(2):  # the same init again is accepted
        status, _, body = proxy.request("POST", "/", json.dumps(message).encode())
        assert (status, body) == (200, {"a": {"x": 1}, "id": "k1"})
    status, _, body = proxy.request("POST", "/", b'{"value": {"y": 2}}')
    assert (status, body) == (200, {"a": {"y": 2}, "id": None})
    other = {"init": {"code": HELLO}}
    assert proxy.request("POST", "/", json.dumps(other).encode())[0] == 403
    assert proxy.stdout.count(SENTINEL) == 4


@pytest.mark.parametrize("path", ["/init", "/run", "/nowhere"])
def test_get_is_404_json(proxy, path):
    status, _, body = proxy.request("GET", path)
    assert status == 404 and "No such endpoint" in body["error"]


def test_bad_json_is_400(proxy):
    status, _, body = proxy.request("POST", "/init", b"{")
    assert status == 400 and "not valid JSON" in body["error"]


def test_many_requests_on_one_kept_alive_connection(proxy):
    proxy.init("def main(a):\n    return {'n': a['n'] + 1}\n")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT)
    try:
        conn.connect()
        sock = conn.sock
        for n in range(200):
            body = json.dumps({"value": {"n": n}}).encode()
            conn.request("POST", "/run", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert (resp.status, json.loads(resp.read())) == (200, {"n": n + 1})
        assert conn.sock is sock, "the connection should have stayed open"
    finally:
        conn.close()


@pytest.mark.docker
class TestInContainer:
    """proxy.py inside the base image, reached on its bridge IP as the OpenWhisk invoker does."""

    @pytest.fixture
    def container(self):
        try:
            client = engine.docker_client()
        except FaaSError as err:
            pytest.skip(str(err))
        if not engine.has_image(client, BASE_IMAGE):
            pytest.skip(f"{BASE_IMAGE} is not built (bash scripts/setup.sh)")
        container = client.containers.run(
            BASE_IMAGE,
            ["python3", "/faas/runtime.py"],
            detach=True,
            labels=engine.labels("test", **{"org.jupyter-faas.test-run": RUN_ID}),
            volumes={
                path: {"bind": f"/faas/{name}", "mode": "ro"}
                for name, path in RUNTIME_FILES.items()
            },
        )
        try:
            yield container
        finally:
            engine.remove_container(container)

    def test_init_run_and_logs(self, container):
        client = ActionClient(engine.container_address(container), 8080)
        try:
            client.wait_ready(TIMEOUT)
            source = "def main(a):\n    print('in container')\n    return {'hi': a['name']}\n"
            assert client.init({"code": source}, TIMEOUT).status == 200
            resp = client.run({"value": {"name": "Ada"}, "activation_id": "c1"}, TIMEOUT)
            assert (resp.status, resp.body) == (200, {"hi": "Ada"})
            assert int(resp.headers["X-Faas-Peak-Memory"]) > 0
        finally:
            client.close()
        deadline = time.monotonic() + 10
        while True:  # docker's log driver may lag a moment behind the process
            out = container.logs(stdout=True, stderr=False).decode()
            err = container.logs(stdout=False, stderr=True).decode()
            if SENTINEL in out and SENTINEL in err or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert out.index("in container") < out.index(SENTINEL)
        assert SENTINEL in err
        assert container.exec_run(["test", "-e", "/tmp/.lock"]).exit_code == 0

    def test_native_shell_script(self, container):
        client = ActionClient(engine.container_address(container), 8080)
        try:
            client.wait_ready(TIMEOUT)
            assert client.init({"code": NATIVE}, TIMEOUT).status == 200
            resp = client.run({"value": {"n": 1}, "activation_id": "c2"}, TIMEOUT)
        finally:
            client.close()
        assert resp.body == {"argv": {"n": 1}, "stdin": {"n": 1}, "aid": "c2", "cwd": "/action"}


def test_native_large_arguments_go_on_stdin_only(proxy):
    proxy.init('#!/bin/sh\nread -r s\necho "{\\"argc\\": $#, \\"len\\": ${#s}}"\n')
    small, large = proxy.run({"b": "x"}), proxy.run({"b": "x" * 200_000})
    assert small.body == {"argc": 1, "len": len('{"b": "x"}')}
    assert large.body == {"argc": 0, "len": 200_000 + len('{"b": ""}')}


def test_chunked_request_body(proxy):
    proxy.init(HELLO)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=TIMEOUT)
    try:
        chunks = iter([b'{"value": {"na', b'me": "chunks"}}'])
        conn.request("POST", "/run", body=chunks, encode_chunked=True)
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (200, {"greeting": "hello chunks"})
    finally:
        conn.close()


@pytest.mark.parametrize(
    "body, error",
    [("raise SystemExit(3)", "SystemExit: 3"), ("raise KeyError('k')", "KeyError: 'k'")],
)
def test_exit_and_key_errors_are_reported(proxy, body, error):
    proxy.init(f"def main(args):\n    {body}\n")
    assert proxy.run().body == {"error": error}
    assert proxy.request("GET", "/_/health")[0] == 200

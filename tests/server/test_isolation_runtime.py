"""Tenant isolation at the action runtime: its secret, stalled clients, forged and huge logs.

The runtime (proxy.py) runs as a real subprocess here, and in a real container (as root and as
``nobody`` on a read-only root filesystem) for the secret-hiding checks; the log collector is
fed through real pipes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import free_port, labelled_image

from jupyter_faas import engine, runtime
from jupyter_faas.actionclient import ActionClient
from jupyter_faas.runtime import PROXY_PATH, protocol
from jupyter_faas.server.pool.logs import MAX_LINE_BYTES, LogCollector

TIMEOUT = 30
SECRET = "ab" * 32

#: A hostile action: looks for the runtime's secret everywhere it can read.
SNOOP = """
import glob, os, stat

def main(args):
    found = {"environ": {k: v for k, v in os.environ.items() if "SECRET" in k}}
    for path in ["/proc/self/environ", "/proc/1/environ", *glob.glob("/proc/[0-9]*/environ")]:
        try:
            with open(path, "rb") as f:
                found[path] = f.read().decode("latin-1")
        except OSError as err:
            found[path] = "unreadable: " + type(err).__name__
    for fd in os.listdir("/proc/self/fd"):  # the secret's pipe must be closed by now
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            found[f"fd {fd}"] = target
            if stat.S_ISREG(os.stat(f"/proc/self/fd/{fd}").st_mode):
                with open(f"/proc/self/fd/{fd}", "rb") as f:
                    found[f"fd {fd}"] += " " + f.read(4096).decode("latin-1")
        except OSError as err:
            found[f"fd {fd}"] = "unreadable: " + type(err).__name__
    found["pipes"] = sorted(
        int(k[3:]) for k, v in found.items() if k.startswith("fd ") and v.startswith("pipe:")
    )
    return found
"""


def start_runtime(tmp_path: Path, pass_fds=(), **env: str) -> tuple[subprocess.Popen, int]:
    """proxy.py as a subprocess on a free port, with ``env`` added; waits until it listens."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("__OW_", "FAAS_"))}
    full = {
        **base,
        "PORT": str(port),
        "FAAS_BIND": "127.0.0.1",
        "FAAS_FUNCTION_DIR": str(tmp_path / "function"),
        "FAAS_ACTION_DIR": str(tmp_path / "action"),
        "FAAS_LOCK_FILE": str(tmp_path / "lock"),
        **env,
    }
    out = open(tmp_path / "stdout.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, PROXY_PATH], env=full, stdout=out, stderr=out, pass_fds=pass_fds
    )
    out.close()
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert proc.poll() is None, (tmp_path / "stdout.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            assert time.monotonic() < deadline, "proxy.py did not listen"
            time.sleep(0.02)


@pytest.fixture
def runtime_process(tmp_path):
    """Start runtimes (``start(**env)``); all are stopped afterwards."""
    started = []

    def start(pass_fds=(), **env):
        proc, port = start_runtime(tmp_path, pass_fds, **env)
        started.append(proc)
        return port

    yield start
    for proc in started:
        proc.kill()
        proc.wait(10)


def request(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw.decode()


# ---- finding 1: the runtime answers its own invoker only -----------------------------------


@pytest.mark.parametrize("how", ["env", "fd"])
def test_requests_without_the_secret_are_refused_and_change_nothing(runtime_process, how, tmp_path):
    if how == "env":
        port = runtime_process(**{protocol.SECRET_ENV: SECRET})
    else:  # as RuntimeProcess gives it: on an inherited pipe
        read_end, write_end = os.pipe()
        os.write(write_end, SECRET.encode())
        os.close(write_end)
        os.set_inheritable(read_end, True)
        try:
            port = runtime_process((read_end,), **{protocol.SECRET_FD_ENV: str(read_end)})
        finally:
            os.close(read_end)
    hostile = "def main(a):\n    print('HIJACKED')\n    return {'hijacked': True}\n"
    init = json.dumps({"value": {"code": hostile}}).encode()
    run = json.dumps({"value": {}}).encode()
    for headers in ({}, {protocol.SECRET_HEADER: "00" * 32}, {protocol.SECRET_HEADER: "é"}):
        for path, body in (("/init", init), ("/run", run), ("/", b"{}"), ("/x", b"{}")):
            status, answer = request(port, "POST", path, body, headers)
            assert status == 403, (path, headers)
            assert "error" in answer
    assert request(port, "GET", "/_/health")[0] == 503  # probes stay open; nothing was loaded
    client = ActionClient("127.0.0.1", port, secret=SECRET)
    try:
        good = "def main(a):\n    return {'mine': a['n']}\n"
        assert client.init({"code": good}, TIMEOUT).status == 200, "the hostile /init did nothing"
        resp = client.run({"value": {"n": 3}}, TIMEOUT)
        assert (resp.status, resp.body) == (200, {"mine": 3})
    finally:
        client.close()
    assert "HIJACKED" not in (tmp_path / "stdout.log").read_text()


def test_without_a_secret_the_runtime_answers_anyone(runtime_process):
    """Real OpenWhisk, OpenFaaS and Knative set no secret: the contract is unchanged."""
    port = runtime_process()
    client = ActionClient("127.0.0.1", port)
    try:
        assert client.init({"code": "def main(a):\n    return a\n"}, TIMEOUT).status == 200
        assert client.run({"value": {"x": 1}}, TIMEOUT).body == {"x": 1}
    finally:
        client.close()


def test_the_function_cannot_read_the_secret_in_a_process(runtime_process):
    port = runtime_process(**{protocol.SECRET_ENV: SECRET})
    client = ActionClient("127.0.0.1", port, secret=SECRET)
    try:
        assert client.init({"code": SNOOP}, TIMEOUT).status == 200
        resp = client.run({"value": {}}, TIMEOUT)
    finally:
        client.close()
    assert resp.status == 200
    assert resp.body["environ"] == {}
    assert f"/proc/{os.getpid()}/environ" in resp.body  # it did look at other processes
    for where, text in resp.body.items():
        assert SECRET not in json.dumps(text), f"the secret is readable in {where}"


def test_runtime_process_gets_a_fresh_secret_each(tmp_path):
    """RuntimeProcess (ProcessInvoker, ProcessBuilder) passes a new secret on a pipe."""
    from jupyter_faas.environments import RuntimeProcess

    env_path = tmp_path / "env"
    (env_path / "venv" / "bin").mkdir(parents=True)
    (env_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    for name, data in runtime.runtime_file_bytes().items():
        (env_path / name).write_bytes(data)
    procs = [
        RuntimeProcess.start(env_path, memory_mb=256, env={}, allow_reinit=False, name=f"p{n}")
        for n in range(2)
    ]
    try:
        one, two = procs
        assert one.action.secret and two.action.secret and one.action.secret != two.action.secret
        stranger = ActionClient("127.0.0.1", one.port, secret=two.action.secret)
        try:
            assert stranger.init({"code": SNOOP}, TIMEOUT).status == 403
        finally:
            stranger.close()
        assert one.action.init({"code": SNOOP}, TIMEOUT).status == 200
        resp = one.action.run({"value": {}}, TIMEOUT)
        assert resp.status == 200 and resp.body["environ"] == {}
        assert one.action.secret not in json.dumps(resp.body)
    finally:
        for proc in procs:
            proc.action.close()
            proc.kill()


@pytest.fixture(scope="module")
def isolation_image(docker_client, base_image, test_labels, run_label):
    """Our runtime on the base image, as function images carry it."""
    files = {
        "Dockerfile": (
            f"FROM {base_image}\n"
            "COPY runtime.py faas_protocol.py /faas/\n"
            'CMD ["python3", "/faas/runtime.py"]\n'
        ).encode(),
        **runtime.runtime_file_bytes(),
    }
    with labelled_image(
        docker_client, f"jupyter-faas-isolation:{run_label}", files, test_labels
    ) as image:
        yield image


@pytest.mark.docker
@pytest.mark.parametrize("user", ["root", "nobody"])
def test_the_function_cannot_read_the_secret_in_a_container(
    docker_client, isolation_image, test_labels, user
):
    options = {}
    if user == "nobody":  # as the hardened invoker runs them
        options = {
            "user": "65534:65534",
            "read_only": True,
            "cap_drop": ["ALL"],
            "tmpfs": {"/tmp": "rw,exec,nosuid,nodev,size=64m,mode=1777"},
            "environment": {protocol.SECRET_ENV: SECRET, "FAAS_ACTION_DIR": "/tmp/action"},
        }
    container = docker_client.containers.run(
        isolation_image,
        detach=True,
        labels=test_labels,
        **({"environment": {protocol.SECRET_ENV: SECRET}} | options),
    )
    try:
        address = engine.container_address(container)
        stranger = ActionClient(address)
        stranger.wait_ready(TIMEOUT)
        assert stranger.init({"code": SNOOP}, TIMEOUT).status == 403
        assert stranger.run({"value": {}}, TIMEOUT).status == 403
        stranger.close()
        client = ActionClient(address, secret=SECRET)
        try:
            assert client.init({"code": SNOOP}, TIMEOUT).status == 200
            resp = client.run({"value": {}}, TIMEOUT)
        finally:
            client.close()
        assert resp.status == 200, resp.text
        found = resp.body
        assert found["environ"] == {}
        assert set(found["pipes"]) <= {0, 1, 2}, "the secret's pipe was left open"
        assert "/proc/1/environ" in found and not found["/proc/1/environ"].startswith("unread")
        for where, text in found.items():
            assert SECRET not in json.dumps(text), f"the secret is readable in {where}"
    finally:
        engine.remove_container(container)


# ---- finding 2: a stalled client delays no one else ----------------------------------------


def test_a_stalled_request_does_not_block_other_clients(runtime_process):
    port = runtime_process(FAAS_READ_TIMEOUT_S="60")
    client = ActionClient("127.0.0.1", port)
    stalled = socket.create_connection(("127.0.0.1", port))
    try:
        assert client.init({"code": "def main(a):\n    return {'ok': 1}\n"}, TIMEOUT).status == 200
        # Headers promising 50 MB (under the 64 MB cap) and then nothing.
        stalled.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n{")
        time.sleep(0.2)
        start = time.monotonic()
        resp = client.run({"value": {}}, TIMEOUT)
        assert (resp.status, resp.body) == (200, {"ok": 1})
        assert time.monotonic() - start < 2
    finally:
        stalled.close()
        client.close()


def test_oversized_and_malformed_bodies_are_refused_unread(runtime_process):
    port = runtime_process(**{protocol.MAX_REQUEST_ENV: "1000"})
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        sock.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 413") and "exceeds 1000 bytes" in answer
    finally:
        sock.close()
    assert request(port, "POST", "/run", b"x", {"Content-Length": "-1"})[0] == 400
    # A chunked body over the cap, too.
    chunks = iter([b"a" * 600, b"b" * 600])
    status, answer = request(port, "POST", "/run", chunks)  # http.client sends it chunked
    assert status == 413 and "error" in answer


def test_a_request_that_stops_half_way_times_out(runtime_process):
    port = runtime_process(FAAS_READ_TIMEOUT_S="0.5")
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        sock.sendall(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
        start = time.monotonic()
        assert sock.recv(100) == b"", "the runtime should close the connection"
        assert time.monotonic() - start < 5
    finally:
        sock.close()
    # An idle kept-alive connection is not timed out.
    client = ActionClient("127.0.0.1", port)
    try:
        assert client.init({"code": "def main(a):\n    return a\n"}, TIMEOUT).status == 200
        sock = client._conn.sock
        time.sleep(1.0)
        assert client.run({"value": {"k": 1}}, TIMEOUT).body == {"k": 1}
        assert client._conn.sock is sock
    finally:
        client.close()


# ---- finding 5: the log token ----------------------------------------------------------------


def test_the_log_token_follows_the_marker_and_the_function_never_sees_it(runtime_process, tmp_path):
    port = runtime_process()
    client = ActionClient("127.0.0.1", port)
    code = "import os\ndef main(a):\n    return {'args': a, 'env': sorted(os.environ)}\n"
    try:
        init = client.init({"code": code}, TIMEOUT, token="tok0")
        assert protocol.header(init.headers, protocol.LOG_TOKEN_HEADER) == "1"
        resp = client.run({"value": {"n": 1}, "activation_id": "a1"}, TIMEOUT, token="tok1")
        plain = client.run({"value": {"n": 2}}, TIMEOUT)
    finally:
        client.close()
    assert resp.body["args"] == {"n": 1}
    assert "__OW_ACTIVATION_ID" in resp.body["env"]
    assert not [k for k in resp.body["env"] if "TOKEN" in k]
    assert protocol.header(resp.headers, protocol.LOG_TOKEN_HEADER) == "1"
    assert plain.status == 200
    lines = (tmp_path / "stdout.log").read_text().splitlines()
    ends = [line for line in lines if line.startswith(protocol.SENTINEL)]
    # stdout and stderr share the file: two markers per /run, none for a good /init.
    assert ends == [f"{protocol.SENTINEL} tok1"] * 2 + [protocol.SENTINEL] * 2


# ---- findings 5 and 6: the log collector -----------------------------------------------------


@pytest.fixture
def pipes():
    """A LogCollector following two real pipes, and ``write(stdout, stderr)``."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    collector = LogCollector.pipes(
        os.fdopen(out_r, "rb", buffering=0), os.fdopen(err_r, "rb", buffering=0), "test"
    )

    def write(out: bytes = b"", err: bytes = b"") -> None:
        if out:
            os.write(out_w, out)
        if err:
            os.write(err_w, err)

    yield collector, write
    os.close(out_w)
    os.close(err_w)
    collector.wait_ended(5)


def ends(token=None) -> bytes:
    return (protocol.marker(token) + "\n").encode()


def messages(lines):
    return [line.split(": ", 1)[1] for line in lines]


def test_forged_markers_are_ordinary_lines_with_a_token(pipes):
    collector, write = pipes
    forged = ends() + ends("guess") + ends("tok1x")
    collector.token = "tok1"
    write(b"one\n" + forged + b"two\n" + ends("tok1"), b"e1\n" + forged + ends("tok1"))
    first = collector.take(5, 10**6)
    collector.token = "tok2"
    write(b"three\n" + ends("tok2"), b"e3\n" + ends("tok2"))
    second = collector.take(5, 10**6)
    assert sorted(messages(first)) == sorted(
        ["one", "two", "e1"] + [m.decode().strip() for m in forged.splitlines()] * 2
    )
    assert sorted(messages(second)) == ["e3", "three"]


def test_without_a_token_the_plain_marker_ends_the_logs(pipes):
    collector, write = pipes
    write(b"a\n" + ends() + b"b\n" + ends(), ends() + ends())
    assert messages(collector.take(5, 10**6)) == ["a"]
    assert messages(collector.take(5, 10**6)) == ["b"]


def test_a_marker_after_output_without_a_final_newline_is_found(pipes):
    collector, write = pipes
    collector.token = "t"
    write(b"no newline" + ends("t"), ends("t"))
    assert messages(collector.take(5, 10**6)) == ["no newline"]


def test_32_mb_without_newlines_takes_linear_time_and_bounded_memory(pipes):
    collector, write = pipes
    collector.token = "big"
    data = b"y" * (32 * 1024 * 1024)
    start = time.perf_counter()
    writer = threading.Thread(target=write, args=(data + ends("big"),))
    writer.start()
    write(err=b"err\n" + ends("big"))
    lines = collector.take(30, 10 * 1024 * 1024)
    writer.join()
    elapsed = time.perf_counter() - start
    # Linear: a copy of 32 MB takes milliseconds; the old re-copy per 64 KiB chunk took 13 s.
    # 2 s leaves room for a loaded 2-core machine (reading the pipe, decoding, splitting).
    assert elapsed < 2, f"{elapsed:.2f} s"
    assert lines[-1].endswith(
        "Logs were truncated because the total bytes size exceeds the limit of 10485760 bytes."
    )
    pieces = messages(lines[:-1])
    assert "err" in pieces
    assert max(len(p) for p in pieces) <= MAX_LINE_BYTES
    assert sum(len(p) for p in pieces) <= 10 * 1024 * 1024
    collector.token = "next"
    write(b"after\n" + ends("next"), ends("next"))
    assert messages(collector.take(5, 10**6)) == ["after"]


def test_long_lines_keep_utf8_characters_whole(pipes):
    collector, write = pipes
    line = "é" * MAX_LINE_BYTES  # twice MAX_LINE_BYTES in bytes
    write(line.encode() + b"\n" + ends(), ends())
    pieces = messages(collector.take(5, 10**7))
    assert "".join(pieces) == line and "\ufffd" not in "".join(pieces)


def test_a_flood_of_forged_markers_is_bounded(pipes, monkeypatch):
    from jupyter_faas.server.pool import logs

    monkeypatch.setattr(logs, "BUFFER_LIMIT_BYTES", 4096)
    collector, write = pipes
    collector.token = "real"
    write(ends() * 2000 + ends("real"), ends("real"))
    lines = collector.take(5, 10**6)
    assert lines[-1].split(": ", 1)[1].startswith("Logs were truncated")
    assert len(lines) < 2000

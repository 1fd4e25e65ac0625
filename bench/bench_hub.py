"""Benchmark of the JupyterHub mode (issue 10's speed goals), on this machine.

1. Spawn -> JupyterLab ready with the image present: a user's server started through the
   hub's REST API until its Jupyter API answers through the proxy, over SPAWNS users one
   after the other; next to a bare `docker run` of the same image until its Jupyter API
   answers, as often, in the same run.
2. Code-only edit -> container result, and -> deployed and invoked, from a kernel inside
   a user's container (builds and tests through the faas service, deploys through its
   relay), next to the same script in local mode (DockerBuilder on the engine, the same
   function server) in the same run.
3. CROWD users started at once: time until all are ready, and each container's memory
   (docker stats) once they are.

It starts a function server with the hub's limits (hub/faas_server_config.py) and a hub
of its own (hub/jupyterhub_config.py, ports and names of its own, label
org.jupyter-faas.bench on what it makes) and removes both and what they made at the end.
Needs root; the image is $FAAS_HUB_IMAGE, else what `bash scripts/hub.sh --prepare`
builds (run by this script).

Run: .venv/bin/python bench/bench_hub.py  (writes the results into docs/hub.md)
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import websocket

from jupyter_faas import engine
from jupyter_faas.hub.network import remove_user_network

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "hub.md"
SPAWNS = 10
EDITS = 10
CROWD = 10
BENCH_LABEL = "org.jupyter-faas.bench"
REGISTRY = "127.0.0.1:5000"
#: Longest wait for anything to answer (a crowd of spawns on 2 cores).
WAIT_S = 600

#: The timing script, the same in a user's kernel (hub mode: the image's config picks
#: HubBuilder; the namespace key is the container's) and in a local process (local mode:
#: DockerBuilder, settings given). Ends with a line naming its settings and edit count.
EDIT_SCRIPT = r"""
import json, tempfile, time
from traitlets.config import Config
from jupyter_faas.config import load_jupyter_config
from jupyter_faas.workspace import FaaSWorkspace

def cell(m):
    return "def main(args):\n    return {'n': sum(i % " + str(m) + " for i in range(1000)) + args['x']}\n"

def bench_edits(settings, edits):
    config = load_jupyter_config()
    config.merge(Config(settings))
    ws = FaaSWorkspace(config=config, bundle_dir=tempfile.mkdtemp(prefix="bench-"))
    name = "bench-edit"
    bundle = ws.capture_cell(name, cell(7), {}, [])
    ws.test(bundle, {"x": 1})  # build (or reuse) and start the warm sandbox
    ws.deploy(bundle)
    ws.invoke(name, {"x": 1})
    tested, deployed = [], []
    for i in range(edits):
        start = time.perf_counter()
        report = ws.test(ws.capture_cell(name, cell(8 + i), {}, []), {"x": 1})
        tested.append(time.perf_counter() - start)
        assert report.container.ok, report
        start = time.perf_counter()
        ws.deploy(ws.capture_cell(name, cell(100 + i), {}, []))
        record = ws.invoke(name, {"x": 1})
        deployed.append(time.perf_counter() - start)
        assert record.ok, record
    ws.close()
    return {"tested": tested, "deployed": deployed, "builder": type(ws.builder).__name__}
"""


def edit_script(settings: dict) -> str:
    return EDIT_SCRIPT + f"\nprint(json.dumps(bench_edits({settings!r}, {EDITS})))\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session() -> requests.Session:
    found = requests.Session()
    found.trust_env = False
    return found


def wait_for(url: str, proc: subprocess.Popen | None, what: str, headers=None) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            # No redirects: the hub sends a spawning user's requests to its pending page.
            resp = session().get(url, headers=headers, timeout=5, allow_redirects=False)
            if resp.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer on {url} in {WAIT_S} s")


def p50(values: list[float]) -> float:
    return statistics.median(values)


class BenchHub:
    """A function server and a hub of this run's own, driven through the hub's REST API."""

    def __init__(self, image: str, folder: Path, rid: str):
        self.rid = rid
        self.prefix = f"faas-bench-{rid}"
        self.labels = {BENCH_LABEL: rid}
        self.server_data = folder / "server"
        self.server_data.mkdir()
        self.server_port = free_port()
        (self.server_data / "labels.py").write_text(
            f"c.DockerInvoker.extra_labels = {self.labels!r}\n"
            f"load_subconfig({str(ROOT / 'hub' / 'faas_server_config.py')!r})\n"
        )
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_faas.server",
                f"--FunctionServer.port={self.server_port}",
                f"--FunctionServer.data_dir={self.server_data}",
                f"--FunctionServer.config_file={self.server_data / 'labels.py'}",
                "--FunctionServer.invoker_class=docker",
            ],
            stdout=open(folder / "server.log", "wb"),  # noqa: SIM115 (lives as long as the server)
            stderr=subprocess.STDOUT,
        )
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        wait_for(f"{self.server_url}/api/v1", self.server, "the function server")
        self.state = folder / "hub"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FAAS_HUB_")},
            "FAAS_HUB_STATE": str(self.state),
            "FAAS_HUB_PORT": str(self.port),
            "FAAS_HUB_API_PORT": str(free_port()),
            "FAAS_HUB_SERVICE_PORT": str(free_port()),
            "FAAS_HUB_PROXY_API_PORT": str(free_port()),
            "FAAS_HUB_PREFIX": self.prefix,
            "FAAS_HUB_IMAGE": image,
            "FAAS_HUB_LABELS": json.dumps(self.labels),
            "FAAS_HUB_REGISTRY_PREFIX": f"{self.prefix}/users",
            "FAAS_HUB_PROXY_COMMAND": str(
                ROOT / ".state" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
            ),
            "FAAS_SERVER_URL": self.server_url,
            "FAAS_SERVER_DATA": str(self.server_data),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        self.state.mkdir()
        self.hub = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyterhub"),
                "-f",
                str(ROOT / "hub" / "jupyterhub_config.py"),
            ],
            cwd=self.state,
            env=env,
            stdout=open(self.state / "jupyterhub.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        wait_for(f"{self.url}/hub/api", self.hub, "JupyterHub")
        wait_for(f"{self.url}/services/faas/api/health", self.hub, "the faas service")
        self.token = (self.state / "admin-token").read_text().strip()

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return session().request(
            method,
            f"{self.url}/hub/api/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=120,
            **kwargs,
        )

    def add_user(self, name: str) -> str:
        """Make ``name``; returns a token of its own."""
        assert self.api("POST", "users", json={"usernames": [name]}).status_code == 201
        resp = self.api("POST", f"users/{name}/tokens", json={"scopes": ["inherit"]})
        return resp.json()["token"]

    def spawn(self, name: str, token: str) -> float:
        """Seconds from the start request until the user's Jupyter API answers."""
        start = time.perf_counter()
        resp = self.api("POST", f"users/{name}/server")
        assert resp.status_code in (201, 202), resp.text
        wait_for(
            f"{self.url}/user/{name}/api/status",
            self.hub,
            f"{name}'s server",
            headers={"Authorization": f"token {token}"},
        )
        return time.perf_counter() - start

    def stop_server(self, name: str) -> None:
        self.api("DELETE", f"users/{name}/server")
        deadline = time.monotonic() + 120
        while self.api("GET", f"users/{name}").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.5)

    def close(self) -> None:
        for proc in (self.hub, self.server):
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        client = engine.docker_client()
        engine.remove_labelled(client, **self.labels)
        for volume in client.volumes.list():
            if volume.name.startswith(f"{self.prefix}-"):
                volume.remove(force=True)
        remove_user_network(self.prefix)
        for found in client.images.list():
            for tag in found.tags:
                if tag.startswith(f"{REGISTRY}/{self.prefix}/"):
                    client.images.remove(tag)


def bare_run(image: str, rid: str) -> float:
    """Seconds from `docker run` of the single-user image (plain `jupyter server`, no hub)
    until its API answers; the container is removed after."""
    client = engine.docker_client()
    start = time.perf_counter()
    container = client.containers.run(
        image,
        ["jupyter", "server", "--ip=0.0.0.0", "--port=8888", "--IdentityProvider.token=bench"],
        detach=True,
        labels={BENCH_LABEL: rid},
    )
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        wait_for(f"http://{address}:8888/api/status?token=bench", None, "the bare container")
        return time.perf_counter() - start
    finally:
        engine.remove_container(container)


def run_in_kernel(hub: BenchHub, name: str, token: str, code: str) -> str:
    """Run ``code`` in a new kernel of ``name``'s server; returns what it printed."""
    headers = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/{name}/api/kernels"
    kernel = session().post(base, headers=headers, json={"name": "python3"}, timeout=60).json()
    ws = websocket.create_connection(
        f"{base.replace('http://', 'ws://')}/{kernel['id']}/channels",
        header=[f"Authorization: token {token}"],
        timeout=WAIT_S,
    )
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "session": uuid.uuid4().hex,
                    "username": "bench",
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {"code": code, "silent": False, "allow_stdin": False},
            }
        )
    )
    out = []
    try:
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()


def memory_mb(container) -> float:
    """The container's memory use now (docker stats: usage less page cache), in MB."""
    stats = container.stats(stream=False)["memory_stats"]
    cache = stats.get("stats", {}).get(
        "total_inactive_file", stats.get("stats", {}).get("cache", 0)
    )
    return (stats["usage"] - cache) / 2**20


def prepare() -> str:
    """The single-user image, as scripts/hub.sh builds it (reused when unchanged)."""
    prepared = subprocess.run(
        ["bash", str(ROOT / "scripts" / "hub.sh"), "--prepare"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("FAAS_HUB_")},
    )
    return prepared.stdout.strip().splitlines()[-1]


def main() -> int:
    if os.geteuid() != 0:
        print("bench_hub: run as root (the hub's user network needs iptables)", file=sys.stderr)
        return 2
    image = os.environ.get("FAAS_HUB_IMAGE") or prepare()
    rid = uuid.uuid4().hex[:6]
    folder = Path(tempfile.mkdtemp(prefix="faas-bench-hub-"))
    hub = BenchHub(image, folder, rid)
    results: dict = {}

    def record(**found) -> None:
        """Keep and print each phase's numbers as they come (a long run can be cut short)."""
        results.update(found)
        print(json.dumps(found), flush=True)
        (folder / "results.json").write_text(json.dumps(results, indent=1))

    try:
        # 1. Spawns one after the other, each next to a bare container of the same image
        #    (alternating, so both see the same load).
        spawn_times, bare_times = [], []
        for i in range(SPAWNS):
            name = f"solo{i}"
            token = hub.add_user(name)
            spawn_times.append(hub.spawn(name, token))
            if i < SPAWNS - 1:
                hub.stop_server(name)
            bare_times.append(bare_run(image, rid))
        record(spawn=spawn_times, bare=bare_times)

        # 2. Code-only edits from the last user's kernel, and the same script locally.
        hub_edits = json.loads(
            run_in_kernel(hub, name, token, edit_script({})).strip().splitlines()[-1]
        )
        hub.stop_server(name)
        guest = (hub.server_data / "auth.guest").read_text().strip()
        local_config = {
            "OpenWhiskClient": {"api_host": hub.server_url, "auth": guest},
            "FaaSRegistry": {"url": REGISTRY, "namespace": f"{hub.prefix}/local"},
            "DockerBuilder": {"extra_labels": hub.labels},
        }
        local = subprocess.run(
            [sys.executable, "-c", edit_script(local_config)],
            capture_output=True,
            text=True,
            check=True,
        )
        record(hub_edits=hub_edits, local_edits=json.loads(local.stdout.strip().splitlines()[-1]))

        # 3. A crowd started at once.
        crowd = {f"crowd{i}": hub.add_user(f"crowd{i}") for i in range(CROWD)}
        start = time.perf_counter()
        with ThreadPoolExecutor(CROWD) as pool:
            ready = list(pool.map(lambda item: hub.spawn(*item), crowd.items()))
        all_ready = time.perf_counter() - start
        client = engine.docker_client()
        memory = [memory_mb(client.containers.get(f"{hub.prefix}-{n}")) for n in crowd]
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        record(crowd_ready=ready, crowd_all=all_ready, memory=memory, load=load)
    finally:
        hub.close()

    write_doc(results)
    return 0


def write_doc(r: dict) -> None:
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    hub_t, hub_d = r["hub_edits"]["tested"], r["hub_edits"]["deployed"]
    loc_t, loc_d = r["local_edits"]["tested"], r["local_edits"]["deployed"]
    table = f"""<!-- bench_hub: begin (written by bench/bench_hub.py) -->
Measured by `.venv/bin/python bench/bench_hub.py` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
(2 cores shared with other work, Docker 20.10, cgroup v1); load after the run: `{r["load"]}`.

| what | p50 | p90 / max | goal |
|---|---|---|---|
| spawn -> JupyterLab's API answers through the hub, image present ({SPAWNS} users in turn) | {p50(r["spawn"]):.2f} s | {max(r["spawn"]):.2f} s | report |
| baseline: bare `docker run` of the same image -> its API answers ({SPAWNS} runs) | {p50(r["bare"]):.2f} s | {max(r["bare"]):.2f} s | |
| ratio spawn / bare | {p50(r["spawn"]) / p50(r["bare"]):.2f} | | |
| hub: code-only edit -> container result, from a user's kernel through the service ({EDITS} edits) | {ms(p50(hub_t))} | {ms(max(hub_t))} | <= 1.5x local |
| local mode: the same script on the engine | {ms(p50(loc_t))} | {ms(max(loc_t))} | |
| ratio hub / local | {p50(hub_t) / p50(loc_t):.2f} | | <= 1.5 |
| hub: code-only edit -> deployed and invoked ({EDITS} edits) | {ms(p50(hub_d))} | {ms(max(hub_d))} | <= 1.5x local |
| local mode: the same | {ms(p50(loc_d))} | {ms(max(loc_d))} | |
| ratio hub / local | {p50(hub_d) / p50(loc_d):.2f} | | <= 1.5 |
| {CROWD} users started at once: all ready | {r["crowd_all"]:.1f} s | slowest {max(r["crowd_ready"]):.1f} s | all ready |
| memory per idle user container once all are ready (docker stats, less page cache) | {p50(r["memory"]):.0f} MB | {max(r["memory"]):.0f} MB | report |
<!-- bench_hub: end -->"""
    text = DOC.read_text()
    text = re.sub(
        r"<!-- bench_hub: begin.*?<!-- bench_hub: end -->", lambda _: table, text, flags=re.S
    )
    DOC.write_text(text)
    print(table)


if __name__ == "__main__":
    sys.exit(main())

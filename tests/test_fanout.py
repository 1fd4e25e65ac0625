"""``fan_out`` against a real function server (Docker mode): non-blocking invocations fetched by
polls (counted), order, retries, failures with their activation ids, the bound.

One server for the module, with a writable data mount: the test function keeps a count of
its planned failures there (by reference, as the crystallography chunks keep their streams),
so "fails once, then succeeds" holds whichever container the retry lands in.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support import running_function_server
from traitlets.config import Config

from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.errors import BadRequest, NotFound
from jupyter_faas.fanout import FanOutFailed, fan_out, run_in_process
from jupyter_faas.workspace import FaaSWorkspace

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent

CODE = """\
import os
import time


def main(args):
    time.sleep(args.get("sleep", 0))
    planned = args.get("fail", 0)
    if planned:
        mark = os.path.join("/marks", args["key"])
        failed = int(open(mark).read()) if os.path.exists(mark) else 0
        if failed < planned:
            with open(mark, "w") as out:
                out.write(str(failed + 1))
            raise RuntimeError(f"planned failure {failed + 1} of chunk {args['i']}")
    return {"i": args["i"], "square": args["i"] ** 2}
"""


@pytest.fixture(scope="module")
def marks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("marks")
    folder.chmod(0o777)  # actions run as uid 65534
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, marks, base_image, registry, test_labels):
    """A workspace on a fresh server whose containers mount ``marks`` at /marks (writable)."""
    folder = tmp_path_factory.mktemp("fanout-server")
    options = ("--DockerInvoker.prewarm_count=0", f"--FaaSSite.data_mounts={marks}=/marks:rw")
    with running_function_server(folder, test_labels, *options, cwd=ROOT) as server:
        config = Config()
        config.FaaSWorkspace.bundle_dir = str(tmp_path_factory.mktemp("bundles"))
        config.FaaSWorkspace.builder_class = "docker"
        config.OpenWhiskClient.api_host = server.url
        config.OpenWhiskClient.auth = server.key
        config.DockerBuilder.extra_labels = test_labels
        config.FaaSImages.base_image = base_image
        config.FaaSRegistry.url = registry
        made = FaaSWorkspace(config=config)
        meta = FunctionMetadata(name="square", handler="main", memory_mb=128, timeout_s=30)
        made.deploy(Bundle.write(made.bundle_path("square"), meta, CODE, []))
        try:
            yield made
        finally:
            made.close()


def _chunks(n: int, **extra) -> list[dict]:
    return [{"i": i, **extra} for i in range(n)]


def _max_overlap(records) -> int:
    """Most activations running at one instant, from the server's start and duration."""
    events = []
    for record in records:
        events.append((record.start_ms, 1))
        events.append((record.start_ms + record.duration_ms, -1))
    running = most = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        running += step
        most = max(most, running)
    return most


def test_results_keep_input_order_under_concurrency(workspace):
    # Earlier chunks sleep longer, so they finish after later ones.
    chunks = [{"i": i, "sleep": 0.1 * (6 - i)} for i in range(6)]
    result = fan_out(workspace, "square", chunks, concurrency=3, progress="none")
    assert result.ok and not result.failures
    assert result.results == [{"i": i, "square": i * i} for i in range(6)]
    assert [len(attempts) for attempts in result.records] == [1] * 6
    ids = [record.activation_id for record in result.activations]
    assert len(set(ids)) == 6 and all(record.name == "square" for record in result.activations)
    # Non-blocking: every chunk's record was looked up at least once, and counted.
    assert len(result.polls) == 6 and all(polls >= 1 for polls in result.polls)
    assert result.polls_per_chunk == sum(result.polls) / 6
    assert len(result.late_ms) == 6 and all(late >= 0 for late in result.late_ms)


def test_concurrency_bound_is_respected(workspace):
    result = fan_out(workspace, "square", _chunks(6, sleep=1.0), concurrency=2, progress="none")
    assert result.ok
    # Held at two, and two did run side by side (six 1-s chunks: about 3 s, not 6).
    assert _max_overlap(result.activations) == 2, result.timeline()


def test_a_chunk_failing_once_is_retried(workspace):
    chunks = _chunks(4)
    chunks[2].update(fail=1, key=uuid.uuid4().hex)
    result = fan_out(workspace, "square", chunks, concurrency=2, progress="none")
    assert result.ok
    assert result.results == [{"i": i, "square": i * i} for i in range(4)]
    first, second = result.records[2]
    assert first.status == "developer error" and "planned failure 1 of chunk 2" in str(first.result)
    assert second.ok and first.activation_id != second.activation_id
    assert [len(attempts) for i, attempts in enumerate(result.records) if i != 2] == [1, 1, 1]


def test_a_chunk_failing_twice_is_reported_with_its_activations(workspace, capsys):
    chunks = _chunks(5)
    chunks[1].update(fail=2, key=uuid.uuid4().hex)
    with pytest.raises(FanOutFailed) as caught:
        fan_out(workspace, "square", chunks, concurrency=2, progress="text")
    result = caught.value.result
    assert result.results[1] is None
    assert [result.results[i] for i in (0, 2, 3, 4)] == [
        {"i": i, "square": i * i} for i in (0, 2, 3, 4)
    ]
    (failure,) = result.failures
    attempts = [record.activation_id for record in result.records[1]]
    assert failure.index == 1 and failure.activation_ids == attempts and len(attempts) == 2
    assert failure.status == "developer error" and "planned failure 2" in failure.error
    assert result.polls[1] >= 2  # both attempts' records were fetched
    message = str(caught.value)
    assert "1 of 5 chunks of square failed" in message
    assert all(activation_id in message for activation_id in attempts)
    assert "chunk 1 failed" in capsys.readouterr().out
    # Without check, the same outcome is returned rather than raised.
    chunks[1]["key"] = uuid.uuid4().hex
    kept = fan_out(workspace, "square", chunks, concurrency=2, progress="none", check=False)
    assert not kept.ok and kept.failures[0].index == 1


def test_bad_input_is_refused_before_anything_runs(workspace):
    before = len(workspace.deployer.activations("square", limit=200))
    with pytest.raises(NotFound, match="no function 'no-such-function'"):
        fan_out(workspace, "no-such-function", _chunks(2), progress="none")
    with pytest.raises(BadRequest, match="Chunk 1 of square is list"):
        fan_out(workspace, "square", [{"i": 0}, [1, 2]], progress="none")
    with pytest.raises(BadRequest, match="iterable of dicts"):
        fan_out(workspace, "square", {"i": 0}, progress="none")
    with pytest.raises(BadRequest, match="concurrency=0"):
        fan_out(workspace, "square", _chunks(2), concurrency=0, progress="none")
    assert len(workspace.deployer.activations("square", limit=200)) == before


def _square(args: dict) -> dict:
    return {"i": args["i"], "square": args["i"] ** 2}


@pytest.mark.parametrize("processes", [1, 2])
def test_in_process_runs_the_same_chunks_in_order(processes):
    run = run_in_process(_square, _chunks(7), processes=processes, progress="none")
    assert run.results == [{"i": i, "square": i * i} for i in range(7)]
    assert run.processes == processes and run.seconds > 0


def test_the_map_magic_fans_out_an_expression_of_the_kernel(workspace):
    """``%faas map NAME CHUNKS [options]`` in IPython: CHUNKS is evaluated in the kernel."""
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_faas.magics import FaaSMagics

    shell = InteractiveShell.instance()
    shell.register_magics(FaaSMagics(shell=shell, workspace=workspace, progress_style="text"))
    shell.user_ns["n"] = 5
    result = shell.run_line_magic("faas", "map square [{'i': i} for i in range(n)] --concurrency 2")
    assert [r["square"] for r in result.results] == [0, 1, 4, 9, 16]
    assert result.concurrency == 2
    with pytest.raises(UsageError, match="not a Python expression in the kernel"):
        shell.run_line_magic("faas", "map square no_such_name")
    with pytest.raises(UsageError, match="--concurrency"):
        shell.run_line_magic("faas", "map square")
    with pytest.raises(UsageError) as failed:
        shell.run_line_magic("faas", "map square [{'i': 1, 'fail': 9, 'key': 'm1'}] --retries 0")
    assert failed.value.__cause__.result.failures[0].activation_ids

"""Container-less dependency environments and the runtime processes that run in them.

Without a container engine, a function's dependency "image" is a virtualenv on
this machine, named by the same hash as the images (``dependency_key``) and
holding the same runtime files, and a function "container" is the runtime
(``runtime.py``) run by that virtualenv's Python as a plain subprocess on a
127.0.0.1 port. The kernel's ``ProcessBuilder`` and the function server's
``ProcessInvoker`` both use this module, so an environment built while testing
is the one the server runs.

Layout of one environment, ``<root>/<key[:24]>/``::

    venv/               python -m venv (with pip only when there are requirements)
    runtime.py          the action runtime, as /faas/runtime.py in an image
    faas_protocol.py
    requirements.txt
    ready               written last: an environment without it is not used
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from . import image, paths, runtime
from .actionclient import ActionClient, ContainerGone
from .builders.interface import Progress, no_progress
from .errors import BuildError
from .site import FaaSSite

#: The file whose presence says an environment is complete.
READY_FILE = "ready"
#: How long a runtime process may take to listen on its port, unless told otherwise.
START_TIMEOUT_S = 30.0
#: Watchdog sampling period of resident memory, in seconds.
WATCH_INTERVAL_S = 0.01
#: The watchdog looks for new child processes every this many samples (a /proc scan).
RESCAN_EVERY = 10
#: Seconds between two reads of an idle runtime's resident memory (its own, no /proc scan).
IDLE_WATCH_S = 1.0

_TAG = re.compile(r"[0-9a-f]{24}")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MIB = 2**20


def is_memory_error(body: object) -> bool:
    """Whether a runtime's error answer is a ``MemoryError`` raised by the function.

    A runtime process has two memory limits: the watchdog (``oom_killed``) and the
    ``RLIMIT_AS`` backstop. An allocation refused by the backstop raises
    ``MemoryError`` in the function instead of killing the process, and the
    runtime answers 502 ``{"error": "MemoryError…"}``; callers report that as
    "out of memory" too, so the limit reads the same whichever catches it.
    """
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, str) and error.startswith("MemoryError")


@functools.lru_cache(maxsize=16)
def _interpreter_version(realpath: str, mtime_ns: int) -> str:
    """``sys.version`` of the interpreter at ``realpath`` (cached per file version)."""
    del mtime_ns  # part of the cache key only: a replaced interpreter is asked again
    if realpath == os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable):
        return sys.version
    try:
        done = subprocess.run(
            [realpath, "-c", "import sys; print(sys.version)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise BuildError(
            f"The interpreter {realpath} of c.FaaSEnvironments.python cannot be run: {err}",
            hint="Set c.FaaSEnvironments.python to a Python 3.10+ with the venv module.",
        ) from err
    return done.stdout.strip()


class FaaSEnvironments(LoggingConfigurable):
    """Dependency environments (virtualenvs) on this machine, keyed like dependency images."""

    root = Unicode(
        help="""Folder holding container-less dependency environments, one sub-folder per
        dependency key (its first 24 hex digits), about 30 MB each plus the requirements.
        Default: $FAAS_ENV_DIR, else ~/.cache/jupyter-faas/envs. Example:
        c.FaaSEnvironments.root = "/scratch/me/faas-envs".""",
    ).tag(config=True)

    python = Unicode(
        help="""Python interpreter (3.10 or newer, with the venv module) that environments
        are made from; functions run on its version. Default: the interpreter this kernel
        or server runs on (the base interpreter when that is itself a virtualenv).
        Example: c.FaaSEnvironments.python = "/usr/bin/python3.11".""",
    ).tag(config=True)

    @default("root")
    def _root_default(self):
        return paths.default_environment_dir()

    @default("python")
    def _python_default(self):
        return getattr(sys, "_base_executable", "") or sys.executable

    # -- naming ------------------------------------------------------------------------------

    def key(self, requirements: str) -> str:
        """The dependency key of ``requirements`` on this interpreter.

        The interpreter stands where an image's base image id stands: two machines
        (or two Pythons) never share an environment by mistake.
        """
        python = os.path.realpath(self.python)
        try:
            mtime = os.stat(python).st_mtime_ns
        except OSError as err:
            raise BuildError(
                f"c.FaaSEnvironments.python = {self.python!r} does not exist.",
                hint="Set it to a Python 3.10+ interpreter with the venv module.",
            ) from err
        identity = f"{python} {_interpreter_version(python, mtime)}"
        return image.dependency_key(identity, requirements, runtime.RUNTIME_VERSION)

    def path(self, key: str) -> Path:
        """Where the environment of ``key`` lives (whether or not it exists)."""
        return Path(self.root) / key[:24]

    def find(self, tag: str) -> Path | None:
        """The ready environment whose key starts with ``tag`` (24 hex digits), or None.

        ``tag`` may come from a request, so anything but hex digits is refused
        rather than joined to a path.
        """
        tag = tag[:24]
        if not _TAG.fullmatch(tag):
            return None
        found = Path(self.root) / tag
        return found if (found / READY_FILE).is_file() else None

    # -- building ----------------------------------------------------------------------------

    def ensure(
        self, requirements: str, site: FaaSSite, progress: Progress = no_progress
    ) -> tuple[str, Path, bool]:
        """Build (or reuse) the environment of ``requirements``: ``(key, path, reused)``.

        Kernels and the function server may build the same environment at once; an
        exclusive ``flock`` on ``<root>/<tag>.lock`` makes the second wait and then
        reuse the first's. The environment is made in a temporary folder beside
        its final place and renamed there once complete, so a crash never leaves
        a half-made environment where ``find`` looks.

        Raises:
            BuildError: the venv or pip failed (with a hint from the log).
        """
        key = self.key(requirements)
        path = self.path(key)
        if (path / READY_FILE).is_file():
            progress({"step": "build", "message": f"Reusing environment {path}", "progress": 1.0})
            return key, path, True
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f"{path.name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                progress(
                    {
                        "step": "build",
                        "message": f"Waiting for another build of environment {path}",
                        "progress": None,
                    }
                )
                fcntl.flock(lock, fcntl.LOCK_EX)
            if (path / READY_FILE).is_file():
                progress(
                    {"step": "build", "message": f"Reusing environment {path}", "progress": 1.0}
                )
                return key, path, True
            progress({"step": "build", "message": f"Building environment {path}", "progress": 0.0})
            self._build(key, path, requirements, site, progress)
        progress({"step": "build", "message": f"Built environment {path}", "progress": 1.0})
        return key, path, False

    def _build(
        self, key: str, path: Path, requirements: str, site: FaaSSite, progress: Progress
    ) -> None:
        """Make the environment in a temporary folder and rename it to ``path`` (lock held)."""
        # Under the lock nobody else builds this tag: what is left is from a crashed build.
        for stale in path.parent.glob(f".{path.name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if path.exists():
            shutil.rmtree(path)  # not ready (checked under the lock): an interrupted one
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=path.parent))
        try:
            (tmp / "requirements.txt").write_text(requirements)
            needs_pip = any(
                line.strip() and not line.strip().startswith("#")
                for line in requirements.splitlines()
            )
            log: list[str] = []
            venv = [self.python, "-m", "venv", *([] if needs_pip else ["--without-pip"])]
            self._stream("venv", [*venv, str(tmp / "venv")], None, path, log, progress)
            if needs_pip:
                pip = [
                    str(tmp / "venv" / "bin" / "python"),
                    *("-m pip install --no-cache-dir --disable-pip-version-check").split(),
                    *("--progress-bar off -r").split(),
                    str(tmp / "requirements.txt"),
                ]
                self._stream("pip", pip, site.host_env(), path, log, progress)
            for name, data in runtime.runtime_file_bytes().items():
                (tmp / name).write_bytes(data)
            _relocate(tmp / "venv", tmp, path)
            ready = {"key": key, "python": self.python, "runtime": runtime.RUNTIME_VERSION}
            (tmp / READY_FILE).write_text(json.dumps(ready) + "\n")
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _stream(
        self,
        step: str,
        argv: list[str],
        extra_env: dict[str, str] | None,
        path: Path,
        log: list[str],
        progress: Progress,
    ) -> None:
        """Run one build step, sending each output line as progress; raise BuildError on failure."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        }
        env.update(extra_env or {})
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                text=True,
                errors="replace",
            )
        except OSError as err:
            raise BuildError(
                f"Building the environment {path} failed: cannot run {argv[0]}: {err}",
                hint="Set c.FaaSEnvironments.python to a Python 3.10+ with the venv module.",
            ) from err
        with proc:
            for line in proc.stdout:
                line = line.rstrip()
                if line.strip():
                    log.append(line)
                    progress({"step": "build", "message": line, "progress": None})
        if proc.returncode != 0:
            log.append(f"{' '.join(argv[:4])} … exited with code {proc.returncode}")
            if step == "venv":
                raise BuildError(
                    f"Making a virtualenv with {self.python} failed:\n" + "\n".join(log[-15:]),
                    hint="Install the venv module (Debian: apt-get install python3-venv) or "
                    "set c.FaaSEnvironments.python to a Python that has it.",
                    detail="\n".join(log),
                )
            from .builders.docker import _build_error

            raise _build_error(str(path), log)


def _relocate(venv: Path, old: Path, new: Path) -> None:
    """Point the scripts of ``venv`` (made under ``old``) at ``new``, where it will be renamed.

    A virtualenv is not relocatable: pip writes its absolute path into the ``#!``
    line of every console script (and venv into ``activate``). Python finds its
    prefix from ``pyvenv.cfg`` next to the interpreter, so only these text files
    need the new path; binary files are left alone.
    """
    before, after = str(old).encode(), str(new).encode()
    for file in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if file.is_symlink() or not file.is_file() or file.stat().st_size > _MIB:
            continue
        data = file.read_bytes()
        if before in data and b"\0" not in data:
            file.write_bytes(data.replace(before, after))


# -- runtime processes -----------------------------------------------------------------------


def address_space_limit(memory_mb: int) -> int:
    """The ``RLIMIT_AS`` backstop of a runtime with ``memory_mb``, in bytes.

    The watchdog's resident-memory limit is the real one; this only stops an
    allocation so fast that it would exhaust the machine between two samples.
    Address space is not memory: thread stacks reserve 8 MiB each, glibc's malloc
    reserves 64 MiB per thread arena and OpenBLAS a buffer per core, none of it
    used. Measured: ``import numpy`` plus a 1000x1000 matrix product reaches
    VmPeak 191 MiB with 37 MiB resident (2 cores). So the backstop is
    ``memory_mb`` plus 2 GiB plus 128 MiB per core, far above what a function
    within its limit reserves, far below what would hurt the machine.
    """
    return (memory_mb + 2048 + 128 * (os.cpu_count() or 1)) * _MIB


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _limits(address_space: int):
    """A ``preexec_fn`` setting no core dumps and the address-space backstop (never raised)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = address_space if hard == resource.RLIM_INFINITY else min(address_space, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def log_text(line: str) -> str:
    """What the process printed, from a LogCollector line ``<timestamp> <stream>: <text>``.

    The local tester shows plain lines, as the Docker sandbox's logs are; the
    function server keeps the timestamped form (OpenWhisk's activation logs).
    """
    _, _, rest = line.partition(" ")
    return rest.lstrip(" ").partition(": ")[2]


class RuntimeProcess:
    """One runtime (``<env>/venv/bin/python <env>/runtime.py``) serving on 127.0.0.1.

    Made by :meth:`start`. The process leads its own process group (native
    executables run as its children), so :meth:`kill` ends all of it.

    Memory: a shared watchdog thread samples the resident memory of the group
    every 10 ms while it is ``busy`` and kills it above ``memory_mb``, setting
    ``oom_killed``; an idle one (``set_busy(False)``, as the process invoker says
    between activations) has only its own memory read, every second. The
    ``RLIMIT_AS`` backstop (``address_space_limit``) makes an allocation fail
    with ``MemoryError`` instead; the process survives and answers 502
    ``{"error": "MemoryError…"}``, which callers report as out of memory too
    (``is_memory_error``).

    Attributes:
        action: The ActionClient of its port.
        logs: Its stdout and stderr, cut at the end-of-activation markers.
        memory_mb: Its memory limit.
        oom_killed: Whether the watchdog killed it for memory.
        busy: Whether it may be running an activation (True until ``set_busy(False)``).
    """

    def __init__(self, env_path: Path, memory_mb: int, env: dict, allow_reinit: bool, name: str):
        self.name = name
        self.memory_mb = memory_mb
        self.oom_killed = False
        self.busy = True
        self.port = _free_port()
        self._killed = False
        self._kill_lock = threading.Lock()
        self._folder = Path(tempfile.mkdtemp(prefix=f"faas-{_safe(name)}-"))
        venv_bin = Path(env_path) / "venv" / "bin"
        child = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        child["PATH"] = f"{venv_bin}{os.pathsep}{child.get('PATH', os.defpath)}"
        child.update({str(k): str(v) for k, v in env.items()})
        child.update(
            PORT=str(self.port),
            FAAS_BIND="127.0.0.1",
            FAAS_ACTION_DIR=str(self._folder / "action"),
            FAAS_FUNCTION_DIR=str(self._folder / "function"),
            FAAS_LOCK_FILE=str(self._folder / ".lock"),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        if allow_reinit:
            child[runtime.protocol.ALLOW_REINIT_ENV] = "1"
        else:
            child.pop(runtime.protocol.ALLOW_REINIT_ENV, None)
        # A fresh secret on an inherited pipe, never in the environment: other processes on
        # this machine cannot /init or /run it, and its function cannot read it from /proc.
        child.pop(runtime.protocol.SECRET_ENV, None)
        secret = runtime.protocol.new_secret()
        read_end, write_end = os.pipe()
        os.write(write_end, secret.encode())
        os.close(write_end)
        child[runtime.protocol.SECRET_FD_ENV] = str(read_end)
        try:
            # -s: no user site-packages, so the host's ~/.local does not leak into functions.
            self._proc = subprocess.Popen(
                [str(venv_bin / "python"), "-s", str(Path(env_path) / "runtime.py")],
                cwd=self._folder,
                env=child,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(read_end,),
                preexec_fn=_limits(address_space_limit(memory_mb)),
            )
        except OSError as err:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise ContainerGone(f"The runtime of {name} could not be started: {err}") from err
        finally:
            os.close(read_end)
        self.pid = self._proc.pid
        # Imported here: the server package is heavy, and a kernel that only builds needs none.
        from .server.pool.logs import LogCollector

        self.action = ActionClient("127.0.0.1", self.port, secret=secret)
        self.logs = LogCollector.pipes(self._proc.stdout, self._proc.stderr, name)
        _WATCHDOG.add(self)

    @classmethod
    def start(
        cls,
        env_path: Path,
        *,
        memory_mb: int,
        env: dict,
        allow_reinit: bool,
        name: str,
        timeout: float = START_TIMEOUT_S,
    ) -> RuntimeProcess:
        """Start the runtime of the environment at ``env_path`` and wait until it listens.

        Args:
            memory_mb: Its resident-memory limit (MiB, as Docker's ``--memory``).
            env: Variables for the function besides a minimal copy of ours (PATH,
                HOME, LANG, TMPDIR), e.g. the site's proxy and CA variables.
            allow_reinit: Accept a second ``/init`` (the local tester's warm reuse).
            name: Names its threads, temporary folder and messages.
            timeout: Seconds it may take to listen.

        Raises:
            ContainerGone: it exited or did not listen in time (with its stderr tail).
        """
        for attempt in range(3):
            proc = cls(env_path, memory_mb, env, allow_reinit, name)
            try:
                proc._wait_listening(timeout)
                return proc
            except ContainerGone as err:
                # The free port was taken between our probe and its bind: try another.
                if "Address already in use" not in str(err) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        code = self._proc.poll()
        self.kill()
        self.logs.wait_ended(2)
        tail = "\n".join(log_text(line) for line in self.logs.take(0, 64 * 1024)[-20:])
        why = (
            f"exited with code {code}"
            if code is not None
            else f"did not listen on 127.0.0.1:{self.port} within {timeout:g} s"
        )
        raise ContainerGone(f"The runtime of {self.name} {why}:\n{tail}".rstrip())

    @property
    def returncode(self) -> int | None:
        """Its exit code (negative: the signal that killed it), or None while it runs."""
        return self._proc.poll()

    def alive(self) -> bool:
        """Whether the runtime process still runs."""
        return self._proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for it to exit; its exit code, or None if it still runs."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Kill its whole process group and clean up; safe to call twice."""
        with self._kill_lock:
            if self._killed:
                return
            self._killed = True
        _WATCHDOG.remove(self)
        self._signal_group()
        self.wait(5)
        self.action.close()
        self.logs.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _signal_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def set_busy(self, busy: bool) -> None:
        """Say whether it runs an activation now, for the watchdog's pace.

        A busy process and its children are sampled every 10 ms (the children found by a
        /proc scan every ``RESCAN_EVERY`` samples); an idle one only by a read of its own
        resident memory every ``IDLE_WATCH_S`` seconds, and no /proc scan at all while
        every process is idle. Its owner marks it idle between activations; one never
        marked idle is watched as busy.
        """
        self.busy = busy
        if busy:
            _WATCHDOG.wake()

    def _over_limit(self) -> None:
        """Called by the watchdog: mark, then kill the group (the owner still calls kill)."""
        self.oom_killed = True
        self._signal_group()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "runtime"


# -- the memory watchdog ---------------------------------------------------------------------


def _rss(pid: int) -> int:
    """Resident bytes of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _group_members(groups: set[int]) -> dict[int, list[int]]:
    """The other processes of each process group in ``groups`` (one scan of /proc)."""
    members: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit() or int(entry) in groups:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            pgrp = int(stat[stat.rindex(b")") + 2 :].split()[2])
        except (OSError, ValueError, IndexError):
            continue
        if pgrp in groups:
            members.setdefault(pgrp, []).append(int(entry))
    return members


class _Watchdog:
    """One daemon thread enforcing the memory limit of every runtime process here.

    While a runtime is busy (runs an activation, or its owner never said otherwise), its
    own resident memory is read every 10 ms (a ``statm`` read, about 10 µs) and its
    children (native executables) are found by a /proc scan every ``RESCAN_EVERY``
    samples, since that costs about 1 ms per 100 processes; a child that allocates in
    between is bounded by the inherited ``RLIMIT_AS``. An idle runtime's own memory is
    read every ``IDLE_WATCH_S`` seconds; with every runtime idle the thread sleeps until
    one turns busy (``wake``) or that time is up, and scans nothing. The thread runs only
    while there are processes to watch.

    Attributes:
        scans: The /proc scans made so far (for tests and benchmarks).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._procs: dict[int, RuntimeProcess] = {}
        self._thread: threading.Thread | None = None
        self._woken = threading.Event()
        self.scans = 0

    def add(self, proc: RuntimeProcess) -> None:
        with self._lock:
            self._procs[id(proc)] = proc
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="faas-memory-watchdog", daemon=True
                )
                self._thread.start()
        self._woken.set()  # a new process is busy until told otherwise

    def remove(self, proc: RuntimeProcess) -> None:
        with self._lock:
            self._procs.pop(id(proc), None)

    def wake(self) -> None:
        """A runtime turned busy: sample at the busy pace from now."""
        self._woken.set()

    def _loop(self) -> None:
        members: dict[int, list[int]] = {}
        tick = 0
        idle_due = 0.0
        while True:
            self._woken.clear()
            with self._lock:
                procs = list(self._procs.values())
                if not procs:
                    self._thread = None
                    return
            busy = [p for p in procs if p.busy]
            if busy and tick % RESCAN_EVERY == 0:
                members = _group_members({p.pid for p in busy})
                self.scans += 1
            tick = tick + 1 if busy else 0
            watched = busy
            if time.monotonic() >= idle_due:
                idle_due = time.monotonic() + IDLE_WATCH_S
                watched = procs
            for proc in watched:
                if proc.oom_killed or proc._proc.returncode is not None:
                    continue  # reaped: its pid may belong to another process by now
                used = _rss(proc.pid)
                if proc.busy:
                    used += sum(_rss(pid) for pid in members.get(proc.pid, ()))
                if used > proc.memory_mb * _MIB:
                    proc._over_limit()
            if busy:
                time.sleep(WATCH_INTERVAL_S)
            else:
                self._woken.wait(max(0.0, idle_due - time.monotonic()))


_WATCHDOG = _Watchdog()

__all__ = [
    "FaaSEnvironments",
    "RuntimeProcess",
    "address_space_limit",
    "is_memory_error",
    "log_text",
]

"""Make the base image offline: a Debian rootfs from debootstrap, imported into Docker.

Sites without Docker Hub (air-gapped clusters, this project's CI) cannot pull
``python:3.11-slim``. Debian's own package mirror is usually reachable there,
so the base image every function image starts from is built from it:
``debootstrap --variant=minbase`` makes a small root file system with Python,
and the engine imports it as an image. Run it as ``jupyter faas base build``
or ``python -m jupyter_faas.baseimage``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import docker.errors
import requests
from docker.utils import parse_repository_tag
from traitlets import Float, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import engine
from .config import load_jupyter_config
from .errors import BuildError, ConfigError, FaaSError

#: Where Debian 12 keeps its deb822 source list, then the classic one.
APT_SOURCES = ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list")
FALLBACK_MIRROR = "http://deb.debian.org/debian"

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")
#: Lines of debootstrap output kept for the error detail when it fails.
_LOG_TAIL = 60


def apt_mirror(sources: tuple[str, ...] = APT_SOURCES) -> str:
    """The Debian mirror apt already uses here: the one most likely to be reachable.

    Reads the first ``URIs:`` field of a deb822 file or the first ``deb`` line of
    a classic list, in the order given.

    Args:
        sources: Paths to read; missing or unreadable ones are skipped.

    Returns:
        The mirror URI without a trailing slash, or ``http://deb.debian.org/debian``.
    """
    for path in sources:
        try:
            lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("URIs:"):
                uris = line[len("URIs:") :].split()
                if uris:
                    return uris[0].rstrip("/")
            elif line.startswith("deb "):
                # deb [arch=amd64 signed-by=...] URI suite components
                words = re.sub(r"\[[^\]]*\]", " ", line).split()
                if len(words) >= 2:
                    return words[1].rstrip("/")
    return FALLBACK_MIRROR


class BaseImageBuilder(LoggingConfigurable):
    """Builds a Debian base image with Python from a package mirror, without any registry."""

    image = Unicode(
        "jupyter-faas-base:bookworm",
        help="""Name (repository:tag) the built image gets on the Docker engine.
        Function images start from it when c.FaaSImages.base_image names it.
        Example: jupyter-faas-base:bookworm or 127.0.0.1:5000/faas-base:12.""",
    ).tag(config=True)

    suite = Unicode(
        "bookworm",
        help="""Debian suite (release code name) to bootstrap, e.g. bookworm (Debian 12,
        Python 3.11) or trixie (Debian 13). It must exist on the mirror.""",
    ).tag(config=True)

    mirror = Unicode(
        help="""Debian package mirror URI (http, https or file). Default: the first mirror in
        /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list, else
        http://deb.debian.org/debian. Example: http://mirror.example.org/debian.""",
    ).tag(config=True)

    packages = List(
        Unicode(),
        default_value=["python3", "python3-venv", "python3-pip", "ca-certificates"],
        help="""Debian packages installed into the image on top of the minbase variant.
        python3 is needed by every function image; add e.g. libgomp1 for numeric code.""",
    ).tag(config=True)

    workdir = Unicode(
        "/var/tmp",
        help="""Folder in which a temporary rootfs folder is made (about 400 MB) and removed
        after the import. It must be on a file system that allows device files and
        ownership changes (not a noexec/nodev mount). Default: /var/tmp.""",
    ).tag(config=True)

    debootstrap = Unicode(
        "debootstrap",
        help="""The debootstrap program: a name looked up on PATH (plus /usr/sbin and /sbin)
        or an absolute path. Install it with `apt-get install debootstrap`.""",
    ).tag(config=True)

    timeout = Float(
        900.0,
        help="""Seconds debootstrap may run before it is stopped (about 60 s is usual on a
        near mirror). 0 means no limit.""",
    ).tag(config=True)

    mirror_timeout = Float(
        15.0,
        help="""Seconds to wait for the mirror's Release file when checking the mirror
        before debootstrap starts. Example: 60 for a slow proxy.""",
    ).tag(config=True)

    @default("mirror")
    def _default_mirror(self) -> str:
        return apt_mirror()

    @validate("mirror")
    def _validate_mirror(self, proposal) -> str:
        value = proposal["value"].strip().rstrip("/")
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https", "file") or not (parsed.netloc or parsed.path):
            raise ConfigError(
                f"The Debian mirror {proposal['value']!r} is not an http://, https:// or "
                "file:// URI.",
                hint="Set --mirror / c.BaseImageBuilder.mirror to e.g. "
                "http://deb.debian.org/debian (the URI in your apt sources).",
            )
        return value

    @validate("suite")
    def _validate_suite(self, proposal) -> str:
        value = proposal["value"].strip()
        if not _SUITE_RE.match(value):
            raise ConfigError(
                f"The Debian suite {value!r} is not a release name.",
                hint="Use a code name such as bookworm (c.BaseImageBuilder.suite).",
            )
        return value

    @validate("packages")
    def _validate_packages(self, proposal) -> list[str]:
        bad = [name for name in proposal["value"] if not _PACKAGE_RE.match(name)]
        if bad:
            raise ConfigError(
                f"{', '.join(map(repr, bad))} are not Debian package names (lower case letters, "
                "digits, + - . only).",
                hint="Fix c.BaseImageBuilder.packages, e.g. ['python3', 'python3-venv'].",
            )
        return list(proposal["value"])

    @validate("image")
    def _validate_image(self, proposal) -> str:
        value = proposal["value"].strip()
        if not _IMAGE_RE.match(value):
            raise ConfigError(
                f"The image name {value!r} is not a valid Docker image reference "
                "(lower case, digits, . _ - / :).",
                hint="Use e.g. --image jupyter-faas-base:bookworm.",
            )
        return value

    def build(self, progress: Callable[[str], None] | None = None) -> str:
        """Bootstrap a Debian rootfs and import it into Docker as :attr:`image`.

        Args:
            progress: Called with each line of debootstrap output and each step, so a
                CLI or widget can show that a minute-long build is alive.

        Returns:
            The id of the new image (``sha256:...``).

        Raises:
            ConfigError: debootstrap is missing, we are not root, or workdir is unusable.
            BuildError: the mirror or suite does not answer, debootstrap failed, or the
                engine refused the import; ``detail`` holds the log tail.
            EngineUnavailable: the Docker engine is not running.
        """
        say = progress or (lambda line: None)
        program = self._debootstrap_path()
        self._check_mirror()
        self._check_root()
        client = engine.docker_client()
        try:
            os.makedirs(self.workdir, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix="jupyter-faas-base-", dir=self.workdir)
        except OSError as err:
            raise ConfigError(
                f"Cannot make a build folder in {self.workdir!r}: {err.strerror}.",
                hint="Set --workdir / c.BaseImageBuilder.workdir to a writable folder "
                "with about 400 MB free.",
            ) from err
        rootfs = os.path.join(tmp, "rootfs")
        try:
            started = time.monotonic()
            self._debootstrap(program, rootfs, say)
            self.log.info("debootstrap finished in %.0f s", time.monotonic() - started)
            _trim_rootfs(rootfs)
            say(f"Importing the rootfs into Docker as {self.image}")
            image_id = self._import(client, rootfs)
        finally:
            _remove_tree(tmp, self.log)
        say(f"Built {self.image} ({image_id})")
        return image_id

    def _debootstrap_path(self) -> str:
        name = self.debootstrap
        if os.sep in name:
            found = name if os.access(name, os.X_OK) and os.path.isfile(name) else None
        else:
            search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
            found = shutil.which(name, path=search)
        if not found:
            raise ConfigError(
                f"debootstrap ({name!r}) is not installed or not executable; it makes the "
                "Debian rootfs of the base image.",
                hint="Install it as root with `apt-get install debootstrap` (or run "
                "`bash scripts/setup.sh`), or set c.BaseImageBuilder.debootstrap to its path.",
            )
        return found

    def _check_root(self) -> None:
        if os.geteuid() != 0:
            raise ConfigError(
                "Building the base image needs root: debootstrap creates device files and "
                "files owned by other users.",
                hint="Run it as root, e.g. `sudo .venv/bin/jupyter-faas base build`, or use a "
                "public image instead (c.FaaSImages.base_image = 'python:3.11-slim').",
            )

    def _check_mirror(self) -> None:
        """Fail in seconds, with the mirror named, rather than deep in debootstrap's log."""
        release = f"{self.mirror}/dists/{self.suite}/Release"
        hint = (
            "Set --mirror / c.BaseImageBuilder.mirror to a Debian mirror this machine can "
            "reach (see the URIs in /etc/apt/sources.list.d/), and --suite to a release it carries."
        )
        parsed = urlparse(release)
        if parsed.scheme == "file":
            if not os.path.isfile(parsed.path):
                raise BuildError(
                    f"The Debian mirror {self.mirror} has no suite {self.suite!r} "
                    f"({parsed.path} is missing).",
                    hint=hint,
                )
            return
        try:
            response = requests.get(release, timeout=self.mirror_timeout, stream=True)
            response.close()
        except requests.RequestException as err:
            raise BuildError(
                f"The Debian mirror {self.mirror} does not answer ({type(err).__name__}).",
                hint=hint,
                detail=str(err),
            ) from err
        if response.status_code == 404:
            raise BuildError(
                f"The Debian mirror {self.mirror} has no suite {self.suite!r} "
                f"(GET {release} answered 404).",
                hint=hint,
            )
        if response.status_code >= 400:
            raise BuildError(
                f"The Debian mirror {self.mirror} answered HTTP {response.status_code} "
                f"for {release}.",
                hint=hint,
            )

    def _debootstrap(self, program: str, rootfs: str, say: Callable[[str], None]) -> None:
        command = [
            program,
            "--variant=minbase",
            f"--include={','.join(self.packages)}",
            self.suite,
            rootfs,
            self.mirror,
        ]
        self.log.info("Running %s", " ".join(command))
        say(f"Bootstrapping Debian {self.suite} from {self.mirror} (about a minute)")
        tail: deque[str] = deque(maxlen=_LOG_TAIL)
        # A session of its own, so a timeout stops the whole tree (dpkg in the chroot too).
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _kill_group(proc)

        timer = threading.Timer(self.timeout, expire) if self.timeout > 0 else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for line in proc.stdout:
                line = line.rstrip()
                tail.append(line)
                say(line)
            status = proc.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            proc.stdout.close()
        if status != 0:
            why = (
                f"ran longer than {self.timeout:.0f} s"
                if expired.is_set()
                else f"exited with {status}"
            )
            log_file = os.path.join(rootfs, "debootstrap", "debootstrap.log")
            detail = "\n".join(tail)
            try:
                detail += "\n--- debootstrap.log (tail) ---\n" + "\n".join(
                    Path(log_file).read_text(errors="replace").splitlines()[-_LOG_TAIL:]
                )
            except OSError:
                pass
            last = next((line for line in reversed(tail) if line.startswith("E:")), "")
            raise BuildError(
                f"debootstrap of Debian {self.suite} from {self.mirror} {why}"
                + (f": {last}" if last else "."),
                hint="Check the mirror and the package names (c.BaseImageBuilder.packages); "
                "the log tail is in the error detail.",
                detail=detail,
            )

    def _import(self, client, rootfs: str) -> str:
        repository, tag = parse_repository_tag(self.image)
        changes = ["ENV LANG=C.UTF-8", 'CMD ["python3"]']
        changes += [f"LABEL {key}={value}" for key, value in engine.labels("base").items()]
        tar = subprocess.Popen(
            # Docker provides /dev, /proc and /sys at run time; their contents are not image data.
            [
                "tar",
                "-C",
                rootfs,
                "--numeric-owner",
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-c",
                ".",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            answer = client.api.import_image(
                src=_chunks(tar.stdout),
                repository=repository,
                tag=tag or "latest",
                changes=changes,
                stream_src=True,
            )
        except docker.errors.APIError as err:
            raise BuildError(
                f"The Docker engine refused the import of {self.image}: {err.explanation or err}.",
                hint="Check `docker info` and the free space of the engine's data root.",
            ) from err
        finally:
            tar.stdout.close()
            stderr = tar.stderr.read().decode(errors="replace")
            tar.stderr.close()
            tar_status = tar.wait()
        if tar_status != 0:
            raise BuildError(
                f"Packing the rootfs with tar failed (exit {tar_status}).",
                hint="Check the free space and permissions of c.BaseImageBuilder.workdir.",
                detail=stderr,
            )
        if "errorDetail" in str(answer):
            raise BuildError(
                f"The Docker engine could not import {self.image}.",
                hint="Check `docker info` and the free space of the engine's data root.",
                detail=str(answer),
            )
        return client.images.get(self.image).id


def _chunks(stream, size: int = 1 << 20) -> Iterator[bytes]:
    """Read a pipe in chunks so docker-py streams it (chunked) instead of sizing it."""
    while chunk := stream.read(size):
        yield chunk


def _trim_rootfs(rootfs: str) -> None:
    """Drop apt's downloaded packages and lists: images run `apt-get update` before installs."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"):
        for entry in Path(rootfs).glob(pattern):
            entry.unlink()


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _remove_tree(path: str, log) -> None:
    """Remove a build folder, first unmounting anything debootstrap left mounted in it.

    debootstrap mounts /proc and /sys (and may bind /dev) into the rootfs; if it was
    killed those mounts stay, and deleting through a bind mount would delete host files.
    """
    real = os.path.realpath(path)
    mounts = _mounts_below(real)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    left = _mounts_below(real)
    if left:
        log.error("Not removing %s: still mounted there: %s", path, ", ".join(left))
        return
    shutil.rmtree(path, ignore_errors=False)


def _mounts_below(path: str) -> list[str]:
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            points = [line.split()[1].replace("\\040", " ") for line in f if line.strip()]
    except OSError:
        return []
    return [p for p in points if p == path or p.startswith(path + "/")]


def base_build_main(argv: list[str]) -> int:
    """``jupyter faas base build``: build the base image and report it.

    Args:
        argv: Command-line arguments after ``base build``.

    Returns:
        The process exit status: 0 on success, 1 on a reported error.
    """
    parser = argparse.ArgumentParser(
        prog="jupyter faas base build",
        description="Build the Debian base image offline from a package mirror "
        "(debootstrap + docker import). Needs root and debootstrap.",
    )
    parser.add_argument("--image", help="image name (default: jupyter-faas-base:bookworm)")
    parser.add_argument("--mirror", help="Debian mirror URI (default: the one apt uses)")
    parser.add_argument("--suite", help="Debian suite (default: bookworm)")
    parser.add_argument("--workdir", help="folder for the temporary rootfs (default: /var/tmp)")
    parser.add_argument("--quiet", action="store_true", help="print only the result or the error")
    args = parser.parse_args(argv)
    settings = {
        name: getattr(args, name)
        for name in ("image", "mirror", "suite", "workdir")
        if getattr(args, name) is not None
    }

    def show(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        # Settings come from jupyter_faas_config.py (c.BaseImageBuilder.*), then the flags.
        builder = BaseImageBuilder(config=load_jupyter_config(), **settings)
        builder.build(progress=None if args.quiet else show)
    except FaaSError as err:
        sys.stderr.write(f"error: {err}\n")
        if err.detail:
            sys.stderr.write(err.detail.rstrip() + "\n")
        return 1
    show(f"{builder.image} is ready.")
    return 0


if __name__ == "__main__":
    sys.exit(base_build_main(sys.argv[1:]))

"""Dependency images: base image + pinned requirements + our runtime, keyed by a hash.

A function's code is not in its image: it reaches a running container through
OpenWhisk's ``/init``. So the image depends only on what goes into it, and two
functions (or two edits of one) with the same requirements share one image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import tarfile

from traitlets import Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import runtime
from .errors import ConfigError
from .site import CONTAINER_CA_PATH, FaaSSite, check_setting_text

#: Label carrying the dependency key on every dependency image.
KEY_LABEL = "org.jupyter-faas.key"
#: Label of a dependency image that derives from a published function's image: that
#: function (OWNER/PACKAGE/NAME) and the base's pinned reference.
BASE_LABEL = "org.jupyter-faas.base"
#: Role label of dependency images (``deps``; a builder's extra labels may set it).
ROLE_LABEL = "org.jupyter-faas.role"

#: An image reference as Docker accepts it: [registry[:port]/]path[:tag][@digest].
_IMAGE_REF = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"  # registry host[:port]
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"  # first path component
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"  # further path components
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"  # tag
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"  # digest
)


def check_image_ref(setting: str, ref: str) -> str:
    """Refuse anything but a Docker image reference (no spaces, newlines or options).

    Raises:
        ConfigError: ``ref`` is not an image reference.
    """
    check_setting_text(setting, ref)
    if not _IMAGE_REF.match(ref) or len(ref) > 255:
        raise ConfigError(
            f"{setting} = {ref!r} is not a Docker image reference "
            "([registry[:port]/]name[:tag][@sha256:digest], lower-case name, no spaces).",
            hint=f"Set {setting} to an image such as 'python:3.11-slim' or "
            "'registry.example.org:5000/team/python:3.11'.",
        )
    return ref


class FaaSImages(LoggingConfigurable):
    """How dependency images are named and what they start from."""

    base_image = Unicode(
        help="""Image every dependency image starts FROM. It needs python3 (3.10 or newer)
        with the venv module. Sites that can pull use a public image such as
        "python:3.11-slim"; air-gapped sites make "jupyter-faas-base:bookworm" offline from
        Debian packages with `jupyter faas base build`. Default: $FAAS_BASE_IMAGE or
        "jupyter-faas-base:bookworm".""",
    ).tag(config=True)

    repository = Unicode(
        "jupyter-faas/deps",
        help="""Local repository name of dependency images; the tag is the dependency key,
        e.g. jupyter-faas/deps:3f2a…""",
    ).tag(config=True)

    @default("base_image")
    def _base_image_default(self):
        return os.environ.get("FAAS_BASE_IMAGE", "jupyter-faas-base:bookworm")

    @validate("base_image")
    def _check_base_image(self, proposal):
        return check_image_ref("c.FaaSImages.base_image", proposal["value"].strip())

    @validate("repository")
    def _check_repository(self, proposal):
        value = proposal["value"].strip()
        if ":" in value.rsplit("/", 1)[-1] or "@" in value:
            raise ConfigError(
                f"c.FaaSImages.repository = {value!r} holds a tag or digest; the tag is the "
                "dependency key.",
                hint="Set it to a repository name only, e.g. 'jupyter-faas/deps'.",
            )
        return check_image_ref("c.FaaSImages.repository", value)

    def local_ref(self, key: str) -> str:
        """The local name of the dependency image with ``key``."""
        return f"{self.repository}:{key[:24]}"


def dependency_key(base_image_id: str, requirements: str, runtime_version: str) -> str:
    """The hash that names a dependency image: what goes into it, and nothing else."""
    lines = sorted({line.strip() for line in requirements.splitlines() if line.strip()})
    digest = hashlib.sha256()
    for part in (base_image_id, "\n".join(lines), runtime_version):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def dockerfile(base_image: str, key: str, site: FaaSSite, derived_from: str = "") -> str:
    """The Dockerfile of a dependency image.

    ``derived_from`` (a published function, ``OWNER/PACKAGE/NAME``) says ``base_image`` is
    that function's dependency image, pinned by digest: its virtualenv and runtime are
    there already, so the requirements are installed into that virtualenv (what the base
    holds stays) and the runtime is replaced by this version's.

    The CA bundle and index settings apply to the pip step only: they are build
    inputs of the site, not part of what the function image promises. Every value is
    checked to be one line and shell-quoted, so a space-separated
    ``pip_extra_index_url`` reaches pip as one variable and no value can add a
    Dockerfile instruction or a shell command.

    Raises:
        ConfigError: ``base_image`` is not an image reference, or a setting holds a newline.
    """
    check_image_ref("c.FaaSImages.base_image", base_image)
    env = site.pip_env()
    for name, value in env.items():
        check_setting_text(f"pip build variable {name}", value)
    pip_env = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    ca_copy = f"COPY site-ca.crt {CONTAINER_CA_PATH}\n" if site.ca_bundle else ""
    ca_remove = f" && rm -f {CONTAINER_CA_PATH}" if site.ca_bundle else ""
    labels = f'org.jupyter-faas="1" {ROLE_LABEL}="deps" {KEY_LABEL}={json.dumps(key)}'
    # The base's own list stays in /faas/requirements.txt; a derived layer's is beside it.
    own = "/faas/requirements.txt"
    make_venv = "python3 -m venv /faas/venv && "
    if derived_from:
        check_setting_text("the base function", derived_from)
        labels += f" {BASE_LABEL}={json.dumps(f'{derived_from} {base_image}')}"
        own, make_venv = f"/faas/requirements-{key[:12]}.txt", ""
    return (
        f"FROM {base_image}\n"
        f"LABEL {labels}\n"
        f"{ca_copy}"
        f"COPY requirements.txt {own}\n"
        f"RUN {make_venv}{pip_env} /faas/venv/bin/pip install --no-cache-dir"
        f" --disable-pip-version-check --progress-bar off -r {own}{ca_remove}\n"
        "COPY runtime.py faas_protocol.py /faas/\n"
        "ENV PATH=/faas/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1\n"
        "WORKDIR /faas\n"
        "EXPOSE 8080\n"
        'CMD ["python3", "/faas/runtime.py"]\n'
    )


def build_context(
    base_image: str, key: str, requirements: str, site: FaaSSite, derived_from: str = ""
) -> io.BytesIO:
    """A tar build context holding the Dockerfile, requirements, runtime and CA bundle."""
    files = {
        "Dockerfile": dockerfile(base_image, key, site, derived_from).encode(),
        "requirements.txt": requirements.encode(),
        **runtime.runtime_file_bytes(),
    }
    if site.ca_bundle:
        with open(site.ca_bundle, "rb") as f:
            files["site-ca.crt"] = f.read()
    return tar_context(files)


def inputs_hash(files: dict[str, bytes], base_id: str, build_args: dict[str, str]) -> str:
    """The hash of everything an image is made of: its base, build arguments and the
    contents of its build context's files (a CA bundle's included)."""
    digest = hashlib.sha256(
        base_id.encode() + b"\0" + json.dumps(build_args, sort_keys=True).encode()
    )
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def tar_context(files: dict[str, bytes]) -> io.BytesIO:
    """An in-memory Docker build context holding ``files`` (name -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf

"""Build (or reuse) the DIALS spot-finding image: the base image + Debian's ``dials`` + our
action runtime + ``handler.py`` and the ``xtal`` package baked in as the function.

    .venv/bin/python examples/crystallography/dials/build.py [--base-image REF] [--quiet]

prints the image's reference and its size next to the base image's. The tag is a hash of
everything that goes in (the base image's id, the Dockerfile, the runtime, the function's
files, the proxy settings), so an unchanged input is never rebuilt. The image carries the
labels ``org.jupyter-faas=1``, ``org.jupyter-faas.role=xtal-dials`` and the inputs' hash
(``org.jupyter-faas.xtal-dials-inputs``), so images of older inputs can be found and removed
(``--prune``) without touching anything else.

The site's settings (``FaaSSite``: CA bundle, proxies) apply to the ``apt-get`` step only, as
in our dependency images: the CA bundle is copied in for that step and removed in it. Deploy
the image as a blackbox action (see docs/crystallography.md, "DIALS").
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jupyter_faas import engine, runtime
from jupyter_faas.errors import BuildError, FaaSError
from jupyter_faas.image import FaaSImages, check_image_ref, inputs_hash, tar_context
from jupyter_faas.site import FaaSSite

HERE = Path(__file__).resolve().parent
XTAL = HERE.parent / "xtal"
#: Local repository of the image; the tag is the inputs' hash.
REPOSITORY = "jupyter-faas/xtal-dials"
#: The role label of the image.
ROLE = "xtal-dials"
#: Label carrying the hash of the image's inputs.
INPUTS_LABEL = "org.jupyter-faas.xtal-dials-inputs"
#: Where the CA bundle sits during the apt step (removed in the same step).
BUILD_CA_PATH = "/tmp/site-ca.crt"


@dataclass
class DialsImage:
    """A built (or reused) DIALS image."""

    ref: str
    key: str
    reused: bool
    seconds: float


def dockerfile(base_image: str, with_ca: bool) -> str:
    """The Dockerfile: DIALS from Debian first (the slow layer), then the runtime and function."""
    check_image_ref("--base-image", base_image)
    ca = f" -o Acquire::https::CAInfo={BUILD_CA_PATH}" if with_ca else ""
    return (
        f"FROM {base_image}\n"
        f"COPY site-ca.crt {BUILD_CA_PATH}\n"
        f"RUN apt-get{ca} update -q"
        f" && DEBIAN_FRONTEND=noninteractive apt-get{ca} install -y -q --no-install-recommends"
        # No fsync per unpacked file: a crash mid-build leaves no image anyway.
        " -o Dpkg::Options::=--force-unsafe-io dials"
        f" && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* {BUILD_CA_PATH}\n"
        "COPY runtime.py faas_protocol.py /faas/\n"
        "COPY function/ /faas/function/\n"
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1\n"
        "WORKDIR /faas\n"
        "EXPOSE 8080\n"
        'CMD ["python3", "/faas/runtime.py"]\n'
    )


def build_files(base_image: str, site: FaaSSite) -> dict[str, bytes]:
    """The build context: Dockerfile, runtime, the function (handler + xtal), CA bundle."""
    files = {
        "Dockerfile": dockerfile(base_image, bool(site.ca_bundle)).encode(),
        **runtime.runtime_file_bytes(),
        "function/handler.py": (HERE / "handler.py").read_bytes(),
        "site-ca.crt": Path(site.ca_bundle).read_bytes() if site.ca_bundle else b"",
    }
    for path in sorted(XTAL.glob("*.py")):
        files[f"function/xtal/{path.name}"] = path.read_bytes()
    return files


def build(
    base_image: str | None = None,
    repository: str = REPOSITORY,
    labels: dict[str, str] | None = None,
    echo=print,
) -> DialsImage:
    """Build the image unless one with the same inputs is there.

    Args:
        base_image: What to start FROM; default ``c.FaaSImages.base_image``
            (``$FAAS_BASE_IMAGE`` or ``jupyter-faas-base:bookworm``), a Debian 12 image.
        repository: The image's repository; the tag is the inputs' hash.
        labels: More labels for the image (they are not part of the hash).
        echo: Called with each line of progress.

    Raises:
        BaseImageMissing: the base image is not there (``jupyter faas base build``).
        BuildError: the build failed; the message ends with the build's last lines.
    """
    start = time.perf_counter()
    site = FaaSSite()
    base_image = base_image or FaaSImages().base_image
    client = engine.docker_client()
    base_id = engine.require_base_image(client, base_image)
    files = build_files(base_image, site)
    build_args = site.proxy_env()
    key = inputs_hash(files, base_id, build_args)
    ref = check_image_ref("repository", f"{repository}:{key[:16]}")
    if engine.has_image(client, ref):
        echo(f"xtal-dials: {ref} is up to date")
        return DialsImage(ref, key, True, time.perf_counter() - start)
    echo(f"xtal-dials: building {ref} from {base_image} (apt-get install dials: minutes)")
    engine.build_image(
        client,
        tar_context(files),
        ref,
        lambda line: echo(f"  {line}"),
        lambda log: BuildError(
            f"Building the DIALS image {ref} failed:\n" + "\n".join(log[-20:]),
            hint="apt-get needs the Debian mirror of the base image's sources.list "
            "(through c.FaaSSite.http_proxy / https_proxy, with c.FaaSSite.ca_bundle "
            "for an https mirror behind a TLS-intercepting proxy).",
            detail="\n".join(log),
        ),
        buildargs=build_args,
        labels={**(labels or {}), **engine.labels(ROLE), INPUTS_LABEL: key},
    )
    return DialsImage(ref, key, False, time.perf_counter() - start)


def image_size(ref: str) -> int:
    """Bytes of the image ``ref`` on the engine (``docker image inspect``'s Size)."""
    return int(engine.docker_client().images.get(ref).attrs["Size"])


def prune(keep: str, echo=print) -> list[str]:
    """Remove images of this script (our labels) other than ``keep``; returns their tags."""
    client = engine.docker_client()
    removed = []
    for image in client.images.list(
        filters={"label": [engine.LABEL, f"{engine.ROLE_LABEL}={ROLE}"]}
    ):
        if keep in image.tags or image.id == client.images.get(keep).id:
            continue
        engine.remove_labelled(client, **{INPUTS_LABEL: image.labels[INPUTS_LABEL]})
        removed.extend(image.tags or [image.id])
        echo(f"xtal-dials: removed {', '.join(image.tags or [image.id])}")
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="examples/crystallography/dials/build.py",
        description="Build (or reuse) the DIALS spot-finding image; print its reference and size.",
    )
    parser.add_argument(
        "--base-image", default=None, help="FROM (default: c.FaaSImages.base_image)"
    )
    parser.add_argument("--prune", action="store_true", help="Remove this script's older images.")
    parser.add_argument("--quiet", action="store_true", help="Print only the reference.")
    args = parser.parse_args(argv)

    def echo(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    try:
        built = build(args.base_image, echo=echo)
        if args.prune:
            prune(built.ref, echo)
    except FaaSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    base = args.base_image or FaaSImages().base_image
    print(built.ref)
    echo(
        f"xtal-dials: {image_size(built.ref) / 1e6:.0f} MB "
        f"(base image {base}: {image_size(base) / 1e6:.0f} MB); "
        f"{'reused' if built.reused else 'built'} in {built.seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m jupyter_faas.hub.image``: the hub's single-user image, built from the base image.

No registry of images is needed: the image starts FROM the offline base image
(``jupyter faas base build``) and pip installs JupyterLab, jupyter-collaboration,
the hub's own JupyterHub version and the project's wheel from the site's package
index, with the site's CA bundle (``FaaSSite``) used for that step only. The tag
is a hash of everything that goes in, so an unchanged input is never rebuilt and
the hub can pin the exact image (``DockerSpawner.allowed_images``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .. import engine
from ..errors import BuildError, FaaSError
from ..image import FaaSImages, check_image_ref, inputs_hash, tar_context
from ..site import FaaSSite

#: Where the CA bundle sits during the pip step (removed in the same step).
BUILD_CA_PATH = "/tmp/site-ca.crt"
#: Label carrying the hash of the image's inputs.
INPUTS_LABEL = "org.jupyter-faas.hub-image-inputs"


def build_files(context: Path, wheel: Path, base_image: str, site: FaaSSite) -> dict[str, bytes]:
    """The build context: ``context``'s files, the wheel, and the site's CA bundle."""
    files = {
        p.relative_to(context).as_posix(): p.read_bytes()
        for p in sorted(context.rglob("*"))
        if p.is_file()
    }
    if "Dockerfile" not in files:
        raise FaaSError(
            f"{context} has no Dockerfile.", hint="Give the hub/ folder of the repository."
        )
    files[f"wheels/{wheel.name}"] = wheel.read_bytes()
    files["site-ca.crt"] = Path(site.ca_bundle).read_bytes() if site.ca_bundle else b""
    return files


def build(
    context: Path,
    wheel: Path,
    repository: str = "jupyter-faas-singleuser",
    labels: dict[str, str] | None = None,
    echo=print,
) -> str:
    """Build (or reuse) the single-user image; return its reference ``REPOSITORY:HASH``.

    Raises:
        BaseImageMissing: the base image is not there (``jupyter faas base build``).
        BuildError: the build failed; the message ends with the build's last lines.
    """
    site = FaaSSite()
    base_image = FaaSImages().base_image
    client = engine.docker_client()
    base_id = engine.require_base_image(client, base_image)
    files = build_files(context, wheel, base_image, site)
    pip_env = site.pip_env(ca_path=BUILD_CA_PATH) if site.ca_bundle else site.pip_env()
    build_args = {
        "BASE_IMAGE": base_image,
        "PIP_ENV": " ".join(f"{k}={shlex.quote(v)}" for k, v in pip_env.items()),
        **site.proxy_env(),
    }
    key = inputs_hash(files, base_id, build_args)
    ref = check_image_ref("repository", f"{repository}:{key[:16]}")
    if engine.has_image(client, ref):
        echo(f"hub image: {ref} is up to date")
        return ref
    echo(f"hub image: building {ref} from {base_image} (a few minutes)")
    engine.build_image(
        client,
        tar_context(files),
        ref,
        lambda line: echo(f"  {line}"),
        lambda log: BuildError(
            f"Building the hub's single-user image {ref} failed:\n" + "\n".join(log[-20:]),
            hint="Read the lines above: pip needs the package index (c.FaaSSite settings).",
        ),
        buildargs=build_args,
        labels={**engine.labels("hub-image"), INPUTS_LABEL: key, **(labels or {})},
    )
    return ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_faas.hub.image",
        description="Build (or reuse) the hub's single-user image; print its reference.",
    )
    parser.add_argument("--context", type=Path, required=True, help="The hub/ folder (Dockerfile).")
    parser.add_argument("--wheel", type=Path, required=True, help="The jupyter-faas wheel.")
    parser.add_argument("--repository", default="jupyter-faas-singleuser", help="Image name.")
    parser.add_argument("--quiet", action="store_true", help="Print only the reference.")
    args = parser.parse_args(argv)

    def echo(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    try:
        ref = build(args.context, args.wheel, args.repository, echo=echo)
    except FaaSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build, test and push on a hub user's behalf, with the same ``DockerBuilder`` as local mode.

Each namespace gets a ``DockerBuilder`` of its own: its warm test containers
run that user's code only, and its registry path is the namespace's. The
dependency images themselves (base + pinned requirements + runtime, no user
code) are one local cache shared by all, keyed as in local mode. The service
never takes an image name from a client: a job names a dependency key, and the
image is looked up by it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import docker.errors
from traitlets import Dict, Instance, Integer
from traitlets.config import LoggingConfigurable

from .. import image
from ..builders import BaseImage, BaseUnusable, BuiltImage, ContainerRun, Progress, PushedImage
from ..builders.docker import DockerBuilder
from ..errors import BadRequest, NotFound
from ..registry import FaaSRegistry
from .namespaces import NamespaceEntry, NamespaceMap
from .protocol import unpack_bundle

#: Label naming the hub user on the test containers and images made for them.
USER_LABEL = "org.jupyter-faas.hub-user"


class BuildJobs(LoggingConfigurable):
    """The service's builders, one per namespace, and the jobs run with them."""

    max_bundle_bytes = Integer(
        16 * 1024 * 1024,
        help="""Largest bundle a test may send, unpacked, in bytes, e.g. 16777216 (16 MB).
        Notebook-local files travel in bundles up to 1 MB, so this leaves room. 0 means no
        limit.""",
    ).tag(config=True)

    max_requirements_bytes = Integer(
        256 * 1024,
        help="""Largest requirements.txt a build may send, in bytes, e.g. 262144. 0 means
        no limit.""",
    ).tag(config=True)

    extra_labels = Dict(
        help="""Labels put on every test container and image the service makes, besides
        the hub user's, e.g. {"org.example.site": "beamline"}.""",
    ).tag(config=True)

    namespaces = Instance(
        NamespaceMap,
        allow_none=True,
        help="The service's user → namespace map: whose registry path an image is under.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._builders: dict[str, DockerBuilder] = {}
        self._lock = threading.Lock()

    def builder(self, entry: NamespaceEntry) -> DockerBuilder:
        """The namespace's builder, pushing under its registry path."""
        with self._lock:
            found = self._builders.get(entry.namespace)
            if found is None:
                registry = FaaSRegistry(parent=self.parent, namespace=entry.registry_path)
                found = DockerBuilder(
                    parent=self.parent,
                    registry=registry,
                    extra_labels={**self.extra_labels, USER_LABEL: entry.user},
                )
                self._builders[entry.namespace] = found
            return found

    # -- jobs (blocking: run them in a thread) -----------------------------------------------

    def build(
        self, entry: NamespaceEntry, requirements: str, base_ref: str | None, progress: Progress
    ) -> BuiltImage:
        limit = self.max_requirements_bytes
        if limit and len(requirements.encode()) > limit:
            raise BadRequest(
                f"requirements.txt is {len(requirements.encode())} bytes, over the service's "
                f"limit of {limit} (c.BuildJobs.max_requirements_bytes).",
                hint="Pin only what the function imports.",
            )
        builder = self.builder(entry)
        base = self.base(entry, base_ref) if base_ref else None
        return builder.build_requirements(requirements, progress, base)

    def base(self, entry: NamespaceEntry, ref: str) -> BaseImage:
        """The image of published function ``ref``, as ``entry``'s namespace may build on it.

        Resolved on the function server with the caller's own key, so only what is
        published to the caller is found; and its image must be one this service pushed
        for the function's owner (under the owner's registry path), so publishing an
        action that names someone else's image gives no way to build on that image.

        Raises:
            ServerError: ``ref`` is not published (403).
            BaseUnusable: its image is not one the owner pushed through this service.
        """
        from ..deployers.openwhisk import OpenWhiskDeployer
        from ..deployers.openwhisk_rest import OpenWhiskClient

        client = OpenWhiskClient(
            api_host=self.namespaces.server_url, auth=entry.api_key, trust_env=False
        )
        base = OpenWhiskDeployer(parent=self, client=client).base(ref)
        owners = [e for e in self.namespaces.entries().values() if e.namespace == base.owner]
        expected = [
            FaaSRegistry(parent=self.parent, namespace=e.registry_path).repository("deps")
            for e in owners
        ]
        if base.repository not in expected:
            raise BaseUnusable(
                f"{ref} runs on {base.image}, which is not an image this service pushed for "
                f"{base.owner}: only the owner's own published images can be a base here.",
                hint=f"Ask {base.owner} to deploy the function from their notebook and "
                "publish it again (%faas deploy NAME, then %faas publish NAME).",
            )
        return base

    def test(
        self,
        entry: NamespaceEntry,
        bundle_data: str,
        key: str,
        args: dict,
        max_result: int,
        progress: Progress,
    ) -> ContainerRun:
        builder = self.builder(entry)
        built = self.image(builder, key)
        folder = Path(tempfile.mkdtemp(prefix="faas-hub-bundle-"))
        try:
            bundle = unpack_bundle(bundle_data, folder, self.max_bundle_bytes)
            builder.max_result_bytes = max_result
            return builder.test(bundle, built, args, progress)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def push(self, entry: NamespaceEntry, key: str, progress: Progress) -> PushedImage:
        builder = self.builder(entry)
        return builder.push(self.image(builder, key), progress)

    def published(self, entry: NamespaceEntry, key: str) -> PushedImage | None:
        builder = self.builder(entry)
        return builder.published(self.image(builder, key))

    def image(self, builder: DockerBuilder, key: str) -> BuiltImage:
        """The dependency image with ``key``, as the engine knows it.

        Raises:
            NotFound: no dependency image has that key (build first).
        """
        ref = builder.images.local_ref(key)
        try:
            found = builder.client.images.get(ref)
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            found = None
        if found is None or found.labels.get(image.KEY_LABEL) != key:
            raise NotFound(
                f"The service has no dependency image with key {key[:24]}….",
                hint="Build it first (%faas build NAME, or run the %%faas cell again).",
            )
        return BuiltImage(ref, key, found.id, True)

    def forget(self, namespace: str) -> None:
        """Remove the namespace's warm test containers and its builder."""
        with self._lock:
            builder = self._builders.pop(namespace, None)
        if builder is not None:
            builder.close()

    def close(self) -> None:
        """Remove every warm test container; safe to call twice."""
        with self._lock:
            builders, self._builders = list(self._builders.values()), {}
        for builder in builders:
            builder.close()

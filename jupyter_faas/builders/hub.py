"""``HubBuilder``: the builder interface through the hub's faas service.

In a JupyterHub user container there is no Docker engine: the service builds,
tests and pushes with the same ``DockerBuilder`` on the user's behalf, and its
progress streams back here line by line, so ``%%faas`` and the sidebar show it
as in local mode. Every call carries the server's hub token, which is all the
service needs to know whose namespace it acts on.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import requests
from traitlets import Float, Unicode, default

from ..bundle import Bundle
from ..errors import FaaSError, NotFound
from ..hub import protocol
from .interface import BaseImage, BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .sandbox import ContainerRun


class HubServiceUnavailable(FaaSError):
    """The hub's faas service does not answer (or answers something else)."""

    status = 503
    reason = "hub-service"


class HubBuilder(FaaSBuilder):
    """Builds, tests and pushes through the hub's faas service (no engine in this container)."""

    service_url = Unicode(
        help="""URL of the hub's faas service with its prefix, e.g.
        "http://172.18.0.1:8082/services/faas/". Default: $FAAS_HUB_SERVICE_URL (the hub's
        spawner sets it).""",
    ).tag(config=True)

    api_token = Unicode(
        help="""Hub token the service identifies the user by. Default:
        $JUPYTERHUB_API_TOKEN (the single-user server's own token, which its kernels
        inherit).""",
    ).tag(config=True)

    connect_timeout = Float(
        10.0, help="Seconds to wait for the service to accept a connection, e.g. 10."
    ).tag(config=True)

    job_timeout = Float(
        1800.0,
        help="""Seconds a build, test or push may go without sending anything (progress or
        result) before it is given up, e.g. 1800. Builds report every pip line, so long
        silences mean trouble.""",
    ).tag(config=True)

    @default("service_url")
    def _service_url_default(self):
        return os.environ.get("FAAS_HUB_SERVICE_URL", "")

    @default("api_token")
    def _api_token_default(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @classmethod
    def unavailable(cls) -> str:
        if not os.environ.get("FAAS_HUB_SERVICE_URL"):
            return "No hub faas service is named ($FAAS_HUB_SERVICE_URL is unset)"
        return ""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._session = requests.Session()
        self._session.trust_env = False  # the service is on the hub's own network
        #: The service's last build per requirements text (bundles without a base): a
        #: code-only edit then asks the service nothing before its test, as a local build
        #: is one lookup on the engine. Forgotten when the service no longer has the image.
        self._built: dict[str, BuiltImage] = {}

    # -- the service's API -------------------------------------------------------------------

    def _request(self, method: str, route: str, what: str, **kwargs) -> requests.Response:
        if not self.service_url:
            raise HubServiceUnavailable(
                "No faas service is configured for this server, so it cannot build.",
                hint="Set c.HubBuilder.service_url (or $FAAS_HUB_SERVICE_URL) to the hub's "
                'service, e.g. "http://172.18.0.1:8082/services/faas/", or use '
                'c.FaaSWorkspace.builder_class = "docker" where an engine runs.',
            )
        if not self.api_token:
            raise HubServiceUnavailable(
                "No hub token to call the faas service with ($JUPYTERHUB_API_TOKEN is unset).",
                hint="Run this inside a JupyterHub single-user server, or set c.HubBuilder.api_token.",
            )
        url = self.service_url.rstrip("/") + "/" + route
        try:
            resp = self._session.request(
                method,
                url,
                headers={"Authorization": f"token {self.api_token}"},
                timeout=(self.connect_timeout, self.job_timeout),
                **kwargs,
            )
        except requests.RequestException as err:
            raise HubServiceUnavailable(
                f"The hub's faas service at {self.service_url} is not reachable "
                f"({type(err).__name__}), so {what} cannot run.",
                hint="It runs beside the hub: ask the hub's operator to check it (its log is "
                "in the hub's log; `bash scripts/up.sh --hub` starts it again), then run the "
                "cell again. Nothing was lost: the bundle is in functions/.",
            ) from err
        if resp.status_code != 200:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            if "error" not in body:
                raise HubServiceUnavailable(
                    f"The hub's faas service answered HTTP {resp.status_code} to {what}: "
                    f"{resp.text[:300]}",
                    hint="Check c.HubBuilder.service_url; the hub's operator sees the "
                    "service's log.",
                )
            protocol.raise_error(body, what)
        return resp

    def _job(self, route: str, what: str, body: dict, progress: Progress):
        """POST a job and relay its progress lines; its result (a dict) or its error."""
        with self._request("POST", route, what, json=body, stream=True) as resp:
            try:
                for raw in resp.iter_lines():
                    if not raw:
                        continue
                    line = json.loads(raw)
                    if "progress" in line:
                        progress(line["progress"])
                    elif "result" in line:
                        return line["result"]
                    else:
                        protocol.raise_error(line, what)
            except (requests.RequestException, ValueError) as err:
                raise HubServiceUnavailable(
                    f"The faas service's answer to {what} broke off ({type(err).__name__}).",
                    hint="Run the cell again; if it keeps failing, the hub's operator sees why "
                    "in the service's log.",
                ) from err
        raise HubServiceUnavailable(
            f"The faas service ended its answer to {what} without a result.",
            hint="Run the cell again; the hub's operator sees why in the service's log.",
        )

    def namespace(self) -> dict:
        """This user's namespace on the function server: ``namespace``, ``api_key``,
        ``api_host`` (the OpenWhisk API as this container reaches it), ``registry``.

        The service makes the namespace on first use.
        """
        return self._request("GET", "api/namespace", "the namespace lookup").json()

    # -- FaaSBuilder -------------------------------------------------------------------------

    def build(
        self, bundle: Bundle, progress: Progress = no_progress, base: BaseImage | None = None
    ) -> BuiltImage:
        """Only the base's name goes to the service, which resolves it with this user's key
        and uses it only if its owner published it (``base`` resolved here is not sent)."""
        body = {"requirements": bundle.requirements}
        if bundle.metadata.base or base is not None:
            body["base"] = bundle.metadata.base or base.ref
        else:
            known = self._built.get(bundle.requirements)
            if known is not None:
                message = f"Reusing dependency image {known.ref} (built for this kernel)"
                progress({"step": "build", "message": message, "progress": 1.0})
                return replace(known, reused=True, seconds=0.0)
        built = BuiltImage(**self._job("api/build", f"the build of {bundle.name}", body, progress))
        if "base" not in body:  # a base is resolved again each time: its owner may republish
            self._built[bundle.requirements] = built
        return built

    def _forget(self, image: BuiltImage) -> bool:
        """Drop ``image`` from the remembered builds; whether it was one of them."""
        stale = [text for text, built in self._built.items() if built.key == image.key]
        for text in stale:
            del self._built[text]
        return bool(stale)

    def test(
        self, bundle: Bundle, image: BuiltImage, args: dict, progress: Progress = no_progress
    ) -> ContainerRun:
        body = {
            "bundle": protocol.pack_bundle(bundle),
            "key": image.key,
            "args": args,
            "max_result_bytes": self.max_result_bytes,
        }
        what = f"the test of {bundle.name}"
        try:
            return ContainerRun(**self._job("api/test", what, body, progress))
        except NotFound:
            if not self._forget(image):
                raise
        # A remembered image the service no longer has (removed, or a new service): build
        # it again, then test.
        body["key"] = self.build(bundle, progress).key
        return ContainerRun(**self._job("api/test", what, body, progress))

    def push(self, image: BuiltImage, progress: Progress = no_progress) -> PushedImage:
        try:
            return PushedImage(**self._job("api/push", "the push", {"key": image.key}, progress))
        except NotFound as err:
            if not self._forget(image):
                raise
            raise NotFound(
                err.message, hint="The service no longer has this image: run the cell again."
            ) from None

    def published(self, image: BuiltImage) -> PushedImage | None:
        try:
            found = self._request(
                "GET", "api/published", "the registry lookup", params={"key": image.key}
            ).json()["published"]
        except FaaSError as err:
            self.log.debug("Could not ask the service whether %s is published: %s", image.ref, err)
            return None
        return PushedImage(**found) if found else None

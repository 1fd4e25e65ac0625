"""``python -m jupyter_faas.hub``: the faas service, run by JupyterHub as a managed service.

It is the only part of a hub that talks to the Docker engine and pushes to the
registry: users' containers ask it, with their hub token, for their namespace
and key, and to build, test and push; it relays the function server's
OpenWhisk API to them. Start-up: read the hub's environment
(``JUPYTERHUB_SERVICE_URL``, ``_PREFIX``, ``_API_TOKEN``), make the namespace map
and the per-namespace builders, listen.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth
from tornado import httpserver, web
from traitlets import Float, Instance, Integer, Unicode, default
from traitlets.config import Application

from .. import __version__
from ..builders.docker import DockerBuilder
from ..image import FaaSImages
from ..registry import FaaSRegistry
from ..runtime.faas_protocol import MAX_PAYLOAD_BYTES
from ..site import FaaSSite
from . import handlers
from .jobs import BuildJobs
from .namespaces import NamespaceMap


class FaaSHubService(Application):
    """The hub's faas service: namespaces, builds, tests and pushes for hub users."""

    name = "jupyter-faas-hub-service"
    version = __version__
    description = "Namespaces, image builds, local tests and pushes for JupyterHub users."

    aliases = {
        "config": "FaaSHubService.config_file",
        "log-level": "Application.log_level",
    }

    @property
    def classes(self):
        return [
            FaaSHubService,
            NamespaceMap,
            BuildJobs,
            DockerBuilder,
            FaaSRegistry,
            FaaSImages,
            FaaSSite,
        ]

    config_file = Unicode(
        help="A Python config file with c.FaaSHubService… settings, e.g. faas_service_config.py.",
    ).tag(config=True)

    service_name = Unicode(
        help="""The service's name in the hub (c.JupyterHub.services), e.g. "faas". Default:
        $JUPYTERHUB_SERVICE_NAME, else "faas".""",
    ).tag(config=True)

    url = Unicode(
        help="""Where the service listens, as the hub names it, e.g. "http://172.18.0.1:8082":
        an address user containers reach (the hub's user network's gateway). Default:
        $JUPYTERHUB_SERVICE_URL.""",
    ).tag(config=True)

    prefix = Unicode(
        help="""URL path prefix of every route, e.g. "/services/faas/". Default:
        $JUPYTERHUB_SERVICE_PREFIX, else /services/<service_name>/.""",
    ).tag(config=True)

    user_api_host = Unicode(
        help="""The OpenWhisk API host given to users' containers (__OW_API_HOST): this
        service's relay of the function server, e.g. "http://172.18.0.1:8082/services/faas".
        Default: url + prefix.""",
    ).tag(config=True)

    state_dir = Unicode(
        help="""Folder of the service's state (the namespace map, 0600), e.g.
        "/srv/jupyterhub/faas". Default: $FAAS_HUB_SERVICE_STATE, else
        ~/.local/share/jupyter-faas/hub.""",
    ).tag(config=True)

    operator_scope = Unicode(
        "custom:faas:admin",
        help="""Hub scope that allows listing and deleting every user's namespace (give it
        to an operators' role in c.JupyterHub.load_roles, with c.JupyterHub.custom_scopes
        declaring it), e.g. "custom:faas:admin".""",
    ).tag(config=True)

    max_concurrent_builds = Integer(
        2,
        help="""Builds and pushes run at once, over all users; more wait their turn, e.g. 2
        on a 2-core machine. Each user's own jobs run one at a time.""",
    ).tag(config=True)

    max_result_bytes = Integer(
        MAX_PAYLOAD_BYTES,
        help="""Largest result of a test the service returns, in bytes: a kernel asking for
        more (or for no limit) gets this one, e.g. 1048576 (1 MB, the function server's
        default). 0 lets the kernel choose.""",
    ).tag(config=True)

    relay_timeout_s = Float(
        75.0,
        help="""Seconds the relay waits for the function server (blocking invocations wait
        up to 60 s there), e.g. 75.""",
    ).tag(config=True)

    namespaces = Instance(NamespaceMap, help="The user → namespace map.")
    jobs = Instance(BuildJobs, help="The per-namespace builders.")
    hub_auth = Instance(HubAuth, help="Identifies callers by their hub tokens.")

    @default("service_name")
    def _service_name_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_NAME", "faas")

    @default("url")
    def _url_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8082")

    @default("prefix")
    def _prefix_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.service_name}/")

    @default("user_api_host")
    def _user_api_host_default(self):
        return self.url.rstrip("/") + self.prefix.rstrip("/")

    @default("state_dir")
    def _state_dir_default(self):
        return os.environ.get("FAAS_HUB_SERVICE_STATE") or str(
            Path.home() / ".local" / "share" / "jupyter-faas" / "hub"
        )

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        self.namespaces = NamespaceMap(
            parent=self, state_file=str(Path(self.state_dir) / "namespaces.json")
        )
        self.jobs = BuildJobs(parent=self, namespaces=self.namespaces)
        self.hub_auth = HubAuth(parent=self)
        self._slow = ThreadPoolExecutor(self.max_concurrent_builds, "faas-hub-build")
        self._quick = ThreadPoolExecutor(8, "faas-hub-quick")
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def slow(self, fn, *args):
        """Run a build, test or push in the build pool."""
        return asyncio.get_running_loop().run_in_executor(self._slow, partial(fn, *args))

    def quick(self, fn, *args):
        """Run a short blocking call (database, one HTTP request, an inspect)."""
        return asyncio.get_running_loop().run_in_executor(self._quick, partial(fn, *args))

    def user_lock(self, namespace: str) -> asyncio.Lock:
        """One job at a time per namespace."""
        return self._locks[namespace]

    def make_app(self) -> web.Application:
        p = self.prefix
        return web.Application(
            [
                (f"{p}api/health", handlers.HealthHandler),
                (f"{p}api/namespace", handlers.NamespaceHandler),
                (f"{p}api/namespaces", handlers.NamespacesHandler),
                (f"{p}api/namespaces/([^/]+)", handlers.UserNamespaceHandler),
                (f"{p}api/build", handlers.BuildHandler),
                (f"{p}api/test", handlers.TestHandler),
                (f"{p}api/push", handlers.PushHandler),
                (f"{p}api/published", handlers.PublishedHandler),
                (f"{p}api/v1/(.*)", handlers.RelayHandler),
            ],
            faas_service=self,
        )

    async def _serve(self) -> None:
        where = urlparse(self.url)
        server = httpserver.HTTPServer(self.make_app(), max_body_size=64 * 1024 * 1024)
        server.listen(where.port or 80, where.hostname)
        self.log.info(
            "faas service on %s%s: namespaces on %s (%s), images under %s/%s/",
            self.url,
            self.prefix,
            self.namespaces.server_url,
            self.namespaces.server_data_dir,
            FaaSRegistry(parent=self).url,
            self.namespaces.registry_prefix,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()

    def start(self) -> None:
        try:
            asyncio.run(self._serve())
        finally:
            self.log.info("Stopping: removing the test containers")
            self.jobs.close()
            self._slow.shutdown(wait=False, cancel_futures=True)
            self._quick.shutdown(wait=False, cancel_futures=True)


main = FaaSHubService.launch_instance

"""Where dependency images are pushed: any Docker Registry HTTP API v2 endpoint."""

from __future__ import annotations

import ipaddress
import os

import requests
from traitlets import Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .errors import ConfigError, RegistryError


class FaaSRegistry(LoggingConfigurable):
    """A v2 container registry, with credentials when it asks for them."""

    url = Unicode(
        help="""Registry host[:port] that dependency images are pushed to and function
        servers pull from, e.g. "registry.example.org" or "127.0.0.1:5000" (the local
        registry that `bash scripts/setup.sh` starts). Default: $FAAS_REGISTRY or
        "127.0.0.1:5000".""",
    ).tag(config=True)

    namespace = Unicode(
        "jupyter-faas",
        help="""Path under the registry host, e.g. "myproject" gives
        registry.example.org/myproject/deps:<key>.""",
    ).tag(config=True)

    username = Unicode(
        help="""User name for registries that require a login. Empty means anonymous.
        Default: $FAAS_REGISTRY_USERNAME.""",
    ).tag(config=True)

    password = Unicode(
        help="""Password or token for `username`. Prefer the environment variable
        $FAAS_REGISTRY_PASSWORD over writing it in a config file or notebook.""",
    ).tag(config=True)

    @default("url")
    def _url_default(self):
        return os.environ.get("FAAS_REGISTRY", "127.0.0.1:5000")

    @default("username")
    def _username_default(self):
        return os.environ.get("FAAS_REGISTRY_USERNAME", "")

    @default("password")
    def _password_default(self):
        return os.environ.get("FAAS_REGISTRY_PASSWORD", "")

    @validate("url")
    def _check_url(self, proposal):
        value = proposal["value"].strip().rstrip("/")
        value = value.removeprefix("https://").removeprefix("http://")
        if not value or "/" in value:
            raise ConfigError(
                f"c.FaaSRegistry.url = {proposal['value']!r} is not a registry host.",
                hint='Give host[:port] only, e.g. "127.0.0.1:5000"; put a path in '
                "c.FaaSRegistry.namespace.",
            )
        return value

    @property
    def is_local(self) -> bool:
        """Loopback registries speak plain HTTP (Docker trusts them as insecure)."""
        host = self.url.rsplit(":", 1)[0] if self.url.count(":") == 1 else self.url
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            return False

    def repository(self, name: str) -> str:
        """Full repository path of image ``name`` in this registry."""
        return f"{self.url}/{self.namespace}/{name}" if self.namespace else f"{self.url}/{name}"

    def image_ref(self, key: str) -> str:
        """Where the dependency image with ``key`` lives in this registry."""
        return f"{self.repository('deps')}:{key[:24]}"

    def auth_config(self) -> dict | None:
        """docker-py ``auth_config`` for pushes and pulls, or None when anonymous."""
        if not self.username:
            return None
        return {"username": self.username, "password": self.password}

    def manifest_digest(self, ref: str, timeout: float = 5.0) -> str:
        """The digest of ``ref`` (host/path:tag in this registry), or "" when it is not there.

        A push can be skipped when it is there; "" whenever the registry cannot tell
        us (then the push decides).
        """
        path, _, tag = ref.removeprefix(f"{self.url}/").rpartition(":")
        auth = (self.username, self.password) if self.username else None
        accept = ", ".join(
            f"application/vnd.{kind}+json"
            for kind in (
                "docker.distribution.manifest.v2",
                "docker.distribution.manifest.list.v2",
                "oci.image.manifest.v1",
                "oci.image.index.v1",
            )
        )
        try:
            resp = requests.head(
                f"{self.scheme}://{self.url}/v2/{path}/manifests/{tag}",
                headers={"Accept": accept},
                auth=auth,
                timeout=timeout,
            )
        except requests.RequestException:
            return ""
        if resp.status_code != 200:
            return ""
        return resp.headers.get("Docker-Content-Digest", "")

    @property
    def scheme(self) -> str:
        return "http" if self.is_local else "https"

    def check(self, timeout: float = 5.0) -> None:
        """Make sure the registry answers and accepts our credentials, before a push.

        Raises:
            RegistryError: unreachable, or 401 (naming whether credentials were sent).
        """
        auth = (self.username, self.password) if self.username else None
        try:
            resp = requests.get(f"{self.scheme}://{self.url}/v2/", auth=auth, timeout=timeout)
        except requests.RequestException as err:
            raise RegistryError(
                f"The registry {self.url} is not reachable ({type(err).__name__}).",
                hint="Start it (`bash scripts/setup.sh` starts one on 127.0.0.1:5000) or set "
                "c.FaaSRegistry.url to a registry you can reach.",
            ) from err
        if resp.status_code == 401:
            if auth is None:
                raise RegistryError(
                    f"The registry {self.url} requires a login.",
                    hint="Set c.FaaSRegistry.username and $FAAS_REGISTRY_PASSWORD.",
                )
            raise RegistryError(
                f"The registry {self.url} refused the credentials of user {self.username!r}.",
                hint="Check c.FaaSRegistry.username and $FAAS_REGISTRY_PASSWORD (or the token).",
            )
        if resp.status_code != 200:
            raise RegistryError(
                f"{self.url} does not answer like a v2 registry (GET /v2/ gave HTTP "
                f"{resp.status_code}).",
                hint="Check c.FaaSRegistry.url.",
            )

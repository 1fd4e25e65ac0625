"""Site settings that every build, test container and deployment inherits.

Facilities put a TLS-intercepting proxy, an HTTP proxy or a package mirror
between their machines and the internet; without these settings `pip install`
inside an image build fails. One object carries them all, so no step can
forget one.
"""

from __future__ import annotations

import os
import ssl

from traitlets import Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .errors import ConfigError

#: Where the CA bundle is placed inside build contexts and test containers.
CONTAINER_CA_PATH = "/faas/site-ca.crt"

_CA_ENV = ("FAAS_CA_BUNDLE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


class FaaSSite(LoggingConfigurable):
    """CA bundle, proxies and package index for one site."""

    ca_bundle = Unicode(
        help="""Path of a PEM file of CA certificates trusted for HTTPS inside builds and
        function containers (your proxy's or your site's CA). Empty means the image's own
        trust store only. Default: the first of $FAAS_CA_BUNDLE, $PIP_CERT,
        $REQUESTS_CA_BUNDLE, $SSL_CERT_FILE that names an existing file.
        Example: c.FaaSSite.ca_bundle = "/etc/ssl/certs/ca-certificates.crt".""",
    ).tag(config=True)

    http_proxy = Unicode(
        help="""HTTP proxy URL for builds and function containers, e.g.
        "http://proxy.example.org:3128". Empty means no proxy. Default: $HTTP_PROXY.""",
    ).tag(config=True)

    https_proxy = Unicode(
        help="""HTTPS proxy URL for builds and function containers. Empty means no proxy.
        Default: $HTTPS_PROXY.""",
    ).tag(config=True)

    no_proxy = Unicode(
        help="""Comma-separated hosts that bypass the proxy, e.g. "localhost,.example.org".
        Default: $NO_PROXY.""",
    ).tag(config=True)

    pip_index_url = Unicode(
        help="""Package index used by pip inside image builds, e.g.
        "https://pypi.example.org/simple". Empty means pip's default (PyPI).
        Default: $FAAS_PIP_INDEX_URL.""",
    ).tag(config=True)

    pip_extra_index_url = Unicode(
        help="""Additional package index(es) for pip, space separated. Empty means none.
        Default: $FAAS_PIP_EXTRA_INDEX_URL.""",
    ).tag(config=True)

    @default("ca_bundle")
    def _ca_bundle_default(self):
        for var in _CA_ENV:
            path = os.environ.get(var, "")
            if path and os.path.isfile(path):
                return path
        host = ssl.get_default_verify_paths()
        for path in (host.cafile, host.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
            if path and os.path.isfile(path):
                return os.path.realpath(path)
        return ""

    @default("http_proxy")
    def _http_proxy_default(self):
        return os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", ""))

    @default("https_proxy")
    def _https_proxy_default(self):
        return os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", ""))

    @default("no_proxy")
    def _no_proxy_default(self):
        return os.environ.get("NO_PROXY", os.environ.get("no_proxy", ""))

    @default("pip_index_url")
    def _pip_index_url_default(self):
        return os.environ.get("FAAS_PIP_INDEX_URL", "")

    @default("pip_extra_index_url")
    def _pip_extra_index_url_default(self):
        return os.environ.get("FAAS_PIP_EXTRA_INDEX_URL", "")

    @validate("ca_bundle")
    def _check_ca_bundle(self, proposal):
        path = proposal["value"]
        if path and not os.path.isfile(path):
            raise ConfigError(
                f"c.FaaSSite.ca_bundle = {path!r} is not a file.",
                hint="Set it to your site's PEM CA bundle, e.g. "
                "/etc/ssl/certs/ca-certificates.crt, or to '' to use none.",
            )
        return path

    def proxy_env(self) -> dict[str, str]:
        """Proxy variables, in both spellings, for builds and containers."""
        env = {}
        for name, value in (
            ("HTTP_PROXY", self.http_proxy),
            ("HTTPS_PROXY", self.https_proxy),
            ("NO_PROXY", self.no_proxy),
        ):
            if value:
                env[name] = env[name.lower()] = value
        return env

    def pip_env(self) -> dict[str, str]:
        """Variables that make pip (and requests, and ssl) use the site's CA and index."""
        env = {}
        if self.ca_bundle:
            env.update(
                PIP_CERT=CONTAINER_CA_PATH,
                REQUESTS_CA_BUNDLE=CONTAINER_CA_PATH,
                SSL_CERT_FILE=CONTAINER_CA_PATH,
            )
        if self.pip_index_url:
            env["PIP_INDEX_URL"] = self.pip_index_url
        if self.pip_extra_index_url:
            env["PIP_EXTRA_INDEX_URL"] = self.pip_extra_index_url
        return env

    def container_env(self) -> dict[str, str]:
        """Environment for a function container: proxies plus the CA variables."""
        return {**self.proxy_env(), **self.pip_env()}

    def container_volumes(self) -> dict[str, dict]:
        """docker-py ``volumes=`` entry that mounts the CA bundle read-only, if one is set."""
        if not self.ca_bundle:
            return {}
        return {self.ca_bundle: {"bind": CONTAINER_CA_PATH, "mode": "ro"}}

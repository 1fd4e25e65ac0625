"""Site settings that every build, test container and deployment inherits.

Facilities put a TLS-intercepting proxy, an HTTP proxy or a package mirror
between their machines and the internet; without these settings `pip install`
inside an image build fails. Their data sits in directories that functions read
by reference (a path, never the frames in JSON). One object carries them all, so
no step can forget one.
"""

from __future__ import annotations

import os
import posixpath
import re
import ssl
from urllib.parse import urlsplit

from traitlets import Dict, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from .errors import ConfigError

#: Where the CA bundle is placed inside build contexts and test containers.
CONTAINER_CA_PATH = "/faas/site-ca.crt"

_CA_ENV = ("FAAS_CA_BUNDLE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a no_proxy entry may hold: host names, domains (".example.org"), addresses, CIDRs,
#: ports and "*".
_NO_PROXY_ENTRY = re.compile(r"^[A-Za-z0-9.*:\[\]/_-]+$")
#: Where data mounts may not go inside a container: the runtime's, the system's, /tmp.
_RESERVED_TARGETS = ("/faas", "/tmp", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/lib")
#: Suffix of a data mount's container path that makes it writable.
WRITABLE = ":rw"


def check_setting_text(setting: str, value: str) -> str:
    """Refuse control characters (newlines above all) in a setting that reaches a Dockerfile.

    Raises:
        ConfigError: ``value`` holds a control character.
    """
    bad = _CONTROL.search(value)
    if bad:
        raise ConfigError(
            f"{setting} = {value!r} contains the control character {bad.group()!r} "
            f"at position {bad.start()}; settings that go into image builds must be one "
            "line of printable text.",
            hint=f"Remove the newline or control character from {setting}.",
        )
    return value


def check_url(setting: str, url: str) -> str:
    """Refuse anything but an ``http(s)://host[:port][/path]`` URL without spaces or quotes.

    Raises:
        ConfigError: ``url`` is not such a URL.
    """
    check_setting_text(setting, url)
    problem = ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        problem = str(err)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "the scheme must be http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif re.search(r"[\s\"'`\\]", url):
            problem = "it contains a space, quote or backslash"
    if problem:
        raise ConfigError(
            f"{setting} = {url!r} is not a valid URL: {problem}.",
            hint=f"Set {setting} to a URL such as 'https://pypi.example.org/simple', "
            "or to '' for none.",
        )
    return url


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
        help="""Additional package index(es) for pip, space separated (pip's own
        PIP_EXTRA_INDEX_URL form), e.g. "https://a.example.org/simple
        https://b.example.org/simple". Each must be an http(s) URL. Empty means none.
        Default: $FAAS_PIP_EXTRA_INDEX_URL.""",
    ).tag(config=True)

    data_mounts = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help=f"""Host directories mounted into every function container (local container
        tests and the function server's action containers), as host path → path inside the
        container; read-only unless the container path ends in "{WRITABLE}". Functions then
        take data by reference: the notebook passes a path inside the container
        (FaaSSite.container_path maps a host path). Writable mounts must be writable by the
        user functions run as (c.DockerInvoker.user, uid 65534 by default). In the
        container-less mode functions see the host paths themselves.
        Example: {{"/beamline/raw": "/data", "/beamline/processed": "/results{WRITABLE}"}}.""",
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

    @validate("data_mounts")
    def _check_data_mounts(self, proposal):
        setting = "c.FaaSSite.data_mounts"
        targets: list[str] = []
        for host, target in proposal["value"].items():
            inside = target.removesuffix(WRITABLE)
            problem = ""
            if not os.path.isabs(host) or not os.path.isdir(host):
                problem = f"the host path {host!r} is not an absolute path of a directory"
            elif (
                not posixpath.isabs(inside) or posixpath.normpath(inside) != inside or ":" in inside
            ):
                problem = f"the container path {target!r} is not a plain absolute path"
            elif inside == "/" or any(
                inside == r or inside.startswith(r + "/") for r in _RESERVED_TARGETS
            ):
                problem = f"{inside!r} would hide the runtime or the system inside the container"
            elif any(
                inside == t or inside.startswith(t + "/") or t.startswith(inside + "/")
                for t in targets
            ):
                problem = f"{inside!r} overlaps another mount's container path"
            if problem:
                raise ConfigError(
                    f"{setting}: {problem}.",
                    hint=f'Map existing host directories to paths such as "/data" or '
                    f'"/results{WRITABLE}", e.g. {{"/beamline/raw": "/data"}}.',
                )
            targets.append(inside)
        return proposal["value"]

    @validate("http_proxy", "https_proxy", "pip_index_url")
    def _check_url(self, proposal):
        value = proposal["value"].strip()
        if value:
            check_url(f"c.FaaSSite.{proposal['trait'].name}", value)
        return value

    @validate("pip_extra_index_url")
    def _check_extra_urls(self, proposal):
        setting = "c.FaaSSite.pip_extra_index_url"
        check_setting_text(setting, proposal["value"])
        urls = proposal["value"].split()
        for url in urls:
            check_url(setting, url)
        return " ".join(urls)

    @validate("no_proxy")
    def _check_no_proxy(self, proposal):
        setting = "c.FaaSSite.no_proxy"
        value = check_setting_text(setting, proposal["value"]).strip()
        for entry in filter(None, (e.strip() for e in value.split(","))):
            if not _NO_PROXY_ENTRY.match(entry):
                raise ConfigError(
                    f"{setting} = {value!r}: entry {entry!r} is not a host, domain, address "
                    "or '*'.",
                    hint="Use comma-separated hosts, e.g. 'localhost,.example.org,10.0.0.0/8'.",
                )
        return value

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

    def pip_env(self, ca_path: str = CONTAINER_CA_PATH) -> dict[str, str]:
        """Variables that make pip (and requests, and ssl) use the site's CA and index.

        Args:
            ca_path: Where the CA bundle is as the process sees it: mounted or copied at
                ``CONTAINER_CA_PATH`` in containers and builds, ``ca_bundle`` itself for a
                process on this host.
        """
        env = {}
        if self.ca_bundle:
            env.update(PIP_CERT=ca_path, REQUESTS_CA_BUNDLE=ca_path, SSL_CERT_FILE=ca_path)
        if self.pip_index_url:
            env["PIP_INDEX_URL"] = self.pip_index_url
        if self.pip_extra_index_url:
            env["PIP_EXTRA_INDEX_URL"] = self.pip_extra_index_url
        return env

    def container_env(self) -> dict[str, str]:
        """Environment for a function container: proxies plus the CA variables."""
        return {**self.proxy_env(), **self.pip_env()}

    def host_env(self) -> dict[str, str]:
        """The same for a process on this host (pip, runtime processes): the CA variables
        name the host's own bundle file."""
        return {**self.proxy_env(), **self.pip_env(ca_path=self.ca_bundle)}

    def container_volumes(self) -> dict[str, dict]:
        """docker-py ``volumes=``: the CA bundle (read-only), if one is set, and the data mounts."""
        volumes = {
            host: {
                "bind": target.removesuffix(WRITABLE),
                "mode": "rw" if target.endswith(WRITABLE) else "ro",
            }
            for host, target in self.data_mounts.items()
        }
        if self.ca_bundle:
            volumes[self.ca_bundle] = {"bind": CONTAINER_CA_PATH, "mode": "ro"}
        return volumes

    def container_path(self, host_path: str | os.PathLike) -> str:
        """Where ``host_path`` (a file or directory under a data mount) is inside a container.

        Raises:
            ConfigError: it is under no data mount; the message lists them.
        """
        path = os.path.realpath(host_path)
        for host, target in self.data_mounts.items():
            root = os.path.realpath(host)
            if path == root or path.startswith(root.rstrip("/") + "/"):
                rest = os.path.relpath(path, root)
                inside = target.removesuffix(WRITABLE)
                return inside if rest == "." else posixpath.join(inside, *rest.split(os.sep))
        mounts = ", ".join(f"{h} → {t}" for h, t in self.data_mounts.items()) or "none"
        raise ConfigError(
            f"{host_path} is under no data mount, so functions cannot read it (mounts: {mounts}).",
            hint='Add its directory to c.FaaSSite.data_mounts, e.g. {"/beamline/raw": "/data"}, '
            "for the notebook and the function server alike.",
        )

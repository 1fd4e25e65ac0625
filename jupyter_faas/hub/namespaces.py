"""Hub users → function-server namespaces, each made with its key on first use.

The function server keeps only hashes of keys, so the mapping (user, namespace,
key, registry path) lives in one JSON file of the service's own, readable by its
owner only. A key that stopped working (the namespace was rotated or deleted
behind the service's back) is replaced on the next lookup; a namespace of the
same name that the service did not make is never taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from traitlets import Float, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..errors import ConfigError, FaaSError
from ..paths import default_server_data_dir

#: Characters a function-server namespace may hold besides letters and digits.
_NAMESPACE_CHARS = re.compile(r"[^A-Za-z0-9_@.&-]")
#: What a registry path component may hold.
_PATH_CHARS = re.compile(r"[^a-z0-9]+")


class NamespaceConflict(FaaSError):
    """The namespace a user maps to exists on the function server but is not the service's."""

    status = 409
    reason = "namespace-conflict"


class FunctionServerMissing(FaaSError):
    """The function server's database is not where the service looks for it."""

    status = 503
    reason = "function-server"


@dataclass
class NamespaceEntry:
    """One hub user's namespace on the function server.

    Attributes:
        user: The hub user name.
        namespace: The function-server namespace.
        api_key: Its ``uuid:key``.
        registry_path: Path under the registry where the service pushes its images.
        created: When the service made it (epoch seconds).
    """

    user: str
    namespace: str
    api_key: str
    registry_path: str
    created: float

    def public(self) -> dict:
        """Everything but the key (what operators list)."""
        return {k: v for k, v in asdict(self).items() if k != "api_key"}


class NamespaceMap(LoggingConfigurable):
    """Maps hub users to function-server namespaces and keeps their keys."""

    state_file = Unicode(
        help="""JSON file holding the mapping and the keys (written 0600), e.g.
        "/srv/jupyterhub/faas/namespaces.json". Default: namespaces.json in
        c.FaaSHubService.state_dir.""",
    ).tag(config=True)

    server_data_dir = Unicode(
        help="""Data directory of the function server the namespaces are made on (the
        service opens its database, as `jupyter faas namespace create` does), e.g.
        "/root/.local/share/jupyter-faas/server". Default: $FAAS_SERVER_DATA, else the
        server's own default.""",
    ).tag(config=True)

    server_url = Unicode(
        "http://127.0.0.1:3233",
        help="""The function server's URL as the service reaches it, for checking keys and
        for the OpenWhisk API it relays to user containers, e.g. "http://127.0.0.1:3233".""",
    ).tag(config=True)

    namespace_template = Unicode(
        "{username}",
        help="""Namespace of a hub user: "{username}" is the user name with every character
        a namespace cannot hold written as "-XX" (its hex code), e.g. "hub-{username}" keeps
        hub namespaces apart from others on a shared function server.""",
    ).tag(config=True)

    registry_prefix = Unicode(
        "jupyter-faas/users",
        help="""Registry path under which each namespace's images go: PREFIX/NAME/deps:KEY,
        where NAME is the namespace in lower case with other characters as "-" and a short
        hash when that changed it, e.g. "jupyter-faas/users" gives
        127.0.0.1:5000/jupyter-faas/users/alice/deps:3f2a….""",
    ).tag(config=True)

    key_wait_s = Float(
        5.0,
        help="""Seconds to wait for a new key to be accepted by the running function server
        (it notices new keys within 0.2 s), e.g. 5.""",
    ).tag(config=True)

    @default("server_data_dir")
    def _server_data_dir_default(self):
        return default_server_data_dir()

    @validate("namespace_template")
    def _check_template(self, proposal):
        if "{username}" not in proposal["value"]:
            raise ConfigError(
                f"c.NamespaceMap.namespace_template = {proposal['value']!r} does not contain "
                "{username}: every user would share one namespace.",
                hint='Use a template such as "{username}" or "hub-{username}".',
            )
        return proposal["value"]

    @validate("registry_prefix")
    def _check_prefix(self, proposal):
        value = proposal["value"].strip("/")
        if not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", value):
            raise ConfigError(
                f"c.NamespaceMap.registry_prefix = {proposal['value']!r} is not a registry path.",
                hint='Use lower-case letters, digits and "/", e.g. "jupyter-faas/users".',
            )
        return value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False

    # -- names -------------------------------------------------------------------------------

    def namespace_of(self, user: str) -> str:
        """The namespace ``user`` maps to (whether it exists or not)."""
        escaped = _NAMESPACE_CHARS.sub(lambda m: f"-{ord(m.group()):02x}", user)
        return self.namespace_template.format(username=escaped)

    def registry_path_of(self, namespace: str) -> str:
        slug = _PATH_CHARS.sub("-", namespace.lower()).strip("-") or "ns"
        if slug != namespace:
            slug = f"{slug}-{hashlib.sha256(namespace.encode()).hexdigest()[:8]}"
        return f"{self.registry_prefix}/{slug}"

    # -- the mapping -------------------------------------------------------------------------

    def entries(self) -> dict[str, NamespaceEntry]:
        """Every mapped user's entry, by user name."""
        path = Path(self.state_file)
        if not path.exists():
            return {}
        raw = json.loads(path.read_text())
        return {user: NamespaceEntry(**entry) for user, entry in raw.items()}

    def _save(self, entries: dict[str, NamespaceEntry]) -> None:
        path = Path(self.state_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({u: asdict(e) for u, e in entries.items()}, f, indent=2)
        os.replace(tmp, path)

    def ensure(self, user: str) -> NamespaceEntry:
        """``user``'s namespace with a working key, made (or re-keyed) when needed.

        Blocking (database and HTTP): call it from a thread.

        Raises:
            NamespaceConflict: the namespace exists but the service did not make it.
            FunctionServerMissing: no function-server database in server_data_dir.
        """
        with self._lock:
            entries = self.entries()
            entry = entries.get(user)
            if entry is not None and self._key_works(entry.api_key):
                return entry
            namespace = self.namespace_of(user)
            if entry is None:
                api_key = self._server_call("create", namespace)
                if api_key is None:
                    raise NamespaceConflict(
                        f"The function server already has a namespace {namespace!r} that this "
                        f"service did not make, so hub user {user!r} cannot be given it.",
                        hint="Delete it (`jupyter faas namespace delete "
                        f"{namespace}`) if it is stale, or set "
                        "c.NamespaceMap.namespace_template, e.g. to 'hub-{username}'.",
                    )
                self.log.info("Made namespace %s for hub user %s", namespace, user)
                entry = NamespaceEntry(
                    user, namespace, api_key, self.registry_path_of(namespace), time.time()
                )
            else:
                # Rotated or deleted behind our back: a new key, or the namespace again.
                api_key = self._server_call("rotate", namespace) or self._server_call(
                    "create", namespace
                )
                self.log.warning("Namespace %s of %s had a dead key: re-keyed", namespace, user)
                entry.api_key = api_key
            entries[user] = entry
            self._save(entries)
        self._wait_for_key(entry.api_key)
        return entry

    def remove(self, user: str) -> NamespaceEntry | None:
        """Delete ``user``'s namespace (with everything in it) and forget it."""
        with self._lock:
            entries = self.entries()
            entry = entries.pop(user, None)
            if entry is None:
                return None
            self._server_call("delete", entry.namespace)
            self._save(entries)
        return entry

    # -- the function server -----------------------------------------------------------------

    def _server_call(self, command: str, namespace: str):
        """Create, rotate or delete ``namespace`` in the function server's database."""
        from ..server.app import DB_FILE, SINGLE_NAMESPACE_FILE, create_namespace, rotate_namespace
        from ..server.store import Database, queries

        data_dir = Path(self.server_data_dir)
        db_path = data_dir / DB_FILE
        if not db_path.exists():
            raise FunctionServerMissing(
                f"There is no function server database at {db_path}.",
                hint="Start the function server (`bash scripts/up.sh --hub` does) or set "
                "c.NamespaceMap.server_data_dir to its data directory.",
            )
        single = data_dir / SINGLE_NAMESPACE_FILE
        if command == "create" and single.exists():
            raise FunctionServerMissing(
                f"The function server keeps one namespace only: {single.read_text().strip()}",
                hint="Serve it with c.FunctionServer.invoker_class = 'docker'.",
            )
        db = Database(db_path, inline=True)
        try:
            db.open()
            if command == "create":
                return create_namespace(db, namespace)
            if command == "rotate":
                return rotate_namespace(db, namespace)
            result = db.write_sync(queries.delete_namespace, namespace)
            db.mark_keys_changed()
            return result
        finally:
            db.close()

    def _key_works(self, api_key: str) -> bool:
        user, _, key = api_key.partition(":")
        try:
            resp = self._session.get(
                f"{self.server_url.rstrip('/')}/api/v1/namespaces", auth=(user, key), timeout=10
            )
        except requests.RequestException as err:
            raise FunctionServerMissing(
                f"The function server {self.server_url} is not reachable ({type(err).__name__}).",
                hint="Start it (`bash scripts/up.sh --hub` does) or set c.NamespaceMap.server_url.",
            ) from err
        return resp.status_code == 200

    def _wait_for_key(self, api_key: str) -> None:
        deadline = time.monotonic() + self.key_wait_s
        while not self._key_works(api_key):
            if time.monotonic() > deadline:
                raise FunctionServerMissing(
                    f"The function server {self.server_url} does not accept the key just made "
                    f"in {self.server_data_dir}.",
                    hint="c.NamespaceMap.server_data_dir must be the data directory of the "
                    "server at c.NamespaceMap.server_url.",
                )
            time.sleep(0.1)

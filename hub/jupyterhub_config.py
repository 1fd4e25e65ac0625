"""JupyterHub for jupyter-faas: a JupyterLab container per user, builds through the faas service.

Started by ``bash scripts/hub.sh`` (``bash scripts/up.sh --hub``) as root:
``jupyterhub -f hub/jupyterhub_config.py``. Every site choice is an environment
variable read below, with its default and meaning beside it; anything else is
overridden in a file of the site's own named by ``FAAS_HUB_SITE_CONFIG`` (loaded
last), e.g. OAuth login (see docs/hub.md).

How it fits together: users' containers (DockerSpawner) join a network of their own
(``FAAS_HUB_NETWORK``) without traffic between containers, whose firewall lets them
reach only the hub's API and the faas service on this host; the faas service (a
process of the hub) maps each user to a function-server namespace, hands the key to
that user's container only, and builds, tests and pushes for it with the local
Docker engine; it also relays the function server's OpenWhisk API to the containers.
"""

import json
import os
import secrets
import sys
from pathlib import Path

from jupyter_faas import engine
from jupyter_faas.hub.network import ensure_user_network

c = get_config()  # noqa: F821

REPO = Path(__file__).resolve().parent.parent


def setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# -- Where things are ------------------------------------------------------------------------

#: The hub's state: its database, cookie secret, the shared password and the admin token.
STATE = Path(setting("FAAS_HUB_STATE", str(REPO / ".state" / "hub")))
#: Address and port of the hub's public URL (the proxy). 127.0.0.1: this machine only;
#: 0.0.0.0 with TLS in front (c.JupyterHub.ssl_cert / ssl_key) for a site.
IP = setting("FAAS_HUB_IP", "127.0.0.1")
PORT = int(setting("FAAS_HUB_PORT", "8000"))
#: Ports on the user network's gateway: the hub's API and the faas service (the only
#: ports of this host user containers reach); and the proxy's API on 127.0.0.1.
API_PORT = int(setting("FAAS_HUB_API_PORT", "8081"))
SERVICE_PORT = int(setting("FAAS_HUB_SERVICE_PORT", "8082"))
PROXY_API_PORT = int(setting("FAAS_HUB_PROXY_API_PORT", "8001"))
#: Name prefix of the user containers ("PREFIX-USER"), their home volumes
#: ("PREFIX-home-USER"), the team volume ("PREFIX-team") and the network ("PREFIX").
PREFIX = setting("FAAS_HUB_PREFIX", "faas-hub")
NETWORK = setting("FAAS_HUB_NETWORK", PREFIX)
#: The single-user image, as scripts/hub.sh built it (the only image users get).
IMAGE = setting("FAAS_HUB_IMAGE", "jupyter-faas-singleuser:latest")
#: The function server (as this host reaches it) and its data directory (where the faas
#: service makes namespaces).
SERVER_URL = setting("FAAS_SERVER_URL", "http://127.0.0.1:3233")
SERVER_DATA = setting(
    "FAAS_SERVER_DATA", str(Path.home() / ".local" / "share" / "jupyter-faas" / "server")
)
#: Registry path under which each user's images are pushed: PREFIX/NAMESPACE/deps:KEY.
REGISTRY_PREFIX = setting("FAAS_HUB_REGISTRY_PREFIX", "jupyter-faas/users")
#: Labels (JSON object) put on user containers and the service's test containers, e.g.
#: {"org.example.site": "hub"}; the tests mark their run with it.
LABELS = json.loads(setting("FAAS_HUB_LABELS", "{}"))
#: configurable-http-proxy, as scripts/hub.sh installed it from npm.
PROXY_COMMAND = setting(
    "FAAS_HUB_PROXY_COMMAND", str(STATE / "node_modules" / ".bin" / "configurable-http-proxy")
)

# -- Login -----------------------------------------------------------------------------------

#: The demo's login: any user name, one shared password (in this file, 0600, made by
#: scripts/hub.sh). Sites use OAuth instead (FAAS_HUB_SITE_CONFIG, docs/hub.md).
PASSWORD_FILE = Path(setting("FAAS_HUB_PASSWORD_FILE", str(STATE / "password")))
#: Hub admins (comma-separated): the admin page, and the operator scope of the faas service.
#: They log in with a password of their own (in this file, 0600, made on the first start).
ADMINS = {u for u in setting("FAAS_HUB_ADMIN_USERS", "admin").split(",") if u}
ADMIN_PASSWORD_FILE = Path(setting("FAAS_HUB_ADMIN_PASSWORD_FILE", str(STATE / "admin-password")))
#: The admin API token (0600), for scripts: users, servers, tokens, the namespace map.
ADMIN_TOKEN_FILE = Path(setting("FAAS_HUB_ADMIN_TOKEN_FILE", str(STATE / "admin-token")))

# -- Limits ----------------------------------------------------------------------------------

#: Per-user container limits: memory (bytes, or with K/M/G), CPUs, processes.
MEM_LIMIT = setting("FAAS_HUB_MEM_LIMIT", "2G")
CPU_LIMIT = float(setting("FAAS_HUB_CPU_LIMIT", "1.0"))
PIDS_LIMIT = int(setting("FAAS_HUB_PIDS_LIMIT", "512"))
#: Seconds a server may take to start (a cold machine, several users at once) and to
#: answer its first HTTP request.
START_TIMEOUT = int(setting("FAAS_HUB_START_TIMEOUT", "300"))
HTTP_TIMEOUT = int(setting("FAAS_HUB_HTTP_TIMEOUT", "120"))
#: Servers idle this many seconds are stopped (their files stay in the volumes); 0: never.
CULL_IDLE_S = int(setting("FAAS_HUB_CULL_IDLE_S", "3600"))
#: Whether users may share their running server with other users (JupyterHub's sharing:
#: POST /hub/api/shares/OWNER/SERVER, or jupyter-collaboration's Share dialog) to edit
#: together in real time. 1: yes; 0: no. A guest runs code as the owner (see docs/hub.md).
SHARING = setting("FAAS_HUB_SHARING", "1") == "1"
#: What user containers may reach besides the hub and the service: space-separated CIDRs,
#: addresses or host names, each with an optional :port (a package mirror, a proxy).
ALLOWED_EGRESS = setting("FAAS_HUB_ALLOWED_EGRESS", "").split()


def secret_file(path: Path, make) -> str:
    """The secret in ``path``, made (0600) on the first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make() + "\n")
    return path.read_text().strip()


STATE.mkdir(parents=True, exist_ok=True)
GATEWAY = ensure_user_network(NETWORK, [API_PORT, SERVICE_PORT], ALLOWED_EGRESS, LABELS)
SERVICE_URL = f"http://{GATEWAY}:{SERVICE_PORT}"

# -- The hub ---------------------------------------------------------------------------------

c.JupyterHub.bind_url = f"http://{IP}:{PORT}"
# The hub's API on the user network's gateway: where the containers reach it.
c.JupyterHub.hub_bind_url = f"http://{GATEWAY}:{API_PORT}"
c.JupyterHub.hub_connect_url = f"http://{GATEWAY}:{API_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.command = [PROXY_COMMAND]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = secret_file(
    PASSWORD_FILE, lambda: secrets.token_urlsafe(12)
)
c.SharedPasswordAuthenticator.admin_password = secret_file(
    ADMIN_PASSWORD_FILE, lambda: secrets.token_urlsafe(32)
)
c.Authenticator.allow_all = True
c.Authenticator.admin_users = ADMINS

# -- Users' servers --------------------------------------------------------------------------

c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = IMAGE
# One pinned image: users cannot pick another (no options form with a single entry).
c.DockerSpawner.allowed_images = {"jupyter-faas": IMAGE}
c.DockerSpawner.pull_policy = "never"  # built here, never pulled
c.DockerSpawner.prefix = PREFIX
c.DockerSpawner.network_name = NETWORK
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True  # a stopped server leaves no container, only its volumes
c.DockerSpawner.notebook_dir = "/home/jovyan"
c.DockerSpawner.volumes = {
    f"{PREFIX}-home-{{username}}": "/home/jovyan/work",
    f"{PREFIX}-team": "/home/jovyan/team",
}
c.DockerSpawner.mem_limit = MEM_LIMIT
c.DockerSpawner.cpu_limit = CPU_LIMIT
c.DockerSpawner.extra_host_config = {
    "pids_limit": PIDS_LIMIT,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
}
c.DockerSpawner.extra_create_kwargs = {"labels": engine.labels("hub-user", **LABELS)}
c.DockerSpawner.environment = {"FAAS_HUB_SERVICE_URL": f"{SERVICE_URL}/services/faas/"}
c.Spawner.start_timeout = START_TIMEOUT
c.Spawner.http_timeout = HTTP_TIMEOUT
c.Spawner.default_url = "/lab"
# The server's token (and so its kernels') may call the faas service as its owner.
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=faas",
]

# Tokens the server's OAuth client issues to browsers (the owner's, and a guest's of a shared
# server): the faas service as the person at the browser, so the sidebar can act as the
# guest; with sharing, the names and shares that jupyter-collaboration's Share dialog needs.
c.Spawner.oauth_client_allowed_scopes = ["access:services!service=faas"] + (
    ["read:users:name", "list:users", "shares!user"] if SHARING else []
)

# -- The faas service, the operators' token, idle culling ------------------------------------

SITE_ENV = {
    name: os.environ[name]
    for name in (
        "DOCKER_HOST",
        "FAAS_REGISTRY",
        "FAAS_BASE_IMAGE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "FAAS_CA_BUNDLE",
        "PIP_CERT",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "FAAS_PIP_INDEX_URL",
        "FAAS_PIP_EXTRA_INDEX_URL",
    )
    if os.environ.get(name)
}
c.JupyterHub.services = [
    {
        "name": "faas",
        "url": SERVICE_URL,
        "command": [
            sys.executable,
            "-m",
            "jupyter_faas.hub",
            f"--NamespaceMap.server_url={SERVER_URL}",
            f"--NamespaceMap.server_data_dir={SERVER_DATA}",
            f"--NamespaceMap.registry_prefix={REGISTRY_PREFIX}",
            *(f"--BuildJobs.extra_labels={k}={v}" for k, v in LABELS.items()),
        ],
        "environment": {**SITE_ENV, "FAAS_HUB_SERVICE_STATE": str(STATE / "faas")},
        "display": False,
    },
    {"name": "faas-admin", "api_token": secret_file(ADMIN_TOKEN_FILE, secrets.token_hex)},
]
c.JupyterHub.custom_scopes = {
    "custom:faas:admin": {"description": "List and delete every user's faas namespace."}
}
c.JupyterHub.load_roles = [
    # Users may call the faas service (their kernels' tokens carry it too) and, with
    # sharing, share their own servers with users they name.
    {
        "name": "user",
        "scopes": ["self", "access:services!service=faas"]
        + (["shares!user", "read:users:name", "list:users"] if SHARING else []),
    },
    {
        "name": "faas-operator",
        "description": "Scripts and operators: users, servers, tokens, the namespace map.",
        "scopes": [
            "admin:users",
            "admin:servers",
            "tokens",
            "list:users",
            "read:users",
            "access:servers",
            "access:services!service=faas",
            "custom:faas:admin",
        ],
        "services": ["faas-admin"],
        "users": sorted(ADMINS),
    },
]
if CULL_IDLE_S:
    c.JupyterHub.services.append(
        {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={CULL_IDLE_S}"],
        }
    )
    c.JupyterHub.load_roles.append(
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    )

if os.environ.get("FAAS_HUB_SITE_CONFIG"):
    load_subconfig(os.environ["FAAS_HUB_SITE_CONFIG"])  # noqa: F821

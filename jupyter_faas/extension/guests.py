"""Guests of a shared JupyterHub server act as themselves: ``GuestWorkspaces``.

JupyterHub lets Alice share her running server with Bob; Bob's browser then
holds a token of Bob's (the server's OAuth client grants it
``access:services!service=faas``). The server's own credentials
(``$JUPYTERHUB_API_TOKEN``, ``$__OW_API_KEY``) are Alice's, so the sidebar must
not use them for Bob: each guest gets a workspace of their own, whose builder
is a ``HubBuilder`` with the guest's token (builds, tests and pushes at the
faas service as the guest, images under the guest's registry path) and whose
deployer holds the guest's namespace key and API host from the service's
``api/namespace``, asked with the same token. Workspaces are kept per guest in
memory (the key is never written to disk); a guest's new token is looked up
again, an unchanged one after ``FaaSExtension.guest_lookup_s``.

A kernel cannot know who typed in it: ``%%faas`` in a shared server still acts
as its owner.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from ..builders.hub import HubBuilder
from ..deployers.openwhisk import OpenWhiskDeployer
from ..deployers.openwhisk_rest import OpenWhiskClient
from ..errors import FaaSError
from ..workspace import FaaSWorkspace
from .acting import Actor


class GuestError(FaaSError):
    """The sidebar cannot act for a guest of this shared server (it never falls back to
    the owner's credentials)."""

    status = 503
    reason = "guest-unavailable"


class GuestRefused(GuestError):
    """The hub's faas service refused the guest's token (403 is the guest's, not a login
    failure of this server)."""

    status = 403
    reason = "guest-refused"


@dataclass
class HubCaller:
    """The hub identity of a request: user (or service) name, its kind, and its token."""

    name: str
    kind: str
    token: str | None


def hub_caller(handler) -> HubCaller | None:
    """Who calls ``handler``, as JupyterHub's identity provider of the single-user server
    knows them (``JupyterHubIdentityProvider``); None outside JupyterHub.

    The token is the one the request authenticated with, as ``HubAuth.get_token`` finds
    it: ``Authorization: token …`` (what JupyterLab sends) or the hub OAuth cookie.
    """
    hub_auth = getattr(handler.identity_provider, "hub_auth", None)
    model = getattr(handler.current_user, "hub_user", None)
    if hub_auth is None or not isinstance(model, dict) or not model.get("name"):
        return None
    return HubCaller(model["name"], model.get("kind") or "user", hub_auth.get_token(handler))


@dataclass
class _Guest:
    actor: Actor
    token_sha256: str
    looked_up: float


class GuestWorkspaces:
    """One workspace per guest of this server, made and refreshed from the guest's token.

    Args:
        app: The ``FaaSExtension``: its config is the guests' workspaces' config too.
        lookup_s: Seconds a lookup is reused while the guest's token stays the same.
    """

    def __init__(self, app, lookup_s: float):
        self.app = app
        self.lookup_s = lookup_s
        self._guests: dict[str, _Guest] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def actor(self, user: str, token: str | None) -> Actor:
        """The actor of guest ``user`` calling with ``token`` (blocking: may ask the service).

        Raises:
            GuestRefused: the service refused the token (it lacks the service's scope).
            GuestError: no service is configured, it does not answer, or it has no
                namespace for the guest.
        """
        owner = self.app.owner
        if not token:
            raise GuestRefused(
                f"{owner}'s server cannot tell which hub token you ({user}) called it with, "
                f"so the Functions sidebar cannot act in your namespace.",
                hint=f"Open {owner}'s server from the hub in your browser (or send "
                "Authorization: token YOUR-TOKEN).",
            )
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._guard:
            lock = self._locks.setdefault(user, threading.Lock())
        with lock:
            known = self._guests.get(user)
            now = time.monotonic()
            if (
                known is not None
                and known.token_sha256 == digest
                and now - known.looked_up < self.lookup_s
            ):
                return known.actor
            if known is None:
                workspace = FaaSWorkspace(parent=self.app)
                builder = HubBuilder(parent=workspace, api_token=token)
            else:
                workspace = known.actor.workspace
                builder = workspace.builder
                builder.api_token = token
            found = self._look_up(builder, user)
            if known is None:
                workspace.builder = builder
                workspace.deployer = self._deployer(workspace, user, found)
                actor = Actor(self.app, workspace, user, found["namespace"], owner)
                self.app.log.info(
                    "jupyter-faas: guest %s of %s's server acts in namespace %s",
                    user,
                    owner,
                    found["namespace"],
                )
            else:
                actor = known.actor
                client = workspace.deployer.client
                client.api_host, client.auth = found["api_host"], found["api_key"]
                actor.namespace = found["namespace"]
            self._guests[user] = _Guest(actor, digest, now)
            return actor

    def _deployer(self, workspace: FaaSWorkspace, user: str, found: dict) -> OpenWhiskDeployer:
        """An OpenWhisk deployer of the guest's namespace (the service hands out OpenWhisk
        keys, so a deployer class that is not an OpenWhiskDeployer is not used for guests)."""
        klass = workspace.deployer_class
        if not (isinstance(klass, type) and issubclass(klass, OpenWhiskDeployer)):
            klass = OpenWhiskDeployer
        client = OpenWhiskClient(
            parent=workspace, api_host=found["api_host"], auth=found["api_key"], namespace="_"
        )
        return klass(parent=workspace, client=client, who=user)

    def _look_up(self, builder: HubBuilder, user: str) -> dict:
        """The guest's namespace from the service, or a GuestError saying what to do."""
        owner = self.app.owner
        instead = f"Meanwhile, deploy from your own server (/user/{user}/)."
        if not builder.service_url:
            raise GuestError(
                f"You ({user}) are a guest on {owner}'s server: the Functions sidebar acts "
                "in your own namespace through the hub's faas service, and this server "
                "names none ($FAAS_HUB_SERVICE_URL is unset).",
                hint="Ask the hub's operator to set FAAS_HUB_SERVICE_URL for users' servers, "
                f"or, to let guests act as the owner, c.FaaSExtension."
                f"guests_act_as_themselves = False. {instead}",
            )
        try:
            found = builder.namespace()
        except FaaSError as err:
            self.app.log.info("No namespace for guest %s: %s", user, err)
            if err.status in (401, 403):
                raise GuestRefused(
                    f"The hub's faas service refused your ({user}'s) token, so the Functions "
                    f"sidebar cannot act in your namespace on {owner}'s server (it never "
                    f"uses {owner}'s). The service said: {err.message}",
                    hint="Open the server from the hub in your browser (its login grants "
                    "access:services!service=faas), or call with a token of yours that has "
                    f"that scope. {instead}",
                ) from None
            raise GuestError(
                f"The Functions sidebar cannot act in your ({user}'s) namespace on {owner}'s "
                f"server: {err.message}",
                hint=f"{err.hint or 'Try again in a minute; the hub restarts its service.'} "
                f"{instead}",
            ) from None
        missing = [k for k in ("namespace", "api_key", "api_host") if not found.get(k)]
        if missing:
            raise GuestError(
                f"The hub's faas service named no namespace for you ({user}): its answer "
                f"lacks {', '.join(missing)}.",
                hint=f"Ask the hub's operator to check the faas service's log. {instead}",
            )
        return found

    def close(self) -> None:
        """Release the guests' builders (their test containers are the service's); safe twice."""
        with self._guard:
            guests, self._guests = list(self._guests.values()), {}
        for guest in guests:
            guest.actor.workspace.close()

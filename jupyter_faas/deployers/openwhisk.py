"""``OpenWhiskDeployer``: functions as OpenWhisk blackbox actions, over the OpenWhisk REST API.

The default deployer. It speaks only the documented REST API, so it works
against our single-machine server and a real Apache OpenWhisk alike. A
function is a blackbox action (its dependency image from the registry plus its
code, which reaches the containers through ``/init``); a schedule is an alarm
trigger plus a rule, as ``wsk`` would create them. Sharing is OpenWhisk's too:
``publish`` copies a function's current action into a package with
``publish: true`` (by default ``shared``), which every namespace can list, read,
invoke, bind and use in sequences; the copy's code, limits and annotations
(requirements, handler, test input, description) are the bundle others ``pull``.

OpenWhisk keeps only an action's current document, so the deployer keeps the
version history itself: one JSON line per deploy, with the exact action
document sent, in ``history_dir/<host-port>/<namespace>/<name>.jsonl``. A
rollback sends a recorded document again.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import io
import json
import os
import re
import shlex
import threading
import time
import zipfile
from pathlib import Path

from traitlets import Instance, List, Unicode, default

from ..builders import BaseImage, BaseUnusable, PushedImage
from ..bundle import Bundle, check_name
from ..errors import BadRequest, NotFound, ServerError
from ..runtime import protocol
from .interface import (
    STATUSES,
    Accepted,
    ActivationRecord,
    DeployedFunction,
    Deployment,
    FaaSDeployer,
    Schedule,
    SharedBundle,
    SharedFunction,
    Version,
)
from .openwhisk_rest import ALARM_FEED, OpenWhiskClient

#: Trigger annotation marking the schedules this deployer made.
SCHEDULE_ANNOTATION = "jupyter-faas-schedule"
#: Action annotation with what a pull needs besides the code: requirements and faas.json.
BUNDLE_ANNOTATION = "jupyter-faas-bundle"
#: The faas.json fields a deploy records in BUNDLE_ANNOTATION (provenance stays home).
_SHARED_METADATA = (
    "handler",
    "memory_mb",
    "timeout_s",
    "python",
    "test_input",
    "ignore_keys",
    "data_files",
    "base",
)
#: An OpenWhisk entity name segment (a subset of EntityName.REGEX: no spaces).
_SEGMENT = re.compile(r"\A[\w][\w@.&-]{0,255}\Z")
#: Causing activations remembered (immutable, so only their number needs a bound).
_MAX_CAUSES = 10_000
#: OpenWhisk's response.status words, as our status names.
_STATUS_WORDS = {
    "success": "success",
    "application error": "application error",
    "action developer error": "developer error",
    "whisk internal error": "internal error",
}


class OpenWhiskDeployer(FaaSDeployer):
    """Deploys to an OpenWhisk REST API (``c.OpenWhiskClient.api_host`` and ``.auth``)."""

    client = Instance(OpenWhiskClient, help="The OpenWhisk REST client (c.OpenWhiskClient).")

    history_dir = Unicode(
        help="""Folder of the version history: one file per server, namespace and function
        (<host-port>/<namespace>/<name>.jsonl) with one line per deploy, holding the action
        document sent, so `%faas rollback` can send it again. OpenWhisk keeps no history;
        deploys made by other tools or machines are not in it. Default: $FAAS_HISTORY_DIR,
        else ~/.local/share/jupyter-faas/history.""",
    ).tag(config=True)

    who = Unicode(
        help="""Who deploys, as the history records it. Default: $JUPYTERHUB_USER, else the
        login name.""",
    ).tag(config=True)

    shared_package = Unicode(
        "shared",
        help="""Package `%faas publish` puts functions in (created with publish: true, so
        every namespace can list and use what is in it), e.g. "shared" or "crystallography".""",
    ).tag(config=True)

    shared_namespaces = List(
        Unicode(),
        help="""Namespaces whose published packages `%faas shared` also lists, e.g.
        ["alice", "whisk.system"]. Our function server lists every namespace's published
        packages by itself; an Apache OpenWhisk deployment shows only those of a namespace
        one names. Empty: only what the server lists.""",
    ).tag(config=True)

    @default("client")
    def _client_default(self):
        return OpenWhiskClient(parent=self.parent or self)

    @default("history_dir")
    def _history_dir_default(self):
        return os.environ.get("FAAS_HISTORY_DIR") or str(
            Path.home() / ".local" / "share" / "jupyter-faas" / "history"
        )

    @default("who")
    def _who_default(self):
        try:
            return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for this uid (some containers)
            return str(os.getuid())

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._history_lock = threading.Lock()
        self._namespace: str | None = None
        #: Activation id -> (kind, name) of the activations that started others (immutable).
        self._causes: dict[str, tuple[str | None, str | None]] = {}

    @property
    def location(self) -> str:
        return self.client.api_host

    def deploy(self, bundle: Bundle, image: PushedImage, base: dict | None = None) -> Deployment:
        code = bundle.init_value()
        meta = bundle.metadata
        recorded = {
            "requirements": bundle.requirements.splitlines(),
            "metadata": {k: getattr(meta, k) for k in _SHARED_METADATA},
        }
        if base:
            # What the image inherits, so an image based on this one knows all it holds.
            recorded["base"] = {
                k: base.get(k) for k in ("ref", "version", "image", "digest", "requirements")
            }
        doc = {
            "exec": {
                "kind": "blackbox",
                "image": image.ref,
                "code": code["code"],
                "main": meta.handler,
                "binary": code["binary"],
            },
            "limits": {"timeout": int(meta.timeout_s * 1000), "memory": meta.memory_mb},
            "annotations": [
                {
                    "key": protocol.FAAS_ANNOTATION,
                    "value": {"source_sha256": bundle.code_sha256(), "digest": image.digest},
                },
                {"key": BUNDLE_ANNOTATION, "value": recorded},
            ],
        }
        cell = meta.cell or {}
        entry = Version(
            name=bundle.name,
            version=None,
            time=0.0,
            who=self.who,
            image=image.ref,
            digest=image.digest,
            code_sha256=bundle.code_sha256(),
            notebook=cell.get("notebook"),
            cell_id=cell.get("cell_id"),
            cell_sha256=cell.get("cell_sha256"),
        )
        return self._put(entry, doc)

    def _put(self, entry: Version, doc: dict) -> Deployment:
        """Send ``doc`` as ``entry.name``'s action and record it in the history."""
        action = self.client.put_action(entry.name, doc)
        entry.version, entry.time = action.get("version"), time.time()
        namespace = action.get("namespace") or self._own_namespace()
        self._namespace = self._namespace or namespace.split("/")[0]
        path = self._history_file(entry.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**entry.to_json(), "action": doc}
        record.pop("current")
        with self._history_lock, path.open("a") as out:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
        return Deployment(
            name=entry.name,
            server=self.client.api_host,
            namespace=namespace,
            version=entry.version,
            image=entry.image,
            digest=entry.digest,
            code_sha256=entry.code_sha256,
            time=entry.time,
            notebook=entry.notebook,
            cell_id=entry.cell_id,
            cell_sha256=entry.cell_sha256,
        )

    def _own_namespace(self) -> str:
        """The namespace this client works in ("_" resolved through the key, once)."""
        if self.client.namespace != "_":
            return self.client.namespace
        if self._namespace is None:
            names = self.client.namespaces()
            self._namespace = names[0] if names else "_"
        return self._namespace

    def _history_file(self, name: str) -> Path:
        host = re.sub(r"[^A-Za-z0-9.]+", "-", self.client.host_url().split("://", 1)[1])
        namespace = re.sub(r"[^A-Za-z0-9._@-]+", "-", self._own_namespace())
        return Path(self.history_dir) / host.strip("-") / namespace / f"{check_name(name)}.jsonl"

    def _history(self, name: str) -> list[dict]:
        """The recorded deploys of ``name``, oldest first (unreadable lines are skipped)."""
        path = self._history_file(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                self.log.warning("Skipping an unreadable line of %s", path)
                continue
            if isinstance(entry, dict) and isinstance(entry.get("action"), dict):
                entries.append(entry)
        return entries

    def versions(self, name: str) -> list[Version]:
        try:
            current = self.client.get_action(check_name(name)).get("version")
        except ServerError as err:
            if err.status != 404:
                raise
            current = None
        fields = set(Version.__dataclass_fields__)
        found = []
        for entry in reversed(self._history(name)):
            version = Version(**{k: v for k, v in entry.items() if k in fields})
            # Only the newest record of the running version is the one running.
            version.current = current is not None and version.version == current
            if version.current:
                current = None
            found.append(version)
        return found

    def rollback(self, name: str, version: str) -> Deployment:
        history = self._history(check_name(name))
        chosen = next((e for e in reversed(history) if e.get("version") == version), None)
        if chosen is None:
            known = ", ".join(dict.fromkeys(str(e.get("version")) for e in reversed(history)))
            raise NotFound(
                f"{name} has no version {version!r} in its history"
                + (f" (versions: {known})." if known else " (no deploys recorded)."),
                hint=f"List them with %faas versions {name} (or the sidebar's Versions).",
            )
        fields = set(Version.__dataclass_fields__) - {"current", "version", "time", "who"}
        entry = Version(
            **{k: v for k, v in chosen.items() if k in fields},
            version=None,
            time=0.0,
            who=self.who,
        )
        entry.rollback_of = version
        return self._put(entry, chosen["action"])

    def web_url(self, name: str) -> str | None:
        return self.function(name).web_url

    def commands(self, name: str, params: dict) -> dict:
        body = json.dumps(params, separators=(",", ":"))
        key = _key_expression(self.client.auth)
        url = f"{self.client.base_url()}/actions/{check_name(name)}?blocking=true&result=true"
        insecure = "" if self.client.verify_tls else " -k"
        curl = (
            f"curl -sS{insecure} -u {key} -X POST -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)} {shlex.quote(url)}"
        )
        wsk_params = "".join(
            f" --param {shlex.quote(k)} {shlex.quote(json.dumps(v))}" for k, v in params.items()
        )
        wsk = (
            f"wsk{' -i' if not self.client.verify_tls else ''} --apihost "
            f"{shlex.quote(self.client.host_url())} --auth {key} action invoke "
            f"{name} --result{wsk_params}"
        )
        return {"curl": curl, "wsk": wsk}

    def invoke(self, name: str, params: dict, blocking: bool = True) -> ActivationRecord | Accepted:
        """Run ``name``: one's own function, ``BINDING/NAME`` or a shared ``OWNER/PACKAGE/NAME``."""
        owner, path = self._target(name)
        try:
            _, body = self.client.invoke(path, params, blocking=blocking, namespace=owner)
        except ServerError as err:
            raise self._not_shared(name, err) from None
        if "response" not in body:
            return Accepted(body.get("activationId", ""))
        return activation_record(body)

    def activation(self, activation_id: str) -> ActivationRecord:
        return self._explained([activation_record(self.client.get_activation(activation_id))])[0]

    def activations(
        self, name: str | None = None, limit: int = 30, since_ms: int | None = None
    ) -> list[ActivationRecord]:
        raw = self.client.list_activations(name, limit, since_ms)
        # A list of all activations holds most causing ones too: no request for those.
        listed = {r.get("activationId"): r for r in raw}
        return self._explained([activation_record(r) for r in raw], listed)

    def _explained(
        self, records: list[ActivationRecord], listed: dict | None = None
    ) -> list[ActivationRecord]:
        """Fill in what started each record (the causing trigger or sequence, looked up once)."""
        crons: dict[str, str] | None = None
        for record in records:
            if not record.cause:
                continue
            if record.cause not in self._causes:
                parent = (listed or {}).get(record.cause)
                try:
                    parent = parent or self.client.get_activation(record.cause)
                except ServerError as err:
                    if err.status != 404:
                        raise
                    parent = {}  # deleted by retention: a trigger or sequence, name unknown
                kind = "sequence" if protocol.annotation(parent, "kind") == "sequence" else None
                if len(self._causes) >= _MAX_CAUSES:  # a long-lived server: start afresh
                    self._causes.clear()
                self._causes[record.cause] = (kind, parent.get("name"))
            kind, parent_name = self._causes[record.cause]
            if kind is None and parent_name:
                if crons is None:
                    crons = {entry.trigger: entry.cron for entry in self.schedules()}
                if parent_name in crons:
                    kind, record.cron = "schedule", crons[parent_name]
            record.cause_kind, record.cause_name = kind or "trigger", parent_name
        return records

    def schedule(self, name: str, cron: str, payload: dict | None = None) -> str:
        check_name(name)
        self.client.get_action(name)
        trigger = f"{name}-cron-{hashlib.sha256(cron.encode()).hexdigest()[:8]}"
        self.client.put_trigger(
            trigger,
            [
                {"key": "feed", "value": ALARM_FEED},
                {"key": SCHEDULE_ANNOTATION, "value": {"action": name, "cron": cron}},
            ],
        )
        try:
            self.client.alarm_feed("CREATE", trigger, cron=cron, trigger_payload=payload or {})
        except ServerError:
            self.client.delete_trigger(trigger)
            raise
        self.client.put_rule(_rule_name(trigger), trigger, name)
        return trigger

    def schedules(self, name: str | None = None) -> list[Schedule]:
        found = []
        for trigger in self.client.list_triggers():
            mark = protocol.annotation(trigger, SCHEDULE_ANNOTATION)
            if isinstance(mark, dict) and (name is None or mark.get("action") == name):
                found.append(Schedule(trigger["name"], mark.get("action"), mark.get("cron")))
        return found

    def unschedule(self, name: str, cron: str | None = None) -> list[str]:
        removed = []
        for entry in self.schedules(check_name(name)):
            if cron is not None and entry.cron != cron:
                continue
            steps = (
                (self.client.delete_rule, (_rule_name(entry.trigger),)),
                (self.client.alarm_feed, ("DELETE", entry.trigger)),
                (self.client.delete_trigger, (entry.trigger,)),
            )
            for call, args in steps:
                try:
                    call(*args)
                except ServerError as err:
                    if err.status != 404:  # already gone counts as removed
                        raise
            removed.append(entry.trigger)
        return removed

    def functions(self) -> list[DeployedFunction]:
        host = self.client.host_url()
        return [_deployed(action, host) for action in self.client.list_actions()]

    def function(self, name: str) -> DeployedFunction:
        return _deployed(self.client.get_action(check_name(name)), self.client.host_url())

    def delete(self, name: str) -> None:
        self.unschedule(name)
        self.client.delete_action(check_name(name))

    # -- sharing ----------------------------------------------------------------------------

    def publish(self, name: str, package: str = "", description: str = "") -> SharedFunction:
        package = _segment(package or self.shared_package, "package")
        try:
            doc = self.client.get_action(check_name(name), code=True)
        except ServerError as err:
            if err.status != 404:
                raise
            raise NotFound(
                f"{name} is not deployed, so there is nothing to publish.",
                hint=f"Deploy it first: %faas deploy {name}, then %faas publish {name}.",
            ) from None
        try:
            found = self.client.get_package(package)
        except ServerError as err:
            if err.status != 404:
                raise
            found = None
        if found is not None and found.get("binding"):
            raise BadRequest(
                f"Package {package} is a binding of another package; functions cannot be put in it.",
                hint="Publish in another package: %faas publish NAME --package OTHER.",
            )
        if found is None or not found.get("publish"):
            self.client.put_package(package, {"publish": True})
        metadata = (protocol.annotation(doc, BUNDLE_ANNOTATION) or {}).get("metadata") or {}
        sample = metadata.get("test_input")
        contract = [
            {"key": "sampleInput", "value": sample},
            {
                "key": "parameters",
                "value": [{"name": k, "required": True} for k in (sample or {})],
            },
        ]
        if description:
            contract.append({"key": "description", "value": description})
        copy = {
            "exec": doc["exec"],
            "limits": doc.get("limits") or {},
            "parameters": doc.get("parameters") or [],
            "version": doc.get("version"),
            "annotations": [a for a in doc.get("annotations") or [] if a["key"] != "exec"]
            + contract,
        }
        action = self.client.put_action(f"{package}/{name}", copy)
        return _shared_function(self._own_namespace(), package, action, mine=True)

    def unpublish(self, name: str, package: str = "") -> None:
        owner, path = self._target(name)
        if owner is not None:
            raise BadRequest(
                f"{name} belongs to {owner}: only {owner} can unpublish it.",
                hint=f"Stop using it instead, or keep a copy of your own: %faas pull {name}.",
            )
        if "/" not in path:
            path = f"{_segment(package or self.shared_package, 'package')}/{path}"
        package = path.partition("/")[0]
        try:
            self.client.delete_action(path)
        except ServerError as err:
            if err.status != 404:
                raise
            raise NotFound(
                f"{path.partition('/')[2]} is not published in package {package}.",
                hint="%faas shared lists what is published (yours are marked).",
            ) from None
        if not self.client.get_package(package).get("actions"):
            self.client.delete_package(package)

    def shared(self) -> list[SharedFunction]:
        own = self._own_namespace()
        packages = self.client.list_packages(public=True)
        for namespace in self.shared_namespaces:
            try:
                packages += self.client.list_packages(namespace)
            except ServerError as err:
                self.log.warning("Not listing the packages of %s: %s", namespace, err.message)
        found, seen = [], set()
        for pkg in packages:
            owner = pkg.get("namespace")
            if not pkg.get("publish") or pkg.get("binding") or (owner, pkg["name"]) in seen:
                continue
            seen.add((owner, pkg["name"]))
            try:
                contents = self.client.get_package(pkg["name"], namespace=owner)
                for item in contents.get("actions") or []:
                    path = f"{pkg['name']}/{item['name']}"
                    doc = self.client.get_action(path, namespace=owner)
                    found.append(_shared_function(owner, pkg["name"], doc, owner == own))
            except ServerError as err:
                if err.status not in (403, 404):  # unpublished while listed: not shared now
                    raise
        return found

    def pull(self, ref: str) -> SharedBundle:
        owner, path = self._target(ref)
        if "/" not in path:
            raise BadRequest(
                f"{ref!r} does not name a published function.",
                hint="Give OWNER/PACKAGE/NAME, as %faas shared lists it.",
            )
        try:
            doc = self.client.get_action(path, code=True, namespace=owner)
        except ServerError as err:
            raise self._not_shared(ref, err) from None
        exec_ = doc.get("exec") or {}
        code = exec_.get("code")
        if not code:
            raise BadRequest(
                f"{ref} has no code to copy: it is an image ({exec_.get('image')}) only.",
                hint="Invoke it, bind it or use it in a sequence instead.",
            )
        if exec_.get("binary"):
            with zipfile.ZipFile(io.BytesIO(base64.b64decode(code))) as zf:
                files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        else:
            files = {"handler.py": code.encode()}
        recorded = protocol.annotation(doc, BUNDLE_ANNOTATION) or {}
        return SharedBundle(
            ref=f"{owner or self._own_namespace()}/{path}",
            version=doc.get("version"),
            files=files,
            requirements=list(recorded.get("requirements") or []),
            metadata={"handler": exec_.get("main") or "main", **(recorded.get("metadata") or {})},
            image=exec_.get("image"),
        )

    def base(self, ref: str) -> BaseImage:
        parts = ref.strip("/").split("/") if isinstance(ref, str) else []
        if len(parts) != 3:
            raise BadRequest(
                f"{ref!r} does not name a published function, so it cannot be a base.",
                hint="Give OWNER/PACKAGE/NAME, as %faas shared lists it, e.g. "
                "--base alice/shared/peaks.",
            )
        owner, package, name = (_segment(p, "name segment") for p in parts)
        namespace = None if owner == self._own_namespace() else owner
        try:
            # Another namespace's package is readable only while published (403 otherwise);
            # one's own always is, so its publish flag is checked here.
            found = self.client.get_package(package, namespace=namespace)
            if found.get("binding") or not found.get("publish"):
                raise ServerError("not published", status=403)
            doc = self.client.get_action(f"{package}/{name}", namespace=namespace)
        except ServerError as err:
            if err.status == 404 and namespace is None:
                err = ServerError(err.message, status=403, body=err.body)
            raise self._base_refused(ref, err) from None
        exec_ = doc.get("exec") or {}
        if exec_.get("kind") != "blackbox" or not exec_.get("image"):
            raise BaseUnusable(
                f"{ref} is a {exec_.get('kind') or 'function'} action without an image of "
                "its own, so it cannot be a base.",
                hint="A base is a function deployed from a notebook (a blackbox action on its "
                f"dependency image). Use this one in a sequence instead: "
                f"%faas sequence NAME {ref} …",
            )
        mark = protocol.annotation(doc, protocol.FAAS_ANNOTATION)
        recorded = protocol.annotation(doc, BUNDLE_ANNOTATION)
        if not isinstance(mark, dict) or not isinstance(recorded, dict):
            raise BaseUnusable(
                f"{ref} runs on the image {exec_['image']}, which jupyter-faas did not build "
                "(the action has no record of its dependency image), so nothing says there is "
                "a virtualenv and runtime to add requirements to.",
                hint=f"Invoke it, or use it in a sequence: %faas sequence NAME {ref} …",
            )
        inherited = recorded.get("base") or {}
        requirements = list(inherited.get("requirements") or []) + list(
            recorded.get("requirements") or []
        )
        return BaseImage(
            ref=f"{owner}/{package}/{name}",
            owner=owner,
            version=doc.get("version"),
            image=exec_["image"],
            digest=str(mark.get("digest") or ""),
            requirements=[r for r in requirements if r.strip() and not r.lstrip().startswith("#")],
        )

    def _base_refused(self, ref: str, err: ServerError) -> ServerError:
        """Why ``ref`` cannot be a base: not published (403), or the server's own error."""
        if err.status not in (403, 404):
            return err
        owner, package, name = ref.strip("/").split("/")
        return ServerError(
            f"{ref} cannot be a base: it is not published (any more), or {owner} has no "
            f"function {name} in a package {package}. Only a function its owner published "
            "can be a base, so its image is shared on purpose.",
            status=403,
            hint=f"%faas shared lists what is published now; ask {owner} to publish it "
            f"(%faas publish {name}). Functions built on it before keep working.",
            body=err.body,
        )

    def bind(self, package_ref: str, name: str = "", params: dict | None = None) -> str:
        parts = package_ref.strip("/").split("/")
        if len(parts) not in (2, 3):
            raise BadRequest(
                f"{package_ref!r} does not name a published package.",
                hint="Give OWNER/PACKAGE (or OWNER/PACKAGE/NAME), as %faas shared lists it.",
            )
        owner, package = _segment(parts[0], "owner"), _segment(parts[1], "package")
        name = _segment(name or f"{owner}-{package}", "binding name")
        body = {
            "binding": {"namespace": owner, "name": package},
            "parameters": [{"key": k, "value": v} for k, v in (params or {}).items()],
        }
        try:
            self.client.put_package(name, body)
        except ServerError as err:
            raise self._not_shared(f"{owner}/{package}", err) from None
        return name

    def sequence(self, name: str, steps: list[str]) -> DeployedFunction:
        """An OpenWhisk action of kind sequence, its components fully qualified."""
        if not steps:
            raise BadRequest(
                f"The sequence {name} needs at least one step.",
                hint=f"For example: %faas sequence {name} alice/shared/peaks my-summary.",
            )
        components = []
        for step in steps:
            owner, path = self._target(step)
            components.append(f"/{owner or '_'}/{path}")
        doc = {"exec": {"kind": "sequence", "components": components}}
        try:
            action = self.client.put_action(check_name(name), doc)
        except ServerError as err:
            if err.status not in (400, 403):  # a step missing, or not shared with this key
                raise
            raise BadRequest(
                f"The sequence {name} cannot be made: {err.message}",
                hint="Every step must be deployed, or published by its owner; "
                "%faas list and %faas shared show them.",
            ) from None
        return _deployed(action, self.client.host_url())

    def _target(self, ref: str) -> tuple[str | None, str]:
        """``(namespace or None for one's own, path)`` of ``NAME``, ``PACKAGE/NAME`` or
        ``OWNER/PACKAGE/NAME``."""
        parts = ref.strip("/").split("/") if isinstance(ref, str) else []
        if len(parts) == 1:
            return None, check_name(ref)
        if len(parts) not in (2, 3):
            raise BadRequest(
                f"{ref!r} is neither a function NAME, PACKAGE/NAME nor OWNER/PACKAGE/NAME.",
                hint="%faas list shows your functions, %faas shared the shared ones.",
            )
        segments = [_segment(p, "name segment") for p in parts]
        if len(segments) == 3 and segments[0] != self._own_namespace():
            return segments[0], "/".join(segments[1:])
        return None, "/".join(segments[-2:])

    def _not_shared(self, ref: str, err: ServerError) -> ServerError:
        """A 403 on a function reached through a package, said plainly (others pass)."""
        if err.status != 403:
            return err
        parts = ref.strip("/").split("/")
        if len(parts) == 2 and self._target(ref)[0] is None:  # BINDING/NAME of one's own
            return ServerError(
                f"{ref}: package {parts[0]} is a binding to a package that is not shared "
                "with you any more.",
                status=403,
                hint="Its owner unpublished it; %faas shared lists what is published now, and "
                "a copy you pulled (%faas pull) keeps working.",
                body=err.body,
            )
        owner, package = parts[0], parts[1]
        return ServerError(
            f"{ref} is not shared with you: package {package} of {owner} is not published "
            f"(any more), or {owner} has no such package.",
            status=403,
            hint=f"Ask {owner} to publish it (%faas publish NAME); %faas shared lists what is "
            "published now, and a copy you pulled (%faas pull) keeps working.",
            body=err.body,
        )


def _segment(value: str, what: str) -> str:
    """``value`` if it is an OpenWhisk name segment, else a BadRequest saying so."""
    if isinstance(value, str) and _SEGMENT.match(value):
        return value
    raise BadRequest(
        f"{value!r} is not a valid {what}: letters, digits, '_', '@', '.', '&' and '-', "
        "starting with a letter, digit or '_'.",
        hint="%faas shared lists the published functions as OWNER/PACKAGE/NAME.",
    )


def _shared_function(owner: str, package: str, doc: dict, mine: bool) -> SharedFunction:
    """A published action (GET without code) as a SharedFunction."""
    exec_ = doc.get("exec") or {}
    limits = doc.get("limits") or {}
    metadata = (protocol.annotation(doc, BUNDLE_ANNOTATION) or {}).get("metadata") or {}
    timeout = limits.get("timeout")
    return SharedFunction(
        owner=owner,
        package=package,
        name=doc["name"],
        description=protocol.annotation(doc, "description") or "",
        version=doc.get("version"),
        updated_ms=doc.get("updated"),
        contract={
            "handler": exec_.get("main") or metadata.get("handler") or "main",
            "parameters": protocol.annotation(doc, "parameters") or [],
            "sample_input": protocol.annotation(doc, "sampleInput"),
            "memory_mb": limits.get("memory"),
            "timeout_s": timeout / 1000 if isinstance(timeout, (int, float)) else None,
            "python": metadata.get("python"),
            "image": exec_.get("image"),
        },
        mine=mine,
    )


def activation_record(record: dict) -> ActivationRecord:
    """An OpenWhisk activation (full record or list item) as a neutral record."""
    response = record.get("response") or {}
    code = record.get("statusCode", response.get("statusCode"))
    if isinstance(code, int) and 0 <= code < len(STATUSES):
        status = STATUSES[code]
    elif response.get("status"):
        status = _STATUS_WORDS.get(response["status"], response["status"])
    else:
        status = "running"
    init_ms = protocol.annotation(record, "initTime")
    return ActivationRecord(
        activation_id=record.get("activationId", ""),
        name=record.get("name", ""),
        status=status,
        start_ms=record.get("start"),
        duration_ms=record.get("duration"),
        cold=init_ms is not None,
        result=response.get("result"),
        logs=list(record.get("logs") or []),
        wait_ms=protocol.annotation(record, "waitTime"),
        init_ms=init_ms,
        version=record.get("version"),
        # List items leave the subject out; the namespace a record is kept in is the caller's.
        subject=record.get("subject") or record.get("namespace"),
        cause=record.get("cause"),
    )


def _deployed(action: dict, host_url: str) -> DeployedFunction:
    mark = protocol.annotation(action, protocol.FAAS_ANNOTATION)
    mark = mark if isinstance(mark, dict) else {}
    web_url = None
    if protocol.annotation(action, "web-export") in (True, "true", "yes", "raw"):
        ns, _, package = (action.get("namespace") or "_").partition("/")
        web_url = f"{host_url}/api/v1/web/{ns}/{package or 'default'}/{action['name']}.json"
    return DeployedFunction(
        name=action["name"],
        version=action.get("version"),
        updated_ms=action.get("updated"),
        namespace=action.get("namespace"),
        digest=mark.get("digest"),
        code_sha256=mark.get("source_sha256"),
        web_url=web_url,
    )


def _key_expression(auth: str) -> str:
    """The API key for a shell command: read from the server's key file when it is that key."""
    from ..paths import default_server_data_dir

    path = Path(default_server_data_dir()) / "auth.guest"
    try:
        if path.read_text().strip() == auth:
            return f'"$(cat {shlex.quote(str(path))})"'
    except OSError:
        pass
    return shlex.quote(auth)


def _rule_name(trigger: str) -> str:
    """Rules and triggers share one name space in OpenWhisk, so the rule gets a suffix."""
    return f"{trigger}-rule"

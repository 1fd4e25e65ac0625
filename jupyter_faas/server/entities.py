"""OpenWhisk entity documents: names, limits, exec, parameters, list shapes.

Pure functions, no I/O: the API handlers validate request bodies with them
and build the stored documents; the activator reads those documents. Every
message here is the one OpenWhisk sends for the same mistake.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from .errors import ILLEGAL_NAME, BadRequest, TooLarge

#: OpenWhisk's entity name rule (EntityName.REGEX): a word character, then up to
#: 255 of word characters, "@", space, ".", "&", "-", not ending in a space.
NAME_RE = re.compile(r"\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\Z")
MAX_NAME = 256

#: The default Python kinds accepted on create and the kind they are stored as.
PYTHON_KIND = "python:3.11"
PYTHON_ALIASES = ("python:default", "python:3", "python:3.10", "python:3.11")
#: Blackbox images that mean "the platform's own skeleton" (``wsk --native``).
NATIVE_IMAGES = ("openwhisk/dockerskeleton",)
#: Kinds a client may create; "builtin" is reserved for the server's own feed actions.
VALID_KINDS = ("blackbox", *PYTHON_ALIASES, "sequence")
BUILTIN_KIND = "builtin"
MAX_SEQUENCE = 50

_BASE64_RE = re.compile(r"\A[A-Za-z0-9+/\r\n]+={0,2}\s*\Z")


def now_ms() -> int:
    """Epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Identity:
    """An authenticated subject: its namespace and ``uuid:key`` credentials."""

    namespace: str
    uuid: str
    key: str

    @property
    def api_key(self) -> str:
        """``uuid:key``, as clients and ``__OW_API_KEY`` spell it; "" when the key is unknown
        (work started without the caller's key: the server stores key digests only)."""
        return f"{self.uuid}:{self.key}" if self.key else ""


@dataclass(frozen=True)
class LimitRanges:
    """The allowed range and default of every action limit (from the server's settings)."""

    min_timeout: int = 100
    max_timeout: int = 300000
    default_timeout: int = 60000
    min_memory: int = 128
    max_memory: int = 512
    default_memory: int = 256
    min_logs: int = 0
    max_logs: int = 10
    default_logs: int = 10
    max_concurrency: int = 1
    max_payload: int = 1024 * 1024
    max_code: int = 48 * 1024 * 1024
    max_wait: int = 60000

    def defaults(self) -> dict:
        """The limits of an action created without any."""
        return {
            "timeout": self.default_timeout,
            "memory": self.default_memory,
            "logs": self.default_logs,
            "concurrency": 1,
        }


# -- names ------------------------------------------------------------------------------


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid entity name segment, else raise BadRequest."""
    if len(name) > MAX_NAME:
        raise BadRequest(f"Name segement longer than allowed: {len(name)} > {MAX_NAME}.")
    if not NAME_RE.match(name):
        raise BadRequest(ILLEGAL_NAME)
    return name


def split_path(path: str, default_ns: str) -> tuple[str, str]:
    """Split a fully qualified name ``/ns/[pkg/]name`` (or ``[pkg/]name``) into ns and rest.

    ``_`` as namespace means ``default_ns``.

    Raises:
        BadRequest: the path has too many or empty segments, or an illegal name.
    """
    if path.startswith("/"):
        parts = path[1:].split("/")
        if len(parts) < 2:
            raise BadRequest(ILLEGAL_NAME)
        ns, rest = parts[0], parts[1:]
    else:
        ns, rest = default_ns, path.split("/")
    if len(rest) > 2 or not ns:
        raise BadRequest(ILLEGAL_NAME)
    for segment in [ns, *rest]:
        check_name(segment)
    return (default_ns if ns == "_" else ns), "/".join(rest)


# -- body parts -------------------------------------------------------------------------


def _malformed(what: str) -> BadRequest:
    return BadRequest(f"The request content was malformed: {what}")


def check_key_values(value: Any, field: str) -> list[dict]:
    """Validate a ``[{"key": str, "value": any}]`` list (parameters or annotations)."""
    if not isinstance(value, list):
        raise _malformed(f"'{field}' must be an array of {{key, value}} objects.")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _malformed(f"every '{field}' entry needs a string 'key' and a 'value'.")
        entry = {"key": item["key"], "value": item.get("value")}
        if item.get("init") is True:
            entry["init"] = True
        out.append(entry)
    return out


def check_params_size(params: list[dict], ranges: LimitRanges) -> None:
    """413 when parameters exceed the payload limit."""
    size = len(json.dumps(params, separators=(",", ":")).encode())
    if size > ranges.max_payload:
        raise TooLarge(f"Request larger than allowed: {size} > {ranges.max_payload} bytes.")


def merge_annotations(old: list[dict], new: list[dict] | None, delete: Any = None) -> list[dict]:
    """``old ++ new`` by key (new wins, order kept), minus the keys in ``delete``."""
    merged: dict[str, dict] = {a["key"]: a for a in old}
    for a in new or []:
        merged[a["key"]] = a
    if delete is not None:
        if not isinstance(delete, list) or not all(isinstance(k, str) for k in delete):
            raise _malformed("'delAnnotations' must be an array of annotation keys.")
        for key in delete:
            merged.pop(key, None)
    return list(merged.values())


def set_annotation(annotations: list[dict], key: str, value: Any) -> list[dict]:
    """Set (or replace) one annotation, keeping the others."""
    return merge_annotations(annotations, [{"key": key, "value": value}])


def params_dict(params: list[dict] | None) -> dict:
    """``[{"key", "value"}]`` as a dict (init parameters included)."""
    return {p["key"]: p.get("value") for p in params or []}


def up_patch(version: str) -> str:
    """``a.b.c`` → ``a.b.(c+1)``: the version of an update without explicit version."""
    try:
        major, minor, patch = (int(x) for x in version.split("."))
    except ValueError:
        return "0.0.1"
    return f"{major}.{minor}.{patch + 1}"


def check_version(value: Any) -> str:
    """Validate an explicit ``version`` (semantic version ``a.b.c``)."""
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+\.\d+", value):
        raise _malformed(f"version '{value}' must be a semantic version such as 0.0.1.")
    return value


def _int_limit(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(f"{what} limit must be an integer, got {json.dumps(value)}.")
    return value


def check_limits(given: Any, old: dict, ranges: LimitRanges) -> dict:
    """Merge the limits of a PUT body into ``old`` and check every range.

    Raises:
        BadRequest: with OpenWhisk's threshold message, e.g.
            ``memory 1024 MB exceeds allowed threshold of 512 MB``.
    """
    if given is None:
        return dict(old)
    if not isinstance(given, dict):
        raise _malformed("'limits' must be an object.")
    limits = dict(old)
    checks = (
        ("timeout", "duration", "milliseconds", ranges.min_timeout, ranges.max_timeout),
        ("memory", "memory", "MB", ranges.min_memory, ranges.max_memory),
        ("logs", "log size", "MB", ranges.min_logs, ranges.max_logs),
        ("concurrency", "concurrency", "", 1, ranges.max_concurrency),
    )
    for field, label, unit, low, high in checks:
        if given.get(field) is None:
            continue
        value = _int_limit(given[field], field)
        suffix = f" {unit}" if unit else ""
        if value < low:
            raise BadRequest(f"{label} {value}{suffix} below allowed threshold of {low}{suffix}")
        if value > high:
            raise BadRequest(f"{label} {value}{suffix} exceeds allowed threshold of {high}{suffix}")
        limits[field] = value
    return limits


def is_binary(code: str) -> bool:
    """OpenWhisk's rule: non-empty, length a multiple of 4 and base64 characters only."""
    trimmed = code.strip()
    if not trimmed or len(trimmed) % 4 or not _BASE64_RE.match(trimmed):
        return False
    try:
        base64.b64decode(trimmed, validate=False)
    except binascii.Error:
        return False
    return True


def check_exec(given: Any, namespace: str) -> dict:
    """Validate an ``exec`` and return the stored form (kind resolved, binary decided).

    Args:
        given: The ``exec`` object of the PUT body.
        namespace: The action's namespace, to resolve ``_`` in sequence components.

    Raises:
        BadRequest: unknown kind (listing the valid ones), blackbox without image,
            missing code for a managed kind, malformed components.
    """
    if not isinstance(given, dict):
        raise _malformed("'exec' must be an object with a 'kind'.")
    kind = given.get("kind")
    if kind not in VALID_KINDS:
        raise BadRequest(
            f"The specified runtime '{kind}' is not supported by this platform. "
            f"Valid values are: {', '.join(VALID_KINDS)}."
        )
    if kind == "sequence":
        components = given.get("components")
        if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
            raise _malformed("a sequence 'exec' needs 'components', an array of action names.")
        if not components:
            raise BadRequest("No component specified for the sequence.")
        if len(components) > MAX_SEQUENCE:
            raise BadRequest("Too many actions in the sequence.")
        resolved = []
        for component in components:
            ns, rest = split_path(component, namespace)
            resolved.append(f"/{ns}/{rest}")
        return {"kind": "sequence", "components": resolved}
    code = given.get("code")
    if code is not None and not isinstance(code, str):
        raise _malformed("'exec.code' must be a string (base64 for zip files).")
    main = given.get("main")
    if main is not None and not isinstance(main, str):
        raise _malformed("'exec.main' must be a string naming the entry function.")
    out: dict[str, Any] = {}
    if kind == "blackbox":
        image = given.get("image")
        if not isinstance(image, str) or not image.strip():
            raise BadRequest("A blackbox action needs 'exec.image', a Docker image reference.")
        out = {"kind": "blackbox", "image": image.strip()}
    else:
        if not code:
            raise BadRequest(f"An action of kind '{kind}' needs 'exec.code'.")
        out = {"kind": PYTHON_KIND}
    if code:
        out["code"] = code
    if main:
        out["main"] = main
    out["binary"] = bool(code) and is_binary(code)
    return out


def exec_size(exec_: dict) -> int:
    """Size in bytes of an exec's code (what the 48 MB limit applies to)."""
    return len((exec_.get("code") or "").encode())


# -- list shapes and API forms ----------------------------------------------------------

_META_FIELDS = ("namespace", "name", "version", "publish", "annotations", "updated")


def action_view(doc: dict, code: bool = True) -> dict:
    """An action as GET returns it; without ``code`` the exec keeps only its metadata."""
    out = dict(doc)
    if not code:
        out["exec"] = {k: v for k, v in doc["exec"].items() if k != "code"}
    return out


def action_summary(doc: dict) -> dict:
    """An action as list items show it: no code, no kind (clients read the exec annotation)."""
    out = {k: doc[k] for k in _META_FIELDS if k in doc}
    out["limits"] = doc.get("limits", {})
    out["exec"] = {"binary": bool(doc["exec"].get("binary", False))}
    return out


def package_summary(doc: dict) -> dict:
    """A package as list items show it: ``binding`` is false or ``{namespace, name}``."""
    out = {k: doc[k] for k in _META_FIELDS if k in doc}
    out["binding"] = doc.get("binding") or False
    return out


def trigger_summary(doc: dict) -> dict:
    """A trigger as list items show it."""
    return {k: doc[k] for k in _META_FIELDS if k in doc}


def rule_summary(doc: dict) -> dict:
    """A rule as list items show it (with its computed status)."""
    out = {k: doc[k] for k in _META_FIELDS if k in doc}
    out["status"] = doc.get("status", "inactive")
    return out


STATUS_TEXT = ("success", "application error", "action developer error", "whisk internal error")


def activation_extended(doc: dict) -> dict:
    """The API form of a stored activation: ``success`` + ``status`` instead of ``statusCode``.

    Unfinished records (``end == 0``) drop ``end`` and ``duration``.
    """
    out = dict(doc)
    response = dict(doc["response"])
    code = response.pop("statusCode", 0)
    response["status"] = STATUS_TEXT[code]
    response["success"] = code == 0
    out["response"] = response
    if not doc.get("end"):
        out.pop("end", None)
        out.pop("duration", None)
    return out


def activation_summary(doc: dict) -> dict:
    """An activation as list items show it: metadata plus top-level ``statusCode``."""
    fields = ("namespace", "name", "version", "publish", "annotations", "activationId", "start")
    out = {k: doc[k] for k in fields if k in doc}
    if doc.get("cause"):
        out["cause"] = doc["cause"]
    if doc.get("end"):
        out["end"] = doc["end"]
        out["duration"] = doc.get("duration", doc["end"] - doc["start"])
        out["statusCode"] = doc["response"]["statusCode"]
    return out

"""What the hub's faas service and its clients send each other, in one place.

Jobs (build, test, push) answer with newline-delimited JSON: zero or more
``{"progress": {...}}`` lines (the builder's progress events, as they happen),
then one ``{"result": ...}`` or ``{"error": ...}`` line. A bundle travels as a
base64 zip of its folder. Both sides import only this module, so a kernel
never needs JupyterHub or the service's dependencies.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

from .. import errors
from ..builders.interface import BaseUnusable
from ..bundle import METADATA_FILE, REQUIREMENTS_FILE, Bundle

#: Media type of a job's answer.
NDJSON = "application/x-ndjson"

#: Error classes by their ``reason``, so a refusal reads the same on both sides.
_ERRORS = {
    cls.reason: cls
    for cls in (
        errors.BadRequest,
        errors.NotFound,
        errors.BundleError,
        errors.ConfigError,
        errors.EngineUnavailable,
        errors.BaseImageMissing,
        errors.BuildError,
        errors.RegistryError,
        errors.LimitExceeded,
        BaseUnusable,
    )
}


def error_line(err: errors.FaaSError) -> dict:
    """The JSON of a refusal: message, hint, machine reason and HTTP status kept apart."""
    return {
        "error": err.message,
        "hint": err.hint,
        "reason": err.reason,
        "status": err.status,
    }


def raise_error(body: dict, what: str) -> None:
    """Raise the FaaSError a service answer (``error_line``) describes.

    Raises:
        FaaSError: of the class its ``reason`` names (FaaSError itself for others).
    """
    cls = _ERRORS.get(body.get("reason"), errors.FaaSError)
    message = body.get("error") or f"The faas service refused {what}."
    err = cls(message, hint=body.get("hint", ""))
    if cls is errors.FaaSError:
        err.status = int(body.get("status") or 500)
        err.reason = str(body.get("reason") or "hub-service")
    raise err


def pack_bundle(bundle: Bundle) -> str:
    """``bundle``'s folder as a base64 zip: its code files, faas.json and requirements.txt."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in bundle.code_files():
            zf.write(path, path.relative_to(bundle.path).as_posix())
        for name in (METADATA_FILE, REQUIREMENTS_FILE):
            if (bundle.path / name).is_file():
                zf.write(bundle.path / name, name)
    return base64.b64encode(buf.getvalue()).decode()


def unpack_bundle(data: str, folder: Path, max_bytes: int) -> Bundle:
    """Write a bundle sent by ``pack_bundle`` into ``folder`` and load it (validated).

    Raises:
        BadRequest: not base64 zip data, over ``max_bytes`` unpacked, or a member that
            would leave ``folder``.
        BundleError: the folder is not a valid bundle.
    """
    try:
        raw = base64.b64decode(data, validate=True)
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = archive.infolist()
    except (ValueError, zipfile.BadZipFile) as err:
        raise errors.BadRequest(
            f"The bundle is not a base64 zip archive ({err}).",
            hint="Send the bundle as jupyter_faas.hub.protocol.pack_bundle makes it.",
        ) from None
    total = sum(m.file_size for m in members)
    if max_bytes and total > max_bytes:
        raise errors.BadRequest(
            f"The bundle unpacks to {total} bytes, over the service's limit of {max_bytes} "
            "(c.FaaSHubService.max_bundle_bytes).",
            hint="Pass large data by reference (a URL or a path the function reads).",
        )
    root = folder.resolve()
    for member in members:
        target = (folder / member.filename).resolve()
        if not target.is_relative_to(root):
            raise errors.BadRequest(f"The bundle member {member.filename!r} leaves its folder.")
    archive.extractall(folder)
    return Bundle.load(folder)


def encode(line: dict) -> bytes:
    """One line of a job's answer."""
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"

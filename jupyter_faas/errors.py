"""One root error for everything jupyter-faas reports to a person.

Each error keeps three things apart (house style, rule 11): the message a
person reads (what went wrong and what to do), a short machine ``reason`` and
the HTTP ``status`` used when the error crosses an HTTP boundary.
"""

from __future__ import annotations

import json
import re


class FaaSError(Exception):
    """Base class: ``str(err)`` is the actionable message for the user.

    Args:
        message: What went wrong, naming the value and the rule.
        hint: What to do about it (a command, a setting), appended on its own line.
        detail: Longer diagnostic text (build log, traceback) kept out of the message.
    """

    status = 500
    reason = "internal"

    def __init__(self, message: str, *, hint: str = "", detail: str = ""):
        self.message = message
        self.hint = hint
        self.detail = detail
        super().__init__(message + (f"\n{hint}" if hint else ""))

    def to_json(self) -> dict:
        """The JSON error shape shared by the extension API and the function server."""
        return {"error": str(self), "reason": self.reason}


class BadRequest(FaaSError):
    """An HTTP request that does not follow its API (a field missing or malformed)."""

    status = 400
    reason = "bad-request"


class NotFound(FaaSError):
    """What an HTTP request names (a bundle, job, entity, activation or route) does not exist."""

    status = 404
    reason = "not-found"


class CaptureError(FaaSError):
    """The cell cannot be turned into a function (syntax, missing handler, uncapturable name)."""

    status = 400
    reason = "capture"


class BundleError(FaaSError):
    """A bundle folder is missing, incomplete or invalid."""

    status = 400
    reason = "bundle"


class ConfigError(FaaSError):
    """A setting has a value that cannot work."""

    status = 400
    reason = "config"


class EngineUnavailable(FaaSError):
    """The Docker engine cannot be reached."""

    status = 503
    reason = "engine-unavailable"


class BaseImageMissing(FaaSError):
    """The configured base image is not on the engine and cannot be pulled."""

    status = 409
    reason = "base-image-missing"


class BuildError(FaaSError):
    """Building the dependency image failed; ``detail`` holds the build log."""

    status = 502
    reason = "build"


class RegistryError(FaaSError):
    """The registry is unreachable, refused the credentials or the push."""

    status = 502
    reason = "registry"


class ServerError(FaaSError):
    """The function server refused a request or could not be reached; ``status`` is its HTTP
    status (503 when it did not answer), ``body`` what it said."""

    reason = "server"

    def __init__(self, message: str, *, status: int = 502, hint: str = "", body=None):
        super().__init__(message, hint=hint)
        self.status = status
        self.body = body


class LimitExceeded(FaaSError):
    """An input or result is larger than the function server accepts (checked before sending)."""

    status = 413
    reason = "too-large"


class ActivationFailed(FaaSError):
    """A deployed function ran but failed; ``record`` is its ActivationRecord (result, logs).

    Raised instead of returning ``{"error": …}`` as if it were the result, so a caller
    fails here, with the activation id and the error, not later with a KeyError.
    """

    status = 502
    reason = "activation-failed"

    def __init__(self, record, *, logs_tail: int = 10):
        self.record = record
        error = record.result.get("error") if isinstance(record.result, dict) else record.result
        text = error if isinstance(error, str) else json.dumps(error)
        if len(text) > 2000:
            text = text[:2000] + f"… ({len(text) - 2000} more characters in .record.result)"
        lines = [
            f"{record.name}: activation {record.activation_id} failed ({record.status}): {text}"
        ]
        tail = record.logs[-logs_tail:]
        if tail:
            earlier = len(record.logs) - len(tail)
            lines.append(
                f"Last {len(tail)} log lines"
                + (f" ({earlier} earlier ones left out)" if earlier else "")
                + ":"
            )
            lines.extend(f"  {line}" for line in tail)
        else:
            lines.append("Logs: (none)")
        super().__init__(
            "\n".join(lines),
            hint=f"The whole record: %faas logs {record.activation_id}",
        )


def for_cli(text: str) -> str:
    """``text`` with notebook commands (``%faas list``) spelled as CLI commands
    (``jupyter faas list``): one set of messages, each face's own syntax."""
    return _LINE_MAGIC.sub("jupyter faas ", text)


_LINE_MAGIC = re.compile(r"(?<![%\w])%faas ")

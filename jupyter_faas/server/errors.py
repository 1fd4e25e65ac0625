"""HTTP-facing errors of the function server.

Each class carries the HTTP status OpenWhisk uses for that kind of refusal;
``str(err)`` is the exact OpenWhisk message sent to the client. The API layer
turns them into ``{"error": message, "code": request_id}`` with one helper.
"""

from __future__ import annotations

from .. import errors
from ..errors import FaaSError


class WhiskError(FaaSError):
    """A request the function server refuses; ``status`` is the HTTP status."""

    status = 500
    reason = "whisk"


class BadRequest(errors.BadRequest, WhiskError):
    """The request is malformed: bad name, limits, parameters or body."""


class Unauthorized(WhiskError):
    """Missing or invalid credentials."""

    status = 401
    reason = "unauthorized"


class Forbidden(WhiskError):
    """Valid credentials, but not entitled to this namespace or entity."""

    status = 403
    reason = "forbidden"


class NotFound(errors.NotFound, WhiskError):
    """The entity, activation or route does not exist."""


class Conflict(WhiskError):
    """The entity exists already, or exists in another collection, or is in use."""

    status = 409
    reason = "conflict"


class TooLarge(WhiskError):
    """The request body exceeds a size limit."""

    status = 413
    reason = "too-large"


#: OpenWhisk's standard messages (``ErrorResponse.scala`` Messages), paraphrased where long.
AUTH_INVALID = "The supplied authentication is invalid"
AUTH_MISSING = "The resource requires authentication, which was not supplied with the request"
NOT_ENTITLED = "The supplied authentication is not authorized to access this resource."
NOT_FOUND = "The requested resource does not exist."
EXISTS = "resource already exists"
WRONG_COLLECTION = "Resource by this name exists but is not in this collection."
ILLEGAL_NAME = "The name of the entity contains illegal characters."
INTERNAL = "Internal server error"

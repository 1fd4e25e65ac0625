"""Errors of the server extension's own requests (bad bodies, unknown jobs and routes).

Everything else the API reports is already a ``FaaSError`` from the workspace,
the builder or the function server client, with its status and reason.
"""

from __future__ import annotations

from ..errors import FaaSError


class BadRequest(FaaSError):
    """The request body or query does not follow the API (a field is missing or malformed)."""

    status = 400
    reason = "bad-request"


class NotFound(FaaSError):
    """The bundle, job or route named in the request does not exist."""

    status = 404
    reason = "not-found"

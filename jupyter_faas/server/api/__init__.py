"""The function server's tornado handlers, one module per OpenWhisk collection.

:func:`routes` collects every module's ``default_handlers``.
"""

from __future__ import annotations

from . import actions, activations, info, metrics, packages, triggers, web
from .base import BaseHandler, NotFoundHandler


def routes() -> list[tuple]:
    """The URL routes of the OpenWhisk API (``/``, ``/api/v1/...``) and ``/metrics``."""
    handlers: list[tuple] = []
    for module in (info, actions, activations, triggers, packages, web, metrics):
        handlers.extend(module.default_handlers)
    return handlers


__all__ = ["BaseHandler", "NotFoundHandler", "routes"]

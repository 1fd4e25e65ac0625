"""Unauthenticated info routes, the namespace list and namespace limits."""

from __future__ import annotations

from ... import __version__
from ..entities import PYTHON_KIND
from .base import BaseHandler

BUILD = "jupyter-faas"


class InfoHandler(BaseHandler):
    """``GET /``: what this server is, its API paths, limits and runtimes."""

    auth_before_body = False

    def body_limit(self) -> int:
        return 0

    def get(self) -> None:
        ranges = self.faas.ranges
        self.send_json(
            {
                "description": "OpenWhisk-compatible function server (jupyter-faas)",
                "api_paths": ["/api/v1"],
                "build": BUILD,
                "buildno": __version__,
                "limits": {
                    "concurrent_actions": self.faas.max_running_activations,
                    "sequence_length": 50,
                    "min_action_duration": ranges.min_timeout,
                    "max_action_duration": ranges.max_timeout,
                    "min_action_memory": ranges.min_memory * 1024 * 1024,
                    "max_action_memory": ranges.max_memory * 1024 * 1024,
                    "min_action_logs": ranges.min_logs * 1024 * 1024,
                    "max_action_logs": ranges.max_logs * 1024 * 1024,
                },
                "runtimes": {
                    "python": [
                        {
                            "kind": PYTHON_KIND,
                            "default": True,
                            "deprecated": False,
                            "image": self.faas.python_image,
                            "requireMain": False,
                        }
                    ],
                },
            }
        )


class ApiInfoHandler(BaseHandler):
    """``GET /api/v1``: the API version document."""

    auth_before_body = False

    def body_limit(self) -> int:
        return 0

    def get(self) -> None:
        self.send_json(
            {
                "description": "OpenWhisk API",
                "api_version": "1.0.0",
                "api_version_path": "v1",
                "build": BUILD,
                "buildno": __version__,
                "swagger_paths": {"ui": "/docs", "api-docs": "/api-docs"},
            }
        )


class NamespacesHandler(BaseHandler):
    """``GET /api/v1/namespaces``: the caller's namespaces, as an array of names."""

    async def get(self) -> None:
        identity = await self.authenticate()
        self.send_json([identity.namespace])


class LimitsHandler(BaseHandler):
    """``GET /api/v1/namespaces/{ns}/limits``: the limits that apply to the namespace."""

    async def get(self, namespace: str) -> None:
        identity = await self.authenticate()
        self.own_namespace(namespace, identity)
        ranges = self.faas.ranges
        self.send_json(
            {
                "concurrentInvocations": self.faas.max_running_activations,
                "maxParameterSize": f"{ranges.max_payload} B",
                "minActionMemory": ranges.min_memory,
                "maxActionMemory": ranges.max_memory,
                "minActionTimeout": ranges.min_timeout,
                "maxActionTimeout": ranges.max_timeout,
                "minActionLogs": ranges.min_logs,
                "maxActionLogs": ranges.max_logs,
                "minActionConcurrency": 1,
                "maxActionConcurrency": ranges.max_concurrency,
                "storeActivations": True,
            }
        )


default_handlers = [
    (r"/", InfoHandler),
    (r"/api/v1/?", ApiInfoHandler),
    (r"/api/v1/namespaces/?", NamespacesHandler),
    (r"/api/v1/namespaces/([^/]+)/limits/?", LimitsHandler),
]

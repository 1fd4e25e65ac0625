"""The OpenWhisk-compatible function server.

``app`` (the traitlets Application), ``api/`` (tornado handlers), ``store/``
(SQLite state), ``activator`` (runs activations), ``alarms`` (the built-in
alarms feed) and ``pool/`` (the invokers: DockerInvoker, ProcessInvoker).
"""

from .app import FunctionServer, create_namespace, namespace_main

__all__ = ["FunctionServer", "create_namespace", "namespace_main"]

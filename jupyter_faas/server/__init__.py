"""The OpenWhisk-compatible function server.

``app`` (the traitlets Application), ``api/`` (tornado handlers), ``store/``
(SQLite state), ``activator`` (runs activations), ``alarms`` (the built-in
alarms feed) and ``pool/`` (the Invoker running containers).
"""

from .app import FunctionServer, create_namespace, namespace_main

__all__ = ["FunctionServer", "create_namespace", "namespace_main"]

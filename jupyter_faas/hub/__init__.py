"""jupyter-faas on JupyterHub: the hub's faas service and what user containers run with it.

``app`` (the service: namespaces, builds, tests and pushes on users' behalf; run by
the hub as ``python -m jupyter_faas.hub``), ``protocol`` (what the service and its
clients send each other), ``singleuser`` (a user container's start: its namespace and
key, then ``jupyterhub-singleuser``), ``network`` (the user containers' network and
what it may reach) and ``image`` (the single-user image). The kernel's side is
``jupyter_faas.builders.hub.HubBuilder`` (``c.FaaSWorkspace.builder_class = "hub"``).
"""

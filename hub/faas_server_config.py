"""The function server's settings for a hub: per-namespace limits, as on an OpenWhisk.

A single user's server defaults to no limits; on a hub every user is a namespace of
one server, so one user's loop or fan-out must not starve the others. Loaded by
``bash scripts/up.sh --hub`` (``jupyter faas serve --config hub/faas_server_config.py``);
each limit is an environment variable, 0 meaning no limit.
"""

import os

c = get_config()  # noqa: F821


def setting(name: str, default: str) -> int:
    return int(os.environ.get(name, "").strip() or default)


#: Invocations a namespace may start per minute (OpenWhisk's default 120); more get 429.
c.FunctionServer.invocations_per_minute = setting("FAAS_HUB_INVOCATIONS_PER_MINUTE", "120")
#: Invocations a namespace may have in flight at once (OpenWhisk's default 30).
c.FunctionServer.concurrent_invocations = setting("FAAS_HUB_CONCURRENT_INVOCATIONS", "30")
#: Trigger fires a namespace may make per minute (OpenWhisk's default 60).
c.FunctionServer.fires_per_minute = setting("FAAS_HUB_FIRES_PER_MINUTE", "60")

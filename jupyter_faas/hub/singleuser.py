"""``python -m jupyter_faas.hub.singleuser``: a user container's start on the hub.

Asks the faas service, with the server's own hub token, for the user's
namespace (made on first use) and its key, puts them where the OpenWhisk
client looks (``__OW_API_HOST``, ``__OW_API_KEY``) and becomes
``jupyterhub-singleuser``, so every kernel and the sidebar inherit them. The
key is never written to disk, and only this user's token can fetch it. When the
service does not answer, the server starts anyway and says so in its log; the
kernels then say what is wrong at their first build.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time

from ..builders.hub import HubBuilder
from ..errors import FaaSError

log = logging.getLogger("jupyter_faas.hub.singleuser")

#: Seconds to keep asking a service that does not answer yet (it may be starting too).
WAIT_S = 30.0


def credentials(builder: HubBuilder, wait_s: float = WAIT_S) -> dict[str, str]:
    """The OpenWhisk variables of this user's namespace, or {} when the service never answered."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = builder.namespace()
        except FaaSError as err:
            if time.monotonic() > deadline or err.status < 500:
                log.error("No function-server namespace for this server: %s", err)
                return {}
            time.sleep(1.0)
            continue
        log.info("Function-server namespace %s (%s)", found["namespace"], found["api_host"])
        return {"__OW_API_HOST": found["api_host"], "__OW_API_KEY": found["api_key"]}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[jupyter-faas %(levelname)s] %(message)s")
    os.environ.update(credentials(HubBuilder()))
    program = shutil.which("jupyterhub-singleuser")
    if program is None:
        sys.exit("jupyterhub-singleuser is not installed in this image.")
    args = sys.argv[1:] if argv is None else argv
    os.execv(program, [program, *args])


if __name__ == "__main__":
    main()

"""Default folders, in one light module (no server or engine imports)."""

from __future__ import annotations

import os
from pathlib import Path


def default_server_data_dir() -> str:
    """The function server's state: ``$FAAS_SERVER_DATA``, else ``~/.local/share/jupyter-faas/server``."""
    return os.environ.get("FAAS_SERVER_DATA") or str(
        Path.home() / ".local" / "share" / "jupyter-faas" / "server"
    )


def default_environment_dir() -> str:
    """Container-less dependency environments: ``$FAAS_ENV_DIR``, else ``~/.cache/jupyter-faas/envs``."""
    return os.environ.get("FAAS_ENV_DIR") or str(Path.home() / ".cache" / "jupyter-faas" / "envs")

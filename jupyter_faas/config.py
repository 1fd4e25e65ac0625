"""Reading ``jupyter_faas_config.py`` / ``.json`` from Jupyter's config path."""

from __future__ import annotations

from jupyter_core.paths import jupyter_config_path
from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound, JSONFileConfigLoader, PyFileConfigLoader

CONFIG_NAME = "jupyter_faas_config"


def load_jupyter_config() -> Config:
    """Site-wide, then user, then environment config files, later ones overriding earlier ones."""
    config = Config()
    for directory in reversed(jupyter_config_path()):
        for loader_class, suffix in ((JSONFileConfigLoader, ".json"), (PyFileConfigLoader, ".py")):
            try:
                config.merge(loader_class(CONFIG_NAME + suffix, path=directory).load_config())
            except ConfigFileNotFound:
                continue
    return config

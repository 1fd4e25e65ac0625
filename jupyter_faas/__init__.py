"""jupyter-faas: turn notebook cells into serverless functions.

Extension points: ``load_ipython_extension`` (``%load_ext jupyter_faas``), the Jupyter
server extension (``_jupyter_server_extension_points``, enabled by
jupyter-config/server-config/jupyter_faas.json), the JupyterLab sidebar
(``_jupyter_labextension_paths``) and the swappable builder
(``c.FaaSWorkspace.builder_class``, a ``FaaSBuilder``).
"""

from .builders import FaaSBuilder
from .errors import FaaSError

__version__ = "0.1.0"
__all__ = ["FaaSBuilder", "FaaSError", "load_ipython_extension", "__version__"]


def _jupyter_server_extension_points():
    """The server extension; imported only when a Jupyter server loads it."""
    from .extension import FaaSExtension

    return [{"module": "jupyter_faas", "app": FaaSExtension}]


def _jupyter_labextension_paths():
    """The prebuilt JupyterLab extension (the sidebar) shipped inside the package."""
    return [{"src": "labextension", "dest": "jupyter-faas"}]


def load_ipython_extension(ipython):
    """Register the %%faas / %faas magics; settings come from Jupyter config files and %config."""
    from .config import load_jupyter_config
    from .magics import FaaSMagics

    config = load_jupyter_config()
    config.merge(ipython.config)
    magics = FaaSMagics(shell=ipython, config=config)
    ipython.register_magics(magics)
    workspace = magics.workspace
    builder, deployer = workspace.builder, workspace.deployer
    parts = [magics, workspace, builder, deployer] + [
        getattr(part, name)
        for part, name in (
            (builder, "site"),
            (builder, "images"),
            (builder, "registry"),
            (builder, "environments"),
            (deployer, "client"),
        )
        if part.has_trait(name)
    ]
    ipython.configurables.extend(parts)
    if workspace.notice:
        print(f"jupyter-faas: {workspace.notice}")

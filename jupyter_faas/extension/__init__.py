"""The Jupyter server extension: the REST API the jupyter-faas sidebar talks to."""

from .app import FaaSExtension

__all__ = ["FaaSExtension"]

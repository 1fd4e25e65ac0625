"""jupyter-faas: turn notebook cells into serverless functions."""

__version__ = "0.1.0"

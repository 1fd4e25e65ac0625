"""Builders: the swappable backends of build, local test and push (``c.FaaSWorkspace.builder_class``)."""

from .interface import (
    BaseImage,
    BaseUnusable,
    BuiltImage,
    FaaSBuilder,
    Progress,
    PushedImage,
    no_progress,
)
from .sandbox import ContainerRun

__all__ = [
    "BaseImage",
    "BaseUnusable",
    "BuiltImage",
    "ContainerRun",
    "FaaSBuilder",
    "Progress",
    "PushedImage",
    "no_progress",
]

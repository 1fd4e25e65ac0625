"""Builders: the swappable backends of build, local test and push (``c.FaaSWorkspace.builder_class``)."""

from .interface import BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .sandbox import ContainerRun

__all__ = ["BuiltImage", "ContainerRun", "FaaSBuilder", "Progress", "PushedImage", "no_progress"]

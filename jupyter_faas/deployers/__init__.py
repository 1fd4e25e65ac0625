"""Deployers: the swappable function-server backends (``c.FaaSWorkspace.deployer_class``)."""

from .interface import (
    Accepted,
    ActivationRecord,
    DeployedFunction,
    Deployment,
    FaaSDeployer,
    Schedule,
    SharedBundle,
    SharedFunction,
    Version,
)

__all__ = [
    "Accepted",
    "ActivationRecord",
    "DeployedFunction",
    "Deployment",
    "FaaSDeployer",
    "Schedule",
    "SharedBundle",
    "SharedFunction",
    "Version",
]

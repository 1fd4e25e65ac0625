"""Deployers: the swappable function-server backends (``c.FaaSWorkspace.deployer_class``)."""

from .interface import (
    Accepted,
    ActivationRecord,
    DeployedFunction,
    Deployment,
    FaaSDeployer,
    Schedule,
    Version,
)

__all__ = [
    "Accepted",
    "ActivationRecord",
    "DeployedFunction",
    "Deployment",
    "FaaSDeployer",
    "Schedule",
    "Version",
]

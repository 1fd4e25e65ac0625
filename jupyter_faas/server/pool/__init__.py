"""The function server's invokers and the job/outcome types they speak.

``docker`` (``DockerInvoker``: a pool of warm action containers) and
``process`` (``ProcessInvoker``: runtime processes from virtualenvs, no
container engine) implement ``FaaSInvoker`` from ``types``.
"""

from .types import ActivationJob, FaaSInvoker, RunOutcome

__all__ = ["ActivationJob", "FaaSInvoker", "RunOutcome"]

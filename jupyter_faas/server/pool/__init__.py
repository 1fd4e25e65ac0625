"""The function server's container pool: the Invoker and the job/outcome types it speaks."""

from .invoker import Invoker
from .types import ActivationJob, RunOutcome

__all__ = ["ActivationJob", "Invoker", "RunOutcome"]

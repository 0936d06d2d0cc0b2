"""What every agent is: a name, an input schema and ``run(input, reporter)`` returning JSON."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import marshmallow


class AgentError(Exception):
    """The agent could not finish the job."""

    code = "agent_error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class PermanentAgentError(AgentError):
    """The input can never succeed; retrying would give the same answer."""


class TransientAgentError(AgentError):
    """A passing failure (a timeout, a dropped connection); another attempt may succeed."""

    code = "transient_error"
    retryable = True


class Reporter(Protocol):
    """What an agent may tell the job service while it runs."""

    def progress(self, percent: float, stage: str, message: str = "") -> None:
        """Record progress (0-100) in a named stage; also a cancellation checkpoint."""

    def checkpoint(self) -> None:
        """Raise ``JobCancelled`` if a cancel was requested; call between steps."""


@dataclass(frozen=True)
class Agent:
    """An agent the service can run. ``run`` must be deterministic for the same input."""

    name: str
    description: str
    input_schema: type[marshmallow.Schema]
    run: Callable[[dict[str, Any], Reporter], dict[str, Any]]
    # Upper bound on one attempt; past it the attempt is interrupted and the job fails with `timeout`.
    time_limit_s: float = 60.0

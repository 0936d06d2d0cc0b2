"""The canvas agent's two failures: a prompt it cannot read, and a drawing that cannot fit."""
from __future__ import annotations

from backend.agents.base import PermanentAgentError

from .vocabulary import MAX_OBJECTS

EXAMPLES = "try 'three red circles in a row' or 'flowchart: Start -> Validate -> End'"


def unintelligible(reason: str) -> PermanentAgentError:
    return PermanentAgentError(f"{reason}; {EXAMPLES}", code="unintelligible_prompt")


def too_many(requested: int, what: str) -> PermanentAgentError:
    return PermanentAgentError(
        f"{what} would need {requested} objects but one canvas holds at most {MAX_OBJECTS}",
        code="does_not_fit",
    )


def does_not_fit(message: str) -> PermanentAgentError:
    return PermanentAgentError(message, code="does_not_fit")

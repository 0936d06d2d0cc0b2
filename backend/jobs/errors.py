"""What can go wrong when asking the job service for something. Each docstring is the default message."""
from __future__ import annotations


class JobServiceError(Exception):
    """The job service refused the request."""

    def __init__(self, detail: str | None = None, **extra) -> None:
        self.detail = detail or (self.__doc__ or "").strip()
        self.extra = extra
        super().__init__(self.detail)


class MalformedJobId(JobServiceError):
    """This is not a job id."""


class JobNotFound(JobServiceError):
    """No job with this id belongs to you."""


class RequestIdConflict(JobServiceError):
    """This request_id was already used for a different request body."""


class JobAlreadyFinished(JobServiceError):
    """The job has already finished, so it can no longer be cancelled."""


class UnknownAgent(JobServiceError):
    """No enabled agent has this name."""


class InvalidJobInput(JobServiceError):
    """The job input does not match the agent's input schema."""


class InvalidCursor(JobServiceError):
    """The cursor is not one this service issued."""


class JobCancelled(Exception):
    """Raised at an agent checkpoint when the job's cancellation was requested."""

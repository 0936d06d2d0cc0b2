"""How soon a client should poll again: the server's hint, by status and age."""
from __future__ import annotations

import threading
from datetime import datetime

from ..models import Job
from .status import JobStatus

QUEUED_POLL_MS = 2000
# Just after a start, progress moves fast: poll quickly, then ease off for long runs.
RUNNING_FRESH_POLL_MS = 500
RUNNING_POLL_MS = 1000
RUNNING_LONG_POLL_MS = 3000
FRESH_RUN_S = 10
LONG_RUN_S = 120


def poll_after_ms(job: Job, now: datetime, load_factor: float = 1.0) -> int | None:
    """The suggested delay before the next poll; None once the job is terminal.

    ``load_factor`` (>= 1) stretches every hint while this process is busy, so clients back off
    together instead of piling on.
    """
    status = JobStatus(job.status)
    if status.is_terminal:
        return None
    if status is JobStatus.QUEUED or job.started_at is None:
        base_ms = QUEUED_POLL_MS
    else:
        running_s = (now - job.started_at).total_seconds()
        if running_s < FRESH_RUN_S:
            base_ms = RUNNING_FRESH_POLL_MS
        elif running_s > LONG_RUN_S:
            base_ms = RUNNING_LONG_POLL_MS
        else:
            base_ms = RUNNING_POLL_MS
    return int(base_ms * max(1.0, load_factor))


class LoadGauge:
    """Requests in flight in this process, turned into a factor for the poll hints."""

    # In-flight requests at which hints double, and the most they are stretched.
    BUSY_REQUESTS = 32
    MAX_FACTOR = 4.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self, _error=None) -> None:
        with self._lock:
            self.in_flight -= 1

    def factor(self) -> float:
        """1.0 when idle; the asking request itself does not count as load."""
        others = max(0, self.in_flight - 1)
        return min(self.MAX_FACTOR, 1.0 + others / self.BUSY_REQUESTS)


def retry_after_s(poll_ms: int | None) -> str | None:
    """The Retry-After header value (whole seconds, at least 1) for a poll hint."""
    if poll_ms is None:
        return None
    return str(max(1, round(poll_ms / 1000)))

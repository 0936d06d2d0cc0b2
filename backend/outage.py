"""Fail fast while a dependency is down: after one failure, skip it for a short while."""
from __future__ import annotations

import time


class SkipAfterFailure:
    """After a failed call, report ``skipping()`` for ``seconds``: each try while the dependency is
    down would cost a connect timeout, and the caller has a durable fallback (the sweep resends,
    a long poll re-reads at the end of its wait)."""

    def __init__(self, seconds: float, *, clock=time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._until = 0.0

    def skipping(self) -> bool:
        return self._clock() < self._until

    def failed(self) -> None:
        self._until = self._clock() + self.seconds

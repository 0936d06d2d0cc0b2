"""Fail fast while a dependency is down: after one failure, skip it for a short while."""
from __future__ import annotations

import time


class SkipAfterFailure:
    """After a failed call, report ``skipping()`` for ``seconds``: each try while the dependency is
    down would cost a connect timeout, and the caller has a durable fallback (the sweep resends,
    a long poll re-reads at the end of its wait)."""

    def __init__(self, seconds: float, *, component: str = "redis", clock=time.monotonic) -> None:
        from . import metrics

        self.seconds = seconds
        self._clock = clock
        self._until = 0.0
        # redis_errors_total / redis_outage_skips_total, labelled by who calls (broker, notifier).
        self._errors = metrics.REDIS_ERRORS.labels(component)
        self._skips = metrics.REDIS_OUTAGE_SKIPS.labels(component)

    def skipping(self) -> bool:
        if self._clock() < self._until:
            self._skips.inc()
            return True
        return False

    def failed(self) -> None:
        self._errors.inc()
        self._until = self._clock() + self.seconds

"""The last 15 minutes of polls, recoveries and slow queries, for the ops page's sparklines.

Prometheus keeps the long history; the ops page needs only a short one without a Prometheus. A
daemon thread per web process (started by the first ``/metrics`` or ``/health/details`` request)
samples the cumulative series every ``INTERVAL_S``; points are the differences between samples.
With PROMETHEUS_MULTIPROC_DIR the samples sum every process of this host, like ``/metrics``.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from . import metrics

INTERVAL_S = 15.0
SPAN_S = 15 * 60
FAILED_OUTCOMES = ("5xx", "429")
SWEEP_ACTIONS = ("requeued", "failed_worker_lost", "resent", "cancelled", "purged")


@dataclass(frozen=True)
class Totals:
    """Cumulative values at one moment."""

    at: float  # epoch seconds
    polls: dict[str, float]  # by outcome
    poll_buckets: tuple[tuple[float, float], ...]  # (upper bound s, cumulative count)
    recoveries: float
    recovery_sum_s: float
    sweep: dict[str, float]
    slow_queries: float


def read_totals(now: float | None = None) -> Totals:
    families = metrics.samples()
    polls: dict[str, float] = {}
    for sample in families.get("job_polls", ()):
        if sample.name == "job_polls_total":
            polls[sample.labels["outcome"]] = polls.get(sample.labels["outcome"], 0.0) + sample.value
    buckets: dict[float, float] = {}
    for sample in families.get("job_poll_duration_seconds", ()):
        if sample.name.endswith("_bucket"):
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    recoveries = recovery_sum = 0.0
    for sample in families.get("job_recovery_seconds", ()):
        if sample.name.endswith("_count"):
            recoveries += sample.value
        elif sample.name.endswith("_sum"):
            recovery_sum += sample.value
    sweep: dict[str, float] = {}
    for sample in families.get("job_sweep_actions", ()):
        if sample.name.endswith("_total"):
            sweep[sample.labels["action"]] = sweep.get(sample.labels["action"], 0.0) + sample.value
    slow = sum(s.value for s in families.get("db_slow_queries", ()) if s.name.endswith("_total"))
    return Totals(
        at=time.time() if now is None else now,
        polls=polls,
        poll_buckets=tuple(sorted(buckets.items())),
        recoveries=recoveries,
        recovery_sum_s=recovery_sum,
        sweep=sweep,
        slow_queries=slow,
    )


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Like PromQL's histogram_quantile: linear interpolation within the bucket holding rank q."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # past the last finite bucket: its bound is the best answer
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def summarise(old: Totals, new: Totals) -> dict:
    """What happened between two samples."""
    polls = {k: max(0.0, new.polls.get(k, 0.0) - old.polls.get(k, 0.0)) for k in set(new.polls) | set(old.polls)}
    total = sum(polls.values())
    failed = sum(polls.get(k, 0.0) for k in FAILED_OUTCOMES)
    previous = dict(old.poll_buckets)
    deltas = [(bound, max(0.0, count - previous.get(bound, 0.0))) for bound, count in new.poll_buckets]
    p50, p95 = quantile(0.5, deltas), quantile(0.95, deltas)
    recoveries = max(0.0, new.recoveries - old.recoveries)
    recovery_sum = max(0.0, new.recovery_sum_s - old.recovery_sum_s)
    return {
        "from": old.at,
        "to": new.at,
        "polls": int(total),
        "failed_polls": int(failed),
        "success_rate": None if total == 0 else round(1 - failed / total, 4),
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p95_ms": None if p95 is None else round(p95 * 1000, 2),
        "recoveries": int(recoveries),
        "recovery_avg_s": None if recoveries == 0 else round(recovery_sum / recoveries, 2),
        "sweep": {a: int(max(0.0, new.sweep.get(a, 0.0) - old.sweep.get(a, 0.0))) for a in SWEEP_ACTIONS},
        "slow_queries": int(max(0.0, new.slow_queries - old.slow_queries)),
    }


class OpsWindow:
    """Samples every ``interval_s`` and keeps ``span_s`` of them."""

    def __init__(self, *, interval_s: float = INTERVAL_S, span_s: float = SPAN_S, read=read_totals) -> None:
        self.interval_s = interval_s
        self.span_s = span_s
        self._read = read
        self._samples: deque[Totals] = deque(maxlen=int(span_s / interval_s) + 1)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure_sampling(self) -> None:
        """Start the sampling thread once per process (after gunicorn's fork, never before)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._samples.append(self._read())
                self._thread = threading.Thread(target=self._run, name="ops-window", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.sample()

    def sample(self) -> None:
        totals = self._read()
        with self._lock:
            self._samples.append(totals)

    def report(self) -> dict:
        """The whole window and its points (the last one runs up to now)."""
        now = self._read()
        with self._lock:
            samples = list(self._samples)
        if not samples:
            samples = [now]
        points = [summarise(a, b) for a, b in zip(samples, samples[1:])]
        if now.at > samples[-1].at:
            points.append(summarise(samples[-1], now))
        return {"window": summarise(samples[0], now), "points": points}

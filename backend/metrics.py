"""Prometheus series of the service, and their exposition at ``GET /metrics``.

The series live at module level, so every process (gunicorn worker, Dramatiq worker process, the
embedded server) records into its own copy. With ``PROMETHEUS_MULTIPROC_DIR`` set *before* this
module is first imported, prometheus-client writes each process's values to files in that
directory and ``/metrics`` sums them over every process (gunicorn_conf.py and backend/worker.py set
it up); without it, the values of the one process are served (the embedded mode, tests).

Labels are few and bounded: a route template, never a path; an agent name, never a job id or owner.
docs/operations.md describes each series.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest, multiprocess

# Seconds; polls are served in milliseconds, long polls park for up to 30 s.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds; jobs wait and run for seconds to minutes.
JOB_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Seconds; statements take under a millisecond to (when something is wrong) seconds.
QUERY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# ---- HTTP (web processes) --------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status_class"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request, parked long-poll waits included.",
    ["route", "method"], buckets=LATENCY_BUCKETS_S,
)
POLLS = Counter(
    "job_polls_total", "Status polls (single and batch) by outcome: 200, 304, 4xx, 429 or 5xx.", ["outcome"],
)
POLL_DURATION = Histogram(
    "job_poll_duration_seconds",
    "Server time of a status poll, without the time a long poll spent parked waiting for a change.",
    buckets=LATENCY_BUCKETS_S,
)
LONG_POLLS_PARKED = Gauge(
    "job_long_polls_parked", "Long polls parked right now, waiting for a change.", multiprocess_mode="livesum",
)
LONG_POLL_WAIT = Histogram(
    "job_long_poll_wait_seconds", "How long a parked long poll waited before a change or its timeout.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)

# ---- jobs (web and worker processes) ---------------------------------------------------------------

JOBS_SUBMITTED = Counter("jobs_submitted_total", "Jobs accepted (replays of a request_id excluded).", ["agent"])
JOBS_FINISHED = Counter(
    "jobs_finished_total", "Jobs that reached a terminal status, by agent and status.", ["agent", "status"],
)
JOB_QUEUE_TIME = Histogram(
    "job_queue_seconds", "From entering the queue to the start of an attempt.", ["agent"], buckets=JOB_BUCKETS_S,
)
JOB_RUN_TIME = Histogram(
    "job_run_seconds", "From the start of the last attempt to the terminal status.", ["agent"], buckets=JOB_BUCKETS_S,
)
JOB_ATTEMPTS = Counter("job_attempts_total", "Attempts started (first runs and retries).", ["agent"])
JOB_RETRIES = Counter("job_retries_total", "Attempts that failed transiently and were scheduled again.", ["agent"])
SWEEP_ACTIONS = Counter(
    "job_sweep_actions_total",
    "What the sweep did: requeued, failed_worker_lost, resent, cancelled, purged.", ["action"],
)
RECOVERY_TIME = Histogram(
    "job_recovery_seconds",
    "From the last heartbeat of a lost worker to the job running again on another one.",
    buckets=(1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0),
)

# ---- state, read by a cached query when /metrics is scraped ----------------------------------------

JOBS_BY_STATUS = Gauge(
    "jobs", "Jobs waiting or running now, by status.", ["status"], multiprocess_mode="mostrecent",
)
OLDEST_QUEUED_AGE = Gauge(
    "job_oldest_queued_age_seconds", "Age of the oldest job ready to run and not yet claimed (0 if none).",
    multiprocess_mode="mostrecent",
)
WORKERS_ALIVE = Gauge(
    "workers_alive", "Worker processes whose heartbeat is fresh.", multiprocess_mode="mostrecent",
)

HEALTH_CHECK_UP = Gauge(
    "health_check_up", "1 if the readiness check passed at the latest check (run on every scrape), else 0.",
    ["check"], multiprocess_mode="mostrecent",
)
HEALTH_CHECK_LATENCY = Gauge(
    "health_check_latency_seconds", "How long the latest readiness check took.", ["check"],
    multiprocess_mode="mostrecent",
)

# ---- dependencies ----------------------------------------------------------------------------------

DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds", "Time of one SQL statement, by its first keyword.", ["operation"],
    buckets=QUERY_BUCKETS_S,
)
DB_SLOW_QUERIES = Counter(
    "db_slow_queries_total", "Statements slower than SLOW_QUERY_S, by their first keyword.", ["operation"],
)
REDIS_ERRORS = Counter("redis_errors_total", "Calls to Redis that failed, by component.", ["component"])
REDIS_OUTAGE_SKIPS = Counter(
    "redis_outage_skips_total", "Calls to Redis skipped because it failed moments ago, by component.",
    ["component"],
)


def multiprocess_dir() -> str | None:
    """The directory shared by this host's processes, when prometheus-client runs in that mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The text exposition of every process of this host (or of this process alone)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def samples() -> dict[str, list]:
    """Current samples by metric family name, summed over processes like the exposition."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return {family.name: family.samples for family in registry.collect()}

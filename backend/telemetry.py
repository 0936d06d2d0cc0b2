"""Per-request telemetry: the request id, and the HTTP and poll series.

It sits on every request, polls included, so it does only in-memory work: one id check or
generation, two context variables, and a few counter and histogram updates (no database or Redis
round trip; bench figures in docs/operations.md).
"""
from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager
from typing import Iterator

from flask import Flask, g, request

from . import metrics
from .logs import job_id_var, request_id_var

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain, so it is safe in logs and headers.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
POLL_ENDPOINTS = frozenset({"jobs.JobStatusView", "jobs.JobStatuses"})


def request_id(presented: str | None) -> str:
    """The caller's X-Request-ID if it is short and plain, else a new one."""
    if presented and _SANE_REQUEST_ID.fullmatch(presented):
        return presented
    return os.urandom(16).hex()  # as random as uuid4().hex, at a fraction of its cost


# Label lookups cost more than the increments themselves (multiprocess mode most of all), so each
# series child is looked up once per process. Keys are bounded: route templates x methods x classes.
_HTTP_SERIES: dict[tuple[str, str, str], tuple] = {}
_POLL_SERIES: dict[str, object] = {}


_ROUTE_LABELS: dict[str, str] = {}
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def _route_label(rule: str) -> str:
    """The rule without its converters: ``/api/ai/jobs/<job_id:job_id>`` -> ``/api/ai/jobs/<job_id>``."""
    label = _ROUTE_LABELS.get(rule)
    if label is None:
        label = _ROUTE_LABELS[rule] = _CONVERTER.sub(r"<\1>", rule)
    return label


def _http_series(route: str, method: str, status_class: str) -> tuple:
    key = (route, method, status_class)
    found = _HTTP_SERIES.get(key)
    if found is None:
        found = _HTTP_SERIES[key] = (
            metrics.HTTP_REQUESTS.labels(route, method, status_class),
            metrics.HTTP_DURATION.labels(route, method),
        )
    return found


def _poll_series(outcome: str):
    found = _POLL_SERIES.get(outcome)
    if found is None:
        found = _POLL_SERIES[outcome] = metrics.POLLS.labels(outcome)
    return found


def _begin() -> None:
    g.started_s = time.perf_counter()
    g.parked_s = 0.0
    g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
    view_args = request.view_args
    g.log_context = (
        request_id_var.set(g.request_id),
        job_id_var.set(view_args.get("job_id") if view_args else None),
    )


def _poll_outcome(status: int) -> str:
    if status in (200, 304, 429):
        return str(status)
    if status >= 500:
        return "5xx"
    return "4xx" if status >= 400 else str(status)


def _record(response):
    started_s = g.get("started_s")
    if started_s is None:  # a response built before this request's first hook ran
        return response
    rule = request.url_rule
    route = _route_label(rule.rule) if rule is not None else "unmatched"
    count_answer(route, request.method, response.status_code, time.perf_counter() - started_s,
                 poll=request.endpoint in POLL_ENDPOINTS, parked_s=g.parked_s)
    response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def count_answer(route: str, method: str, status: int, elapsed_s: float, *, poll: bool, parked_s: float = 0.0) -> None:
    """Count one answer in the HTTP series (and the poll series for a poll); ``route`` is the
    rule's label, e.g. ``/api/ai/jobs/<job_id>/status``."""
    requests, duration = _http_series(route, method, f"{status // 100}xx")
    requests.inc()
    duration.observe(elapsed_s)
    if poll:
        _poll_series(_poll_outcome(status)).inc()
        metrics.POLL_DURATION.observe(max(0.0, elapsed_s - parked_s))


def _end(exc=None) -> None:
    tokens = g.pop("log_context", None)
    if tokens is not None:  # server threads are reused: the next request starts clean
        request_id_var.reset(tokens[0])
        job_id_var.reset(tokens[1])


@contextmanager
def parked() -> Iterator[None]:
    """Around a long poll's wait: count it while parked, and keep the wait out of the poll's time."""
    metrics.LONG_POLLS_PARKED.inc()
    started_s = time.perf_counter()
    try:
        yield
    finally:
        waited_s = time.perf_counter() - started_s
        metrics.LONG_POLLS_PARKED.dec()
        metrics.LONG_POLL_WAIT.observe(waited_s)
        g.parked_s = g.get("parked_s", 0.0) + waited_s


def job_submitted(job) -> None:
    """A new job was accepted: count it, and log the line that starts its trail (ids only)."""
    metrics.JOBS_SUBMITTED.labels(job.agent).inc()
    job_id_var.set(job.id)  # reset at teardown; later lines of this request are about this job too
    log.info("job accepted", extra={"agent": job.agent})


def init_app(app: Flask) -> None:
    """Register the hooks; call before any other ``before_request`` so that every answer is counted."""
    app.before_request(_begin)
    app.after_request(_record)
    app.teardown_request(_end)

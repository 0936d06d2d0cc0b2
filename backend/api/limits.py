"""Rate limits per API key (flask-limiter), with IETF RateLimit / RateLimit-Policy headers.

Three budgets, each counted per key and per endpoint: polls (status and batch) are generous,
submits are tight, everything else sits between. A 304 answer costs nothing: unchanged conditional
polls are not counted, so a page that polls politely never runs out.
"""
from __future__ import annotations

import hashlib
import math
import time

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

POLL_ENDPOINTS = {"jobs.JobStatusView", "jobs.JobStatuses"}


def _caller() -> str:
    """The key a request is counted under: a hash of its API key (never the key), else its address."""
    header = request.headers.get("Authorization", "")
    if header:
        return "key:" + hashlib.sha256(header.encode()).hexdigest()[:32]
    return "addr:" + (request.remote_addr or "unknown")


def _policy_name() -> str:
    if request.endpoint in POLL_ENDPOINTS:
        return "poll"
    if request.endpoint == "jobs.Jobs" and request.method == "POST":
        return "submit"
    return "default"


def init_limits(app: Flask) -> Limiter:
    config = app.extensions["config"]
    budgets = {"poll": config.rate_limit_poll, "submit": config.rate_limit_submit, "default": config.rate_limit_default}
    storage_uri = config.redis_url or "memory://"
    limiter = Limiter(
        key_func=_caller,
        app=app,
        default_limits=[lambda: budgets[_policy_name()]],
        default_limits_per_method=True,
        # Only the job API is limited: health checks, docs and the demo page are not.
        default_limits_exempt_when=lambda: not request.path.startswith("/api/ai/") or request.method == "OPTIONS",
        default_limits_deduct_when=lambda response: response.status_code != 304,
        storage_uri=storage_uri,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1} if config.redis_url else {},
        strategy="fixed-window",
        headers_enabled=False,
        # Redis down must not take the API down with it: count in memory until it returns.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        key_prefix="ai-jobs",
    )

    @app.after_request
    def _ratelimit_headers(response):
        current = limiter.current_limit
        if current is None:
            return response
        item = current.limit
        window_s = item.get_expiry()
        remaining = current.remaining
        if not current.breached and response.status_code != 304:
            # The hit is deducted after this response is built (304s are never deducted).
            remaining -= 1
        reset_s = min(window_s, max(0, math.ceil(current.reset_at - time.time())))
        if current.remaining >= item.amount:
            reset_s = window_s  # no window is open yet: this hit opens a fresh one
        name = _policy_name()
        response.headers["RateLimit-Policy"] = f'"{name}";q={item.amount};w={window_s}'
        response.headers["RateLimit"] = f'"{name}";r={max(0, remaining)};t={reset_s}'
        if response.status_code == 429:
            response.headers["Retry-After"] = str(max(1, reset_s))
        return response

    return limiter


def rate_limited_detail(error: RateLimitExceeded) -> str:
    return f"Too many requests for this API key: the limit is {error.limit.limit}. Slow down and retry later."

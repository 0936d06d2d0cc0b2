"""The one configuration object, read from the environment and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _number(env: Mapping[str, str], name: str, default, *, cast, minimum):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    return _number(env, name, default, cast=int, minimum=minimum)


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    return _number(env, name, default, cast=float, minimum=minimum)


def _list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = env.get(name, default)
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _pairs(env: Mapping[str, str], name: str) -> tuple[tuple[str, float], ...]:
    """Parse 'echo=5,canvas=30' into (("echo", 5.0), ("canvas", 30.0))."""
    pairs = []
    for item in _list(env, name, ""):
        key, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not sep or not key.strip() or value <= 0:
            raise ConfigError(f"{name} must look like 'echo=5,canvas=30', got {item!r}")
        pairs.append((key.strip(), value))
    return tuple(pairs)


@dataclass(frozen=True)
class Config:
    """Every setting of the service. ``from_env`` documents the variable behind each field."""

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'instance' / 'jobs.sqlite3'}"
    # None selects the embedded broker: Dramatiq's in-memory broker with an in-process worker.
    redis_url: str | None = None
    enabled_agents: tuple[str, ...] = ("canvas", "echo")
    max_body_bytes: int = 64 * 1024
    # A key accepted without a database row, for `make run` only; never set it in production.
    dev_api_key: str | None = None
    dev_owner: str = "dev"
    canvas_stage_delay_ms: int = 0
    # Attempts per job, counting the first; transient agent errors are retried until this is reached.
    max_attempts: int = 3
    retry_backoff_base_ms: int = 1000
    retry_backoff_max_ms: int = 60_000
    # Dramatiq-level retries for infrastructure failures (the database unreachable mid-job).
    broker_max_retries: int = 5
    embedded_worker_threads: int = 2
    # Worker vitals: a running job's heartbeat is refreshed every interval; past the timeout the
    # sweep treats its worker as dead. The sweep runs every reaper_interval_s, one process at a time.
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 10.0
    reaper_interval_s: float = 1.0
    # A queued job not claimed this long after its message was sent is sent again (lost message).
    queued_requeue_after_s: float = 30.0
    # Per-agent overrides of the time limit of one attempt, e.g. {"echo": 5.0}.
    agent_time_limits_s: tuple[tuple[str, float], ...] = ()
    # Rate limits per API key and endpoint, in flask-limiter's notation ("600/minute").
    rate_limit_poll: str = "1200/minute"
    rate_limit_submit: str = "60/minute"
    rate_limit_default: str = "300/minute"
    # Lets echo jobs SIGKILL their own worker (fault-injection tests only; never in production).
    echo_allow_crash: bool = False
    # Origins whose pages may call the API from a browser; none unless configured.
    cors_allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError("HEARTBEAT_TIMEOUT_S must be longer than HEARTBEAT_INTERVAL_S")
        from limits import parse_many

        for name, value in (
            ("RATE_LIMIT_POLL", self.rate_limit_poll),
            ("RATE_LIMIT_SUBMIT", self.rate_limit_submit),
            ("RATE_LIMIT_DEFAULT", self.rate_limit_default),
        ):
            try:
                parse_many(value)
            except ValueError:
                raise ConfigError(f"{name} must look like '600/minute', got {value!r}") from None

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: the broker and worker live inside the web process."""
        return self.redis_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        """Read the configuration; the README lists every variable."""
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            redis_url=env.get("REDIS_URL") or None,
            enabled_agents=_list(env, "ENABLED_AGENTS", ",".join(defaults.enabled_agents)),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
            dev_api_key=env.get("DEV_API_KEY") or None,
            dev_owner=env.get("DEV_OWNER") or defaults.dev_owner,
            canvas_stage_delay_ms=_int(env, "CANVAS_STAGE_DELAY_MS", defaults.canvas_stage_delay_ms),
            max_attempts=_int(env, "JOB_MAX_ATTEMPTS", defaults.max_attempts, minimum=1),
            retry_backoff_base_ms=_int(env, "JOB_RETRY_BACKOFF_BASE_MS", defaults.retry_backoff_base_ms),
            retry_backoff_max_ms=_int(env, "JOB_RETRY_BACKOFF_MAX_MS", defaults.retry_backoff_max_ms),
            broker_max_retries=_int(env, "BROKER_MAX_RETRIES", defaults.broker_max_retries),
            embedded_worker_threads=_int(
                env, "EMBEDDED_WORKER_THREADS", defaults.embedded_worker_threads, minimum=1
            ),
            cors_allowed_origins=_list(env, "CORS_ALLOWED_ORIGINS", ""),
            heartbeat_interval_s=_float(env, "HEARTBEAT_INTERVAL_S", defaults.heartbeat_interval_s, minimum=0.1),
            heartbeat_timeout_s=_float(env, "HEARTBEAT_TIMEOUT_S", defaults.heartbeat_timeout_s, minimum=0.5),
            reaper_interval_s=_float(env, "REAPER_INTERVAL_S", defaults.reaper_interval_s, minimum=0.1),
            queued_requeue_after_s=_float(
                env, "QUEUED_REQUEUE_AFTER_S", defaults.queued_requeue_after_s, minimum=1.0
            ),
            agent_time_limits_s=_pairs(env, "AGENT_TIME_LIMITS_S"),
            rate_limit_poll=env.get("RATE_LIMIT_POLL") or defaults.rate_limit_poll,
            rate_limit_submit=env.get("RATE_LIMIT_SUBMIT") or defaults.rate_limit_submit,
            rate_limit_default=env.get("RATE_LIMIT_DEFAULT") or defaults.rate_limit_default,
            echo_allow_crash=env.get("ECHO_ALLOW_CRASH", "") in ("1", "true", "yes"),
        )

    def with_overrides(self, **changes) -> "Config":
        """A copy with some fields changed (tests and the CLI use this)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown config fields: {sorted(unknown)}")
        return replace(self, **changes)

"""The one configuration object, read from the environment and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where an installed wheel keeps migrations/ and client/ (setup.cfg maps them into the package).
PACKAGED_DATA_ROOT = Path(__file__).resolve().parent / "_data"


def data_dir(name: str) -> Path:
    """The shipped directory ``name`` (``migrations`` or ``client``): inside the installed package,
    or at the top of the source tree when running from a checkout."""
    packaged = PACKAGED_DATA_ROOT / name
    return packaged if packaged.is_dir() else PROJECT_ROOT / name


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


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = (env.get(name) or default).strip()
    for option in allowed:
        if raw.lower() == option.lower():
            return option
    raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")


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


def _broker_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("BROKER_URL") or None
    if raw is not None and not raw.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
        raise ConfigError(f"BROKER_URL must start with amqp://, amqps://, redis:// or rediss://, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Config:
    """Every setting of the service. ``from_env`` documents the variable behind each field."""

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'instance' / 'jobs.sqlite3'}"
    # None selects the embedded broker: Dramatiq's in-memory broker with an in-process worker.
    redis_url: str | None = None
    # amqp://... selects RabbitMQ, redis://... the Redis broker; None means the Redis of redis_url.
    # Redis stays the store for wake-ups, rate limits and message tracking either way.
    broker_url: str | None = None
    # SIGTERM to a worker: running jobs get this long to finish, then are handed back to the queue.
    worker_shutdown_grace_s: float = 25.0
    enabled_agents: tuple[str, ...] = ("canvas", "echo")
    max_body_bytes: int = 64 * 1024
    # A key accepted without a database row, for `make run` only; never set it in production.
    dev_api_key: str | None = None
    # Where `flask serve` keeps the key it makes when DEV_API_KEY is unset, so restarts reuse it.
    dev_api_key_file: Path = PROJECT_ROOT / "instance" / "dev-api-key"
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
    # Rate limits per API key and endpoint, in the `limits` notation ("600/minute", "10/second;600/minute").
    rate_limit_poll: str = "1200/minute"
    rate_limit_submit: str = "60/minute"
    rate_limit_default: str = "300/minute"
    # Status polls answered 304 Not Modified: cheap, so a larger budget of their own (per key).
    rate_limit_poll_304: str = "6000/minute"
    # 401 answers per client address: past it, the address gets 429 without any key lookup.
    rate_limit_auth_failures: str = "60/minute"
    # Long polls one key may hold parked at once, across all web processes: each parks a thread.
    long_polls_per_key: int = 8
    # How long a web process trusts a key it accepted without reading it again (0: never). A
    # revocation clears it at once everywhere; this bounds an entry if that message were lost.
    key_cache_ttl_s: float = 5.0
    # How long a job's status snapshot (backend/jobs/snapshots.py) lives in Redis after its last
    # change; a poll past it reads the database once and stores it again. It also bounds how long a
    # snapshot could outlive a change whose write was lost with a process that died in an outage.
    snapshot_ttl_s: int = 300
    # SQLAlchemy pool per process (web or worker): at most pool + overflow connections each.
    # docs/runbook.md sizes them against PostgreSQL's max_connections. All 10 in the pool, none as
    # overflow: an overflow connection is closed when given back, so a load above the pool size
    # opened a new connection every few jobs (bench/run.py --jobs: 369 sessions for 1,159 jobs at
    # 5 + 5, 34 at 10 + 0; opened only when needed either way).
    db_pool_size: int = 10
    db_max_overflow: int = 0
    # Operations (docs/operations.md). Log lines as "json" (the image's default) or "text".
    log_format: str = "text"
    log_level: str = "INFO"
    # Statements slower than this are logged with their text and counted (db_slow_queries_total).
    slow_query_s: float = 1.0
    # Finished jobs (and their history) older than this are deleted by the sweep, in batches.
    job_retention_days: float = 30.0
    retention_batch_size: int = 500
    # Dramatiq worker hosts serve their processes' metrics with Dramatiq's Prometheus middleware
    # (port and directory: Dramatiq's own dramatiq_prom_port / dramatiq_prom_db variables).
    worker_metrics: bool = False
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
            ("RATE_LIMIT_POLL_304", self.rate_limit_poll_304),
            ("RATE_LIMIT_AUTH_FAILURES", self.rate_limit_auth_failures),
        ):
            try:
                parse_many(value)
            except ValueError:
                raise ConfigError(f"{name} must look like '600/minute', got {value!r}") from None

    @property
    def broker_kind(self) -> str:
        """Which broker: "rabbitmq", "redis", or "embedded" (no Redis: Dramatiq's in-memory broker)."""
        if self.embedded:
            return "embedded"
        url = self.broker_url or self.redis_url
        return "rabbitmq" if url.startswith(("amqp://", "amqps://")) else "redis"

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
            broker_url=_broker_url(env),
            worker_shutdown_grace_s=_float(
                env, "WORKER_SHUTDOWN_GRACE_S", defaults.worker_shutdown_grace_s, minimum=0.0
            ),
            enabled_agents=_list(env, "ENABLED_AGENTS", ",".join(defaults.enabled_agents)),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
            dev_api_key=env.get("DEV_API_KEY") or None,
            dev_api_key_file=Path(env.get("DEV_API_KEY_FILE") or defaults.dev_api_key_file),
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
            rate_limit_poll_304=env.get("RATE_LIMIT_POLL_304") or defaults.rate_limit_poll_304,
            rate_limit_auth_failures=env.get("RATE_LIMIT_AUTH_FAILURES") or defaults.rate_limit_auth_failures,
            long_polls_per_key=_int(env, "LONG_POLLS_PER_KEY", defaults.long_polls_per_key, minimum=1),
            key_cache_ttl_s=_float(env, "KEY_CACHE_TTL_S", defaults.key_cache_ttl_s),
            snapshot_ttl_s=_int(env, "SNAPSHOT_TTL_S", defaults.snapshot_ttl_s, minimum=1),
            db_pool_size=_int(env, "DB_POOL_SIZE", defaults.db_pool_size, minimum=1),
            db_max_overflow=_int(env, "DB_MAX_OVERFLOW", defaults.db_max_overflow),
            log_format=_choice(env, "LOG_FORMAT", defaults.log_format, ("json", "text")),
            log_level=_choice(env, "LOG_LEVEL", defaults.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            slow_query_s=_float(env, "SLOW_QUERY_S", defaults.slow_query_s, minimum=0.001),
            job_retention_days=_float(env, "JOB_RETENTION_DAYS", defaults.job_retention_days, minimum=0.01),
            retention_batch_size=_int(env, "RETENTION_BATCH_SIZE", defaults.retention_batch_size, minimum=1),
            worker_metrics=env.get("WORKER_METRICS", "") in ("1", "true", "yes"),
            echo_allow_crash=env.get("ECHO_ALLOW_CRASH", "") in ("1", "true", "yes"),
        )

    def with_overrides(self, **changes) -> "Config":
        """A copy with some fields changed (tests and the CLI use this)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown config fields: {sorted(unknown)}")
        return replace(self, **changes)

"""Where a status poll spends its time: the app in-process, profiled with pyinstrument.

Production settings (PostgreSQL, the Redis-backed rate limiter, rate limits lifted) on a throwaway
database and the bench's Redis database (default db 5). The polled job is running, claimed here as a
worker would. Prints the time per request against ``/health/live``, the SQL statements and Redis round
trips per poll, self time by library, and pyinstrument's call tree for the 200 poll (also written to
``bench/results/profile-poll.txt``).

    .venv/bin/python bench/profile_poll.py [--polls 2000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import LIFTED_LIMITS, throwaway_database  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
LIBRARIES = (
    ("psycopg", "PostgreSQL driver (psycopg, waits included)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("flask_sqlalchemy", "SQLAlchemy"),
    ("redis", "Redis client (waits included)"),
    ("limits", "flask-limiter / limits"),
    ("flask_limiter", "flask-limiter / limits"),
    ("marshmallow", "marshmallow / webargs / flask-smorest"),
    ("webargs", "marshmallow / webargs / flask-smorest"),
    ("flask_smorest", "marshmallow / webargs / flask-smorest"),
    ("werkzeug", "Flask / Werkzeug (incl. the test client)"),
    ("flask", "Flask / Werkzeug (incl. the test client)"),
    ("flask_cors", "Flask / Werkzeug (incl. the test client)"),
    ("json", "json"),
)


class RoundTrips:
    """Counts what goes over the wire to PostgreSQL and Redis, wrapping the drivers' send methods.

    At the driver level, so the pool's pre-ping and the BEGIN/ROLLBACK around each request count too.
    """

    def __init__(self) -> None:
        import psycopg
        import redis.connection
        from psycopg._connection_base import BaseConnection

        self.redis = 0
        self.sql: Counter[str] = Counter()
        trips = self

        original_send = redis.connection.AbstractConnection.send_packed_command

        def counted_send(connection, command, check_health=True):
            trips.redis += 1
            return original_send(connection, command, check_health)

        original_execute = psycopg.Cursor.execute

        def counted_execute(cursor, query, *args, **kwargs):
            text = query if isinstance(query, str) else getattr(query, "as_string", lambda c: str(query))(cursor)
            trips.sql[" ".join(str(text).split())[:80]] += 1
            return original_execute(cursor, query, *args, **kwargs)

        original_command = BaseConnection._exec_command

        def counted_command(connection, command, *args, **kwargs):
            trips.sql[command.decode() if isinstance(command, bytes) else str(command)] += 1
            return original_command(connection, command, *args, **kwargs)

        redis.connection.AbstractConnection.send_packed_command = counted_send
        psycopg.Cursor.execute = counted_execute
        BaseConnection._exec_command = counted_command

    def reset(self) -> None:
        self.redis = 0
        self.sql.clear()


def _time_per_request_us(call, n: int) -> float:
    for _ in range(50):
        call()
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6


def _self_time_by_library(frame, totals: Counter) -> None:
    path = (frame.file_path or "").replace("\\", "/")
    label = "our code (backend/)" if "/backend/" in path else "standard library (sockets, threads, ...)"
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        label = next((name for prefix, name in LIBRARIES if package == prefix or package.startswith(prefix + "_")),
                     f"other library ({package})")
    elif "/json/" in path:
        label = "json"
    totals[label] += frame.total_self_time  # includes its synthetic "[self]" children
    for child in frame.children:
        if not child.is_synthetic:
            _self_time_by_library(child, totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    with throwaway_database("profile") as database_url:
        profile(database_url, args.polls, args.results_dir)


def profile(database_url: str, polls: int, results_dir: Path) -> None:
    from pyinstrument import Profiler

    from backend import create_app
    from backend.config import Config
    from backend.extensions import db
    from backend.keys import create_key

    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=REDIS_URL, **LIFTED_LIMITS)
    for name in ("BROKER_URL", "DEV_API_KEY"):
        env.pop(name, None)
    app = create_app(Config.from_env(env))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        key = create_key("profile").key
        service = app.extensions["job_service"]
        job, _ = service.submit("profile", "echo", {"steps": 1}, None)
        getattr(service, "attempts", service).claim(job.id)  # the service was split; older commits too
        job_id = job.id
        counter = RoundTrips()
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    url = f"/api/ai/jobs/{job_id}/status"
    tag = client.get(url, headers=auth).headers["ETag"]
    calls = {
        "/health/live": lambda: client.get("/health/live"),
        "status poll, 200": lambda: client.get(url, headers=auth),
        "status poll, 304": lambda: client.get(url, headers={**auth, "If-None-Match": tag}),
    }
    assert calls["status poll, 200"]().status_code == 200
    assert calls["status poll, 304"]().status_code == 304

    print(f"\nTime per request in-process (test client, {polls} requests each, after 50 to warm up):")
    base_us = None
    for label, call in calls.items():
        per_us = _time_per_request_us(call, polls)
        base_us = base_us or per_us
        counter.reset()
        call()
        print(f"  {label:18} {per_us:8.0f} us  ({per_us / base_us:5.1f}x /health/live)  "
              f"PostgreSQL round trips {sum(counter.sql.values())}, Redis round trips {counter.redis}")
        for statement, count in counter.sql.items():
            print(f"      {count} x {statement}")

    profiler = Profiler()  # 1 ms sampling: a finer interval costs more than it shows
    profiler.start()
    for _ in range(polls):
        calls["status poll, 200"]()
    profiler.stop()
    session = profiler.last_session
    totals: Counter[str] = Counter()
    _self_time_by_library(session.root_frame(), totals)
    whole = sum(totals.values())
    print(f"\nSelf time by library, status poll 200 ({polls} polls, pyinstrument):")
    for label, seconds in totals.most_common():
        print(f"  {label:45} {seconds / whole:6.1%}  {seconds / polls * 1e6:7.0f} us/poll")
    results_dir.mkdir(parents=True, exist_ok=True)
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    (results_dir / "profile-poll.txt").write_text(text)
    print(f"\nCall tree of the 200 poll (also in {results_dir / 'profile-poll.txt'}):\n{text}")
    with app.app_context():
        db.engine.dispose()


if __name__ == "__main__":
    main()

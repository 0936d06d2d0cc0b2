"""What the operations work costs a status poll: telemetry hooks and SQL timing on vs off.

    .venv/bin/python scripts/ops_overhead.py                                        # embedded-style values
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python scripts/ops_overhead.py  # gunicorn's mmap values

One app on a throwaway PostgreSQL database (in-process WSGI, no network), one running job polled
200 and 304. The hooks are removed and put back between blocks of polls, so drift in the machine's
speed hits both variants alike. Prints medians of wall time and of this process's CPU time per poll
(CPU is what the hooks add; wall time also carries the database and the machine's noise).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend import create_app, telemetry  # noqa: E402
from backend.config import Config  # noqa: E402
from backend.keys import create_key  # noqa: E402
from backend.slow_queries import watch  # noqa: E402

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
URL = os.environ.get("BENCH_PG_URL_TEMPLATE", "postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
ROUNDS = int(os.environ.get("ROUNDS", "400"))
BLOCK = 10


def main() -> None:
    name = f"aijobs_overhead_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        run(URL.format(name=name))
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_hooks(app, on: bool) -> None:
    hooks = (
        (app.before_request_funcs[None], telemetry._begin),
        (app.after_request_funcs[None], telemetry._record),
        (app.teardown_request_funcs[None], telemetry._end),
    )
    for registered, hook in hooks:
        if on and hook not in registered:
            registered.insert(0, hook)
        elif not on and hook in registered:
            registered.remove(hook)
    for name, listener in (("before_cursor_execute", watch._before), ("after_cursor_execute", watch._after)):
        if on and not event.contains(Engine, name, listener):
            event.listen(Engine, name, listener)
        elif not on and event.contains(Engine, name, listener):
            event.remove(Engine, name, listener)


def run(database_url: str) -> None:
    unlimited = "1000000/minute"
    app = create_app(Config(database_url=database_url, redis_url=None, rate_limit_poll=unlimited,
                            rate_limit_submit=unlimited, rate_limit_default=unlimited,
                            rate_limit_poll_304=unlimited))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        key = create_key("bench").key
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    job_id = client.post("/api/ai/jobs", json={"agent": "echo", "input": {}}, headers=auth).get_json()["id"]
    with app.app_context():
        app.extensions["job_service"].attempts.claim(job_id)
    tag = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]
    calls = {
        200: lambda: client.get(f"/api/ai/jobs/{job_id}/status", headers=auth),
        304: lambda: client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": tag}),
    }
    for call in calls.values():
        for _ in range(50):
            call()
    wall_us = {(status, on): [] for status in calls for on in (False, True)}
    cpu_us = {(status, on): [] for status in calls for on in (False, True)}
    for _ in range(ROUNDS):
        for on in (False, True):
            set_hooks(app, on)
            for status, call in calls.items():
                for _ in range(BLOCK):
                    cpu_started, wall_started = time.thread_time_ns(), time.perf_counter_ns()
                    response = call()
                    wall_us[(status, on)].append((time.perf_counter_ns() - wall_started) / 1000)
                    cpu_us[(status, on)].append((time.thread_time_ns() - cpu_started) / 1000)
                    assert response.status_code == status, response.status_code
    set_hooks(app, True)
    print(f"multiprocess values: {bool(os.environ.get('PROMETHEUS_MULTIPROC_DIR'))}; "
          f"{ROUNDS * BLOCK} polls per cell; load average {os.getloadavg()[0]:.1f}")
    for status in calls:
        for label, samples in (("wall", wall_us), ("CPU", cpu_us)):
            off, on = statistics.median(samples[(status, False)]), statistics.median(samples[(status, True)])
            print(f"poll {status} {label:4}: off {off:7.0f} us, on {on:7.0f} us ({on - off:+.0f} us, {(on / off - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()

"""`make bench`: what a poll costs the server, each figure against a plain 200 poll measured in the same run.

Runs the real app in-process (the WSGI stack, auth, the real PostgreSQL; no network, so the figures
are server cost, not latency) on a throwaway database. Prints a table; writes nothing else.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend import create_app  # noqa: E402
from backend.config import Config  # noqa: E402
from backend.keys import create_key  # noqa: E402

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
URL = os.environ.get("BENCH_PG_URL_TEMPLATE", "postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))
BATCH = 100


def measure(calls: dict[str, object], rounds: int = ROUNDS) -> list[dict]:
    """Time every call once per round, in turn, so drift in the machine's speed hits all alike."""
    for call in calls.values():
        for _ in range(20):  # warm the pool, caches and code paths
            call()
    samples_us: dict[str, list[float]] = {label: [] for label in calls}
    last = {}
    for _ in range(rounds):
        for label, call in calls.items():
            started = time.perf_counter_ns()
            last[label] = call()
            samples_us[label].append((time.perf_counter_ns() - started) / 1000)
    results = []
    for label, samples in samples_us.items():
        samples.sort()
        results.append({
            "label": label,
            "status": last[label].status_code,
            "median_us": statistics.median(samples),
            "p95_us": samples[int(len(samples) * 0.95) - 1],
            "bytes": len(last[label].data),
        })
    return results


def main() -> None:
    name = f"aijobs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        run(URL.format(name=name))
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(database_url: str) -> None:
    # Limits off the path being measured: the bench submits 100 jobs and polls thousands of times.
    unlimited = "1000000/minute"
    app = create_app(Config(database_url=database_url, redis_url=None, rate_limit_poll=unlimited,
                            rate_limit_submit=unlimited, rate_limit_default=unlimited))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        key = create_key("bench").key
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    ids = []
    for n in range(BATCH):
        response = client.post("/api/ai/jobs", json={"agent": "echo", "input": {"payload": n}}, headers=auth)
        ids.append(response.get_json()["id"])
    # Half of them finish, so the batch mixes queued and terminal jobs as a real page would.
    for job_id in ids[::2]:
        client.post(f"/api/ai/jobs/{job_id}/cancel", headers=auth)
    # The polled job is running (claimed as a worker would), the common case while a page waits.
    one, queued = ids[1], ids[3]
    with app.app_context():
        app.extensions["job_service"].claim(one)
    tag = client.get(f"/api/ai/jobs/{one}/status", headers=auth).headers["ETag"]
    versions = {row["id"]: row["version"] for row in client.post(
        "/api/ai/jobs/statuses", json={"ids": ids}, headers=auth).get_json()["jobs"]}

    results = measure({
        "status poll, 200 (baseline)": lambda: client.get(f"/api/ai/jobs/{one}/status", headers=auth),
        "status poll, 304 If-None-Match":
            lambda: client.get(f"/api/ai/jobs/{one}/status", headers={**auth, "If-None-Match": tag}),
        "status poll of a queued job, 200": lambda: client.get(f"/api/ai/jobs/{queued}/status", headers=auth),
        "job details, 200": lambda: client.get(f"/api/ai/jobs/{one}", headers=auth),
        f"batch of {BATCH}, all changed":
            lambda: client.post("/api/ai/jobs/statuses", json={"ids": ids}, headers=auth),
        f"batch of {BATCH}, all unchanged":
            lambda: client.post("/api/ai/jobs/statuses", json={"ids": ids, "versions": versions}, headers=auth),
    })
    base = results[0]["median_us"]
    print(f"\nPoll cost on the server (in-process WSGI + PostgreSQL), {ROUNDS} interleaved rounds:")
    print(f"{'request':34} {'status':>6} {'median':>10} {'p95':>10} {'bytes':>7} {'vs 200 poll':>12} {'per job':>12}")
    for row in results:
        jobs = BATCH if row["label"].startswith("batch") else 1
        per_job = row["median_us"] / jobs
        print(f"{row['label']:34} {row['status']:>6} {row['median_us']:>8.0f}us {row['p95_us']:>8.0f}us "
              f"{row['bytes']:>7} {row['median_us'] / base:>11.2f}x {per_job / base:>11.3f}x")
    print("\n'per job' divides a batch's cost by its 100 jobs: the price of keeping one job fresh.")


if __name__ == "__main__":
    main()

"""Where a submit and a worker's job spend their time: the app in-process, profiled with pyinstrument.

Production settings (PostgreSQL, the Redis broker and message tracker, rate limits lifted) on a
throwaway database and a Redis database (``BENCH_REDIS_URL``, default db 5, emptied first: run it
under ``flock /tmp/bench.lock`` when that is the bench's). Two paths, counted and profiled:

- a submit: ``POST /api/ai/jobs`` with an echo job of no steps, through the test client;
- a worker's handling of one such job, as Dramatiq's worker thread and consumer do it: the
  ``process_message`` hooks (app context), the actor (claim, run, succeed), the broker ack and the
  ``ack`` hooks (the message tracker). The fetch is left out: a real worker fetches in batches
  (prefetch), so its round trip is shared by many jobs.

Prints the time per submit and per job, the SQL statements and Redis round trips of each, self time
by library, and pyinstrument's call trees (also written to ``bench/results/profile-submit.txt`` and
``bench/results/profile-job.txt``).

    .venv/bin/python bench/profile_submit.py [--jobs 1000]
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

from bench.profile_poll import RoundTrips, _self_time_by_library  # noqa: E402
from bench.run import LIFTED_LIMITS, throwaway_database  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
SUBMIT_BODY = {"agent": "echo", "input": {"steps": 0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="submits (and then jobs) timed and profiled")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    with throwaway_database("profile") as database_url:
        profile(database_url, args.jobs, args.results_dir)


class WorkerThread:
    """One job message handled as Dramatiq's worker thread and consumer handle it (fetch apart)."""

    def __init__(self, broker, queue_name: str, prefetch: int) -> None:
        self.broker = broker
        self.consumer = broker.consume(queue_name, prefetch=prefetch, timeout=100)
        self._fetched = []

    def fetch(self, n: int) -> None:
        """Take ``n`` messages off the queue (not counted: a worker fetches in batches)."""
        while len(self._fetched) < n:
            message = next(self.consumer)
            if message is not None:
                self._fetched.append(message)

    def handle_one(self) -> None:
        message = self._fetched.pop(0)
        actor = self.broker.get_actor(message.actor_name)
        self.broker.emit_before("process_message", message)
        actor(*message.args, **message.kwargs)
        self.broker.emit_after("process_message", message, result=None)
        self.consumer.ack(message)
        self.broker.emit_after("ack", message)


def _per_call_us(call, n: int) -> tuple[float, float]:
    """Wall and CPU microseconds per call (CPU of this process: PostgreSQL's and Redis's are apart)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6, (time.process_time() - cpu_started) / n * 1e6


def _print_counts(label: str, counter: RoundTrips) -> None:
    print(f"  {label}: PostgreSQL statements {sum(counter.sql.values())}, Redis round trips {counter.redis}")
    for statement, count in counter.sql.items():
        print(f"      {count} x {statement}")


def _profiled(label: str, call, n: int, results_dir: Path, file_name: str) -> None:
    from pyinstrument import Profiler

    profiler = Profiler()  # 1 ms sampling: a finer interval costs more than it shows
    profiler.start()
    for _ in range(n):
        call()
    profiler.stop()
    totals: Counter[str] = Counter()
    _self_time_by_library(profiler.last_session.root_frame(), totals)
    whole = sum(totals.values())
    print(f"\nSelf time by library, {label} ({n}, pyinstrument):")
    for library, seconds in totals.most_common():
        print(f"  {library:45} {seconds / whole:6.1%}  {seconds / n * 1e6:7.0f} us each")
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    (results_dir / file_name).write_text(text)
    print(f"\nCall tree, {label} (also in {results_dir / file_name}):\n{text}")


def profile(database_url: str, jobs: int, results_dir: Path) -> None:
    import redis

    from backend import create_app
    from backend.config import Config
    from backend.extensions import db
    from backend.keys import create_key
    from backend.queue import QUEUE_NAME

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=REDIS_URL, **LIFTED_LIMITS)
    for name in ("BROKER_URL", "DEV_API_KEY"):
        env.pop(name, None)
    app = create_app(Config.from_env(env))
    results_dir.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        key = create_key("profile").key
        counter = RoundTrips()
    broker = app.extensions["job_queue"].broker
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}

    def submit() -> None:
        answer = client.post("/api/ai/jobs", json=SUBMIT_BODY, headers=auth)
        assert answer.status_code == 202, answer.get_data(as_text=True)

    # Warm up (imports, pools, caches, prepared statements), then one submit and one job counted.
    worker = WorkerThread(broker, QUEUE_NAME, prefetch=jobs * 3 + 100)
    for _ in range(20):
        submit()
    worker.fetch(20)
    for _ in range(20):
        worker.handle_one()
    print("\nOne of each, counted at the driver level (BEGIN, COMMIT and the pool's pre-ping included):")
    counter.reset()
    submit()
    _print_counts("submit", counter)
    worker.fetch(1)
    counter.reset()
    worker.handle_one()
    _print_counts("worker job (claim, run, succeed, ack)", counter)

    print(f"\nTime per call in-process ({jobs} each, one thread, nothing else running in this process):")
    submit_us, submit_cpu_us = _per_call_us(submit, jobs)
    worker.fetch(jobs)
    job_us, job_cpu_us = _per_call_us(worker.handle_one, jobs)
    print(f"  submit (test client)          {submit_us:8.0f} us wall, {submit_cpu_us:8.0f} us CPU")
    print(f"  worker job (fetch excluded)   {job_us:8.0f} us wall, {job_cpu_us:8.0f} us CPU")

    _profiled("submit", submit, jobs, results_dir, "profile-submit.txt")
    worker.fetch(jobs)
    _profiled("worker job", worker.handle_one, jobs, results_dir, "profile-job.txt")
    with app.app_context():
        db.engine.dispose()


if __name__ == "__main__":
    main()

"""The floor: what a submit and a job cost when the thinnest code does them with this project's stack.

Issue 8 asks for >= 1,000 submits/s over HTTP (16 connections) and end-to-end jobs/s >= 0.4x raw
Dramatiq no-op throughput, every job persisted. ``bench/floor_app.py`` does the same persisted work
(the row and its accepted event at submit; a claim and a success, each with its event, in the
worker; every write one autocommit statement) with none of the service around it. This measures it
as ``bench/run.py --jobs`` measures the service: the same gunicorn config, wrk at 16 connections,
``dramatiq -p 2 -t 8``, end to end from the database, CPU per job per process group, and raw
Dramatiq no-op in the same run, so the figures and ratios compare with the service's directly.

Two more servers run beside it: the grouped floor (``bench/floor_grouped.py``: the same writes,
grouped across a process's threads) and the unpersisted bound (a submit that stores nothing and
sends a no-op), which no persisted design can pass.

    flock /tmp/bench.lock .venv/bin/python bench/floor.py     # about 60 s once it holds the lock

Throwaway PostgreSQL database (created, migrated, dropped as bench/run.py does) and Redis db 8
(``FLOOR_REDIS_URL``), emptied first. Writes bench/results/floor.json.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redis as redis_lib
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter, group_pids  # noqa: E402
from bench.load import run_wrk  # noqa: E402
from bench.procs import DramatiqWorkers, Gunicorn  # noqa: E402
from bench.run import _migrate, print_log_tails, throwaway_database  # noqa: E402

REDIS_URL = os.environ.get("FLOOR_REDIS_URL", "redis://127.0.0.1:6379/8")
SUBMIT_CLIENTS = 16  # as bench/run.py
WORKER_PROCESSES, WORKER_THREADS = 2, 8  # as bench/run.py
NOOP_MESSAGES = 2000  # as bench/run.py --quick
BODY = json.dumps({"agent": "echo", "input": {"steps": 0}})  # the service bench's submit body
# (label, gunicorn app, wrk seconds, workers paused): the quick bench's 2 s, the full bench's 8 s, and
# Flask's cost, with the workers running the jobs meanwhile as in bench/run.py; then both servers
# with the workers paused (SIGSTOP), for what a submit alone allows when it has both cores. The
# paused phases' jobs run once the workers resume, so they have no end-to-end figure.
PHASES = (("flask_2s", "flask", 2, False), ("flask_8s", "flask", 8, False), ("bare_wsgi_2s", "bare", 2, False),
          ("flask_2s_alone", "flask", 2, True), ("bare_wsgi_2s_alone", "bare", 2, True),
          # The same bare submit and job with their writes grouped across threads (bench/floor_grouped.py).
          ("grouped_2s", "grouped", 2, False), ("grouped_8s", "grouped", 8, False))
# (label, wrk seconds): the bound, a bare submit that stores nothing and sends a no-op that the no-op
# workers run. No persisted design, however its writes are grouped, can pass these figures.
UNPERSISTED_PHASES = (("unpersisted_2s", 2), ("unpersisted_8s", 8))


class Floor:
    """One run's processes and database, and the figures measured with them."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.db = create_engine(database_url, isolation_level="AUTOCOMMIT")
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=REDIS_URL, PYTHONUNBUFFERED="1")
        env.pop("BROKER_URL", None)
        # Started together, as run.py --jobs starts its servers and both worker fleets: whatever is
        # idle during a phase (the other server, the no-op workers) costs the same in both benches.
        self.servers = {"flask": Gunicorn("floor-flask", "bench.floor_app:app", env, log_dir),
                        "bare": Gunicorn("floor-bare", "bench.floor_app:bare", env, log_dir),
                        "unpersisted": Gunicorn("floor-unpersisted", "bench.floor_app:unpersisted", env, log_dir),
                        "grouped": Gunicorn("floor-grouped", "bench.floor_grouped:bare", env, log_dir)}
        self.workers = DramatiqWorkers("floor-workers", "bench.floor_app", env, log_dir,
                                       processes=WORKER_PROCESSES, threads=WORKER_THREADS)
        # bench.floor_grouped imports bench.floor_app (its pool and broker), so it declares the floor's
        # actor too: its workers take only their own queue.
        self.grouped_workers = DramatiqWorkers("floor-grouped-workers", "bench.floor_grouped", env, log_dir,
                                               processes=WORKER_PROCESSES, threads=WORKER_THREADS,
                                               queues=("floor-grouped",))
        # Which workers run the jobs each server's submits send.
        self.workers_of = {"flask": self.workers, "bare": self.workers, "grouped": self.grouped_workers}
        self.noop_workers = DramatiqWorkers("noop", "bench.noop", env, log_dir,
                                            processes=WORKER_PROCESSES, threads=WORKER_THREADS)
        self.processes = [*self.servers.values(), self.workers, self.grouped_workers, self.noop_workers]

    def wait_ready(self) -> None:
        for server in self.servers.values():
            server.wait_ready("/ping")
        self.workers.wait_ready()
        self.grouped_workers.wait_ready()
        self.noop_workers.wait_ready()

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        self.db.dispose()

    def _scalar(self, sql: str, **params):
        with self.db.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    @staticmethod
    def _redis_server() -> list[int]:
        """The Redis server's pid: it carries every message, so its CPU is part of a job's cost (it is
        shared with other databases on this machine, so read it as an upper bound)."""
        return [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _read(p / "comm") == "redis-server"]

    def _backends(self) -> list[int]:
        with self.db.connect() as connection:
            return list(connection.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars())

    def submits_end_to_end(self, server_name: str, duration_s: int, workers_paused: bool) -> dict:
        """wrk posts for ``duration_s`` while the workers run the jobs (or sit paused); then end to end
        from the rows."""
        server, workers = self.servers[server_name], self.workers_of[server_name]
        meter = CpuMeter({"web": lambda: group_pids(server.popen.pid),
                          "workers": lambda: group_pids(workers.popen.pid),
                          "postgresql": self._backends, "redis": self._redis_server})
        since = datetime.now(timezone.utc)
        sessions_before = self._scalar("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        meter.start()
        if workers_paused:
            os.killpg(workers.popen.pid, signal.SIGSTOP)
        try:
            result = run_wrk(f"{server.base_url}/jobs", connections=SUBMIT_CLIENTS, duration_s=duration_s,
                             method="POST", body=BODY)
        finally:
            if workers_paused:
                os.killpg(workers.popen.pid, signal.SIGCONT)
        deadline = time.monotonic() + 120
        # Every earlier phase ended with all its jobs succeeded, so any job queued or running is this
        # phase's; the (status, id) index answers that without scanning the table every 50 ms.
        while self._scalar("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"):
            if time.monotonic() > deadline:
                raise RuntimeError("the floor's jobs did not finish within 120 s")
            time.sleep(0.05)
        used_s = meter.stop()
        time.sleep(0.6)  # PostgreSQL publishes its session counts at most every 0.5 s
        sessions = self._scalar("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        with self.db.connect() as connection:
            first, last, jobs = connection.execute(text(
                "SELECT min(created_at), max(finished_at), count(*) FROM jobs WHERE created_at >= :since"),
                {"since": since}).one()
            # Accepted, attempt started, succeeded: the history the service keeps, checked, not assumed.
            events = connection.execute(text(
                "SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.created_at >= :since"),
                {"since": since}).scalar()
        span_s = (last - first).total_seconds()
        return {
            "submits": dict(result.as_dict(), submits_per_s=round(result.rps, 1)),
            "workers_paused": workers_paused,
            "end_to_end": {"jobs": jobs, "span_s": round(span_s, 3),
                           "jobs_per_s": None if workers_paused else round(jobs / span_s, 1),
                           "cpu_ms_per_job": {name: round(s * 1000 / jobs, 2) for name, s in used_s.items()},
                           "events_per_job": round(events / jobs, 3),
                           "postgresql_sessions_opened": sessions - sessions_before},
        }

    def insert_groups(self) -> dict:
        """How many submits each grouped INSERT carried, over every grouped phase, per web process."""
        import urllib.request

        by_pid = {}
        for _ in range(20):  # each answer comes from one of the server's processes
            with urllib.request.urlopen(f"{self.servers['grouped'].base_url}/groups", timeout=5) as answer:
                counts = json.load(answer)
            by_pid[counts["pid"]] = counts
        groups, items = sum(c["groups"] for c in by_pid.values()), sum(c["items"] for c in by_pid.values())
        return {"processes_seen": len(by_pid), "groups": groups, "submits": items,
                "submits_per_group": round(items / groups, 2) if groups else None}

    def unpersisted(self, duration_s: int) -> dict:
        """wrk posts to the unpersisted submit while the no-op workers run its messages; end to end from
        the first request to the last message acknowledged (the queue's message hash empty)."""
        os.environ["REDIS_URL"] = REDIS_URL  # bench.noop builds its broker from it on import
        from bench import noop

        server = self.servers["unpersisted"]
        client = redis_lib.Redis.from_url(REDIS_URL)
        pending_key = f"{noop.NAMESPACE}:{noop.QUEUE_NAME}.msgs"
        meter = CpuMeter({"web": lambda: group_pids(server.popen.pid),
                          "workers": lambda: group_pids(self.noop_workers.popen.pid), "redis": self._redis_server})
        meter.start()
        started = time.monotonic()
        result = run_wrk(f"{server.base_url}/jobs", connections=SUBMIT_CLIENTS, duration_s=duration_s,
                         method="POST", body=BODY)
        deadline = time.monotonic() + 120
        while client.hlen(pending_key) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the unpersisted messages were not all run within 120 s")
            time.sleep(0.005)
        span_s = time.monotonic() - started
        used_s = meter.stop()
        jobs = result.statuses.get("202", 0)
        return {"submits": dict(result.as_dict(), submits_per_s=round(result.rps, 1)),
                "end_to_end": {"jobs": jobs, "span_s": round(span_s, 3), "jobs_per_s": round(jobs / span_s, 1),
                               "cpu_ms_per_job": {name: round(s * 1000 / jobs, 2) for name, s in used_s.items()}}}

    def raw_dramatiq(self) -> dict:
        """No-op messages from the first send to the last ack, as bench/run.py's raw_dramatiq."""
        os.environ["REDIS_URL"] = REDIS_URL  # bench.noop builds its broker from it on import
        from bench import noop

        client = redis_lib.Redis.from_url(REDIS_URL)
        pending_key = f"{noop.NAMESPACE}:{noop.QUEUE_NAME}.msgs"
        # The sender is this process: what it spends enqueueing stands where the web's CPU stands.
        meter = CpuMeter({"sender": lambda: [os.getpid()], "workers": lambda: group_pids(self.noop_workers.popen.pid),
                          "redis": self._redis_server})
        meter.start()
        started = time.monotonic()
        for n in range(NOOP_MESSAGES):
            noop.noop.send(n)
        while client.hlen(pending_key) > 0:
            time.sleep(0.005)
        span_s = time.monotonic() - started
        used_s = meter.stop()
        return {"messages": NOOP_MESSAGES, "span_s": round(span_s, 3), "jobs_per_s": round(NOOP_MESSAGES / span_s, 1),
                "cpu_ms_per_job": {name: round(s * 1000 / NOOP_MESSAGES, 2) for name, s in used_s.items()}}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:  # the process ended meanwhile
        return ""


def print_table(results: dict) -> None:
    raw = results["raw_dramatiq"]["jobs_per_s"]
    print(f"\n{'phase':18} {'submits/s':>10} {'p99 ms':>8} {'non-202':>8} {'e2e jobs/s':>11} {'/ no-op':>8}  "
          f"CPU ms per job: web, workers, postgresql, redis; events per job")
    for label, *_ in PHASES:
        s, e = results[label]["submits"], results[label]["end_to_end"]
        not_accepted = s["requests"] - s["statuses"].get("202", 0) + sum(s["errors"].values())
        cpu = e["cpu_ms_per_job"]
        e2e = "-" if e["jobs_per_s"] is None else f"{e['jobs_per_s']:,.1f}"
        ratio = "-" if e["jobs_per_s"] is None else f"{e['jobs_per_s'] / raw:.3f}x"
        print(f"{label:18} {s['submits_per_s']:>10,.1f} {s['p99_ms']:>8.1f} {not_accepted:>8} {e2e:>11} {ratio:>8}  "
              f"{cpu['web']}, {cpu['workers']}, {cpu['postgresql']}, {cpu['redis']}; {e['events_per_job']}")
    for label, _ in UNPERSISTED_PHASES:
        s, e = results[label]["submits"], results[label]["end_to_end"]
        not_accepted = s["requests"] - s["statuses"].get("202", 0) + sum(s["errors"].values())
        cpu = e["cpu_ms_per_job"]
        print(f"{label:18} {s['submits_per_s']:>10,.1f} {s['p99_ms']:>8.1f} {not_accepted:>8} "
              f"{e['jobs_per_s']:>11,.1f} {e['jobs_per_s'] / raw:>7.3f}x  {cpu['web']}, {cpu['workers']}, -, "
              f"{cpu['redis']}; nothing stored")
    print(f"raw Dramatiq no-op: {raw:,.1f} jobs/s ({NOOP_MESSAGES} messages); CPU ms per message "
          f"{results['raw_dramatiq']['cpu_ms_per_job']}\n"
          f"grouped inserts: {results['grouped_inserts']}\n"
          f"{results['wall_s']} s; load average before {results['loadavg_before']}, after {results['loadavg_after']}")


def main() -> int:
    started = time.monotonic()
    results: dict = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "cores": os.cpu_count(), "python": platform.python_version(),
                     "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    print(f"floor: load average {results['loadavg_before']}; Redis {REDIS_URL} is emptied", flush=True)
    redis_lib.Redis.from_url(REDIS_URL).flushdb()
    with throwaway_database("floor") as database_url:
        _migrate(database_url)
        with tempfile.TemporaryDirectory(prefix="ai-jobs-floor-") as log_dir:
            floor = Floor(database_url, Path(log_dir))
            try:
                floor.wait_ready()
                for label, server_name, duration_s, workers_paused in PHASES:
                    results[label] = floor.submits_end_to_end(server_name, duration_s, workers_paused)
                    s, e = results[label]["submits"], results[label]["end_to_end"]
                    print(f"  {label}: {s['submits_per_s']:,.0f} submits/s, p99 {s['p99_ms']:.1f} ms; "
                          f"end to end {e['jobs_per_s']} jobs/s; CPU ms per job {e['cpu_ms_per_job']}", flush=True)
                results["grouped_inserts"] = floor.insert_groups()
                print(f"  grouped inserts: {results['grouped_inserts']}", flush=True)
                for label, duration_s in UNPERSISTED_PHASES:
                    results[label] = floor.unpersisted(duration_s)
                    s, e = results[label]["submits"], results[label]["end_to_end"]
                    print(f"  {label}: {s['submits_per_s']:,.0f} submits/s, p99 {s['p99_ms']:.1f} ms; "
                          f"end to end {e['jobs_per_s']} jobs/s; CPU ms per job {e['cpu_ms_per_job']}", flush=True)
                results["raw_dramatiq"] = floor.raw_dramatiq()
                print(f"  raw Dramatiq no-op: {results['raw_dramatiq']['jobs_per_s']:,.0f} jobs/s", flush=True)
            except Exception:
                print_log_tails(floor.processes)
                raise
            finally:
                floor.close()
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = round(time.monotonic() - started, 1)
    print_table(results)
    out = ROOT / "bench" / "results" / "floor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

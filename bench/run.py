"""`make bench`: the service in its production process model on loopback, against its peers, one table.

Starts, on a throwaway PostgreSQL database and one Redis database (default db 5, emptied first):
the job API under ``backend/gunicorn_conf.py``; a plain Flask JSON endpoint under the same settings
(the ceiling); ``dramatiq backend.worker -p 2 -t 8``; raw Dramatiq no-op actors with the same
processes and threads (the job-throughput peer). Rate limits are lifted through RATE_LIMIT_* (and
LONG_POLLS_PER_KEY), so the limiter still runs but never refuses. Load comes from wrk (bench/ensure-wrk.sh installs
Debian's package); each figure is compared with its peer measured in the same run.

Phases, in order (docs/performance.md explains each figure):
  1. req/s and p99 at 8, 32, 128, 512 connections for the ceiling, a 200 poll and a 304 poll,
     interleaved per concurrency so drift in the machine's speed hits them alike;
  2. batch status of 100 ids; 3. submits at 16 connections and those jobs end to end;
  4. raw Dramatiq no-op throughput; 5. poll p99 while 500 jobs run vs idle;
  6. 1,000 parked long polls: ordinary poll p99 while they wait, and change-to-client latency.

The polled job is running, held by this process as a worker would hold it (claimed through the job
service and kept alive by heartbeats), so its version only moves when the bench moves it.

    python bench/run.py            # full: 8 s per measurement, about 4 minutes
    python bench/run.py --quick    # 2 s per measurement, under 2 minutes
    python bench/run.py --tiny     # the smallest configuration that runs every phase (the test)
    python bench/run.py --quick --jobs   # only submits, end to end and raw Dramatiq (job throughput)
    python bench/run.py --submits-alone  # only submits (8 s; 2 s with --quick), no worker: the web's cost per submit
    python bench/run.py --under-load     # only the poll p99 idle and with 500 jobs running (8 s each), and who used the cores
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import psycopg
import redis as redis_lib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import chart  # noqa: E402
from bench.cpu import CpuMeter, cpu_s, group_pids  # noqa: E402
from bench.load import WrkResult, run_wrk, send_many  # noqa: E402
from bench.procs import DramatiqWorkers, Gunicorn  # noqa: E402

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL_TEMPLATE = os.environ.get("BENCH_PG_URL_TEMPLATE", "postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
# High enough never to refuse, so the limiter's cost is measured but not its 429s. One bench
# client stands for many callers, so the cap on parked long polls per key is lifted as well.
UNLIMITED = "1000000000/minute"
LIFTED_LIMITS = {
    "RATE_LIMIT_POLL": UNLIMITED, "RATE_LIMIT_POLL_304": UNLIMITED, "RATE_LIMIT_SUBMIT": UNLIMITED,
    "RATE_LIMIT_DEFAULT": UNLIMITED, "LONG_POLLS_PER_KEY": "100000",
}
WORKER_PROCESSES, WORKER_THREADS = 2, 8
SUBMIT_CLIENTS = 16
GOAL_CONNECTIONS = 32
BATCH_IDS = 100
# Threads that move the parked polls' jobs, one progress write each, as worker threads would.
CHANGE_WRITERS = 4
# The second round of changes is sent at this steady rate (the first goes as fast as the writers
# can): latency at a load the machine sustains, next to latency under a burst that saturates it. At
# 400 a second the bench's own writers take about a core of the two (a progress write costs ~2.5 ms
# of CPU), so the machine is near saturation and the figure swings from 14 to 106 ms between runs;
# at 200 each parked client still gets a change every 5 s.
PACED_CHANGES_PER_S = 200
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Mode:
    name: str
    duration_s: int  # per wrk measurement (wrk counts whole seconds)
    concurrency: tuple[int, ...]
    noop_messages: int
    running_jobs: int
    parked_polls: int


MODES = {
    "full": Mode("full", 8, (8, 32, 128, 512), 5000, 500, 1000),
    "quick": Mode("quick", 2, (8, 32, 128, 512), 2000, 500, 1000),
    "tiny": Mode("tiny", 1, (GOAL_CONNECTIONS,), 200, 20, 40),
    # Phase 6 alone, to compare serving models in well under a minute per trial.
    "long-polls": Mode("long-polls", 4, (GOAL_CONNECTIONS,), 0, 0, 1000),
    # The poll p99 idle and under 500 running jobs alone, measured as the full bench measures it.
    "under-load": Mode("under-load", 8, (GOAL_CONNECTIONS,), 0, 500, 0),
    # The poll goals alone (the ceiling, 200 and 304 polls at 32 connections, and the batch).
    "polls": Mode("polls", 4, (GOAL_CONNECTIONS,), 0, 0, 0),
}
# How long the server may take to report every long poll parked before the ordinary polls start.
PARK_TIMEOUT_S = 20


class Bench:
    """One run: the processes, the in-process app that plays the polled job's worker, the figures."""

    def __init__(self, mode: Mode, database_url: str, redis_url: str, log_dir: Path) -> None:
        from backend import create_app
        from backend.config import Config

        self.mode = mode
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1",
                        **LIFTED_LIMITS)
        # The Redis broker on the bench's Redis, whatever the shell exports; no development key.
        for name in ("BROKER_URL", "DEV_API_KEY"):
            self.env.pop(name, None)
        self.app = create_app(Config.from_env(self.env))
        self.context = self.app.app_context()
        self.context.push()
        self.service = self.app.extensions["job_service"]
        # What a worker's writes go through: the service's ``attempts`` since the service was split
        # into one module per concept, the service itself before (so older commits can be measured).
        self.attempts = getattr(self.service, "attempts", self.service)
        self.processes: list = []
        self.held_claims: list = []
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self.results: dict = {}

    # ---- processes ------------------------------------------------------------------------------

    def start_processes(self, *, workers: bool = True) -> None:
        """Both servers, the service's workers and the no-op peer, started together (they boot in parallel).

        ``workers=False`` when only the long polls are measured: they need the servers alone."""
        self.ceiling = Gunicorn("ceiling", "bench.ceiling:app", self.env, self.log_dir)
        self.api = Gunicorn("api", "wsgi:app", self.env, self.log_dir)
        self.processes += [self.ceiling, self.api]
        if workers:
            self.workers = self.start_workers("worker", "backend.worker", threads=WORKER_THREADS, wait=False)
            self.noop_workers = self.start_workers("noop", "bench.noop", threads=WORKER_THREADS, wait=False)
        self.ceiling.wait_ready("/ping")
        self.api.wait_ready("/health/live")
        if workers:
            self.workers.wait_ready()
            self.noop_workers.wait_ready()

    def start_workers(self, name: str, module: str, *, threads: int, extra_env: dict | None = None,
                      wait: bool = True) -> DramatiqWorkers:
        workers = DramatiqWorkers(name, module, dict(self.env, **(extra_env or {})), self.log_dir,
                                  processes=WORKER_PROCESSES, threads=threads)
        self.processes.append(workers)
        if wait:
            workers.wait_ready()
        return workers

    def stop(self, process) -> None:
        process.stop()
        self.processes.remove(process)

    def close(self) -> None:
        self._stop.set()
        for process in list(self.processes):
            process.stop()
        from backend.extensions import db

        db.session.remove()
        db.engine.dispose()
        self.context.pop()

    # ---- the job this process holds as its worker --------------------------------------------------

    def _heartbeats(self) -> None:
        """Keep held claims alive, as a worker's vitals thread does, so no sweep reaps them."""
        interval_s = self.app.extensions["config"].heartbeat_interval_s
        while not self._stop.wait(interval_s):
            with self._held_lock:
                claims = list(self.held_claims)
            if claims:
                with self.app.app_context():
                    self.attempts.heartbeat(claims)

    def hold_running_job(self, owner: str, job_input: dict, *, beat: bool = True) -> tuple[str, object]:
        """Submit a job and claim it here, before any worker sees its message.

        ``beat=False`` when no worker (so no sweep) runs while it is held: heartbeats would only
        add load to the measurement.
        """
        job, _ = self.service.submit(owner, "echo", job_input, None)
        claim = self.attempts.claim(job.id)
        if claim is None:
            raise RuntimeError(f"could not claim {job.id}: a worker took it first")
        if beat:
            with self._held_lock:
                self.held_claims.append(claim)
        return job.id, claim

    def key(self, owner: str) -> str:
        from backend.keys import create_key

        return f"Bearer {create_key(owner).key}"

    # ---- phases -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.poll_auth = self.key("bench-poll")
        self.poll_job, _ = self.hold_running_job("bench-poll", {"steps": 1})
        threading.Thread(target=self._heartbeats, name="bench-heartbeats", daemon=True).start()
        self.start_processes(workers=self.mode.name != "long-polls")
        self.poll_url = f"{self.api.base_url}/api/ai/jobs/{self.poll_job}/status"
        first = run_wrk(self.poll_url, connections=1, duration_s=1, auth=self.poll_auth)
        if first.statuses.get("200", 0) == 0:
            raise RuntimeError(f"the status poll does not answer 200: {first.statuses} {first.errors}")
        # Warm both servers (imports, pools, caches) before anything is measured.
        run_wrk(f"{self.ceiling.base_url}/ping", connections=GOAL_CONNECTIONS, duration_s=1)
        run_wrk(self.poll_url, connections=GOAL_CONNECTIONS, duration_s=1, auth=self.poll_auth)

    def sweep(self) -> None:
        """req/s and p99 against concurrency; the kinds take turns at each level."""
        kinds = {
            "ceiling": lambda c: run_wrk(f"{self.ceiling.base_url}/ping", connections=c,
                                         duration_s=self.mode.duration_s),
            "poll_200": lambda c: run_wrk(self.poll_url, connections=c, duration_s=self.mode.duration_s,
                                          auth=self.poll_auth),
            "poll_304": lambda c: run_wrk(self.poll_url, connections=c, duration_s=self.mode.duration_s,
                                          auth=self.poll_auth, track_etag=True, etag=self._poll_etag()),
        }
        table: dict[str, dict[int, WrkResult]] = {kind: {} for kind in kinds}
        # The server's own CPU per answer: what an answer costs the server, apart from wrk and the
        # kernel's loopback, which share the cores and so move req/s too.
        cpu_us: dict[str, dict[int, float | None]] = {kind: {} for kind in kinds}
        for connections in self.mode.concurrency:
            for kind, measure in kinds.items():
                server = self.ceiling if kind == "ceiling" else self.api
                meter = CpuMeter({"server": lambda: group_pids(server.popen.pid)})
                meter.start()
                result = table[kind][connections] = measure(connections)
                used_s = meter.stop()["server"]
                cpu_us[kind][connections] = round(used_s * 1e6 / result.requests, 1) if result.requests else None
                _progress(f"{kind} c{connections}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                          f"server CPU {cpu_us[kind][connections]} us per answer")
        self.sweep_table = table
        self.results["sweep"] = {kind: {str(c): dict(r.as_dict(), server_cpu_us_per_answer=cpu_us[kind][c])
                                        for c, r in by_c.items()} for kind, by_c in table.items()}

    def _poll_etag(self) -> str:
        import urllib.request

        request = urllib.request.Request(self.poll_url, headers={"Authorization": self.poll_auth})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["ETag"]

    def batch(self) -> None:
        """POST /statuses with 100 ids: every job changed (full answers), then every job unchanged."""
        run = send_many(self.api.base_url, [("POST", "/api/ai/jobs", {"agent": "echo", "input": {"steps": 0}})]
                        * BATCH_IDS, headers={"Authorization": self.poll_auth}, clients=SUBMIT_CLIENTS)
        ids = [body["id"] for status, body in run.answers if status == 202]
        self._wait_terminal("bench-poll", exclude=[self.poll_job], timeout_s=60)
        from backend.models import Job
        from backend.extensions import db
        from sqlalchemy import select

        versions = dict(db.session.execute(select(Job.id, Job.version).where(Job.id.in_(ids))).all())
        db.session.rollback()
        url = f"{self.api.base_url}/api/ai/jobs/statuses"
        changed = run_wrk(url, connections=GOAL_CONNECTIONS, duration_s=self.mode.duration_s, method="POST",
                          body=json.dumps({"ids": ids}), auth=self.poll_auth)
        unchanged = run_wrk(url, connections=GOAL_CONNECTIONS, duration_s=self.mode.duration_s, method="POST",
                            body=json.dumps({"ids": ids, "versions": versions}), auth=self.poll_auth)
        self.results["batch"] = {
            "ids": len(ids),
            "all_changed": dict(changed.as_dict(), statuses_per_s=round(changed.rps * len(ids))),
            "all_unchanged": dict(unchanged.as_dict(), statuses_per_s=round(unchanged.rps * len(ids))),
        }
        _progress(f"batch of {len(ids)}: {changed.rps * len(ids):,.0f} statuses/s changed, "
                  f"{unchanged.rps * len(ids):,.0f} unchanged")

    def submits_end_to_end(self) -> None:
        """16 connections submit echo jobs (no steps) for the measurement time; the worker runs them."""
        auth = self.key("bench-submit")
        meter = CpuMeter({"web": lambda: group_pids(self.api.popen.pid),
                          "workers": lambda: group_pids(self.workers.popen.pid),
                          "postgresql": self._database_backends})
        sessions_before = self._database_sessions()
        meter.start()
        result = run_wrk(f"{self.api.base_url}/api/ai/jobs", connections=SUBMIT_CLIENTS,
                         duration_s=self.mode.duration_s, method="POST",
                         body=json.dumps({"agent": "echo", "input": {"steps": 0}}), auth=auth)
        accepted = result.statuses.get("202", 0)
        self._wait_terminal("bench-submit", timeout_s=max(60.0, accepted / 20))
        used_s = meter.stop()
        time.sleep(0.6)  # PostgreSQL publishes its session counts at most every 0.5 s
        sessions_opened = self._database_sessions() - sessions_before
        from sqlalchemy import func, select

        from backend.extensions import db
        from backend.models import Job

        first_created, last_finished, jobs, succeeded = db.session.execute(
            select(func.min(Job.created_at), func.max(Job.finished_at), func.count(),
                   func.count().filter(Job.status == "succeeded")).where(Job.owner == "bench-submit")
        ).one()
        db.session.rollback()
        span_s = (last_finished - first_created).total_seconds()
        self.results["submits"] = dict(result.as_dict(), accepted=accepted, submits_per_s=round(result.rps, 1))
        self.results["end_to_end"] = {
            "jobs": jobs, "succeeded": succeeded, "span_s": round(span_s, 3),
            "jobs_per_s": round(jobs / span_s, 1) if span_s > 0 else None,
            "worker": f"dramatiq backend.worker -p {WORKER_PROCESSES} -t {WORKER_THREADS}",
            # CPU per job from the first submit to the last job's end (the bench's own polling of the
            # database included): a figure that moves little with the machine's other load.
            "cpu_ms_per_job": {name: round(seconds * 1000 / jobs, 2) if jobs else None
                               for name, seconds in used_s.items()},
            # Connections opened meanwhile: a pool too small for its threads opens one per checkout.
            "postgresql_sessions_opened": sessions_opened,
        }
        _progress(f"submits: {result.rps:,.0f}/s at {SUBMIT_CLIENTS} connections; end to end "
                  f"{self.results['end_to_end']['jobs_per_s']} jobs/s ({jobs} jobs); CPU ms per job "
                  f"{self.results['end_to_end']['cpu_ms_per_job']}; {sessions_opened} PostgreSQL sessions opened")

    def submits_alone(self) -> None:
        """Submits at 16 connections with no worker running: the web's own CPU per submit, which the
        job phase mixes with the workers' share of the two cores. The jobs stay queued."""
        self.api = Gunicorn("api", "wsgi:app", self.env, self.log_dir)
        self.processes.append(self.api)
        self.api.wait_ready("/health/live")
        url, auth = f"{self.api.base_url}/api/ai/jobs", self.key("bench-submit")
        body = json.dumps({"agent": "echo", "input": {"steps": 0}})
        # Untimed: the processes' pools, caches and threads fill up first, as a running service's are.
        run_wrk(url, connections=SUBMIT_CLIENTS, duration_s=1, method="POST", body=body, auth=auth)
        meter = CpuMeter({"web": lambda: group_pids(self.api.popen.pid)})
        meter.start()
        result = run_wrk(url, connections=SUBMIT_CLIENTS, duration_s=self.mode.duration_s, method="POST",
                         body=body, auth=auth)
        used_s = meter.stop()
        accepted = result.statuses.get("202", 0)
        web_ms = round(used_s["web"] * 1000 / accepted, 2) if accepted else None
        self.results["submits_alone"] = dict(result.as_dict(), accepted=accepted,
                                             submits_per_s=round(result.rps, 1), web_cpu_ms_per_submit=web_ms)
        _progress(f"submits alone: {result.rps:,.0f}/s at {SUBMIT_CLIENTS} connections (p99 "
                  f"{result.p99_ms:.1f} ms, {accepted} accepted, statuses {result.statuses}); "
                  f"web CPU {web_ms} ms per submit")

    def _database_sessions(self) -> int:
        """Sessions ever opened on the bench's database (PostgreSQL 14 and later)."""
        from sqlalchemy import text

        from backend.extensions import db

        count = db.session.scalar(text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))
        db.session.rollback()
        return count or 0

    def _database_backends(self) -> list[int]:
        """The PostgreSQL server processes serving the bench's database now."""
        from sqlalchemy import text

        from backend.extensions import db

        pids = list(db.session.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")))
        db.session.rollback()
        return pids

    def raw_dramatiq(self) -> None:
        """The same processes and threads running no-op actors: Dramatiq's own speed on this Redis."""
        os.environ["REDIS_URL"] = self.redis_url  # bench.noop builds its broker from it on import
        from bench import noop

        client = redis_lib.Redis.from_url(self.redis_url)
        pending_key = f"{noop.NAMESPACE}:{noop.QUEUE_NAME}.msgs"
        started = time.monotonic()
        for n in range(self.mode.noop_messages):
            noop.noop.send(n)
        while client.hlen(pending_key) > 0:
            time.sleep(0.005)
        span_s = time.monotonic() - started
        self.stop(self.noop_workers)
        self.results["raw_dramatiq"] = {
            "messages": self.mode.noop_messages, "span_s": round(span_s, 3),
            "jobs_per_s": round(self.mode.noop_messages / span_s, 1),
            "worker": f"dramatiq bench.noop -p {WORKER_PROCESSES} -t {WORKER_THREADS}",
        }
        _progress(f"raw Dramatiq no-op: {self.mode.noop_messages / span_s:,.0f} jobs/s")

    def polls_under_load(self) -> None:
        """Poll p99 at 32 connections, idle, then while N echo jobs run and report progress."""
        n = self.mode.running_jobs
        self.stop(self.workers)  # the fleet below runs every job; no thread holds one back
        threads = math.ceil(n / WORKER_PROCESSES) + 4
        # Prefetch no more than the threads, or a process would hold queued jobs it cannot start.
        fleet = self.start_workers("fleet", "backend.worker", threads=threads,
                                   extra_env={"dramatiq_queue_prefetch": str(threads)})
        # Where the two cores go during each measurement: the load the running jobs add is the
        # fleet's and PostgreSQL's share, and the polls' p99 moves with it.
        meter = CpuMeter({"web": lambda: group_pids(self.api.popen.pid), "fleet": lambda: group_pids(fleet.popen.pid),
                          "postgresql": self._database_backends, "bench": lambda: [os.getpid()]})
        meter.start()
        idle = run_wrk(self.poll_url, connections=GOAL_CONNECTIONS, duration_s=self.mode.duration_s,
                       auth=self.poll_auth)
        idle_cpu_s = meter.stop()
        auth = self.key("bench-load")
        # Each job runs 40 s and writes progress every 4 s: N / 4 progress writes per second.
        job = {"agent": "echo", "input": {"steps": 10, "delay_ms": 4000}}
        run = send_many(self.api.base_url, [("POST", "/api/ai/jobs", job)] * n,
                        headers={"Authorization": auth}, clients=SUBMIT_CLIENTS)
        refused = [status for status, _ in run.answers if status != 202]
        if refused:
            raise RuntimeError(f"{len(refused)} of {n} submits were refused: {sorted(set(refused))}")
        running_before = self._wait_running("bench-load", n, timeout_s=30)
        meter.start()
        loaded = run_wrk(self.poll_url, connections=GOAL_CONNECTIONS, duration_s=self.mode.duration_s,
                         auth=self.poll_auth)
        loaded_cpu_s = meter.stop()
        running_after = self._count("bench-load", "running")
        # Killed, not drained: no worker runs after this phase, so nothing sweeps the jobs it leaves
        # running, and the next phase starts without waiting for 500 cancellations.
        fleet.kill()
        self.processes.remove(fleet)
        self.results["under_load"] = {
            "running_jobs": {"goal": n, "at_start": running_before, "at_end": running_after},
            "progress_writes_per_s": round(n / 4, 1),
            "worker": f"dramatiq backend.worker -p {WORKER_PROCESSES} -t {threads}",
            "idle": idle.as_dict(), "loaded": loaded.as_dict(),
            # Cores used on average by each process group while each measurement ran.
            "cores_used": {"idle": _cores(idle_cpu_s, idle.duration_s),
                           "loaded": _cores(loaded_cpu_s, loaded.duration_s)},
        }
        cores = self.results["under_load"]["cores_used"]
        _progress(f"poll idle {idle.rps:,.0f} req/s, p50/p90/p99 {idle.p50_ms:.1f}/{idle.p90_ms:.1f}/{idle.p99_ms:.1f} ms; "
                  f"with {running_before}..{running_after} jobs running {loaded.rps:,.0f} req/s, "
                  f"{loaded.p50_ms:.1f}/{loaded.p90_ms:.1f}/{loaded.p99_ms:.1f} ms; "
                  f"cores used idle {cores['idle']}, loaded {cores['loaded']}")

    def parked_long_polls(self) -> None:
        """N long polls parked at once: ordinary polls meanwhile, then the latency of each change,
        changed as fast as the writers go and then, parked again, at a steady rate."""
        n = self.mode.parked_polls
        auth = self.key("bench-parked")

        def hold(_) -> tuple:
            with self.app.app_context():
                job_id, claim = self.hold_running_job("bench-parked", {"steps": 1}, beat=False)
            return claim, self._tagged(job_id)

        with ThreadPoolExecutor(max_workers=8) as pool:  # round trips overlap; setup is not measured
            held = list(pool.map(hold, range(n)))
        claims = [claim for claim, _ in held]
        jobs = [job for _, job in held]
        wait_s = 30
        # Idle right before the polls park and again once they are answered: the machine's drift
        # over the phase then moves the reference as much as the figure.
        idle, idle_cpu_ms = self._ordinary_polls()
        client = _start_parked_client(self.api.base_url, auth, jobs, wait_s)
        _wait_parked_by_client(client)
        # Ordinary polls start once the server itself counts every poll parked (or gives up: a
        # serving model that cannot park them all answers no /metrics either).
        sent_at = time.monotonic()
        parked_at_server = self._wait_parked_at_server(n, PARK_TIMEOUT_S)
        park_s = time.monotonic() - sent_at
        # The servers' CPU while only parked polls are held: a wait that spins would show here.
        cpu_before = _group_cpu_s(self.api.popen.pid)
        time.sleep(1.0)
        parked_cpu_share = _group_cpu_s(self.api.popen.pid) - cpu_before
        during, during_cpu_ms = self._ordinary_polls()
        web_processes = _group_memory(self.api.popen.pid)  # while the polls are still parked
        cpu_before = _group_cpu_s(self.api.popen.pid)
        burst = self._change_round(client, claims, percent=50.0)
        wake_cpu_s = _group_cpu_s(self.api.popen.pid) - cpu_before  # every wake, up to the last answer
        # The same polls parked again on their new tags, and changed at a steady rate.
        with ThreadPoolExecutor(max_workers=8) as pool:
            jobs = list(pool.map(self._tagged, [claim.job_id for claim in claims]))
        client = _start_parked_client(self.api.base_url, auth, jobs, wait_s)
        _wait_parked_by_client(client)
        self._wait_parked_at_server(n, PARK_TIMEOUT_S)
        paced = self._change_round(client, claims, percent=75.0, per_s=PACED_CHANGES_PER_S)
        idle_after, idle_after_cpu_ms = self._ordinary_polls()
        self.results["long_polls"] = {
            "parked": n, "wait_s": wait_s,
            # The first round (as fast as the writers go) at the top level, as in earlier results.
            **burst,
            "paced": paced,
            "idle": idle.as_dict(), "while_parked": during.as_dict(), "idle_after": idle_after.as_dict(),
            # The web processes' CPU per ordinary poll: what parked polls add to each, whatever else
            # runs on the machine.
            "web_cpu_ms_per_poll": {"idle": idle_cpu_ms, "while_parked": during_cpu_ms, "idle_after": idle_after_cpu_ms},
            # What answering one parked poll with its change cost the web processes (the signal relayed
            # to every process included): compare with an ordinary poll's.
            "web_cpu_ms_per_wake": round(wake_cpu_s * 1000 / n, 3),
            "parked_at_server": parked_at_server, "park_s": round(park_s, 2),
            "web_cpu_share_while_parked": round(parked_cpu_share, 3),
            "web_processes": web_processes,
        }
        ordinary = (f"ordinary {during.rps:,.0f} req/s, p99 {during.p99_ms:.1f} ms" if during.requests
                    else f"no ordinary poll answered in {self.mode.duration_s} s")
        rss_mb = ", ".join(f"{p['rss_mb']:.0f}" for p in web_processes if p["role"] == "worker")
        _progress(f"{n} parked long polls ({parked_at_server} counted by the server after {park_s:.1f} s; "
                  f"web CPU while parked {parked_cpu_share:.2f} core; worker RSS {rss_mb} MB): {ordinary} "
                  f"(idle {idle.rps:,.0f} req/s, p99 {idle.p99_ms:.1f}, after {idle_after.p99_ms:.1f}), timeouts "
                  f"{during.errors['timeout']}; web CPU per poll {during_cpu_ms} ms (idle {idle_cpu_ms}, after "
                  f"{idle_after_cpu_ms}), per wake {self.results['long_polls']['web_cpu_ms_per_wake']} ms; "
                  f"change to client p99 {self.results['long_polls']['change_to_client_ms'].get('p99')} ms "
                  f"(from the write's return {self.results['long_polls']['change_to_client_after_write_ms'].get('p99')} "
                  f"ms; the write itself p99 {self.results['long_polls']['write_ms'].get('p99')} ms; "
                  f"{burst['changes_per_s']:,.0f} changes/s); paced at {paced['changes_per_s']:,.0f} changes/s: "
                  f"change to client p99 {paced['change_to_client_ms'].get('p99')} ms")

    def _tagged(self, job_id: str) -> list[str]:
        from backend.api.status_tags import status_etag
        from backend.extensions import db
        from backend.models import Job

        with self.app.app_context():
            try:
                return [job_id, status_etag(db.session.get(Job, job_id))]
            finally:
                db.session.rollback()

    def _change_round(self, client, claims: list, *, percent: float, per_s: float | None = None) -> dict:
        """Change every parked poll's job once (a progress write each, ``CHANGE_WRITERS`` threads), as
        fast as the writers go or ``per_s`` a second; wait for the client's answer; the latencies."""
        changed_at, written_at = {}, {}
        started = time.monotonic()

        def change(indexed) -> None:
            index, claim = indexed
            if per_s:
                time.sleep(max(0.0, started + index / per_s - time.monotonic()))
            with self.app.app_context():
                changed_at[claim.job_id] = time.time()  # before the write: the commit's own time counts
                self.attempts.record_progress(claim, percent, "bench", "changed")
                # After the commit and its signal: the latency from here leaves the write out (a lower
                # bound of "after commit", as the figure above is an upper one).
                written_at[claim.job_id] = time.time()

        with ThreadPoolExecutor(max_workers=CHANGE_WRITERS) as pool:  # as several worker threads would
            list(pool.map(change, enumerate(claims)))
        changes_s = time.monotonic() - started
        out, _ = client.communicate(timeout=120)
        answer = json.loads(out.strip().splitlines()[-1])
        woke = answer["woke"]
        return {
            "woke": len(woke), "reparked": answer["reparked"], "errors": answer["errors"],
            "changes_per_s": round(len(claims) / changes_s, 1),
            "change_to_client_ms": _percentiles(sorted((woke[j] - changed_at[j]) * 1000 for j in woke)),
            "change_to_client_after_write_ms": _percentiles(sorted((woke[j] - written_at[j]) * 1000 for j in woke)),
            "write_ms": _percentiles(sorted((written_at[j] - changed_at[j]) * 1000 for j in written_at)),
        }

    def _ordinary_polls(self) -> tuple[WrkResult, float | None]:
        """Status polls at 32 connections, and the web processes' CPU milliseconds per answer."""
        cpu_before = _group_cpu_s(self.api.popen.pid)
        result = run_wrk(self.poll_url, connections=GOAL_CONNECTIONS, duration_s=self.mode.duration_s,
                         auth=self.poll_auth, timeout_s=5)
        used_s = _group_cpu_s(self.api.popen.pid) - cpu_before
        return result, round(used_s * 1000 / result.requests, 3) if result.requests else None

    def _wait_parked_at_server(self, n: int, timeout_s: float) -> int | None:
        """The server's own count of parked long polls (``/metrics``, summed over its processes),
        once it reaches ``n`` or ``timeout_s`` passed; None if ``/metrics`` never answered."""
        import urllib.request

        deadline = time.monotonic() + timeout_s
        parked = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api.base_url}/metrics", timeout=1) as response:
                    text = response.read().decode()
            except OSError:  # no thread free to answer, or the answer took too long
                time.sleep(0.2)
                continue
            values = [line.split()[-1] for line in text.splitlines() if line.startswith("job_long_polls_parked ")]
            parked = round(float(values[0])) if values else 0
            if parked >= n:
                break
            time.sleep(0.2)
        return parked

    # ---- database look-ups ---------------------------------------------------------------------------

    def _count(self, owner: str, *statuses: str) -> int:
        from sqlalchemy import func, select

        from backend.extensions import db
        from backend.models import Job

        count = db.session.scalar(select(func.count()).where(Job.owner == owner, Job.status.in_(statuses)))
        db.session.rollback()
        return count

    def _wait_terminal(self, owner: str, *, timeout_s: float, exclude: list[str] = ()) -> None:
        from sqlalchemy import func, select

        from backend.extensions import db
        from backend.models import Job

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = db.session.scalar(select(func.count()).where(
                Job.owner == owner, Job.status.not_in(TERMINAL), Job.id.not_in(list(exclude) or [""])))
            db.session.rollback()
            if left == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"jobs of {owner} did not finish within {timeout_s:.0f} s")

    def _wait_running(self, owner: str, n: int, *, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        running = 0
        while time.monotonic() < deadline:
            running = self._count(owner, "running")
            if running >= n:
                break
            time.sleep(0.1)
        return running


def _start_parked_client(base_url: str, auth: str, jobs: list, wait_s: int) -> subprocess.Popen:
    """bench/parked.py, parking one long poll per ``[job_id, etag]`` of ``jobs``."""
    client = subprocess.Popen([sys.executable, str(Path(__file__).with_name("parked.py"))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client.stdin.write(json.dumps({"base_url": base_url, "auth": auth, "jobs": jobs, "wait_s": wait_s,
                                   "deadline_s": 60}) + "\n")
    client.stdin.flush()
    return client


def _wait_parked_by_client(client: subprocess.Popen) -> None:
    parked_line = client.stdout.readline()
    if not parked_line.startswith("PARKED"):
        raise RuntimeError(f"the long-poll client did not park its polls: {parked_line!r}")


def _cores(used_s: dict[str, float], duration_s: float) -> dict[str, float]:
    """CPU seconds per process group over a measurement of ``duration_s``: cores used on average."""
    return {name: round(seconds / duration_s, 2) for name, seconds in used_s.items()} if duration_s else {}


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))], 1)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(values[-1], 1)}


def _group_cpu_s(leader: int) -> float:
    """CPU seconds used so far by a process group, all its processes together."""
    return sum(cpu_s(group_pids(leader)).values())


def _group_memory(leader: int) -> list[dict]:
    """Resident memory, OS threads and open sockets (so connections held) of each process of a group."""
    out = []
    for pid in sorted(group_pids(leader)):
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        except FileNotFoundError:
            continue
        sockets = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                sockets += os.readlink(fd).startswith("socket:")
            except FileNotFoundError:  # closed meanwhile
                pass
        out.append({"pid": pid, "role": "master" if pid == leader else "worker",
                    "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024, 1),
                    "threads": int(status["Threads"]), "sockets": sockets})
    return out


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


# ---- the table -------------------------------------------------------------------------------------


def goals(results: dict) -> list[dict]:
    """Every goal of issue 8, as figure, peer, ratio, target and whether it is met."""
    c = str(GOAL_CONNECTIONS)
    sweep = results["sweep"]
    ceiling, poll200, poll304 = sweep["ceiling"][c], sweep["poll_200"][c], sweep["poll_304"][c]
    e2e, raw = results["end_to_end"], results["raw_dramatiq"]
    load = results["under_load"]
    rows = [
        ("ceiling: plain Flask JSON, req/s (c32)", ceiling["rps"], None, None, None, "peer"),
        ("ceiling p99 ms (c32)", ceiling["p99_ms"], None, None, None, "peer"),
        ("status poll 200, req/s (c32)", poll200["rps"], ceiling["rps"], ">= 0.6x ceiling", 0.6, "min"),
        ("status poll 200, p99 ms (c32)", poll200["p99_ms"], ceiling["p99_ms"], "<= 1.5x ceiling p99", 1.5, "max"),
        ("status poll 304, req/s (c32)", poll304["rps"], ceiling["rps"], ">= 0.7x ceiling", 0.7, "min"),
        # "Clearly cheaper" read as at least a fifth more answers per second than the 200.
        ("304 vs 200 req/s", poll304["rps"], poll200["rps"], ">= 1.2x (clearly cheaper)", 1.2, "min"),
        ("web CPU us per 200 answer (c32)", poll200["server_cpu_us_per_answer"], ceiling["server_cpu_us_per_answer"],
         "(vs the ceiling's)", None, "info"),
        ("web CPU us per 304 answer (c32)", poll304["server_cpu_us_per_answer"], poll200["server_cpu_us_per_answer"],
         "(vs the 200's)", None, "info"),
        ("batch of 100, statuses/s, all changed (c32)", results["batch"]["all_changed"]["statuses_per_s"], None,
         ">= 50,000", 50_000, "abs"),
        ("batch of 100, statuses/s, all unchanged (c32)", results["batch"]["all_unchanged"]["statuses_per_s"], None,
         "", None, "info"),
        ("submits/s over HTTP, 16 connections", results["submits"]["submits_per_s"], None, ">= 1,000", 1000, "abs"),
        ("raw Dramatiq no-op jobs/s", raw["jobs_per_s"], None, None, None, "peer"),
        ("end to end jobs/s, full persistence", e2e["jobs_per_s"], raw["jobs_per_s"], ">= 0.4x no-op", 0.4, "min"),
        ("poll p99 ms, idle (c32)", load["idle"]["p99_ms"], None, None, None, "peer"),
        (f"poll p99 ms, {load['running_jobs']['at_start']} jobs running", load["loaded"]["p99_ms"],
         load["idle"]["p99_ms"], "<= 2x idle", 2.0, "max"),
        *_long_poll_rows(results["long_polls"]),
    ]
    return _judge(rows)


def long_poll_goals(results: dict) -> list[dict]:
    """The long-poll goal alone (a ``--long-polls`` run), with its idle peer."""
    lp = results["long_polls"]
    return _judge([("poll p99 ms, idle before they park (c32)", lp["idle"]["p99_ms"], None, None, None, "peer"),
                   ("poll p99 ms, idle after they answer (c32)", lp["idle_after"]["p99_ms"], None, None, None, "peer"),
                   *_long_poll_rows(lp)])


def _long_poll_rows(lp: dict) -> list[tuple]:
    lp_during = lp["while_parked"]
    # No answer at all (every thread held by a parked poll) or timeouts: no p99 worth the name.
    lp_p99 = lp_during["p99_ms"] if lp_during["requests"] and not lp_during["errors"]["timeout"] else None
    # The reference: idle p99 before the polls park and after they are answered, averaged, so the
    # machine's drift over the phase cancels out (older results have the first only).
    idle_p99 = (lp["idle"]["p99_ms"] + lp["idle_after"]["p99_ms"]) / 2 if "idle_after" in lp else lp["idle"]["p99_ms"]
    # Parked means counted parked by the server itself, every one of them then woken by its change.
    all_parked = lp.get("parked_at_server", lp["parked"]) or 0
    all_parked_answered = (lp["woke"] == lp["parked"] and not lp["errors"] and bool(lp_during["requests"])
                           and all_parked >= lp["parked"])
    change_p99 = lp["change_to_client_ms"].get("p99") if lp["woke"] == lp["parked"] else None
    rows = [
        ("long polls parked at once", lp["parked"] if all_parked_answered else None, None,
         ">= 1,000, polls still served", 1000, "abs"),
        ("poll p99 ms while they are parked", lp_p99, idle_p99, "<= 2x idle (before, after)", 2.0, "max"),
        ("change -> parked client p99 ms, writers flat out", change_p99, None, "<= 100", 100, "absmax"),
    ]
    paced = lp.get("paced")  # results from before 2026-11-30 05:00 UTC have the first round only
    if paced is not None:
        paced_p99 = paced["change_to_client_ms"].get("p99") if paced["woke"] == lp["parked"] and not paced["errors"] else None
        rows.append((f"change -> parked client p99 ms, {PACED_CHANGES_PER_S}/s", paced_p99, None, "<= 100", 100, "absmax"))
    return rows


def _judge(rows: list[tuple]) -> list[dict]:
    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    out = []
    for label, value, peer, target, bound, kind in rows:
        r = ratio(value, peer) if peer is not None else None
        if kind in ("peer", "info") or value is None:
            met = None if kind in ("peer", "info") else False
        elif kind == "min":
            met = r is not None and r >= bound
        elif kind == "max":
            met = r is not None and r <= bound
        elif kind == "abs":
            met = value >= bound
        else:
            met = value <= bound
        out.append({"figure": label, "value": value, "ratio": r, "goal": target, "met": met})
    return out


def print_table(rows: list[dict]) -> None:
    print(f"\n{'figure':48} {'value':>12} {'ratio':>8}  {'goal':26} met")
    for row in rows:
        value = row["value"]
        shown = "n/a" if value is None else (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}")
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        print(f"{row['figure']:48} {shown:>12} {ratio:>8}  {row['goal'] or '':26} {met}")
    if any(row["value"] is None for row in rows):
        print("n/a: nothing to measure in this run, for example no ordinary poll answered (or some timed out)\n"
              "     while the long polls were parked, or not every parked poll got its change; see the JSON.")


def print_jobs(results: dict) -> None:
    """The job-throughput figures of a ``--jobs`` run (nothing is written: no sweep, no chart)."""
    submits, e2e, raw = results["submits"], results["end_to_end"], results["raw_dramatiq"]
    ratio = e2e["jobs_per_s"] / raw["jobs_per_s"] if e2e["jobs_per_s"] and raw["jobs_per_s"] else 0.0
    print(f"\nsubmits/s over HTTP, {SUBMIT_CLIENTS} connections: {submits['submits_per_s']:,.1f} "
          f"(p99 {submits['p99_ms']:.1f} ms, {submits['accepted']} accepted)\n"
          f"end to end jobs/s: {e2e['jobs_per_s']} ({e2e['succeeded']}/{e2e['jobs']} succeeded); "
          f"raw Dramatiq no-op jobs/s: {raw['jobs_per_s']}; ratio {ratio:.3f}x (goal >= 0.4x)\n"
          f"CPU ms per job (submit to end): {e2e['cpu_ms_per_job']}; PostgreSQL sessions opened "
          f"{e2e['postgresql_sessions_opened']}\n"
          f"{results['wall_s']} s; load average before {results['machine']['loadavg_before']}, "
          f"after {results['machine']['loadavg_after']}")


def write_outputs(results: dict, results_dir: Path) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    name = results["mode"]
    json_path = results_dir / f"{name}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    sweep = results["sweep"]
    concurrency = sorted(int(c) for c in sweep["ceiling"])
    labels = {"ceiling": "plain Flask (ceiling)", "poll_200": "status poll, 200", "poll_304": "status poll, 304"}
    rps = {labels[k]: [sweep[k][str(c)]["rps"] for c in concurrency] for k in labels}
    p99 = {labels[k]: [sweep[k][str(c)]["p99_ms"] for c in concurrency] for k in labels}
    title = f"make bench ({name}), {results['started_at'][:16]} UTC, {results['machine']['cores']} cores"
    svg_path = results_dir / f"{name}.svg"
    svg_path.write_text(chart.render(title, concurrency, rps, p99))
    return json_path, svg_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per measurement, under 2 minutes")
    parser.add_argument("--tiny", action="store_true", help="the smallest run of every phase (used by a test)")
    parser.add_argument("--jobs", action="store_true",
                        help="only the job-throughput phases: submits, end to end, raw Dramatiq")
    parser.add_argument("--long-polls", action="store_true",
                        help="only 1,000 parked long polls and the idle poll p99 (4 s per measurement)")
    parser.add_argument("--submits-alone", action="store_true",
                        help="only submits at 16 connections, no worker running: the web's CPU per submit")
    parser.add_argument("--under-load", action="store_true",
                        help="only the poll p99 idle and with 500 jobs running, and the cores each part used")
    parser.add_argument("--polls", action="store_true",
                        help="only the poll goals: ceiling, 200 and 304 polls at 32 connections, batch")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    mode = MODES["polls" if args.polls else "under-load" if args.under_load else "long-polls" if args.long_polls else "tiny" if args.tiny else "quick" if args.quick else "full"]

    started = time.monotonic()
    results: dict = {
        "mode": mode.name,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "settings": asdict(mode) | {"redis_url": REDIS_URL, "gunicorn": "backend/gunicorn_conf.py",
                                    "lifted_limits": LIFTED_LIMITS},
    }
    print(f"make bench ({mode.name}): load average {results['machine']['loadavg_before']}, "
          f"{os.cpu_count()} cores; Redis {REDIS_URL} is emptied", flush=True)
    redis_lib.Redis.from_url(REDIS_URL).flushdb()
    with throwaway_database("bench") as database_url:
        _migrate(database_url)
        # The in-process app's slow-query warnings are not figures (set after the migration, whose
        # logging configuration would reset them).
        logging.getLogger("backend").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory(prefix="ai-jobs-bench-") as log_dir:
            bench = Bench(mode, database_url, REDIS_URL, Path(log_dir))
            try:
                phases_s = {}
                phases = (bench.prepare, bench.sweep, bench.batch, bench.submits_end_to_end,
                          bench.raw_dramatiq, bench.polls_under_load, bench.parked_long_polls)
                if args.jobs:
                    phases = (bench.start_processes, bench.submits_end_to_end, bench.raw_dramatiq)
                if args.long_polls:
                    phases = (bench.prepare, bench.parked_long_polls)
                if args.polls:
                    phases = (bench.prepare, bench.sweep, bench.batch)
                if args.under_load:
                    phases = (bench.prepare, bench.polls_under_load)
                if args.submits_alone:
                    phases = (bench.submits_alone,)
                for phase in phases:
                    phase_started = time.monotonic()
                    phase()
                    phases_s[phase.__name__] = round(time.monotonic() - phase_started, 1)
                bench.results["phases_s"] = phases_s
            except Exception:
                print_log_tails(bench.processes)
                raise
            finally:
                bench.close()
        results.update(bench.results)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = round(time.monotonic() - started, 1)
    if args.jobs:
        print_jobs(results)
        return 0
    if args.polls or args.submits_alone or args.under_load:  # the figures are the progress lines; nothing is written
        print(f"{results['wall_s']} s; load average after {results['machine']['loadavg_after']}")
        return 0
    if args.long_polls:
        results["goals"] = long_poll_goals(results)
        print_table(results["goals"])
        args.results_dir.mkdir(parents=True, exist_ok=True)
        json_path = args.results_dir / "long-polls.json"
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\n{results['wall_s']} s; load average after {results['machine']['loadavg_after']}. Wrote {json_path}")
        return 0
    results["max_generator_cpu_share"] = max(
        r["generator_cpu_share"] for by_c in results["sweep"].values() for r in by_c.values())
    results["goals"] = goals(results)
    print_table(results["goals"])
    json_path, svg_path = write_outputs(results, args.results_dir)
    print(f"\n{results['wall_s']} s; load average after {results['machine']['loadavg_after']}; wrk used at most "
          f"{results['max_generator_cpu_share']:.2f} of a core. Wrote {json_path} and {svg_path}")
    return 0


@contextmanager
def throwaway_database(kind: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (``aijobs_<kind>_<random>``), dropped afterwards."""
    name = f"aijobs_{kind}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def print_log_tails(processes, lines: int = 15) -> None:
    """The last lines of each bench process's log, on stderr: what a failed phase left behind."""
    for process in processes:
        print(f"--- {process.name} log (tail) ---\n" + "\n".join(process.log_text().splitlines()[-lines:]),
              file=sys.stderr)


def _migrate(database_url: str) -> None:
    from backend import create_app
    from backend.config import Config
    from backend.extensions import db

    app = create_app(Config(database_url=database_url, redis_url=None))
    with app.app_context():
        from flask_migrate import upgrade

        logging.disable(logging.INFO)  # alembic's step-by-step lines
        try:
            upgrade()
        finally:
            logging.disable(logging.NOTSET)
        db.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())

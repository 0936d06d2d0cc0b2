"""Worker vitals: heartbeats for the attempts this process runs, and the cluster-wide sweep.

Both run on threads that this Dramatiq middleware starts when a worker boots, so the web process
(which builds the same broker to send messages) runs neither. The agent never beats the heartbeat
itself: a stuck agent in a live process still looks alive, which is what the time limit is for.
"""
from __future__ import annotations

import logging
import threading
import time

import dramatiq
from flask import Flask
from sqlalchemy import text

from . import job_metrics
from .extensions import db
from .jobs.retention import RetentionPass
from .jobs.transitions import Claim

log = logging.getLogger(__name__)

# pg_try_advisory_lock key: one sweeper at a time across every worker process of the cluster.
SWEEP_LOCK_KEY = 0x41494A4F42  # "AIJOB"
# After asking running agents to hand their jobs back, how long to wait for them to reach a
# checkpoint before this process hands the leftovers back itself.
HAND_BACK_WAIT_S = 2.0
# How often the shutdown says what it is still waiting for.
SHUTDOWN_LOG_EVERY_S = 5.0


class WorkerVitals(dramatiq.Middleware):
    """Heartbeat and sweep threads, started on worker boot and stopped on worker shutdown."""

    def __init__(self, app: Flask, config) -> None:
        self.app = app
        self.config = config
        self._claims: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._sweep_lock = threading.Lock()  # SQLite has no advisory locks; one process anyway
        self._stop = threading.Event()
        # Set once the shutdown grace is over: every checkpoint then hands its job back.
        self._handing_back = threading.Event()
        self._threads: list[threading.Thread] = []
        # When this process last failed to reach the database (monotonic seconds), if ever.
        self._database_failed_at: float | None = None
        self._retention = RetentionPass(
            retention_days=config.job_retention_days, batch_size=config.retention_batch_size
        )

    # ---- what the runner reports ------------------------------------------------------------

    def track(self, claim: Claim) -> None:
        with self._lock:
            self._claims[claim.job_id] = claim

    def untrack(self, claim: Claim) -> None:
        with self._lock:
            if self._claims.get(claim.job_id) == claim:
                del self._claims[claim.job_id]

    def running(self) -> list[Claim]:
        with self._lock:
            return list(self._claims.values())

    def hand_back_requested(self) -> bool:
        return self._handing_back.is_set()

    # ---- Dramatiq hooks ---------------------------------------------------------------------

    def after_worker_boot(self, broker, worker) -> None:
        self._stop.clear()
        self._handing_back.clear()
        self._threads = [
            threading.Thread(target=self._every, args=(self.config.heartbeat_interval_s, self.beat),
                             name="job-heartbeat", daemon=True),
            threading.Thread(target=self._every, args=(self.config.reaper_interval_s, self.sweep),
                             name="job-sweeper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        # Stop taking messages now (Dramatiq tells its threads only after this hook); each thread
        # finishes the message in hand, and the prefetched ones go back to the broker at the end.
        for thread in getattr(worker, "workers", ()):
            thread.stop()
        try:
            self.drain(self.config.worker_shutdown_grace_s)
        except KeyboardInterrupt:  # a second Ctrl-C in `make run`: skip the wait, hand back now
            self.hand_back_all()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    # ---- shutting down without losing a job -------------------------------------------------

    def drain(self, grace_s: float, *, clock=time.monotonic) -> None:
        """Let running jobs finish within ``grace_s``, then hand back those still running.

        Heartbeats keep going meanwhile, so no job here ever looks abandoned to the sweep.
        """
        deadline_s = clock() + grace_s
        next_log_s = clock()
        while self.running():
            left_s = deadline_s - clock()
            if left_s <= 0:
                self.hand_back_all()
                return
            if clock() >= next_log_s:
                count = len(self.running())
                log.info("shutting down: waiting for %d running job%s, %.0f s left",
                         count, "" if count == 1 else "s", left_s)
                next_log_s = clock() + SHUTDOWN_LOG_EVERY_S
            time.sleep(min(0.05, left_s))

    def hand_back_all(self) -> None:
        """Hand every running job back to the queue, uncounted: at the agent's next checkpoint, or
        from here after HAND_BACK_WAIT_S for an agent that reaches none (its later writes are fenced
        out, since the job no longer runs its attempt)."""
        running = self.running()
        if not running:
            return
        log.info("shutting down: handing back %d unfinished job%s", len(running), "" if len(running) == 1 else "s")
        self._handing_back.set()
        deadline_s = time.monotonic() + HAND_BACK_WAIT_S
        while self.running() and time.monotonic() < deadline_s:
            time.sleep(0.02)
        leftovers = self.running()
        if not leftovers:
            return
        with self.app.app_context():
            attempts = self.app.extensions["job_service"].attempts
            for claim in leftovers:
                try:
                    attempts.hand_back(claim, reason="its worker shut down before the agent reached a checkpoint")
                except Exception:  # the database is down: the heartbeat sweep requeues it later
                    log.warning("could not hand back job %s; the sweep will requeue it", claim.job_id,
                                extra={"job_id": claim.job_id})
                finally:
                    db.session.remove()

    # ---- the periodic work ------------------------------------------------------------------

    def _every(self, interval_s: float, work) -> None:
        while not self._stop.wait(interval_s):
            try:
                with self.app.app_context():
                    work()
            except Exception as exc:  # the database may be down; try again next round
                self.database_failed()
                log.warning("%s failed (%s); retrying in %.1f s", work.__name__, type(exc).__name__, interval_s)

    def beat(self) -> None:
        claims = self.running()
        if claims:
            self.app.extensions["job_service"].attempts.heartbeat(claims)

    def sweep(self) -> dict[str, int] | None:
        """Run one sweep if no other process is sweeping; returns what it did, or None."""
        service = self.app.extensions["job_service"]
        if db.engine.dialect.name != "postgresql":
            if not self._sweep_lock.acquire(blocking=False):
                return None
            try:
                return self._sweep_once(service)
            finally:
                self._sweep_lock.release()
        with db.engine.connect() as lock_connection:
            acquired = lock_connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": SWEEP_LOCK_KEY}
            ).scalar()
            if not acquired:
                return None
            try:
                return self._sweep_once(service)
            finally:
                lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SWEEP_LOCK_KEY})
                lock_connection.commit()

    def database_failed(self) -> None:
        """Note that this process could not reach the database just now."""
        self._database_failed_at = time.monotonic()

    def _heartbeats_are_trustworthy(self) -> bool:
        """False until the database has been reachable for a whole heartbeat timeout.

        During a database outage no worker can write its heartbeat, so right after it every running
        job looks abandoned. Judging them before live workers have had time to beat again would
        requeue jobs that are still running.
        """
        failed_at = self._database_failed_at
        return failed_at is None or time.monotonic() - failed_at >= self.config.heartbeat_timeout_s

    def _sweep_once(self, service) -> dict[str, int]:
        started = time.monotonic()
        counts = service.sweep.run_once(judge_heartbeats=self._heartbeats_are_trustworthy())
        job_metrics.sweep_pass(counts)
        # Under the same lock as the rest: one purger at a time, bounded, about once a minute.
        # It logs and counts (job_sweep_actions_total{action="purged"}) what it deletes itself.
        self._retention.maybe_run()
        if any(counts.values()):
            log.info("sweep: %s in %.0f ms", counts, (time.monotonic() - started) * 1000)
        return counts

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

from .extensions import db
from .jobs.service import Claim

log = logging.getLogger(__name__)

# pg_try_advisory_lock key: one sweeper at a time across every worker process of the cluster.
SWEEP_LOCK_KEY = 0x41494A4F42  # "AIJOB"


class WorkerVitals(dramatiq.Middleware):
    """Heartbeat and sweep threads, started on worker boot and stopped on worker shutdown."""

    def __init__(self, app: Flask, config) -> None:
        self.app = app
        self.config = config
        self._claims: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._sweep_lock = threading.Lock()  # SQLite has no advisory locks; one process anyway
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # When this process last failed to reach the database (monotonic seconds), if ever.
        self._database_failed_at: float | None = None

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

    # ---- Dramatiq hooks ---------------------------------------------------------------------

    def after_worker_boot(self, broker, worker) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._every, args=(self.config.heartbeat_interval_s, self.beat),
                             name="job-heartbeat", daemon=True),
            threading.Thread(target=self._every, args=(self.config.reaper_interval_s, self.sweep),
                             name="job-sweeper", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

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
            self.app.extensions["job_service"].heartbeat(claims)

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
        if self._heartbeats_are_trustworthy():
            counts = service.reap_stale_running()
        else:
            counts = {"requeued": 0, "failed": 0, "cancelled": 0}
        counts["cancelled"] += service.cancel_requested_queued()
        counts["resent"] = service.resend_unclaimed()
        if any(counts.values()):
            log.info("sweep: %s in %.0f ms", counts, (time.monotonic() - started) * 1000)
        return counts

"""Worker liveness: each worker process beats a row of its own; a fresh row means a live worker.

Job heartbeats (``jobs.heartbeat_at``) only exist while a job runs, so an idle cluster and a dead
one look alike there. This table has one small row per worker process, refreshed every
``HEARTBEAT_INTERVAL_S`` by a thread this Dramatiq middleware starts on worker boot and removed on
a clean shutdown; a process that died leaves a row that stops being fresh after
``HEARTBEAT_TIMEOUT_S``. It lives in the database, not in Redis, so the embedded mode (no Redis)
has it too, and the web process reads it with one indexed query (cached by its callers).
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import dramatiq
from flask import Flask
from sqlalchemy import Index, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .models import UTCDateTime, utcnow

log = logging.getLogger(__name__)

# Rows of processes that died without a clean shutdown are dropped after this long.
FORGET_DEAD_AFTER = timedelta(days=1)


class WorkerProcess(db.Model):
    """One worker process and its latest beat."""

    __tablename__ = "worker_processes"
    __table_args__ = (Index("ix_worker_processes_beat_at", "beat_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    running_jobs: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class LiveWorker:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    beat_at: datetime
    running_jobs: int


def alive(timeout_s: float, *, now: datetime | None = None) -> list[LiveWorker]:
    """The worker processes that beat within ``timeout_s``, most recently started first."""
    cutoff = (now or utcnow()) - timedelta(seconds=timeout_s)
    rows = db.session.scalars(
        select(WorkerProcess).where(WorkerProcess.beat_at >= cutoff).order_by(WorkerProcess.started_at.desc())
    ).all()
    return [
        LiveWorker(row.id, row.hostname, row.pid, row.started_at, row.beat_at, row.running_jobs) for row in rows
    ]


class WorkerLiveness(dramatiq.Middleware):
    """Beats this process's row while the worker runs."""

    def __init__(self, app: Flask, *, interval_s: float, running_jobs=lambda: 0) -> None:
        self.app = app
        self.interval_s = interval_s
        self._running_jobs = running_jobs
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker, worker) -> None:
        # A forked process must not reuse its parent's id.
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="worker-liveness", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            with self.app.app_context():
                db.session.execute(delete(WorkerProcess).where(WorkerProcess.id == self.worker_id))
                db.session.commit()
        except Exception as exc:  # the database may be down at shutdown; the row just goes stale
            log.warning("could not remove this worker's liveness row (%s)", type(exc).__name__)

    def _run(self) -> None:
        first = True
        while first or not self._stop.wait(self.interval_s):
            try:
                with self.app.app_context():
                    self.beat(forget_dead=first)
                first = False
            except Exception as exc:  # the database may be down; beat again next round
                log.warning("worker liveness beat failed (%s); retrying in %.1f s", type(exc).__name__, self.interval_s)
                first = False

    def beat(self, *, forget_dead: bool = False) -> None:
        now = utcnow()
        running = self._running_jobs()
        updated = db.session.execute(
            update(WorkerProcess)
            .where(WorkerProcess.id == self.worker_id)
            .values(beat_at=now, running_jobs=running)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not updated:
            db.session.add(WorkerProcess(
                id=self.worker_id, hostname=socket.gethostname()[:255], pid=os.getpid(),
                started_at=now, beat_at=now, running_jobs=running,
            ))
        if forget_dead:
            db.session.execute(delete(WorkerProcess).where(WorkerProcess.beat_at < now - FORGET_DEAD_AFTER))
        db.session.commit()

"""The embedded mode's worker: Dramatiq's own Worker, inside the web process, on the in-memory broker."""
from __future__ import annotations

import dramatiq
from flask import Flask


def start_embedded_worker(app: Flask) -> dramatiq.Worker:
    """Start worker threads consuming the app's in-memory broker; stop them with ``.stop()``."""
    broker = app.extensions["job_queue"].broker
    # Middleware such as TimeLimit start their helper threads on process boot.
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(
        broker,
        worker_threads=app.extensions["config"].embedded_worker_threads,
        worker_timeout=100,
    )
    worker.start()
    return worker

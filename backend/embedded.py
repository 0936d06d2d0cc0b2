"""The embedded mode's own pieces: Dramatiq's Worker inside the web process, and the development key."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import dramatiq
from flask import Flask

# Only the owner may read the key file: the key acts as the development owner on this machine.
_KEY_FILE_MODE = 0o600


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


def development_key(path: Path) -> str:
    """The key stored at ``path``, made (and stored, readable by the owner only) on first use.

    A stable key keeps open demo tabs and shell variables working across restarts of `make run`.
    """
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = ""
    if key:
        if stat.S_IMODE(path.stat().st_mode) != _KEY_FILE_MODE:
            path.chmod(_KEY_FILE_MODE)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "dev_" + secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _KEY_FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        # An empty file left behind keeps its old mode through O_CREAT, so set it here too.
        os.fchmod(file.fileno(), _KEY_FILE_MODE)
        file.write(key + "\n")
    return key

"""Log lines as JSON (or text) that carry the request id and the job id they are about.

Two context variables hold the ids: the web side sets them per request (backend/telemetry.py), the
worker side per message (``LogContextMiddleware`` below, which also carries the request id from the
request that sent a message into the message itself). A filter copies them onto every record, so
``grep <job id>`` or ``grep <request id>`` follows a job from its POST to its end across processes.

What never goes into a line: API keys, job input or results. Call sites log ids, codes and counts;
SQL is logged as statement text with placeholders, never with its parameters.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from contextvars import ContextVar

import dramatiq

log = logging.getLogger("backend.worker")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

TEXT_FORMAT = "%(asctime)s [PID %(process)d] %(levelname)s %(name)s: %(message)s%(context)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
_HANDLER_NAME = "ai-jobs"


class ContextFilter(logging.Filter):
    """Add ``request_id`` and ``job_id`` to each record (an explicit ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id_var.get()
        context = [f"{name}={value}" for name in ("job_id", "request_id") if (value := getattr(record, name))]
        record.context = f" [{' '.join(context)}]" if context else ""
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    class _Formatter(JsonFormatter):
        def add_fields(self, log_record, record, message_dict) -> None:
            super().add_fields(log_record, record, message_dict)
            log_record.pop("context", None)  # the text form of the two ids below
            for name in ("request_id", "job_id"):
                if log_record.get(name) is None:
                    log_record.pop(name, None)

    return _Formatter(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def formatter_for(log_format: str) -> logging.Formatter:
    return json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: str = "text", level: str = "INFO", *, take_over: bool = False,
                      stream=None) -> None:
    """One handler on the root logger, to stderr; calling it again replaces it (idempotent).

    ``take_over`` instead reformats the handlers already on the root logger: Dramatiq's CLI installs
    one per worker process that pipes lines to its main process, and that path must be kept.
    """
    root = logging.getLogger()
    root.setLevel(level)
    if take_over and root.handlers:
        for handler in root.handlers:
            handler.setFormatter(formatter_for(log_format))
            if not any(isinstance(f, ContextFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())
        return
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)


class LogContextMiddleware(dramatiq.Middleware):
    """Carry the sender's request id in each message; set the job and request ids while it runs."""

    def __init__(self, job_actors: frozenset[str]) -> None:
        self.job_actors = job_actors
        self._local = threading.local()

    def before_enqueue(self, broker, message, delay) -> None:
        request_id = request_id_var.get()
        if request_id is not None and "request_id" not in message.options:
            message.options["request_id"] = request_id

    def before_process_message(self, broker, message) -> None:
        request_id_var.set(message.options.get("request_id"))
        job_id = message.args[0] if message.actor_name in self.job_actors and message.args else None
        job_id_var.set(job_id if isinstance(job_id, str) else None)
        self._local.started_s = time.perf_counter()
        log.info("message %s received", message.actor_name,
                 extra={"message_id": message.message_id, "retries": message.options.get("retries", 0)})

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        started_s = getattr(self._local, "started_s", None)
        elapsed_ms = round((time.perf_counter() - started_s) * 1000, 1) if started_s is not None else None
        outcome = "ok" if exception is None else type(exception).__name__
        log.info("message %s processed: %s", message.actor_name, outcome,
                 extra={"message_id": message.message_id, "duration_ms": elapsed_ms, "outcome": outcome})
        # Worker threads are reused: the next message must not inherit these ids.
        request_id_var.set(None)
        job_id_var.set(None)
        self._local.started_s = None

    after_skip_message = after_process_message

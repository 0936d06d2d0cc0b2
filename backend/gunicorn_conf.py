"""gunicorn settings for production: ``gunicorn -c python:backend.gunicorn_conf wsgi:app``.

Long polls park a thread each (no database connection, no CPU) for up to 30 s, so the server runs
threaded workers with many threads: parked waits and ordinary requests share the pool, and the
database pool stays small because a parked wait has given its connection back. Chosen by measurement
against gevent workers (docs/performance.md): 1,000 threads per process park 1,000 long polls on a
2-core host while ordinary polls cost what they cost idle; gevent parked them too, but delivered the
changes to parked clients several times later.
"""
import glob
import multiprocessing
import os
import tempfile

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", max(2, multiprocessing.cpu_count())))
# Threads per worker: each long poll holds one for at most `wait` seconds, blocked in Event.wait (no
# CPU; about 75 KB resident each, measured). Started on demand and kept: a process holds as many as
# it has needed at once.
threads = int(os.environ.get("WEB_THREADS", "1000"))
# gthread accepts at most this many connections per process, idle kept-alive ones included: one per
# thread plus the idle keep-alive room gunicorn's defaults leave (1,000), or a process with every
# thread busy would stop accepting, and idle keep-alive connections would be cut.
worker_connections = threads + 1000
# Longer than the longest long poll (30 s), so a parked request is never killed as a hung worker.
timeout = int(os.environ.get("WEB_TIMEOUT_S", "60"))
graceful_timeout = 35
keepalive = 5
# gunicorn's largest finite request-line limit (its default, 4094, answered longer URLs with its own
# HTML page): URLs up to here reach the app, which answers those past its own, lower limit with 414
# problem+json (backend/api/url_limit.py). Header fields keep gunicorn's default size limit.
limit_request_line = 8190
limit_request_field_size = 8190
accesslog = "-"
# No query strings in the access log: cursors and request ids are the caller's business.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
# gunicorn's logger, building only the atoms this format names: the same line, at a fraction of the
# CPU that gunicorn's every-atom dict cost each request (backend/access_log.py).
logger_class = "backend.access_log.LeanAccessLogger"

# /metrics sums every worker process: prometheus-client's multiprocess mode, chosen by this variable
# when it is first imported (in the workers, after this file ran in the master). A directory of its
# own per server unless the environment names one.
metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="ai-jobs-metrics-"))


def on_starting(server):
    # Values left by a previous run must not be summed into this one's.
    os.makedirs(metrics_dir, exist_ok=True)
    for path in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    # A dead worker's live gauges (long polls parked) must stop counting.
    multiprocess.mark_process_dead(worker.pid, metrics_dir)


if os.environ.get("LOG_FORMAT", "text").strip().lower() == "json":
    # gunicorn's own lines (access log included) as JSON, like the app's (backend/logs.py).
    accesslog = None
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "backend.logs.json_formatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        # The app's own lines get their handler from backend/logs.py (wsgi.py): none here, or twice.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }

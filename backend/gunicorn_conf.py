"""gunicorn settings for production: ``gunicorn -c python:backend.gunicorn_conf wsgi:app``.

Long polls park a thread each (no database connection, no CPU) for up to 30 s, so the server runs
threaded workers with many threads: parked waits and ordinary requests share the pool, and the
database pool stays small because a parked wait has given its connection back.
"""
import multiprocessing
import os

bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", max(2, multiprocessing.cpu_count())))
# Threads per worker: each long poll holds one for at most `wait` seconds.
threads = int(os.environ.get("WEB_THREADS", "64"))
# Longer than the longest long poll (30 s), so a parked request is never killed as a hung worker.
timeout = int(os.environ.get("WEB_TIMEOUT_S", "60"))
graceful_timeout = 35
keepalive = 5
accesslog = "-"
# No query strings in the access log: cursors and request ids are the caller's business.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'

# One image for every production process of the AI job service. The default command is the API:
#
#   docker run -p 8000:8000 -e DATABASE_URL=postgresql+psycopg://… -e REDIS_URL=redis://… IMAGE
#
# The same image also runs the other two processes; give them the same environment:
#
#   docker run --no-healthcheck -e DATABASE_URL=… -e REDIS_URL=… IMAGE dramatiq backend.worker
#   docker run --rm --no-healthcheck -e DATABASE_URL=… IMAGE flask --app wsgi db upgrade
#   docker run --rm --no-healthcheck -e DATABASE_URL=… IMAGE flask --app wsgi keys create --owner NAME
#
# Worker and one-off containers serve no HTTP, which is why they run with --no-healthcheck. Stop
# workers with more grace than the longest agent time limit (docker stop -t 120), so that running
# jobs can finish, and give them a restart policy: when one worker process dies, the dramatiq command
# exits. See docs/runbook.md.
FROM python:3.11-slim

# Logs reach `docker logs` as they are written; no bytecode files in the read-only source tree.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The source tree stays in /app after the install. The service finds migrations/ and the demo
# page's client/ next to the backend package it runs from, and gunicorn, `flask --app wsgi` and
# `dramatiq` all put the working directory first on sys.path, so they run this copy.
COPY . .
RUN pip install . \
    && useradd --system --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p instance \
    && chown app:app instance

# The code stays root-owned and read-only to the service. Only instance/ is writable, because that
# is where the SQLite default would go if DATABASE_URL were left unset.
USER app

EXPOSE 8000

# backend/gunicorn_conf.py runs threaded workers with many threads, because each long poll parks a
# thread (not a database connection) for up to 30 s while ordinary requests keep being served. It
# binds 0.0.0.0:8000; WEB_WORKERS and WEB_THREADS size it, and GUNICORN_CMD_ARGS overrides it.
CMD ["gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"]

# Liveness only: /health/ready would mark every container unhealthy while a shared dependency is
# down, though polls still work when only Redis is. Checks port 8000, the port the configuration
# binds unless PORT or BIND says otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

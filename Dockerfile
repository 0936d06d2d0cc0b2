# One image for every production process of the AI job service. The default command is the API:
#
#   docker run -p 8000:8000 -e DATABASE_URL=postgresql+psycopg://… -e REDIS_URL=redis://… IMAGE
#
# The same image also runs the other two processes; give them the same environment:
#
#   docker run --no-healthcheck -e DATABASE_URL=… -e REDIS_URL=… IMAGE \
#       dramatiq backend.worker --worker-shutdown-timeout 5000
#   docker run --rm --no-healthcheck -e DATABASE_URL=… IMAGE flask --app wsgi db upgrade
#   docker run --rm --no-healthcheck -e DATABASE_URL=… IMAGE flask --app wsgi keys create --owner NAME
#
# Worker and one-off containers serve no HTTP, which is why they run with --no-healthcheck. A
# stopped worker lets running jobs finish for WORKER_SHUTDOWN_GRACE_S (25 s) and hands back the
# rest, so stop it with more time than that (docker stop -t 40; compose.yaml and deploy/k8s/ do),
# and give it a restart policy: when one worker process dies, the dramatiq command exits. BROKER_URL
# (amqp://…) puts the jobs on RabbitMQ instead of Redis. See docs/runbook.md and compose.yaml.
# An exact tag, so a rebuild gets the same Python and Debian; constraints.txt pins every package.
FROM python:3.11.14-slim-bookworm AS build

# Stage 1 builds the wheel: the backend package with migrations/ and the browser client inside it
# (setup.py ships them), and wsgi.py. constraints.txt (`make lock`) pins the build backend too: it
# is installed first, and the wheel is built with it rather than with whatever setuptools is newest
# on the day of the build.
WORKDIR /src
COPY . .
RUN pip install -c constraints.txt setuptools \
    && pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# Stage 2 is the image: the wheel installed under the lock, and no source tree at all.
FROM python:3.11.14-slim-bookworm

# Logs reach `docker logs` as they are written; no bytecode files in the read-only source tree.
# Logs as JSON lines with request and job ids (docs/operations.md#logs); LOG_FORMAT=text to read by eye.
ENV LOG_FORMAT=json \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The service finds migrations/ and the demo page's client/ inside the installed package
# (backend/_data), and wsgi is an installed module: /app holds nothing but instance/.
COPY constraints.txt ./
COPY --from=build /wheels /wheels
RUN pip install -c constraints.txt /wheels/ai_jobs-*.whl \
    && rm -rf /wheels constraints.txt \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app

# The code stays root-owned and read-only to the service, which writes nothing to the image's disk:
# it runs on DATABASE_URL and REDIS_URL (wsgi refuses the embedded SQLite default under gunicorn).
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

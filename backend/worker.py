"""Entry point for ``dramatiq backend.worker``: the app, its broker and actors, from the environment."""
import os
import tempfile

import dramatiq

from .config import Config
from .logs import configure_logging

config = Config.from_env()
configure_logging(config.log_format, config.log_level, take_over=True)
if config.worker_metrics:
    # Dramatiq's exporter runs in a process forked from dramatiq's main process, which never runs
    # this module: it reads the directory from Dramatiq's own variable (or its default). The
    # service's series must land in that same directory, so prometheus-client is pointed at it
    # here, before create_app first imports it.
    metrics_dir = os.environ.get("dramatiq_prom_db") or os.path.join(tempfile.gettempdir(), "dramatiq-prometheus")
    os.makedirs(metrics_dir, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

from . import create_app  # noqa: E402 - after the metrics directory is set

app = create_app(config)
if config.embedded:
    raise SystemExit("dramatiq backend.worker needs REDIS_URL; the embedded mode runs its worker in `make run`.")
broker = app.extensions["job_queue"].broker
if config.worker_metrics:
    from dramatiq.middleware.prometheus import Prometheus

    broker.add_middleware(Prometheus())
dramatiq.set_broker(broker)

"""Entry point for ``dramatiq backend.worker``: the app, its broker and actors, from the environment."""
import logging

import dramatiq

from . import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = create_app()
if app.extensions["config"].embedded:
    raise SystemExit("dramatiq backend.worker needs REDIS_URL; the embedded mode runs its worker in `make run`.")
broker = app.extensions["job_queue"].broker
dramatiq.set_broker(broker)

"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""
import sys

from backend import create_app
from backend.config import Config, ConfigError
from backend.logs import configure_logging

config = Config.from_env()
if config.embedded and "gunicorn.arbiter" in sys.modules:
    # Embedded, the broker is in memory and only `flask serve` starts a worker on it: under gunicorn
    # every job would be accepted and never run. Refuse to boot (gunicorn then stops, exit code 3).
    raise ConfigError(
        "REDIS_URL is not set. gunicorn is the production server: its jobs run in Dramatiq worker "
        "processes that need Redis as their broker, so without it jobs would be accepted and never run. "
        "Set REDIS_URL (and run `dramatiq backend.worker`), or use `make run` / `flask --app wsgi serve` "
        "for the embedded mode."
    )
app = create_app(config)
configure_logging(app.extensions["config"].log_format, app.extensions["config"].log_level)

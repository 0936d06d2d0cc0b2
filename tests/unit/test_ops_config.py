"""The operations settings are read and checked like every other setting (backend/config.py)."""
from __future__ import annotations

import pytest

from backend.config import Config, ConfigError


def test_the_operations_defaults_are_text_logs_one_second_slow_queries_and_thirty_days():
    config = Config.from_env({})
    assert (config.log_format, config.log_level, config.slow_query_s) == ("text", "INFO", 1.0)
    assert (config.job_retention_days, config.retention_batch_size, config.worker_metrics) == (30.0, 500, False)


def test_operations_settings_are_read_from_the_environment():
    config = Config.from_env({"LOG_FORMAT": "JSON", "LOG_LEVEL": "warning", "SLOW_QUERY_S": "0.25",
                              "JOB_RETENTION_DAYS": "7", "RETENTION_BATCH_SIZE": "100", "WORKER_METRICS": "1"})
    assert (config.log_format, config.log_level, config.slow_query_s) == ("json", "WARNING", 0.25)
    assert (config.job_retention_days, config.retention_batch_size, config.worker_metrics) == (7.0, 100, True)


@pytest.mark.parametrize(("name", "value"), [
    ("LOG_FORMAT", "xml"), ("LOG_LEVEL", "LOUD"), ("SLOW_QUERY_S", "0"), ("SLOW_QUERY_S", "soon"),
    ("JOB_RETENTION_DAYS", "0"), ("RETENTION_BATCH_SIZE", "0"),
])
def test_a_bad_operations_setting_is_refused_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})

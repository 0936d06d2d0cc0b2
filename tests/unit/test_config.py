"""Configuration comes only from the environment, and bad values are named."""
import pytest

from backend.config import Config, ConfigError


def test_defaults_are_the_embedded_mode():
    config = Config.from_env({})

    assert config.embedded
    assert config.database_url.startswith("sqlite:///")
    assert config.enabled_agents == ("canvas", "echo")
    assert config.max_body_bytes == 65536


def test_the_environment_selects_production_services():
    config = Config.from_env(
        {"DATABASE_URL": "postgresql+psycopg://db/jobs", "REDIS_URL": "redis://r:6379/0",
         "ENABLED_AGENTS": " echo ", "JOB_MAX_ATTEMPTS": "5", "MAX_BODY_BYTES": "2048"}
    )

    assert not config.embedded
    assert config.enabled_agents == ("echo",)
    assert (config.max_attempts, config.max_body_bytes) == (5, 2048)


@pytest.mark.parametrize("name, value", [("JOB_MAX_ATTEMPTS", "zero"), ("JOB_MAX_ATTEMPTS", "0"), ("MAX_BODY_BYTES", "10")])
def test_a_bad_value_is_an_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_an_unknown_agent_name_is_a_configuration_error():
    from backend.agents import build_agents

    with pytest.raises(ConfigError, match="nope"):
        build_agents(Config(enabled_agents=("echo", "nope")))


def test_overrides_of_unknown_fields_are_refused():
    with pytest.raises(ConfigError):
        Config().with_overrides(colour="blue")


@pytest.mark.parametrize("name", ["RATE_LIMIT_POLL", "RATE_LIMIT_SUBMIT", "RATE_LIMIT_DEFAULT"])
def test_an_unreadable_rate_limit_stops_the_start(name):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: "lots please"})


@pytest.mark.parametrize("env, kind", [
    ({"REDIS_URL": "redis://r:6379/0"}, "redis"),
    ({"REDIS_URL": "redis://r:6379/0", "BROKER_URL": "redis://other:6379/1"}, "redis"),
    ({"REDIS_URL": "redis://r:6379/0", "BROKER_URL": "amqp://u:p@rabbit:5672/%2F"}, "rabbitmq"),
    ({}, "embedded"),
])
def test_broker_url_selects_the_broker_and_redis_is_the_default(env, kind):
    assert Config.from_env(env).broker_kind == kind


@pytest.mark.parametrize("name, value", [("BROKER_URL", "kafka://k:9092"), ("WORKER_SHUTDOWN_GRACE_S", "-1"),
                                         ("WORKER_SHUTDOWN_GRACE_S", "soon")])
def test_a_bad_broker_or_shutdown_setting_is_an_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({"REDIS_URL": "redis://r:6379/0", name: value})

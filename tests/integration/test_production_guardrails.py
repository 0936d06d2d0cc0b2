"""Production guardrails: gunicorn needs Redis, the dev key stays on this machine, the pool is sized."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

from backend import create_app
from backend.config import Config
from backend.extensions import db

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [["gunicorn", "wsgi:app"], ["gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"]],
    ids=["plain", "docker-cmd"],
)
def test_gunicorn_without_redis_refuses_to_start_and_says_why(tmp_path, command):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "GUNICORN_CMD_ARGS", "DEV_API_KEY")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", BIND=f"127.0.0.1:{port}", WEB_WORKERS="1")
    if command == ["gunicorn", "wsgi:app"]:
        command = [*command, "--bind", f"127.0.0.1:{port}"]

    server = subprocess.run(
        [sys.executable, "-m", *command], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert server.returncode != 0
    assert "REDIS_URL is not set" in server.stderr
    assert "make run" in server.stderr


class TestDemoConfig:
    @pytest.fixture
    def client(self, tmp_path):
        app = create_app(Config(database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}", redis_url=None,
                                dev_api_key="dev-secret"))
        return app.test_client()

    @pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1"])
    @pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8080", "[::1]:5000", "LOCALHOST"])
    def test_a_loopback_client_naming_a_loopback_host_gets_the_dev_key(self, client, address, host):
        answer = client.get("/demo-config.json", headers={"Host": host}, environ_base={"REMOTE_ADDR": address})

        assert answer.status_code == 200
        assert answer.get_json() == {"api_key": "dev-secret", "embedded": True}

    @pytest.mark.parametrize(
        "address, host",
        [
            ("192.168.1.20", "localhost:5000"),  # another machine on the network
            ("127.0.0.1", "attacker.example:5000"),  # DNS rebinding: a page on a name that resolves here
            ("127.0.0.1", "localhost.attacker.example"),
            ("127.0.0.1", "127.0.0.1.nip.io"),
            ("127.0.0.1", "[::1"),
            ("10.0.0.5", "10.0.0.5:5000"),
        ],
    )
    def test_anyone_else_gets_404_problem_json_without_the_key(self, client, address, host):
        answer = client.get("/demo-config.json", headers={"Host": host}, environ_base={"REMOTE_ADDR": address})

        assert answer.status_code == 404
        assert answer.content_type == "application/problem+json"
        assert b"dev-secret" not in answer.data


@pytest.mark.integration
def test_the_database_pool_is_sized_from_the_configuration(postgres_url):
    app = create_app(Config(database_url=postgres_url, redis_url=None, db_pool_size=3, db_max_overflow=2))

    with app.app_context():
        pool = db.engine.pool
        size, overflow = pool.size(), pool._max_overflow
        db.engine.dispose()

    assert (size, overflow) == (3, 2)


def test_the_pool_settings_come_from_the_environment():
    config = Config.from_env({"DB_POOL_SIZE": "7", "DB_MAX_OVERFLOW": "0"})

    assert (config.db_pool_size, config.db_max_overflow) == (7, 0)
    assert (Config().db_pool_size, Config().db_max_overflow) == (10, 0)

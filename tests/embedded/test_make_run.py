"""`make run` as a newcomer meets it: `flask serve` on a port, its stable development key, keys made beside it.

Each test runs the real command line in a subprocess on a throwaway SQLite file and key file.
"""
from __future__ import annotations

import json
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
STARTUP_TIMEOUT_S = 30.0


@pytest.fixture
def run_env(tmp_path) -> dict[str, str]:
    """The environment `make run` gives `flask serve`, on a fresh database and key file."""
    env = {name: value for name, value in os.environ.items() if name not in ("DEV_API_KEY", "DEV_API_KEY_FILE")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.sqlite3'}",
        REDIS_URL="",
        DEV_API_KEY_FILE=str(tmp_path / "instance" / "dev-api-key"),
        CANVAS_STAGE_DELAY_MS="20",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run([*FLASK, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    return env


class Server:
    """`flask serve` in a subprocess, with its output read line by line as it comes."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [*FLASK, "serve", "--port", str(port)], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line_starting(self, prefix: str) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"flask serve ended before printing {prefix!r}:\n" + "\n".join(self.output))
            self.output.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting with {prefix!r} in {STARTUP_TIMEOUT_S} s:\n" + "\n".join(self.output))

    def all_output(self) -> str:
        """Everything the process prints, once it has ended."""
        self.process.wait(timeout=STARTUP_TIMEOUT_S)
        while (line := self.lines.get(timeout=STARTUP_TIMEOUT_S)) is not None:
            self.output.append(line)
        return "\n".join(self.output)

    def key(self) -> str:
        return self.line_starting("Development API key").rsplit(": ", 1)[1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def serve(run_env):
    started: list[Server] = []

    def start(port: int | None = None, env: dict[str, str] | None = None) -> Server:
        server = Server(env or run_env, port or free_port())
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _get(server: Server, path: str, key: str) -> int:
    request = urllib.request.Request(server.base + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_url_and_key_are_printed_once_the_port_answers(serve):
    server = serve()

    url_line = server.line_starting("Open http://")
    key = server.key()

    # No retry: by the time the lines are out, the port is bound and the key works.
    assert url_line.startswith(f"Open {server.base}/")
    assert _get(server, "/api/ai/jobs", key) == 200


def test_a_busy_port_gives_one_clear_error_and_a_failing_exit(serve):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = serve(port)
        output = server.all_output()

    assert server.process.returncode != 0
    assert output.strip() == (
        f"Error: port {port} on 127.0.0.1 is already in use, perhaps by another `make run`. "
        f"Stop that server, or choose another port: make run PORT={port + 1}"
    )


def test_the_development_key_is_made_once_kept_private_and_reused_after_a_restart(serve, run_env):
    first = serve()
    key = first.key()
    assert _get(first, "/api/ai/jobs", key) == 200
    first.stop()

    again = serve()

    assert again.key() == key
    assert _get(again, "/api/ai/jobs", key) == 200
    key_file = Path(run_env["DEV_API_KEY_FILE"])
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_dev_api_key_overrides_the_stored_key(serve, run_env):
    server = serve(env=dict(run_env, DEV_API_KEY="chosen-dev-key"))

    assert server.key() == "chosen-dev-key"
    assert not Path(run_env["DEV_API_KEY_FILE"]).exists()


def test_keys_made_with_the_cli_work_at_once_while_make_run_serves_and_writes(serve, run_env):
    server = serve()
    dev_key = server.key()
    # A job that writes progress to the same SQLite file while the CLI writes its key.
    body = json.dumps({"agent": "echo", "input": {"steps": 20, "delay_ms": 50}}).encode()
    request = urllib.request.Request(
        f"{server.base}/api/ai/jobs", data=body, method="POST",
        headers={"Authorization": f"Bearer {dev_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202

    created = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "keys", "create", "--owner", "newcomer"],
        cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=60, check=False,
    )

    assert created.returncode == 0, created.stderr
    new_key = created.stdout.strip().splitlines()[-1]
    assert new_key.startswith("jobs_")
    assert _get(server, "/api/ai/jobs", new_key) == 200


def test_a_key_file_that_cannot_be_written_gives_one_clear_error(serve, run_env, tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    server = serve(env=dict(run_env, DEV_API_KEY_FILE=str(not_a_folder / "dev-api-key")))

    output = server.all_output()

    assert server.process.returncode != 0
    assert output.startswith(f"Error: cannot keep the development key in {not_a_folder / 'dev-api-key'}: ")
    assert "set DEV_API_KEY" in output and "Traceback" not in output and "Development API key" not in output

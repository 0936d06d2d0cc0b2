"""Under the production gunicorn settings, hundreds of parked long polls leave ordinary polls answered.

The server runs with ``backend/gunicorn_conf.py``'s own defaults (no WEB_THREADS, no worker class
from the environment), so this fails if the production process model goes back to capping parked
polls at a few threads per process: with the old 2 x 64 threads, at most 128 polls parked, the rest
and every ordinary poll queued behind them, and even /metrics went unanswered.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import make_key
from tests.helpers import free_port, http_call

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Far more than the 128 the old model could park on two processes, few enough for a short test.
PARKED_POLLS = 400
WAIT_S = 30
# Generous: an answer is what counts, and the machine running the suite may be busy.
ANSWER_TIMEOUT_S = 10
UNLIMITED = "1000000/minute"


def _call(url, *, timeout=ANSWER_TIMEOUT_S, **request):
    return http_call(url, timeout=timeout, **request)


@pytest.fixture
def production_server(app, config):
    port = free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("WEB_") and name != "GUNICORN_CMD_ARGS"}
    env.update(DATABASE_URL=config.database_url, REDIS_URL=config.redis_url, BIND=f"127.0.0.1:{port}",
               # One key parks them all and polls meanwhile; the caps have their own tests.
               LONG_POLLS_PER_KEY=str(PARKED_POLLS), RATE_LIMIT_POLL=UNLIMITED, RATE_LIMIT_POLL_304=UNLIMITED,
               RATE_LIMIT_DEFAULT=UNLIMITED)
    env.pop("PORT", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, "gunicorn exited during start-up"
        try:
            if _call(f"{base}/health/live", timeout=1)[0] == 200:
                break
        except OSError:
            assert time.monotonic() < deadline, "gunicorn did not answer within 30 s"
            time.sleep(0.1)
    yield base
    server.terminate()
    server.wait(timeout=40)


class ParkedPolls:
    """Many long polls on one job, one connection each, from an event loop in a thread of its own."""

    def __init__(self, base: str, path: str, headers: dict[str, str], count: int) -> None:
        host_port = base.removeprefix("http://")
        self.host, port = host_port.split(":")
        self.port = int(port)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\n{lines}Connection: close\r\n\r\n".encode()
        self.count = count
        self.answers: list[tuple[int, dict]] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._all()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    async def _all(self) -> None:
        self.answers = await asyncio.wait_for(
            asyncio.gather(*(self._one() for _ in range(self.count))), timeout=WAIT_S + 20)

    async def _one(self) -> tuple[int, dict]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self.request)
            await writer.drain()
            answer = await reader.read()  # Connection: close, so the answer ends with the connection
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body) if body else {}


def _parked_at_server(base: str) -> float:
    """The server's own count of parked long polls, summed over its processes (/metrics)."""
    try:
        text = _call(f"{base}/metrics", timeout=2)[2].decode()
    except OSError:  # a server with every thread held by a parked poll answers nothing
        return 0.0
    values = [line.split()[-1] for line in text.splitlines() if line.startswith("job_long_polls_parked ")]
    return float(values[0]) if values else 0.0


def test_hundreds_of_parked_long_polls_leave_ordinary_polls_answered_and_all_wake_on_the_change(
        app, production_server):
    base = production_server
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}", "Content-Type": "application/json"}
    status, _, body = _call(f"{base}/api/ai/jobs", method="POST", headers=auth, body={"agent": "echo", "input": {}})
    assert status == 202
    job_id = json.loads(body)["id"]
    status, headers, _ = _call(f"{base}/api/ai/jobs/{job_id}/status", headers=auth)
    assert status == 200

    parked = ParkedPolls(base, f"/api/ai/jobs/{job_id}/status?wait={WAIT_S}",
                         {"Authorization": auth["Authorization"], "If-None-Match": headers["ETag"]}, PARKED_POLLS)
    parked.start()
    deadline = time.monotonic() + 20
    while (count := _parked_at_server(base)) < PARKED_POLLS:
        assert time.monotonic() < deadline, f"only {count:.0f} of {PARKED_POLLS} long polls parked"
        time.sleep(0.2)

    # Ordinary requests while every long poll is parked: each is answered (none waits for a thread).
    ordinary = [_call(f"{base}/api/ai/jobs/{job_id}/status", headers=auth)[0] for _ in range(20)]
    ordinary += [_call(f"{base}/api/ai/jobs?limit=5", headers=auth)[0] for _ in range(5)]
    assert ordinary == [200] * 25
    assert _parked_at_server(base) == PARKED_POLLS  # still parked: nothing woke them but a change will

    assert _call(f"{base}/api/ai/jobs/{job_id}/cancel", method="POST", headers=auth)[0] == 202
    parked.join(timeout_s=WAIT_S + 25)
    # Every parked poll answers with the change, not with its wait running out (that would be a 304).
    assert len(parked.answers) == PARKED_POLLS
    assert {status for status, _ in parked.answers} == {200}
    assert {answer["status"] for _, answer in parked.answers} == {"cancelled"}

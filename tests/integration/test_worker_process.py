"""`dramatiq backend.worker`, the production worker command, against real Redis and PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_dramatiq_command_runs_submitted_jobs(config, client, auth):
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url,
               JOB_MAX_ATTEMPTS=str(config.max_attempts))
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "backend.worker", "--processes", "1", "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        jobs = [submit(client, auth, "canvas", {"prompt": p}).get_json() for p in
                ("a 2x3 grid of blue squares labelled A to F", "a title that says Quarterly Plan above two columns")]
        finals = [wait_for_status(client, job["id"], auth, timeout_s=30) for job in jobs]
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=20)

    assert [f["status"] for f in finals] == ["succeeded", "succeeded"], output[-2000:]


def test_the_worker_command_refuses_to_start_without_redis(tmp_path):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", REDIS_URL="")
    result = subprocess.run([sys.executable, "-c", "import backend.worker"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "needs REDIS_URL" in result.stderr

"""The README's quick start, pasted as it is into bash against `flask serve` started as `make run` starts it."""
from __future__ import annotations

import json
import os
import re
import subprocess

from tests.embedded.test_make_run import FLASK, ROOT, Server
from tests.helpers import free_port

MARKER = "<!-- tests/embedded/test_readme_quick_start.py runs this block against `flask serve`. -->"


def quick_start_script() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after_marker = readme.split(MARKER, 1)[1]
    match = re.match(r"\s*```sh\n(.*?)\n```", after_marker, re.DOTALL)
    assert match, "the quick start's sh block follows the marker"
    return match.group(1)


def test_the_readme_quick_start_shows_running_a_304_a_long_poll_and_the_result(tmp_path):
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name != "DEV_API_KEY"}
    # What `make run` sets, and a key file in this test's own instance/ folder.
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'instance' / 'jobs.sqlite3'}", REDIS_URL="",
        CANVAS_STAGE_DELAY_MS="400", DEV_API_KEY_FILE=str(tmp_path / "instance" / "dev-api-key"),
        PYTHONUNBUFFERED="1",
    )
    subprocess.run([*FLASK, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    server = Server(env, port)
    try:
        server.key()
        # The block as written, on this test's port; run where instance/ is, as from the repository.
        script = quick_start_script().replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        shell_env = {name: value for name, value in os.environ.items() if name != "DEV_API_KEY"}
        run = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=shell_env,
                             capture_output=True, text=True, timeout=60, check=False)
    finally:
        server.stop()

    output = run.stdout
    assert run.returncode == 0, run.stderr
    job_id = output.splitlines()[0]
    assert re.fullmatch(r"job_[0-9A-Z]{26}", job_id), output
    first_status, conditional = output.split("HTTP/1.1 ")[1:3]
    assert first_status.startswith("200 OK") and '"status":"running"' in first_status
    etag = re.search(r"^ETag: (.+?)\r?$", first_status, re.MULTILINE).group(1)
    assert conditional.startswith("304 NOT MODIFIED"), conditional
    assert f"ETag: {etag}" in conditional
    long_poll = re.search(r"^200 after ([0-9.]+) s$", output, re.MULTILINE)
    assert long_poll and float(long_poll.group(1)) < 10, "the long poll answered at the next step, not at its wait"
    final = json.loads(output.rstrip().splitlines()[-1])
    assert final["id"] == job_id and final["status"] == "succeeded"
    assert final["result"] == {"payload": "hello", "steps": 4}

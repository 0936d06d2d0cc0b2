"""`make bench` keeps running: its tiny configuration goes through every phase and writes its outputs.

The benchmark measures, it does not judge, so no figure is asserted here beyond being there.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.conftest import IN_CI, PG_ADMIN_DSN, PG_URL_TEMPLATE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_every_phase_in_its_tiny_configuration(redis_url, tmp_path):
    if shutil.which("wrk") is None:
        message = "wrk is missing: bash bench/ensure-wrk.sh installs Debian's package"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    env = dict(os.environ, BENCH_REDIS_URL=redis_url, BENCH_PG_ADMIN_DSN=PG_ADMIN_DSN,
               BENCH_PG_URL_TEMPLATE=PG_URL_TEMPLATE)
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--tiny", "--results-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "tiny.json").read_text())
    figures = {row["figure"]: row for row in results["goals"]}
    for row in figures.values():
        assert row["figure"] in done.stdout  # one printed table holds every figure
    missing = [name for name, row in figures.items() if row["value"] is None]
    assert not missing, f"figures without a value: {missing}"
    assert results["sweep"]["poll_200"]["32"]["statuses"] == {"200": results["sweep"]["poll_200"]["32"]["requests"]}
    assert set(results["sweep"]["poll_304"]["32"]["statuses"]) == {"304"}
    assert results["end_to_end"]["succeeded"] == results["end_to_end"]["jobs"] > 0
    assert results["long_polls"]["woke"] == results["long_polls"]["parked"]
    assert results["long_polls"]["paced"]["woke"] == results["long_polls"]["parked"]

    chart = ElementTree.parse(tmp_path / "tiny.svg").getroot()
    lines = chart.findall(".//{http://www.w3.org/2000/svg}circle")
    assert len(lines) == 2 * 3  # two panels, three request kinds, one concurrency level

"""What grouping saves PostgreSQL: the three writes of a job, one job per statement against many.

The grouped floor's statements (``bench/grouped_statements.py``: a row and its accepted event; a
claim and a success, each with its history event), on the migrated tables, sent by psycopg in
autocommit from one connection: first one job per statement, then groups of 16 and of 64 jobs per
statement (``unnest`` of one array per column, as ``backend/jobs/transitions.py`` groups progress
writes). Prints the PostgreSQL backend's
CPU and this client's CPU per job, twice over to show the spread.

    flock /tmp/bench.lock .venv/bin/python bench/grouped_sql.py    # about 20 s
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from ulid import ULID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import cpu_s  # noqa: E402
from bench.grouped_statements import CLAIM, SUBMIT, SUCCEED  # noqa: E402
from bench.run import _migrate, throwaway_database  # noqa: E402

JOBS = 4000
GROUPS = (1, 16, 64)

def measure(database_url: str, group: int) -> dict:
    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        ids = ["job_" + str(ULID()) for _ in range(JOBS)]
        groups = [ids[i:i + group] for i in range(0, JOBS, group)]
        backend_before, client_before = cpu_s([backend])[backend], time.process_time()
        for chunk in groups:
            conn.execute(SUBMIT, {"now": datetime.now(timezone.utc), "ids": chunk, "agents": ["echo"] * len(chunk),
                                  "inputs": [json.dumps({"steps": 0})] * len(chunk), "hashes": ["hash"] * len(chunk),
                                  "message_ids": ["message"] * len(chunk)})
        for chunk in groups:
            conn.execute(CLAIM, {"now": datetime.now(timezone.utc), "ids": chunk}).fetchall()
        for chunk in groups:
            conn.execute(SUCCEED, {"now": datetime.now(timezone.utc), "ids": chunk, "attempts": [1] * len(chunk),
                                   "results": [json.dumps({"steps": 0})] * len(chunk)}).fetchall()
        backend_s = cpu_s([backend])[backend] - backend_before
        client_s = time.process_time() - client_before
    return {"jobs_per_statement": group, "postgresql_ms_per_job": round(backend_s * 1000 / JOBS, 3),
            "client_ms_per_job": round(client_s * 1000 / JOBS, 3)}


def main() -> int:
    with throwaway_database("grouped") as database_url:
        _migrate(database_url)
        for _ in range(2):
            for group in GROUPS:
                figures = measure(database_url, group)
                print(f"{group:3} jobs per statement: PostgreSQL {figures['postgresql_ms_per_job']:.3f} ms per job "
                      f"(three writes), client {figures['client_ms_per_job']:.3f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Load generators: wrk (Debian's package) for rates and latencies, a small threaded client for a fixed
number of requests. Each reports the CPU it used itself, so a run shows it was not the bottleneck."""
from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
WRK_THREADS = 2


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is missing: run `bash bench/ensure-wrk.sh` (Debian's wrk package)")
    return path


@dataclass
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    errors: dict[str, int]
    generator_cpu_share: float  # wrk's CPU seconds per wall second (1.0 = one core)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def share(self, status: str) -> float:
        return self.statuses.get(status, 0) / self.requests if self.requests else 0.0

    def as_dict(self) -> dict:
        return {
            "connections": self.connections, "requests": self.requests, "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1), "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
            "max_ms": self.max_ms, "statuses": self.statuses, "errors": self.errors,
            "generator_cpu_share": round(self.generator_cpu_share, 3),
        }


def run_wrk(url: str, *, connections: int, duration_s: float, method: str = "GET", body: str | None = None,
            auth: str | None = None, track_etag: bool = False, etag: str | None = None,
            timeout_s: float = 10.0) -> WrkResult:
    """One wrk run; latencies are wrk's own (per request, microsecond resolution)."""
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY=body or "", BENCH_AUTH=auth or "",
               BENCH_CONTENT_TYPE="application/json" if body else "",
               BENCH_TRACK_ETAG="1" if track_etag else "0", BENCH_ETAG=etag or "")
    if not body:
        env.pop("BENCH_BODY")
    argv = [wrk_path(), f"-t{min(WRK_THREADS, connections)}", f"-c{connections}", f"-d{duration_s:g}s",
            f"--timeout={timeout_s:g}s", "-s", str(WRK_SCRIPT), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    wall_s = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    latency = data["latency_us"]
    return WrkResult(
        connections=connections,
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000, p90_ms=latency["p90"] / 1000, p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses=data["statuses"],
        errors=data["errors"],
        generator_cpu_share=cpu_s / wall_s,
    )


@dataclass
class ClientRun:
    """What a fixed batch of requests from the threaded client did."""

    answers: list[tuple[int, dict]] = field(default_factory=list)
    wall_s: float = 0.0
    generator_cpu_share: float = 0.0


def send_many(base_url: str, requests: list[tuple[str, str, dict | None]], *, headers: dict[str, str],
              clients: int) -> ClientRun:
    """Send ``(method, path, json_body)`` requests from ``clients`` threads on keep-alive connections."""
    split = urlsplit(base_url)
    local = threading.local()
    run = ClientRun()
    lock = threading.Lock()

    def connection() -> http.client.HTTPConnection:
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        return local.connection

    def one(item: tuple[str, str, dict | None]) -> None:
        method, path, body = item
        payload = json.dumps(body).encode() if body is not None else None
        send_headers = dict(headers, **({"Content-Type": "application/json"} if payload else {}))
        for attempt in range(2):
            try:
                conn = connection()
                conn.request(method, path, body=payload, headers=send_headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (OSError, http.client.HTTPException):
                local.connection = None  # the server closed a kept-alive connection: open another
                if attempt:
                    raise
        parsed = json.loads(raw) if raw else {}
        with lock:
            run.answers.append((response.status, parsed))

    cpu_before = time.process_time()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, requests))
    run.wall_s = time.monotonic() - started
    run.generator_cpu_share = (time.process_time() - cpu_before) / run.wall_s if run.wall_s else 0.0
    return run

"""Fault-injection harness: a whole service of its own, on free loopback ports, to break at will.

``Cluster`` starts, in a temporary directory:

- PostgreSQL (``initdb`` + ``postgres`` as the ``postgres`` OS user, trust auth, fsync off) — it can
  be stopped (``pg_ctl stop -m fast``), SIGKILLed and started again on the same port and data;
- Redis (``redis-server`` without persistence) — SIGKILLed and restarted empty on the same port, the
  way a crashed broker comes back;
- with ``broker="rabbitmq"``, a virtual host of its own on the machine's RabbitMQ (tests/services.sh
  starts it) as the job broker; ``rabbit.restart_broker()`` restarts the RabbitMQ application;
- gunicorn (``-c python:backend.gunicorn_conf wsgi:app``, 2 workers) and N ``dramatiq
  backend.worker`` commands, each its own process group, kept alive by a supervisor thread that
  restarts a dead worker command (after a short back-off) unless told not to.

What "kill a worker" means here: every worker *slot* is one ``python -m dramatiq backend.worker -p 1
-t T`` command — a dramatiq main process and the one worker process it forks, in a process group of
their own. ``kill_worker(slot, target="group")`` SIGKILLs the whole group at once (a container or
machine dying); ``target="child"`` SIGKILLs only the forked worker process that runs the actors (what
the echo agent's ``crash`` knob does to itself), after which the dramatiq main notices within ~1 s,
stops and exits. Either way nothing in the killed slot gets to clean up; the supervisor then starts a
fresh command in the slot. ``restart_gracefully(slot)`` is the opposite: SIGTERM to the dramatiq main
process alone, as a rolling deploy sends it, and the slot's next command waited for.

Everything is torn down by ``Cluster.close()`` (process groups SIGKILLed, directories removed) even
when a test fails half-way. Every wait in here is bounded in both time and iterations.
"""
from __future__ import annotations

import ast
import atexit
import glob
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
IN_CI = os.environ.get("CI") == "true"
HOST = "127.0.0.1"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

# Variables of the service (and of libraries it uses) that must not leak in from the caller's shell.
_SCRUBBED_ENV = (
    "DATABASE_URL", "REDIS_URL", "BROKER_URL", "WORKER_SHUTDOWN_GRACE_S", "ENABLED_AGENTS", "MAX_BODY_BYTES", "DEV_API_KEY", "DEV_OWNER",
    "CANVAS_STAGE_DELAY_MS", "JOB_MAX_ATTEMPTS", "JOB_RETRY_BACKOFF_BASE_MS", "JOB_RETRY_BACKOFF_MAX_MS",
    "BROKER_MAX_RETRIES", "EMBEDDED_WORKER_THREADS", "CORS_ALLOWED_ORIGINS", "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_TIMEOUT_S", "REAPER_INTERVAL_S", "QUEUED_REQUEUE_AFTER_S", "ECHO_ALLOW_CRASH",
    "AGENT_TIME_LIMITS_S", "RATE_LIMIT_POLL", "RATE_LIMIT_SUBMIT", "RATE_LIMIT_DEFAULT",
    "RATE_LIMIT_POLL_304", "RATE_LIMIT_AUTH_FAILURES", "LONG_POLLS_PER_KEY", "DB_POOL_SIZE", "DB_MAX_OVERFLOW",
    "BIND", "PORT", "WEB_WORKERS", "WEB_THREADS", "WEB_TIMEOUT_S", "FLASK_APP", "FLASK_DEBUG",
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
)


# The per-key rate limits would turn a 1,000-job burst into 429s: these tests measure recovery, not
# throttling, so every budget is raised (the limiter still runs, on the cluster's Redis).
DEFAULT_SETTINGS = {
    "RATE_LIMIT_POLL": "1000000/minute",
    "RATE_LIMIT_SUBMIT": "1000000/minute",
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_POLL_304": "1000000/minute",
    "LONG_POLLS_PER_KEY": "1000",
}


class ChaosTimeout(AssertionError):
    """A bounded wait ran out."""


# ---- small utilities ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until(
    check: Callable[[], Any],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    what: str,
    ignore: tuple[type[BaseException], ...] = (),
):
    """Call ``check`` until it returns something truthy; at most ``timeout_s`` and a bounded count."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    for _ in range(int(timeout_s / max(interval_s, 0.01)) + 2):
        try:
            value = check()
        except ignore as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    raise ChaosTimeout(f"{what}: not within {timeout_s:.0f} s (last: {last!r})"[:2000])


def parse_time(value: str) -> float:
    """An ISO timestamp from the API as epoch seconds (naive values are UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        from datetime import timezone

        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _find_binary(name: str) -> str | None:
    on_path = shutil.which(name)
    if on_path:
        return on_path
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_binaries() -> dict[str, str]:
    """Paths of the server binaries; skip the test without them (fail under CI=true)."""
    found = {name: _find_binary(name) for name in ("initdb", "postgres", "pg_ctl", "redis-server")}
    if os.geteuid() == 0:
        found["runuser"] = shutil.which("runuser")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            found["postgres user"] = None
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        message = f"fault-injection tests need {', '.join(missing)}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found  # type: ignore[return-value]


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields_after_name = stat.rsplit(")", 1)[-1].split()
        if len(fields_after_name) > 2 and fields_after_name[0] != "Z":
            parents.setdefault(int(fields_after_name[1]), []).append(int(entry))
    found, frontier = [], [pid]
    for _ in range(10):  # bounded depth
        frontier = [child for parent in frontier for child in parents.get(parent, [])]
        if not frontier:
            break
        found.extend(frontier)
    return found


class Proc:
    """A subprocess that leads its own process group, its output appended to a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path,
                 user: str | None = None) -> None:
        self.name = name
        self.log_path = log_path
        if user is not None and os.geteuid() == 0:
            argv = ["runuser", "-u", user, "--", *argv]
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15) -> None:
        if self.alive():
            self.signal_group(sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # whatever is left of the group

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# ---- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class Api:
    """Plain stdlib HTTP against the cluster's gunicorn, on 127.0.0.1 only (no proxies)."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.port = port
        self.key = key

    def request(self, method: str, path: str, body: Any = None, *, timeout_s: float = 15,
                headers: dict[str, str] | None = None) -> Response:
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.key:
            all_headers["Authorization"] = f"Bearer {self.key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout_s)
        try:
            connection.request(method, path, body=data, headers=all_headers)
            answer = connection.getresponse()
            payload = answer.read()
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, payload)
        finally:
            connection.close()

    # the API, one call each
    def submit(self, job_input: dict, agent: str = "echo") -> Response:
        return self.request("POST", "/api/ai/jobs", {"agent": agent, "input": job_input})

    def status(self, job_id: str) -> Response:
        return self.request("GET", f"/api/ai/jobs/{job_id}/status")

    def job(self, job_id: str) -> dict:
        response = self.request("GET", f"/api/ai/jobs/{job_id}")
        assert response.status == 200, (response.status, response.text[:500])
        return response.json()

    def ready(self) -> Response:
        return self.request("GET", "/health/ready", timeout_s=10)

    def events(self, job_id: str) -> list[dict]:
        """A job's whole history (paged by ``after``; bounded)."""
        events: list[dict] = []
        after = 0
        for _ in range(100):
            response = self.request("GET", f"/api/ai/jobs/{job_id}/events?after={after}")
            assert response.status == 200, (response.status, response.text[:500])
            page = response.json()["events"]
            events.extend(page)
            if len(page) < 500:
                return events
            after = page[-1]["seq"]
        raise AssertionError(f"job {job_id} has implausibly many events")

    def list_jobs(self, status: str | None = None, *, max_pages: int = 200) -> list[dict]:
        """Every job of the key's owner (optionally of one status), following cursors."""
        jobs: list[dict] = []
        cursor = None
        for _ in range(max_pages):
            query = "limit=100" + (f"&status={status}" if status else "")
            if cursor:
                query += f"&cursor={cursor}"
            response = self.request("GET", f"/api/ai/jobs?{query}")
            assert response.status == 200, (response.status, response.text[:500])
            page = response.json()
            jobs.extend(page["jobs"])
            cursor = page.get("next_cursor")
            if not cursor:
                return jobs
        raise AssertionError(f"more than {max_pages} pages of jobs")

    def wait_terminal(self, job_id: str, *, timeout_s: float, interval_s: float = 0.25) -> dict:
        def check():
            response = self.status(job_id)
            if response.status == 200 and response.json()["status"] in TERMINAL:
                return response.json()
            return None

        return wait_until(check, timeout_s=timeout_s, interval_s=interval_s,
                          what=f"job {job_id} terminal", ignore=(OSError,))

    def wait_all_terminal(self, job_ids: Iterable[str], *, timeout_s: float, interval_s: float = 1.0) -> dict[str, dict]:
        """Wait until every job is terminal (one listing per round); return the jobs by id."""
        wanted = set(job_ids)

        def check():
            jobs = {job["id"]: job for job in self.list_jobs() if job["id"] in wanted}
            if len(jobs) == len(wanted) and all(job["status"] in TERMINAL for job in jobs.values()):
                return jobs
            return None

        return wait_until(check, timeout_s=timeout_s, interval_s=interval_s,
                          what=f"{len(wanted)} jobs terminal", ignore=(OSError,))


# ---- the servers --------------------------------------------------------------------------------


class Postgres:
    """A PostgreSQL of our own: data and socket in ``root``, TCP on 127.0.0.1:``port``."""

    def __init__(self, binaries: dict[str, str], root: Path, logs: Path, env: dict[str, str]) -> None:
        self.binaries = binaries
        self.root = root
        self.data = root / "data"
        self.logs = logs
        self.env = env
        self.port = free_port()
        self.proc: Proc | None = None
        self.starts = 0
        self.user = "postgres" if os.geteuid() == 0 else None

    def _as_owner(self, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, env=self.env, cwd="/", capture_output=True, text=True, timeout=timeout_s)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        result = self._as_owner(
            [self.binaries["initdb"], "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            timeout_s=120,
        )
        assert result.returncode == 0, f"initdb failed:\n{result.stdout}\n{result.stderr}"

    def start(self, timeout_s: float = 30) -> None:
        assert self.proc is None or not self.proc.alive(), "PostgreSQL is already running"
        self.starts += 1
        self.proc = Proc(
            "postgres",
            [self.binaries["postgres"], "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
             "-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB"],
            env=self.env, cwd=Path("/"), log_path=self.logs / f"postgres-{self.starts}.log", user=self.user,
        )
        self.wait_accepting(timeout_s)

    def wait_accepting(self, timeout_s: float) -> None:
        import psycopg

        def check():
            assert self.proc.alive(), f"postgres exited:\n{self.proc.log_tail()}"
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                return True

        wait_until(check, timeout_s=timeout_s, interval_s=0.1, what="PostgreSQL accepting connections",
                   ignore=(psycopg.OperationalError,))

    def dsn(self, dbname: str) -> str:
        return f"host={HOST} port={self.port} user=postgres dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{dbname}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def stop_fast(self, timeout_s: float = 30) -> float:
        """``pg_ctl stop -m fast``; returns the seconds it took."""
        started = time.monotonic()
        result = self._as_owner([self.binaries["pg_ctl"], "stop", "-D", str(self.data), "-m", "fast", "-w",
                                 "-t", str(int(timeout_s))], timeout_s=timeout_s + 10)
        assert result.returncode == 0, f"pg_ctl stop failed:\n{result.stdout}\n{result.stderr}"
        if self.proc is not None:
            self.proc.popen.wait(timeout=timeout_s)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def close(self) -> None:
        if self.proc is not None and self.proc.alive():
            try:
                self._as_owner([self.binaries["pg_ctl"], "stop", "-D", str(self.data), "-m", "immediate",
                                "-w", "-t", "10"], timeout_s=20)
            except subprocess.TimeoutExpired:
                pass
            self.proc.stop(signal.SIGQUIT, timeout_s=5)


class Redis:
    """A Redis of our own without persistence: a restart comes back empty, like a lost broker."""

    def __init__(self, binaries: dict[str, str], root: Path, logs: Path, env: dict[str, str]) -> None:
        self.binary = binaries["redis-server"]
        self.root = root
        self.logs = logs
        self.env = env
        self.port = free_port()
        self.proc: Proc | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout_s: float = 20) -> None:
        assert self.proc is None or not self.proc.alive(), "Redis is already running"
        self.root.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.proc = Proc(
            "redis",
            [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root), "--protected-mode", "yes"],
            env=self.env, cwd=self.root, log_path=self.logs / f"redis-{self.starts}.log",
        )

        def check():
            assert self.proc.alive(), f"redis exited:\n{self.proc.log_tail()}"
            return self.ping()

        wait_until(check, timeout_s=timeout_s, interval_s=0.05, what="Redis answering PING")

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.signal_group(sig)
            try:
                self.proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()


class RabbitVhost:
    """A virtual host of its own on the machine's RabbitMQ (tests/services.sh starts it), so each
    cluster's queues are its own. A broker restart restarts the whole RabbitMQ application: run
    these tests one at a time (the chaos suite runs under flock /tmp/chaos.lock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ctl = shutil.which("rabbitmqctl")
        if self.ctl is None:
            message = "rabbitmqctl is missing; install RabbitMQ (Debian: apt-get install rabbitmq-server)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:5672/{self.name}"

    def _ctl(self, *args: str, timeout_s: float = 60) -> None:
        subprocess.run([self.ctl, "-q", *args], check=True, capture_output=True, timeout=timeout_s)

    def start(self) -> None:
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def restart_broker(self) -> tuple[float, float]:
        """Stop and start the RabbitMQ application (every connection drops); returns (stopped_at,
        answering_again_at) wall-clock times."""
        stopped_at = time.time()
        self._ctl("stop_app")
        self._ctl("start_app", timeout_s=120)

        def answering():
            with socket.create_connection((HOST, 5672), timeout=1):
                return True

        wait_until(lambda: _quietly(answering), timeout_s=60, interval_s=0.1, what="RabbitMQ answering")
        return stopped_at, time.time()

    def close(self) -> None:
        try:
            self._ctl("delete_vhost", self.name)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"[chaos] could not delete vhost {self.name}: {exc!r}")


def _quietly(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except OSError:
        return None


@dataclass
class Slot:
    """One worker command (dramatiq main + its forked worker process), restarted when it dies."""

    index: int
    env_overrides: dict[str, str]
    restart: bool = True
    proc: Proc | None = None
    incarnation: int = 0
    exits: list[tuple[float, int | None]] = field(default_factory=list)
    next_start_at: float = 0.0
    quick_deaths: int = 0


class Workers:
    """N ``dramatiq backend.worker`` commands and a supervisor thread that restarts dead ones."""

    READY_LINE = "Worker process is ready for action."

    def __init__(self, env: dict[str, str], logs: Path, threads: int, max_lifetime_s: float = 1800) -> None:
        self.env = env
        self.logs = logs
        self.threads = threads
        self.slots: list[Slot] = []
        self.restarts = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_lifetime_s
        self._thread = threading.Thread(target=self._supervise, name="chaos-supervisor", daemon=True)
        self._thread.start()

    # -- starting and stopping

    def add(self, *, restart: bool = True, env: dict[str, str] | None = None, wait_ready: bool = True,
            timeout_s: float = 60) -> int:
        with self._lock:
            slot = Slot(index=len(self.slots), env_overrides=dict(env or {}), restart=restart)
            self.slots.append(slot)
            self._start(slot)
        if wait_ready:
            self.wait_ready(slot.index, timeout_s=timeout_s)
        return slot.index

    def _start(self, slot: Slot) -> None:
        slot.incarnation += 1
        slot.proc = Proc(
            f"worker-{slot.index}",
            [PYTHON, "-m", "dramatiq", "backend.worker", "-p", "1", "-t", str(self.threads),
             "--worker-shutdown-timeout", "5000"],
            env={**self.env, **slot.env_overrides}, cwd=ROOT,
            log_path=self.logs / f"worker-{slot.index}-{slot.incarnation}.log",
        )

    def ready(self, index: int) -> bool:
        slot = self.slots[index]
        if slot.proc is None or not slot.proc.alive():
            return False
        try:
            return self.READY_LINE in slot.proc.log_path.read_text(errors="replace")
        except OSError:
            return False

    def wait_ready(self, index: int, timeout_s: float = 60) -> None:
        wait_until(lambda: self.ready(index), timeout_s=timeout_s, interval_s=0.1,
                   what=f"worker slot {index} ready")

    def wait_all_ready(self, timeout_s: float = 60) -> None:
        for slot in list(self.slots):
            if slot.restart or (slot.proc and slot.proc.alive()):
                self.wait_ready(slot.index, timeout_s=timeout_s)

    def worker_pids(self, index: int) -> list[int]:
        """The processes the slot's dramatiq main forked (the ones that run actors)."""
        slot = self.slots[index]
        if slot.proc is None or not slot.proc.alive():
            return []
        return _descendants(slot.proc.pid)

    def kill(self, index: int, *, target: str = "group", restart: bool | None = None) -> float:
        """SIGKILL a slot (``group``: the dramatiq main and its children; ``child``: only the forked
        worker process(es)). Returns the wall-clock time of the kill. ``restart`` changes whether
        the supervisor brings the slot back."""
        with self._lock:
            slot = self.slots[index]
            if restart is not None:
                slot.restart = restart
            assert slot.proc is not None and slot.proc.alive(), f"worker slot {index} is not running"
            killed_at = time.time()
            if target == "group":
                slot.proc.signal_group(signal.SIGKILL)
            elif target == "child":
                children = self.worker_pids(index)
                assert children, f"worker slot {index} has no child process to kill"
                for pid in children:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            else:
                raise ValueError(target)
            slot.next_start_at = time.monotonic() + 0.3
            return killed_at

    def restart_gracefully(self, index: int, *, timeout_s: float = 90) -> tuple[float, float]:
        """What a rolling deploy does to one worker: SIGTERM to the dramatiq main process only (as
        Docker and Kubernetes signal a container's first process), wait for it to exit, and for the
        supervisor's fresh command in the slot to be ready. Returns (signalled_at, exited_at)."""
        with self._lock:
            slot = self.slots[index]
            proc = slot.proc
            assert proc is not None and proc.alive(), f"worker slot {index} is not running"
            incarnation = slot.incarnation
            signalled_at = time.time()
            proc.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: not proc.alive(), timeout_s=timeout_s, interval_s=0.05,
                   what=f"worker slot {index} exiting after SIGTERM")
        exited_at = time.time()
        wait_until(lambda: slot.incarnation > incarnation and self.ready(index), timeout_s=timeout_s,
                   interval_s=0.1, what=f"worker slot {index} back after its restart")
        return signalled_at, exited_at

    def alive_count(self) -> int:
        return sum(1 for slot in self.slots if slot.proc is not None and slot.proc.alive())

    # -- the supervisor

    def _supervise(self) -> None:
        while not self._stop.wait(0.2) and time.monotonic() < self._deadline:
            with self._lock:
                for slot in self.slots:
                    self._tend(slot)

    def _tend(self, slot: Slot) -> None:
        if slot.proc is None or slot.proc.alive():
            return
        now = time.monotonic()
        if not slot.exits or slot.exits[-1][0] < slot.proc.started_at:
            # Newly dead: reap what is left of its group, note it, schedule a restart with back-off.
            slot.proc.kill()
            slot.exits.append((now, slot.proc.popen.returncode))
            lived_s = now - slot.proc.started_at
            slot.quick_deaths = slot.quick_deaths + 1 if lived_s < 5 else 0
            slot.next_start_at = max(slot.next_start_at, now + min(0.3 * 2 ** slot.quick_deaths, 5.0))
        if slot.restart and now >= slot.next_start_at:
            self._start(slot)
            self.restarts += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            procs = [slot.proc for slot in self.slots if slot.proc is not None]
        for proc in procs:
            proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            proc.kill()


# ---- the cluster --------------------------------------------------------------------------------


class Cluster:
    """PostgreSQL + Redis + gunicorn + dramatiq workers, all of our own; see the module docstring."""

    def __init__(self, *, binaries: dict[str, str], name: str = "chaos", env: dict[str, str] | None = None,
                 workers: int = 2, worker_threads: int = 4, web_workers: int = 2, web_threads: int = 16,
                 start_workers: bool = True, broker: str = "redis") -> None:
        self.binaries = binaries
        self.settings = {**DEFAULT_SETTINGS, **{k: str(v) for k, v in (env or {}).items()}}
        self.n_workers = workers
        self.worker_threads = worker_threads
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.start_workers = start_workers
        self.root = Path(tempfile.mkdtemp(prefix="chaos-"))
        os.chmod(self.root, 0o755)  # the postgres user must reach its directory below
        self.logs = self.root / "logs"
        self.logs.mkdir()
        base_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        base_env.update(PYTHONUNBUFFERED="1", NO_PROXY="*", no_proxy="*")
        self.base_env = base_env
        self.pg = Postgres(binaries, self.root / "pg", self.logs, base_env)
        self.redis = Redis(binaries, self.root / "redis", self.logs, base_env)
        # The job broker: the cluster's own Redis, or a vhost of its own on the machine's RabbitMQ.
        self.broker = broker
        self.rabbit = RabbitVhost(f"chaos-{os.getpid()}-{self.root.name}") if broker == "rabbitmq" else None
        self.web_port = free_port()
        self.web: Proc | None = None
        self.workers: Workers | None = None
        self.api = Api(self.web_port)
        self.key: str | None = None
        self.timings: dict[str, float] = {}
        self._closed = False
        atexit.register(self.close)  # a last resort if the interpreter exits without the fixture's teardown

    @property
    def env(self) -> dict[str, str]:
        """The environment of every service process."""
        return {
            **self.base_env,
            "DATABASE_URL": self.pg.url("chaos"),
            "REDIS_URL": self.redis.url,
            **({"BROKER_URL": self.rabbit.url} if self.rabbit else {}),
            **self.settings,
        }

    def start(self) -> "Cluster":
        started = time.monotonic()
        try:
            self.pg.init()
            self._first_start(self.pg)
            self.pg.create_database("chaos")
            self._first_start(self.redis)
            if self.rabbit:
                self.rabbit.start()
            self.timings["servers_s"] = time.monotonic() - started
            self._flask(["db", "upgrade"], timeout_s=120)
            self.key = self._flask(["keys", "create", "--owner", "chaos"], timeout_s=60).strip().splitlines()[-1]
            self.api.key = self.key
            self._first_start(self)
            self.workers = Workers(self.env, self.logs, self.worker_threads)
            if self.start_workers:
                for _ in range(self.n_workers):
                    self.workers.add(wait_ready=False)
                self.workers.wait_all_ready(timeout_s=90)
        except BaseException:
            self.dump_logs()
            self.close()
            raise
        self.timings["startup_s"] = time.monotonic() - started
        print(f"\n[chaos] cluster up in {self.timings['startup_s']:.1f} s: postgres :{self.pg.port}, "
              f"redis :{self.redis.port}, broker {self.broker}, gunicorn :{self.web_port}, {self.n_workers if self.start_workers else 0} "
              f"worker commands x {self.worker_threads} threads; settings {self.settings}; logs {self.logs}")
        return self

    _PORT_TAKEN = ("already in use", "could not bind", "Connection in use")

    def _first_start(self, server) -> None:
        """Start a server; if its free port was taken meanwhile (by a concurrent test), take another."""
        start = server.start_web if server is self else server.start
        for attempt in range(3):
            try:
                start()
                return
            except AssertionError:
                proc = server.web if server is self else server.proc
                if attempt == 2 or proc is None or not any(m in proc.log_tail(200) for m in self._PORT_TAKEN):
                    raise
                proc.kill()
                if server is self:
                    self.web_port = self.api.port = free_port()
                else:
                    server.port = free_port()

    def _flask(self, args: list[str], timeout_s: float) -> str:
        result = subprocess.run([PYTHON, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout_s)
        assert result.returncode == 0, f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start_web(self) -> None:
        env = {**self.env, "BIND": f"{HOST}:{self.web_port}", "PORT": str(self.web_port),
               "WEB_WORKERS": str(self.web_workers), "WEB_THREADS": str(self.web_threads)}
        self.web = Proc("gunicorn", [PYTHON, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
                        env=env, cwd=ROOT, log_path=self.logs / "gunicorn.log")

        def check():
            assert self.web.alive(), f"gunicorn exited:\n{self.web.log_tail()}"
            return self.api.request("GET", "/health/live", timeout_s=2).status == 200

        wait_until(check, timeout_s=60, interval_s=0.1, what="gunicorn answering /health/live",
                   ignore=(OSError, http.client.HTTPException))

    # -- helpers for tests

    def submit_many(self, inputs: list[dict], *, concurrency: int = 8) -> list[Response]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(self.api.submit, inputs))

    def all_logs(self) -> list[Path]:
        return sorted(self.logs.glob("*.log"))

    def grep_logs(self, needle: str, prefix: str = "") -> list[str]:
        hits = []
        for path in self.all_logs():
            if prefix and not path.name.startswith(prefix):
                continue
            for line in path.read_text(errors="replace").splitlines():
                if needle in line:
                    hits.append(f"{path.name}: {line}")
        return hits

    def sweep_totals(self) -> Counter:
        """What the workers' sweeps did, summed from their ``sweep: {...}`` log lines."""
        totals: Counter = Counter()
        for line in self.grep_logs("sweep: {", prefix="worker-"):
            match = re.search(r"sweep: (\{[^}]*\})", line)
            if match:
                try:
                    totals.update(ast.literal_eval(match.group(1)))
                except (ValueError, SyntaxError):
                    pass
        return totals

    def log_summary(self) -> str:
        """Sweep totals and tracebacks per kind of log, for the figures line of a test."""
        sweeps = dict(self.sweep_totals())
        tracebacks = {
            kind: len(self.grep_logs("Traceback", prefix=kind)) for kind in ("gunicorn", "worker")
        }
        return f"sweeps={sweeps} tracebacks={tracebacks}"

    def dump_logs(self, lines: int = 60) -> None:
        for path in self.all_logs():
            text = path.read_text(errors="replace").splitlines()
            interesting = [l for l in text if "GET /api" not in l and "POST /api" not in l and "GET /health" not in l]
            print(f"\n----- {path.name} (last {lines} of {len(text)} lines, access log lines omitted) -----")
            print("\n".join(interesting[-lines:]))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for action in (
            lambda: self.workers and self.workers.close(),
            lambda: self.web and self.web.stop(signal.SIGTERM, timeout_s=10),
            self.redis.close,
            lambda: self.rabbit and self.rabbit.close(),
            self.pg.close,
        ):
            try:
                action()
            except Exception as exc:  # keep tearing down whatever else is left
                print(f"[chaos] teardown step failed: {exc!r}")
        if os.environ.get("CHAOS_KEEP_DIR") == "1":
            print(f"[chaos] kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def pick(seq: list, rng: random.Random | None = None):
    return (rng or random).choice(seq)

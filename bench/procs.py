"""The processes a bench run starts on loopback, each in its own process group, and stops by that id."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child started in a new session, so stopping it stops its forked workers too."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, *,
                 discard_stdout: bool = False) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if discard_stdout else self._log, stderr=self._log,
            start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-20:])
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def kill(self) -> None:
        """Stop at once, whatever the processes are doing (SIGKILL to the whole group)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)
        self._log.close()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        else:
            # The leader is gone; its forked children may not be.
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


class Gunicorn(Process):
    """``gunicorn -c python:backend.gunicorn_conf APP`` on a free loopback port."""

    def __init__(self, name: str, app: str, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = dict(env, BIND=f"127.0.0.1:{self.port}", PORT=str(self.port))
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", app]
        # The config's access log goes to stdout, which is discarded here: both servers still pay
        # for formatting every line, as in production; the error log is kept.
        super().__init__(name, argv, env, log_dir / f"{name}.log", discard_stdout=True)

    def wait_ready(self, path: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout_s} s")


class DramatiqWorkers(Process):
    """``dramatiq MODULE -p P -t T``, ready once every worker process has said so."""

    READY = "is ready for action"

    def __init__(self, name: str, module: str, env: dict[str, str], log_dir: Path, *,
                 processes: int, threads: int, queues: tuple[str, ...] = ()) -> None:
        self.processes = processes
        argv = [sys.executable, "-m", "dramatiq", module, "-p", str(processes), "-t", str(threads),
                # A bench run must not wait ten minutes for a job it no longer cares about.
                "--worker-shutdown-timeout", "5000", *(("--queues", *queues) if queues else ())]
        super().__init__(name, argv, env, log_dir / f"{name}.log")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if self.log_text().count(self.READY) >= self.processes:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within {timeout_s} s")

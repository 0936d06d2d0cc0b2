"""Long-poll wake-ups over Redis pub/sub: none lost in a fresh process, none lost to a silent link."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

from backend.notify import CHANNEL, RedisNotifier

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FRESH_PROCESSES = 20

# One fresh interpreter: park a long poll on one job, say so, then report whether it was woken.
_PARK_ONCE = """
import sys
from backend.notify import RedisNotifier
notifier = RedisNotifier(sys.argv[1])
with notifier.listen([sys.argv[2]]) as changed:
    print("parked", flush=True)  # from here on the poll would read the job, then wait
    print("woken" if changed.wait(5) else "missed", flush=True)
"""


def test_the_first_long_poll_of_a_fresh_process_misses_no_change(redis_url):
    publisher = redis.Redis.from_url(redis_url)
    outcomes: dict[int, str] = {}

    def park_in_a_fresh_process(n: int) -> None:
        process = subprocess.Popen([sys.executable, "-c", _PARK_ONCE, redis_url, f"job-{n}"], cwd=ROOT,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "parked"
        publisher.publish(CHANNEL, f"job-{n}")  # the change commits right after the poll's read
        outcomes[n] = process.stdout.readline().strip()
        process.wait(timeout=10)

    for batch in range(0, FRESH_PROCESSES, 5):  # five at a time: fresh, but not a CPU stampede
        threads = [threading.Thread(target=park_in_a_fresh_process, args=(n,)) for n in range(batch, batch + 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert [outcomes.get(n) for n in range(FRESH_PROCESSES)] == ["woken"] * FRESH_PROCESSES


class _SilencingProxy:
    """A TCP proxy to Redis that can go silent on its open connections, as a half-open link does:
    no error, no bytes. Connections opened after that are forwarded normally."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._generation = 0
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def silence_open_connections(self) -> None:
        self._generation += 1

    def close(self) -> None:
        self._stopped = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            generation = self._generation
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, generation), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, generation: int) -> None:
        while not self._stopped:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if generation == self._generation:
                sink.sendall(data)
            # else: swallowed, like packets lost on a dead path


def test_a_listener_whose_connection_went_silent_reconnects_and_wakes_new_long_polls(redis_url):
    target = urlparse(redis_url)
    proxy = _SilencingProxy(target.hostname, target.port)
    notifier = RedisNotifier(f"redis://127.0.0.1:{proxy.port}{target.path}", health_check_interval_s=0.3)
    publisher = redis.Redis.from_url(redis_url)
    try:
        with notifier.listen(["warm-up"]):
            pass
        proxy.silence_open_connections()

        with notifier.listen(["job-after-silence"]) as changed:
            deadline = time.monotonic() + 10
            while not changed.is_set() and time.monotonic() < deadline:
                publisher.publish(CHANNEL, "job-after-silence")
                changed.wait(0.2)
            woken = changed.is_set()
    finally:
        proxy.close()

    assert woken, "a long poll parked after the listener's connection went silent was never woken"
    assert notifier.subscriptions >= 2  # it subscribed again on a new connection

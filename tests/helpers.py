"""Small helpers shared by tests: poll a job over HTTP the way a page would."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_for_status(client, job_id: str, headers: dict, statuses=TERMINAL, timeout_s: float = 20.0) -> dict:
    """Poll the status endpoint until the job reaches one of ``statuses``; fail on timeout."""
    deadline = time.monotonic() + timeout_s
    body = None
    while time.monotonic() < deadline:
        response = client.get(f"/api/ai/jobs/{job_id}/status", headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {sorted(statuses)} in {timeout_s} s; last: {body}")


def submit(client, headers: dict, agent: str = "echo", job_input: dict | None = None, **extra):
    body = {"agent": agent, "input": job_input if job_input is not None else {}, **extra}
    return client.post("/api/ai/jobs", json=body, headers=headers)


def free_port() -> int:
    """A loopback port nobody listens on right now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_call(url: str, *, method: str = "GET", headers: dict | None = None, body=None, timeout: float = 40):
    """One HTTP request to a real server: (status, headers, body bytes), error statuses included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class CuttableProxy:
    """A TCP proxy (to Redis, say) that can be cut, as a server that went away or restarts: open
    connections are closed, new ones closed at once, until it is mended."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            for sock in self._open:
                sock.close()
            self._open.clear()

    def mend(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                upstream = socket.create_connection(self.target)
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def outcome_of(read):
    """What a request-argument reader gave: ("ok", value), or ("refused", status, messages, headers)
    as webargs' error carries them, so a hand-written reader can be compared with the schema's."""
    from werkzeug.exceptions import HTTPException

    try:
        return ("ok", read())
    except HTTPException as error:
        data = getattr(error, "data", {})
        return ("refused", error.code, data.get("messages"), data.get("headers"))


def read_body_both_ways(path: str, body: bytes, content_type: str | None, by_hand, by_schema) -> tuple:
    """The outcomes of a hand-written body reader and of its schema on the same POST, each in a
    fresh request context (webargs caches what it parsed on the request)."""
    from flask import Flask

    app = Flask(__name__)
    headers = {} if content_type is None else {"Content-Type": content_type}
    outcomes = []
    for read in (by_hand, by_schema):
        with app.test_request_context(path, method="POST", data=body, headers=headers):
            outcomes.append(outcome_of(read))
    return tuple(outcomes)

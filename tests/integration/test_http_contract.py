"""What the document promises about headers holds on the wire: Operation-Location, Cache-Control on
every response, one field of each name, and over-long URLs answered 414 as problem+json."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from backend.api.url_limit import MAX_REQUEST_TARGET_BYTES
from tests.helpers import submit

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_accepted_jobs_name_their_status_monitor_in_operation_location_with_a_poll_hint(client, auth):
    submitted = submit(client, auth, job_input={"steps": 50, "delay_ms": 100})
    assert submitted.status_code == 202
    job = submitted.get_json()
    assert submitted.headers["Operation-Location"] == job["links"]["status"] == f"/api/ai/jobs/{job['id']}/status"
    assert submitted.headers["Location"] == job["links"]["self"]
    assert int(submitted.headers["Retry-After"]) >= 1

    cancelled = client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)
    assert cancelled.status_code == 202
    assert cancelled.headers["Operation-Location"] == job["links"]["status"]
    assert cancelled.headers["Location"] == job["links"]["self"]


def test_every_kind_of_response_carries_one_deliberate_cache_control(client, auth):
    job = submit(client, auth).get_json()
    status = client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth)
    expected = {
        f"/api/ai/jobs/{job['id']}": "no-store",
        f"/api/ai/jobs/{job['id']}/events": "no-store",
        "/api/ai/jobs": "no-store",
        "/api/ai/agents": "private, max-age=60",
        "/health/live": "no-store",
        "/health/ready": "no-store",
        "/api/openapi.json": "no-cache",
        "/api/docs": "no-cache",
        "/api/docs/assets/swagger-ui.css": "public, max-age=86400",
        "/": "no-cache",
        "/demo/demo.css": "no-cache",
        "/client/src/index.js": "no-cache",
        "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW": "no-store",  # a 404 problem
        "/api/ai/nowhere": "no-store",
    }
    for path, policy in expected.items():
        response = client.get(path, headers=auth)
        assert response.headers.getlist("Cache-Control") == [policy], (path, response.status_code)
        assert "Expires" not in response.headers, path
    assert status.headers.getlist("Cache-Control") == ["no-cache"]
    not_modified = client.get(f"/api/ai/jobs/{job['id']}/status", headers={**auth, "If-None-Match": status.headers["ETag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers.getlist("Cache-Control") == ["no-cache"]
    assert submit(client, auth).headers.getlist("Cache-Control") == ["no-store"]


def test_the_openapi_document_revalidates_with_its_etag(client):
    first = client.get("/api/openapi.json")
    again = client.get("/api/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["ETag"] == first.headers["ETag"]


def test_a_request_id_conflict_names_the_other_job_in_a_documented_member(client, auth):
    first = submit(client, auth, job_input={"payload": 1}, request_id="r-1").get_json()
    conflict = submit(client, auth, job_input={"payload": 2}, request_id="r-1")
    assert conflict.status_code == 409
    assert conflict.get_json()["job_id"] == first["id"]
    document = client.get("/api/openapi.json").get_json()
    assert "job_id" in document["components"]["schemas"]["Problem"]["properties"]


def test_an_over_long_url_answers_414_problem_json_naming_the_limit(client, auth):
    long_cursor = "c" * (MAX_REQUEST_TARGET_BYTES + 1)
    response = client.get(f"/api/ai/jobs?cursor={long_cursor}", headers=auth)
    assert response.status_code == 414
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "uri_too_long"
    assert str(MAX_REQUEST_TARGET_BYTES) in body["detail"]
    # At the limit, the URL is read (and the cursor refused on its own merits).
    at_limit = "c" * (MAX_REQUEST_TARGET_BYTES - len("/api/ai/jobs?cursor="))
    assert client.get(f"/api/ai/jobs?cursor={at_limit}", headers=auth).status_code != 414


def _raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request over a raw socket, so repeated header fields are seen as sent."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    pairs = [tuple(part.strip() for part in field.split(":", 1)) for field in fields]
    return int(status_line.split()[1]), pairs, body


def _paths(job_id: str) -> list[str]:
    return ["/", "/demo/demo.css", "/client/src/index.js", "/api/openapi.json", "/api/docs",
            "/api/docs/assets/swagger-ui.css", "/health/live", "/api/ai/agents", "/api/ai/jobs",
            f"/api/ai/jobs/{job_id}", f"/api/ai/jobs/{job_id}/status", "/api/ai/nowhere"]


def _assert_no_field_twice(port: int, auth: dict[str, str], job_id: str) -> None:
    for path in _paths(job_id):
        status, fields, _ = _raw_get(port, path, auth)
        counts = Counter(name.lower() for name, _ in fields)
        repeated = {name: n for name, n in counts.items() if n > 1}
        assert not repeated, f"{path} ({status}) repeats {repeated}"
        assert counts["date"] == 1 and counts["cache-control"] == 1, path


def test_no_response_of_the_development_server_carries_a_header_twice(app, client, auth):
    # `flask serve` (make run) serves with Werkzeug's server, which adds its own Date.
    job_id = submit(client, auth).get_json()["id"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _assert_no_field_twice(server.server_port, auth, job_id)
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def gunicorn(app, config):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=config.redis_url,
               BIND=f"127.0.0.1:{port}", WEB_WORKERS="1", WEB_THREADS="8")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _raw_get(port, "/health/live")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield port
    server.terminate()
    server.wait(timeout=30)


def test_under_gunicorn_long_urls_reach_the_app_and_no_header_is_sent_twice(client, auth, gunicorn):
    job_id = submit(client, auth).get_json()["id"]
    _assert_no_field_twice(gunicorn, auth, job_id)
    # gunicorn's default (4094 bytes) answered its own HTML 414 here; now the app answers.
    status, fields, body = _raw_get(gunicorn, "/api/ai/jobs?cursor=" + "c" * 7000, auth)
    assert status == 414
    assert dict((name.lower(), value) for name, value in fields)["content-type"] == "application/problem+json"
    assert b'"uri_too_long"' in body

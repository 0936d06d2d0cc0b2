"""The lean access logger writes the very line gunicorn's own logger writes, for any format."""
from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from backend.access_log import LeanAccessLogger

OUR_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
FORMATS = [
    OUR_FORMAT,
    Config().access_log_format,  # gunicorn's default, the "combined" format
    '%(t)s %(r)s %(q)s %(B)s %(T)s %(D)s %(L)s %(p)s %(l)s %(u)s %(f)s %(a)s',
    '%({X-Request-Id}o)s %({authorization}i)s %({Host}I)s %({path_info}e)s %({missing}o)s %(nope)s %({odd}x)s',
]
REQUESTS = [
    dict(status="200 OK", sent=412, response_headers=[("Content-Type", "application/json"), ("X-Request-Id", "a1")],
         request_headers=[("HOST", "127.0.0.1:8000"), ("AUTHORIZATION", 'Bearer "quoted"')],
         environ={"REQUEST_METHOD": "GET", "RAW_URI": "/api/ai/jobs/x/status?wait=5", "PATH_INFO": "/api/ai/jobs/x/status",
                  "QUERY_STRING": "wait=5", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.7",
                  "HTTP_USER_AGENT": "curl/8", "HTTP_REFERER": "https://example.com/"},
         took=datetime.timedelta(seconds=1, microseconds=2345)),
    # No body sent, a repeated header (the last one wins), nothing optional in the environ.
    dict(status="304 Not Modified", sent=None, response_headers=[("X-Request-Id", "first"), ("x-request-id", "second")],
         request_headers=[], environ={"REQUEST_METHOD": "GET", "RAW_URI": "/", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.0"},
         took=datetime.timedelta(microseconds=999)),
    dict(status=502, sent=0, response_headers=[], request_headers=[("X-REQUEST-ID", "in")],
         environ={"REQUEST_METHOD": "POST", "RAW_URI": "/api/ai/jobs", "PATH_INFO": "/api/ai/jobs",
                  "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
         took=datetime.timedelta(0)),
]


def _line(logger_class, access_log_format: str, request: dict) -> str:
    config = Config()
    config.set("access_log_format", access_log_format)
    logger = logger_class(config)
    logger.now = lambda: "[30/Nov/2026:05:40:00 +0000]"  # both sides at the same instant
    resp = SimpleNamespace(status=request["status"], sent=request["sent"], headers=request["response_headers"])
    req = SimpleNamespace(headers=request["request_headers"])
    atoms = logger.atoms(resp, req, dict(request["environ"]), request["took"])
    return access_log_format % SafeAtoms(atoms)


@pytest.mark.parametrize("access_log_format", FORMATS)
@pytest.mark.parametrize("request_index", range(len(REQUESTS)))
def test_the_lean_logger_writes_gunicorns_own_access_line(access_log_format, request_index):
    request = REQUESTS[request_index]

    assert _line(LeanAccessLogger, access_log_format, request) == _line(Logger, access_log_format, request)


def test_the_production_config_uses_it():
    import subprocess
    import sys

    # In a process of its own: reading the config sets PROMETHEUS_MULTIPROC_DIR in the environment.
    read = subprocess.run(
        [sys.executable, "-c", "import runpy; s = runpy.run_path('backend/gunicorn_conf.py'); "
                               "print(s['logger_class']); print(s['access_log_format'])"],
        capture_output=True, text=True, check=True, timeout=60,
    )

    assert read.stdout.splitlines() == ["backend.access_log.LeanAccessLogger", OUR_FORMAT]

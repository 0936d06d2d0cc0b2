"""The status poll's commonest case, answered in front of Flask's dispatch.

Most requests this service serves are status polls of a job the web process already knows: the
job's status is in process memory (the change signals carry it), the API key is in the key cache,
and the poll budgets are counted write-behind. Such a poll needs no I/O at all, and Flask's request
machinery (the request context, URL matching, a dozen hooks, flask-smorest's view wrappers) would be
over half of what it costs. So this WSGI middleware, wrapped directly around the Flask app, answers
that case itself and hands every other request to Flask unchanged.

``JobStatusView.get`` (jobs.py) stays the definition of the endpoint. This answers only a plain
``GET .../status`` (no query, so no long poll) that the view would answer from memory, with the
same functions for the tag, the hint, the body, the budgets and the telemetry; whenever one input is
not in memory, or anything is unusual (a 429 to give, a tag naming a version this process has not
heard of), Flask answers. With CORS configured it is not installed at all: flask-cors writes its
headers on every answer of the API, whether the request came from a page or not. ``tests/integration/test_fast_poll.py`` sends the same
requests to the app with and without this middleware and compares the answers.
"""
from __future__ import annotations

import logging
import re
import time

from flask import Flask

from .. import keys, telemetry
from ..ids import is_job_id
from ..jobs.hints import retry_after_s
from .limits import PRECHARGED_SPENDS_ENVIRON_KEY
from .schemas import MAX_IF_NONE_MATCH_CHARS, poll_hint_ms
from .status_tags import matches_tag, newest_version, status_etag

log = logging.getLogger(__name__)

ENDPOINT = "jobs.JobStatusView"
ROUTE_LABEL = "/api/ai/jobs/<job_id>/status"
_STATUS_PATH = re.compile(r"/api/ai/jobs/([^/]{1,64})/status")
_REQUEST_ID_ENVIRON = "HTTP_" + telemetry.REQUEST_ID_HEADER.upper().replace("-", "_")


class FastPolls:
    """WSGI middleware: ``app.wsgi_app = FastPolls(app)`` once the app's extensions exist."""

    def __init__(self, app: Flask) -> None:
        self.flask_wsgi_app = app.wsgi_app
        self._service = app.extensions["job_service"]
        self._key_cache = app.extensions["key_cache"]
        self._limits = app.extensions["rate_limits"]
        self._gauge = app.extensions["load_gauge"]
        config = app.extensions["config"]
        self._dev_key = config.dev_api_key if config.embedded else None
        self._dev_owner = config.dev_owner

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "GET" or environ.get("QUERY_STRING"):
            return self.flask_wsgi_app(environ, start_response)
        path = _STATUS_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if path is None or not is_job_id(path[1]):
            return self.flask_wsgi_app(environ, start_response)
        started_s = time.perf_counter()
        self._gauge.enter()
        try:
            answer = self._answer(environ, path[1])
        except Exception:  # a shortcut must never cost an answer: Flask answers, or writes the problem
            log.exception("fast status poll failed; handing the request to Flask")
            answer = None
        finally:
            self._gauge.leave()
        if answer is None:
            return self.flask_wsgi_app(environ, start_response)
        code, status_line, headers, body = answer
        telemetry.count_answer(ROUTE_LABEL, "GET", code, time.perf_counter() - started_s, poll=True)
        start_response(status_line, headers)
        return [body]

    def _answer(self, environ, job_id: str):
        """(status code, status line, headers, body) as the view would answer, or None for Flask."""
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        address = environ.get("REMOTE_ADDR") or "unknown"
        if self._limits.blocked_addresses.blocked(address) is not None:
            return None
        caller = keys.known_owner(self._key_cache, token, dev_key=self._dev_key, dev_owner=self._dev_owner)
        if caller is None or caller.scope != "jobs":
            return None
        status = self._service.known_status(caller.owner, job_id)
        presented = environ.get("HTTP_IF_NONE_MATCH")
        if status is None or (presented is not None and (
                len(presented) > MAX_IF_NONE_MATCH_CHARS or newest_version(presented) > status.version)):
            return None
        tag, hint_ms = status_etag(status), poll_hint_ms(status, self._gauge)
        not_modified = presented is not None and matches_tag(presented, tag)
        # What the view spends: poll304 up front for a conditional poll, poll for a full answer.
        budgets = ("poll",) if presented is None else ("poll304",) if not_modified else ("poll304", "poll")
        spends = {}
        for budget in budgets:
            spend = spends[budget] = self._limits.poll_spend(budget, caller.key_id, ENDPOINT, "GET")
            if not spend.allowed:  # Flask writes the 429, with these spends rather than new ones
                environ[PRECHARGED_SPENDS_ENVIRON_KEY] = spends
                return None
        headers = [("ETag", tag), ("Cache-Control", "no-cache")]
        retry_after = retry_after_s(hint_ms)
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        if not_modified:
            code, status_line, body = 304, "304 NOT MODIFIED", b""
        else:
            code, status_line, body = 200, "200 OK", status.answer_json(hint_ms).encode()
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += spend.headers().items()  # the last budget spent, as the view reports it
        headers.append((telemetry.REQUEST_ID_HEADER, telemetry.request_id(environ.get(_REQUEST_ID_ENVIRON))))
        return code, status_line, headers, body

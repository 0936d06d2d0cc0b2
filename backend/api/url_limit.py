"""The longest request target (path and query) the service reads: longer ones answer 414 problem+json.

gunicorn reads request lines of up to 8190 bytes (``limit_request_line`` in backend/gunicorn_conf.py,
its largest finite value), so every target from MAX_REQUEST_TARGET_BYTES up to that reaches this
check and gets the one error shape. Past 8190 bytes gunicorn refuses the line itself, with its own
HTML 414 page (docs/api.md says so); the development server's own cap is 65,536 bytes.
"""
from __future__ import annotations

from flask import Flask, request

from .problems import problem

# Far above any URL a client of this API needs (the longest, a filtered list page with a cursor,
# stays under 600 bytes), far below what would cost the server anything.
MAX_REQUEST_TARGET_BYTES = 4096


def request_target_bytes(environ: dict) -> int:
    """The length of the path and query as the client sent them (before percent-decoding)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is not None:
        return len(raw.encode("latin-1", "replace"))
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    return len(path.encode("latin-1", "replace")) + (len(query) + 1 if query else 0)


def init_url_limit(app: Flask) -> None:
    @app.before_request
    def _refuse_long_targets():
        length = request_target_bytes(request.environ)
        if length > MAX_REQUEST_TARGET_BYTES:
            return problem(
                414,
                f"The URL is {length} bytes long; at most {MAX_REQUEST_TARGET_BYTES} are accepted. "
                "Send long lists in a request body (POST /api/ai/jobs/statuses takes up to 100 ids).",
                code="uri_too_long",
            )
        return None

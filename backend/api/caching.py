"""Cache-Control: one deliberate policy for every response the app sends.

- Job data (submit, cancel, full job, lists, batch, events) is private and has no validator: no-store.
- The status endpoint sets its own ``no-cache``: caches may keep it but must revalidate with its ETag.
- Errors are never reused: no-store.
- The agent list changes only on redeploy: private, max-age=60.
- Health answers must be fresh: no-store.
- The OpenAPI document and the docs page: no-cache, with an ETag so revalidation is a cheap 304.
- The docs page's assets come from the installed flask-swagger-ui package, fixed for a deploy: a day.
- The demo page, its assets and the client's modules: no-cache (send_file's ETag and Last-Modified).
- The demo configuration holds a development key: no-store.

The app never sets ``Date``: gunicorn and Werkzeug's server both add their own without looking at the
app's, so a ``Date`` from send_file or make_conditional went out twice (issue 9, the demo page).

docs/polling.md lists the same table for integrators.
"""
from __future__ import annotations

from flask import Flask, Response, request

NO_STORE = "no-store"
POLICIES = {
    "api-docs.openapi_json": "no-cache",
    "api-docs.openapi_swagger_ui": "no-cache",
    "web.docs_asset": "public, max-age=86400",
    "web.index": "no-cache",
    "web.demo_asset": "no-cache",
    "web.client_module": "no-cache",
    "web.demo_config": NO_STORE,
    "agents.Agents": "private, max-age=60",
    "health.Live": NO_STORE,
    "health.Ready": NO_STORE,
}
# Generated on each request but identical until the next deploy: worth a validator.
_REVALIDATED = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui"}


def cache_control_for(endpoint: str | None, status: int, current: str | None) -> str:
    if status >= 400:
        return NO_STORE
    if endpoint in POLICIES:
        return POLICIES[endpoint]
    if current and _is_send_file_no_cache(current):
        return "no-cache"
    return current or NO_STORE


def _is_send_file_no_cache(value: str) -> bool:
    """send_file(max_age=0) says "no-cache, max-age=0": the max-age adds nothing to no-cache."""
    directives = {part.strip() for part in value.split(",")}
    return directives == {"no-cache", "max-age=0"}


def init_cache_control(app: Flask) -> None:
    @app.after_request
    def _cache_control(response: Response) -> Response:
        endpoint = request.endpoint
        current = response.headers.get("Cache-Control")
        # Replace, never append: one Cache-Control field per response.
        response.headers["Cache-Control"] = cache_control_for(endpoint, response.status_code, current)
        if response.status_code < 400 and (endpoint in POLICIES or response.headers["Cache-Control"] != current):
            # send_file's Expires (set for max_age) would contradict the policy above.
            response.headers.pop("Expires", None)
        if endpoint in _REVALIDATED and response.status_code == 200 and not response.is_streamed:
            response.add_etag()
            response.make_conditional(request)
        response.headers.pop("Date", None)
        return response

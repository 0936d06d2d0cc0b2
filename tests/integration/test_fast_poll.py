"""A plain status poll of a job this process knows is answered in front of Flask (fast_poll.py),
exactly as the status view would answer it; every other request still goes to Flask."""
from __future__ import annotations

import re
from contextlib import contextmanager

import pytest

from backend.api.fast_poll import FastPolls
from backend.api.schemas import MAX_IF_NONE_MATCH_CHARS
from tests.conftest import make_key
from tests.helpers import submit
from tests.integration.test_operations import scrape, value

pytestmark = pytest.mark.integration
REQUEST_ID = {"X-Request-ID": "fast-poll-test"}


@contextmanager
def flask_only(app):
    """The app with the fast path taken out: every request through Flask's dispatch and the view."""
    fast = app.wsgi_app
    assert isinstance(fast, FastPolls)
    app.wsgi_app = fast.flask_wsgi_app
    try:
        yield
    finally:
        app.wsgi_app = fast


@pytest.fixture
def dispatched(app):
    """How many requests reached Flask's dispatch (its before_request hooks)."""
    count = []
    app.before_request(lambda: count.append(1))
    return count


def _running(app, client, auth) -> str:
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    with app.app_context():
        app.extensions["job_service"].attempts.claim(job_id)
    return job_id


def _comparable(response) -> tuple:
    """Status, headers (the remaining budget aside: each answer spends one) and body."""
    headers = [(name, re.sub(r";r=\d+", ";r=N", value) if name == "RateLimit" else value)
               for name, value in response.headers.items()]
    return response.status_code, headers, response.get_data()


@pytest.mark.parametrize("if_none_match", [
    None, "current", '"current-strong"', "*", 'W/"v1"', '"stale", current', 'W/"v999"',
    "x" * MAX_IF_NONE_MATCH_CHARS, "x" * (MAX_IF_NONE_MATCH_CHARS + 1),
])
def test_a_poll_is_answered_alike_with_and_without_the_fast_path(app, client, auth, if_none_match):
    job_id = _running(app, client, auth)
    url = f"/api/ai/jobs/{job_id}/status"
    tag = client.get(url, headers=auth).headers["ETag"]
    presented = {
        None: None, "current": tag, '"current-strong"': tag.removeprefix("W/"),
        '"stale", current': f'"stale", {tag}',
    }.get(if_none_match, if_none_match)
    headers = {**auth, **REQUEST_ID, **({"If-None-Match": presented} if presented is not None else {})}

    fast = client.get(url, headers=headers)
    with flask_only(app):
        slow = client.get(url, headers=headers)

    assert _comparable(fast) == _comparable(slow)


def test_with_cors_on_every_poll_goes_to_flask_which_writes_the_cors_headers(config, auth):
    from backend import create_app

    page = "https://page.example"
    app = create_app(config.with_overrides(cors_allowed_origins=(page,)))
    client = app.test_client()
    seen = []
    app.before_request(lambda: seen.append(1))
    try:
        url = f"/api/ai/jobs/{_running(app, client, auth)}/status"
        client.get(url, headers=auth)  # the key is cached from here on
        seen.clear()
        answers = [client.get(url, headers={**auth, "Origin": page}), client.get(url, headers=auth)]
    finally:
        app.extensions["job_service"].notifier.close()

    assert not isinstance(app.wsgi_app, FastPolls)
    assert len(seen) == 2
    # flask-cors names the page's origin on every answer, with or without an Origin header.
    assert [a.headers.get("Access-Control-Allow-Origin") for a in answers] == [page, page]


def test_a_poll_of_a_job_this_process_knows_is_answered_without_flask(app, client, auth, dispatched):
    job_id = _running(app, client, auth)
    url = f"/api/ai/jobs/{job_id}/status"
    tag = client.get(url, headers=auth).headers["ETag"]  # the key is cached from here on
    before = scrape(client)
    dispatched.clear()

    answers = [client.get(url, headers=auth), client.get(url, headers={**auth, "If-None-Match": tag})]

    assert [a.status_code for a in answers] == [200, 304]
    assert dispatched == []
    # Counted as the view's answers are: by outcome, and under the route's template.
    after = scrape(client)
    for outcome, status_class in (("200", "2xx"), ("304", "3xx")):
        assert value(after, "job_polls_total", outcome=outcome) - value(before, "job_polls_total", outcome=outcome) == 1
        key = {"route": "/api/ai/jobs/<job_id>/status", "method": "GET", "status_class": status_class}
        assert value(after, "http_requests_total", **key) - value(before, "http_requests_total", **key) == 1
    assert value(after, "job_poll_duration_seconds_count") - value(before, "job_poll_duration_seconds_count") == 2


@pytest.mark.parametrize("case", [
    "long poll", "query", "queued job", "another owner's job", "unknown key", "lower-case id", "trailing slash",
    "HEAD", "tag of a newer version", "over-long tag",
])
def test_what_the_fast_path_cannot_answer_from_memory_goes_to_flask(app, client, auth, dispatched, case):
    job_id = _running(app, client, auth)
    url = f"/api/ai/jobs/{job_id}/status"
    tag = client.get(url, headers=auth).headers["ETag"]
    method, headers = "GET", dict(auth)
    if case == "long poll":
        url, headers["If-None-Match"] = url + "?wait=0", tag
    elif case == "query":
        url += "?x=1"
    elif case == "queued job":
        url = f"/api/ai/jobs/{submit(client, auth, 'echo', {}).get_json()['id']}/status"
    elif case == "another owner's job":
        headers = {"Authorization": f"Bearer {make_key(app, 'mallory')}"}
        client.get("/api/ai/jobs", headers=headers)  # mallory's key is cached too
    elif case == "unknown key":
        headers = {"Authorization": f"Bearer {make_key(app, 'alice')}"}  # valid, never seen
    elif case == "lower-case id":
        url = url.replace(job_id, "job_" + job_id[4:].lower())
    elif case == "trailing slash":
        url += "/"
    elif case == "HEAD":
        method = "HEAD"
    elif case == "tag of a newer version":
        headers["If-None-Match"] = 'W/"v99"'
    elif case == "over-long tag":
        headers["If-None-Match"] = "x" * (MAX_IF_NONE_MATCH_CHARS + 1)
    dispatched.clear()

    answer = client.open(url, method=method, headers=headers)

    assert dispatched, f"{case}: answered without Flask ({answer.status_code})"
    expected = {"long poll": 304, "another owner's job": 404, "lower-case id": 400, "trailing slash": 404,
                "over-long tag": 422}
    assert answer.status_code == expected.get(case, 200)


def test_an_address_past_its_401_budget_is_refused_by_flask_even_with_a_cached_key(config, auth):
    from backend import create_app

    app = create_app(config.with_overrides(rate_limit_auth_failures="2/minute"))
    client = app.test_client()
    try:
        headers = {**auth}
        job_id = _running(app, client, auth)
        url = f"/api/ai/jobs/{job_id}/status"
        assert client.get(url, headers=headers).status_code == 200
        for _ in range(2):
            client.get(url, headers={"Authorization": "Bearer nope"})

        answer = client.get(url, headers=headers)
    finally:
        app.extensions["job_service"].notifier.close()

    assert answer.status_code == 429
    assert answer.headers["RateLimit"].startswith('"auth";')


def test_a_poll_past_its_budget_gets_the_429_and_is_counted_once(config, redis_url, api_key, auth):
    import time

    import redis
    from limits import parse

    from backend import create_app
    from backend.api.limits import KEY_PREFIX

    limited = create_app(config.with_overrides(rate_limit_poll="3/minute"))
    client = limited.test_client()
    try:
        job_id = _running(limited, client, auth)
        url = f"/api/ai/jobs/{job_id}/status"
        answers = [client.get(url, headers=auth) for _ in range(5)]
    finally:
        limited.extensions["job_service"].notifier.close()

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "rate_limited"
    assert refused.headers["RateLimit"].startswith('"poll";r=0;')
    assert int(refused.headers["Retry-After"]) >= 1
    # Five polls, five units spent: a refusal the fast path handed to Flask is not charged twice.
    key_id = api_key.split("_")[1]
    counter = f"{KEY_PREFIX}:{parse('3/minute').key_for(key_id, 'jobs.JobStatusView:poll:GET')}"
    store = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 5
    while int(store.get(counter) or 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # many write-behind intervals: any second charge would have landed by now
    assert int(store.get(counter) or 0) == 5

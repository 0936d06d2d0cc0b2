"""Rate limits per API key: 429 problem+json with Retry-After and the IETF RateLimit headers."""
from __future__ import annotations

import pytest

from tests.conftest import make_key
from tests.helpers import submit

pytestmark = pytest.mark.integration


@pytest.fixture
def config(config):
    return config.with_overrides(rate_limit_submit="3/minute", rate_limit_poll="5/minute")


def test_submits_past_the_limit_get_429_with_retry_after(client, auth):
    answers = [submit(client, auth, "echo", {}) for _ in range(4)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    limited = answers[-1]
    assert limited.content_type == "application/problem+json"
    assert limited.get_json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Policy"] == '"submit";q=3;w=60'
    assert limited.headers["RateLimit"].startswith('"submit";r=0;t=')


def test_each_key_has_its_own_budget(app, client, auth):
    for _ in range(3):
        submit(client, auth, "echo", {})
    other = {"Authorization": f"Bearer {make_key(app, 'bob')}"}

    assert submit(client, auth, "echo", {}).status_code == 429
    assert submit(client, other, "echo", {}).status_code == 202


def test_unchanged_conditional_polls_cost_nothing(client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    first = client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth)
    tag = first.headers["ETag"]

    not_modified = [
        client.get(f"/api/ai/jobs/{job['id']}/status", headers={**auth, "If-None-Match": tag}).status_code
        for _ in range(10)
    ]
    full = [client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth).status_code for _ in range(5)]

    assert first.headers["RateLimit"].startswith('"poll";r=4;')
    assert not_modified == [304] * 10
    assert full == [200, 200, 200, 200, 429]


def test_health_and_docs_are_not_rate_limited(client):
    assert [client.get("/health/live").status_code for _ in range(10)] == [200] * 10

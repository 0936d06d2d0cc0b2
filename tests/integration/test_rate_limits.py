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


@pytest.mark.parametrize("spelling", ["bearer {key}", "BEARER {key}", "Bearer  {key}", " Bearer {key} "])
def test_a_key_spelled_another_way_still_spends_the_same_budget(client, api_key, spelling):
    for _ in range(3):
        assert submit(client, {"Authorization": f"Bearer {api_key}"}, "echo", {}).status_code == 202

    respelled = submit(client, {"Authorization": spelling.format(key=api_key)}, "echo", {})

    assert respelled.status_code == 429
    assert respelled.headers["RateLimit"].startswith('"submit";r=0;')


def test_the_embedded_dev_key_is_counted_as_a_key_of_its_own(postgres_url):
    from backend import create_app
    from backend.config import Config

    app = create_app(Config(database_url=postgres_url, redis_url=None, dev_api_key="dev-key-for-tests",
                            rate_limit_submit="2/minute"))
    client = app.test_client()
    dev = {"Authorization": "Bearer dev-key-for-tests"}
    same_owner = {"Authorization": f"Bearer {make_key(app, 'dev')}"}

    dev_answers = [submit(client, dev, "echo", {}).status_code for _ in range(3)]
    respelled = submit(client, {"Authorization": "bearer  dev-key-for-tests"}, "echo", {}).status_code

    assert dev_answers == [202, 202, 429]
    assert respelled == 429
    assert submit(client, same_owner, "echo", {}).status_code == 202


@pytest.fixture
def key_lookups(app):
    """How many statements read the api_keys table (each is one key lookup)."""
    from sqlalchemy import event

    from backend.extensions import db

    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "api_keys" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def _random_token() -> str:
    import secrets

    return f"jobs_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


class TestFailedAuthentication:
    @pytest.fixture
    def config(self, config):
        return config.with_overrides(rate_limit_auth_failures="5/minute")

    def test_a_flood_of_random_tokens_gets_429_before_any_lookup_past_the_budget(self, client, key_lookups):
        flood = {"REMOTE_ADDR": "203.0.113.7"}
        answers = [
            client.get("/api/ai/jobs", headers={"Authorization": f"Bearer {_random_token()}"}, environ_base=flood)
            for _ in range(40)
        ]

        assert [a.status_code for a in answers] == [401] * 5 + [429] * 35
        assert len(key_lookups) == 5
        limited = answers[-1]
        assert limited.content_type == "application/problem+json"
        assert limited.get_json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["RateLimit-Policy"] == '"auth";q=5;w=60'
        assert limited.headers["RateLimit"].startswith('"auth";r=0;t=')

    def test_missing_and_malformed_credentials_count_too(self, client):
        flood = {"REMOTE_ADDR": "203.0.113.8"}
        headers = [{}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer"}] * 3

        codes = [client.get("/api/ai/jobs", headers=h, environ_base=flood).status_code for h in headers]

        assert codes == [401] * 5 + [429] * 4

    def test_a_flood_from_one_address_leaves_other_addresses_alone(self, client, auth):
        for _ in range(8):
            client.get("/api/ai/jobs", headers={"Authorization": f"Bearer {_random_token()}"},
                       environ_base={"REMOTE_ADDR": "203.0.113.9"})

        assert client.get("/api/ai/jobs", headers=auth, environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 200
        assert client.get("/api/ai/jobs", headers={"Authorization": "Bearer nope"},
                          environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 401

    def test_valid_keys_never_spend_the_address_budget(self, client, auth):
        codes = [client.get("/api/ai/jobs", headers=auth).status_code for _ in range(10)]

        assert codes == [200] * 10


class TestNotModifiedBudget:
    @pytest.fixture
    def config(self, config):
        return config.with_overrides(rate_limit_poll="5/minute", rate_limit_poll_304="8/minute")

    def test_if_none_match_star_is_answered_but_spends_the_304_budget(self, client, auth):
        job = submit(client, auth, "echo", {}).get_json()
        star = {**auth, "If-None-Match": "*"}

        answers = [client.get(f"/api/ai/jobs/{job['id']}/status", headers=star) for _ in range(9)]

        assert [a.status_code for a in answers] == [304] * 8 + [429]
        assert answers[0].headers["RateLimit-Policy"] == '"poll304";q=8;w=60'
        assert answers[0].headers["RateLimit"].startswith('"poll304";r=7;')
        assert answers[-1].get_json()["code"] == "rate_limited"
        assert answers[-1].headers["RateLimit"].startswith('"poll304";r=0;')

    def test_a_stale_or_bogus_tag_buys_no_full_answers_beyond_the_poll_budget(self, client, auth):
        job = submit(client, auth, "echo", {}).get_json()
        bogus = {**auth, "If-None-Match": '"not-a-tag"'}

        codes = [client.get(f"/api/ai/jobs/{job['id']}/status", headers=bogus).status_code for _ in range(6)]

        assert codes == [200] * 5 + [429]


class TestSeveralLimitsInOneBudget:
    @pytest.fixture
    def config(self, config):
        return config.with_overrides(rate_limit_submit="10/hour;2/minute")

    def test_every_limit_of_a_budget_is_counted_and_the_tightest_is_reported(self, client, auth):
        answers = [submit(client, auth, "echo", {}) for _ in range(3)]

        assert [a.status_code for a in answers] == [202, 202, 429]
        assert answers[-1].headers["RateLimit-Policy"] == '"submit";q=2;w=60'
        assert answers[0].headers["RateLimit"].startswith('"submit";r=1;')

"""Rate limits per API key: 429 problem+json with Retry-After and the IETF RateLimit headers."""
from __future__ import annotations

import time

import pytest

from backend.api.limits import KEY_PREFIX
from backend.api.rate_counters import FLUSHER_CLIENT_NAME
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


class _LimiterCommands:
    """Counts the commands the rate limiter sends Redis (on the test's database) from the requests
    while a block runs, with MONITOR: each one a client sends is one round trip; those a Lua script
    runs inside Redis are not, and are left out. So are the write-behind flusher's (its connection is
    named ``FLUSHER_CLIENT_NAME``), which run on their own thread whenever they are due: they are
    counted in ``flushed``."""

    def __init__(self, redis_url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(redis_url)
        self._db = self._redis.connection_pool.connection_kwargs.get("db", 0)
        self.flushed = 0

    def during(self, block) -> int:
        import uuid

        marker = f"end-of-block-{uuid.uuid4().hex}"
        with self._redis.monitor() as monitor:
            block()
            flushers = {c["addr"] for c in self._redis.client_list() if c["name"] == FLUSHER_CLIENT_NAME}
            self._redis.echo(marker)
            count = self.flushed = 0
            while True:
                seen = monitor.next_command()
                if marker in seen["command"]:
                    return count
                if seen["db"] == self._db and seen["client_type"] != "lua" and KEY_PREFIX in seen["command"]:
                    if f"{seen['client_address']}:{seen['client_port']}" in flushers:
                        self.flushed += 1
                    else:
                        count += 1


def _wait_until(condition, *, timeout_s: float = 5.0) -> float:
    """Seconds until ``condition()`` held; fails past ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.002)
    return time.monotonic() - started


class TestRoundTrips:
    """Other calls and 401s cost one round trip each: the storage's one Lua script returns the
    count and the window's end, which the RateLimit headers are written from. Polls and submits are
    counted write-behind: one round trip for the first request of a window in this process, none on
    the request path after it; the flusher sends the counts within a few ms."""

    @pytest.fixture
    def limiter_commands(self, app, redis_url):
        return _LimiterCommands(redis_url).during

    @pytest.fixture
    def polled(self, client, auth):
        job = submit(client, auth, "echo", {}).get_json()
        url = f"/api/ai/jobs/{job['id']}/status"
        tag = client.get(url, headers=auth).headers["ETag"]
        return url, tag

    def test_the_first_poll_of_a_window_costs_one_round_trip_and_the_next_ones_none(
            self, client, auth, polled, limiter_commands):
        url, tag = polled  # the poll budget's window is known to this process since that poll
        answers = []
        conditional = {**auth, "If-None-Match": tag}

        full = limiter_commands(lambda: answers.append(client.get(url, headers=auth)))
        first_not_modified = limiter_commands(lambda: answers.append(client.get(url, headers=conditional)))
        next_not_modified = limiter_commands(lambda: answers.append(client.get(url, headers=conditional)))

        assert [a.status_code for a in answers] == [200, 304, 304]
        assert (full, first_not_modified, next_not_modified) == (0, 1, 0)
        assert answers[0].headers["RateLimit"].startswith('"poll";r=3;')
        assert answers[1].headers["RateLimit"].startswith('"poll304";r=')
        assert answers[2].headers["RateLimit"].startswith('"poll304";r=')

    def test_a_conditional_poll_answered_in_full_costs_a_round_trip_only_for_a_window_new_to_the_process(
            self, client, auth, polled, limiter_commands):
        url, _ = polled
        answers = []
        stale = {**auth, "If-None-Match": '"stale"'}

        first = limiter_commands(lambda: answers.append(client.get(url, headers=stale)))
        second = limiter_commands(lambda: answers.append(client.get(url, headers=stale)))

        assert [a.status_code for a in answers] == [200, 200]
        assert (first, second) == (1, 0)  # poll304's window was new; poll's was known
        assert answers[0].headers["RateLimit"].startswith('"poll";r=3;')
        assert answers[1].headers["RateLimit"].startswith('"poll";r=2;')

    def test_polls_reach_redis_within_a_short_bound_without_a_round_trip_of_their_own(
            self, client, auth, api_key, polled, limiter_commands, redis_url):
        import redis
        from limits import parse

        url, _ = polled
        counter = f"{KEY_PREFIX}:{parse('5/minute').key_for(api_key.split('_')[1], 'jobs.JobStatusView:poll:GET')}"
        store = redis.Redis.from_url(redis_url)

        on_the_requests = limiter_commands(lambda: [client.get(url, headers=auth) for _ in range(3)])
        waited_s = _wait_until(lambda: int(store.get(counter) or 0) == 4)

        assert on_the_requests == 0
        assert waited_s < 1.0  # FLUSH_INTERVAL_S after the first, plus a loaded machine's delays

    def test_the_first_submit_of_a_window_costs_one_round_trip_and_the_next_ones_and_a_refusal_none(
            self, client, auth, api_key, limiter_commands, redis_url):
        import redis
        from limits import parse

        answers = []
        counter = f"{KEY_PREFIX}:{parse('3/minute').key_for(api_key.split('_')[1], 'jobs.Jobs:submit:POST')}"

        trips = [limiter_commands(lambda: answers.append(submit(client, auth, "echo", {}))) for _ in range(4)]
        waited_s = _wait_until(lambda: int(redis.Redis.from_url(redis_url).get(counter) or 0) == 4)

        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert [a.headers["RateLimit"].split(";t=")[0] for a in answers] == [
            '"submit";r=2', '"submit";r=1', '"submit";r=0', '"submit";r=0']
        assert trips == [1, 0, 0, 0]
        assert waited_s < 1.0  # every submit, the refused one too, is counted in Redis a moment later

    def test_requests_without_a_key_to_count_cost_none(self, client, limiter_commands):
        assert limiter_commands(lambda: client.get("/health/live")) == 0

    def test_a_401_costs_one_round_trip_and_a_blocked_address_none(self, app, client, limiter_commands):
        flood = {"REMOTE_ADDR": "203.0.113.10"}
        budget = 60  # the default 401 budget per address and minute
        for _ in range(budget - 1):
            client.get("/api/ai/jobs", headers={"Authorization": "Bearer nope"}, environ_base=flood)
        answers = []

        last_401 = limiter_commands(lambda: answers.append(
            client.get("/api/ai/jobs", headers={"Authorization": "Bearer nope"}, environ_base=flood)))
        blocked = limiter_commands(lambda: answers.append(
            client.get("/api/ai/jobs", headers={"Authorization": "Bearer nope"}, environ_base=flood)))

        assert [a.status_code for a in answers] == [401, 429]
        assert (last_401, blocked) == (1, 0)


class TestBudgetsStayInForce:
    @pytest.fixture
    def config(self, config):
        return config.with_overrides(rate_limit_submit="2/minute", rate_limit_poll_304="3/minute",
                                     rate_limit_auth_failures="100/minute")

    def test_a_full_answer_to_a_conditional_poll_leaves_the_304_budget_in_force(self, client, auth):
        job = submit(client, auth, "echo", {}).get_json()
        url = f"/api/ai/jobs/{job['id']}/status"

        stale = client.get(url, headers={**auth, "If-None-Match": '"stale"'})
        tag = stale.headers["ETag"]
        codes = [client.get(url, headers={**auth, "If-None-Match": tag}).status_code for _ in range(3)]

        assert stale.status_code == 200
        assert codes == [304, 304, 429]

    def test_a_401_on_an_endpoint_leaves_the_key_budgets_of_that_endpoint_in_force(self, client, auth):
        assert submit(client, {"Authorization": "Bearer nope"}, "echo", {}).status_code == 401

        codes = [submit(client, auth, "echo", {}).status_code for _ in range(3)]

        assert codes == [202, 202, 429]


def test_budgets_are_counted_in_memory_while_redis_is_away(config):
    from backend import create_app
    from tests.helpers import free_port

    app = create_app(config.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_submit="3/minute"))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}"}

    started = time.monotonic()
    answers = [submit(client, auth, "echo", {}) for _ in range(4)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert answers[0].headers["RateLimit"].startswith('"submit";r=2;t=60')
    assert answers[-1].get_json()["code"] == "rate_limited"
    assert time.monotonic() - started < 5.0  # failed connects are skipped for a while, not paid per request

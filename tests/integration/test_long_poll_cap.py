"""Parked long polls are capped per API key, across web processes (Redis) and embedded (in process)."""
from __future__ import annotations

import concurrent.futures
import time

import pytest
import redis as redis_lib

from backend import create_app
from backend.api.long_polls import KEY_PREFIX, LongPollSlots, TooManyLongPolls
from backend.config import Config
from tests.conftest import make_key
from tests.helpers import submit

pytestmark = pytest.mark.integration
CAP = 2


@pytest.fixture
def config(config):
    return config.with_overrides(long_polls_per_key=CAP)


def _tag(client, auth, job_id):
    return client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]


def _long_poll(client, auth, job_id, tag, wait_s=15):
    return client.get(f"/api/ai/jobs/{job_id}/status?wait={wait_s}", headers={**auth, "If-None-Match": tag})


def _key_id(auth) -> str:
    return auth["Authorization"].split("_")[1]


def _wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _parked_in_redis(config, auth) -> int:
    return redis_lib.Redis.from_url(config.redis_url).zcard(f"{KEY_PREFIX}:{_key_id(auth)}")


def test_a_key_past_its_long_poll_cap_gets_429_and_its_parked_polls_still_wake(app, client, config, auth):
    job = submit(client, auth, "echo", {}).get_json()
    tag = _tag(client, auth, job["id"])

    with concurrent.futures.ThreadPoolExecutor(CAP) as pool:
        parked = [pool.submit(_long_poll, app.test_client(), auth, job["id"], tag) for _ in range(CAP)]
        _wait_until(lambda: _parked_in_redis(config, auth) == CAP)

        refused = _long_poll(client, auth, job["id"], tag)
        client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)
        woken = [f.result(timeout=10) for f in parked]

    assert refused.status_code == 429
    assert refused.content_type == "application/problem+json"
    assert refused.get_json()["code"] == "too_many_long_polls"
    assert 1 <= int(refused.headers["Retry-After"]) <= 15
    assert refused.headers["RateLimit-Policy"] == f'"long-polls";q={CAP}'
    assert refused.headers["RateLimit"].startswith('"long-polls";r=0;t=')
    assert [w.status_code for w in woken] == [200] * CAP
    assert _parked_in_redis(config, auth) == 0


def test_the_cap_is_per_key_and_short_polls_are_not_capped(app, client, config, auth):
    job = submit(client, auth, "echo", {}).get_json()
    tag = _tag(client, auth, job["id"])
    bob = {"Authorization": f"Bearer {make_key(app, 'bob')}"}
    bobs_job = submit(client, bob, "echo", {}).get_json()
    bobs_tag = _tag(client, bob, bobs_job["id"])

    with concurrent.futures.ThreadPoolExecutor(CAP + 1) as pool:
        parked = [pool.submit(_long_poll, app.test_client(), auth, job["id"], tag, 2) for _ in range(CAP)]
        _wait_until(lambda: _parked_in_redis(config, auth) == CAP)
        bobs = pool.submit(_long_poll, app.test_client(), bob, bobs_job["id"], bobs_tag, 2)
        short = client.get(f"/api/ai/jobs/{job['id']}/status", headers={**auth, "If-None-Match": tag})
        answers = [f.result(timeout=10) for f in [*parked, bobs]]

    assert short.status_code == 304
    assert [a.status_code for a in answers] == [304] * (CAP + 1)


def test_the_cap_holds_across_web_processes(app, client, config, auth):
    other_process = create_app(config).test_client()
    job = submit(client, auth, "echo", {}).get_json()
    tag = _tag(client, auth, job["id"])

    with concurrent.futures.ThreadPoolExecutor(CAP) as pool:
        parked = [pool.submit(_long_poll, app.test_client(), auth, job["id"], tag, 3) for _ in range(CAP)]
        _wait_until(lambda: _parked_in_redis(config, auth) == CAP)
        refused = _long_poll(other_process, auth, job["id"], tag, 3)
        [f.result(timeout=10) for f in parked]

    assert refused.status_code == 429


def test_slots_of_a_process_that_died_while_parked_stop_counting_after_their_wait(redis_url):
    redis_lib.Redis.from_url(redis_url).delete(f"{KEY_PREFIX}:crash-test")
    crashed = LongPollSlots(redis_url, cap=1, grace_s=0.5)
    abandoned = crashed.hold("crash-test", 1.0)  # referenced, so it is never closed and left
    abandoned.__enter__()  # the process died while parked
    survivor = LongPollSlots(redis_url, cap=1, grace_s=0.5)

    with pytest.raises(TooManyLongPolls), survivor.hold("crash-test", 1.0):
        pass
    time.sleep(1.6)
    with survivor.hold("crash-test", 1.0):
        held = redis_lib.Redis.from_url(redis_url).zcard(f"{KEY_PREFIX}:crash-test")

    assert held == 1


def test_the_embedded_mode_caps_long_polls_in_process(postgres_url):
    app = create_app(Config(database_url=postgres_url, redis_url=None, long_polls_per_key=1))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'carol')}"}
    job = submit(client, auth, "echo", {}).get_json()
    tag = _tag(client, auth, job["id"])
    slots = app.extensions["long_poll_slots"]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        parked = pool.submit(_long_poll, app.test_client(), auth, job["id"], tag, 2)
        _wait_until(lambda: slots.held_locally(_key_id(auth)) == 1)
        refused = _long_poll(client, auth, job["id"], tag, 2)
        first = parked.result(timeout=10)

    assert refused.status_code == 429
    assert refused.get_json()["code"] == "too_many_long_polls"
    assert first.status_code == 304
    assert slots.held_locally(_key_id(auth)) == 0

"""Poll and submit budgets counted write-behind (backend/api/rate_counters.py, WriteBehindCounts): one
budget across processes, overrun by at most what a process accepts before its next flush; windows that roll over;
Redis going away under the flusher; a forked process's flusher."""
from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlparse

import pytest
import redis
from limits import parse

from backend.api.limits import KEY_PREFIX
from tests.conftest import make_key
from tests.helpers import CuttableProxy, submit

pytestmark = pytest.mark.integration

STATUS_POLL = "jobs.JobStatusView:poll:GET"


def _wait_until(condition, *, timeout_s: float = 5.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s} s"
        time.sleep(0.002)


def _key_id(api_key: str) -> str:
    return api_key.split("_")[1]


class _Budget:
    """One poll counter, as Redis holds it and as one app's process knows it."""

    def __init__(self, redis_url: str, notation: str, key_id: str, scope: str = STATUS_POLL) -> None:
        self.key = parse(notation).key_for(key_id, scope)
        self._store = redis.Redis.from_url(redis_url)

    def in_redis(self) -> int:
        return int(self._store.get(f"{KEY_PREFIX}:{self.key}") or 0)

    def exists_in_redis(self) -> bool:
        return bool(self._store.exists(f"{KEY_PREFIX}:{self.key}"))

    def known_to(self, app) -> int:
        return app.extensions["rate_limits"].written_behind_counts.get(self.key)

    def flushed(self, app, count: int) -> bool:
        """``app``'s hits are in Redis, and the answer is what ``app`` counts on."""
        return self.in_redis() == count and self.known_to(app) == count


class TestOneBudgetAcrossProcesses:
    @pytest.fixture
    def config(self, config):
        return config.with_overrides(rate_limit_poll="10/minute", rate_limit_submit="4/minute")

    def test_two_app_instances_refuse_once_their_sum_passes_the_budget_overrun_by_one_unheard_poll(
            self, config, app, api_key, auth, redis_url):
        from backend import create_app

        other = create_app(config)
        processes = [app, other]
        budget = _Budget(redis_url, "10/minute", _key_id(api_key))
        try:
            clients = [p.test_client() for p in processes]
            url = f"/api/ai/jobs/{submit(clients[0], auth).get_json()['id']}/status"
            codes = []
            for n in range(1, 15):  # alternately, each poll's flush landed before the next poll
                polled = processes[n % 2]
                codes.append(clients[n % 2].get(url, headers=auth).status_code)
                _wait_until(lambda polled=polled, n=n: budget.flushed(polled, n))
        finally:
            other.extensions["job_service"].notifier.close()

        # Each process counts on the other's polls up to its own last flush, so it has not heard of
        # the other's last one: poll 11 (10 in its view) is let through, the documented overrun of
        # what a process accepts before its next flush. Past that, both refuse, and every poll,
        # refused ones included, is counted once in Redis.
        assert codes == [200] * 11 + [429] * 3
        assert budget.in_redis() == 14

    def test_two_app_instances_share_a_submit_budget_the_same_way(self, config, app, api_key, auth, redis_url):
        from backend import create_app

        other = create_app(config)
        processes = [app, other]
        budget = _Budget(redis_url, "4/minute", _key_id(api_key), scope="jobs.Jobs:submit:POST")
        try:
            clients = [p.test_client() for p in processes]
            codes = []
            for n in range(1, 8):
                submitted = processes[n % 2]
                codes.append(submit(clients[n % 2], auth).status_code)
                _wait_until(lambda submitted=submitted, n=n: budget.flushed(submitted, n))
        finally:
            other.extensions["job_service"].notifier.close()

        assert codes == [202] * 5 + [429] * 2  # submit 5 is the one the other process had not heard of
        assert budget.in_redis() == 7


class TestWindows:
    @pytest.fixture
    def config(self, config):
        return config.with_overrides(rate_limit_poll="2 per 3 seconds")

    def test_a_window_that_rolls_over_is_counted_from_zero(self, app, client, auth, api_key, redis_url):
        budget = _Budget(redis_url, "2 per 3 seconds", _key_id(api_key))
        url = f"/api/ai/jobs/{submit(client, auth).get_json()['id']}/status"
        spent = [client.get(url, headers=auth).status_code for _ in range(3)]
        _wait_until(lambda: budget.flushed(app, 3))
        window_end_s = app.extensions["rate_limits"].written_behind_counts.get_expiry(budget.key)

        _wait_until(lambda: time.time() > window_end_s and not budget.exists_in_redis(), timeout_s=10)
        answers = [client.get(url, headers=auth) for _ in range(3)]

        assert spent == [200, 200, 429]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[0].headers["RateLimit"].startswith('"poll";r=1;')
        _wait_until(lambda: budget.flushed(app, 3))  # the new window holds the new polls only


def _redis_errors() -> float:
    from backend import metrics

    return metrics.REDIS_ERRORS.labels("redis")._value.get()


def test_redis_going_away_under_the_flusher_raises_nothing_and_loses_no_poll(config, redis_url, caplog):
    from backend import create_app

    target = urlparse(redis_url)
    proxy = CuttableProxy(target.hostname, target.port)
    app = create_app(config.with_overrides(
        redis_url=f"redis://127.0.0.1:{proxy.port}{target.path}", rate_limit_poll="5/minute"))
    limits = app.extensions["rate_limits"]
    key_id = _key_id(make_key(app, "alice"))
    budget = _Budget(redis_url, "5/minute", key_id)
    redis.Redis.from_url(redis_url).delete(f"{KEY_PREFIX}:{budget.key}")

    def poll():
        return limits.poll_spend("poll", key_id, "jobs.JobStatusView", "GET")

    caplog.set_level(logging.WARNING, logger="backend.api.limits")
    try:
        learned = poll()  # the window, from Redis
        proxy.cut()
        errors_before = _redis_errors()
        during = [poll(), poll()]
        _wait_until(lambda: _redis_errors() >= errors_before + 1)  # the flush failed
        after_a_failed_flush = [poll(), poll(), poll()]
        _wait_until(lambda: _redis_errors() >= errors_before + 2)  # and its retry, a backoff later
        in_redis_during_the_outage = budget.in_redis()
        proxy.mend()
        _wait_until(lambda: budget.flushed(app, 6), timeout_s=10)
    finally:
        app.extensions["job_service"].notifier.close()
        proxy.close()

    assert learned.allowed and learned.remaining == 4
    # Counted on in this process, the failed flush's polls kept: the budget still ends at 5.
    assert [(s.allowed, s.remaining) for s in during + after_a_failed_flush] == [
        (True, 3), (True, 2), (True, 1), (True, 0), (False, 0)]
    assert in_redis_during_the_outage == 1
    warnings = [r for r in caplog.records if "could not send rate-limit counts" in r.getMessage()]
    assert len(warnings) == 1  # one per outage, not one per failed flush


def test_a_forked_process_restarts_the_flusher_and_sends_its_own_polls(app, api_key, redis_url):
    limits = app.extensions["rate_limits"]
    key_id = _key_id(api_key)
    budget = _Budget(redis_url, "1200/minute", key_id)

    def poll():
        return limits.poll_spend("poll", key_id, "jobs.JobStatusView", "GET")

    poll(), poll()  # the parent knows the window and its flusher runs
    _wait_until(lambda: budget.flushed(app, 2))

    child = os.fork()
    if child == 0:  # the child: gunicorn's worker after the fork, in short
        exit_code = 1
        try:
            spends = [poll() for _ in range(3)]
            deadline = time.monotonic() + 5
            while budget.in_redis() != 5 and time.monotonic() < deadline:
                time.sleep(0.002)
            exit_code = 0 if budget.in_redis() == 5 and all(s.allowed for s in spends) else 2
        finally:
            os._exit(exit_code)
    _, status = os.waitpid(child, 0)
    poll()  # and the parent's flusher still runs too

    assert os.waitstatus_to_exitcode(status) == 0  # 2: the child's polls never reached Redis
    _wait_until(lambda: budget.flushed(app, 6))

"""A batch long poll listens to the caller's own jobs only: no timing side channel across owners."""
from __future__ import annotations

import concurrent.futures
import time

import pytest

from tests.conftest import make_key
from tests.helpers import submit

pytestmark = pytest.mark.integration
WAIT_S = 3


def test_another_owners_job_changing_never_wakes_my_batch_long_poll(app, client, auth):
    mine = submit(client, auth, "echo", {}).get_json()
    bob = {"Authorization": f"Bearer {make_key(app, 'bob')}"}
    theirs = submit(client, bob, "echo", {}).get_json()
    versions = {mine["id"]: mine["version"], theirs["id"]: theirs["version"]}
    notifier = app.extensions["job_service"].notifier

    def batch_long_poll():
        started = time.monotonic()
        answer = app.test_client().post(
            f"/api/ai/jobs/statuses?wait={WAIT_S}", json={"ids": list(versions), "versions": versions}, headers=auth
        )
        return answer, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = pool.submit(batch_long_poll)
        time.sleep(0.3)
        assert client.post(f"/api/ai/jobs/{theirs['id']}/cancel", headers=bob).status_code == 202
        while not poll.done():  # and keep signalling, as a running job does on each progress write
            notifier.publish(theirs["id"])
            time.sleep(0.1)
        answer, elapsed_s = poll.result()

    assert answer.status_code == 200
    body = answer.get_json()
    assert body["jobs"] == [] and body["unchanged"] == [mine["id"]] and body["not_found"] == [theirs["id"]]
    assert elapsed_s >= WAIT_S - 0.2, f"woken after {elapsed_s:.2f} s by another owner's job"


def test_my_own_job_changing_still_wakes_a_batch_long_poll_that_names_other_owners_jobs(app, client, auth):
    mine = submit(client, auth, "echo", {}).get_json()
    bob = {"Authorization": f"Bearer {make_key(app, 'bob')}"}
    theirs = submit(client, bob, "echo", {}).get_json()
    versions = {mine["id"]: mine["version"], theirs["id"]: theirs["version"], "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW": 1}

    def batch_long_poll():
        started = time.monotonic()
        answer = app.test_client().post(
            "/api/ai/jobs/statuses?wait=20", json={"ids": list(versions), "versions": versions}, headers=auth
        )
        return answer, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = pool.submit(batch_long_poll)
        time.sleep(0.5)
        client.post(f"/api/ai/jobs/{mine['id']}/cancel", headers=auth)
        answer, elapsed_s = poll.result(timeout=25)

    assert [j["status"] for j in answer.get_json()["jobs"]] == ["cancelled"]
    assert elapsed_s < 10

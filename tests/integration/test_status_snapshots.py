"""A poll answers from the job's status snapshot in Redis, never from a stale one, and from
PostgreSQL whenever the snapshot is missing, queued, or Redis is away."""
from __future__ import annotations

import json
from dataclasses import replace
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest
import redis
from sqlalchemy import event

from backend import create_app
from backend.api.schemas import BatchStatusSchema, JobStatusSchema, poll_hint_ms
from backend.extensions import db
from backend.jobs import queries
from backend.jobs.snapshots import KEY_PREFIX, RecentStatuses, RedisSnapshots, StatusSnapshot
from tests.conftest import make_key
from tests.helpers import CuttableProxy, free_port, submit

pytestmark = pytest.mark.integration


@contextmanager
def statements_sent(app):
    """Every SQL statement the app sends while the block runs."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def another_process(config):
    """Make a second app, as another web process started now would be, its listener subscribed."""
    made = []

    def start():
        other = create_app(config)
        notifier = other.extensions["job_service"].notifier
        made.append(notifier)
        deadline = time.monotonic() + 5
        while notifier.epoch() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return other

    yield start
    for notifier in made:
        notifier.close()


def _running(app, job_id: str, **progress):
    service = app.extensions["job_service"]
    with app.app_context():
        claim = service.attempts.claim(job_id)
        if progress:
            service.attempts.record_progress(claim, **progress)
    return claim


def test_the_hand_built_answers_are_what_the_status_schemas_dump(app, client, auth):
    service = app.extensions["job_service"]
    queued = submit(client, auth, "echo", {}).get_json()["id"]
    running = submit(client, auth, "echo", {}).get_json()["id"]
    failed = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, running, percent=42.5, stage="plan", message='Planned "3" shapes \u00e9')
    claim = _running(app, failed)
    with app.app_context():
        service.attempts.fail(claim, "unintelligible_prompt", "No shape to draw.")
    ids = [queued, running, failed]

    with app.test_request_context():
        placed = queries.get_many("alice", ids)
        jobs = [placed[job_id] for job_id in ids]
        expected = [JobStatusSchema().dump(job) for job in jobs]
        batch_expected = BatchStatusSchema().dump(
            {"jobs": jobs, "unchanged": [], "not_found": ["job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"],
             "poll_after_ms": min(h for h in (poll_hint_ms(job) for job in jobs) if h is not None)})
    polled = [client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).get_data(as_text=True) for job_id in ids]
    batch = client.post("/api/ai/jobs/statuses", headers=auth,
                        json={"ids": [*ids, "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"]}).get_data(as_text=True)

    # Equal, members in the schema's order (json keeps it), and the hint the only member that may
    # differ between the two answers (it follows the load of the moment).
    for answer, schema_dump in zip(polled, expected):
        assert json.loads(answer) == schema_dump
        assert list(json.loads(answer)) == list(schema_dump)
    assert json.loads(batch) == batch_expected
    assert list(json.loads(batch)) == list(batch_expected)
    assert [list(job) for job in json.loads(batch)["jobs"]] == [list(e) for e in expected]


def test_a_poll_of_a_running_job_reads_no_database(app, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, job_id, percent=10.0, stage="work", message=None)
    client.get(f"/api/ai/jobs/{job_id}/status", headers=auth)  # the key is cached from here on

    with statements_sent(app) as sent:
        full = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth)
        conditional = client.get(f"/api/ai/jobs/{job_id}/status",
                                 headers={**auth, "If-None-Match": full.headers["ETag"]})
        batch = client.post("/api/ai/jobs/statuses", json={"ids": [job_id]}, headers=auth)

    assert sent == []
    assert full.status_code == 200 and full.get_json()["progress"]["percent"] == 10.0
    assert conditional.status_code == 304
    assert batch.get_json()["jobs"][0]["version"] == full.get_json()["version"]


def test_a_queued_job_reads_its_place_in_the_queue_from_the_database(app, client, auth):
    first = submit(client, auth, "echo", {}).get_json()["id"]
    second = submit(client, auth, "echo", {}).get_json()["id"]
    assert client.get(f"/api/ai/jobs/{second}/status", headers=auth).get_json()["queue_position"] == 1

    _running(app, first)

    answer = client.get(f"/api/ai/jobs/{second}/status", headers=auth)
    assert answer.get_json()["queue_position"] == 0
    assert answer.headers["ETag"] == 'W/"v1.q0"'


def test_a_queued_job_claimed_while_its_poll_reads_it_never_answers_queued_without_a_place(app, client, auth):
    # A worker claims the job right after the poll's first statement: the poll must not piece its
    # answer together from two moments (queued from one, "not queued any more" from the next).
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    with app.app_context():
        engine = db.engine
    claimed = []

    def claim_once(conn, cursor, statement, parameters, context, executemany):
        if not claimed and "FROM jobs" in statement:
            claimed.append(job_id)  # first: the claim's own statements pass through here too
            worker = threading.Thread(target=_running, args=(app, job_id))
            worker.start()
            worker.join()

    event.listen(engine, "after_cursor_execute", claim_once)
    try:
        answer = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth)
    finally:
        event.remove(engine, "after_cursor_execute", claim_once)

    assert claimed, "the claim never ran: the poll read no job row"
    with app.app_context():
        assert app.extensions["job_service"].get("alice", job_id).status == "running"
    body = answer.get_json()
    assert (body["status"], body["queue_position"], answer.headers["ETag"]) == ("queued", 0, 'W/"v1.q0"')


def test_a_poll_without_a_snapshot_reads_the_database_and_stores_one(app, another_process, client, auth,
                                                                    redis_url):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, job_id, percent=30.0, stage="work", message="a third")
    store = redis.Redis.from_url(redis_url)
    store.delete(KEY_PREFIX + job_id)
    app = another_process()  # one that never heard of the job
    client = app.test_client()

    with statements_sent(app) as sent:
        answer = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth)
    with statements_sent(app) as sent_after:
        again = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth)

    assert answer.get_json()["progress"]["message"] == "a third"
    assert sent, "the miss must have read PostgreSQL"
    assert store.exists(KEY_PREFIX + job_id)
    assert sent_after == [] and again.get_json() == answer.get_json()


def test_another_owners_snapshot_answers_404_like_the_database(app, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, job_id)
    mallory = {"Authorization": f"Bearer {make_key(app, 'mallory')}"}

    status = client.get(f"/api/ai/jobs/{job_id}/status", headers=mallory)
    batch = client.post("/api/ai/jobs/statuses", json={"ids": [job_id]}, headers=mallory)

    assert status.status_code == 404
    assert batch.get_json()["not_found"] == [job_id]


def test_an_older_snapshot_never_replaces_a_newer_one(app, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    service = app.extensions["job_service"]
    with app.app_context():
        before_progress = StatusSnapshot.of(service.get("alice", job_id))  # version 1
    _running(app, job_id, percent=50.0, stage="work", message=None)  # version 3

    service.snapshots.refill([before_progress])  # a slow reader writing back what it read
    service.snapshots.committed(before_progress)  # or a slow writer of an older commit

    assert service.snapshots.read([job_id])[job_id].version == 3
    assert client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).get_json()["version"] == 3


def test_polls_answer_from_the_database_while_redis_is_away(config, postgres_url):
    app = create_app(config.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {make_key(app, 'alice')}"}
    job_id = submit(client, auth, "echo", {}).get_json()["id"]

    answers = [client.get(f"/api/ai/jobs/{job_id}/status", headers=auth) for _ in range(3)]
    batch = client.post("/api/ai/jobs/statuses", json={"ids": [job_id]}, headers=auth)

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].get_json()["status"] == "queued"
    assert batch.get_json()["jobs"][0]["id"] == job_id


def test_with_redis_unreachable_job_writes_do_not_stall_on_their_snapshots(config):
    snapshots = RedisSnapshots(f"redis://127.0.0.1:{free_port()}/0", ttl_s=60, channel="c")

    started = time.monotonic()
    for version in range(20):
        snapshots.committed(_snapshot("job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW", version))

    assert time.monotonic() - started < 2.0  # one failed connect, then skipped for a while


class _QuickRetry(RedisSnapshots):
    REDIS_DOWN_BACKOFF_S = 0.05


def test_a_snapshot_that_missed_a_change_in_an_outage_is_not_served_afterwards(redis_url):
    """Process B commits v3 while it cannot reach Redis: A's v2 snapshot must not survive B's return."""
    target = urlparse(redis_url)
    job_id = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"
    a = RedisSnapshots(redis_url, ttl_s=60, channel="c")
    a.committed(_snapshot(job_id, 2))
    proxy = CuttableProxy(target.hostname, target.port)
    b = _QuickRetry(f"redis://127.0.0.1:{proxy.port}{target.path}", ttl_s=60, channel="c")
    proxy.cut()

    b.committed(_snapshot(job_id, 3))  # lost: Redis is away for B
    assert a.read([job_id])[job_id].version == 2  # stale, until B is back

    proxy.mend()
    time.sleep(0.1)  # past B's backoff
    b.committed(_snapshot("job_01JDQ7Z8K3M4N5P6Q7R8S9T0VX", 1))  # B's next write, of any job
    try:
        assert job_id not in a.read([job_id])  # a miss: the next poll reads PostgreSQL
    finally:
        proxy.close()


def _snapshot(job_id: str, version: int) -> StatusSnapshot:
    return StatusSnapshot(id=job_id, owner="alice", status="running", version=version, started_at=None,
                          document_json=json.dumps({"id": job_id, "version": version}))


@contextmanager
def redis_round_trips():
    """Commands this thread sends to Redis while the block runs (the client's real connections)."""
    sent = {"count": 0}
    original = redis.connection.AbstractConnection.send_packed_command
    me = threading.get_ident()

    def counted(self, command, check_health=True):
        if threading.get_ident() == me:
            sent["count"] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted
    try:
        yield sent
    finally:
        redis.connection.AbstractConnection.send_packed_command = original


def _heard(app, job_id: str, version: int, timeout_s: float = 5.0) -> None:
    """Until this process's listener has heard version ``version`` of the job."""
    snapshots = app.extensions["job_service"].snapshots
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        head = snapshots.known(job_id)
        if head is not None and head.version >= version:
            return
        time.sleep(0.01)
    raise AssertionError(f"version {version} of {job_id} was never heard")


def test_a_poll_of_a_job_this_process_knows_reads_no_snapshot_from_redis(app, another_process, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, job_id, percent=5.0, stage="work", message=None)
    warm_up = submit(client, auth, "echo", {}).get_json()["id"]
    client = another_process().test_client()  # it never heard of the job: only Redis has it
    client.get(f"/api/ai/jobs/{warm_up}/status", headers=auth)  # its connections and key cache

    with redis_round_trips() as first:
        tag = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]
    with redis_round_trips() as conditional:
        unchanged = client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": tag})
    with redis_round_trips() as full:
        again = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth)

    assert unchanged.status_code == 304 and again.get_json()["progress"]["percent"] == 5.0
    # The snapshot; then the 304 budget's first window in this process; then nothing (the poll
    # budgets are counted write-behind, and the warm-up poll taught this process the poll window).
    assert (first["count"], conditional["count"], full["count"]) == (1, 1, 0)


def test_a_change_heard_by_the_listener_turns_the_next_conditional_poll_into_a_200(app, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    claim = _running(app, job_id, percent=5.0, stage="work", message=None)
    tag = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]
    assert client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": tag}).status_code == 304

    with app.app_context():
        app.extensions["job_service"].attempts.record_progress(claim, 60.0, "work", "more")
    _heard(app, job_id, 4)
    changed = client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": tag})

    assert changed.status_code == 200
    assert changed.get_json()["progress"]["percent"] == 60.0


def test_a_known_status_of_another_owners_job_answers_404_not_304(app, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, job_id)
    tag = client.get(f"/api/ai/jobs/{job_id}/status", headers=auth).headers["ETag"]
    mallory = {"Authorization": f"Bearer {make_key(app, 'mallory')}"}

    answer = client.get(f"/api/ai/jobs/{job_id}/status", headers={**mallory, "If-None-Match": tag})

    assert answer.status_code == 404


def test_known_statuses_are_not_served_across_a_reconnect_nor_after_a_generation_bump():
    epoch = {"now": 1}
    latest = RecentStatuses(epoch=lambda: epoch["now"])
    job_id = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"
    latest.offer(_snapshot(job_id, 3), 1)
    latest.offer(_snapshot(job_id, 2), 1)  # an older read, arriving late
    assert latest.get(job_id).version == 3

    epoch["now"] = 2  # the listener reconnected: signals may have been missed
    assert latest.get(job_id) is None

    latest.offer(_snapshot(job_id, 3), 2)
    latest.heard("*")  # a process that missed a snapshot write is back
    assert latest.get(job_id) is None

    epoch["now"] = None  # not subscribed at all
    latest.offer(_snapshot(job_id, 3), None)
    assert latest.get(job_id) is None


def test_a_status_read_again_after_its_minute_is_trusted_for_another_minute():
    """An unchanged job polled for longer than ``ttl_s`` must not fall back to Redis on every poll."""
    now = {"s": 0.0}
    latest = RecentStatuses(epoch=lambda: 1, ttl_s=60.0, clock=lambda: now["s"])
    job_id = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"
    latest.offer(_snapshot(job_id, 3), 1)

    now["s"] = 61.0
    assert latest.get(job_id) is None  # the backstop: a minute without hearing of it
    latest.offer(_snapshot(job_id, 3), 1)  # the poll that missed read it from Redis: still version 3

    assert latest.get(job_id).version == 3
    now["s"] = 122.0
    assert latest.get(job_id) is None  # a minute after that read, not for ever


def test_a_job_queued_again_is_not_answered_from_what_was_heard():
    latest = RecentStatuses(epoch=lambda: 1)
    running = _snapshot("job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW", 3)
    latest.heard(running.signal())
    assert latest.get(running.id).document_json == running.document_json

    latest.heard(replace(running, status="queued", version=4).signal())  # a retry

    assert latest.get(running.id) is None  # its poll reads its place in the queue


def test_a_client_holding_a_newer_version_than_this_process_heard_of_is_answered_from_redis(app, client, auth):
    """The client changed the job through another process a moment ago; its signal is on the way."""
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    _running(app, job_id, percent=5.0, stage="work", message=None)
    snapshots = app.extensions["job_service"].snapshots
    _heard(app, job_id, 3)
    with app.app_context():
        held = StatusSnapshot.of(app.extensions["job_service"].get("alice", job_id))
    newer = replace(held, version=4, document_json=held.document_json.replace('"version":3', '"version":4'))
    snapshots.committed(newer, signal=False)  # in Redis, not yet heard here
    assert snapshots.known(job_id).version == 3

    conditional = client.get(f"/api/ai/jobs/{job_id}/status", headers={**auth, "If-None-Match": 'W/"v4"'})
    batch = client.post("/api/ai/jobs/statuses", json={"ids": [job_id], "versions": {job_id: 4}}, headers=auth)

    assert conditional.status_code == 304  # not a 200 going back to version 3
    assert batch.get_json()["unchanged"] == [job_id]

"""The status ETag is honest: weak, since the poll hint in the body may change under one tag, and
one answer's Retry-After and poll_after_ms come from one computation of the hint."""
from __future__ import annotations

import pytest

from backend.api.schemas import JobStatusSchema, poll_hint_ms
from backend.jobs.hints import retry_after_s
from tests.helpers import submit

pytestmark = pytest.mark.integration


def test_the_status_tag_is_weak_and_either_form_of_it_gets_a_304(client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    tag = client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth).headers["ETag"]

    as_sent = client.get(f"/api/ai/jobs/{job['id']}/status", headers={**auth, "If-None-Match": tag})
    opaque = client.get(f"/api/ai/jobs/{job['id']}/status",
                        headers={**auth, "If-None-Match": tag.removeprefix("W/")})
    in_a_list = client.get(f"/api/ai/jobs/{job['id']}/status",
                           headers={**auth, "If-None-Match": f'W/"v0", {tag}'})

    assert tag == 'W/"v1.q0"'
    assert [as_sent.status_code, opaque.status_code, in_a_list.status_code] == [304, 304, 304]
    assert as_sent.headers["ETag"] == tag


def test_one_answer_computes_its_poll_hint_once_however_the_load_moves(app, client, auth):
    job_id = submit(client, auth, "echo", {}).get_json()["id"]
    service, gauge = app.extensions["job_service"], app.extensions["load_gauge"]

    with app.test_request_context():
        job = service.get("alice", job_id)
        header_ms = poll_hint_ms(job)  # what the Retry-After header was built from
        for _ in range(64):  # meanwhile, the process got busy: hints are stretched now
            gauge.enter()
        try:
            body_ms = JobStatusSchema().dump(job)["poll_after_ms"]
        finally:
            for _ in range(64):
                gauge.leave()

    assert body_ms == header_ms


def test_every_answer_agrees_with_itself_on_the_poll_hint(client, auth):
    job = submit(client, auth, "echo", {}).get_json()

    answers = [client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth) for _ in range(20)]

    for answer in answers:
        assert answer.headers.get("Retry-After") == retry_after_s(answer.get_json()["poll_after_ms"])

"""The job API end to end: real PostgreSQL, a real Dramatiq worker on real Redis."""
from __future__ import annotations

import re

import pytest

from tests.conftest import make_key
from tests.helpers import submit, wait_for_status

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def test_a_submitted_canvas_job_is_polled_to_success_with_its_shapes(client, auth, worker):
    response = submit(client, auth, "canvas", {"prompt": "three red circles in a row"})

    assert response.status_code == 202
    job = response.get_json()
    assert re.fullmatch(r"job_[0-9A-HJKMNP-TV-Z]{26}", job["id"])
    assert response.headers["Location"] == f"/api/ai/jobs/{job['id']}"
    assert int(response.headers["Retry-After"]) >= 1
    assert job["status"] == "queued" and job["version"] == 1

    final = wait_for_status(client, job["id"], auth)
    assert final["status"] == "succeeded"
    assert final["poll_after_ms"] is None
    assert final["progress"]["percent"] == 100.0

    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    shapes = [o for o in details["result"]["objects"] if o["type"] == "ellipse"]
    assert len(shapes) == 3 and {s["fill"] for s in shapes} != {"none"}
    assert details["attempts"] == 1
    assert details["links"]["status"] == f"/api/ai/jobs/{job['id']}/status"
    assert details["started_at"] <= details["finished_at"]


def test_the_status_body_is_compact_and_carries_a_poll_hint_while_running(client, auth, worker):
    job = submit(client, auth, "echo", {"steps": 40, "delay_ms": 50}).get_json()
    running = wait_for_status(client, job["id"], auth, statuses={"running"})

    assert set(running) == {
        "id", "status", "progress", "version", "created_at", "started_at", "finished_at",
        "updated_at", "estimated_completion_at", "queue_position", "error", "poll_after_ms",
    }
    assert running["poll_after_ms"] > 0
    response = client.get(f"/api/ai/jobs/{job['id']}/status", headers=auth)
    assert response.headers["Cache-Control"] == "no-cache"
    assert int(response.headers["Retry-After"]) >= 1
    client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)


def test_every_change_is_in_the_history_oldest_first(client, auth, worker):
    job = submit(client, auth, "echo", {"steps": 2}).get_json()
    final = wait_for_status(client, job["id"], auth)

    events = client.get(f"/api/ai/jobs/{job['id']}/events", headers=auth).get_json()["events"]
    assert [e["seq"] for e in events] == list(range(1, final["version"] + 1))
    assert events[0]["status"] == "queued" and events[-1]["status"] == "succeeded"
    assert "running" in {e["status"] for e in events}
    later = client.get(f"/api/ai/jobs/{job['id']}/events?after=2", headers=auth).get_json()["events"]
    assert [e["seq"] for e in later] == list(range(3, final["version"] + 1))


def test_a_permanent_agent_error_fails_the_job_at_once_with_its_code(client, auth, worker):
    job = submit(client, auth, "echo", {"fail": "permanent"}).get_json()
    final = wait_for_status(client, job["id"], auth)

    assert final["status"] == "failed"
    assert final["error"] == {
        "code": "echo_failure",
        "message": "The echo agent failed on purpose (permanent).",
        "retryable": False,
    }
    assert client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()["attempts"] == 1


def test_a_transient_error_is_retried_until_the_attempts_run_out(client, auth, worker):
    job = submit(client, auth, "echo", {"fail": "transient"}).get_json()
    final = wait_for_status(client, job["id"], auth)

    details = client.get(f"/api/ai/jobs/{job['id']}", headers=auth).get_json()
    assert final["status"] == "failed"
    assert details["attempts"] == 3
    assert final["error"]["code"] == "transient_error"
    assert "gave up after 3 attempts" in final["error"]["message"]
    events = client.get(f"/api/ai/jobs/{job['id']}/events", headers=auth).get_json()["events"]
    starts = [e["message"] for e in events if e["message"].endswith("started")]
    retries = [e for e in events if e["status"] == "queued" and "retrying" in e["message"]]
    assert starts == ["Attempt 1 started", "Attempt 2 started", "Attempt 3 started"]
    assert len(retries) == 2


def test_an_unintelligible_prompt_fails_with_a_reason_not_a_stack_trace(client, auth, worker):
    job = submit(client, auth, "canvas", {"prompt": "asdf qwerty zxcv"}).get_json()
    final = wait_for_status(client, job["id"], auth)

    assert final["status"] == "failed"
    assert final["error"]["code"] == "unintelligible_prompt"
    assert "Traceback" not in final["error"]["message"]


def test_a_queued_job_is_cancelled_at_once(client, auth):
    job = submit(client, auth, "echo", {}).get_json()  # no worker: it stays queued

    response = client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)

    assert response.status_code == 202
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["cancel_requested_at"] is not None


def test_a_repeated_cancel_answers_202_with_the_cancelled_job(client, auth):
    job = submit(client, auth, "echo", {}).get_json()
    first = client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)

    again = client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)  # the first 202 was lost

    assert again.status_code == 202
    assert again.get_json()["status"] == "cancelled"
    assert again.get_json()["version"] == first.get_json()["version"]


def test_a_running_job_stops_at_its_next_checkpoint_when_cancelled(client, auth, worker):
    job = submit(client, auth, "echo", {"steps": 100, "delay_ms": 50}).get_json()
    wait_for_status(client, job["id"], auth, statuses={"running"})

    response = client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)
    assert response.status_code == 202
    assert response.get_json()["cancel_requested_at"] is not None

    final = wait_for_status(client, job["id"], auth, timeout_s=5)
    assert final["status"] == "cancelled"
    assert final["progress"]["percent"] < 100


def test_cancelling_a_finished_job_is_a_conflict(client, auth, worker):
    job = submit(client, auth, "echo", {}).get_json()
    wait_for_status(client, job["id"], auth)

    response = client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=auth)

    assert response.status_code == 409
    assert response.content_type == PROBLEM
    assert response.get_json()["code"] == "job_already_finished"


def test_resubmitting_with_the_same_request_id_and_body_returns_the_first_job(client, auth):
    first = submit(client, auth, "echo", {"payload": 1}, request_id="order-7:render")
    again = submit(client, auth, "echo", {"payload": 1}, request_id="order-7:render")

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    listed = client.get("/api/ai/jobs?request_id=order-7:render", headers=auth).get_json()["jobs"]
    assert [j["id"] for j in listed] == [first.get_json()["id"]]


def test_reusing_a_request_id_with_a_different_body_is_a_conflict(client, auth):
    first = submit(client, auth, "echo", {"payload": 1}, request_id="same-key")
    other = submit(client, auth, "echo", {"payload": 2}, request_id="same-key")

    assert other.status_code == 409
    assert other.get_json()["code"] == "request_id_conflict"
    assert first.get_json()["id"] in other.get_json()["detail"]


def test_owners_see_only_their_own_jobs(app, client, auth):
    bob = {"Authorization": f"Bearer {make_key(app, 'bob')}"}
    job = submit(client, auth, "echo", {}, request_id="shared-name").get_json()

    assert client.get(f"/api/ai/jobs/{job['id']}", headers=bob).status_code == 404
    assert client.get(f"/api/ai/jobs/{job['id']}/status", headers=bob).status_code == 404
    assert client.get(f"/api/ai/jobs/{job['id']}/events", headers=bob).status_code == 404
    assert client.post(f"/api/ai/jobs/{job['id']}/cancel", headers=bob).status_code == 404
    assert client.get("/api/ai/jobs", headers=bob).get_json()["jobs"] == []
    # request_id is unique per owner, so bob may use the same one for his own job.
    assert submit(client, bob, "echo", {}, request_id="shared-name").status_code == 202


def test_the_list_is_newest_first_and_pages_with_an_opaque_cursor(client, auth):
    ids = [submit(client, auth, "echo", {"payload": i}).get_json()["id"] for i in range(5)]

    first = client.get("/api/ai/jobs?limit=2", headers=auth)
    page1 = first.get_json()
    assert [j["id"] for j in page1["jobs"]] == ids[::-1][:2]
    assert 'rel="next"' in first.headers["Link"] and page1["next_cursor"] in first.headers["Link"]

    page2 = client.get(f"/api/ai/jobs?limit=2&cursor={page1['next_cursor']}", headers=auth).get_json()
    page3 = client.get(f"/api/ai/jobs?limit=2&cursor={page2['next_cursor']}", headers=auth)
    assert [j["id"] for j in page2["jobs"]] == ids[::-1][2:4]
    assert [j["id"] for j in page3.get_json()["jobs"]] == ids[:1]
    assert page3.get_json()["next_cursor"] is None and "Link" not in page3.headers


def test_the_list_filters_by_status_and_agent(client, auth):
    kept = submit(client, auth, "echo", {}).get_json()
    cancelled = submit(client, auth, "echo", {}).get_json()
    client.post(f"/api/ai/jobs/{cancelled['id']}/cancel", headers=auth)

    queued = client.get("/api/ai/jobs?status=queued", headers=auth).get_json()["jobs"]
    canvas = client.get("/api/ai/jobs?agent=canvas", headers=auth).get_json()["jobs"]
    assert [j["id"] for j in queued] == [kept["id"]]
    assert canvas == []


def test_the_agents_are_listed_with_their_input_schema(client, auth):
    agents = client.get("/api/ai/agents", headers=auth).get_json()["agents"]

    by_name = {a["name"]: a for a in agents}
    assert set(by_name) == {"canvas", "echo"}
    assert "prompt" in by_name["canvas"]["input_schema"]["properties"]
    assert by_name["canvas"]["input_schema"]["required"] == ["prompt"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/ai/jobs"),
        ("post", "/api/ai/jobs"),
        ("get", "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"),
        ("get", "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/status"),
        ("post", "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/cancel"),
        ("get", "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/events"),
        ("get", "/api/ai/agents"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer jobs_0011_nope"])
def test_every_api_endpoint_demands_a_valid_key(client, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(client, method)(path, headers=headers)

    assert response.status_code == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_stops_working_at_once(app, client, auth, api_key):
    from backend import keys

    assert client.get("/api/ai/jobs", headers=auth).status_code == 200
    with app.app_context():
        keys.revoke_key(api_key.split("_")[1])

    assert client.get("/api/ai/jobs", headers=auth).status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/api/ai/jobs/123", "/api/ai/jobs/job_short", "/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VU/status",
     "/api/ai/jobs/JOB_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/events", "/api/ai/jobs/job_01jdq7z8k3m4n5p6q7r8s9t0vw"],
)
def test_a_malformed_job_id_is_a_bad_request_naming_the_id(client, auth, path):
    response = client.get(path, headers=auth)

    assert response.status_code == 400
    assert response.content_type == PROBLEM
    assert response.get_json()["code"] == "malformed_job_id"


def test_an_unknown_job_is_not_found(client, auth):
    response = client.get("/api/ai/jobs/job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW/status", headers=auth)

    assert response.status_code == 404
    body = response.get_json()
    assert body["type"] == "about:blank" and body["title"] == "Not Found" and body["status"] == 404


def test_a_body_that_is_not_json_is_a_bad_request(client, auth):
    response = client.post(
        "/api/ai/jobs", data="{not json", headers=dict(auth, **{"Content-Type": "application/json"})
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["detail"]


def test_a_body_of_another_media_type_is_unsupported(client, auth):
    response = client.post("/api/ai/jobs", data="prompt=x", headers=dict(auth, **{"Content-Type": "text/plain"}))

    assert response.status_code == 415
    assert response.content_type == PROBLEM


def test_a_body_over_the_limit_is_too_large(client, auth):
    response = submit(client, auth, "echo", {"payload": "x" * 70_000})

    assert response.status_code == 413
    assert response.content_type == PROBLEM


@pytest.mark.parametrize(
    "body, field",
    [
        ({"agent": "echo"}, "input"),
        ({"agent": "echo", "input": {}, "surprise": 1}, "surprise"),
        ({"agent": "echo", "input": {}, "request_id": "has space"}, "request_id"),
        ({"agent": "echo", "input": {}, "request_id": "x" * 129}, "request_id"),
        ({"agent": "echo", "input": []}, "input"),
        ({"agent": "nope", "input": {}}, "agent"),
        ({"agent": "echo", "input": {"steps": -1}}, "steps"),
        ({"agent": "canvas", "input": {}}, "prompt"),
        ({"agent": "canvas", "input": {"prompt": "a star", "colour": "red"}}, "colour"),
    ],
)
def test_a_body_that_breaks_the_schema_is_unprocessable_naming_the_field(client, auth, body, field):
    response = client.post("/api/ai/jobs", json=body, headers=auth)

    assert response.status_code == 422
    problem = response.get_json()
    assert response.content_type == PROBLEM
    assert field in problem["detail"]
    assert "errors" in problem


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=abc", "status=done", "cursor=%%%", "request_id=bad%20id"],
)
def test_bad_list_parameters_are_rejected_with_a_problem(client, auth, query):
    response = client.get(f"/api/ai/jobs?{query}", headers=auth)

    assert response.status_code in (400, 422)
    assert response.content_type == PROBLEM


def test_a_forged_cursor_is_a_bad_request(client, auth):
    response = client.get("/api/ai/jobs?cursor=bm90LWEtY3Vyc29y", headers=auth)

    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_cursor"


def test_the_openapi_document_describes_every_job_endpoint_with_problem_errors(client):
    spec = client.get("/api/openapi.json").get_json()

    paths = spec["paths"]
    for path in ["/api/ai/jobs", "/api/ai/jobs/{job_id}", "/api/ai/jobs/{job_id}/status",
                 "/api/ai/jobs/{job_id}/cancel", "/api/ai/jobs/{job_id}/events", "/api/ai/agents",
                 "/health/live", "/health/ready"]:
        assert path in paths, path
    not_found = spec["components"]["responses"]["NOT_FOUND"]["content"]
    assert list(not_found) == ["application/problem+json"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert client.get("/api/docs").status_code == 200


def test_readiness_reports_the_database_and_the_broker(client):
    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.get_json()["checks"]["database"]["ok"] is True
    assert response.get_json()["checks"]["broker"]["ok"] is True
    assert client.get("/health/live").status_code == 200


def test_a_wrong_method_is_a_problem_naming_the_allowed_ones(client, auth):
    response = client.delete("/api/ai/jobs", headers=auth)

    assert response.status_code == 405
    assert response.content_type == PROBLEM
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]


def test_every_job_operation_requires_the_bearer_scheme_in_the_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()

    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/health/live"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/api/ai/jobs/{job_id}/status"]["get"]


def test_a_body_nested_too_deeply_is_refused_before_it_is_parsed(client, auth):
    body = '{"agent": "echo", "input": {"payload": ' + "[" * 20000 + "]" * 20000 + "}}"

    response = client.post("/api/ai/jobs", data=body, headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.get_json()["code"] == "json_too_deep"


def test_an_oversized_authorization_header_is_just_an_invalid_key(client):
    response = client.get("/api/ai/jobs", headers={"Authorization": "Bearer " + "k" * 5000})

    assert response.status_code == 401


def test_no_key_or_prompt_text_reaches_the_logs(client, auth, api_key, worker, caplog):
    caplog.set_level("DEBUG")
    secret_prompt = "three red circles in a row for zanzibar-7731"

    job = submit(client, auth, "canvas", {"prompt": secret_prompt}).get_json()
    wait_for_status(client, job["id"], auth)
    submit(client, auth, "canvas", {"prompt": "zanzibar-7731 gibberish qwerty"})
    client.get("/api/ai/jobs", headers={"Authorization": "Bearer jobs_0000_wrong-zanzibar"})

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "the run logged something, so the check below means something"
    assert api_key.split("_", 2)[2] not in logged
    assert "zanzibar" not in logged


def test_an_ops_scoped_key_cannot_use_the_job_api(app, client):
    from backend import keys

    with app.app_context():
        ops_key = keys.create_key("ops-team", scope="ops").key
    headers = {"Authorization": f"Bearer {ops_key}"}

    submitted = submit(client, headers, "echo", {})
    listed = client.get("/api/ai/jobs", headers=headers)

    for response in (submitted, listed):
        assert response.status_code == 403
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "jobs_scope_required"

"""Error details that say what to do: the limit that was hit, the trimmed prompt, the id's case, a prompt that fits."""
from __future__ import annotations

import re

from backend.agents.canvas.suggestion import draws
from tests.helpers import submit, wait_for_status


def test_a_body_over_the_limit_names_the_limit_in_bytes(client, auth):
    response = submit(client, auth, "echo", {"payload": "x" * 70_000})

    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == "body_too_large"
    assert "limit of 65536 bytes" in body["detail"]
    assert re.search(r"body of \d+ bytes", body["detail"])


def test_a_blank_prompt_is_refused_saying_it_was_trimmed(client, auth):
    response = submit(client, auth, "canvas", {"prompt": "   \n\t "})

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "invalid_input"
    assert "empty once leading and trailing spaces are trimmed" in body["detail"]


def test_a_lower_case_job_id_is_told_that_ids_are_upper_case(client, auth):
    response = client.get("/api/ai/jobs/job_01jdq7z8k3m4n5p6q7r8s9t0vw/status", headers=auth)

    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "malformed_job_id"
    assert "upper case" in body["detail"]
    assert "did you mean job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW?" in body["detail"]


def test_an_id_that_is_wrong_in_other_ways_gets_no_case_hint(client, auth):
    response = client.get("/api/ai/jobs/job_short/status", headers=auth)

    assert response.status_code == 400
    assert "upper case" not in response.get_json()["detail"]


def test_a_job_that_does_not_fit_suggests_a_prompt_that_fits_its_canvas(client, auth, worker):
    job = submit(client, auth, "canvas", {"prompt": "fifty circles in a row", "width": 200, "height": 200}).get_json()

    final = wait_for_status(client, job["id"], auth)

    assert final["status"] == "failed"
    assert final["error"]["code"] == "does_not_fit"
    suggestion = re.search(r"try '(.+)', which fits", final["error"]["message"]).group(1)
    assert draws(suggestion, 200, 200)
    retried = submit(client, auth, "canvas", {"prompt": suggestion, "width": 200, "height": 200}).get_json()
    assert wait_for_status(client, retried["id"], auth)["status"] == "succeeded"


def test_errors_found_by_the_job_service_sit_under_the_json_location_as_docs_api_md_shows(client, auth):
    invalid = submit(client, auth, "canvas", {"prompt": "x" * 2001}).get_json()
    unknown = submit(client, auth, "nope", {}).get_json()

    assert invalid["code"] == "invalid_input"
    assert invalid["errors"] == {"json": {"input": {"prompt": ["Longer than maximum length 2000."]}}}
    assert "json.input.prompt" in invalid["detail"]
    assert unknown["code"] == "unknown_agent"
    assert list(unknown["errors"]) == ["json"] and "agent" in unknown["errors"]["json"]

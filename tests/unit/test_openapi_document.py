"""The OpenAPI document as a contract: committed, complete, and the same as what the app serves."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from backend import create_app
from backend.config import Config

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("openapi_script", ROOT / "scripts" / "openapi.py")
openapi_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(openapi_script)
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict:
    app = create_app(Config(database_url="sqlite://"))
    return app.test_client().get("/api/openapi.json").get_json()


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_committed_document_equals_the_live_one_so_every_contract_change_shows_in_a_diff():
    committed = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_script.live_document_text(), (
        "docs/openapi.json has drifted from the live document: run `make openapi` and review the diff"
    )


def test_every_operation_has_a_stable_camel_case_id_a_summary_a_description_and_an_example(document):
    ids = []
    for path, method, operation in _operations(document):
        where = f"{method.upper()} {path}"
        assert operation.get("operationId", "")[:1].islower(), where
        assert "_" not in operation["operationId"], where
        assert operation.get("summary") and operation.get("description"), where
        success = [r for code, r in operation["responses"].items() if code.startswith("2")]
        assert any("example" in media or "examples" in media for r in success
                   for media in r.get("content", {}).values()), f"{where} has no example"
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))
    assert {"submitJob", "getJobStatus", "listJobs", "getJob", "cancelJob", "listJobEvents",
            "getJobStatuses", "listAgents", "getLiveness", "getReadiness"} <= set(ids)


def test_accepted_answers_declare_operation_location_and_the_poll_declares_its_conditional_request(document):
    paths = document["paths"]
    for path, code in (("/api/ai/jobs", "202"), ("/api/ai/jobs/{job_id}/cancel", "202")):
        declared = paths[path]["post"]["responses"][code]["headers"]
        assert declared["Operation-Location"]["required"] is True
        assert {"Location", "Retry-After", "Cache-Control", "RateLimit", "RateLimit-Policy"} <= set(declared)
    status = paths["/api/ai/jobs/{job_id}/status"]["get"]
    assert [p["name"] for p in status["parameters"] if p["in"] == "header"] == ["If-None-Match"]
    assert {"ETag", "Retry-After", "Cache-Control"} <= set(status["responses"]["304"]["headers"])
    assert "content" not in status["responses"]["304"]
    unauthorized = document["components"]["responses"]["UNAUTHORIZED"]["headers"]
    assert unauthorized["WWW-Authenticate"]["required"] is True
    assert "Link" in paths["/api/ai/jobs"]["get"]["responses"]["200"]["headers"]


def test_response_schemas_require_their_members_and_keep_nulls_and_the_problem_names_its_extensions(document):
    schemas = document["components"]["schemas"]
    for name in ("Job", "JobStatus", "JobList", "BatchStatus", "Event", "Agent", "Progress", "JobError", "Links"):
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"]), name
    for name, schema in schemas.items():
        for member, prop in schema.get("properties", {}).items():
            assert "type" in prop or "$ref" in prop or "anyOf" in prop, f"{name}.{member} has no type"
    status = schemas["JobStatus"]["properties"]
    assert status["poll_after_ms"]["type"] == ["integer", "null"]
    assert status["finished_at"]["type"] == ["string", "null"]
    assert {"$ref": "#/components/schemas/JobError"} in status["error"]["anyOf"]
    assert {"type": "null"} in status["error"]["anyOf"]
    problem = schemas["Problem"]
    assert {"code", "errors", "job_id"} <= set(problem["properties"])
    assert problem.get("additionalProperties", True) is not False

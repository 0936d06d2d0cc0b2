"""The submit reads its body by hand (a hot path): it must read every body exactly as
SubmitJobSchema does, and refuse what the schema refuses with its very error."""
from __future__ import annotations

import pytest

from backend.api.arguments import ARGUMENTS_PARSER, submit_arguments
from backend.api.schemas import SubmitJobSchema
from tests.helpers import read_body_both_ways

BODIES = [
    b'{"agent": "echo", "input": {}}',
    b'{"input": {}}',
    b'{"agent": "echo", "input": {"steps": 1, "payload": "\\u00e9"}, "request_id": "order-1234:render"}',
    b'{"request_id": "a.b_c:d-e", "input": {"nested": {"list": [1, 2.5, null]}}, "agent": "canvas"}',
    b'{"agent": "", "input": {}}',
    b'{"agent": " ", "input": {}}',
    b'{"agent": "' + b"a" * 64 + b'", "input": {}}',
    b'{"agent": "' + b"a" * 65 + b'", "input": {}}',
    b'{"agent": 123, "input": {}}',
    b'{"agent": null, "input": {}}',
    b'{"agent": ["echo"], "input": {}}',
    b'{"agent": "echo", "input": null}',
    b'{"agent": "echo", "input": []}',
    b'{"agent": "echo", "input": "x"}',
    b'{"agent": "echo"}',
    b'{"agent": "echo", "input": {}, "priority": 1}',
    b'{"agent": "echo", "input": {}, "request_id": ""}',
    b'{"agent": "echo", "input": {}, "request_id": "has space"}',
    b'{"agent": "echo", "input": {}, "request_id": "ends-with-newline\\n"}',
    b'{"agent": "echo", "input": {}, "request_id": "' + b"r" * 128 + b'"}',
    b'{"agent": "echo", "input": {}, "request_id": "' + b"r" * 129 + b'"}',
    b'{"agent": "echo", "input": {}, "request_id": null}',
    b'{"agent": "echo", "input": {}, "request_id": 5}',
    b'{"agent": "echo", "input": {}, "request_id": "\\u00e9"}',
    b'{"agent": "echo", "agent": "canvas", "input": {}}',
    b'{"agent": "echo", "input": {"x": NaN}}',
    b"",
    b"null",
    b"[]",
    b'"x"',
    b"{",
    b"\xff\xfe",
    b'{"agent": "\xc3\xa9", "input": {}}',
]
CONTENT_TYPES = ["application/json", "application/problem+json", "text/plain", None]


def _by_the_schema():
    return ARGUMENTS_PARSER.parse(SubmitJobSchema, location="json")


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("body", BODIES)
def test_the_submit_reads_its_body_as_the_schema_does(body, content_type):
    by_hand, by_schema = read_body_both_ways("/api/ai/jobs", body, content_type, submit_arguments, _by_the_schema)

    assert by_hand == by_schema

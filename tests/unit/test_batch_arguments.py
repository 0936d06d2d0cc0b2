"""The batch poll reads its body by hand (a hot path): it must read every body exactly as
BatchStatusRequestSchema does, and refuse what the schema refuses with its very error."""
from __future__ import annotations

import json

import pytest

from backend.api.arguments import ARGUMENTS_PARSER, batch_arguments
from backend.api.schemas import MAX_BATCH_IDS, BatchStatusRequestSchema
from tests.helpers import read_body_both_ways

A = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW"
B = "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VX"
MANY = [f"job_01JDQ7Z8K3M4N5P6Q7R8S{n:03d}"[:30].ljust(30, "0") for n in range(MAX_BATCH_IDS + 1)]


def _body(value) -> bytes:
    return json.dumps(value).encode()


BODIES = [
    _body({"ids": [A]}),
    _body({"ids": [A, B], "versions": {A: 3}}),
    _body({"ids": [A, A], "versions": {A: 0, B: 2147483647}}),
    _body({"ids": MANY[:MAX_BATCH_IDS]}),
    _body({"ids": MANY}),
    _body({"ids": []}),
    _body({"ids": [A], "versions": {}}),
    _body({"ids": [A], "versions": None}),
    _body({"ids": [A], "versions": []}),
    _body({"ids": [A], "versions": {A: -1}}),
    _body({"ids": [A], "versions": {A: 2147483648}}),
    _body({"ids": [A], "versions": {A: 1.0}}),
    _body({"ids": [A], "versions": {A: 1.5}}),
    _body({"ids": [A], "versions": {A: "3"}}),
    _body({"ids": [A], "versions": {A: True}}),
    _body({"ids": [A], "versions": {A: None}}),
    _body({"ids": [A], "versions": {"job_lower": 1}}),
    _body({"ids": [A + "\n"]}),
    _body({"ids": [A.lower()]}),
    _body({"ids": [A, 5]}),
    _body({"ids": [A, None]}),
    _body({"ids": [[A]]}),
    _body({"ids": A}),
    _body({"ids": None}),
    _body({"versions": {A: 1}}),
    _body({"ids": [A], "wait": 5}),
    _body({}),
    b'{"ids": ["' + A.encode() + b'"], "ids": []}',
    b'{"ids": ["' + A.encode() + b'"], "versions": {"' + A.encode() + b'": NaN}}',
    b"",
    b"null",
    b"[]",
    b"{",
    b"\xff\xfe",
]
CONTENT_TYPES = ["application/json", "application/merge-patch+json", "text/plain", None]


def _by_the_schema():
    return ARGUMENTS_PARSER.parse(BatchStatusRequestSchema, location="json")


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("body", BODIES)
def test_the_batch_poll_reads_its_body_as_the_schema_does(body, content_type):
    by_hand, by_schema = read_body_both_ways("/api/ai/jobs/statuses", body, content_type, batch_arguments, _by_the_schema)

    assert by_hand == by_schema

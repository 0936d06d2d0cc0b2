"""The status poll reads ``wait`` and ``If-None-Match`` by hand (the hot path): it must read every
input exactly as the documented schemas do, and refuse what they refuse with their very error."""
from __future__ import annotations

import pytest
from flask import Flask

from backend.api.arguments import ARGUMENTS_PARSER, status_arguments
from backend.api.schemas import ConditionalHeadersSchema, WaitArgsSchema
from tests.helpers import outcome_of

WAITS = [None, "", "0", "5", "30", "31", "05", "-1", "+3", " 4", "4 ", "1.5", "1e1", "abc", "\u0663",
         "99999999999999999999", "0x10"]
TAGS = [None, "", 'W/"v5"', '"v5"', "*", 'W/"v0", W/"v5"', "x" * 1024, "x" * 1025]


def _by_the_schemas():
    query = ARGUMENTS_PARSER.parse(WaitArgsSchema, location="query")
    headers = ARGUMENTS_PARSER.parse(ConditionalHeadersSchema, location="headers")
    return query["wait"], headers["if_none_match"]


@pytest.mark.parametrize("wait", WAITS)
@pytest.mark.parametrize("tag", TAGS)
def test_the_poll_reads_its_arguments_as_the_schemas_do(wait, tag):
    app = Flask(__name__)
    query = {} if wait is None else {"wait": wait}
    headers = {} if tag is None else {"If-None-Match": tag}
    with app.test_request_context("/api/ai/jobs/x/status", query_string=query, headers=headers):
        by_hand = outcome_of(status_arguments)
    with app.test_request_context("/api/ai/jobs/x/status", query_string=query, headers=headers):
        by_schema = outcome_of(_by_the_schemas)

    assert by_hand == by_schema

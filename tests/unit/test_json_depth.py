"""The nesting check that runs before any JSON parser can recurse."""
import json
import time

import pytest

from backend.api.jobs import MAX_JSON_DEPTH, json_depth


@pytest.mark.parametrize(
    "value, depth",
    [({}, 1), ([], 1), ({"a": [1, {"b": []}]}, 4), ("plain", 0), ({"s": "[[[{{{"}, 1),
     ({"s": 'quote \\" and [ bracket'}, 1), ([[[[["deep"]]]]], 5)],
)
def test_depth_counts_only_structure_not_brackets_inside_strings(value, depth):
    assert json_depth(json.dumps(value).encode()) == depth


@pytest.mark.parametrize("raw", [b'"\\' * 32000, b'["' * 32000, b"{" * 65000, b'x"' * 32000])
def test_hostile_bodies_are_measured_in_one_linear_pass(raw):
    started = time.perf_counter()
    json_depth(raw)
    assert time.perf_counter() - started < 1.0  # a backtracking scan takes seconds here


def test_the_limit_leaves_room_for_honest_inputs():
    assert MAX_JSON_DEPTH >= 16

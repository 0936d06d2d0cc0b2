"""Job ids and request ids, as docs/job-ids.md specifies them."""
import re

import pytest

from backend.ids import is_job_id, is_request_id, new_job_id


def test_new_job_ids_are_well_formed_and_sort_by_creation():
    ids = [new_job_id() for _ in range(50)]

    assert all(re.fullmatch(r"job_[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert all(is_job_id(i) for i in ids)
    assert len(set(ids)) == 50
    assert [i[:14] for i in ids] == sorted(i[:14] for i in ids)  # the time prefix never goes back


@pytest.mark.parametrize(
    "value",
    ["", "job_", "job_01JDQ7Z8K3M4N5P6Q7R8S9T0V", "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VWX",
     "job_01jdq7z8k3m4n5p6q7r8s9t0vw", "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VI", "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VU",
     "JOB_01JDQ7Z8K3M4N5P6Q7R8S9T0VW", "01JDQ7Z8K3M4N5P6Q7R8S9T0VW", "job_01JDQ7Z8K3M4N5P6Q7R8S9T0VW\n"],
)
def test_malformed_job_ids_are_rejected(value):
    assert not is_job_id(value)


@pytest.mark.parametrize("value", ["a", "order-1234:render", "A.b_c-d:e", "x" * 128])
def test_request_ids_of_the_allowed_alphabet_are_accepted(value):
    assert is_request_id(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "has space", "slash/no", "é", "semi;colon", "line\n"])
def test_request_ids_outside_the_alphabet_or_length_are_rejected(value):
    assert not is_request_id(value)

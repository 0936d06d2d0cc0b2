"""The status state machine."""
import pytest

from backend.jobs.status import ALLOWED_TRANSITIONS, TERMINAL, JobStatus, sources_of


def test_terminal_statuses_lead_nowhere():
    for status in TERMINAL:
        assert ALLOWED_TRANSITIONS[status] == frozenset()
        assert status.is_terminal


@pytest.mark.parametrize(
    "source, target",
    [("queued", "running"), ("queued", "cancelled"), ("running", "succeeded"), ("running", "failed"),
     ("running", "cancelled"), ("running", "queued")],
)
def test_the_documented_moves_are_allowed(source, target):
    assert JobStatus(source) in sources_of(JobStatus(target))


@pytest.mark.parametrize(
    "source, target",
    [("succeeded", "running"), ("failed", "queued"), ("cancelled", "running"), ("queued", "succeeded")],
)
def test_moves_backwards_or_out_of_a_terminal_status_are_not(source, target):
    assert JobStatus(source) not in sources_of(JobStatus(target))

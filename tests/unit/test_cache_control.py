"""Every response gets one deliberate Cache-Control (backend/api/caching.py)."""
from __future__ import annotations

from backend.api.caching import NO_STORE, cache_control_for


def test_errors_are_never_stored_whatever_the_view_said():
    assert cache_control_for("jobs.JobStatusView", 404, "no-cache") == NO_STORE
    assert cache_control_for("web.docs_asset", 404, "public, max-age=86400") == NO_STORE


def test_a_known_resource_gets_its_policy_over_what_send_file_chose():
    assert cache_control_for("web.index", 200, "no-cache, max-age=0") == "no-cache"
    assert cache_control_for("web.docs_asset", 200, "no-cache") == "public, max-age=86400"
    assert cache_control_for("agents.Agents", 200, None) == "private, max-age=60"


def test_a_view_that_decides_keeps_its_choice_and_one_that_does_not_is_never_stored():
    assert cache_control_for("jobs.JobStatusView", 304, "no-cache") == "no-cache"
    assert cache_control_for("jobs.JobDetails", 200, None) == NO_STORE
    assert cache_control_for("web.favicon", 200, "max-age=0, no-cache") == "no-cache"

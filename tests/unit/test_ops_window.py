"""The ops page's 15-minute window: points from cumulative samples, quantiles like PromQL's."""
from __future__ import annotations

import math

import pytest

from backend.ops_window import OpsWindow, Totals, quantile, summarise
from backend.telemetry import _poll_outcome, _route_label


def totals(at, polls, buckets, recoveries=0.0, recovery_sum_s=0.0, sweep=None, slow=0.0) -> Totals:
    return Totals(at, polls, tuple(buckets), recoveries, recovery_sum_s, sweep or {}, slow)


def test_a_quantile_interpolates_within_its_bucket_as_histogram_quantile_does():
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert quantile(0.95, buckets) == pytest.approx(0.1 + 0.9 * 5 / 10)


def test_a_quantile_past_the_last_finite_bucket_answers_that_bound_and_none_without_data():
    assert quantile(0.99, [(0.5, 10.0), (math.inf, 20.0)]) == 0.5
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(0.5, 0.0), (math.inf, 0.0)]) is None


def test_a_summary_counts_failed_polls_as_5xx_and_429_only():
    old = totals(0.0, {"200": 10, "5xx": 1}, [(0.01, 10.0), (math.inf, 11.0)])
    new = totals(15.0, {"200": 100, "304": 50, "4xx": 20, "429": 3, "5xx": 3},
                 [(0.01, 160.0), (math.inf, 177.0)], recoveries=2, recovery_sum_s=30.0,
                 sweep={"requeued": 2}, slow=1)

    point = summarise(old, new)

    assert point["polls"] == 165
    assert point["failed_polls"] == 5
    assert point["success_rate"] == pytest.approx(1 - 5 / 165, abs=1e-4)
    assert point["p50_ms"] == pytest.approx(round(0.01 * 1000 * (166 / 2) / 150, 2))  # rank 83 of 166
    assert point["recoveries"] == 2 and point["recovery_avg_s"] == 15.0
    assert point["sweep"]["requeued"] == 2 and point["sweep"]["resent"] == 0
    assert point["slow_queries"] == 1


def test_a_quiet_window_has_no_rate_and_no_latency_rather_than_a_made_up_one():
    same = totals(0.0, {"200": 5}, [(0.01, 5.0)])
    point = summarise(same, totals(15.0, {"200": 5}, [(0.01, 5.0)]))
    assert (point["polls"], point["success_rate"], point["p50_ms"], point["recovery_avg_s"]) == (0, None, None, None)


def test_the_window_keeps_fifteen_minutes_of_samples_and_reports_up_to_now():
    clock = [0.0]

    def read():
        clock[0] += 15.0
        return totals(clock[0], {"200": clock[0]}, [(0.01, clock[0])])

    window = OpsWindow(read=read)
    for _ in range(100):
        window.sample()
    report = window.report()

    assert len(report["points"]) == 61  # 60 steps between the 61 kept samples, and one up to now
    assert report["window"]["polls"] == 61 * 15


@pytest.mark.parametrize(("status", "outcome"), [(200, "200"), (304, "304"), (429, "429"), (404, "4xx"),
                                                 (401, "4xx"), (500, "5xx"), (503, "5xx")])
def test_a_poll_outcome_is_one_of_five(status, outcome):
    assert _poll_outcome(status) == outcome


def test_a_route_label_is_the_template_without_converters():
    assert _route_label("/api/ai/jobs/<job_id:job_id>/status") == "/api/ai/jobs/<job_id>/status"
    assert _route_label("/ops/<path:filename>") == "/ops/<filename>"

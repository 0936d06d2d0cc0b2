"""Fixtures for the fault-injection tests: each test gets its own throwaway cluster."""
from __future__ import annotations

import pytest

from .harness import Cluster, require_binaries


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: fault-injection tests with their own PostgreSQL and Redis")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.chaos_failed = report.failed


@pytest.fixture
def make_cluster(request):
    """``make_cluster(env={...}, workers=2)`` starts PostgreSQL, Redis, gunicorn and workers.

    Everything is torn down after the test, failed or not; the logs of a failed test are printed.
    """
    binaries = require_binaries()
    clusters: list[Cluster] = []

    def factory(**kwargs) -> Cluster:
        cluster = Cluster(binaries=binaries, name=request.node.name, **kwargs)
        clusters.append(cluster)
        cluster.start()
        return cluster

    yield factory
    for cluster in clusters:
        if getattr(request.node, "chaos_failed", False):
            cluster.dump_logs()
        cluster.close()

"""Rolling deploys and the RabbitMQ broker under faults (issue 11).

A rolling deploy restarts every worker one at a time with SIGTERM: each stops taking messages, lets
its running jobs finish within WORKER_SHUTDOWN_GRACE_S, and hands the rest back to the queue. Nothing
may be lost, fail, run twice to completion, or wait for the heartbeat timeout. Each test prints its
figures on one ``[chaos]`` line (docs/reliability.md quotes them).
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import TERMINAL, parse_time, wait_until
from .test_faults import BROKERS, _attempt_starts, _format_events, _succeeded_events

pytestmark = pytest.mark.chaos
N_JOBS = 200


@pytest.mark.parametrize("broker", BROKERS)
def test_restarting_every_worker_one_at_a_time_while_200_jobs_run_loses_fails_and_repeats_nothing(
    make_cluster, broker
):
    started = time.monotonic()
    # Default heartbeats (stale after 10 s): a job that waited for them would show `worker_lost`.
    # A short grace, so that every restart both lets jobs finish and hands some back.
    cluster = make_cluster(env={"WORKER_SHUTDOWN_GRACE_S": "1.5"}, workers=3, worker_threads=4, broker=broker)
    api = cluster.api
    # 200 jobs on 12 threads, about 50 s of work, across which the restarts happen. The first 24 take
    # 8 s, far longer than the grace, so every worker restarted early holds jobs it must hand back
    # however fast the machine is; the rest take ~2.4 s and mostly finish within the grace.
    inputs = [{"steps": 20, "delay_ms": 400, "payload": i} if i < 24 else {"steps": 8, "delay_ms": 300, "payload": i}
              for i in range(N_JOBS)]
    responses = cluster.submit_many(inputs, concurrency=8)
    assert Counter(r.status for r in responses) == Counter({202: N_JOBS})
    ids = [r.json()["id"] for r in responses]

    restarts = []
    for index in range(len(cluster.workers.slots)):
        wait_until(lambda: len(api.list_jobs("running")) >= 4, timeout_s=60, interval_s=0.2,
                   what="jobs running before the restart")
        restarts.append(cluster.workers.restart_gracefully(index))
    deploy_s = time.monotonic() - started

    finals = api.wait_all_terminal(ids, timeout_s=240, interval_s=1.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        histories = dict(zip(ids, pool.map(api.events, ids)))
    statuses = Counter(job["status"] for job in finals.values())
    duplicates = [i for i in ids if _succeeded_events(histories[i]) > 1]
    handed_back = {i: [e for e in histories[i] if "handed back unfinished" in (e.get("message") or "")] for i in ids}
    n_handed_back = sum(len(events) for events in handed_back.values())
    lost_worker = [i for i in ids if any("stopped responding" in (e.get("message") or "") for e in histories[i])]
    # From the SIGTERM to the job being queued again: what a restart costs a job it interrupts.
    # (From there the job waits its turn at the back of the queue like any other.)
    signal_to_queued_s, queue_waits_s = [], []
    for i, events in handed_back.items():
        for event in events:
            at = parse_time(event["at"])
            signal_to_queued_s.append(at - max(signalled for signalled, _ in restarts if signalled < at))
            later = [parse_time(s["at"]) for s in _attempt_starts(histories[i]) if parse_time(s["at"]) > at]
            queue_waits_s.append(min(later) - at)
    exit_s = [exited - signalled for signalled, exited in restarts]
    attempts = [job["attempts"] for job in finals.values()]
    print(f"\n[chaos] rolling broker={broker} jobs={N_JOBS} statuses={dict(statuses)} lost={N_JOBS - len(finals)} "
          f"duplicates={len(duplicates)} handed_back={n_handed_back} worker_lost={len(lost_worker)} "
          f"restart_exit_s={[round(s, 1) for s in exit_s]} "
          f"sigterm_to_queued_s_max={max(signal_to_queued_s, default=0):.1f} "
          f"queued_to_next_start_s_max={max(queue_waits_s, default=0):.1f} "
          f"attempts_max={max(attempts)} deploy_s={deploy_s:.1f} total_s={time.monotonic() - started:.1f} "
          f"{cluster.log_summary()}")
    for i in (lost_worker + duplicates)[:3]:
        print(_format_events(histories[i]))

    assert len(finals) == N_JOBS
    assert statuses == Counter({"succeeded": N_JOBS}), statuses
    assert not duplicates
    assert not lost_worker, "a job waited for the heartbeat timeout instead of being handed back"
    assert n_handed_back > 0, "no job was handed back: the restarts exercised nothing"
    assert cluster.sweep_totals().get("requeued", 0) == 0
    # Handed back at the end of the 1.5 s grace (plus the checkpoint of a 300 ms step), not after
    # a heartbeat timeout (10 s).
    assert max(signal_to_queued_s) < 5, sorted(signal_to_queued_s)
    assert all(s < 15 for s in exit_s), exit_s


def test_a_rabbitmq_restart_during_a_burst_of_submits_loses_no_job(make_cluster):
    cluster = make_cluster(env={"QUEUED_REQUEUE_AFTER_S": "3", "HEARTBEAT_INTERVAL_S": "1",
                                "HEARTBEAT_TIMEOUT_S": "5"}, workers=2, broker="rabbitmq")
    api = cluster.api
    first = cluster.submit_many([{"steps": 2, "delay_ms": 500, "payload": i} for i in range(40)], concurrency=4)
    stopped_at, back_at = cluster.rabbit.restart_broker()
    second = cluster.submit_many([{"steps": 2, "delay_ms": 500, "payload": i} for i in range(40, 60)],
                                 concurrency=4)
    responses = first + second
    assert Counter(r.status for r in responses) == Counter({202: 60})
    ids = [r.json()["id"] for r in responses]

    finals = api.wait_all_terminal(ids, timeout_s=120, interval_s=0.5)
    histories = {i: api.events(i) for i in ids}
    statuses = Counter(job["status"] for job in finals.values())
    duplicates = [i for i in ids if _succeeded_events(histories[i]) > 1]
    done_after_s = max(parse_time(job["finished_at"]) for job in finals.values()) - back_at
    started_after = [parse_time(s["at"]) for i in ids for s in _attempt_starts(histories[i]) if parse_time(s["at"]) > back_at]
    first_start_s = min(started_after) - back_at if started_after else float("nan")
    print(f"\n[chaos] rabbitmq_restart down_s={back_at - stopped_at:.1f} first_start_after_back_s={first_start_s:.1f} "
          f"all_done_after_back_s={done_after_s:.1f} statuses={dict(statuses)} lost={60 - len(finals)} "
          f"duplicates={len(duplicates)} {cluster.log_summary()}")

    assert statuses == Counter({"succeeded": 60}), statuses
    assert not duplicates
    assert all(job["status"] in TERMINAL for job in finals.values())

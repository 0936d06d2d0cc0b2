"""Writes from many threads go out as one group, and each caller still gets its own answer."""
from __future__ import annotations

import threading
import time

import pytest
from flask import Flask

from backend.jobs.grouped import GroupedWrites


class HeldWriter:
    """``write_many`` that holds its first group until told, so the next group can fill up."""

    def __init__(self, answer=lambda item: item * 10) -> None:
        self.answer = answer
        self.groups: list[list] = []
        self.first_group_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: list) -> list:
        self.groups.append(list(items))
        if len(self.groups) == 1:
            self.first_group_started.set()
            assert self.release.wait(5)
        return [self.answer(item) for item in items]


def _in_threads(app: Flask, grouped: GroupedWrites, items: list) -> tuple[dict, list[threading.Thread]]:
    answers: dict = {}

    def write(item) -> None:
        with app.app_context():
            try:
                answers[item] = grouped.write(item)
            except Exception as exc:  # noqa: BLE001 - the test reads what each caller got
                answers[item] = exc

    threads = [threading.Thread(target=write, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return answers, threads


def _behind_a_held_group(app: Flask, grouped: GroupedWrites, writer: HeldWriter, first,
                         rest: list) -> tuple[dict, dict]:
    """``first`` written and held by the writer; then ``rest`` queued behind it; then all released.
    Returns what each caller got, the first's and the rest's."""
    first_answer, first_threads = _in_threads(app, grouped, [first])
    assert writer.first_group_started.wait(5)
    answers, threads = _in_threads(app, grouped, rest)
    deadline = time.monotonic() + 5
    while len(grouped._waiting) < len(rest):
        assert time.monotonic() < deadline, f"{len(grouped._waiting)} of {len(rest)} writes queued"
        time.sleep(0.005)
    writer.release.set()
    for thread in first_threads + threads:
        thread.join(5)
    return first_answer, answers


def test_writes_that_arrive_while_a_group_is_sent_go_out_together_each_with_its_own_answer():
    app, writer = Flask(__name__), HeldWriter()
    grouped = GroupedWrites(writer, name="test-writes")

    first, rest = _behind_a_held_group(app, grouped, writer, 1, list(range(2, 10)))

    assert [sorted(group) for group in writer.groups] == [[1], list(range(2, 10))]
    assert first | rest == {item: item * 10 for item in range(1, 10)}
    assert (grouped.groups, grouped.items) == (2, 9)


def test_a_lone_write_is_sent_at_once_as_a_group_of_one():
    app, groups = Flask(__name__), []
    grouped = GroupedWrites(lambda items: groups.append(items) or items, name="test-writes")

    with app.app_context():
        assert grouped.write("a") == "a"
        assert grouped.write("b") == "b"

    assert groups == [["a"], ["b"]]


def test_a_failed_group_raises_in_every_caller_of_that_group_and_the_next_group_is_sent():
    app = Flask(__name__)

    def answer(item):
        if item == 3:
            raise ConnectionError("the database went away")
        return item

    writer = HeldWriter(answer)
    grouped = GroupedWrites(writer, name="test-writes")

    _, failed = _behind_a_held_group(app, grouped, writer, 1, [2, 3, 4])

    assert all(isinstance(failed[item], ConnectionError) for item in (2, 3, 4))
    with app.app_context():
        assert grouped.write(5) == 5  # the writer went on


def test_an_idle_writer_ends_and_the_next_write_starts_another():
    app = Flask(__name__)
    grouped = GroupedWrites(lambda items: items, name="test-writes", idle_exit_s=0.05)
    with app.app_context():
        assert grouped.write(1) == 1
        first_writer = grouped._writer
        first_writer.join(2)
        assert not first_writer.is_alive()  # no thread (and no app) kept by a process that stopped

        assert grouped.write(2) == 2
    assert grouped._writer is not first_writer


def test_the_writer_runs_in_the_callers_app_context():
    from flask import current_app

    app = Flask("the-callers-app")
    grouped = GroupedWrites(lambda items: [current_app.name for _ in items], name="test-writes")
    with app.app_context():
        assert grouped.write("x") == "the-callers-app"


@pytest.mark.parametrize("max_group", [1, 3])
def test_no_group_is_larger_than_max_group(max_group):
    app, writer = Flask(__name__), HeldWriter()
    grouped = GroupedWrites(writer, name="test-writes", max_group=max_group)

    _, answers = _behind_a_held_group(app, grouped, writer, 0, list(range(1, 8)))

    assert max(len(group) for group in writer.groups) == max_group
    assert answers == {item: item * 10 for item in range(1, 8)}

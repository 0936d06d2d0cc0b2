"""Writes from many threads of one process, sent to the database as one statement.

A worker process runs many jobs at once, and their progress writes come in waves: jobs started
together report together. Each write alone costs a connection checkout and its pre-ping, a round
trip, and PostgreSQL's per-statement work; measured on the job tables, 16 jobs' writes in one
statement cost PostgreSQL a third to a sixth of what 16 statements cost, and the client about an
eighth (bench/grouped_sql.py; docs/performance.md, "Grouped writes"). So a write that can wait a
moment is handed to this process's writer thread, which sends everything waiting as one group and
hands each caller its own result.

The writer is a thread of its own rather than one of the callers: Dramatiq interrupts a job's thread
when its time limit strikes, and a group must never be cut off halfway for the other callers in it.
A caller interrupted while it waits simply leaves; its write still happens, fenced like any other.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, Callable, Sequence

from flask import current_app, has_app_context


class _Waiting:
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class GroupedWrites:
    """``write(item)`` from any thread of the app returns ``write_many(items)[i]`` for its own item.

    ``write_many`` runs on the writer thread, in an app context of the caller's app (if it had one),
    with every item waiting at that moment (at most ``max_group``): a lone write is a group of one,
    and under load a group holds whatever arrived while the previous one was sent. If it raises,
    every caller in the group gets that exception.
    """

    def __init__(self, write_many: Callable[[list], Sequence], *, name: str, max_group: int = 64,
                 idle_exit_s: float = 10.0) -> None:
        self._write_many = write_many
        self.name = name
        self.max_group = max_group
        # The writer ends after this long with nothing to write (the next write starts another): a
        # process that stopped writing, or an app torn down, keeps no thread and no app alive.
        self.idle_exit_s = idle_exit_s
        self._lock = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writer: threading.Thread | None = None
        # Figures for tests and the bench: how well writes grouped.
        self.groups = self.items = 0

    def write(self, item: Any) -> Any:
        waiting = _Waiting(item)
        app = current_app._get_current_object() if has_app_context() else None
        with self._lock:
            self._waiting.append(waiting)
            self._ensure_writer(app)
            self._lock.notify()
        while not waiting.done.wait(1.0):
            with self._lock:  # a writer that died leaves nobody to send what waits: start another
                self._ensure_writer(app)
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    def _ensure_writer(self, app) -> None:
        # Started on first use, in the process that writes (Dramatiq forks before jobs run).
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._run, args=(app,), name=self.name, daemon=True)
            self._writer.start()

    def _run(self, app) -> None:
        with app.app_context() if app is not None else nullcontext():
            while True:
                with self._lock:
                    if not self._waiting:
                        self._lock.wait(self.idle_exit_s)
                    if not self._waiting:
                        self._writer = None  # under the lock: the next write starts a new writer
                        return
                    group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group:]
                try:
                    results = self._write_many([waiting.item for waiting in group])
                    for waiting, result in zip(group, results, strict=True):
                        waiting.result = result
                except BaseException as exc:  # every caller in the group hears it
                    for waiting in group:
                        waiting.error = exc
                    if not isinstance(exc, Exception):
                        raise  # the process is ending; a later write starts a new writer
                finally:
                    for waiting in group:
                        waiting.done.set()
                self.groups += 1
                self.items += len(group)

"""Each job's compact status, kept next to the change signal so that a poll reads no database.

PostgreSQL stays the truth; a snapshot is a cache of one committed version of a job's status
document (the body of ``GET .../status`` without its per-answer fields). The rules that keep it
honest:

- it is written only *after* its change committed, by the process that committed it, and in the
  same Redis round trip as the change signal (``PUBLISH``), so a long poll woken by the signal
  finds the snapshot of that change;
- a snapshot never replaces a newer one: the write is a compare on ``version`` inside Redis, so
  two writers that commit v5 then v6 cannot leave v5 behind, whatever order their writes land in;
- a read that finds no snapshot (never written, expired, or Redis away) reads the database and
  writes back what it read, under the same compare;
- a process whose snapshot write failed after a commit (Redis away) bumps the *generation* at its
  next successful write: every snapshot of an older generation is then ignored, so a snapshot that
  missed a change cannot outlive the outage. A process that dies before it can do so is bounded by
  ``snapshot_ttl_s``.

Each web process also keeps the newest snapshot it heard of (the change signal carries it) or
read, for recently changed or polled jobs (``RecentStatuses``), so most polls read nothing from
Redis: entries are trusted only while the listener stays subscribed on the same connection, for a
minute at most, and are dropped on a generation bump or a purge.

Embedded (no Redis) the snapshots live in a dict of this process, under the same rules.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from ..outage import SkipAfterFailure
from .status import JobStatus

log = logging.getLogger(__name__)

KEY_PREFIX = "ai-jobs:snap:"
GENERATION_KEY = "ai-jobs:snap-generation"


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """One committed version of a job's status document, and what a poll decides with it.

    Immutable: one object is shared by every poll this process answers from memory.

    ``document_json`` holds every member of the status answer but the two computed per answer
    (``queue_position``, filled in for queued jobs, and ``poll_after_ms``), already as JSON: a poll
    copies it into the answer without parsing it, a batch of 100 without parsing 100 of them.
    """

    id: str
    owner: str
    status: str
    version: int
    started_at: datetime | None  # for the poll hint, which follows the job's age
    document_json: str
    queue_position: int | None = None

    @property
    def is_queued(self) -> bool:
        return self.status == JobStatus.QUEUED.value

    def signal(self) -> str:
        """The change signal's payload: the job id first (what long polls wake on), then the whole
        snapshot, so every web process can answer the job's polls from what it heard. (JSON escapes
        control characters, so the document holds no tab.)"""
        started = self.started_at.isoformat() if self.started_at else ""
        return f"{self.id}\t{self.version}\t{self.status}\t{self.owner}\t{started}\t{self.document_json}"

    @classmethod
    def from_signal(cls, payload: str) -> StatusSnapshot | None:
        parts = payload.split("\t")
        if len(parts) != 6:
            return None  # a bare job id (an older publisher): wake-ups only
        job_id, version, status, owner, started, document = parts
        return cls(id=job_id, owner=owner, status=status, version=int(version),
                   started_at=datetime.fromisoformat(started) if started else None, document_json=document)

    def answer_json(self, poll_after_ms: int | None) -> str:
        """The status answer's body: the document and the two members computed per answer."""
        return (
            f'{self.document_json[:-1]},"queue_position":{_json_int(self.queue_position)},'
            f'"poll_after_ms":{_json_int(poll_after_ms)}}}'
        )

    @classmethod
    def of(cls, job) -> StatusSnapshot:
        """From a ``Job`` or a row that carries the same attributes (``Transitions.write``'s)."""
        return cls(id=job.id, owner=job.owner, status=job.status, version=job.version,
                   started_at=job.started_at, queue_position=getattr(job, "queue_position", None),
                   document_json=json.dumps(status_document(job), separators=(",", ":")))

    @classmethod
    def from_stored(cls, job_id: str, fields: list[bytes]) -> StatusSnapshot:
        owner, status, version, started, document = (f.decode() for f in fields)
        return cls(id=job_id, owner=owner, status=status, version=int(version),
                   started_at=datetime.fromisoformat(started) if started else None, document_json=document)

    def stored(self) -> list[Any]:
        """The hash fields after ``v`` and ``g``, in ``from_stored``'s order."""
        return [self.owner, self.status, self.started_at.isoformat() if self.started_at else "",
                self.document_json]


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_document(job) -> dict[str, Any]:
    """The status answer's stored members, as ``JobStatusSchema`` renders them (a test pins this)."""
    return {
        "id": job.id,
        "status": job.status,
        "progress": {"percent": job.progress_percent, "stage": job.progress_stage, "message": job.progress_message},
        "version": job.version,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "updated_at": _iso(job.updated_at),
        "estimated_completion_at": _iso(job.estimated_completion_at),
        "error": (
            None if job.error_code is None
            else {"code": job.error_code, "message": job.error_message, "retryable": bool(job.error_retryable)}
        ),
    }


# KEYS: the generation key, then one snapshot key per job. ARGV: ttl_s, bump ("1" or "0"), the
# channel (or "" for none), then per job: version, owner, status, started_at, document JSON, and the
# change signal to publish (or ""). Writes each snapshot unless one of the same generation and at
# least that version is held. A bump also tells every process to forget the versions it knows.
_WRITE_SCRIPT = """
if ARGV[2] == '1' then
  redis.call('INCR', KEYS[1])
  if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], '*') end
end
local generation = redis.call('GET', KEYS[1]) or '0'
local written = 0
for i = 2, #KEYS do
  local at = 4 + (i - 2) * 6
  local held = redis.call('HMGET', KEYS[i], 'v', 'g')
  if not (held[1] and held[2] == generation and tonumber(held[1]) >= tonumber(ARGV[at])) then
    redis.call('HSET', KEYS[i], 'v', ARGV[at], 'g', generation, 'o', ARGV[at + 1], 's', ARGV[at + 2],
               't', ARGV[at + 3], 'b', ARGV[at + 4])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
    written = written + 1
  end
  if ARGV[3] ~= '' and ARGV[at + 5] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[at + 5]) end
end
return written
"""

# KEYS: the generation key, then one snapshot key per job. For each: {owner, status, version,
# started_at, document JSON} of the current generation, or false.
READ_SCRIPT = """
local generation = redis.call('GET', KEYS[1]) or '0'
local found = {}
for i = 2, #KEYS do
  local held = redis.call('HMGET', KEYS[i], 'g', 'o', 's', 'v', 't', 'b')
  if held[1] == generation and held[6] then
    found[i - 1] = {held[2], held[3], held[4], held[5], held[6]}
  else
    found[i - 1] = false
  end
end
return found
"""


# ARGV: the key prefix, the channel, the deleted jobs' ids joined by commas. Deletes their
# snapshots and tells every process to drop what it heard of them ("-id,id,...").
_FORGET_SCRIPT = """
for job_id in string.gmatch(ARGV[3], '[^,]+') do redis.call('DEL', ARGV[1] .. job_id) end
redis.call('PUBLISH', ARGV[2], '-' .. ARGV[3])
"""


class RecentStatuses:
    """The newest snapshot this process knows of each recently changed or polled job, so that a poll
    of it reads no snapshot from Redis: a 304 or a 200 answered from memory.

    Fed by the change signals every web process already hears (each carries the job's snapshot), and
    by the snapshots its polls read. An entry is served only while the listener that fed it is still
    subscribed on the same connection (``epoch``): a signal missed while it was away cannot leave a
    stale entry behind. Entries also expire after ``ttl_s`` (the backstop), and all are dropped when
    a process that missed a snapshot write bumps the generation (the ``*`` signal).
    """

    MAX_ENTRIES = 20_000  # about 20 MB; entries live 60 s, so this holds 300 changes a second

    def __init__(self, *, epoch, ttl_s: float = 60.0, clock=time.monotonic) -> None:
        self._epoch = epoch  # the listener's subscription count while subscribed, else None
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[StatusSnapshot, int, float]] = {}  # id -> (snapshot, epoch, deadline)

    def get_epoch(self) -> int | None:
        return self._epoch()

    def get(self, job_id: str) -> StatusSnapshot | None:
        epoch = self._epoch()
        entry = self._entries.get(job_id)
        if epoch is None or entry is None:
            return None
        snapshot, entry_epoch, deadline = entry
        if entry_epoch != epoch or self._clock() >= deadline:
            return None
        return snapshot

    def offer(self, snapshot: StatusSnapshot, epoch: int | None) -> None:
        """Keep ``snapshot`` unless a newer version of the job is known on the same subscription."""
        if epoch is None:
            return
        with self._lock:
            held = self._entries.get(snapshot.id)
            # The same version again restarts the entry's minute: a read from Redis (the poll that
            # found it expired) confirmed it, so an unchanged job is not read from Redis at every poll.
            if held is not None and held[1] == epoch and held[0].version > snapshot.version:
                return
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[snapshot.id] = (snapshot, epoch, self._clock() + self.ttl_s)

    def heard(self, payload: str) -> None:
        """A change signal from the listener."""
        if payload == "*":
            with self._lock:
                self._entries.clear()
            return
        if payload.startswith("-"):  # jobs were deleted: "-id,id,..."
            if not self._entries:
                return
            with self._lock:
                for job_id in payload[1:].split(","):
                    self._entries.pop(job_id, None)
            return
        snapshot = StatusSnapshot.from_signal(payload)
        if snapshot is None:
            return
        if snapshot.is_queued:  # its ETag holds its place in the queue, which no signal tells
            with self._lock:
                self._entries.pop(snapshot.id, None)
            return
        self.offer(snapshot, self._epoch())


class RedisSnapshots:
    """Snapshots in Redis, shared by every web and worker process; change signals ride along."""

    REDIS_DOWN_BACKOFF_S = 2.0

    def __init__(self, redis_url: str, *, ttl_s: int, channel: str, notifier=None) -> None:
        import redis

        self._redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        self._write = self._redis.register_script(_WRITE_SCRIPT)
        self._read = self._redis.register_script(READ_SCRIPT)
        self._forget = self._redis.register_script(_FORGET_SCRIPT)
        self.ttl_s = ttl_s
        self.channel = channel
        self._redis_down = SkipAfterFailure(self.REDIS_DOWN_BACKOFF_S, component="snapshots")
        # A write was lost since the last successful one: the next write bumps the generation.
        self._missed_write = threading.Event()
        self.latest = RecentStatuses(epoch=notifier.epoch if notifier is not None else lambda: None)
        # Whether this process listens to change signals, asked without starting the listener.
        self._listening = (lambda: notifier.subscribed) if notifier is not None else (lambda: False)
        if notifier is not None:
            notifier.job_changed_handlers.append(self.latest.heard)

    def known(self, job_id: str) -> StatusSnapshot | None:
        """The job's snapshot as this process last heard it, or None: no round trip."""
        return self.latest.get(job_id)

    def committed(self, snapshot: StatusSnapshot, *, signal: bool = True) -> None:
        """Store the snapshot of a change that just committed, and signal the change."""
        self._store([snapshot], signal=signal)

    def committed_many(self, snapshots: list[StatusSnapshot]) -> None:
        """``committed`` for the changes of one grouped write: one round trip for all of them."""
        if snapshots:
            self._store(snapshots, signal=True)

    def refill(self, snapshots: Iterable[StatusSnapshot]) -> None:
        """Store snapshots read from the database after a miss (no signal: nothing changed)."""
        snapshots = list(snapshots)
        if snapshots and not self._redis_down.skipping():  # a refill lost is a miss, not a stale entry
            self._store(snapshots, signal=False)

    def forget(self, job_ids: list[str]) -> None:
        """Drop the snapshots of deleted jobs, here and in every process that knows their heads."""
        ids = ",".join(job_ids)
        self.latest.heard("-" + ids)  # this process at once; the others when the signal reaches them
        try:
            # One argument however many jobs: a purge batch costs its process almost no Python.
            self._forget(args=[KEY_PREFIX, self.channel, ids])
        except Exception:
            # Redis away: the next write bumps the generation, which invalidates every snapshot.
            self._missed_write.set()
            self._redis_down.failed()

    def read(self, job_ids: list[str]) -> dict[str, StatusSnapshot] | None:
        """The snapshots held for ``job_ids`` (absent when missing); None while Redis is away."""
        if self._redis_down.skipping():
            return None
        epoch = self.latest.get_epoch()  # before the read: a signal heard during it wins
        try:
            found = self._read(keys=[GENERATION_KEY, *(KEY_PREFIX + job_id for job_id in job_ids)])
        except Exception:
            self._redis_down.failed()
            return None
        snapshots = {job_id: StatusSnapshot.from_stored(job_id, fields)
                     for job_id, fields in zip(job_ids, found) if fields}
        for snapshot in snapshots.values():
            if not snapshot.is_queued:  # a queued job's ETag holds its place, which no signal tells
                self.latest.offer(snapshot, epoch)
        return snapshots

    def _store(self, snapshots: list[StatusSnapshot], *, signal: bool) -> None:
        if self._redis_down.skipping():
            # A worker must not stall on a connect timeout at every write while Redis is away.
            self._missed_write.set()
            return
        bump = self._missed_write.is_set()
        # Asking for the epoch starts the listener: a worker process, which writes but never polls,
        # would then parse every job's change signals for nothing. Not subscribed, there is no epoch.
        epoch = self.latest.get_epoch() if self._listening() else None
        args: list[Any] = [self.ttl_s, "1" if bump else "0", self.channel if signal or bump else ""]
        for snapshot in snapshots:
            args += [snapshot.version, *snapshot.stored(), snapshot.signal() if signal else ""]
        try:
            self._write(keys=[GENERATION_KEY, *(KEY_PREFIX + s.id for s in snapshots)], args=args)
        except Exception:
            # The change is committed; only its cache and signal are lost. Long polls re-read at
            # the end of their wait, and the next write invalidates every snapshot (see above).
            self._missed_write.set()
            self._redis_down.failed()
            log.warning("could not store the status of job %s; polls will read the database",
                        snapshots[0].id, extra={"job_id": snapshots[0].id})
            return
        if bump:
            self._missed_write.clear()
        # This process knows its own change at once, not when its signal comes back.
        if signal and epoch is not None:
            for snapshot in snapshots:
                if not snapshot.is_queued:
                    self.latest.offer(snapshot, epoch)


class InProcessSnapshots:
    """The embedded mode's snapshots: a bounded dict; the change signal goes to local waiters."""

    MAX_SNAPSHOTS = 10_000

    def __init__(self, notifier) -> None:
        self._notifier = notifier
        self._lock = threading.Lock()
        self._held: OrderedDict[str, StatusSnapshot] = OrderedDict()

    def committed(self, snapshot: StatusSnapshot, *, signal: bool = True) -> None:
        self._store([snapshot])
        if signal:
            self._notifier.publish(snapshot.id)

    def committed_many(self, snapshots: list[StatusSnapshot]) -> None:
        self._store(snapshots)
        for snapshot in snapshots:
            self._notifier.publish(snapshot.id)

    def refill(self, snapshots: Iterable[StatusSnapshot]) -> None:
        self._store(snapshots)

    def forget(self, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)

    def known(self, job_id: str) -> StatusSnapshot | None:
        with self._lock:
            held = self._held.get(job_id)
        return held if held is not None and not held.is_queued else None

    def read(self, job_ids: list[str]) -> dict[str, StatusSnapshot]:
        with self._lock:
            return {job_id: self._held[job_id] for job_id in job_ids if job_id in self._held}

    def _store(self, snapshots: Iterable[StatusSnapshot]) -> None:
        with self._lock:
            for snapshot in snapshots:
                held = self._held.get(snapshot.id)
                if held is None or held.version < snapshot.version:
                    self._held[snapshot.id] = snapshot
                    self._held.move_to_end(snapshot.id)
            while len(self._held) > self.MAX_SNAPSHOTS:
                self._held.popitem(last=False)


def build_snapshots(config, notifier):
    if config.redis_url:
        from ..notify import CHANNEL

        return RedisSnapshots(config.redis_url, ttl_s=config.snapshot_ttl_s, channel=CHANNEL, notifier=notifier)
    return InProcessSnapshots(notifier)

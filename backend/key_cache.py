"""API keys this process accepted a moment ago, so authenticating a poll needs no database read.

An entry lives at most ``ttl_s`` (the backstop) and never past the key's own expiry. Revoking a key
reaches every process at once: the notifier's listener relays the revocation (Redis pub/sub;
embedded, the process itself) and each process drops the key. Entries are served only while this
process hears revocations (its listener is subscribed); while it does not, every key is read from
the database as before, and everything cached is dropped when the listener is back, since a
revocation may have been published meanwhile. Refused keys are not kept: a key created a moment
ago is never refused from the cache.
"""
from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime
from typing import Callable

from .models import utcnow


class KeyCache:
    """The SHA-256 of a presented key (never the key) -> the caller it authenticated."""

    # Past this many entries the cache starts again, so a flood of valid keys cannot grow it forever.
    MAX_ENTRIES = 10_000

    def __init__(self, ttl_s: float, *, trusted: Callable[[], bool], clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._trusted = trusted
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, object]] = {}  # digest -> (monotonic deadline, caller)
        # Bumped by every forget: a database read that started before a revocation is not cached.
        self.generation = 0

    @staticmethod
    def digest(presented: str) -> str:
        return hashlib.sha256(presented.encode()).hexdigest()

    def get(self, digest: str):
        if self.ttl_s <= 0 or not self._trusted():
            return None
        entry = self._entries.get(digest)
        if entry is None:
            return None
        deadline, caller = entry
        if self._clock() >= deadline:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return caller

    def put(self, digest: str, caller, *, key_expires_at: datetime | None, generation: int) -> None:
        if self.ttl_s <= 0 or not self._trusted():
            return
        now = self._clock()
        deadline = now + self.ttl_s
        if key_expires_at is not None:
            deadline = min(deadline, now + (key_expires_at - utcnow()).total_seconds())
        with self._lock:
            if generation != self.generation:
                return  # a revocation arrived while this key was being read
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (deadline, caller)

    def forget(self, key_id: str | None) -> None:
        """Drop every entry of ``key_id`` (revoked), or every entry (None: revocations were missed)."""
        with self._lock:
            self.generation += 1
            if key_id is None:
                self._entries.clear()
                return
            for digest in [d for d, (_, caller) in self._entries.items() if caller.key_id == key_id]:
                del self._entries[digest]

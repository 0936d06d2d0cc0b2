"""The status endpoint's validators: a weak ETag of a job's state, and how If-None-Match is read."""
from __future__ import annotations

import re

from ..jobs.snapshots import StatusSnapshot
from ..models import Job


def status_etag(job: Job | StatusSnapshot) -> str:
    """A weak tag of the job's state: its version, plus its place in the queue while queued.

    Weak, because two answers under one tag are equivalent but not byte-identical: their
    ``poll_after_ms`` (and ``Retry-After``) follow the job's age and this process's load."""
    if job.queue_position is not None:
        return f'W/"v{job.version}.q{job.queue_position}"'
    return f'W/"v{job.version}"'


_TAG_VERSION = re.compile(r'"v(\d{1,10})')


def newest_version(presented: str) -> int:
    """The highest job version named by an If-None-Match value (0 for ``*`` or foreign tags)."""
    return max((int(v) for v in _TAG_VERSION.findall(presented)), default=0)


def matches_tag(presented: str, tag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110): ``"v5"`` and ``W/"v5"`` both match."""
    if presented.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")
    return opaque in {candidate.strip().removeprefix("W/") for candidate in presented.split(",")}

"""Job ids and request ids: the formats specified in docs/job-ids.md."""
from __future__ import annotations

import re

from ulid import ULID

JOB_ID_PREFIX = "job_"
# Crockford base-32 without I, L, O, U. Ids the server makes always start with 0-7 (a ULID's 48-bit
# time), but any 26 such characters are well-formed: an impossible id is unknown (404), not malformed.
JOB_ID_PATTERN = r"^job_[0-9A-HJKMNP-TV-Z]{26}$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
_REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)


def new_job_id() -> str:
    """A fresh id: ``job_`` + a ULID, so ids sort by creation time."""
    return JOB_ID_PREFIX + str(ULID())


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID_RE.fullmatch(value))


def is_request_id(value: str) -> bool:
    return bool(_REQUEST_ID_RE.fullmatch(value))

"""The list cursor: an opaque token naming the last job id of the page before."""
from __future__ import annotations

import base64
import binascii

from ..ids import is_job_id
from .errors import InvalidCursor

_CURSOR_PREFIX = "before:"


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    last_id = raw.removeprefix(_CURSOR_PREFIX)
    if not raw.startswith(_CURSOR_PREFIX) or not is_job_id(last_id):
        raise InvalidCursor()
    return last_id

"""gunicorn's logger, with each access line built from the atoms its format names and no others.

gunicorn builds every atom it knows for every request before formatting the line: twenty fields, a
``strftime``, one entry per request header, per response header and per WSGI environ variable
(about forty), then copies them all into ``SafeAtoms``, escaping each string. Our format
(``backend/gunicorn_conf.py``) names eight. With a status poll answered from memory in about
0.25 ms, building the unused ones was about 5 % of a web process's CPU (py-spy under
``bench/run.py --long-polls``). The line, the logger, its handlers and the JSON formatter are
unchanged: only the mapping the line is formatted from is smaller.
"""
from __future__ import annotations

import functools
import os
import re

from gunicorn.glogging import Logger

_NAMED_ATOM = re.compile(r"%\(([^)]+)\)")


@functools.lru_cache(maxsize=8)
def _atoms_named(access_log_format: str) -> frozenset[str]:
    return frozenset(_NAMED_ATOM.findall(access_log_format))


def _sent(resp):
    return getattr(resp, "sent", None)


def _status(resp) -> str:
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


# Each of gunicorn's own atoms, computed as ``Logger.atoms`` computes it (a test compares the two).
_ATOMS = {
    "h": lambda log, resp, environ, t: environ.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, environ, t: "-",
    "u": lambda log, resp, environ, t: log._get_user(environ) or "-",
    "t": lambda log, resp, environ, t: log.now(),
    "r": lambda log, resp, environ, t: "%s %s %s" % (environ["REQUEST_METHOD"], environ["RAW_URI"],
                                                     environ["SERVER_PROTOCOL"]),
    "s": lambda log, resp, environ, t: _status(resp),
    "m": lambda log, resp, environ, t: environ.get("REQUEST_METHOD"),
    "U": lambda log, resp, environ, t: environ.get("PATH_INFO"),
    "q": lambda log, resp, environ, t: environ.get("QUERY_STRING"),
    "H": lambda log, resp, environ, t: environ.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, environ, t: _sent(resp) is not None and str(resp.sent) or "-",
    "B": lambda log, resp, environ, t: _sent(resp),
    "f": lambda log, resp, environ, t: environ.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, environ, t: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, environ, t: t.seconds,
    "D": lambda log, resp, environ, t: (t.seconds * 1000000) + t.microseconds,
    "M": lambda log, resp, environ, t: (t.seconds * 1000) + int(t.microseconds / 1000),
    "L": lambda log, resp, environ, t: "%d.%06d" % (t.seconds, t.microseconds),
    "p": lambda log, resp, environ, t: "<%s>" % os.getpid(),
}


def _last(pairs, name: str):
    """The value of the last pair named ``name`` (case-insensitive), as gunicorn's dict keeps it."""
    found = None
    for key, value in pairs:
        if key.lower() == name:
            found = value
    return found


class LeanAccessLogger(Logger):
    """``gunicorn.glogging.Logger`` whose access atoms are only those the access format names."""

    def atoms(self, resp, req, environ, request_time):
        names = _atoms_named(self.cfg.access_log_format)
        atoms = {}
        for name in names:
            if name in _ATOMS:
                atoms[name] = _ATOMS[name](self, resp, environ, request_time)
                continue
            # {header}i, {header}o, {variable}e; SafeAtoms looks them up lowercased.
            key = name.lower()
            if not (key.startswith("{") and key[-2:] in ("}i", "}o", "}e")):
                continue  # an atom gunicorn does not know either: SafeAtoms prints "-"
            field, kind = key[1:-2], key[-1]
            if kind == "i":
                headers = req.headers if hasattr(req, "headers") else req
                value = _last(headers.items() if hasattr(headers, "items") else headers, field)
            elif kind == "o":
                headers = resp.headers
                value = _last(headers.items() if hasattr(headers, "items") else headers, field)
            else:
                value = _last(environ.items(), field)
            if value is not None:
                atoms[key] = value
        return atoms

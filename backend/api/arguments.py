"""The request arguments of the hot endpoints (the status poll, the batch poll, the submit), read
by hand: their usual forms in microseconds, judged by the schemas' own validators; anything else
through the schemas (flask-smorest's parser), so that bad input gets their 4xx, word for word.
Tests in tests/unit/test_*_arguments.py compare both ways on many inputs."""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from marshmallow import ValidationError
from webargs.core import parse_json
from webargs.flaskparser import is_json_request

from .schemas import (
    MAX_IF_NONE_MATCH_CHARS,
    MAX_WAIT_S,
    BatchStatusRequestSchema,
    ConditionalHeadersSchema,
    SubmitJobSchema,
    WaitArgsSchema,
)

ARGUMENTS_PARSER = Blueprint.ARGUMENTS_PARSER


def status_arguments() -> tuple[int, str | None]:
    """``wait`` and ``If-None-Match`` as WaitArgsSchema and ConditionalHeadersSchema read them.

    Their usual forms are read here, in microseconds; anything else goes through the schemas, so
    that a bad value gets their 422, word for word (a test compares the two on many inputs)."""
    raw_wait = request.args.get("wait")
    tag = request.headers.get("If-None-Match")
    usual_wait = raw_wait is None or (raw_wait.isascii() and raw_wait.isdigit() and int(raw_wait) <= MAX_WAIT_S)
    if usual_wait and (tag is None or len(tag) <= MAX_IF_NONE_MATCH_CHARS):
        return int(raw_wait or 0), tag
    query = ARGUMENTS_PARSER.parse(WaitArgsSchema, location="query")
    headers = ARGUMENTS_PARSER.parse(ConditionalHeadersSchema, location="headers")
    return query["wait"], headers["if_none_match"]


# The submit body's members, and the schema's own fields, whose validators judge the usual form.
_SUBMIT_FIELDS = SubmitJobSchema().fields
_SUBMIT_MEMBERS = frozenset(_SUBMIT_FIELDS)


def submit_arguments() -> dict:
    """The submit body as SubmitJobSchema loads it.

    Its usual form (an object of strings that pass the schema's validators and an input object) is
    read here; anything else goes through the schema, so that bad input gets its 4xx, word for word
    (a test compares the two on many bodies)."""
    if is_json_request(request):
        data = _json_body()
        if _is_usual_submit(data):
            loaded = {"agent": data.get("agent", _SUBMIT_FIELDS["agent"].load_default), "input": dict(data["input"])}
            if "request_id" in data:
                loaded["request_id"] = data["request_id"]
            return loaded
    return ARGUMENTS_PARSER.parse(SubmitJobSchema, location="json")


def _json_body():
    """The JSON body as webargs parses it, or None if it does not parse (the schema then says why)."""
    try:
        return parse_json(request.get_data(cache=True))
    except ValueError:
        return None


def _is_usual_submit(data) -> bool:
    if type(data) is not dict or "input" not in data or type(data["input"]) is not dict:
        return False
    if not _SUBMIT_MEMBERS.issuperset(data):
        return False
    try:
        for name in ("agent", "request_id"):
            if name in data:
                if type(data[name]) is not str:
                    return False
                for validator in _SUBMIT_FIELDS[name].validators:
                    validator(data[name])
    except ValidationError:
        return False
    return True


# The batch body's fields, whose validators judge the usual form.
_BATCH_FIELDS = BatchStatusRequestSchema().fields
_BATCH_MEMBERS = frozenset(_BATCH_FIELDS)


def batch_arguments() -> dict:
    """The batch poll's body as BatchStatusRequestSchema loads it.

    Its usual form (up to 100 job ids, and optionally their versions as whole numbers) is read
    here, judged by the schema's own validators; anything else goes through the schema, so that bad
    input gets its 4xx, word for word (a test compares the two on many bodies)."""
    if is_json_request(request):
        data = _json_body()
        if _is_usual_batch(data):
            return {"ids": list(data["ids"]), "versions": dict(data.get("versions", {}))}
    return ARGUMENTS_PARSER.parse(BatchStatusRequestSchema, location="json")


def _is_usual_batch(data) -> bool:
    if type(data) is not dict or not _BATCH_MEMBERS.issuperset(data):
        return False
    ids, versions = data.get("ids"), data.get("versions", {})
    if type(ids) is not list or type(versions) is not dict:
        return False
    versions_field = _BATCH_FIELDS["versions"]
    try:
        for validator in _BATCH_FIELDS["ids"].validators:
            validator(ids)
        for job_id in ids:
            if type(job_id) is not str:
                return False
            for validator in _BATCH_FIELDS["ids"].inner.validators:
                validator(job_id)
        for job_id, version in versions.items():
            if type(version) is not int:  # bool, float and numeric strings: the schema decides
                return False
            for validator in versions_field.key_field.validators:
                validator(job_id)
            for validator in versions_field.value_field.validators:
                validator(version)
    except ValidationError:
        return False
    return True

"""`flask --app wsgi keys ...`: create, list, revoke, expire."""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def _invoke(app, *args):
    result = app.test_cli_runner().invoke(args=["keys", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_created_key_is_printed_last_and_works(app, client):
    output = _invoke(app, "create", "--owner", "dana")
    key = output.strip().splitlines()[-1]

    assert key.startswith("jobs_")
    assert client.get("/api/ai/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_keys_are_stored_only_as_hashes(app):
    from backend.keys import list_keys

    key = _invoke(app, "create", "--owner", "dana").strip().splitlines()[-1]
    with app.app_context():
        rows = list_keys("dana")

    secret = key.split("_", 2)[2]
    assert len(rows) == 1
    assert secret not in rows[0].secret_hash and len(rows[0].secret_hash) == 64


def test_listed_keys_show_state_and_revoked_keys_stop_working(app, client):
    key = _invoke(app, "create", "--owner", "erin").strip().splitlines()[-1]
    key_id = key.split("_")[1]

    assert f"{key_id}\terin\tactive" in _invoke(app, "list", "--owner", "erin")
    assert "Revoked" in _invoke(app, "revoke", key_id)
    assert f"{key_id}\terin\trevoked" in _invoke(app, "list")
    assert client.get("/api/ai/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_a_key_with_an_expiry_stops_working_when_it_expires(app, client):
    key = _invoke(app, "create", "--owner", "fay", "--expires-in", "1s").strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}

    assert client.get("/api/ai/jobs", headers=headers).status_code == 200
    time.sleep(1.2)
    assert client.get("/api/ai/jobs", headers=headers).status_code == 401


def test_revoking_an_unknown_key_and_a_bad_duration_are_clear_errors(app):
    runner = app.test_cli_runner()

    unknown = runner.invoke(args=["keys", "revoke", "nope"])
    bad = runner.invoke(args=["keys", "create", "--owner", "x", "--expires-in", "soon"])

    assert unknown.exit_code != 0 and "no key with id" in unknown.output
    assert bad.exit_code != 0 and "30s, 15m, 12h or 90d" in bad.output

"""Command-line tools: ``flask --app wsgi keys ...`` and ``flask --app wsgi serve``."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from . import keys as api_keys
from .models import utcnow

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str | None) -> timedelta | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if not match:
        raise click.BadParameter("use a number and a unit: 30s, 15m, 12h or 90d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


@click.group("keys")
def keys_group() -> None:
    """Manage API keys."""


@keys_group.command("create")
@click.option("--owner", required=True, help="Who the key belongs to; owners see only their own jobs.")
@click.option("--expires-in", default=None, help="Lifetime such as 90d or 12h; default: no expiry.")
@with_appcontext
def create_key(owner: str, expires_in: str | None) -> None:
    """Create a key; it is printed once, as the last line, and stored only as a hash."""
    issued = api_keys.create_key(owner.strip(), expires_in=_duration(expires_in))
    expiry = issued.expires_at.isoformat() if issued.expires_at else "never"
    click.echo(f"Created key {issued.id} for owner {issued.owner!r} (expires: {expiry}).")
    click.echo("Store it now; it cannot be shown again:")
    click.echo(issued.key)


@keys_group.command("list")
@click.option("--owner", default=None, help="Only this owner's keys.")
@with_appcontext
def list_keys(owner: str | None) -> None:
    """List keys (ids and state only; secrets are never stored)."""
    for key in api_keys.list_keys(owner):
        if key.revoked_at is not None:
            state = "revoked"
        elif key.expires_at is not None and key.expires_at <= utcnow():
            state = "expired"
        else:
            state = "active"
        expires = key.expires_at.isoformat() if key.expires_at else "never"
        click.echo(f"{key.id}\t{key.owner}\t{state}\tcreated {key.created_at.isoformat()}\texpires {expires}")


@keys_group.command("revoke")
@click.argument("key_id")
@with_appcontext
def revoke_key(key_id: str) -> None:
    """Revoke a key by id; it stops working at once."""
    if not api_keys.revoke_key(key_id):
        raise click.ClickException(f"no key with id {key_id!r}")
    click.echo(f"Revoked key {key_id}.")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the API with an in-process worker (the embedded mode of `make run`)."""
    from .embedded import start_embedded_worker

    app: Flask = current_app._get_current_object()
    config = app.extensions["config"]
    if not config.embedded:
        raise click.ClickException("serve is the embedded mode; with REDIS_URL run gunicorn and dramatiq.")
    if config.dev_api_key is None:
        config = config.with_overrides(dev_api_key="dev_" + secrets.token_urlsafe(18))
        app.extensions["config"] = config
        app.extensions["job_service"].config = config
    worker = start_embedded_worker(app)
    click.echo(f"Embedded worker started ({config.embedded_worker_threads} threads).")
    click.echo(f"Open http://{host}:{port}/ (API docs: http://{host}:{port}/api/docs)")
    click.echo(f"Development API key (owner {config.dev_owner!r}): {config.dev_api_key}")
    try:
        # run_simple, not app.run: Flask refuses app.run inside a CLI command.
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        worker.stop()


def register(app: Flask) -> None:
    app.cli.add_command(keys_group)
    app.cli.add_command(serve)

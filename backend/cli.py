"""Command-line tools: ``flask --app wsgi keys ...`` and ``flask --app wsgi serve``."""
from __future__ import annotations

import errno
import re
import socket
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.serving import make_server, select_address_family

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
@click.option("--scope", type=click.Choice(api_keys.SCOPES), default="jobs", show_default=True,
              help="jobs: the job API; ops: the operations endpoints and the /ops page only.")
@with_appcontext
def create_key(owner: str, expires_in: str | None, scope: str) -> None:
    """Create a key; it is printed once, as the last line, and stored only as a hash."""
    issued = api_keys.create_key(owner.strip(), expires_in=_duration(expires_in), scope=scope)
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
    from .embedded import development_key, start_embedded_worker

    app: Flask = current_app._get_current_object()
    config = app.extensions["config"]
    if not config.embedded:
        raise click.ClickException("serve is the embedded mode; with REDIS_URL run gunicorn and dramatiq.")
    # Bind first: nothing is started or announced for a port that turns out to be taken. The socket is
    # bound here rather than by werkzeug, whose own failure message does not say what to do.
    try:
        listener = socket.create_server((host, port), family=select_address_family(host, port))
    except OSError as error:
        raise click.ClickException(_cannot_listen(host, port, error)) from None
    with listener:
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
    if config.dev_api_key is None:
        try:
            dev_api_key = development_key(config.dev_api_key_file)
        except OSError as error:
            raise click.ClickException(
                f"cannot keep the development key in {config.dev_api_key_file}: "
                f"{error.strerror or error}; set DEV_API_KEY, or DEV_API_KEY_FILE to a writable path"
            ) from None
        config = config.with_overrides(dev_api_key=dev_api_key)
        app.extensions["config"] = config
        app.extensions["job_service"].config = config
    worker = start_embedded_worker(app)
    url = f"http://{host}:{server.port}"
    click.echo(f"Embedded worker started ({config.embedded_worker_threads} threads).")
    click.echo(f"Open {url}/ (API docs: {url}/api/docs)")
    click.echo(f"Development API key (owner {config.dev_owner!r}): {config.dev_api_key}")
    try:
        # Werkzeug's own loop; Ctrl+C ends it quietly and closes the socket.
        server.serve_forever()
    finally:
        # The grace period and the hand-back happen inside stop(); after them, an agent stuck
        # between checkpoints has already lost its job, so its thread is not waited for long.
        worker.stop(timeout=5000)


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use, perhaps by another `make run`. Stop that "
            f"server, or choose another port: make run PORT={port + 1}"
        )
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


@click.group("jobs")
def jobs_group() -> None:
    """Maintain jobs."""


@jobs_group.command("purge")
@click.option("--older-than", "older_than", required=True, help="Finished more than this long ago: 7d, 12h, 30m.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def purge_jobs(older_than: str, dry_run: bool, batch_size: int) -> None:
    """Delete finished jobs (and their history) now, in batches; deleted jobs answer 404."""
    from .jobs.retention import purge_finished

    result = purge_finished(_duration(older_than), batch_size=batch_size, dry_run=dry_run)
    if dry_run:
        click.echo(f"Dry run: {result.deleted} finished jobs older than {result.cutoff.isoformat()} would be deleted.")
    else:
        click.echo(f"Deleted {result.deleted} finished jobs older than {result.cutoff.isoformat()} "
                   f"in {result.batches} batches.")


def register(app: Flask) -> None:
    app.cli.add_command(jobs_group)
    app.cli.add_command(keys_group)
    app.cli.add_command(serve)

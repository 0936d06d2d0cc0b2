"""The demo page, the client's modules and the API docs' assets, all served from this process."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify, request, send_from_directory

from .api.problems import problem
from .config import data_dir

CLIENT_DIR = data_dir("client")
bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    return send_from_directory(CLIENT_DIR / "demo", "index.html", max_age=0)


@bp.get("/demo/<path:filename>")
def demo_asset(filename: str):
    return send_from_directory(CLIENT_DIR / "demo", filename, max_age=0)


@bp.get("/client/src/<path:filename>")
def client_module(filename: str):
    return send_from_directory(CLIENT_DIR / "src", filename, max_age=0)


# Host names that can only mean this machine. A page on an attacker's name that resolves to
# 127.0.0.1 (DNS rebinding) still sends its own name as Host, so it never gets the key.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


@bp.get("/demo-config.json")
def demo_config():
    """In embedded mode only, hand the development key to the demo page on this machine."""
    config = current_app.extensions["config"]
    if not (config.embedded and config.dev_api_key):
        # 200 without a key rather than 404: the page asks on every load, and a 404 is a console error.
        return jsonify({"embedded": False})
    if not _from_this_machine():
        return problem(404, "The demo configuration is served only to loopback clients.")
    return jsonify({"api_key": config.dev_api_key, "embedded": True})


def _from_this_machine() -> bool:
    """The client is on a loopback address and named this server by a loopback name."""
    try:
        client_is_local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
    return client_is_local and _host_name(request.host) in LOOPBACK_HOSTS


def _host_name(host: str) -> str:
    """The Host header without its port, lower-cased: ``[::1]:5000`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rpartition(":")[0] if ":" in host else host


@bp.get("/api/docs/assets/<path:filename>")
def docs_asset(filename: str):
    import flask_swagger_ui

    return send_from_directory(Path(flask_swagger_ui.__file__).parent / "dist", filename)


def register(app: Flask) -> None:
    app.register_blueprint(bp)

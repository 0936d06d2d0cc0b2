"""The demo page, the client's modules and the API docs' assets, all served from this process."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, jsonify, send_from_directory

from .config import PROJECT_ROOT

CLIENT_DIR = PROJECT_ROOT / "client"
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


@bp.get("/demo-config.json")
def demo_config():
    """In embedded mode only, hand the development key to the demo page on this machine."""
    config = current_app.extensions["config"]
    if not (config.embedded and config.dev_api_key):
        abort(404)
    return jsonify({"api_key": config.dev_api_key, "embedded": True})


@bp.get("/api/docs/assets/<path:filename>")
def docs_asset(filename: str):
    import flask_swagger_ui

    return send_from_directory(Path(flask_swagger_ui.__file__).parent / "dist", filename)


def register(app: Flask) -> None:
    app.register_blueprint(bp)

"""The built wheel is the whole service: installed in a fresh venv, in a directory with no source
tree, it upgrades an empty PostgreSQL database, serves the API, the demo page and the client
modules, and its worker module boots.

The fresh venv is made by `venv` (its own pip, from Python's bundled copy: no network). It gets
the project only from the wheel (`pip install --no-deps --no-index`); the third-party packages
come from this test run's own environment through a .pth file, which adds that site-packages
directory as a plain path, so the editable install of the checkout listed there is never loaded.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_ADMIN_DSN, PG_URL_TEMPLATE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# What a build needs from the checkout (setup.py ships migrations/ and client/ from there).
BUILD_INPUTS = ("backend", "migrations", "client/demo", "client/src", "client/ops", "wsgi.py", "setup.py",
                "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in")


def _run(command, *, cwd, env=None, timeout_s=180) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed, built from a copy of the checkout (so the build
    leaves nothing behind in the shared tree)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in BUILD_INPUTS:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--wheel-dir", str(base / "dist"), str(source)], cwd=base)
    wheel = next((base / "dist").glob("ai_jobs-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).strip()
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
          str(wheel)], cwd=base)
    shutil.rmtree(source)  # nothing of the checkout is left to fall back on
    return python


@pytest.fixture
def empty_database() -> str:
    name = f"aijobs_wheel_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_the_installed_wheel_upgrades_an_empty_database_and_serves_the_api_and_the_pages(
    installed, empty_database, redis_url, tmp_path
):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "COV_", "COVERAGE"))}
    env.update(DATABASE_URL=empty_database, REDIS_URL=redis_url)
    workdir = tmp_path / "elsewhere"  # no wsgi.py, backend/ or migrations/ here
    workdir.mkdir()

    _run([str(installed), "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=workdir, env=env)
    probe = _run([str(installed), "-c", """
import backend, backend.worker, wsgi
from backend.config import data_dir
from sqlalchemy import create_engine, text
client = wsgi.app.test_client()
print(backend.__file__)
print(data_dir("migrations"))
print(client.get("/health/live").status_code, client.get("/").status_code,
      client.get("/client/src/client.js").status_code, client.get("/ops").status_code)
print(client.post("/api/ai/jobs", json={"agent": "echo", "input": {}}).status_code)
with create_engine(wsgi.app.config["SQLALCHEMY_DATABASE_URI"]).connect() as c:
    print(c.execute(text("SELECT version_num FROM alembic_version")).scalar())
"""], cwd=workdir, env=env)

    package_file, migrations_dir, statuses, submit_status, revision = probe.strip().splitlines()[-5:]
    venv = installed.parent.parent
    assert package_file.startswith(str(venv)), package_file
    assert migrations_dir.startswith(str(venv)) and migrations_dir.endswith("backend/_data/migrations")
    assert statuses == "200 200 200 200"
    assert submit_status == "401"  # the API answers (no key given), from the installed package
    assert revision == sorted(p.stem.split("_")[0] for p in (ROOT / "migrations" / "versions").glob("0*.py"))[-1]

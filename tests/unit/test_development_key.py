"""The embedded mode's development key: made once, readable by its owner only, then reused."""
from __future__ import annotations

import stat

from backend.embedded import development_key


def test_the_key_is_made_once_in_a_private_file_and_then_reused(tmp_path):
    path = tmp_path / "instance" / "dev-api-key"

    first = development_key(path)

    assert first.startswith("dev_") and len(first) > 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert development_key(path) == first


def test_a_key_file_others_could_read_is_made_private_and_kept(tmp_path):
    path = tmp_path / "dev-api-key"
    path.write_text("dev_chosen-by-hand\n")
    path.chmod(0o644)

    assert development_key(path) == "dev_chosen-by-hand"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_key_file_gets_a_new_private_key(tmp_path):
    path = tmp_path / "dev-api-key"
    path.write_text("")
    path.chmod(0o644)

    key = development_key(path)

    assert key.startswith("dev_") and path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

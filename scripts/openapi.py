"""The committed OpenAPI document, docs/openapi.json, and the live one the app serves.

    python scripts/openapi.py write   # regenerate docs/openapi.json from the app
    python scripts/openapi.py check   # exit 1 (with a diff) when the committed copy has drifted

The document depends on code only, not on configuration: it is built from an app on an in-memory
SQLite database, the same way whatever the environment says.
"""
from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
COMMITTED = ROOT / "docs" / "openapi.json"


def live_document_text() -> str:
    """The document as GET /api/openapi.json serves it, pretty-printed for reviewable diffs."""
    from backend import create_app
    from backend.config import Config

    app = create_app(Config(database_url="sqlite://"))
    response = app.test_client().get("/api/openapi.json")
    if response.status_code != 200:
        raise SystemExit(f"GET /api/openapi.json answered {response.status_code}")
    return json.dumps(response.get_json(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "write":
        COMMITTED.write_text(live_document_text(), encoding="utf-8")
        print(f"wrote {COMMITTED.relative_to(ROOT)}")
        return 0
    if command == "check":
        live = live_document_text()
        committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
        if live == committed:
            print(f"{COMMITTED.relative_to(ROOT)} matches the live document")
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                committed.splitlines(keepends=True), live.splitlines(keepends=True),
                "docs/openapi.json (committed)", "/api/openapi.json (live)",
            )
        )
        print("docs/openapi.json has drifted from the live document: run `make openapi` and review the diff")
        return 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

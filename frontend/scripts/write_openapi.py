"""Write the API's OpenAPI schema as JSON (the dashboard's TypeScript types are generated from it).

Run from the repository root with the project's virtualenv: ``python frontend/scripts/write_openapi.py
frontend/src/generated/openapi.json`` (``make frontend`` does). Building the app opens no
connection and writes no file, so this needs neither a database nor a broker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from api.main import create_app


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT.json", file=sys.stderr)
        return 2
    schema = create_app().openapi()
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

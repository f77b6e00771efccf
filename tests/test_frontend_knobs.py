"""The dashboard's client-side knob checks mirror the API's (frontend/src/knobs.ts == api/knobs.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from api import knobs

SOURCE = (Path(__file__).resolve().parents[1] / "frontend" / "src" / "knobs.ts").read_text()
ENTRY = re.compile(r'k\(\s*"(\w+)",\s*"(\w+)",\s*([^,{)]+?)\s*(?:,\s*\{(.*?)\})?\s*,?\s*\),', re.S)


def _ts_knobs() -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for name, kind, default, rest in ENTRY.findall(SOURCE):
        body = rest or ""
        entry: dict[str, object] = {"type": kind, "default": json.loads(default.replace("'", '"'))}
        choices = re.search(r"choices:\s*\[(.*?)\]", body, re.S)
        entry["choices"] = tuple(re.findall(r'"(\w+)"', choices.group(1))) if choices else None
        for key in ("min", "gt", "max", "lt"):
            match = re.search(rf"\b{key}:\s*([-\d.e]+)", body)
            entry[key] = float(match.group(1)) if match else None
        found[name] = entry
    return found


def test_every_api_knob_has_the_same_rules_in_the_dashboard() -> None:
    ts = _ts_knobs()
    assert list(ts) == list(knobs.KNOBS)
    for name, spec in knobs.KNOBS.items():
        entry = ts[name]
        assert entry["type"] == spec.type, name
        assert entry["default"] == spec.default, name
        assert entry["choices"] == spec.choices, name
        low = entry["gt"] if spec.min_exclusive else entry["min"]
        high = entry["lt"] if spec.max_exclusive else entry["max"]
        assert low == spec.min and high == spec.max, name

"""A job spec's size as sent, YAML aliases expanded (synib_client.spec.MAX_SPEC_VALUES)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from synib_client.spec import MAX_SPEC_VALUES, SpecError, load_spec


def test_nested_yaml_aliases_are_refused_quickly(tmp_path: Path) -> None:
    # "Billion laughs": 9 levels of 10 aliases each expand to 10**9 strings when sent.
    lines = ["dataset_id: d1", "methods: [vanilla]", "a0: &a0 [lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("name: *a9")
    path = tmp_path / "job.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(SpecError, match=f"more than {MAX_SPEC_VALUES} values"):
        load_spec(path)
    assert time.monotonic() - started < 5


def test_a_large_but_reasonable_spec_passes(tmp_path: Path) -> None:
    values = ", ".join(str(v) for v in range(1000))
    path = tmp_path / "job.yaml"
    path.write_text(f"dataset_id: d1\nmethods: [vanilla]\nseeds: [{values}]\n")
    body, _ = load_spec(path)
    assert len(body["seeds"]) == 1000

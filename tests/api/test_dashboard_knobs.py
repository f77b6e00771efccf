"""The static dashboard mount and the knob mirror (api/knobs.py == synib_core.config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import knobs
from api.main import create_app
from api.settings import Settings
from api.storage import ArtifactStore, UnsafePathError


def test_dashboard_is_served_with_security_headers(
    api_settings: Settings, tmp_path: Path, auth: dict[str, str]
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>SynIB</title>")
    (dist / "app.js").write_text("console.log(1)")
    with TestClient(create_app(api_settings.model_copy(update={"static_dir": dist}))) as client:
        index = client.get("/")
        assert index.status_code == 200 and "<title>SynIB</title>" in index.text
        csp = index.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp
        assert index.headers["x-content-type-options"] == "nosniff"
        assert index.headers["x-frame-options"] == "DENY"
        assert client.get("/app.js").headers["x-frame-options"] == "DENY"
        assert client.get("/api/v1/me", headers=auth).json()["name"] == "alice"
        assert client.get("/openapi.json").status_code == 200


def test_knob_table_mirrors_synib_core() -> None:
    from synib_core import config

    assert list(knobs.KNOBS) == list(config.KNOBS)
    for name, spec in config.KNOBS.items():
        core = spec.to_dict()
        core.pop("help")
        core["choices"] = tuple(core["choices"]) if core["choices"] is not None else None
        assert dataclasses.asdict(knobs.KNOBS[name]) == core, name
    assert knobs.METHODS == config.METHODS
    assert knobs.SHARED_KNOBS == config.SHARED_KNOBS
    assert knobs.METHOD_KNOBS == config.METHOD_KNOBS


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("lr", "1e-3", 0.001),
        ("hidden", 16.0, 16),
        ("mask_hard", "true", True),
        ("modality_weights", "a=1,b=0.5", "a=1,b=0.5"),
    ],
)
def test_validate_knob_coerces(name: str, value: object, expected: object) -> None:
    assert knobs.validate_knob(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", 0),
        ("dropout", 1.0),
        ("hidden", 1.5),
        ("encoder", "rnn"),
        ("amp", "maybe"),
        ("mask_prob", 0.0),
        ("modality_weights", "a=-1"),
        ("lambda", float("nan")),
        ("bogus", 1),
        ("epochs", 10**400),  # beyond a float's range: no OverflowError, a 422
        ("lr", 10**400),
        ("hidden", 2**31),  # the API's ceiling for integer knobs
        ("hidden", 1e300),
    ],
)
def test_validate_knob_rejects(name: str, value: object) -> None:
    with pytest.raises(knobs.KnobValueError) as info:
        knobs.validate_knob(name, value)
    assert info.value.field == name


def test_count_trials_by_hand() -> None:
    sweep = {
        "lambda": {"type": "grid", "values": [0, 1, 10]},
        "lr": {"type": "uniform", "low": 0.001, "high": 0.01},
    }
    # vanilla: lambda ignored, lr random -> 4 samples x 2 seeds = 8; synib: 3 x 4 x 2 = 24
    assert knobs.count_trials(["vanilla", "synib"], sweep, 4, 2) == 32
    assert (
        knobs.count_trials(["ensemble"], {"ogm_alpha": {"type": "grid", "values": [1, 2]}}, 4, 3)
        == 3
    )


def test_store_paths_cannot_escape(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    assert store.resolve("jobs/a/model.zip") == (tmp_path / "store" / "jobs/a/model.zip").resolve()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "link").symlink_to(tmp_path)
    for bad in ("", "../x", "/etc/passwd", "a/../../x", ".", "a\\b", "link/x", "x\x00"):
        with pytest.raises(UnsafePathError):
            store.resolve(bad)


def test_integer_ceiling_is_in_the_message() -> None:
    with pytest.raises(knobs.KnobValueError, match=f"<= {knobs.INT_KNOB_MAX}"):
        knobs.validate_knob("hidden", 2**31)
    assert knobs.validate_knob("hidden", knobs.INT_KNOB_MAX) == knobs.INT_KNOB_MAX


def test_cross_field_rules_mirror_synib_core() -> None:
    """Every combination of the knobs the rules read: the API refuses exactly what the
    library refuses, naming the same knob with the same reason."""
    import itertools

    from synib_core.config import KnobError, config_from_knobs

    grid = {
        "mask_level": ["feature", "input"],
        "feature_norm": ["layernorm", "none"],
        "mask": ["random", "learned", "oracle"],
        "w_uni": [0.0, 0.5],
        "penalty": ["kl_uniform", "anchor"],
    }
    assert set(grid) == set(knobs.CROSS_FIELD_KNOBS)
    refused = 0
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo, strict=True))
        try:
            config_from_knobs(values)
            core = None
        except KnobError as exc:
            core = str(exc)
        try:
            knobs.check_cross_fields(values)
            api = None
        except knobs.KnobValueError as exc:
            api = str(exc)
        assert api == core, values
        refused += core is not None
    assert refused > 0

"""The static dashboard mount and the artifact store's path checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from infra.settings import Settings
from infra.storage import ArtifactStore, UnsafePathError


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


def test_store_paths_cannot_escape(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    assert store.resolve("jobs/a/model.zip") == (tmp_path / "store" / "jobs/a/model.zip").resolve()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "link").symlink_to(tmp_path)
    for bad in ("", "../x", "/etc/passwd", "a/../../x", ".", "a\\b", "link/x", "x\x00"):
        with pytest.raises(UnsafePathError):
            store.resolve(bad)

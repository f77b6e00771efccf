"""Where the client finds its server and token.

Order: explicit arguments, then ``SYNIB_URL`` / ``SYNIB_TOKEN``, then
``$SYNIB_CONFIG_DIR/credentials.json`` (default ``~/.config/synib/credentials.json``,
``{"url": ..., "token": ...}``, written by ``synib serve`` on first start), then for the url the
settings' ``host:port``. Environment variables are read through pydantic-settings only.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from api.client_errors import ClientError
from api.settings import Settings


class ClientSettings(Settings):
    """The service settings plus the two the client reads (``SYNIB_URL``, ``SYNIB_TOKEN``)."""

    url: str | None = None
    token: str | None = None


def client_settings() -> ClientSettings:
    """Fresh settings from the environment (not cached: the CLI and tests change it)."""
    try:
        return ClientSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ClientError(f"settings: SYNIB_{field.upper()}: {first['msg']}") from exc


def credentials_path(settings: Settings | None = None) -> Path:
    """``<config_dir>/credentials.json``."""
    return (settings or client_settings()).config_dir / "credentials.json"


def read_credentials(path: Path) -> dict[str, str]:
    """The saved ``{"url", "token"}`` (empty when the file does not exist)."""
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(f"credentials: cannot read {path}: {exc}") from exc
    if not isinstance(saved, dict):
        raise ClientError(f"credentials: {path} must hold a JSON object with url and token")
    return {k: str(v) for k, v in saved.items() if k in {"url", "token"} and v}


def resolve_credentials(url: str | None, token: str | None) -> tuple[str, str | None]:
    """Return ``(url without trailing slash, token or None)``."""
    settings = client_settings()
    saved = read_credentials(credentials_path(settings)) if url is None or token is None else {}
    url = url or settings.url or saved.get("url") or f"http://{settings.host}:{settings.port}"
    token = token or settings.token or saved.get("token")
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"url: must start with http:// or https://, got {url!r}")
    return url.rstrip("/"), token

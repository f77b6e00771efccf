"""Where the client finds its server and token.

Order: explicit arguments, then ``SYNIB_URL`` / ``SYNIB_TOKEN``, then
``$SYNIB_CONFIG_DIR/credentials.json`` (default ``~/.config/synib/credentials.json``,
``{"url": ..., "token": ...}``, written by ``synib serve`` on first start), then for the url the
settings' ``host:port``. The saved token goes only to the saved URL: for another server the
token must be given (``--token`` / ``SYNIB_TOKEN``). Environment variables are read through
pydantic-settings only.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from infra.settings import Settings
from synib_client.errors import ClientError


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


def server_key(url: str) -> tuple[str, str, int, str]:
    """What makes two server URLs the same server: (scheme, host, port, path), lowercased where
    URLs are case-insensitive, the default port filled in, no trailing slash. ``localhost`` and
    ``127.0.0.1`` stay different (nothing in the service maps one to the other).

    Example:
        >>> server_key("HTTP://Example.org/synib/") == server_key("http://example.org:80/synib")
        True
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as exc:  # a port that is not a number or out of range
        raise ClientError(f"url: {exc} in {url!r}") from exc
    if not parts.hostname:
        raise ClientError(f"url: no host in {url!r}")
    default_port = 443 if scheme == "https" else 80
    return scheme, parts.hostname.lower(), port or default_port, parts.path.rstrip("/")


def resolve_credentials(url: str | None, token: str | None) -> tuple[str, str | None]:
    """Return ``(url without trailing slash, token or None)``.

    The saved token is used only for the saved URL (``server_key``): sending it to the server
    that ``--url`` / ``SYNIB_URL`` name instead would hand it to whoever runs that server.
    """
    settings = client_settings()
    path = credentials_path(settings)
    saved = read_credentials(path) if url is None or token is None else {}
    url = url or settings.url or saved.get("url") or f"http://{settings.host}:{settings.port}"
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"url: must start with http:// or https://, got {url!r}")
    target = server_key(url)
    token = token or settings.token or None
    if token is None and saved.get("token"):
        if "url" not in saved:
            raise ClientError(
                f"token: the token saved in {path} names no server URL; "
                "give --token or set SYNIB_TOKEN"
            )
        if _key_or_none(saved["url"]) != target:
            raise ClientError(
                f"token: the token saved in {path} is for {saved['url']}, not "
                f"{url.rstrip('/')}; give --token or set SYNIB_TOKEN for that server"
            )
        token = saved["token"]
    return url.rstrip("/"), token


def _key_or_none(url: str) -> tuple[str, str, int, str] | None:
    try:
        return server_key(url)
    except ClientError:  # a saved URL that is not one matches no server
        return None

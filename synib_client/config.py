"""The client's settings and where it finds its server and token.

The client reads three environment variables, here and nowhere else: ``SYNIB_URL``,
``SYNIB_TOKEN`` and ``SYNIB_CONFIG_DIR`` (default ``~/.config/synib``), the folder of
``credentials.json`` (``{"url": ..., "token": ...}``, written by ``synib serve`` on first start).
None of the server's settings apply to it.

Order: explicit arguments (``--url`` / ``--token``), then the environment, then
``credentials.json``, then for the URL ``http://127.0.0.1:8000``. The saved token goes only to
the saved URL: for another server the token must be given (``--token`` / ``SYNIB_TOKEN``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from synib_client.errors import ClientError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_CONFIG_DIR = "~/.config/synib"


@dataclass(frozen=True)
class ClientSettings:
    """``SYNIB_URL``, ``SYNIB_TOKEN``, ``SYNIB_CONFIG_DIR``; an empty variable counts as unset."""

    url: str | None
    token: str | None
    config_dir: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        """Fresh settings (not cached: the CLI and tests change the environment)."""
        env = os.environ if environ is None else environ
        config_dir = env.get("SYNIB_CONFIG_DIR") or DEFAULT_CONFIG_DIR
        return cls(
            url=env.get("SYNIB_URL") or None,
            token=env.get("SYNIB_TOKEN") or None,
            config_dir=Path(config_dir).expanduser(),
        )

    @property
    def credentials_path(self) -> Path:
        return self.config_dir / "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """The server and token a client uses, and where each came from (for ``synib token show``):
    ``url_from`` is ``--url``, ``SYNIB_URL``, the credentials file or ``default``;
    ``token_from`` the same without a default (None when there is no token)."""

    url: str
    token: str | None
    url_from: str
    token_from: str | None


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


def find_credentials(url: str | None, token: str | None) -> Credentials:
    """The URL (without trailing slash) and token to use, given ``--url`` / ``--token``.

    The saved token is used only for the saved URL (``server_key``): sending it to the server
    that ``--url`` / ``SYNIB_URL`` name instead would hand it to whoever runs that server.
    """
    settings = ClientSettings.from_env()
    path = settings.credentials_path
    saved = read_credentials(path) if url is None or token is None else {}
    url_from, url = _first(
        ("--url", url), ("SYNIB_URL", settings.url), (str(path), saved.get("url"))
    )
    if url is None:
        url_from, url = "default", DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"url: must start with http:// or https://, got {url!r}")
    target = server_key(url)
    token_from, token = _first(("--token", token), ("SYNIB_TOKEN", settings.token))
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
        token_from, token = str(path), saved["token"]
    return Credentials(url.rstrip("/"), token, url_from, token_from if token else None)


def resolve_credentials(url: str | None, token: str | None) -> tuple[str, str | None]:
    """``(url without trailing slash, token or None)``: ``find_credentials`` without sources."""
    found = find_credentials(url, token)
    return found.url, found.token


def _first(*candidates: tuple[str, str | None]) -> tuple[str, str | None]:
    """The first (source, value) with a value, else ("", None)."""
    return next(((source, value) for source, value in candidates if value), ("", None))


def _key_or_none(url: str) -> tuple[str, str, int, str] | None:
    try:
        return server_key(url)
    except ClientError:  # a saved URL that is not one matches no server
        return None

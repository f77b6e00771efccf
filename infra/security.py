"""API tokens: generation, hashing (sha256 hex), constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "synib_"
_TOKEN_BYTES = 32
# Length of "synib_" + urlsafe base64 of 32 bytes (43 chars).
_MIN_LEN, _MAX_LEN = len(TOKEN_PREFIX) + 20, len(TOKEN_PREFIX) + 100


def generate_token() -> str:
    """A fresh plain token ``synib_<urlsafe random>``; only its hash is ever stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def hash_token(token: str) -> str:
    """sha256 hex digest (64 chars) of the plain token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_display_prefix(token: str) -> str:
    """The first characters of a token, safe to show (e.g. ``synib_AbC1``)."""
    return token[: len(TOKEN_PREFIX) + 4]


def looks_like_token(token: str) -> bool:
    """Cheap shape check before any database lookup."""
    if not token.startswith(TOKEN_PREFIX) or not _MIN_LEN <= len(token) <= _MAX_LEN:
        return False
    body = token[len(TOKEN_PREFIX) :]
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in body)


def hashes_match(stored_hash: str, token: str) -> bool:
    """Constant-time comparison of a stored hash with the hash of a presented token."""
    return hmac.compare_digest(stored_hash.encode("ascii"), hash_token(token).encode("ascii"))

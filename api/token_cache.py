"""Recently verified API tokens, kept for a few seconds so that a client's next requests skip the
token lookup in the database (one query per request, the largest share of a small request).

What is cached is what the database said about a valid token: its id, its user and its expiry.
Expiry and the rate limit are still checked on every request; a revocation (``synib token
revoke`` writes the database directly) takes effect in each API process within ``ttl_s`` seconds
(``SYNIB_AUTH_CACHE_TTL_S``; 0 turns the cache off). Only tokens that passed the database check
are stored (unknown, revoked and expired ones are refused before), so a stream of bad tokens
cannot fill it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from api.ttl_cache import TTLCache
from infra.db.models import User


@dataclass(frozen=True)
class VerifiedToken:
    """A token the database accepted, and its user (detached from any session: read-only)."""

    token_id: str
    user: User
    expires_at: datetime | None


class TokenCache(TTLCache[VerifiedToken]):
    """``token hash -> VerifiedToken`` for ``ttl_s`` seconds."""

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

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from api.db.models import User


@dataclass(frozen=True)
class VerifiedToken:
    """A token the database accepted, and its user (detached from any session: read-only)."""

    token_id: str
    user: User
    expires_at: datetime | None


class TokenCache:
    """``token hash -> VerifiedToken`` for ``ttl_s`` seconds, at most ``max_entries`` (the
    least recently stored go first). Used from the event loop's thread only."""

    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, VerifiedToken]] = OrderedDict()

    def get(self, token_hash: str) -> VerifiedToken | None:
        if self.ttl_s <= 0:
            return None
        found = self._entries.get(token_hash)
        if found is None:
            return None
        stored_at, entry = found
        if self._clock() - stored_at >= self.ttl_s:
            del self._entries[token_hash]
            return None
        return entry

    def put(self, token_hash: str, entry: VerifiedToken) -> None:
        if self.ttl_s <= 0:
            return
        self._entries.pop(token_hash, None)
        self._entries[token_hash] = (self._clock(), entry)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)

    def __len__(self) -> int:
        return len(self._entries)

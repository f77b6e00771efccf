"""The API's token cache (api/token_cache.py): a verified token skips the database for
``auth_cache_ttl_s`` seconds; a revocation takes effect within that time, a known expiry at
once, and the rate limit still counts every request. Both backends."""

from __future__ import annotations

import time
from datetime import timedelta

from api_factories import record_statements
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from api.main import create_app
from api.token_cache import TokenCache, VerifiedToken
from infra.db.models import ApiToken, User, utcnow
from infra.security import hash_token
from infra.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_revoked_and_expired_tokens_are_401(
    api_settings: Settings,
    db_session: Session,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    """Without the token cache (``auth_cache_ttl_s=0``) a revocation or an expiry written to
    the database takes effect at the next request (the tests below: with it)."""
    revoked, _ = make_token("bob")
    expired, _ = make_token("carol", ttl_days=1)
    uncached = api_settings.model_copy(update={"auth_cache_ttl_s": 0.0})
    with TestClient(create_app(uncached)) as client:
        for token in (revoked, expired):
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
        revoke_and_expire(db_session, revoked=revoked, expired=expired)
        for token, reason in ((revoked, "token revoked"), (expired, "token expired")):
            response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
            assert response.json()["detail"] == reason


def revoke_and_expire(session: Session, *, revoked: str, expired: str) -> None:
    """Revoke one token and expire the other, straight in the database (as the CLI does)."""
    session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == hash_token(revoked))
        .values(revoked_at=utcnow())
    )
    session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == hash_token(expired))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()


def test_a_verified_token_is_not_looked_up_again_within_the_ttl(
    api_settings: Settings, user_token: tuple[str, str]
) -> None:
    app = create_app(api_settings)
    clock = FakeClock()
    app.state.token_cache = TokenCache(api_settings.auth_cache_ttl_s, clock=clock)
    statements = record_statements(app)
    with TestClient(app) as client:
        assert client.get("/api/v1/me", headers=_bearer(user_token[0])).status_code == 200
        looked_up = len(statements)
        assert looked_up >= 1 and any("api_tokens" in s for s in statements)
        for _ in range(3):
            me = client.get("/api/v1/me", headers=_bearer(user_token[0]))
            assert me.status_code == 200 and me.json()["name"] == "alice"
        assert len(statements) == looked_up, statements[looked_up:]
        clock.now += api_settings.auth_cache_ttl_s  # the entry is now too old: asked again
        assert client.get("/api/v1/me", headers=_bearer(user_token[0])).status_code == 200
        assert any("api_tokens" in s for s in statements[looked_up:])


def test_a_revocation_takes_effect_within_the_ttl(
    api_settings: Settings,
    db_session: Session,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    revoked, _ = make_token("bob")
    expired, _ = make_token("carol", ttl_days=1)
    app = create_app(api_settings)
    clock = FakeClock()
    app.state.token_cache = TokenCache(api_settings.auth_cache_ttl_s, clock=clock)
    with TestClient(app) as client:
        for token in (revoked, expired):
            assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
        revoke_and_expire(db_session, revoked=revoked, expired=expired)
        clock.now += api_settings.auth_cache_ttl_s / 2  # still verified: the documented window
        for token in (revoked, expired):
            assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
        clock.now += api_settings.auth_cache_ttl_s / 2
        for token, reason in ((revoked, "token revoked"), (expired, "token expired")):
            response = client.get("/api/v1/me", headers=_bearer(token))
            assert response.status_code == 401 and response.json()["detail"] == reason
            assert response.headers["www-authenticate"] == "Bearer"
        # Refused tokens are not cached: they stay refused.
        assert len(app.state.token_cache) == 0
        assert client.get("/api/v1/me", headers=_bearer(revoked)).status_code == 401


def test_a_cached_token_is_refused_once_its_known_expiry_passes(
    api_settings: Settings,
    db_session: Session,
    make_token,  # type: ignore[no-untyped-def]
) -> None:
    token, _ = make_token("dave", ttl_days=1)
    db_session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == hash_token(token))
        .values(expires_at=utcnow() + timedelta(seconds=1.5))
    )
    db_session.commit()
    long_cache = api_settings.model_copy(update={"auth_cache_ttl_s": 300.0})
    with TestClient(create_app(long_cache)) as client:
        assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
        time.sleep(1.6)
        response = client.get("/api/v1/me", headers=_bearer(token))
    assert response.status_code == 401 and response.json()["detail"] == "token expired"


def test_the_rate_limit_counts_cached_requests(
    api_settings: Settings, user_token: tuple[str, str]
) -> None:
    limited = api_settings.model_copy(update={"rate_limit_per_minute": 2})
    app = create_app(limited)
    with TestClient(app) as client:
        codes = [client.get("/api/v1/me", headers=_bearer(user_token[0])).status_code]
        assert len(app.state.token_cache) == 1  # the next two are answered from the cache
        codes += [client.get("/api/v1/me", headers=_bearer(user_token[0])).status_code]
        codes += [client.get("/api/v1/me", headers=_bearer(user_token[0])).status_code]
    assert codes == [200, 200, 429]


def _verified(token_id: str) -> VerifiedToken:
    user = User(id=f"user-{token_id}", name=f"user-{token_id}", is_admin=False)
    return VerifiedToken(token_id, user, None)


def test_cache_bounds_and_ttl_zero() -> None:
    clock = FakeClock()
    cache = TokenCache(5.0, max_entries=3, clock=clock)
    for i in range(5):
        cache.put(f"h{i}", _verified(str(i)))
    assert len(cache) == 3
    assert cache.get("h0") is None and cache.get("h1") is None  # the oldest went first
    found = cache.get("h4")
    assert found is not None and found.token_id == "4"
    clock.now += 4.99
    assert cache.get("h4") is not None
    clock.now += 0.01
    assert cache.get("h4") is None and len(cache) == 2  # expired entries are dropped on read
    cache.drop("h3")
    assert cache.get("h3") is None
    off = TokenCache(0.0, clock=clock)
    off.put("h", _verified("x"))
    assert off.get("h") is None and len(off) == 0

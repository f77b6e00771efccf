"""Liveness, readiness, metrics, OpenAPI, the root answer, and authentication."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from infra.security import generate_token, hash_token, looks_like_token
from infra.settings import Settings


def test_health_needs_no_auth_and_no_db(api_settings: Settings) -> None:
    broken = api_settings.model_copy(update={"database_url": "sqlite:////nonexistent/x/y.db"})
    with TestClient(create_app(broken)) as client:
        assert client.get("/api/v1/health").json() == {"status": "ok"}
        assert client.get("/health").json() == {"status": "ok"}


def test_ready_ok(client: TestClient) -> None:
    response = client.get("/api/v1/ready")
    assert response.status_code == 200
    assert client.get("/ready").json() == response.json()
    body = response.json()
    # No worker in this test: the API still takes requests (200), jobs would stay queued.
    assert body["status"] == "degraded"
    assert body["checks"] == {
        "database": "ok",
        "broker": "ok",
        "artifact_store": "ok",
        "workers": "none serving: jobs stay queued",
    }


def test_ready_names_the_failing_broker(api_settings: Settings) -> None:
    bad = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(bad)) as client:
        response = client.get("/api/v1/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"] != "ok"


def test_database_down_gives_503_without_stack(api_settings: Settings) -> None:
    broken = api_settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
        response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {generate_token()}"})
    assert response.status_code == 503
    assert response.json() == {"detail": "database unavailable"}


def test_unexpected_error_is_500_without_trace(app, auth: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "secret" not in response.text


def test_openapi_and_root_are_public_docs_off_by_default(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"]
    assert {"JobCreate", "JobPublic", "JobsPublic", "DatasetPublic", "TrialPublic"} <= set(
        spec["components"]["schemas"]
    )
    # /docs and /redoc load their scripts from a CDN: only served when asked for.
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert "docs" not in client.get("/").json()


def test_docs_when_enabled(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings.model_copy(update={"api_docs": True}))) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/redoc").status_code == 200
        assert client.get("/").json()["docs"] == "/docs"


def test_me_with_token(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get("/api/v1/me", headers=auth)
    assert response.status_code == 200
    assert response.json()["name"] == "alice"


def test_missing_malformed_unknown_tokens_are_401(client: TestClient) -> None:
    cases = [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-synib-token"},
        {"Authorization": f"Bearer {generate_token()}"},
    ]
    for headers in cases:
        response = client.get("/api/v1/jobs", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"


def test_rate_limit_gives_429(api_settings: Settings, user_token: tuple[str, str]) -> None:
    limited = api_settings.model_copy(update={"rate_limit_per_minute": 3})
    headers = {"Authorization": f"Bearer {user_token[0]}"}
    with TestClient(create_app(limited)) as client:
        codes = [client.get("/api/v1/me", headers=headers).status_code for _ in range(4)]
        last = client.get("/api/v1/me", headers=headers)
    assert codes == [200, 200, 200, 429]
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1


def test_token_shape() -> None:
    token = generate_token()
    assert token.startswith("synib_") and looks_like_token(token)
    assert len(hash_token(token)) == 64
    assert not looks_like_token("synib_short")
    assert not looks_like_token("synib_" + "a" * 30 + "!")


def test_metrics_counts_requests_by_route_template(
    client: TestClient, auth: dict[str, str]
) -> None:
    client.get("/api/v1/jobs/does-not-exist", headers=auth)
    body = client.get("/api/v1/metrics", headers=auth).text
    assert (
        'synib_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}",status="404"} 1.0'
        in body
    )
    assert 'synib_jobs{status="queued"} 0.0' in body
    assert "synib_queue_depth 0.0" in body
    assert client.get("/api/v1/metrics").status_code == 401

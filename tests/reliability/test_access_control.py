"""Access control, really attacked (PostgreSQL and SQLite): every route of the app rejects bad
tokens; one user cannot see or touch another's resources; artifact paths cannot leave the
store; upload size and request rate are capped; tokens are stored hashed and compared in
constant time; the dashboard is served with strict security headers and no inline code."""

from __future__ import annotations

import hashlib
import inspect
import random
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest_r2 import World, asgi_request, files_under, row_counts, seed_world, zip_bytes
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select, update
from sqlalchemy.orm import Session
from starlette.routing import Mount

import api.deps
import infra.security
from api.main import create_app
from infra.db import crud
from infra.db.models import ApiToken, utcnow
from infra.security import generate_token, hash_token
from infra.settings import Settings
from infra.storage import ArtifactStore, UnsafePathError
from infra.tokens import issue_token, revoke

URL = "/api/v1"
REPO = Path(__file__).resolve().parents[2]
PUBLIC_ROUTES = {  # /docs and /redoc too, when SYNIB_API_DOCS turns them on (off by default)
    ("/openapi.json", "GET"),
    ("/health", "GET"),
    ("/ready", "GET"),
    (f"{URL}/health", "GET"),
    (f"{URL}/ready", "GET"),
    ("/", "GET"),  # the dashboard's stand-in when it is not built (else a static Mount)
}
SECRET = b"TOP-SECRET-OUTSIDE-THE-STORE"


def app_routes(app: Any) -> Iterator[tuple[str, str]]:
    """(path template, method) of every route of ``app``, included routers flattened; the
    static dashboard mount appears as ``(mount path or "/", "MOUNT")``."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # FastAPI's included router
            for ctx in contexts():
                for method in sorted(ctx.original_route.methods or ()):
                    yield ctx.path, method
        elif isinstance(route, Mount):
            yield route.path or "/", "MOUNT"
        else:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield route.path, method


def fill(template: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)


@pytest.fixture
def alice(db_session: Session, app: Any) -> World:
    return seed_world(db_session, app.state.store, "alice")


@pytest.fixture
def bob(db_session: Session, app: Any) -> World:
    return seed_world(db_session, app.state.store, "bob")


def _bad_credentials(session: Session) -> dict[str, dict[str, str]]:
    expired = issue_token(session, user_name="carol", ttl_days=1)
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == expired.token_id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    revoked = issue_token(session, user_name="dave")
    revoke(session, token_id=revoked.token_id)
    bearer = {
        "malformed: not a synib token": "not-a-token",
        "malformed: bad characters": "synib_" + "!" * 43,
        "malformed: too short": "synib_abc",
        "unknown": generate_token(),
        "expired": expired.token,
        "revoked": revoked.token,
    }
    cases = {"missing": {}, "malformed: basic scheme": {"Authorization": "Basic YTpi"}}
    cases["malformed: empty bearer"] = {"Authorization": "Bearer "}
    cases.update({k: {"Authorization": f"Bearer {v}"} for k, v in bearer.items()})
    return cases


def test_every_route_rejects_missing_malformed_expired_revoked_tokens(
    client: TestClient, app: Any, db_session: Session, alice: World
) -> None:
    routes = sorted(set(app_routes(app)))
    public = {r for r in routes if r in PUBLIC_ROUTES}
    protected = [r for r in routes if r not in PUBLIC_ROUTES and r[1] != "MOUNT"]
    assert public == PUBLIC_ROUTES  # a new unauthenticated route must be added here on purpose
    assert len(protected) >= 22, protected
    credentials = _bad_credentials(db_session)
    checked = 0
    for template, method in protected:
        path = fill(template, alice.path_ids())
        for name, headers in credentials.items():
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, name, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
        # Control: a valid token gets past authentication (ids that do not exist: no effect).
        control = client.request(method, fill(template, _missing_ids()), headers=alice.auth)
        assert control.status_code not in (401, 403, 500), (method, template, control.text)
    print(f"\nauth: {len(protected)} protected routes x {len(credentials)} bad credentials")
    assert checked == len(protected) * len(credentials)
    assert row_counts(db_session)["datasets"] == 1 and row_counts(db_session)["jobs"] == 1


def _missing_ids() -> dict[str, str]:
    return dict.fromkeys(("dataset_id", "job_id", "trial_id", "artifact_id"), "no-such-id")


def test_other_users_resources_are_404_on_every_route(
    client: TestClient, app: Any, db_session: Session, alice: World, bob: World
) -> None:
    templates = [r for r in sorted(set(app_routes(app))) if "{" in r[0]]
    assert len(templates) >= 16
    for template, method in templates:
        response = client.request(method, fill(template, bob.path_ids()), headers=alice.auth)
        assert response.status_code == 404, (method, template, response.text)
        assert response.json()["detail"].endswith("not found")
        assert not any(i in response.text for i in bob.path_ids().values())  # nothing leaks
    # Nothing of bob's was changed or listed to alice.
    for template, method in templates:
        if method == "GET" and not template.endswith("/events"):
            own = client.get(fill(template, bob.path_ids()), headers=bob.auth)
            assert own.status_code == 200, (template, own.text)
    assert client.get(f"{URL}/jobs/{bob.job_id}", headers=bob.auth).json()["status"] == (
        "succeeded"
    )
    for listing in ("datasets", "jobs"):
        ids = [d["id"] for d in client.get(f"{URL}/{listing}", headers=alice.auth).json()["data"]]
        assert ids == [alice.dataset_id if listing == "datasets" else alice.job_id]


TRAVERSALS = [
    "/api/v1/artifacts/../../outside/secret.zip",
    "/api/v1/artifacts/..%2F..%2Foutside%2Fsecret.zip",
    "/api/v1/artifacts/%2e%2e%2f%2e%2e%2foutside%2fsecret.zip",
    "/api/v1/artifacts/%2e%2e",
    "/api/v1/artifacts/..",
    "/api/v1/artifacts/%2Fetc%2Fpasswd",
    "/api/v1/artifacts//etc/passwd",
    "/api/v1/artifacts/....%2F%2F....%2F%2Fetc%2Fpasswd",
    "/api/v1/artifacts/%252e%252e%252fetc%252fpasswd",
    "/api/v1/jobs/..%2F..%2F..%2Foutside/artifacts",
]


def test_artifact_ids_cannot_traverse(app: Any, db_session: Session, alice: World) -> None:
    for raw in TRAVERSALS:
        response = asgi_request(app, "GET", raw, alice.auth)
        assert response.status == 404, (raw, response.status, response.body[:200])
        assert SECRET not in response.body and b"root:" not in response.body


def _plant(store: ArtifactStore, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A secret outside the store, symlinks to it planted inside; name -> stored row path."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.zip"
    secret.write_bytes(SECRET)
    (store.root / "jobs" / "planted").mkdir(parents=True)
    (store.root / "jobs" / "planted" / "link.zip").symlink_to(secret)
    (store.root / "jobs" / "evil").symlink_to(outside, target_is_directory=True)
    rel_up = Path("..") / Path(*[".."] * (len(store.root.parts) - 1)) / secret.relative_to("/")
    paths = {
        "dot-dot": "../outside/secret.zip",
        "deep dot-dot": str(rel_up),
        "absolute": str(secret),
        "inner dot-dot": "jobs/../../outside/secret.zip",
        "symlinked file": "jobs/planted/link.zip",
        "symlinked folder": "jobs/evil/secret.zip",
        "backslashes": "..\\outside\\secret.zip",
        "store root": ".",
    }
    return secret, paths


def test_stored_artifact_paths_cannot_escape_the_store(
    client: TestClient, app: Any, db_session: Session, alice: World, tmp_path: Path
) -> None:
    store: ArtifactStore = app.state.store
    secret, paths = _plant(store, tmp_path)
    for name, path in paths.items():
        row = crud.add_artifact(
            db_session,
            owner_id=alice.user_id,
            job_id=alice.job_id,
            kind="model",
            name=name,
            path=path,
            sha256=hashlib.sha256(SECRET).hexdigest(),
            size_bytes=len(SECRET),
        )
        response = client.get(f"{URL}/artifacts/{row.id}", headers=alice.auth)
        assert response.status_code == 404, (name, response.status_code)
        assert SECRET not in response.content
        with pytest.raises(UnsafePathError):
            store.resolve(path)
    good = client.get(f"{URL}/artifacts/{alice.artifact_id}", headers=alice.auth)
    assert good.status_code == 200 and good.content.startswith(b"PK")  # control
    assert secret.read_bytes() == SECRET  # and deleting through the API never reaches it
    assert client.delete(f"{URL}/jobs/{alice.job_id}", headers=alice.auth).status_code == 204
    assert secret.read_bytes() == SECRET


def _multipart(payload: bytes, boundary: str = "r2boundary") -> tuple[bytes, bytes, str]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload, f"\r\n--{boundary}--\r\n".encode(), boundary


def test_upload_over_the_size_limit_is_413_and_nothing_is_stored(
    api_settings: Settings, db_session: Session, alice: World
) -> None:
    limited = api_settings.model_copy(update={"max_upload_mb": 0.02})  # 20 KiB
    big = zip_bytes({"y.npy": random.Random(0).randbytes(100_000)})  # incompressible
    head, tail, boundary = _multipart(big)
    content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def chunked() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
        yield head
        yield tail

    with TestClient(create_app(limited)) as client:
        for body in (head + tail, chunked()):
            headers = {**alice.auth, **content_type}
            response = client.post(f"{URL}/datasets", headers=headers, content=body)
            assert response.status_code == 413, response.text
            assert "limit" in response.json()["detail"]
            assert client.get(f"{URL}/health").status_code == 200
        small = zip_bytes({"x.txt": b"tiny"})
        response = client.post(f"{URL}/datasets", headers=alice.auth, files={"file": small})
        assert response.status_code == 422  # control: under the limit it reaches validation
    assert row_counts(db_session)["datasets"] == 1  # alice's seeded dataset only
    assert [f for f in files_under(limited.artifact_root) if "datasets" in f] == []
    assert files_under(limited.artifact_root / ".tmp") == []


def test_rate_limit_per_token_is_429_with_retry_after(
    api_settings: Settings, db_session: Session, alice: World, bob: World
) -> None:
    limited = api_settings.model_copy(update={"rate_limit_per_minute": 5})
    with TestClient(create_app(limited)) as client:
        codes = [client.get(f"{URL}/me", headers=alice.auth).status_code for _ in range(5)]
        over = client.get(f"{URL}/jobs", headers=alice.auth)
        assert codes == [200] * 5
        assert over.status_code == 429 and over.json()["detail"] == "rate limit exceeded"
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert client.get(f"{URL}/me", headers=bob.auth).status_code == 200  # per token
        assert client.get(f"{URL}/health").status_code == 200  # probes are not limited


def _all_stored_text(session: Session) -> str:
    """Every value of every row of every table, as text."""
    meta = MetaData()
    meta.reflect(bind=session.get_bind())
    parts: list[str] = []
    for table in meta.sorted_tables:
        for row in session.execute(select(table)):
            parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_tokens_are_stored_hashed_only(
    client: TestClient, db_session: Session, db_url: str, alice: World
) -> None:
    assert client.get(f"{URL}/me", headers=alice.auth).status_code == 200
    stored = _all_stored_text(db_session)
    assert hash_token(alice.token) in stored
    assert alice.token not in stored
    assert alice.token[len("synib_") :] not in stored
    if db_url.startswith("sqlite"):  # the raw file and its write-ahead log too
        db_file = Path(db_url.removeprefix("sqlite:///"))
        for path in (db_file, db_file.with_name(db_file.name + "-wal")):
            if path.exists():
                assert alice.token.encode() not in path.read_bytes()


def test_token_comparison_goes_through_hmac_compare_digest(
    client: TestClient, alice: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = infra.security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(infra.security.hmac, "compare_digest", spy)
    assert client.get(f"{URL}/me", headers=alice.auth).status_code == 200
    expected = hash_token(alice.token).encode()
    assert calls == [(expected, expected)]
    # The comparison's answer is what decides: a "no" from it rejects a valid token (once the
    # token cache, which holds only tokens the comparison accepted, has forgotten it).
    monkeypatch.setattr(infra.security.hmac, "compare_digest", lambda a, b: False)
    client.app.state.token_cache.drop(expected.decode())  # type: ignore[attr-defined]
    assert client.get(f"{URL}/me", headers=alice.auth).status_code == 401
    source = inspect.getsource(api.deps.verify_token)
    assert "hashes_match(" in source and "token_hash ==" not in source
    assert "hmac.compare_digest(" in inspect.getsource(infra.security.hashes_match)


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower() for name, _ in attrs}
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems.extend(f"{n} handler on <{tag}>" for n in names if n.startswith("on"))
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.problems.append("<script> without src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script body {data.strip()[:40]!r}")


def test_built_dashboard_has_no_inline_scripts_or_styles() -> None:
    pages = sorted((REPO / "frontend" / "dist").rglob("*.html"))
    assert pages, "frontend/dist holds no built page"
    for page in pages:
        finder = _InlineFinder()
        finder.feed(page.read_text())
        assert finder.problems == [], (page.name, finder.problems)


def test_dashboard_security_headers(api_settings: Settings) -> None:
    dist = REPO / "frontend" / "dist"
    served = api_settings.model_copy(update={"static_dir": dist})
    app = create_app(served)
    assert ("/", "MOUNT") in set(app_routes(app))
    asset = next((dist / "assets").glob("*.js")).name
    with TestClient(app) as client:
        for path in ("/", "/index.html", f"/assets/{asset}"):
            response = client.get(path)
            assert response.status_code == 200, path
            csp = response.headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
            assert directives["script-src"] == "'self'" and directives["object-src"] == "'none'"
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "frame-ancestors 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
    for raw in ("/../../pyproject.toml", "/%2e%2e/%2e%2e/pyproject.toml", "/assets/..%2F..%2F.."):
        response = asgi_request(app, "GET", raw)
        assert response.status == 404, raw
        assert b"[project]" not in response.body

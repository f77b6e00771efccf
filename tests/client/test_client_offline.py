"""Client pieces that need no server: SSE parsing, error text, credentials, resumable download,
spec files. The server-backed tests are in test_client.py and test_cli_service.py."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from synib_client.client import Client
from synib_client.config import ClientSettings, Credentials, find_credentials, resolve_credentials
from synib_client.errors import (
    ApiError,
    ChecksumMismatch,
    ClientError,
    ConnectionFailed,
    flatten_detail,
)
from synib_client.spec import SpecError, load_spec
from synib_client.sse import (
    Reconnector,
    SseEvent,
    Unavailable,
    parse_sse,
    retry_after_s,
    stream_events,
)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNIB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("SYNIB_URL", raising=False)
    monkeypatch.delenv("SYNIB_TOKEN", raising=False)


def test_parse_sse_fields_comments_multiline_and_partial_tail() -> None:
    lines = [
        ": keep-alive",
        "id: 7",
        "event: epoch",
        'data: {"epoch":',
        "data:  2}",
        "",
        "retry: 1000",
        "data: plain",
        "",
        "id: 9",
        "event: status",
        'data: {"status": "run',  # cut off: no blank line follows
    ]
    events = list(parse_sse(lines))
    assert events == [
        SseEvent("7", "epoch", '{"epoch":\n 2}'),
        SseEvent("7", "message", "plain"),  # the last id carries over, default type is message
    ]


def test_flatten_detail_422_lines() -> None:
    detail = [
        {"loc": ["body", "config", "lr"], "msg": "Input should be greater than 0", "type": "x"},
        {"loc": ["body", "methods"], "msg": "Field required", "type": "missing"},
    ]
    assert flatten_detail(detail) == (
        "config.lr: Input should be greater than 0\nmethods: Field required"
    )
    assert flatten_detail({"field": "x_a", "reason": "has NaN"}) == "x_a: has NaN"


def test_api_error_carries_status_and_server_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "job 'nope' not found"})

    client = Client("http://testserver", "synib_x", transport=httpx.MockTransport(handler))
    with pytest.raises(ApiError) as info:
        client.job("nope")
    assert info.value.status == 404
    assert info.value.detail == "job 'nope' not found"
    assert isinstance(info.value, ValueError)


def test_credentials_order_argument_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    saved = {"url": "http://saved:1", "token": "synib_saved"}
    (tmp_path / "config" / "credentials.json").write_text(json.dumps(saved))
    assert resolve_credentials(None, None) == ("http://saved:1", "synib_saved")
    monkeypatch.setenv("SYNIB_URL", "http://env:2/")
    monkeypatch.setenv("SYNIB_TOKEN", "synib_env")
    assert resolve_credentials(None, None) == ("http://env:2", "synib_env")
    assert resolve_credentials("http://arg:3", "synib_arg") == ("http://arg:3", "synib_arg")
    with pytest.raises(ClientError, match="url"):
        resolve_credentials("ftp://x", None)


def test_without_url_or_saved_credentials_the_default_is_the_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server's own settings are not the client's: a bad SYNIB_PORT or SYNIB_DATABASE_URL
    neither moves nor breaks it (``synib serve`` saves its URL in credentials.json instead)."""
    monkeypatch.setenv("SYNIB_PORT", "not-a-port")
    monkeypatch.setenv("SYNIB_HOST", "0.0.0.0")
    monkeypatch.setenv("SYNIB_TOKEN_TTL_DAYS", "-1")
    assert resolve_credentials(None, None) == ("http://127.0.0.1:8000", None)


def test_settings_are_the_three_variables_an_empty_one_unset(tmp_path: Path) -> None:
    settings = ClientSettings.from_env(
        {"SYNIB_URL": "http://h:1", "SYNIB_TOKEN": "synib_t", "SYNIB_CONFIG_DIR": "~/cfg"}
    )
    assert settings == ClientSettings("http://h:1", "synib_t", Path.home() / "cfg")
    assert settings.credentials_path == Path.home() / "cfg" / "credentials.json"
    empty = ClientSettings.from_env({"SYNIB_URL": "", "SYNIB_TOKEN": "", "SYNIB_CONFIG_DIR": ""})
    assert empty == ClientSettings(None, None, Path.home() / ".config" / "synib")


def test_credentials_say_where_they_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save_credentials(tmp_path, "http://127.0.0.1:8000")
    assert find_credentials(None, None) == Credentials(
        "http://127.0.0.1:8000", "synib_saved", str(path), str(path)
    )
    monkeypatch.setenv("SYNIB_TOKEN", "synib_env")
    found = find_credentials("http://other:1", None)
    assert (found.url_from, found.token_from) == ("--url", "SYNIB_TOKEN")
    monkeypatch.setenv("SYNIB_URL", "http://env:2")
    found = find_credentials(None, "synib_arg")
    assert (found.url, found.url_from, found.token_from) == ("http://env:2", "SYNIB_URL", "--token")
    path.unlink()
    monkeypatch.delenv("SYNIB_URL")
    monkeypatch.delenv("SYNIB_TOKEN")
    assert find_credentials(None, None) == Credentials(
        "http://127.0.0.1:8000", None, "default", None
    )


def _save_credentials(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config" / "credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "token": "synib_saved"}))
    return path


@pytest.mark.parametrize(
    ("saved", "target"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("http://Synib.Example.org/api-root/", "http://synib.example.org:80/api-root"),
        ("https://synib.example.org", "https://synib.example.org:443/"),
    ],
)
def test_saved_token_is_used_for_the_saved_url_however_written(
    tmp_path: Path, saved: str, target: str
) -> None:
    _save_credentials(tmp_path, saved)
    assert resolve_credentials(target, None) == (target.rstrip("/"), "synib_saved")


@pytest.mark.parametrize(
    "target",
    [
        "http://colleague:8000",
        "http://localhost:8000",  # the same machine, maybe, but not the URL the token is for
        "http://127.0.0.1:8001",
        "https://127.0.0.1:8000",
        "http://127.0.0.1:8000/elsewhere",
    ],
)
def test_saved_token_is_never_sent_to_another_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    path = _save_credentials(tmp_path, "http://127.0.0.1:8000")
    message = (
        f"token: the token saved in {path} is for http://127.0.0.1:8000, not {target}; "
        "give --token or set SYNIB_TOKEN for that server"
    )
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": [], "count": 0})

    with pytest.raises(ClientError) as info:
        Client(target, transport=httpx.MockTransport(handler))
    assert str(info.value) == message
    monkeypatch.setenv("SYNIB_URL", target)
    with pytest.raises(ClientError) as info:
        Client(transport=httpx.MockTransport(handler))
    assert str(info.value) == message
    assert sent == []
    # A token given for that server is used, never the saved one.
    Client(target, "synib_given", transport=httpx.MockTransport(handler)).jobs()
    monkeypatch.setenv("SYNIB_TOKEN", "synib_env")
    Client(transport=httpx.MockTransport(handler)).jobs()
    assert [r.headers["Authorization"] for r in sent] == ["Bearer synib_given", "Bearer synib_env"]


def test_saved_token_without_a_url_and_bad_urls_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "credentials.json"
    path.write_text(json.dumps({"token": "synib_saved"}))
    with pytest.raises(ClientError, match=r"names no server URL; give --token"):
        resolve_credentials("http://127.0.0.1:8000", None)
    with pytest.raises(ClientError, match=r"^url: Port out of range"):
        resolve_credentials("http://127.0.0.1:99999", "synib_x")
    with pytest.raises(ClientError, match=r"^url: no host in 'http://'$"):
        resolve_credentials("http://", "synib_x")


# -- following a job: reconnect policy -----------------------------------------------------------
class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_reconnector_backs_off_honours_retry_after_and_gives_up_naming_the_reason() -> None:
    time_, lines = _FakeTime(), list[str]()
    retry = Reconnector("http://api", 30, lines.append, clock=lambda: time_.now, sleep=time_.sleep)
    retry.recovered()  # no outage: nothing to say
    for _ in range(5):
        retry.failed("[Errno 111] Connection refused")
    assert time_.slept == [0.5, 1.0, 2.0, 4.0, 5.0]  # doubling up to 5 s
    retry.recovered()
    assert lines == [
        "the API at http://api is unavailable ([Errno 111] Connection refused); "
        "reconnecting for up to 30 s",
        "reconnected to the API after 12 s",
    ]
    time_.slept.clear()
    retry.failed("HTTP 503: database unavailable", retry_after=7)  # the server's wish first
    with pytest.raises(ConnectionFailed) as info:
        while True:
            retry.failed("HTTP 503: database unavailable")
    # The backoff starts again after a recovery; the last wait stops at the budget.
    assert time_.slept == [7, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 1.0]
    assert str(info.value) == (
        "cannot reach the synib API at http://api: unavailable for 30 s; "
        "last error: HTTP 503: database unavailable"
    )
    assert len(lines) == 3 and "(HTTP 503: database unavailable)" in lines[2]


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, True, "60"])
def test_reconnector_refuses_a_bad_retry_for(bad: Any) -> None:
    with pytest.raises(ClientError, match=r"^retry_for: expected a number of seconds >= 0"):
        Reconnector("http://api", bad, print)


def test_a_retry_after_shorter_than_the_backoff_does_not_hurry_it() -> None:
    time_ = _FakeTime()
    retry = Reconnector("http://api", 30, print, clock=lambda: time_.now, sleep=time_.sleep)
    for _ in range(4):
        retry.failed("HTTP 429: too many requests", retry_after=0)
    assert time_.slept == [0.5, 1.0, 2.0, 4.0]


def test_retry_for_zero_gives_up_at_the_first_failure() -> None:
    lines: list[str] = []
    retry = Reconnector("http://api", 0, lines.append, sleep=lambda s: None)
    with pytest.raises(ConnectionFailed, match=r"unavailable for 0 s; last error: boom$"):
        retry.failed("boom")
    assert lines == []


def test_retry_after_seconds_only() -> None:
    assert retry_after_s("5") == 5.0 and retry_after_s("0.5") == 0.5
    assert retry_after_s(None) is None and retry_after_s("-1") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") is None and retry_after_s("nan") is None


def test_stream_events_error_event_is_an_outage_and_keepalives_end_one() -> None:
    lines: list[str] = []
    retry = Reconnector("http://api", 60, lines.append, sleep=lambda s: None)
    retry.failed("HTTP 503: database unavailable")
    stream = stream_events(
        [": connected", "", ": keep-alive", "", "id: 4", "event: epoch", "data: {}", ""], retry
    )
    assert next(stream) == SseEvent("4", "epoch", "{}")
    assert lines[-1] == "reconnected to the API after 0 s"  # the keep-alive, not the greeting
    retry.failed("[Errno 111] Connection refused")
    failing = [": connected", "", "event: error", 'data: {"detail":"database unavailable"}', ""]
    with pytest.raises(Unavailable) as info:
        list(stream_events(failing, retry))
    assert info.value.reason == "event stream error: database unavailable"
    assert len(lines) == 3 and "is unavailable" in lines[2]  # the greeting alone proves nothing


# -- downloads ------------------------------------------------------------------------------
def _bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config.json", json.dumps({"method": "synib"}))
        zf.writestr("weights.bin", bytes(range(256)) * 40)  # 10240 bytes
    return buffer.getvalue()


class _FlakyArtifactServer:
    """Serves one file; the first full response breaks after ``cut`` bytes; honours Range."""

    def __init__(self, body: bytes, checksum: str, cut: int | None) -> None:
        self.body, self.checksum, self.cut = body, checksum, cut
        self.ranges: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.ranges.append(request.headers.get("Range"))
        headers = {"X-Checksum-SHA256": self.checksum, "ETag": f'"{self.checksum}"'}
        start = 0
        if request.headers.get("Range"):
            start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
            total = len(self.body)
            headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        part = self.body[start:]
        headers["Content-Length"] = str(len(part))
        status = 206 if start else 200
        if self.cut is not None:
            cut, self.cut = self.cut, None
            return httpx.Response(status, headers=headers, stream=_BrokenStream(part[:cut]))
        return httpx.Response(status, headers=headers, content=part)


class _BrokenStream(httpx.SyncByteStream):
    def __init__(self, head: bytes) -> None:
        self.head = head

    def __iter__(self) -> Any:
        yield self.head
        raise httpx.ReadError("connection reset by peer")


def _client_for(server: _FlakyArtifactServer) -> Client:
    return Client("http://testserver", "synib_x", transport=httpx.MockTransport(server))


def test_download_resumes_with_range_and_unzips(tmp_path: Path) -> None:
    body = _bundle()
    server = _FlakyArtifactServer(body, hashlib.sha256(body).hexdigest(), cut=1000)
    out = _client_for(server).download("a1", tmp_path / "model")
    assert server.ranges == [None, "bytes=1000-"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "weights.bin"]
    assert (out / "weights.bin").read_bytes() == bytes(range(256)) * 40
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    body = _bundle()
    server = _FlakyArtifactServer(body, "0" * 64, cut=None)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ChecksumMismatch, match="sha256"):
        _client_for(server).download("a1", out_dir)
    assert list(out_dir.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_download_refuses_to_overwrite(tmp_path: Path) -> None:
    body = _bundle()
    server = _FlakyArtifactServer(body, hashlib.sha256(body).hexdigest(), cut=None)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text("mine")
    with pytest.raises(ClientError, match=r"already holds config\.json"):
        _client_for(server).download("a1", tmp_path / "out")
    assert (tmp_path / "out" / "config.json").read_text() == "mine"
    assert not (tmp_path / "out" / "weights.bin").exists()


# -- spec files ------------------------------------------------------------------------------
def test_load_spec_yaml_reads_exponent_floats(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("dataset_id: d1\nmethods: [vanilla]\nconfig: {lr: 3e-4, epochs: 5}\n")
    body, base = load_spec(path)
    assert body["config"] == {"lr": 0.0003, "epochs": 5}
    assert base == tmp_path
    path.write_text("- just a list\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(path)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: 2026-01-15\n", 'name: a date (2026-01-15) is not allowed; quote it: "2026-01-15"'),
        ("resources: {cpus_per_trial: .inf}\n", "resources.cpus_per_trial: infinity/NaN (inf)"),
        ("sweep: {lambda: {values: [1, .nan]}}\n", "sweep.lambda.values[1]: infinity/NaN (nan)"),
        ("methods: [{name: synib, config: {on: 1}}]\n", "methods[0].config: the key True"),
        ("notes: !!binary aGVsbG8=\n", "notes: a value of type bytes is not allowed"),
        ("seeds: &s [0, *s]\n", "seeds[1]: refers to itself"),
    ],
)
def test_load_spec_refuses_what_json_cannot_carry_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("dataset_id: d1\nmethods: [vanilla]\n" + text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(message), str(info.value)


def test_load_spec_checks_json_files_and_dicts_too(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"dataset_id": "d1", "resources": {"gpus_per_trial": NaN}}')
    with pytest.raises(SpecError, match=r"^resources\.gpus_per_trial: infinity/NaN \(nan\)"):
        load_spec(path)
    spec = {"dataset_id": "d1", "name": datetime.datetime(2026, 1, 15, 9, 30)}
    with pytest.raises(SpecError, match=r"^name: a date and time \(2026-01-15T09:30:00\)"):
        load_spec(spec)


def test_submit_builtin_shorthand_reuses_identical_dataset(tmp_path: Path) -> None:
    seen: list[tuple[str, str, Any]] = []
    existing = {
        "id": "ds-old",
        "source": "builtin",
        "builtin_name": "xor_pid",
        "params": {"n_train": 300, "seed": 0},
        "status": "ready",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        if request.url.path.endswith("/datasets"):
            return httpx.Response(200, json={"data": [existing], "count": 1})
        if request.url.path.endswith("/datasets/builtin"):
            return httpx.Response(201, json={"id": "ds-new", "status": "pending"})
        return httpx.Response(202, json={"id": "job1", "status": "queued"})

    client = Client("http://testserver", "synib_x", transport=httpx.MockTransport(handler))
    shorthand: dict[str, Any] = {"builtin": "xor_pid", "params": {"n_train": 300}}
    spec = {"dataset": shorthand, "methods": ["vanilla"]}
    assert client.submit(spec)["id"] == "job1"
    assert seen[-1] == ("POST", "/api/v1/jobs", {"methods": ["vanilla"], "dataset_id": "ds-old"})
    shorthand["seed"] = 1  # a different seed is a different dataset: register it
    client.submit(spec)
    assert ("POST", "/api/v1/datasets/builtin") in [(m, p) for m, p, _ in seen]
    assert seen[-1][2]["dataset_id"] == "ds-new"
    with pytest.raises(SpecError, match="exactly one of builtin or file"):
        client.submit({"dataset": {"params": {}}, "methods": ["vanilla"]})
    with pytest.raises(SpecError, match="dataset_id: missing"):
        client.submit({"methods": ["vanilla"]})

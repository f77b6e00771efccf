"""Client pieces that need no server: SSE parsing, error text, credentials, resumable download,
spec files. The server-backed tests are in test_client.py and test_cli_service.py."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import Client
from api.client_config import resolve_credentials
from api.client_errors import ApiError, ChecksumMismatch, ClientError, flatten_detail
from api.client_spec import SpecError, load_spec
from api.client_sse import SseEvent, parse_sse


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


def test_default_url_comes_from_settings_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNIB_PORT", "8123")
    assert resolve_credentials(None, None) == ("http://127.0.0.1:8123", None)


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

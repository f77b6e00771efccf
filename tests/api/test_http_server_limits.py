"""Request bodies against a real ``synib api`` (uvicorn) on PostgreSQL, over raw sockets: a
body without a valid token is refused before it is read (the process's memory does not grow),
/health answers while an upload trickles in, a body that stops arriving gets a 408, and SIGTERM
ends an open event stream after the graceful-shutdown timeout."""

from __future__ import annotations

import secrets
import select
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import running_api

BODY_TIMEOUT_S = 2
GRACEFUL_S = 2
API = "/api/v1"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def server(
    pg_database_url: str, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes], str]]:
    """(port, process, token of a new user) of a running ``synib api``."""
    from infra.db.session import session_factory
    from infra.tokens import issue_token

    with session_factory(pg_database_url)() as session:
        token = issue_token(session, user_name=f"http-{secrets.token_hex(4)}").token
    settings = {
        "body_read_timeout_s": str(BODY_TIMEOUT_S),
        "api_graceful_shutdown_s": str(GRACEFUL_S),
    }
    with running_api(pg_database_url, tmp_path, **settings) as (url, proc):
        yield int(url.rsplit(":", 1)[1]), proc, token


def _request_head(path: str, length: int, content_type: str, token: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_of(sock: socket.socket) -> tuple[int, str]:
    """Status code and text of the response read from ``sock`` (until its headers and some
    of its body arrived or the server closed)."""
    sock.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    assert data, "no response"
    return int(data.split(b" ", 2)[1]), data.decode("latin-1")


def _json_pieces(body_size: int) -> Iterator[bytes]:
    """A JSON list of zeros, ``body_size`` bytes (odd) in pieces of 512 KiB."""
    pairs = (body_size - 3) // 2
    yield b"["
    while pairs:
        n = min(pairs, 256 * 1024)
        yield b"0," * n
        pairs -= n
    yield b"0]"


def _send_until_answered(sock: socket.socket, body_size: int) -> None:
    """Send a JSON body of ``body_size`` bytes, stopping as soon as an answer arrives."""
    for piece in _json_pieces(body_size):
        view = memoryview(piece)
        while view:
            readable, _, _ = select.select([sock], [sock], [], 60)
            if readable:
                return
            try:
                view = view[sock.send(view) :]
            except (BrokenPipeError, ConnectionResetError):
                return


def test_a_large_body_without_a_token_is_refused_unread(
    server: tuple[int, subprocess.Popen[bytes], str],
) -> None:
    port, proc, token = server
    pid = proc.pid
    httpx.get(f"http://127.0.0.1:{port}{API}/me", headers={"Authorization": f"Bearer {token}"})
    before = _rss_mb(pid)
    body_size = 64 * 1024 * 1024 + 1
    answers = []
    cases = (  # missing token, well-formed but unknown token, valid token (over the cap)
        (None, "application/json"),
        ("synib_" + "a" * 43, "application/json"),
        (token, "application/octet-stream"),
    )
    for auth, content_type in cases:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_request_head(f"{API}/jobs", body_size, content_type, auth))
            _send_until_answered(sock, body_size)
            answers.append(_status_of(sock))
    after = _rss_mb(pid)
    print(f"\nsynib api RSS {before:.0f} MB -> {after:.0f} MB after three 64 MiB bodies")
    assert after - before < 50, (before, after)
    assert [status for status, _ in answers] == [401, 401, 413], answers


def test_health_answers_during_a_slow_upload_then_408(
    server: tuple[int, subprocess.Popen[bytes], str],
) -> None:
    port, _, token = server
    boundary = "b" * 16
    part_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    stop = threading.Event()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        content_type = f"multipart/form-data; boundary={boundary}"
        sock.sendall(_request_head(f"{API}/datasets", 1024 * 1024, content_type, token))
        sock.sendall(part_head)

        def trickle() -> None:  # a few bytes well within the timeout, for a while
            for _ in range(10):
                if stop.wait(BODY_TIMEOUT_S / 4):
                    return
                sock.sendall(b"x" * 10)

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            for _ in range(5):
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        finally:
            sender.join()
        # The body stops arriving: the API answers 408 and closes the connection.
        status, text = _status_of(sock)
    assert status == 408, text
    assert f"not received within {BODY_TIMEOUT_S} s" in text


def test_a_json_body_that_stops_arriving_is_408(
    server: tuple[int, subprocess.Popen[bytes], str],
) -> None:
    port, _, token = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request_head(f"{API}/jobs", 100, "application/json", token))
        sock.sendall(b'{"dataset_id": ')
        status, text = _status_of(sock)
    assert status == 408, text
    assert "connection: close" in text.lower()


def test_sigterm_ends_an_open_event_stream(
    server: tuple[int, subprocess.Popen[bytes], str], pg_database_url: str
) -> None:
    from api_factories import add_job, add_ready_dataset

    from infra.db import crud
    from infra.db.session import session_factory
    from infra.security import hash_token

    port, proc, token = server
    with session_factory(pg_database_url)() as session:
        row = crud.get_token_by_hash(session, token_hash=hash_token(token))
        assert row is not None
        dataset = add_ready_dataset(session, row.user_id)
        job_id = add_job(session, row.user_id, dataset.id, status="running").id
    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = (
            f"GET {API}/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        )
        sock.sendall(request.encode())
        sock.settimeout(30)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "the stream did not open"
        # The job runs on: the stream would stay open until it ends. SIGTERM closes it after
        # SYNIB_API_GRACEFUL_SHUTDOWN_S and the process exits.
        proc.send_signal(signal.SIGTERM)
        # Shut down cleanly; uvicorn then raises the signal it handled again (exit -15).
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        while sock.recv(65536):  # what the stream had sent, then its end (a timeout fails)
            pass

"""Checksummed, resumable, all-or-nothing artifact downloads for the client.

The bundle streams into a staging folder beside ``out_dir``; a dropped connection resumes with
``Range``/``If-Range``; the sha256 is checked against ``X-Checksum-SHA256``; the zip is unpacked in
staging and only then moved into ``out_dir``. Any failure removes the staging folder, so nothing
half-written is ever left in ``out_dir``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import httpx

from synib_client.errors import ChecksumMismatch, ClientError, raise_for_response

CHUNK_BYTES = 1 << 20
STREAM_TIMEOUT = httpx.Timeout(30.0, read=None, write=None)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def download_artifact(
    http: httpx.Client,
    path: str,
    out_dir: Path,
    *,
    verify: bool = True,
    timeout: httpx.Timeout = STREAM_TIMEOUT,
    max_resumes: int = 3,
    resume_delay: float = 0.5,
) -> Path:
    """Fetch the zip at ``path`` (relative to the client's base url) and unpack it into ``out_dir``.

    Raises ``ChecksumMismatch`` (bad or missing checksum with ``verify``), ``ClientError`` (an
    unsafe or broken zip, a file in ``out_dir`` in the way), ``ApiError``, ``httpx.TransportError``
    after ``max_resumes`` failed resumes.
    """
    out_dir = out_dir.expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise ClientError(f"out: {out_dir} exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synib-download-", dir=out_dir.parent))
    try:
        archive = staging / "bundle.zip"
        expected = _fetch(http, path, archive, timeout, max_resumes, resume_delay)
        if verify:
            _check_sha256(archive, expected)
        unpacked = staging / "bundle"
        _unzip(archive, unpacked)
        _move_into(unpacked, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _fetch(
    http: httpx.Client,
    path: str,
    archive: Path,
    timeout: httpx.Timeout,
    max_resumes: int,
    resume_delay: float,
) -> str | None:
    """Stream ``path`` into ``archive``, resuming after interruptions; returns the checksum header."""
    state: dict[str, str | None] = {"sha256": None, "etag": None}
    failures = 0
    with archive.open("wb") as fh:
        while True:
            try:
                if _fetch_once(http, path, fh, state, timeout):
                    return state["sha256"]
                raise httpx.ReadError("the connection closed before the whole file arrived")
            except httpx.TransportError:
                failures += 1
                if failures > max_resumes:
                    raise
                time.sleep(resume_delay)


def _fetch_once(
    http: httpx.Client,
    path: str,
    fh: BinaryIO,
    state: dict[str, str | None],
    timeout: httpx.Timeout,
) -> bool:
    """One request from the current file offset; True when the file is complete."""
    offset = fh.tell()
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state["etag"]:
            headers["If-Range"] = state["etag"]
    with http.stream("GET", path, headers=headers, timeout=timeout) as response:
        if response.status_code >= 400:
            response.read()
            raise_for_response(response)
        total = _total_length(response, offset)
        if response.status_code != 206 and offset:
            fh.seek(0)  # the server ignored the range and sent the whole file again
            fh.truncate()
        state["sha256"] = response.headers.get("X-Checksum-SHA256") or state["sha256"]
        state["etag"] = response.headers.get("ETag") or state["etag"]
        for chunk in response.iter_bytes():
            fh.write(chunk)
    return total is None or fh.tell() >= total


def _total_length(response: httpx.Response, offset: int) -> int | None:
    """Full size of the file from ``Content-Range`` (206) or ``Content-Length`` (200)."""
    if response.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != offset:
            raise ClientError(
                f"download: the server answered a resume from byte {offset} with "
                f"Content-Range {response.headers.get('Content-Range')!r}"
            )
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _check_sha256(archive: Path, expected: str | None) -> None:
    if not expected:
        raise ChecksumMismatch("checksum: the server sent no X-Checksum-SHA256 header")
    digest = hashlib.sha256()
    with archive.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != expected.strip().strip('"').lower():
        raise ChecksumMismatch(
            f"checksum: sha256 of the download is {actual}, the server says {expected}; "
            "nothing was written"
        )


def _unzip(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target``, refusing absolute paths and ``..`` entries."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts or "\\" in name:
                    raise ClientError(f"download: unsafe path {name!r} in the bundle")
            bundle.extractall(target)
    except zipfile.BadZipFile as exc:
        raise ClientError(f"download: the artifact is not a valid zip file: {exc}") from exc


def _move_into(unpacked: Path, out_dir: Path) -> None:
    """Move the unpacked entries into ``out_dir`` (created if needed) without overwriting."""
    if not out_dir.exists():
        os.replace(unpacked, out_dir)
        return
    entries = sorted(unpacked.iterdir())
    clashes = [entry.name for entry in entries if (out_dir / entry.name).exists()]
    if clashes:
        raise ClientError(
            f"out: {out_dir} already holds {', '.join(clashes)}; choose another folder"
        )
    for entry in entries:
        os.replace(entry, out_dir / entry.name)

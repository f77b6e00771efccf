"""Streaming multipart upload: the ``file`` part goes to disk chunk by chunk with a size cap and
a running sha256, never fully into memory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from infra.storage import storage_errors

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16  # form fields besides the file (only ``name`` is read): bounds what is held
MULTIPART_OVERHEAD = 64 * 1024


class UploadTooLarge(Exception):
    """The file part exceeded the size cap (-> 413)."""


class BadUpload(ValueError):
    """The request is not a usable multipart upload (-> 422 naming ``field``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class ReceivedUpload:
    filename: str | None = None
    size_bytes: int = 0
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    has_file: bool = False


class _PartCollector:
    """Callbacks for MultipartParser: the ``file`` part to ``dest``, other parts kept as text."""

    def __init__(self, dest: BinaryIO, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.result = ReceivedUpload()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers, self._name, self._is_file = {}, None, False
        self._buffer = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name == "file":
            if self.result.has_file:
                raise BadUpload("file", "send exactly one file part")
            self._is_file = True
            self.result.has_file = True
            filename = options.get(b"filename")
            self.result.filename = filename.decode("utf-8", "replace") if filename else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            self.result.size_bytes += len(chunk)
            if self.result.size_bytes > self.max_bytes:
                raise UploadTooLarge()
            self.digest.update(chunk)
            self.dest.write(chunk)
            return
        self._buffer += chunk
        if len(self._buffer) > MAX_FIELD_BYTES:
            raise BadUpload(self._name or "form", f"form field longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if not self._is_file and self._name:
            if self._name not in self.result.fields and len(self.result.fields) >= MAX_FIELDS:
                raise BadUpload("form", f"more than {MAX_FIELDS} form fields besides 'file'")
            self.result.fields[self._name] = self._buffer.decode("utf-8", "replace")


async def receive_upload(request: Request, dest: Path, max_bytes: int) -> ReceivedUpload:
    """Stream the multipart body of ``request`` into ``dest`` (the ``file`` part only).

    Raises UploadTooLarge beyond ``max_bytes``, BadUpload for a malformed request and
    ``infra.storage.StorageError`` when ``dest`` cannot be written (full, not writable).
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadUpload("file", "expected a multipart/form-data body with a 'file' part")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise UploadTooLarge()
    with storage_errors("receiving an upload"), dest.open("wb") as fh:
        collector = _PartCollector(fh, max_bytes)
        parser = MultipartParser(boundary, cast(Any, collector.callbacks()))
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    if not collector.result.has_file:
        raise BadUpload("file", "missing the 'file' part")
    collector.result.sha256 = collector.digest.hexdigest()
    return collector.result

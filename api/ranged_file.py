"""File download from the artifact store (a local folder or a bucket, read through a seekable
stream, a chunk at a time) with a strong ETag (the sha256), If-None-Match -> 304 and single
byte ranges (Range -> 206; a range past the end -> 416; a Range header that is malformed, of
another unit or of several ranges is ignored: the whole file, 200, as RFC 9110 asks)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from infra.storage import Store

CHUNK_BYTES = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range; None to send the whole file (a
    header that is not one valid byte range is ignored); raises RangeNotSatisfiable for a valid
    range that selects nothing of a ``size``-byte file."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, min(end, size - 1)


def _read(fh: Any, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of the open file ``fh`` from ``start``, in chunks; closes ``fh``."""
    try:
        fh.seek(start)
        remaining = length
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        fh.close()


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def ranged_file_response(
    request: Request, store: Store, relative: str, *, sha256: str, filename: str, media_type: str
) -> Response:
    """Stream the stored file ``relative`` honouring If-None-Match and Range; headers carry
    the checksum. FileNotFoundError when it is missing, StorageError (503) when the store
    fails before the first byte."""
    size = store.size(relative)
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "X-Checksum-SHA256": sha256,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    span = None
    if range_header and (if_range is None or if_range.strip() == etag):
        try:
            span = parse_range(range_header, size)
        except RangeNotSatisfiable:
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
            )
    start, end = span if span is not None else (0, size - 1)
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    fh = store.open_read(relative)  # opened here: a failing store is a 503, not a cut body
    return StreamingResponse(
        _read(fh, start, length), status_code=status, headers=headers, media_type=media_type
    )

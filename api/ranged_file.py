"""File download with a strong ETag (the sha256), If-None-Match -> 304 and single byte ranges
(Range -> 206; a range past the end -> 416; a Range header that is malformed, of another unit
or of several ranges is ignored: the whole file, 200, as RFC 9110 asks)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

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


def _read(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        remaining = length
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def ranged_file_response(
    request: Request, path: Path, *, sha256: str, filename: str, media_type: str
) -> Response:
    """Stream ``path`` honouring If-None-Match and Range; headers carry the checksum."""
    size = path.stat().st_size
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
    return StreamingResponse(
        _read(path, start, length), status_code=status, headers=headers, media_type=media_type
    )

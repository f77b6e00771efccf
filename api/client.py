"""Python client of the synib REST API (``/api/v1``), synchronous, on httpx.

Example:
    >>> from api.client import Client
    >>> client = Client()                        # SYNIB_URL / SYNIB_TOKEN or credentials.json
    >>> ds = client.register_builtin("xor_pid", {}, seed=0)
    >>> job = client.submit({"dataset_id": ds["id"], "methods": ["vanilla", "synib"]})
    >>> final = client.wait(job["id"])           # waits out an API restart (retry_for=120 s)
    >>> client.download_best(job["id"], "synib", "model/")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from api.client_config import resolve_credentials
from api.client_download import download_artifact
from api.client_errors import ApiError, ClientError, ConnectionFailed, raise_for_response
from api.client_spec import check_json_data, load_spec, resolve_dataset
from api.client_sse import (
    RETRY_FOR_S,
    Reconnector,
    SseEvent,
    Unavailable,
    raise_if_unavailable,
    stream_events,
)

__all__ = ["TERMINAL_STATUSES", "ApiError", "Client", "ClientError", "ConnectionFailed"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total)
Event = tuple[str | None, str, Any]  # (event id, event type, decoded JSON data)
_log = logging.getLogger(__name__)


class _ProgressReader:
    """Wraps a binary file so each ``read`` reports (bytes_done, total) to a callback."""

    def __init__(self, fh: BinaryIO, total: int, callback: ProgressCallback) -> None:
        self._fh, self._total, self._callback, self._done = fh, total, callback, 0
        self.name = fh.name

    def read(self, size: int = -1) -> bytes:
        chunk = self._fh.read(size)
        self._done += len(chunk)
        self._callback(self._done, self._total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._fh.seek(offset, whence)
        if position == 0:
            self._done = 0
        return position

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()


class Client:
    """Talks to one synib server.

    Args:
        url: server root, e.g. ``http://127.0.0.1:8000`` (else SYNIB_URL, else credentials.json,
            else the settings' host and port).
        token: API token (else SYNIB_TOKEN, else credentials.json).
        timeout: seconds for ordinary requests; uploads, downloads and event streams have no
            read timeout.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self.token = resolve_credentials(url, token)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._timeout = timeout
        self._stream_timeout = httpx.Timeout(timeout, read=None, write=None)
        self._http = httpx.Client(
            base_url=self.url + "/api/v1", headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.url, exc) from exc
        self._check(response)
        return response

    def _check(self, response: httpx.Response) -> None:
        """Raise ``ApiError`` for a 4xx/5xx answer (its body already read)."""
        if response.status_code == 401 and not self.token:
            raise ApiError(401, "no API token: set SYNIB_TOKEN or run `synib token create`")
        raise_for_response(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    # -- datasets ---------------------------------------------------------------------------
    def upload_dataset(
        self, path: str | Path, name: str | None = None, progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Upload an ``.npz`` dataset; ``progress(bytes_sent, bytes_total)`` follows the upload."""
        path = Path(path)
        if not path.is_file():
            raise ClientError(f"file: no such file: {path}")
        data = {"name": name} if name else None
        with path.open("rb") as fh:
            body: Any = fh
            if progress is not None:
                body = _ProgressReader(fh, path.stat().st_size, progress)
            files = {"file": (path.name, body, "application/octet-stream")}
            result: dict[str, Any] = self._json(
                "POST", "/datasets", files=files, data=data, timeout=self._stream_timeout
            )
        return result

    def register_builtin(
        self,
        generator: str,
        params: dict[str, Any] | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Register a built-in generated dataset (status ``pending`` until a worker builds it)."""
        body: dict[str, Any] = {"generator": generator, "params": params or {}, "seed": seed}
        check_json_data(body)  # a date or .inf names its field here, not as a TypeError later
        if name:
            body["name"] = name
        result: dict[str, Any] = self._json("POST", "/datasets/builtin", json=body)
        return result

    def datasets(self, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """One page of the caller's datasets: ``{"data": [DatasetPublic], "count": total}``."""
        page: dict[str, Any] = self._json(
            "GET", "/datasets", params={"limit": limit, "offset": offset}
        )
        return page

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/datasets/{_seg(dataset_id)}")
        return result

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/datasets/{_seg(dataset_id)}")

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any] | str | Path) -> dict[str, Any]:
        """Submit a job; ``spec`` is a JobCreate dict or a path to a YAML/JSON file.

        Besides ``dataset_id`` the spec may carry ``dataset: {builtin: NAME, params, seed}``
        (registered, or an identical existing one reused) or ``dataset: {file: PATH}`` (uploaded;
        a relative path is relative to the spec file).
        """
        body, base_dir = load_spec(spec)
        body = resolve_dataset(self, body, base_dir)
        result: dict[str, Any] = self._json("POST", "/jobs", json=body)
        return result

    def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """One page of jobs, newest first: ``{"data": [JobPublic], "count": total}``."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        page: dict[str, Any] = self._json("GET", "/jobs", params=params)
        return page

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/jobs/{_seg(job_id)}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("POST", f"/jobs/{_seg(job_id)}/cancel")
        return result

    def rerun_failed(self, job_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("POST", f"/jobs/{_seg(job_id)}/rerun-failed")
        return result

    def delete_job(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{_seg(job_id)}")

    def trials(self, job_id: str) -> dict[str, Any]:
        """``{"data": [TrialPublic], "count": n}`` of one job."""
        page: dict[str, Any] = self._json("GET", f"/jobs/{_seg(job_id)}/trials")
        return page

    def trial_metrics(self, trial_id: str) -> list[dict[str, Any]]:
        """Per-epoch metrics of a trial: ``[{"epoch": 1, "metrics": {...}}, ...]``."""
        body = self._json("GET", f"/trials/{_seg(trial_id)}/metrics")
        rows: list[dict[str, Any]] = body["data"] if isinstance(body, dict) else body
        return rows

    def report(self, job_id: str) -> dict[str, Any]:
        """The job report (docs/INTERNALS.md "Job report"); ApiError 404 until it exists."""
        result: dict[str, Any] = self._json("GET", f"/jobs/{_seg(job_id)}/report")
        return result

    def artifacts(self, job_id: str) -> dict[str, Any]:
        page: dict[str, Any] = self._json("GET", f"/jobs/{_seg(job_id)}/artifacts")
        return page

    # -- downloads --------------------------------------------------------------------------
    def download(self, artifact_id: str, out_dir: str | Path, verify: bool = True) -> Path:
        """Download an artifact bundle and unzip it into ``out_dir``; returns ``out_dir``.

        Streams to a temporary file, resumes with ``Range`` after a dropped connection, checks
        the sha256 against ``X-Checksum-SHA256`` (``ChecksumMismatch`` otherwise) and only then
        moves the unzipped files into place: a failure leaves nothing in ``out_dir``.
        """
        try:
            return download_artifact(
                self._http,
                f"/artifacts/{_seg(artifact_id)}",
                Path(out_dir),
                verify=verify,
                timeout=self._stream_timeout,
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.url, exc) from exc

    def download_best(self, job_id: str, method: str, out_dir: str | Path) -> Path:
        """Download the best model of ``method`` (the report's ``best_artifact_id``)."""
        methods = self.report(job_id).get("methods", {})
        if method not in methods:
            have = ", ".join(sorted(methods)) or "none"
            raise ClientError(f"method: {method!r} is not in the report of job {job_id} ({have})")
        artifact_id = methods[method].get("best_artifact_id")
        if not artifact_id:
            raise ClientError(f"method: {method!r} of job {job_id} has no stored model")
        return self.download(artifact_id, out_dir)

    # -- live events ------------------------------------------------------------------------
    def events(
        self,
        job_id: str,
        last_event_id: str | None = None,
        *,
        retry_for: float = RETRY_FOR_S,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> Generator[Event, None, dict[str, Any]]:
        """Follow a job's event stream: yields ``(id, type, data)`` until the job is terminal,
        then returns (as the generator's return value) the final JobPublic.

        The API being unavailable is waited out: a dropped or refused connection (a restart), a
        429/502/503/504 answer and the server's ``event: error`` (its database is down) are
        retried after 0.5 s doubling to 5 s (or the answer's ``Retry-After``), reconnecting
        with ``Last-Event-ID`` so no event is lost or repeated. ``ConnectionFailed`` once the
        API has been unavailable for ``retry_for`` seconds in a row, or at once when the first
        connection is refused (a wrong URL). Other answers (401, 403, 404, 422) raise
        ``ApiError`` at once. ``on_reconnect`` gets one line when the client starts waiting
        and one when the API is back (default: warnings of the ``api.client`` logger).
        """
        retry = Reconnector(self.url, retry_for, on_reconnect or _log.warning)
        last = last_event_id
        while True:
            try:
                for event in self._event_stream(job_id, last, retry):
                    retry.recovered()
                    last = event.id if event.id is not None else last
                    yield event.id, event.type, _decode(event.data)
                # A clean end: the server closes the stream once the job is terminal.
                job = self._followed_job(job_id, retry)
                if job["status"] in TERMINAL_STATUSES:
                    retry.recovered()
                    return job
                retry.failed(f"the event stream ended while the job is {job['status']}")
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError) and not retry.answered:
                    raise ConnectionFailed(self.url, exc) from exc
                retry.failed(str(exc) or type(exc).__name__)
            except Unavailable as exc:
                retry.failed(exc.reason, exc.retry_after)

    def _event_stream(
        self, job_id: str, last_event_id: str | None, retry: Reconnector
    ) -> Iterator[SseEvent]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        path = f"/jobs/{_seg(job_id)}/events"
        with self._http.stream(
            "GET", path, headers=headers, timeout=self._stream_timeout
        ) as response:
            retry.answered = True
            if response.status_code >= 400:
                response.read()
                raise_if_unavailable(response)
                self._check(response)
            yield from stream_events(response.iter_lines(), retry)

    def _followed_job(self, job_id: str, retry: Reconnector) -> dict[str, Any]:
        """The job, read for a follower: a 'try again later' answer raises ``Unavailable``."""
        response = self._http.get(f"/jobs/{_seg(job_id)}")
        retry.answered = True
        raise_if_unavailable(response)
        self._check(response)
        job: dict[str, Any] = response.json()
        return job

    def wait(
        self,
        job_id: str,
        on_event: Callable[[str | None, str, Any], None] | None = None,
        *,
        retry_for: float = RETRY_FOR_S,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the job is terminal (following its events); returns the final JobPublic.

        ``retry_for`` and ``on_reconnect`` as in ``events``: an API restart or a database
        outage shorter than ``retry_for`` seconds is waited out.
        """
        stream = self.events(job_id, retry_for=retry_for, on_reconnect=on_reconnect)
        while True:
            try:
                event_id, event_type, data = next(stream)
            except StopIteration as end:
                final: dict[str, Any] = end.value
                return final
            if on_event is not None:
                on_event(event_id, event_type, data)


def _seg(value: str) -> str:
    """One URL path segment: an id a user typed can never step to another route."""
    if not value:
        raise ClientError("id: must not be empty")
    return quote(str(value), safe="")


def _decode(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data

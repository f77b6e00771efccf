"""Python client of the synib REST API (``/api/v1``), synchronous, on httpx.

Example:
    >>> from synib_client.client import Client
    >>> client = Client()                        # SYNIB_URL / SYNIB_TOKEN or credentials.json
    >>> ds = client.register_builtin("xor_pid", {}, seed=0)
    >>> job = client.submit({"dataset_id": ds["id"], "methods": ["vanilla", "synib"]})
    >>> final = client.wait(job["id"])           # waits out an API restart (retry_for=120 s)
    >>> client.download_best(job["id"], "synib", "model/")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from synib_client.config import resolve_credentials
from synib_client.download import download_artifact
from synib_client.errors import ApiError, ClientError, ConnectionFailed, raise_for_response
from synib_client.events import TERMINAL_STATUSES, JobEvents, path_segment
from synib_client.spec import (
    DatasetShorthand,
    check_json_data,
    is_same_builtin,
    load_spec,
    split_dataset,
)

__all__ = ["TERMINAL_STATUSES", "ApiError", "Client", "ClientError", "ConnectionFailed"]

ProgressCallback = Callable[[int, int], None]  # (bytes_done, bytes_total)
REUSED_HEADER = "X-Synib-Dataset-Reused"  # "true" on an upload answered with an existing dataset


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


class Client(JobEvents):
    """Talks to one synib server.

    Args:
        url: server root, e.g. ``http://127.0.0.1:8000`` (else SYNIB_URL, else credentials.json,
            else ``http://127.0.0.1:8000``).
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
        """Upload an ``.npz`` dataset; ``progress(bytes_sent, bytes_total)`` follows the upload.

        Returns the dataset plus ``reused``: True when you already had a ready dataset with the
        same file (same sha256), which is returned as it is (its name kept) instead of a copy.
        """
        path = Path(path)
        if not path.is_file():
            raise ClientError(f"file: no such file: {path}")
        data = {"name": name} if name else None
        with path.open("rb") as fh:
            body: Any = fh
            if progress is not None:
                body = _ProgressReader(fh, path.stat().st_size, progress)
            files = {"file": (path.name, body, "application/octet-stream")}
            response = self._request(
                "POST", "/datasets", files=files, data=data, timeout=self._stream_timeout
            )
        reused = response.headers.get(REUSED_HEADER) == "true"
        return {**response.json(), "reused": reused}

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
        result: dict[str, Any] = self._json("GET", f"/datasets/{path_segment(dataset_id)}")
        return result

    def models(self) -> dict[str, Any]:
        """The pretrained models the serving workers offer (``GET /models``): ``{"data":
        [{name, modality, output_dim, licence, loader, source, fingerprint, workers, ...}],
        "count"}``; name one in a job spec's ``backbones``."""
        result: dict[str, Any] = self._json("GET", "/models")
        return result

    def request_dataset_pid(self, dataset_id: str, clusters: int | None = None) -> dict[str, Any]:
        """Ask a worker for the dataset's PID (``POST /datasets/{id}/pid``; the dataset must be
        ready); returns the dataset with ``pid.status`` ``queued``. ``clusters``: k-means states
        per modality, 2..100 (default: the server's rule from the sample and class counts)."""
        body = {} if clusters is None else {"clusters": clusters}
        result: dict[str, Any] = self._json(
            "POST", f"/datasets/{path_segment(dataset_id)}/pid", json=body
        )
        return result

    def wait_dataset_pid(
        self, dataset_id: str, timeout: float = 600.0, poll: float = 1.0
    ) -> dict[str, Any]:
        """Poll the dataset until its PID has finished (``succeeded`` or ``failed``); returns
        the ``pid`` object. Raises ClientError after ``timeout`` seconds or when none was
        requested."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.dataset(dataset_id).get("pid")
            if pid is None:
                raise ClientError(f"dataset {dataset_id}: no PID was requested")
            if pid.get("status") in ("succeeded", "failed"):
                return dict(pid)
            if time.monotonic() >= deadline:
                raise ClientError(
                    f"dataset {dataset_id}: its PID is still {pid.get('status')} after "
                    f"{timeout:g} s (is a worker running?)"
                )
            time.sleep(poll)

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/datasets/{path_segment(dataset_id)}")

    # -- jobs -------------------------------------------------------------------------------
    def submit(
        self,
        spec: dict[str, Any] | str | Path,
        dataset_file: str | Path | None = None,
        on_dataset: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Submit a job; ``spec`` is a JobCreate dict or a path to a YAML/JSON file.

        Besides ``dataset_id`` the spec may carry ``dataset: {builtin: NAME, params, seed}``
        (registered, or an identical existing one reused) or ``dataset: {file: PATH}`` (uploaded;
        in a spec file a relative path under the spec's folder, nothing outside it).
        ``dataset_file`` (any path) replaces the spec's dataset with that file, uploaded.
        ``on_dataset`` is called with the dataset used (an upload's carries ``reused``).
        """
        body, base_dir = load_spec(spec)
        if dataset_file is not None:
            body = {k: v for k, v in body.items() if k not in ("dataset", "dataset_id")}
            shorthand: DatasetShorthand | None = DatasetShorthand(file=Path(dataset_file))
        else:
            confined = not isinstance(spec, dict)  # a file's paths; a dict's come from code
            body, shorthand = split_dataset(body, base_dir, confined=confined)
        if shorthand is not None:
            dataset = self._dataset_for(shorthand)
            if on_dataset is not None:
                on_dataset(dataset)
            body["dataset_id"] = dataset["id"]
        result: dict[str, Any] = self._json("POST", "/jobs", json=body)
        return result

    def _dataset_for(self, shorthand: DatasetShorthand) -> dict[str, Any]:
        if shorthand.file is not None:
            return self.upload_dataset(shorthand.file, name=shorthand.name)
        assert shorthand.builtin is not None
        existing = self.find_builtin(shorthand.builtin, shorthand.params, shorthand.seed)
        if existing is not None:
            return existing
        return self.register_builtin(
            shorthand.builtin, shorthand.params, seed=shorthand.seed, name=shorthand.name
        )

    def find_builtin(
        self, generator: str, params: dict[str, Any], seed: int
    ) -> dict[str, Any] | None:
        """The newest usable (not failed) built-in dataset with these generator, params and seed."""
        offset = 0
        while True:
            page = self.datasets(limit=100, offset=offset)
            for dataset in page["data"]:
                if is_same_builtin(dataset, generator, params, seed):
                    return dataset
            offset += len(page["data"])
            if not page["data"] or offset >= page["count"]:
                return None

    def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """One page of jobs, newest first: ``{"data": [JobPublic], "count": total}``."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        page: dict[str, Any] = self._json("GET", "/jobs", params=params)
        return page

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/jobs/{path_segment(job_id)}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json("POST", f"/jobs/{path_segment(job_id)}/cancel")
        return result

    def rerun_failed(self, job_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._json(
            "POST", f"/jobs/{path_segment(job_id)}/rerun-failed"
        )
        return result

    def delete_job(self, job_id: str) -> None:
        self._request("DELETE", f"/jobs/{path_segment(job_id)}")

    def trials(self, job_id: str) -> dict[str, Any]:
        """``{"data": [TrialPublic], "count": n}`` of one job."""
        page: dict[str, Any] = self._json("GET", f"/jobs/{path_segment(job_id)}/trials")
        return page

    def trial_metrics(self, trial_id: str) -> list[dict[str, Any]]:
        """Per-epoch metrics of a trial: ``[{"epoch": 1, "metrics": {...}}, ...]``."""
        body = self._json("GET", f"/trials/{path_segment(trial_id)}/metrics")
        rows: list[dict[str, Any]] = body["data"] if isinstance(body, dict) else body
        return rows

    def report(self, job_id: str) -> dict[str, Any]:
        """The job report (docs/USER_GUIDE.md, "The report"); ApiError 404 until it exists."""
        result: dict[str, Any] = self._json("GET", f"/jobs/{path_segment(job_id)}/report")
        return result

    def artifacts(self, job_id: str) -> dict[str, Any]:
        page: dict[str, Any] = self._json("GET", f"/jobs/{path_segment(job_id)}/artifacts")
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
                f"/artifacts/{path_segment(artifact_id)}",
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

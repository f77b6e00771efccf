"""Upload validation holds no array whole: a real ``synib api`` process validates a file whose
label array ``y`` is 400 MB uncompressed (about 30 MB on the wire) and its peak memory
(``VmHWM`` in /proc/PID/status) grows by far less than that. The per-sample arrays were once
read whole (1.4 GB for a 381 MB ``y``)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_factories import npz_bytes
from processes import running_api

N = 50_000_000  # samples: y is int64, so 400 MB
CHUNK = 1_000_000
MIB = 1 << 20
GROWTH_LIMIT = 150 * MIB


def _write_member(archive: zipfile.ZipFile, name: str, dtype: str, shape: tuple[int, ...]) -> None:
    """A random 0/1 array written a chunk at a time (the test never holds it whole)."""
    rng = np.random.default_rng(len(name))
    row = int(np.prod(shape[1:]))
    with archive.open(name, "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        )
        for start in range(0, shape[0], CHUNK):
            count = min(CHUNK, shape[0] - start) * row
            fh.write(rng.integers(0, 2, count).astype(dtype).tobytes())


def big_labels_file(path: Path) -> None:
    """A valid dataset: y (N,) int64, x_a and x_b (N, 1) float16, no split (automatic)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        _write_member(archive, "y.npy", "<i8", (N,))
        _write_member(archive, "x_a.npy", "<f2", (N, 1))
        _write_member(archive, "x_b.npy", "<f2", (N, 1))


def peak_rss(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@pytest.fixture
def api_process(db_url: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``synib api`` (one process) on a free port: (its URL, its pid)."""
    with running_api(db_url, tmp_path) as (url, proc):
        yield url, proc.pid


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_400_mb_label_array_is_validated_in_bounded_memory(
    api_process: tuple[str, int], auth: dict[str, str], tmp_path: Path
) -> None:
    url, pid = api_process
    path = tmp_path / "big_y.npz"
    big_labels_file(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("y.npy").file_size > 400 * 10**6
    assert path.stat().st_size < 60 * MIB
    with httpx.Client(base_url=url, headers=auth, timeout=300) as client:
        small = client.post("/api/v1/datasets", files={"file": ("small.npz", npz_bytes())})
        assert small.status_code == 201, small.text  # the validation code has run once
        before = peak_rss(pid)
        with path.open("rb") as fh:
            response = client.post("/api/v1/datasets", files={"file": ("big_y.npz", fh)})
        after = peak_rss(pid)
    assert response.status_code == 201, response.text
    summary = response.json()["summary"]
    assert summary["num_samples"] == N
    assert sum(summary["split_sizes"].values()) == N
    assert after - before < GROWTH_LIMIT, (
        f"the API's peak memory grew by {(after - before) / MIB:.0f} MiB "
        f"(from {before / MIB:.0f} MiB) validating a 400 MB label array"
    )

"""Every array of a dataset file is checked a chunk at a time (synib_spec.npz_reader): the
per-sample arrays (``y``, ``split``, ``group``) as well as the modalities, in either memory
order, with the same verdict from the API's validator and the library's loader."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from synib_core.data import DatasetError, load_npz
from synib_spec.datasets import MAX_GROUP_CHARS, MAX_GROUPS, validate_npz
from synib_spec.datasets import DatasetError as UploadError


def test_per_sample_arrays_are_checked_as_they_stream_not_held_whole(tmp_path: Path) -> None:
    n = 8_000_000
    path = tmp_path / "long.npz"
    y = np.arange(n, dtype=np.int64) % 3
    np.savez(
        path,
        y=y,
        x_a=np.ones((n, 1), dtype=np.float16),
        x_b=np.zeros((n, 1), dtype=np.float16),
        split=(np.arange(n) % 3).astype(np.int8),
        group=(np.arange(n) % 5).astype(np.int16),
    )
    size = y.nbytes  # 64 MB
    del y
    tracemalloc.start()
    try:
        summary = validate_npz(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary["num_samples"] == n
    assert summary["class_counts"] == {"0": 2_666_667, "1": 2_666_667, "2": 2_666_666}
    assert summary["split_sizes"] == {"train": 2_666_667, "val": 2_666_667, "test": 2_666_666}
    assert summary["group_counts"] == {str(g): n // 5 for g in range(5)}
    # Read whole, y alone takes its 64 MB (and its int64 copy and np.unique's sort as much
    # again); streamed, a few MB at a time.
    assert peak < size / 4, f"validation peaked at {peak / 2**20:.0f} MiB for a 64 MB y"


def test_a_bad_label_late_in_a_long_y_is_found(tmp_path: Path) -> None:
    n = 3_000_000
    y = np.arange(n, dtype=np.int64) % 2
    y[2_900_001] = -4
    path = tmp_path / "late.npz"
    np.savez(path, y=y, x_a=np.ones((n, 1), np.float16), x_b=np.ones((n, 1), np.float16))
    with pytest.raises(UploadError, match="found -4") as info:
        validate_npz(path)
    assert info.value.field == "y"


def test_fortran_ordered_modalities_stream_and_load_like_c_ordered_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.standard_normal((60, 7)).astype(np.float32))
    arrays = {"y": np.arange(60) % 2, "x_a": x, "x_b": np.ones((60, 2), np.float32)}
    path = tmp_path / "fortran.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    np.testing.assert_array_equal(load_npz(path).x["a"], x)
    assert validate_npz(path)["modalities"][0] == {"name": "a", "shape": [60, 7], "kind": "vector"}

    x[41, 3] = np.nan
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(UploadError, match="at sample 41") as info:
        validate_npz(path)
    assert info.value.field == "x_a"
    with pytest.raises(DatasetError, match="at sample 41"):
        load_npz(path)


@pytest.mark.parametrize(
    "group",
    [
        np.arange(MAX_GROUPS + 1).astype(str),  # an id per sample, not a kind of sample
        np.array(["s" * (MAX_GROUP_CHARS + 1)] * (MAX_GROUPS + 1)),
    ],
    ids=["too many values", "too long"],
)
def test_group_labels_are_a_few_short_names(tmp_path: Path, group: np.ndarray) -> None:
    n = group.shape[0]
    path = tmp_path / "groups.npz"
    np.savez(
        path, y=np.arange(n) % 2, x_a=np.ones((n, 1), np.float32), x_b=np.ones((n, 1), np.float32),
        group=group,
    )  # fmt: skip
    with pytest.raises(UploadError) as info:
        validate_npz(path)
    assert info.value.field == "group"
    with pytest.raises(DatasetError):
        load_npz(path)


def test_the_automatic_split_sizes_come_from_the_class_counts_alone(tmp_path: Path) -> None:
    """The summary's automatic split sizes (from streamed class counts) are the split
    load_npz draws (from the whole labels)."""
    rng = np.random.default_rng(1)
    y = rng.choice(7, size=1013, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.06, 0.04])
    path = tmp_path / "auto.npz"
    np.savez(path, y=y, x_a=np.ones((1013, 1), np.float32), x_b=np.ones((1013, 3), np.float32))
    assert validate_npz(path)["split_sizes"] == load_npz(path, split_seed=0).split_sizes()

"""synib_core.data: the .npz contract, load/save round trip, splits, subsets, spec."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from npz_corpus import BAD_CASES, good_arrays

from synib_core.data import (
    DatasetError,
    MultimodalData,
    fingerprint,
    load_npz,
    save_npz,
    stratified_split,
)


def write(tmp_path: Path, arrays: dict[str, np.ndarray], name: str = "d.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_load_good_file_gives_typed_dataset(tmp_path: Path) -> None:
    path = write(tmp_path, good_arrays())
    data = load_npz(path)
    assert data.modalities == ("audio", "video")
    assert data.x["audio"].dtype == np.float32 and data.x["video"].dtype == np.float32
    assert isinstance(data.x["audio"], np.memmap)  # stored float32 member is memory-mapped
    assert data.y.dtype == np.int64 and data.split.dtype == np.int8
    assert data.num_classes == 3
    assert data.group is not None and data.group[1] == "redundant"
    np.testing.assert_array_equal(data.oracle["audio"], [0, 2])
    np.testing.assert_array_equal(data.lengths["video"][:2], [4, 3])
    assert data.fingerprint == fingerprint(path)
    assert data.split_sizes() == {"train": 20, "val": 10, "test": 10}


def test_spec_and_subset(tmp_path: Path) -> None:
    data = load_npz(write(tmp_path, good_arrays()))
    spec = data.spec()
    assert spec.shapes == {"audio": (5,), "video": (4, 3)}
    assert spec.num_classes == 3 and spec.oracle_sizes == {"audio": 2}
    assert spec.has_lengths == ("video",)
    test = data.subset("test")
    assert len(test) == 10 and (test.split == 2).all()
    assert test.x["video"].shape == (10, 4, 3) and test.lengths["video"].shape == (10,)
    np.testing.assert_array_equal(test.y, data.y[data.split == 2])
    assert len(data.subset(1)) == 10
    with pytest.raises(ValueError, match="split"):
        data.subset("holdout")


def test_save_load_round_trip(tmp_path: Path) -> None:
    data = load_npz(write(tmp_path, good_arrays()))
    digest = save_npz(data, tmp_path / "copy.npz")
    again = load_npz(tmp_path / "copy.npz")
    assert digest == again.fingerprint == fingerprint(tmp_path / "copy.npz")
    for m in data.modalities:
        np.testing.assert_array_equal(again.x[m], data.x[m])
    np.testing.assert_array_equal(again.y, data.y)
    np.testing.assert_array_equal(again.split, data.split)
    assert again.group is not None and data.group is not None
    np.testing.assert_array_equal(again.group, data.group)
    np.testing.assert_array_equal(again.lengths["video"], data.lengths["video"])


def test_compressed_and_float64_members_are_read_without_mmap(tmp_path: Path) -> None:
    arrays = good_arrays()
    path = tmp_path / "c.npz"
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    data = load_npz(path)
    assert not isinstance(data.x["audio"], np.memmap)
    np.testing.assert_allclose(data.x["video"], arrays["x_video"].astype(np.float32))


def test_without_split_a_seeded_stratified_70_15_15_split() -> None:
    y = np.repeat([0, 1], [60, 40])
    split = stratified_split(y, seed=3)
    np.testing.assert_array_equal(split, stratified_split(y, seed=3))
    assert not np.array_equal(split, stratified_split(y, seed=4))
    for c, n in ((0, 60), (1, 40)):
        counts = np.bincount(split[y == c], minlength=3)
        expected = [n - 2 * round(0.15 * n), round(0.15 * n), round(0.15 * n)]
        assert counts.tolist() == expected  # 60 -> 42/9/9, 40 -> 28/6/6


def test_load_without_split_draws_the_automatic_split(tmp_path: Path) -> None:
    arrays = good_arrays()
    del arrays["split"]
    data = load_npz(write(tmp_path, arrays), split_seed=1)
    np.testing.assert_array_equal(data.split, stratified_split(data.y, seed=1))


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_name_the_field(tmp_path: Path, case: str) -> None:
    arrays = good_arrays()
    mutate, field = BAD_CASES[case]
    mutate(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays, allow_pickle=True)  # type: ignore[arg-type]
    with pytest.raises(DatasetError) as info:
        load_npz(path)
    assert info.value.field == field
    assert isinstance(info.value, ValueError) and field in str(info.value)


def test_too_few_samples_for_automatic_split(tmp_path: Path) -> None:
    arrays = good_arrays(n=4)
    del arrays["split"]
    with pytest.raises(DatasetError, match="too few") as info:
        load_npz(write(tmp_path, arrays))
    assert info.value.field == "split"


def test_not_a_zip_truncated_and_single_npy(tmp_path: Path) -> None:
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"hello, not a zip at all")
    good = write(tmp_path, good_arrays())
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    single = tmp_path / "s.npy"
    np.save(single, np.zeros(3))
    for path in (garbage, truncated, single, tmp_path / "missing.npz"):
        with pytest.raises(DatasetError) as info:
            load_npz(path)
        assert info.value.field == "file", path


def test_non_npy_member_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, good_arrays())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes.txt", "hi")
    with pytest.raises(DatasetError, match=r"notes\.txt"):
        load_npz(path)


def test_multimodal_data_train_prior() -> None:
    data = MultimodalData(
        x={"a": np.zeros((4, 1), np.float32), "b": np.zeros((4, 1), np.float32)},
        y=np.array([0, 1, 1, 0]),
        split=np.array([0, 0, 0, 2], dtype=np.int8),
        group=None,
        oracle={},
        lengths={},
        num_classes=3,
        fingerprint="x",
    )
    np.testing.assert_allclose(data.train_prior(), [1 / 3, 2 / 3, 0.0])

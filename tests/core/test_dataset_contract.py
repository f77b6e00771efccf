"""The dataset contract (synib_spec.datasets: the one reader and the checks, numpy only, for
untrusted uploads) on a corpus of good and bad files, through both of its users: the API's
``validate_npz`` and the library's ``load_npz`` give the same verdict and name the same field."""

from __future__ import annotations

import contextlib
import io
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from npz_corpus import BAD_CASES, good_arrays

from synib_core.data import DatasetError, load_npz
from synib_spec.datasets import DatasetError as UploadError
from synib_spec.datasets import Limits as UploadLimits
from synib_spec.datasets import validate_npz

Writer = Callable[[Path], None]


def _savez(arrays: dict[str, np.ndarray], compressed: bool = False) -> Writer:
    def write(path: Path) -> None:
        save = np.savez_compressed if compressed else np.savez
        save(path, **arrays, allow_pickle=True)  # type: ignore[operator]

    return write


def _mutated(case: str) -> Writer:
    arrays = good_arrays()
    BAD_CASES[case][0](arrays)
    return _savez(arrays)


def _variant(**changes: object) -> Writer:
    arrays = good_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = np.asarray(value)
    return _savez(arrays)


def _raw(data: bytes) -> Writer:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _truncated(keep: int) -> Writer:
    def write(path: Path) -> None:
        _savez(good_arrays())(path)
        path.write_bytes(path.read_bytes()[:keep])

    return write


def _with_member(name: str, payload: bytes) -> Writer:
    def write(path: Path) -> None:
        _savez(good_arrays())(path)
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(name, payload)

    return write


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


GOOD: dict[str, Writer] = {
    "full": _savez(good_arrays()),
    "compressed": _savez(good_arrays(), compressed=True),
    "no split": _variant(split=None),
    "no optional arrays": _variant(group=None, oracle_audio=None, len_video=None, split=None),
    "int groups": _variant(group=np.arange(40) % 4),
    "bytes groups": _variant(group=np.array([b"s", b"r"] * 20)),
    "image modality": _variant(x_video=np.zeros((40, 1, 2, 2)), len_video=None),
    "float16 and uint8": _variant(
        x_audio=np.ones((40, 3), np.float16), y=np.arange(40, dtype=np.uint8) % 2
    ),
}

BAD: dict[str, Writer] = {name: _mutated(name) for name in BAD_CASES}
BAD.update(
    {
        "not a zip": _raw(b"just some text, certainly not an archive"),
        "empty file": _raw(b""),
        "pickle file": _raw(pickle.dumps({"y": [0, 1]})),
        "single npy": _raw(_npy_bytes(np.arange(4))),
        "truncated": _truncated(400),
        "truncated tail": _truncated(-20),
        "text member": _with_member("readme.txt", b"hello"),
        "pickled member": _with_member(
            "x_extra.npy", _npy_bytes(np.array([{"a": 1}], dtype=object))
        ),
        "garbage member": _with_member("x_junk.npy", b"\x93NUMPY garbage"),
        "labels 2-d": _variant(y=np.zeros((40, 1), dtype=int)),
        "empty y": _variant(y=np.zeros(0, dtype=int)),
        "bad modality name": _variant(**{"x_a-b": np.zeros((40, 2))}),
        "empty features": _variant(x_audio=np.zeros((40, 0))),
        "empty oracle": _variant(oracle_audio=np.zeros(0, dtype=int)),
        "float oracle": _variant(oracle_audio=np.array([0.0, 1.0])),
        "float split": _variant(split=np.array([0.0, 1.0, 2.0, 0.0] * 10)),
        "zero length": _variant(len_video=np.zeros(40, dtype=int)),
        "too few for auto split": _savez(
            {k: v[:4] for k, v in good_arrays(n=4).items() if k != "split"}
            | {"oracle_audio": np.array([0])}
        ),
    }
)


def core_verdict(path: Path) -> str | None:
    try:
        load_npz(path)
    except DatasetError as exc:
        return exc.field
    return None


def api_verdict(path: Path) -> str | None:
    try:
        validate_npz(path)
    except UploadError as exc:
        return exc.field
    return None


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_files_pass_both_with_the_same_summary(tmp_path: Path, name: str) -> None:
    path = tmp_path / "good.npz"
    GOOD[name](path)
    data = load_npz(path)
    summary = validate_npz(path)
    assert summary["num_classes"] == data.num_classes
    assert summary["split_sizes"] == data.split_sizes()
    assert summary["num_samples"] == len(data)
    assert [(m["name"], tuple(m["shape"])) for m in summary["modalities"]] == [
        (m, data.x[m].shape) for m in data.modalities
    ]
    assert summary["class_counts"] == {str(c): int((data.y == c).sum()) for c in np.unique(data.y)}
    groups = (
        {} if data.group is None else {g: int((data.group == g).sum()) for g in set(data.group)}
    )
    assert summary["group_counts"] == groups
    assert summary["has_oracle"] == bool(data.oracle)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_fail_both_naming_the_same_field(tmp_path: Path, name: str) -> None:
    path = tmp_path / "bad.npz"
    BAD[name](path)
    core = core_verdict(path)
    assert core is not None, f"synib_core accepted {name}"
    assert api_verdict(path) == core


def test_summary_of_a_known_file(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    _savez(good_arrays())(path)
    summary = validate_npz(io.BytesIO(path.read_bytes()))  # a file object works too
    assert summary["split_sizes"] == {"train": 20, "val": 10, "test": 10}
    assert summary["class_counts"] == {"0": 14, "1": 13, "2": 13}
    assert summary["group_counts"] == {"redundant": 20, "synergy": 20}
    assert summary["modalities"][1] == {"name": "video", "shape": [40, 4, 3], "kind": "sequence"}
    assert summary["has_oracle"] is True


def _zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def test_zip_bomb_is_refused_from_the_directory() -> None:
    zeros = _npy_bytes(np.zeros((4_000_000,), dtype=np.float32))  # 16 MB, deflates ~1000:1
    blob = _zip_of({"y.npy": _npy_bytes(np.array([0, 1])), "x_a.npy": zeros})
    assert len(blob) < 100_000
    limits = UploadLimits(ratio_min_bytes=1 << 20, max_ratio=100)
    with pytest.raises(UploadError, match="compression ratio") as info:
        validate_npz(io.BytesIO(blob), limits=limits)
    assert info.value.field == "x_a"
    with pytest.raises(UploadError, match="over the limit") as info:
        validate_npz(io.BytesIO(blob), limits=UploadLimits(max_member_bytes=1 << 20))
    assert info.value.field == "x_a"
    with pytest.raises(UploadError, match="over the limit") as info:
        validate_npz(io.BytesIO(blob), limits=UploadLimits(max_total_bytes=1 << 20))
    assert info.value.field == "file"


def _header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A .npy header alone (version 1.0), declaring any shape: a forged one."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


_Y8 = _npy_bytes(np.arange(8) % 2)
_X8 = _npy_bytes(np.zeros((8, 2), dtype=np.float32))

# name -> (archive members, the array the error must name, words the reason must contain)
FORGED: dict[str, tuple[dict[str, bytes], str, str]] = {
    "y of 10^12 values": ({"y.npy": _header((10**12,), "<f8") + bytes(64)}, "y", "(10000000"),
    "2^32 x 2^32 modality": (
        {"y.npy": _Y8, "x_a.npy": _header((300, 2**32, 2**32)) + bytes(64), "x_b.npy": _X8},
        "x_a",
        "4294967296",
    ),
    # 8 * (2^61 + 1) = 2^64 + 8: an int64 product wraps around to 8 values (32 bytes).
    "wrapping shape": (
        {"y.npy": _Y8, "x_a.npy": _header((8, 2**61 + 1)) + bytes(32), "x_b.npy": _X8},
        "x_a",
        "declares shape (8, 2305843009213693953)",
    ),
    "empty y with a 2^64 axis": (
        {"y.npy": _header((0, 2**64), "<i8"), "x_a.npy": _X8, "x_b.npy": _X8},
        "y",
        "18446744073709551616",
    ),
    "negative dimensions": (
        {"y.npy": _Y8, "x_a.npy": _header((8, -1, -2)) + bytes(64), "x_b.npy": _X8},
        "x_a",
        "negative dimension",
    ),
    "data after the declared array": (
        {"y.npy": _Y8, "x_a.npy": _X8 + bytes(16), "x_b.npy": _X8},
        "x_a",
        "holds 80 bytes",
    ),
    "zero-size elements": (
        {"y.npy": _header((8,), "<U0"), "x_a.npy": _X8, "x_b.npy": _X8},
        "y",
        "zero-size elements",
    ),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_forged_headers_are_refused_naming_the_array_by_both_readers(
    tmp_path: Path, name: str
) -> None:
    """Shapes are checked in exact integers against the bytes the member really holds, before
    any data is read; the API's validator and the library's loader are the same reader."""
    members, field, words = FORGED[name]
    path = tmp_path / "forged.npz"
    path.write_bytes(_zip_of(members, zipfile.ZIP_STORED))
    with pytest.raises(UploadError) as info:
        validate_npz(path)
    assert info.value.field == field
    assert words in info.value.reason
    assert core_verdict(path) == field


def _flagged_encrypted(blob: bytes) -> bytes:
    """The archive with every member marked encrypted (zip flag bit 0), data unchanged."""
    data = bytearray(blob)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            data[at + flag_offset] |= 1
            at = data.find(signature, at + 4)
    return bytes(data)


def test_encrypted_and_unusual_compression_are_refused_naming_the_array() -> None:
    members = {"y.npy": _Y8, "x_a.npy": _X8, "x_b.npy": _X8}
    encrypted = _flagged_encrypted(_zip_of(members, zipfile.ZIP_STORED))
    with pytest.raises(UploadError, match="encrypted") as info:
        validate_npz(io.BytesIO(encrypted))
    assert info.value.field == "y"
    with pytest.raises(UploadError, match="only stored or deflated") as info:
        validate_npz(io.BytesIO(_zip_of(members, zipfile.ZIP_BZIP2)))
    assert info.value.field == "y"


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "deflated"])
def test_every_damaged_byte_is_a_dataset_error(save: Callable[..., None]) -> None:
    """Flip each byte of a small file in turn (zip headers, .npy headers, data, the deflate
    stream, the central directory): the file passes or is a DatasetError, never zipfile's,
    zlib's or tokenize's own exception (a 500 at the API)."""
    buf = io.BytesIO()
    save(buf, **good_arrays(n=12))
    blob = buf.getvalue()
    for offset in range(len(blob)):
        damaged = bytearray(blob)
        damaged[offset] ^= 0xFF
        with contextlib.suppress(UploadError):  # anything else fails the test
            validate_npz(io.BytesIO(bytes(damaged)))


def test_the_contract_imports_neither_torch_nor_synib_core() -> None:
    code = (
        "import sys, synib_spec.datasets; "
        "bad = [m for m in ('torch', 'synib_core') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _large_file(path: Path, n: int = 100_000, width: int = 200) -> int:
    """A valid dataset whose modality ``x_big`` is ``n`` x ``width`` float32 (80 MB by
    default), written uncompressed; returns that array's size in bytes."""
    rng = np.random.default_rng(0)
    big = np.empty((n, width), dtype=np.float32)
    for start in range(0, n, 10_000):  # filled in slices: the test itself stays light
        big[start : start + 10_000] = rng.standard_normal((min(10_000, n - start), width))
    y = np.arange(n, dtype=np.int64) % 2
    np.savez(path, y=y, x_big=big, x_small=np.ones((n, 2), dtype=np.float32))
    return big.nbytes


def test_modality_arrays_are_checked_as_they_stream_not_held_whole(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "large.npz"
    size = _large_file(path)
    tracemalloc.start()
    try:
        summary = validate_npz(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary["modalities"][0] == {"name": "big", "shape": [100_000, 200], "kind": "vector"}
    assert summary["num_samples"] == 100_000
    # Reading the array whole takes at least its 80 MB (84 MiB measured before streaming);
    # streamed, about 1M values at a time (11 MiB measured).
    assert peak < size / 4, f"validation peaked at {peak / 2**20:.0f} MiB for an 80 MB array"


def test_a_bad_value_deep_in_a_streamed_array_is_named_with_its_sample(tmp_path: Path) -> None:
    """Past the first chunks (5,242 samples of 200 floats each), a NaN is still found
    and its sample named; a corrupt byte in the member's data fails its CRC at the end."""
    path = tmp_path / "nan.npz"
    n, width = 60_000, 200
    arrays = {
        "y": np.arange(n, dtype=np.int64) % 2,
        "x_big": np.zeros((n, width), dtype=np.float32),
        "x_small": np.ones((n, 2), dtype=np.float32),
    }
    arrays["x_big"][47_311, 5] = np.inf
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(UploadError, match="first found at sample 47311") as info:
        validate_npz(path)
    assert info.value.field == "x_big"
    assert core_verdict(path) == api_verdict(path)

    arrays["x_big"][47_311, 5] = 0.0
    np.savez(path, **arrays)  # type: ignore[arg-type]
    data = bytearray(path.read_bytes())
    offset = data.index(b"x_big.npy") + 40_000_000  # inside x_big's zeros (48 MB of them)
    assert data[offset] == 0
    data[offset] = 1  # a tiny finite float: only the CRC can tell
    path.write_bytes(bytes(data))
    with pytest.raises(UploadError, match="truncated or corrupt") as info:
        validate_npz(path)
    assert info.value.field == "x_big"


def test_a_streamed_array_cut_short_is_named_once(tmp_path: Path) -> None:
    """The member's header promises 100 rows, its data ends 2 rows early (the zip entry itself
    is consistent): the error names the array once, with one reason, from its header."""
    blob = _zip_of(
        {
            "y.npy": _npy_bytes(np.arange(100) % 2),
            "x_a.npy": _npy_bytes(np.zeros((100, 4), dtype=np.float32))[:-32],
            "x_b.npy": _npy_bytes(np.zeros((100, 2), dtype=np.float32)),
        }
    )
    with pytest.raises(UploadError) as info:
        validate_npz(io.BytesIO(blob))
    assert (info.value.field, info.value.reason) == (
        "x_a",
        "could not be read: truncated or corrupt: its header declares shape (100, 4) of float32 "
        "(1600 bytes) but the archive member holds 1568 bytes of data",
    )
    path = tmp_path / "short.npz"
    path.write_bytes(blob)
    assert core_verdict(path) is not None  # synib_core refuses it too

"""The size budget of built-in datasets (synib_spec.builtin): the estimate from the parameters
is the bytes the generated file's arrays take, and a refusal names the parameter to lower."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synib_core.data import make_dataset, save_npz
from synib_spec.builtin import check_budget, estimated_bytes, resolve_params
from synib_spec.datasets import GeneratorParamError

CHEAP: dict[str, dict[str, Any]] = {
    "xor_spurious": {"n_train": 50, "n_val": 20, "n_test": 30, "dim": 12},
    "xor_pid": {"n_train": 200, "n_val": 40, "n_test": 60},
    "digits_pairs": {"n_train": 100, "n_val": 40, "n_test": 60, "layout": "image"},
}


def data_bytes(path: Path, skip: tuple[str, ...] = ("oracle_",)) -> int:
    """Bytes of the arrays' values in an .npz (headers and ``skip``-prefixed arrays left out)."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.startswith(skip):
                continue
            with archive.open(info) as fh:
                np.lib.format.read_magic(fh)
                np.lib.format.read_array_header_1_0(fh)
                total += info.file_size - fh.tell()
    return total


@pytest.mark.parametrize("generator", sorted(CHEAP))
def test_the_estimate_is_the_size_of_the_generated_arrays(tmp_path: Path, generator: str) -> None:
    params = CHEAP[generator]
    path = tmp_path / "d.npz"
    save_npz(make_dataset(generator, 0, **params), path)
    assert data_bytes(path) == estimated_bytes(generator, resolve_params(generator, params))


def test_a_refusal_names_the_parameter_that_drives_the_size() -> None:
    wide = resolve_params("xor_spurious", {"dim": 100_000})
    with pytest.raises(GeneratorParamError, match="lower dim") as info:
        check_budget("xor_spurious", wide, 1024)
    assert info.value.field == "dim"
    long = resolve_params("xor_pid", {"n_train": 10**7})
    with pytest.raises(GeneratorParamError) as info:
        check_budget("xor_pid", long, 1024)
    assert info.value.field == "n_train"
    assert "10,004,200 samples x 301 bytes" in info.value.reason
    assert check_budget("xor_pid", resolve_params("xor_pid", {}), 1024) == 6000 * 301

"""Datasets: the in-memory `MultimodalData`, the `.npz` file contract, and built-in generators."""

from synib_core.data.dataset import DatasetError, DataSpec, GeneratorParamError, MultimodalData
from synib_core.data.extractors import SignalDependencyError
from synib_core.data.generators import GENERATOR_PARAMS, GENERATORS, make_dataset
from synib_core.data.npz import fingerprint, load_npz, read_arrays, save_npz
from synib_spec.datasets import stratified_split

__all__ = [
    "GENERATORS",
    "GENERATOR_PARAMS",
    "DataSpec",
    "DatasetError",
    "GeneratorParamError",
    "MultimodalData",
    "SignalDependencyError",
    "fingerprint",
    "load_npz",
    "make_dataset",
    "read_arrays",
    "save_npz",
    "stratified_split",
]

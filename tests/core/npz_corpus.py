"""The `.npz` corpus both dataset validators are tested on (tests/core/test_data.py for
synib_core.data.load_npz, tests/core/test_dataset_contract.py for both through the one reader):
one good file's arrays and named ways to break it, each with the field the error must name."""

from __future__ import annotations

import numpy as np


def good_arrays(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "y": np.arange(n) % 3,
        "x_audio": rng.standard_normal((n, 5)).astype(np.float32),
        "x_video": rng.standard_normal((n, 4, 3)),
        "split": np.array([0, 1, 2, 0] * (n // 4)),
        "group": np.array(["synergy", "redundant"] * (n // 2)),
        "oracle_audio": np.array([0, 2]),
        "len_video": np.full(n, 4) - (np.arange(n) % 2),
    }


# case name -> (mutation of good_arrays(), the field the error must name)
BAD_CASES = {
    "missing y": (lambda a: a.pop("y"), "y"),
    "one modality": (lambda a: a.pop("x_video"), "x_<modality>"),
    "unknown key": (lambda a: a.update(extra=np.zeros(3)), "extra"),
    "float labels": (lambda a: a.update(y=a["y"].astype(float)), "y"),
    "negative label": (lambda a: a["y"].__setitem__(0, -1), "y"),
    "one class": (lambda a: a.update(y=np.zeros(40, dtype=int)), "y"),
    "int features": (lambda a: a.update(x_audio=np.ones((40, 5), dtype=int)), "x_audio"),
    "short modality": (lambda a: a.update(x_audio=np.ones((39, 5))), "x_audio"),
    "nan": (lambda a: a["x_video"].__setitem__((7, 0, 0), np.nan), "x_video"),
    "inf": (lambda a: a["x_audio"].__setitem__((3, 1), np.inf), "x_audio"),
    "5-d features": (lambda a: a.update(x_audio=np.ones((40, 1, 1, 1, 1))), "x_audio"),
    "split value 3": (lambda a: a["split"].__setitem__(0, 3), "split"),
    "empty test split": (lambda a: a.update(split=np.array([0, 1] * 20)), "split"),
    "split length": (lambda a: a.update(split=np.zeros(39, dtype=int)), "split"),
    "float group": (lambda a: a.update(group=np.ones(40)), "group"),
    "oracle out of range": (lambda a: a.update(oracle_audio=np.array([5])), "oracle_audio"),
    "oracle of nobody": (lambda a: a.update(oracle_text=np.array([0])), "oracle_text"),
    "len too long": (lambda a: a["len_video"].__setitem__(0, 5), "len_video"),
    "len of vectors": (lambda a: a.update(len_audio=np.ones(40, dtype=int)), "len_audio"),
    "pickled object array": (
        lambda a: a.update(group=np.array(["a", 1] * 20, dtype=object)),
        "group",
    ),
}

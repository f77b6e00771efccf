"""``synib datasets import multibench``: a MultiBench affect pickle (written here, in that
layout) becomes a dataset file that passes the upload checks, with lengths, the split and
labels right; bad files end with one line naming the problem and exit code 2."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synib_client.main import main
from synib_core.data import load_npz
from synib_core.data.multibench import convert_multibench, pack_steps, sentiment_classes
from synib_spec.datasets import validate_npz

T = 5
DIMS = {"vision": 3, "audio": 2, "text": 4}
SIZES = {"train": 8, "valid": 4, "test": 4}


def _split(n: int, lengths: list[int], leading: bool, seed: int) -> dict[str, Any]:
    """One split: every modality holds ``lengths[i]`` non-zero steps for sample i, padded at the
    front (``leading``) or the back; labels (n, 1, 1) sentiment scores."""
    rng = np.random.default_rng(seed)
    part: dict[str, Any] = {}
    for m, d in DIMS.items():
        x = np.zeros((n, T, d))
        for i, size in enumerate(lengths):
            steps = 1.0 + rng.random((size, d))  # never zero
            if leading:
                x[i, T - size :] = steps
            else:
                x[i, :size] = steps
        part[m] = x
    scores = np.array([-2.6, -1.2, 0.0, 0.4, 1.6, 2.9, -0.4, 3.0])[:n]
    part["labels"] = scores.reshape(n, 1, 1)
    part["id"] = np.array([f"video{seed}_{i}" for i in range(n)])
    return part


def mosi_like() -> dict[str, Any]:
    """train padded at the front, valid and test at the back (MultiBench has both)."""
    return {
        "train": _split(8, [1, 2, 3, 4, 5, 5, 2, 3], leading=True, seed=0),
        "valid": _split(4, [5, 1, 2, 3], leading=False, seed=1),
        "test": _split(4, [4, 4, 1, 2], leading=False, seed=2),
    }


def _pickle(path: Path, obj: Any) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
    return path


def test_a_multibench_pickle_becomes_a_valid_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = mosi_like()
    raw["train"]["audio"][0, T - 1, 0] = np.nan  # MOSEI's audio has such values
    raw["valid"]["audio"][2, 0, 1] = -np.inf
    source, out = _pickle(tmp_path / "mosi.pkl", raw), tmp_path / "mosi.npz"
    assert main(["datasets", "import", "multibench", str(source), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "audio: 2 NaN or infinite values replaced by 0" in captured.err
    assert captured.out.startswith(f"{out}: 16 samples (train 8 / val 4 / test 4), 2 classes")
    summary = validate_npz(out)
    assert [(m["name"], m["shape"], m["kind"]) for m in summary["modalities"]] == [
        (m, [16, T, d], "sequence") for m, d in DIMS.items()
    ]
    data = load_npz(out)  # what `synib train` / `synib data` read
    expected_len = [1, 2, 3, 4, 5, 5, 2, 3, 5, 1, 2, 3, 4, 4, 1, 2]
    for m in DIMS:
        np.testing.assert_array_equal(data.lengths[m], expected_len)
        steps = np.any(data.x[m] != 0, axis=2)  # (N, T): the steps now come first
        assert (steps.sum(axis=1) <= data.lengths[m]).all()
        assert all(steps[i, : n - 1].all() for i, n in enumerate(expected_len) if n > 1)
    np.testing.assert_array_equal(data.split, [0] * 8 + [1] * 4 + [2] * 4)
    # > 0 is positive; 0.0 stays with the negatives (MultiBench's classification rule)
    np.testing.assert_array_equal(data.y[:8], [0, 0, 0, 1, 1, 1, 0, 1])
    assert np.isfinite(data.x["audio"]).all()
    first = raw["train"]["vision"][2]  # 3 steps padded at the front -> moved to the front
    np.testing.assert_allclose(data.x["vision"][2, :3], first[T - 3 :].astype(np.float32))


def test_seven_classes_and_a_subset_of_modalities(tmp_path: Path) -> None:
    source, out = _pickle(tmp_path / "mosi.pkl", mosi_like()), tmp_path / "mosi7.npz"
    argv = ["datasets", "import", "multibench", str(source), "--out", str(out)]
    assert main([*argv, "--classes", "7", "--modalities", "text,vision"]) == 0
    data = load_npz(out)
    assert data.modalities == ("vision", "text")
    np.testing.assert_array_equal(data.y[:8], [0, 2, 3, 3, 5, 6, 3, 6])  # round, clip, +3
    scores = np.array([-9.0, -0.5, 0.5, 2.5, 7.0])
    np.testing.assert_array_equal(sentiment_classes(scores, 7), [0, 3, 3, 5, 6])
    np.testing.assert_array_equal(sentiment_classes(scores, 2), [0, 0, 1, 1, 1])


def test_samples_without_text_are_dropped_and_other_empty_ones_get_length_one() -> None:
    raw = mosi_like()
    raw["train"]["text"][1] = 0.0
    raw["test"]["audio"][0] = 0.0
    lines: list[str] = []
    arrays = convert_multibench(raw, log=lines.append)
    assert arrays["y"].shape == (15,) and arrays["x_text"].shape == (15, T, 4)
    assert "text: 1 samples without text dropped (as MultiBench does)" in lines
    assert arrays["len_audio"][8 + 4 - 1] == 1  # test's first sample, after the dropped one
    x = np.zeros((2, 4, 1), np.float32)
    x[0, 1:3, 0], x[1, 0, 0] = [1.0, 2.0], 3.0
    packed, lengths, leading, present = pack_steps(x)
    np.testing.assert_array_equal(packed[0, :, 0], [1.0, 2.0, 0.0, 0.0])
    assert lengths.tolist() == [2, 1] and leading == 1 and present.all()


def _without(raw: dict[str, Any], split: str, key: str) -> dict[str, Any]:
    del raw[split][key]
    return raw


BAD_FILES = {
    "not a pickle": (b"just some text", "MultiBench file 'file': not a readable pickle"),
    "not a dict": (pickle.dumps([1, 2, 3]), "'file': expected a dict of splits, got list"),
    "no valid split": (
        pickle.dumps({k: v for k, v in mosi_like().items() if k != "valid"}),
        "'valid': missing; the file has ['test', 'train']",
    ),
    "no audio": (pickle.dumps(_without(mosi_like(), "test", "audio")), "'test.audio': missing"),
    "no labels": (pickle.dumps(_without(mosi_like(), "train", "labels")), "'train.labels': miss"),
    "counts disagree": (
        pickle.dumps(mosi_like() | {"valid": mosi_like()["valid"] | {"labels": np.zeros((3, 1))}}),
        "'valid.vision': has 4 samples but valid.labels has 3",
    ),
    "2-d features": (
        pickle.dumps(mosi_like() | {"test": mosi_like()["test"] | {"text": np.zeros((4, 5))}}),
        "'test.text': expected a (N, T, D) feature sequence, got shape (4, 5)",
    ),
    "feature sizes disagree": (
        pickle.dumps(mosi_like() | {"test": mosi_like()["test"] | {"vision": np.ones((4, T, 9))}}),
        "'vision': the splits disagree on the feature size: [3, 9]",
    ),
    "emotion labels": (
        pickle.dumps(mosi_like() | {"test": mosi_like()["test"] | {"labels": np.zeros((4, 6))}}),
        "'test.labels': expected one score per sample",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_exit_2_with_one_line_naming_the_problem(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    payload, words = BAD_FILES[case]
    source = tmp_path / "bad.pkl"
    source.write_bytes(payload)
    out = tmp_path / "out.npz"
    assert main(["datasets", "import", "multibench", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synib datasets import: error: "), err
    assert words in err[0], err[0]
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--modalities", "vision"], "--modalities: expected at least two distinct"),
        (["--modalities", "vision,smell"], "--modalities: expected at least two distinct"),
        (["--classes", "3"], "argument --classes: invalid choice: 3"),
    ],
)
def test_bad_options_exit_2(
    tmp_path: Path, flags: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _pickle(tmp_path / "mosi.pkl", mosi_like())
    argv = ["datasets", "import", "multibench", str(source), "--out", str(tmp_path / "o.npz")]
    assert main([*argv, *flags]) == 2
    assert words in capsys.readouterr().err

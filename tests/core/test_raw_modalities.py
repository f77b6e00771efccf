"""Raw modalities in the dataset contract (synib_spec.modality_kinds): text as unicode strings,
uint8 images in both layouts, audio waveforms with a sample rate and lengths. The API's
``validate_npz`` and the library's ``load_npz`` read them through the same checks; the library
holds them as the kinds say, and a model without a pretrained backbone refuses raw text/audio."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from synib_client.main import main
from synib_core.backbones.model import build_model
from synib_core.config import KnobError, TrainConfig
from synib_core.data import DatasetError, load_npz, save_npz
from synib_spec.datasets import DatasetError as UploadError
from synib_spec.datasets import Limits, validate_npz

N = 12
T = 50


def raw_arrays() -> dict[str, np.ndarray]:
    """Text, a channels-last and a channels-first uint8 image, audio with rate and lengths."""
    rng = np.random.default_rng(0)
    texts = [f"utterance {i}: ça va? 🙂" for i in range(N)]
    texts[1] = ""  # an empty string is a valid sample
    return {
        "y": np.arange(N) % 2,
        "split": np.array([0, 0, 1, 2] * (N // 4)),
        "x_text": np.array(texts, dtype=str),
        "x_photo": rng.integers(0, 256, (N, 6, 5, 3), dtype=np.uint8),
        "x_scan": rng.integers(0, 256, (N, 1, 7, 8), dtype=np.uint8),
        "x_voice": rng.standard_normal((N, T)).astype(np.float32),
        "rate_voice": np.array(16000),
        "len_voice": 1 + np.arange(N) * 4,
    }


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays, allow_pickle=True)  # type: ignore[arg-type]
    return path


def test_raw_kinds_are_accepted_with_kinds_and_rate_in_the_summary(tmp_path: Path) -> None:
    summary = validate_npz(_write(tmp_path / "raw.npz", raw_arrays()))
    assert summary["modalities"] == [
        {"name": "text", "shape": [N], "kind": "text"},
        {"name": "photo", "shape": [N, 6, 5, 3], "kind": "image"},
        {"name": "scan", "shape": [N, 1, 7, 8], "kind": "image"},
        {"name": "voice", "shape": [N, T], "kind": "audio", "rate": 16000},
    ]
    arrays = raw_arrays() | {"rate_voice": np.array([44100], dtype=np.int32)}  # (1,) works too
    summary = validate_npz(_write(tmp_path / "rate1.npz", arrays))
    assert summary["modalities"][3]["rate"] == 44100


def test_the_library_holds_raw_kinds_as_the_interface_says(tmp_path: Path) -> None:
    arrays = raw_arrays()
    data = load_npz(_write(tmp_path / "raw.npz", arrays))
    assert data.kinds == {"text": "text", "photo": "image", "scan": "image", "voice": "audio"}
    assert data.x["text"].dtype.kind == "U" and list(data.x["text"]) == list(arrays["x_text"])
    photo = data.x["photo"]
    assert photo.dtype == np.float32 and photo.shape == (N, 3, 6, 5)  # NHWC -> NCHW
    np.testing.assert_allclose(photo[4, 2, 1, 3], arrays["x_photo"][4, 1, 3, 2] / 255.0)
    assert data.x["scan"].shape == (N, 1, 7, 8) and float(data.x["scan"].max()) <= 1.0
    np.testing.assert_allclose(data.x["scan"] * 255.0, arrays["x_scan"], atol=1e-3)
    assert data.x["voice"].dtype == np.float32 and data.rates == {"voice": 16000}
    np.testing.assert_array_equal(data.lengths["voice"], arrays["len_voice"])
    spec = data.spec()
    assert spec.shapes == {"text": (), "photo": (3, 6, 5), "scan": (1, 7, 8), "voice": (T,)}
    assert spec.kinds == data.kinds and spec.rates == {"voice": 16000}
    assert spec.raw_modalities() == {"text": "text", "voice": "audio"}
    train = data.subset("train")
    assert list(train.x["text"]) == list(arrays["x_text"][arrays["split"] == 0])
    assert train.rates == {"voice": 16000} and train.kinds == data.kinds


def test_save_npz_round_trips_raw_kinds(tmp_path: Path) -> None:
    data = load_npz(_write(tmp_path / "raw.npz", raw_arrays()))
    save_npz(data, tmp_path / "again.npz")
    again = load_npz(tmp_path / "again.npz")
    assert again.kinds == data.kinds and again.rates == data.rates
    for m in data.modalities:
        np.testing.assert_array_equal(again.x[m], data.x[m])
    np.testing.assert_array_equal(again.lengths["voice"], data.lengths["voice"])


Mutation = Callable[[dict[str, np.ndarray]], None]
OBJECT_TEXT = np.array([f"t{i}" for i in range(N)], dtype=object)

# case -> (mutation of raw_arrays(), the member the error must name, words the reason holds)
BAD: dict[str, tuple[Mutation, str, str]] = {
    "object text": (lambda a: a.update(x_text=OBJECT_TEXT), "x_text", "dtype=str"),
    "byte strings": (lambda a: a.update(x_text=np.array([b"t"] * N)), "x_text", "dtype=str"),
    "text 2-d": (lambda a: a.update(x_text=a["x_text"].reshape(N, 1)), "x_text", "(N,)"),
    "surrogate": (lambda a: a["x_text"].__setitem__(2, "\ud800"), "x_text", "unicode"),
    "image C=5": (
        lambda a: a.update(x_photo=np.zeros((N, 6, 5, 5), np.uint8)),
        "x_photo",
        "1, 3 or 4",
    ),
    "uint8 vectors": (lambda a: a.update(x_photo=np.zeros((N, 8), np.uint8)), "x_photo", "images"),
    "audio without rate": (lambda a: a.pop("rate_voice"), "len_voice", "rate_voice"),
    "rate 0": (lambda a: a.update(rate_voice=np.array(0)), "rate_voice", "1..384000"),
    "rate too high": (lambda a: a.update(rate_voice=np.array(400_000)), "rate_voice", "Hz"),
    "float rate": (lambda a: a.update(rate_voice=np.array(16000.0)), "rate_voice", "integer"),
    "two rates": (lambda a: a.update(rate_voice=np.array([8000, 16000])), "rate_voice", "one"),
    "rate of a sequence": (
        lambda a: a.update(x_voice=np.zeros((N, T, 2), np.float32)),
        "rate_voice",
        "waveforms",
    ),
    "rate of nobody": (lambda a: a.update(rate_music=np.array(8000)), "rate_music", "modality"),
    "len > T": (lambda a: a["len_voice"].__setitem__(3, T + 1), "len_voice", f"1..{T}"),
    "nan in audio": (lambda a: a["x_voice"].__setitem__((5, 7), np.nan), "x_voice", "sample 5"),
    "oracle of text": (lambda a: a.update(oracle_text=np.array([0])), "oracle_text", "text"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_raw_files_name_the_member_in_both_readers(tmp_path: Path, case: str) -> None:
    arrays = raw_arrays()
    mutate, field, words = BAD[case]
    mutate(arrays)
    path = _write(tmp_path / "bad.npz", arrays)
    with pytest.raises(UploadError) as upload:
        validate_npz(path)
    assert upload.value.field == field and words in str(upload.value), str(upload.value)
    with pytest.raises(DatasetError) as library:
        load_npz(path)
    assert library.value.field == field


def test_a_text_item_over_the_limit_is_refused_naming_the_sample(tmp_path: Path) -> None:
    arrays = raw_arrays()
    arrays["x_text"] = np.array(["short"] * 3 + ["x" * 40] + ["short"] * (N - 4))
    path = _write(tmp_path / "long.npz", arrays)
    with pytest.raises(UploadError, match="sample 3 has 40 characters") as info:
        validate_npz(path, limits=Limits(max_text_chars=30))
    assert info.value.field == "x_text"
    assert validate_npz(path, limits=Limits(max_text_chars=40))["num_samples"] == N
    arrays["x_text"] = np.array(["a"] * (N - 1) + ["b" * (Limits().max_text_chars + 1)])
    with pytest.raises(DatasetError, match="over the limit of 100000") as lib:
        load_npz(_write(tmp_path / "longer.npz", arrays))  # the library: the default limit
    assert lib.value.field == "x_text"


@pytest.mark.parametrize("modality", ["text", "voice"])
def test_a_model_without_a_pretrained_backbone_refuses_raw_text_and_audio(
    tmp_path: Path, modality: str
) -> None:
    arrays = {k: v for k, v in raw_arrays().items() if k in ("y", "split", "x_photo")}
    arrays |= {k: v for k, v in raw_arrays().items() if k.endswith(modality)}
    data = load_npz(_write(tmp_path / "raw.npz", arrays))
    with pytest.raises(KnobError, match=rf"backbones\.{modality}\.encoder=pretrained") as info:
        build_model(TrainConfig(), data.spec(), "vanilla")
    assert info.value.field == f"backbones.{modality}.encoder"
    images = {k: v for k, v in raw_arrays().items() if k in ("y", "split", "x_photo", "x_scan")}
    model = build_model(
        TrainConfig(encoder="cnn"), load_npz(_write(tmp_path / "i.npz", images)).spec(), "vanilla"
    )
    assert set(model.modalities) == {"photo", "scan"}


def test_the_cli_answers_raw_datasets_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_write(tmp_path / "raw.npz", raw_arrays()))
    out = str(tmp_path / "run")
    assert main(["train", path, "--method", "vanilla", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synib train: error: backbones.text.encoder: modality 'text' holds raw")
    assert len(err.strip().splitlines()) == 1
    assert main(["data", "pid", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synib data pid: error: x_text: holds raw text")
    assert len(err.strip().splitlines()) == 1

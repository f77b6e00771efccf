"""Model bundles: save, load (directory and zip), predict, and clear errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from synib_core.checkpoint import BundleError, PredictInputError, load, save_bundle
from synib_core.config import TrainConfig
from synib_core.data import MultimodalData
from synib_core.metrics import temperature_probs
from synib_core.training import FitResult, fit
from synib_core.training.evaluate import predict_logits, predict_probs
from synib_core.training.tensors import split_tensors

torch.set_num_threads(1)


def tiny_data(shape_b: tuple[int, ...] = (6,), num_classes: int = 3) -> MultimodalData:
    rng = np.random.default_rng(0)
    n = (48, 24, 30)
    total = sum(n)
    return MultimodalData(
        x={
            "a": rng.normal(size=(total, 5)).astype(np.float32),
            "b": rng.normal(size=(total, *shape_b)).astype(np.float32),
        },
        y=rng.integers(0, num_classes, size=total),
        split=np.repeat(np.arange(3, dtype=np.int8), n),
        group=None,
        oracle={},
        lengths={"b": rng.integers(1, shape_b[0] + 1, size=total)} if len(shape_b) == 2 else {},
        num_classes=num_classes,
        fingerprint="f" * 64,
    )


@pytest.fixture(scope="module")
def trained() -> tuple[FitResult, MultimodalData]:
    data = tiny_data()
    cfg = TrainConfig(hidden=8, fusion_hidden=8, epochs=2, batch_size=16, lam=2.0)
    return fit(cfg, data, method="synib", seed=0), data


@pytest.mark.parametrize("name", ["bundle", "bundle.zip"])
def test_round_trip_predicts_like_the_in_memory_model(
    trained: tuple[FitResult, MultimodalData], tmp_path: Path, name: str
) -> None:
    result, data = trained
    path = result.save(tmp_path / name, extra={"trial_key": "synib|seed=0"})
    loaded = load(path)
    test = data.subset("test")
    probs = loaded.predict_proba(test.x)
    np.testing.assert_array_equal(probs, result.test_probs)
    np.testing.assert_array_equal(loaded.predict(test.x), result.test_pred)
    assert loaded.method == "synib" and loaded.config == result.config
    assert loaded.metrics == pytest.approx(result.metrics)
    assert loaded.dataset_fingerprint == "f" * 64
    assert loaded.extra == {"trial_key": "synib|seed=0"}
    assert loaded.modalities == ("a", "b") and not loaded.model.training


def test_sequence_model_round_trip_with_lengths(tmp_path: Path) -> None:
    data = tiny_data(shape_b=(4, 3), num_classes=2)
    cfg = TrainConfig(encoder="gru", hidden=8, fusion_hidden=8, epochs=1, batch_size=16)
    # the gru encoder needs sequences: give modality a a length-1 sequence shape too
    data.x["a"] = data.x["a"].reshape(-1, 1, 5)
    result = fit(cfg, data, method="vanilla", seed=0)
    test = data.subset("test")
    loaded = load(result.save(tmp_path / "seq"))
    np.testing.assert_array_equal(loaded.predict_proba(test.x, test.lengths), result.test_probs)
    split = split_tensors(data, "test", torch.device("cpu"))
    in_memory = temperature_probs(predict_logits(result.model, split), result.temperature)
    np.testing.assert_array_equal(in_memory, result.test_probs)
    raw = predict_probs(result.model, split)  # uncalibrated: the same argmax
    np.testing.assert_array_equal(raw.argmax(axis=1), result.test_pred)
    with pytest.raises(PredictInputError, match=r"lengths\['b'\]"):
        loaded.predict(test.x, {"b": np.full(len(test), 9)})


def test_zip_with_a_top_folder_loads(
    trained: tuple[FitResult, MultimodalData], tmp_path: Path
) -> None:
    result, data = trained
    folder = result.save(tmp_path / "model")
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"model/{f.name}")
    x = data.subset("test").x
    np.testing.assert_array_equal(load(archive).predict(x), result.test_pred)


def test_bad_inputs_are_named(trained: tuple[FitResult, MultimodalData], tmp_path: Path) -> None:
    result, data = trained
    loaded = load(result.save(tmp_path / "b"))
    x = data.subset("test").x
    with pytest.raises(PredictInputError, match="missing \\['b'\\]"):
        loaded.predict({"a": x["a"]})
    with pytest.raises(PredictInputError, match="unknown \\['c'\\]"):
        loaded.predict({**x, "c": x["a"]})
    with pytest.raises(
        PredictInputError, match=r"x\['b'\]: expected shape \(N, 6\), got \(30, 5\)"
    ):
        loaded.predict({"a": x["a"], "b": x["a"]})
    with pytest.raises(PredictInputError, match="NaN"):
        loaded.predict({"a": np.full_like(x["a"], np.nan), "b": x["b"]})
    with pytest.raises(PredictInputError, match="different numbers of samples"):
        loaded.predict({"a": x["a"][:3], "b": x["b"]})
    with pytest.raises(PredictInputError, match="numbers"):
        loaded.predict({"a": x["a"].astype(str), "b": x["b"]})


def test_broken_bundles_raise_bundle_error(
    trained: tuple[FitResult, MultimodalData], tmp_path: Path
) -> None:
    result, _ = trained
    with pytest.raises(BundleError, match="no such"):
        load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="missing"):
        load(tmp_path / "empty")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="zip"):
        load(tmp_path / "junk.zip")
    path = save_bundle(
        tmp_path / "corrupt", result.model, result.config, "synib", result.spec, {}, "x"
    )
    weights = path / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="checksum"):
        load(path)
    path = save_bundle(
        tmp_path / "newer", result.model, result.config, "synib", result.spec, {}, "x"
    )
    manifest = json.loads((path / "bundle.json").read_text())
    manifest["format_version"] = 99
    (path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="newer"):
        load(path)

"""A bundle with pretrained encoders predicts from raw inputs (``synib_core.raw_inputs``): the
frozen encoder is referenced by name and fingerprint, resolved on this machine, and must be the
same model; a fine-tuned one gets the model's own preprocessing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from synib_core.backbones import EncoderChoice, extract_features, load_pretrained
from synib_core.checkpoint import PredictInputError, load
from synib_core.config import TrainConfig
from synib_core.data import MultimodalData
from synib_core.training import fit
from synib_spec.model_registry import packaged_models

MINILM = next(m for m in packaged_models() if m.name == "all-minilm-l6-v2")
GOOD = ["a wonderful film", "I loved it", "great acting", "what a delight", "superb plot"]
BAD = ["a dreadful film", "I hated it", "awful acting", "what a bore", "terrible plot"]


def _texts(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    texts = np.array([str(rng.choice(GOOD if label else BAD)) for label in y])
    return texts, y.astype(np.int64)


@pytest.fixture(scope="module")
def frozen_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vanilla model on MiniLM features of `text` (frozen, mean) beside a noise vector, saved."""
    rng = np.random.default_rng(0)
    texts, y = _texts(60, rng)
    feats = extract_features(load_pretrained(MINILM), texts, pooling="mean")
    data = MultimodalData(
        x={"text": feats, "v": rng.normal(size=(60, 3)).astype(np.float32)},
        y=y,
        split=np.array([0] * 40 + [1] * 10 + [2] * 10, dtype=np.int8),
        group=None,
        oracle={},
        lengths={},
        num_classes=2,
        fingerprint="raw-predict-test",
    )
    choice = EncoderChoice("pretrained", model=MINILM, train="frozen", pooling="mean")
    config = TrainConfig(epochs=30, hidden=16, batch_size=16, lr=1e-2)
    result = fit(config, data, method="vanilla", seed=0, backbones={"text": choice})
    return result.save(tmp_path_factory.mktemp("bundle") / "model.zip")


def test_raw_text_predicts_as_its_features_do(frozen_bundle: Path) -> None:
    model = load(frozen_bundle)
    texts, y = _texts(20, np.random.default_rng(1))
    v = np.zeros((20, 3), dtype=np.float32)
    feats = extract_features(load_pretrained(MINILM), texts, pooling="mean")
    from_raw = model.predict_proba({"text": texts, "v": v})
    from_features = model.predict_proba({"text": feats, "v": v})
    np.testing.assert_allclose(from_raw, from_features, atol=1e-5)
    assert (from_raw.argmax(1) == y).mean() >= 0.9  # the sentiment words are read
    encoder = model.raw_encoders[("text", "None")]
    model.predict({"text": texts[:2], "v": v[:2]})
    assert model.raw_encoders == {("text", "None"): encoder}  # loaded once, reused


def test_a_different_installed_model_is_refused(frozen_bundle: Path) -> None:
    model = load(frozen_bundle)
    choice = model.model.backbones["text"]
    assert choice.model is not None and choice.model.fingerprint == MINILM.fingerprint
    model.model.backbones["text"] = replace(
        choice, model=replace(choice.model, fingerprint="0" * 64)
    )
    with pytest.raises(PredictInputError, match="is not the one the bundle was trained with"):
        model.predict({"text": np.array(["fine"]), "v": np.zeros((1, 3), np.float32)})
    model.model.backbones["text"] = replace(choice, model=replace(choice.model, name="gone"))
    with pytest.raises(PredictInputError, match=r"'gone' .* is not installed here"):
        model.predict({"text": np.array(["fine"]), "v": np.zeros((1, 3), np.float32)})


def test_uint8_images_of_a_trained_encoder_are_read_as_the_loader_reads_them() -> None:
    from synib_core.raw_inputs import encode_raw_inputs

    images = np.arange(2 * 4 * 3 * 3, dtype=np.uint8).reshape(2, 4, 3, 3)  # (N, H, W, C)
    x, lengths = encode_raw_inputs(
        {"img": EncoderChoice("cnn")}, {"img": (3, 4, 3)}, {"img": images, "v": np.ones((2, 1))}
    )
    assert x["img"].shape == (2, 3, 4, 3) and x["img"].dtype == np.float32
    assert x["img"][1, 2, 3, 1] == pytest.approx(images[1, 3, 1, 2] / 255)  # (N, C, H, W)
    assert x["v"].shape == (2, 1) and lengths == {}

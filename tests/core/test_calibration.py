"""Temperature scaling: the fit against hand-computed optima, invariance of every argmax metric,
and the temperature travelling with the model bundle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from synib_core import load
from synib_core.config import TrainConfig
from synib_core.data import make_dataset
from synib_core.metrics import fit_temperature, scaled_nll, temperature_probs
from synib_core.training import fit, train_references
from synib_core.training.evaluate import predict_logits
from synib_core.training.evaluate import test_metrics as evaluate_test
from synib_core.training.tensors import split_tensors

torch.set_num_threads(1)


def test_binary_one_logit_optimum_by_hand() -> None:
    # every logit 2, three of four labels 1: the optimum has sigmoid(2 / T) = 3/4 -> T = 2 / ln 3
    t = fit_temperature(np.full((4, 1), 2.0), np.array([1, 1, 1, 0]))
    assert t == pytest.approx(2 / math.log(3), rel=1e-5)
    # NLL at T by hand: -(3 log 3/4 + log 1/4) / 4
    assert scaled_nll(np.full((4, 1), 2.0), np.array([1, 1, 1, 0]), t) == pytest.approx(
        -(3 * math.log(0.75) + math.log(0.25)) / 4, rel=1e-6
    )


def test_multiclass_optimum_by_hand() -> None:
    # K = 3, logits (4, 0, 0), 4 of 5 labels right: the top probability must be 4/5, i.e.
    # e^(4/T) / (e^(4/T) + 2) = 0.8 -> e^(4/T) = 8 -> T = 4 / ln 8
    logits = np.tile([4.0, 0.0, 0.0], (5, 1))
    y = np.array([0, 0, 0, 0, 1])
    assert fit_temperature(logits, y) == pytest.approx(4 / math.log(8), rel=1e-5)
    probs = temperature_probs(logits, 4 / math.log(8))
    np.testing.assert_allclose(probs[0], [0.8, 0.1, 0.1], rtol=1e-5)


def test_overconfident_and_underconfident_models_move_the_right_way() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    margin = np.where(rng.random(2000) < 0.8, 1.0, -1.0) * (2 * y - 1)  # 80 % right
    assert fit_temperature(10 * margin[:, None], y) > 1  # too confident: soften
    assert fit_temperature(0.1 * margin[:, None], y) < 1  # too timid: sharpen
    assert fit_temperature(np.zeros((3, 2)), np.array([0, 1, 0])) > 0


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(np.zeros((3,)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="temperature"):
        scaled_nll(np.zeros((2, 2)), np.array([0, 1]), 0.0)
    with pytest.raises(ValueError, match="y"):
        fit_temperature(np.zeros((0, 2)), np.array([], dtype=int))


def test_temperature_keeps_every_argmax_metric(tmp_path: Path) -> None:
    data = make_dataset("xor_pid", 0, n_train=300, n_val=100, n_test=400)
    cfg = TrainConfig(hidden=16, fusion_hidden=16, epochs=3, lam=1.0)
    refs = train_references(cfg, data, seed=0)
    result = fit(cfg, data, method="synib", seed=0, references=refs)
    t = result.metrics["temperature"]
    assert t == result.temperature and t != pytest.approx(1.0)
    test = split_tensors(data, "test", torch.device("cpu"))
    raw, _ = evaluate_test(result.model, test, refs, 1.0)
    for key, value in raw.items():
        if key.startswith("test_ece") or key == "temperature":
            continue
        assert result.metrics[key] == value, key  # accuracies, synergy groups, cf_conf
    assert result.metrics["test_ece_uncalibrated"] == raw["test_ece"]
    logits = predict_logits(result.model, test)
    np.testing.assert_array_equal(result.test_probs, temperature_probs(logits, t))
    np.testing.assert_array_equal(result.test_pred, temperature_probs(logits, 1.0).argmax(1))
    loaded = load(result.save(tmp_path / "bundle"))
    assert loaded.temperature == t
    x = {m: np.asarray(v) for m, v in data.subset("test").x.items()}
    np.testing.assert_array_equal(loaded.predict_proba(x), result.test_probs)

"""Built-in dataset generators: docs/METHOD.md structure, seeding, parameter errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from synib_core.data import (
    GENERATORS,
    DatasetError,
    GeneratorParamError,
    MultimodalData,
    load_npz,
    make_dataset,
    save_npz,
)


def test_registry_names() -> None:
    assert set(GENERATORS) == {
        "xor_spurious",
        "xor_pid",
        "digits_pairs",
        "speech_irony",
        "digit_speech",
    }


def test_xor_spurious_structure_and_shortcut() -> None:
    data = GENERATORS["xor_spurious"](seed=1, alpha=1.0, n_test=2000)
    assert data.split_sizes() == {"train": 300, "val": 300, "test": 2000}
    assert data.x["a"].shape == (2600, 64) and data.x["b"].dtype == np.float32
    np.testing.assert_array_equal(data.oracle["a"], [0, 1, 2, 3])
    bits = {m: (data.x[m][:, :4].mean(axis=1) > 0).astype(int) for m in ("a", "b")}
    assert np.mean((bits["a"] ^ bits["b"]) == data.y) > 0.99  # y = b0 XOR b1
    sign = 2 * data.y - 1
    shortcut = data.x["a"][:, 4:10].mean(axis=1)
    for sid in (0, 1):  # alpha = 1: the shortcut is exactly 1.3 * (2y - 1) in train and val
        rows = data.split == sid
        np.testing.assert_allclose(shortcut[rows], 1.3 * sign[rows], atol=1e-5)
    test = data.split == 2
    assert abs(np.corrcoef(shortcut[test], sign[test])[0, 1]) < 0.1  # noise at test
    assert abs(np.corrcoef(data.x["b"][:, 4:10].mean(axis=1), sign)[0, 1]) < 0.1
    assert data.group is not None and set(data.group.tolist()) == {"synergy"}


def test_xor_spurious_alpha_zero_has_no_shortcut() -> None:
    data = GENERATORS["xor_spurious"](seed=0, alpha=0.0, n_test=10)
    train = data.split == 0
    corr = np.corrcoef(data.x["a"][train, 4:10].mean(axis=1), 2 * data.y[train] - 1)[0, 1]
    assert abs(corr) < 0.2


def test_generators_are_seeded() -> None:
    a = GENERATORS["xor_pid"](seed=5)
    b = GENERATORS["xor_pid"](seed=5)
    c = GENERATORS["xor_pid"](seed=6)
    np.testing.assert_array_equal(a.x["a"], b.x["a"])
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert not np.array_equal(a.x["a"], c.x["a"])


def test_xor_pid_structure() -> None:
    data = GENERATORS["xor_pid"](seed=0)
    assert data.split_sizes() == {"train": 1800, "val": 200, "test": 4000}
    assert data.spec().shapes == {"a": (32,), "b": (32,)}
    train = data.split == 0
    np.testing.assert_allclose(data.x["a"][train].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x["a"][train].std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(data.oracle["b"], np.arange(12, 18))
    assert data.group is not None
    shares = {g: float(np.mean(data.group == g)) for g in ("unique_a", "redundant", "synergy")}
    assert abs(shares["unique_a"] - 0.45) < 0.03 and abs(shares["synergy"] - 0.10) < 0.02
    assert "unique_b" not in set(data.group.tolist())  # pU_b = 0 by default


def _lr_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    model = LogisticRegression(max_iter=500).fit(x[train], y[train])
    return float(model.score(x[~train], y[~train]))


def test_xor_pid_synergy_needs_both_modalities() -> None:
    data = GENERATORS["xor_pid"](seed=0, p="0,0,0,1", n_train=1500, n_test=1500)
    assert data.group is not None and set(data.group.tolist()) == {"synergy"}
    train = data.split == 0
    block = slice(12, 18)
    for m in ("a", "b"):  # one modality's synergy block alone: chance
        assert _lr_accuracy(data.x[m][:, block], data.y, train) < 0.58
    # both bits recovered from each modality's block -> XOR gives the label
    bits = {}
    for m in ("a", "b"):
        u, _, _ = np.linalg.svd(
            data.x[m][:, block] - data.x[m][:, block].mean(0), full_matrices=False
        )
        bits[m] = (u[:, 0] > 0).astype(int)
    xor_acc = np.mean((bits["a"] ^ bits["b"]) == data.y)
    assert max(xor_acc, 1 - xor_acc) > 0.95


def test_unique_source_is_predictable_from_its_modality() -> None:
    data = GENERATORS["xor_pid"](seed=0, p=(1.0, 0.0, 0.0, 0.0), n_train=600, n_test=600)
    train = data.split == 0
    assert _lr_accuracy(data.x["a"], data.y, train) > 0.95
    assert _lr_accuracy(data.x["b"], data.y, train) < 0.6


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("xor_spurious", {"alpha": -1}, "alpha"),
        ("xor_spurious", {"n_train": "ten"}, "n_train"),
        ("xor_spurious", {"n_test": 2.5}, "n_test"),
        ("xor_spurious", {"beta": 1}, "beta"),
        ("xor_pid", {"p": "0.5,0.5"}, "p"),
        ("xor_pid", {"p": (0.5, 0.5, 0.5, 0.5)}, "p"),
        ("digits_pairs", {"layout": "square"}, "layout"),
        ("digits_pairs", {"synergy_rate": 1.0}, "synergy_rate"),
        ("xor_pid", {}, None),
    ],
)
def test_bad_params_name_the_param(name: str, params: dict, field: str | None) -> None:
    if field is None:
        with pytest.raises(DatasetError) as info:
            GENERATORS[name](seed=-1)
        assert info.value.field == "seed"
        return
    with pytest.raises(GeneratorParamError) as info:
        GENERATORS[name](seed=0, **params)
    assert info.value.field == field
    assert "allowed" in info.value.reason
    assert str(info.value).startswith(f"generator parameter {field!r}")
    assert isinstance(info.value, DatasetError)


def test_unknown_generator_and_string_params() -> None:
    with pytest.raises(DatasetError, match="xor_pid"):
        make_dataset("mnist")
    data = make_dataset("xor_spurious", 0, alpha="0.5", n_train="20", n_val="10", n_test="10")
    assert data.split_sizes() == {"train": 20, "val": 10, "test": 10}


def test_generated_data_round_trips_through_npz(tmp_path: Path) -> None:
    data = GENERATORS["xor_pid"](seed=0, n_test=100)
    save_npz(data, tmp_path / "pid.npz")
    again = load_npz(tmp_path / "pid.npz")
    np.testing.assert_array_equal(again.x["b"], data.x["b"])
    assert again.group is not None and data.group is not None
    np.testing.assert_array_equal(again.group, data.group)
    np.testing.assert_array_equal(again.oracle["a"], data.oracle["a"])


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):  # the machine is small and shared: no oversubscription
        yield


@pytest.fixture(scope="module")
def digits() -> MultimodalData:
    return GENERATORS["digits_pairs"](seed=0, n_train=2000, n_val=10, n_test=1000)


def test_digits_pairs_structure(digits: MultimodalData) -> None:
    assert digits.num_classes == 11 and digits.x["a"].shape == (3010, 64)
    assert digits.group is not None
    is_syn = digits.group == "synergy"
    np.testing.assert_array_equal(is_syn, digits.y == 10)
    assert abs(is_syn.mean() - 0.2) < 0.01
    assert float(digits.x["b"].max()) <= 1.0
    # the label of a non-synergy sample is view a's digit; view b has the same parity
    assert set(digits.group.tolist()) == {"synergy", "unique_a"}
    images = GENERATORS["digits_pairs"](seed=0, n_train=5, n_val=5, n_test=5, layout="image")
    assert images.x["a"].shape == (15, 1, 8, 8)


def test_digits_pairs_no_view_alone_reveals_the_synergy_class(digits: MultimodalData) -> None:
    """Logistic regression on either view alone cannot spot class 10 on held-out data (AUC and
    recall at chance); the parity relation between the two views does (positive control)."""
    train, test = digits.split == 0, digits.split == 2
    is_syn = (digits.y == 10).astype(int)
    for m in ("a", "b"):
        x = digits.x[m]
        detector = LogisticRegression(max_iter=300, C=0.1).fit(x[train], is_syn[train])
        auc = roc_auc_score(is_syn[test], detector.predict_proba(x[test])[:, 1])
        assert 0.42 < auc < 0.58, (m, auc)
        full = LogisticRegression(max_iter=300).fit(x[train], digits.y[train])  # all 11 classes
        says_10 = full.predict(x[test]) == 10
        # class 10 is predicted as often for synergy samples as for the others: chance
        hit_rate, false_rate = says_10[is_syn[test] == 1].mean(), says_10[is_syn[test] == 0].mean()
        assert abs(hit_rate - false_rate) < 0.07, (m, hit_rate, false_rate)
    # positive control: digit parity is linearly readable from one image, and the two views'
    # parities disagreeing identifies the synergy class
    plain = train & (is_syn == 0)
    parity = LogisticRegression(max_iter=300).fit(digits.x["a"][plain], digits.y[plain] % 2)
    p_a = parity.predict_proba(digits.x["a"][test])[:, 1]
    p_b = parity.predict_proba(digits.x["b"][test])[:, 1]
    disagree = p_a * (1 - p_b) + (1 - p_a) * p_b
    assert roc_auc_score(is_syn[test], disagree) > 0.75


def test_xor_spurious_val_alpha_draws_validation_like_the_test_split() -> None:
    data = GENERATORS["xor_spurious"](seed=2, alpha=1.0, n_test=50, val_alpha=0.0)
    sign = 2 * data.y - 1
    shortcut = data.x["a"][:, 4:10].mean(axis=1)
    train, val = data.split == 0, data.split == 1
    np.testing.assert_allclose(shortcut[train], 1.3 * sign[train], atol=1e-5)
    assert abs(np.corrcoef(shortcut[val], sign[val])[0, 1]) < 0.2  # noise, as at test
    default = GENERATORS["xor_spurious"](seed=2, alpha=1.0, n_test=50)  # -1: as alpha
    np.testing.assert_allclose(
        default.x["a"][default.split == 1, 4:10].mean(axis=1), 1.3 * sign[val], atol=1e-5
    )

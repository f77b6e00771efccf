"""``GET /jobs/{id}/metrics`` splices the stored metrics JSON: the text it builds must parse to
exactly the structure the endpoint promises, with NaN / Infinity answered as null."""

from __future__ import annotations

import json

from api.routes.trials import epoch_metrics_json, finite_json


def test_rows_are_grouped_by_trial_in_order() -> None:
    rows = [
        ("t1", 1, '{"val_acc": 0.5, "train_loss": 1.0}'),
        ("t1", 2, '{"val_acc": 0.75}'),
        ("t2", 1, "{}"),
    ]
    assert json.loads(epoch_metrics_json(rows)) == {
        "t1": [
            {"epoch": 1, "metrics": {"val_acc": 0.5, "train_loss": 1.0}},
            {"epoch": 2, "metrics": {"val_acc": 0.75}},
        ],
        "t2": [{"epoch": 1, "metrics": {}}],
    }


def test_no_rows_is_an_empty_object() -> None:
    assert epoch_metrics_json([]) == "{}"


def test_trial_ids_are_escaped() -> None:
    assert json.loads(epoch_metrics_json([('a"b', 1, "{}")])) == {
        'a"b': [{"epoch": 1, "metrics": {}}]
    }


def test_non_finite_values_become_null() -> None:
    text = '{"synergy_acc": NaN, "a": Infinity, "b": -Infinity, "val_acc": 0.5}'
    assert json.loads(finite_json(text)) == {
        "synergy_acc": None, "a": None, "b": None, "val_acc": 0.5,
    }  # fmt: skip
    finite = '{"val_acc": 0.5}'
    assert finite_json(finite) is finite  # the common case is passed through untouched

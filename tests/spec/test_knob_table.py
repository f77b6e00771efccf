"""The knob table: typing (strict JSON, lenient text), bounds, rules between knobs per method,
and the JSON the API serves."""

from __future__ import annotations

import json

import pytest

from synib_spec.knobs import (
    INT_MAX,
    KNOBS,
    KNOBS_LIST,
    METHODS,
    KnobError,
    check_rules,
    knob_table,
    markdown_table,
    method_reads,
    parse_knob,
    parse_knobs,
)


def test_every_knob_default_is_valid_and_names_are_unique() -> None:
    assert len(KNOBS) == len(KNOBS_LIST)
    for knob in KNOBS_LIST:
        assert parse_knob(knob.name, knob.default, strict=True) == knob.default
        assert knob.methods is None or set(knob.methods) <= set(METHODS), knob.name


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("lr", "1e-3", 1e-3),
        ("hidden", "64", 64),
        ("hidden", "64.0", 64),
        ("mask_hard", "Yes", True),
        ("amp", "0", False),
        ("lambda", "10", 10.0),
        ("mask", " full ", "full"),
    ],
)
def test_text_values_are_parsed_for_the_cli(name: str, text: str, expected: object) -> None:
    value = parse_knob(name, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", "5"), ("epochs", True), ("lr", "1e-3"), ("mask_hard", 1), ("seed", 0)],
)
def test_json_values_are_strictly_typed(name: str, value: object) -> None:
    with pytest.raises(KnobError) as info:
        parse_knob(name, value, strict=True)
    assert info.value.field == name


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("lr", 0, "> 0"),
        ("hidden", 1.5, "an integer >= 1"),
        ("hidden", INT_MAX + 1, f"<= {INT_MAX}"),
        ("hidden", 10**400, "an integer"),
        ("dropout", 1, "< 1"),
        ("weight_decay", float("nan"), ">= 0"),
        ("mask", "everything", "'random', 'full', 'oracle', 'learned'"),
        ("modality_weights", "a=1,b", "name=w"),
        ("modality_weights", "a=-1", ">= 0"),
        ("lamda", 1.0, "unknown knob"),
    ],
)
def test_bad_values_name_the_knob_and_what_is_allowed(
    name: str, value: object, fragment: str
) -> None:
    with pytest.raises(KnobError) as info:
        parse_knob(name, value)
    assert info.value.field == name and fragment in str(info.value)


def test_which_method_reads_which_knob() -> None:
    assert method_reads("synib", "lambda") and not method_reads("vanilla", "lambda")
    assert method_reads("vanilla", "lr") and method_reads("ensemble", "hidden")
    assert method_reads("ogm_ge", "ogm_alpha") and not method_reads("synib", "ogm_alpha")
    assert not method_reads("masking_only", "penalty") and method_reads("masking_only", "mask")
    assert not method_reads("ensemble", "w_uni") and not method_reads("mmpareto", "uni_detach")


def test_rules_apply_only_to_methods_that_read_their_knobs() -> None:
    values = {"mask_level": "feature", "feature_norm": "none"}
    error = check_rules("synib", values)
    assert error is not None and error.field == "feature_norm" and "mask_level" in error.reason
    assert check_rules("vanilla", values) is None  # vanilla never masks
    assert check_rules("synib", {"feature_norm": "none", "mask_level": "input"}) is None
    learned = check_rules("masking_only", {"mask": "learned"})
    assert learned is not None and learned.field == "w_uni"
    assert check_rules("masking_only", {"penalty": "anchor"}) is None  # it has no penalty
    assert check_rules("synib", {"mask": "learned", "w_uni": 0.5}) is None


def test_parse_knobs_names_the_first_bad_knob() -> None:
    assert parse_knobs({"lambda": 3, "mask": "full"}, strict=True) == {
        "lambda": 3.0,
        "mask": "full",
    }
    with pytest.raises(KnobError, match="expected a mapping"):
        parse_knobs(["lambda"])  # type: ignore[arg-type]


def test_the_table_as_json_and_markdown() -> None:
    table = json.loads(json.dumps(knob_table()))
    names = [k["name"] for k in table["knobs"]]
    assert names == [k.name for k in KNOBS_LIST]
    lam = next(k for k in table["knobs"] if k["name"] == "lambda")
    assert lam["methods"] == ["synib", "masking_only"] and lam["min"] == 0.0
    assert [m["name"] for m in table["methods"]] == list(METHODS)
    hidden = next(k for k in table["knobs"] if k["name"] == "hidden")
    assert hidden["max"] == INT_MAX and hidden["allowed"] == "an integer >= 1"
    markdown = markdown_table()
    assert markdown.count("\n") == len(KNOBS_LIST) + 2 and "| `lambda` | float | 1.0 |" in markdown

"""Rules between knobs, applied only to the methods that read every knob of the rule.

``TrainConfig`` checks single values; whether two knobs fit together depends on the method:
``vanilla`` never masks, so a rule between ``mask_level`` and ``feature_norm`` says nothing
about it (``synib train --method vanilla --set feature_norm=none`` is a valid run). A rule
applies to a method when the method reads all of the rule's knobs (``SHARED_KNOBS`` +
``METHOD_KNOBS``). Errors refuse the run; warnings let it run and say what was measured.
torch-free: the API can import it.

Example:
    >>> check_rules("vanilla", {"feature_norm": "none"})
    []
    >>> [v.knob for v in check_rules("synib", {"feature_norm": "none", "mask_level": "feature"})]
    ['feature_norm']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synib_core.config import KNOBS, METHOD_KNOBS, SHARED_KNOBS, KnobError

__all__ = [
    "RULES",
    "KnobRule",
    "RuleViolation",
    "check_rules",
    "enforce_rules",
    "method_reads",
    "resolve_feature_norm",
]


def method_reads(method: str, knob: str) -> bool:
    """True when ``method`` reads ``knob`` (a shared knob, or one of its METHOD_KNOBS)."""
    return knob in SHARED_KNOBS or knob in METHOD_KNOBS.get(method, ())


def resolve_feature_norm(knobs: Mapping[str, Any]) -> str:
    """The LayerNorm actually used: ``auto`` (proposed default) -> ``layernorm`` for feature-level
    masks, ``none`` for input-level ones (docs/METHOD.md sections 2 and 3)."""
    norm = str(knobs.get("feature_norm", KNOBS["feature_norm"].default))
    if norm != "auto":
        return norm
    level = str(knobs.get("mask_level", KNOBS["mask_level"].default))
    return "layernorm" if level == "feature" else "none"


@dataclass(frozen=True)
class RuleViolation:
    """``knob`` is the one to change; ``severity`` "error" (refused) or "warning"."""

    knob: str
    severity: str
    message: str


@dataclass(frozen=True)
class KnobRule:
    knobs: tuple[str, ...]  # the rule applies to methods reading all of them
    severity: str
    knob: str  # the knob the message asks to change
    broken: Callable[[Mapping[str, Any]], bool]
    message: str


def _get(knobs: Mapping[str, Any], name: str) -> Any:
    field = "lam" if name == "lambda" else name
    if name in knobs:
        return knobs[name]
    return knobs.get(field, KNOBS[name].default)


RULES: tuple[KnobRule, ...] = (
    KnobRule(
        ("mask_level", "feature_norm"),
        "error",
        "feature_norm",
        lambda k: _get(k, "mask_level") == "feature" and resolve_feature_norm(k) == "none",
        "mask_level='feature' corrupts LayerNorm-normalised features: use feature_norm="
        "'layernorm' (or 'auto'), or mask_level='input'",
    ),
    KnobRule(
        ("mask_level", "feature_norm"),
        "warning",
        "feature_norm",
        lambda k: _get(k, "mask_level") == "input" and resolve_feature_norm(k) == "layernorm",
        "mask_level='input' with feature_norm='layernorm' lets the encoder make corrupted inputs "
        "recognisable, so the penalty can be met without using both modalities (it lost 9 to 17 "
        "synergy points on real data; docs/METHOD.md section 2): use feature_norm='none' (or "
        "'auto') and a lambda sweep that includes 0",
    ),
    KnobRule(
        ("mask", "mask_level", "encoder"),
        "error",
        "mask_level",
        lambda k: (
            _get(k, "mask") == "oracle"
            and _get(k, "mask_level") == "feature"
            and _get(k, "encoder") != "identity"
        ),
        "mask='oracle' corrupts the dataset's oracle INPUT coordinates: use mask_level='input' "
        "(at 'feature' they would index encoder features, meaningful only with encoder='identity')",
    ),
    KnobRule(
        ("mask", "w_uni"),
        "error",
        "w_uni",
        lambda k: _get(k, "mask") == "learned" and float(_get(k, "w_uni")) <= 0,
        "mask='learned' needs unimodal heads: set w_uni > 0",
    ),
    KnobRule(
        ("penalty", "w_uni"),
        "error",
        "w_uni",
        lambda k: _get(k, "penalty") == "anchor" and float(_get(k, "w_uni")) <= 0,
        "penalty='anchor' needs unimodal heads: set w_uni > 0",
    ),
)


def check_rules(method: str, knobs: Mapping[str, Any]) -> list[RuleViolation]:
    """Every rule that ``knobs`` (knob or TrainConfig field names; missing ones take their
    defaults) break for ``method``, errors first."""
    out = [
        RuleViolation(rule.knob, rule.severity, rule.message)
        for rule in RULES
        if all(method_reads(method, k) for k in rule.knobs) and rule.broken(knobs)
    ]
    return sorted(out, key=lambda v: v.severity != "error")


def enforce_rules(method: str, knobs: Mapping[str, Any]) -> None:
    """Raise KnobError for the first error of ``check_rules``; warn (UserWarning) the others."""
    violations = check_rules(method, knobs)
    for v in violations:
        if v.severity == "error":
            raise KnobError(v.knob, v.message)
    for v in violations:
        warnings.warn(f"{v.knob}: {v.message}", UserWarning, stacklevel=2)

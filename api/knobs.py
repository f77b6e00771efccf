"""Mirror of ``synib_core.config`` (KNOBS, METHODS, SHARED_KNOBS, METHOD_KNOBS) for the API.

The API must not import synib_core (it pulls torch), so the knob table is repeated here; a test
checks both tables are identical. Also: value validation for JobCreate and the trial count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class KnobValueError(ValueError):
    """A knob name or value a user gave is not allowed (``field`` names it)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Knob:
    """type: "int" | "float" | "str" | "bool"; bounds inclusive unless ``*_exclusive``."""

    name: str
    type: str
    default: Any
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False


_LIST: tuple[Knob, ...] = (
    Knob("encoder", "str", "mlp", choices=("mlp", "gru", "transformer", "cnn", "identity")),
    Knob("hidden", "int", 128, min=1),
    Knob("encoder_layers", "int", 2, min=1),
    Knob("fusion", "str", "concat_mlp", choices=("concat_mlp", "transformer")),
    Knob("fusion_hidden", "int", 128, min=1),
    Knob("fusion_layers", "int", 1, min=1),
    Knob("feature_norm", "str", "layernorm", choices=("layernorm", "none")),
    Knob("epochs", "int", 30, min=1),
    Knob("batch_size", "int", 64, min=1),
    Knob("lr", "float", 3e-4, min=0.0, min_exclusive=True),
    Knob("weight_decay", "float", 1e-5, min=0.0),
    Knob("optimizer", "str", "adam", choices=("adam", "adamw", "sgd")),
    Knob("lr_schedule", "str", "constant", choices=("constant", "cosine")),
    Knob("dropout", "float", 0.0, min=0.0, max=1.0, max_exclusive=True),
    Knob("patience", "int", 0, min=0),
    Knob("lambda", "float", 1.0, min=0.0),
    Knob("penalty", "str", "kl_uniform", choices=("kl_uniform", "kl_prior", "anchor", "logit_l2")),
    Knob("mask", "str", "random", choices=("random", "full", "oracle", "learned")),
    Knob("mask_prob", "float", 0.5, min=0.0, min_exclusive=True, max=1.0),
    Knob("mask_level", "str", "feature", choices=("feature", "input")),
    Knob("fill", "str", "swap", choices=("swap", "noise", "zeros", "ema")),
    Knob("noise_std", "float", 1.0, min=0.0, min_exclusive=True),
    Knob("mask_steps", "int", 20, min=1),
    Knob("mask_lr", "float", 0.1, min=0.0, min_exclusive=True),
    Knob("mask_sparsity", "float", 0.1, min=0.0),
    Knob("mask_tau", "float", 1.0, min=0.0, min_exclusive=True),
    Knob("mask_hard", "bool", False),
    Knob(
        "learned_direction", "str", "keep_unimodal", choices=("keep_unimodal", "destroy_unimodal")
    ),
    Knob("w_uni", "float", 0.0, min=0.0),
    Knob("uni_detach", "bool", False),
    Knob("warmup_epochs", "int", 0, min=0),
    Knob("modality_weights", "str", ""),
    Knob("modality_dropout_prob", "float", 0.3, min=0.0, max=1.0, max_exclusive=True),
    Knob("ogm_alpha", "float", 0.5, min=0.0),
    Knob("amp", "bool", False),
    Knob("device", "str", "auto", choices=("auto", "cpu", "cuda")),
)

KNOBS: dict[str, Knob] = {k.name: k for k in _LIST}

METHODS: tuple[str, ...] = (
    "vanilla",
    "synib",
    "masking_only",
    "modality_dropout",
    "ensemble",
    "ogm_ge",
    "mmpareto",
)

SHARED_KNOBS: tuple[str, ...] = (
    "encoder",
    "hidden",
    "encoder_layers",
    "fusion",
    "fusion_hidden",
    "fusion_layers",
    "feature_norm",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "lr_schedule",
    "dropout",
    "patience",
    "amp",
    "device",
)

_MASK_KNOBS: tuple[str, ...] = (
    "mask",
    "mask_prob",
    "mask_level",
    "fill",
    "noise_std",
    "mask_steps",
    "mask_lr",
    "mask_sparsity",
    "mask_tau",
    "mask_hard",
    "learned_direction",
)

METHOD_KNOBS: dict[str, tuple[str, ...]] = {
    "vanilla": ("w_uni", "uni_detach"),
    "synib": (
        "lambda",
        "penalty",
        *_MASK_KNOBS,
        "w_uni",
        "uni_detach",
        "warmup_epochs",
        "modality_weights",
    ),
    "masking_only": (
        "lambda",
        *_MASK_KNOBS,
        "w_uni",
        "uni_detach",
        "warmup_epochs",
        "modality_weights",
    ),
    "modality_dropout": ("modality_dropout_prob", "w_uni", "uni_detach"),
    "ensemble": (),
    "ogm_ge": ("ogm_alpha", "w_uni", "uni_detach"),
    "mmpareto": ("w_uni",),
}

INT_KNOB_MAX = 2**31 - 1
"""The API's ceiling for integer knobs without a maximum of their own (``hidden``, ``epochs``,
...): the library takes any size, but a value past it is a typo, not a model."""

CROSS_FIELD_KNOBS: tuple[str, ...] = ("mask_level", "feature_norm", "mask", "w_uni", "penalty")
"""The knobs of the rules between knobs (``check_cross_fields``)."""

_METHOD_SPECIFIC = frozenset(k for knobs in METHOD_KNOBS.values() for k in knobs)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def method_reads(method: str, knob: str) -> bool:
    """Whether ``method`` reads ``knob`` (shared knobs are read by every method)."""
    return knob not in _METHOD_SPECIFIC or knob in METHOD_KNOBS[method]


def _allowed(knob: Knob) -> str:
    if knob.choices is not None:
        return "one of " + ", ".join(repr(c) for c in knob.choices)
    if knob.type == "bool":
        return "true or false"
    if knob.name == "modality_weights":
        return "'' or 'name=w,name=w' with w >= 0"
    parts = []
    if knob.min is not None:
        parts.append(("> " if knob.min_exclusive else ">= ") + f"{knob.min:g}")
    if knob.max is not None:
        parts.append(("< " if knob.max_exclusive else "<= ") + f"{knob.max:g}")
    if knob.type == "int" and knob.max is None:
        parts.append(f"<= {INT_KNOB_MAX}")
    kind = "an integer" if knob.type == "int" else "a number"
    return f"{kind} " + " and ".join(parts)


def _coerce(knob: Knob, value: Any) -> Any:
    """Typed value (strings like "1e-3" or "true" accepted) or None when impossible."""
    if knob.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        return None
    if knob.type == "str":
        return value.strip() if isinstance(value, str) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:  # an integer beyond a float's range (hundreds of digits) is no number we take
        number = float(value)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    if knob.type == "int":
        return int(value) if number == int(value) else None
    return number


def _modality_weights_ok(text: str) -> bool:
    if not text.strip():
        return True
    names: set[str] = set()
    for item in text.split(","):
        name, sep, weight = item.partition("=")
        try:
            w = float(weight)
        except ValueError:
            return False
        if not sep or not name.strip() or name.strip() in names or not math.isfinite(w) or w < 0:
            return False
        names.add(name.strip())
    return True


def _in_bounds(knob: Knob, value: Any) -> bool:
    if knob.choices is not None and value not in knob.choices:
        return False
    if knob.name == "modality_weights":
        return _modality_weights_ok(value)
    if knob.min is not None and (value < knob.min or (knob.min_exclusive and value == knob.min)):
        return False
    if knob.type == "int" and knob.max is None and value > INT_KNOB_MAX:
        return False
    return knob.max is None or not (value > knob.max or (knob.max_exclusive and value == knob.max))


def validate_knob(name: str, value: Any, field: str | None = None) -> Any:
    """Typed, checked value of knob ``name``; raises KnobValueError naming ``field`` (default name)."""
    field = field or name
    knob = KNOBS.get(name)
    if knob is None:
        raise KnobValueError(field, f"unknown knob {name!r}")
    typed = _coerce(knob, value)
    if typed is None or not _in_bounds(knob, typed):
        raise KnobValueError(field, f"expected {_allowed(knob)}, got {value!r}")
    return typed


def validate_knobs(values: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Validate a {knob: value} mapping; errors name ``<field>.<knob>``."""
    return {k: validate_knob(k, v, f"{field}.{k}") for k, v in values.items()}


def count_trials(
    methods: list[str],
    sweep: Mapping[str, Mapping[str, Any]],
    num_samples: int,
    num_seeds: int,
) -> int:
    """Trials of a job: per method, the product of the grid/choice sizes of the swept knobs it
    reads, times ``num_samples`` if it reads a uniform/loguniform knob, times the seeds."""
    total = 0
    for method in methods:
        size = 1
        has_random = False
        for knob, entry in sweep.items():
            if not method_reads(method, knob):
                continue
            if entry["type"] in ("grid", "choice"):
                size *= len(entry["values"])
            else:
                has_random = True
        total += size * (num_samples if has_random else 1) * num_seeds
    return total


def check_cross_fields(values: Mapping[str, Any]) -> None:
    """The rules between knobs that ``synib_core.config.TrainConfig`` enforces (a test keeps the
    two in step), for one trial's typed knobs (unset ones take their defaults). Raises
    KnobValueError naming the knob the library names, with the library's reason."""
    v = {k: values.get(k, KNOBS[k].default) for k in CROSS_FIELD_KNOBS}
    if v["mask_level"] == "feature" and v["feature_norm"] == "none":
        raise KnobValueError(
            "feature_norm",
            "mask_level='feature' corrupts normalised features: use feature_norm='layernorm' "
            "or mask_level='input'",
        )
    if v["mask"] == "learned" and v["w_uni"] <= 0:
        raise KnobValueError("w_uni", "mask='learned' needs unimodal heads: set w_uni > 0")
    if v["penalty"] == "anchor" and v["w_uni"] <= 0:
        raise KnobValueError("w_uni", "penalty='anchor' needs unimodal heads: set w_uni > 0")

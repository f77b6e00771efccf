"""Every knob of an experiment, the methods, which knobs each method reads, and the rules between
knobs: the one table the library, the API, the worker, the CLI, the dashboard and the docs use.

Adding a knob is adding one ``Knob(...)`` line to ``KNOBS_LIST`` (the library's ``TrainConfig``
gets a field of that name, the API and the dashboard offer it, ``synib knobs`` lists it); the
code that reads it is the only other change.

Values arrive in two forms: JSON from the API (``strict=True``: a number must be a number, a
bool a bool) and text from the CLI (``--set lr=1e-3``, ``strict=False``: strings are parsed).

Example:
    >>> parse_knobs({"lambda": "10", "mask": "full"})
    {'lambda': 10.0, 'mask': 'full'}
    >>> check_rules("vanilla", {"mask_level": "feature", "feature_norm": "none"}) is None
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from synib_spec.errors import SpecError

__all__ = [
    "INT_MAX",
    "KNOBS",
    "KNOBS_LIST",
    "METHODS",
    "RULES",
    "Knob",
    "KnobError",
    "Method",
    "Rule",
    "broken_rules",
    "check_rules",
    "defaults",
    "knob_table",
    "method_reads",
    "parse_knob",
    "parse_knobs",
    "parse_modality_weights",
    "resolve",
    "resolve_feature_norm",
    "resolve_fill",
    "rule_warnings",
    "shown",
]

KnobType = Literal["int", "float", "str", "bool"]

INT_MAX = 2**31 - 1
"""Ceiling of every integer knob (a database integer): past it a value is a typo, not a model."""


class KnobError(SpecError):
    """A knob name or value that is not allowed (``field`` names the knob)."""

    @property
    def key(self) -> str:
        return self.field


@dataclass(frozen=True)
class Method:
    """A training method: ``name`` and one line saying what it does."""

    name: str
    help: str


METHODS_LIST: tuple[Method, ...] = (
    Method("vanilla", "cross-entropy on the fused prediction (SynIB with lambda = 0)"),
    Method("synib", "task loss + lambda * penalty on leave-one-modality-out counterfactuals"),
    Method("masking_only", "SynIB's counterfactuals as augmentation (CE instead of the penalty)"),
    Method("modality_dropout", "drop whole modalities at random during training"),
    Method("ensemble", "one unimodal model per modality; fused logits = their sum"),
    Method("ogm_ge", "on-the-fly gradient modulation with generalisation enhancement"),
    Method("mmpareto", "Pareto-weighted multimodal and unimodal gradients per encoder"),
    Method(
        "reconboost",
        "modalities take turns: each learner fits what the others miss "
        "(boosting), then a joint rectification of their sum",
    ),
    Method(
        "dnr",
        "diagnosing & re-learning: encoders whose features over-fit (train vs "
        "validation cluster purity) are softly re-initialised",
    ),
    Method(
        "mcr",
        "multimodal competition regulariser: each encoder maximises how much "
        "shuffling its own features changes the prediction",
    ),
    Method("agm", "adaptive gradient modulation of each modality's Shapley response"),
    Method(
        "mla",
        "alternating unimodal updates of a shared head (orthogonal projection), "
        "entropy-weighted fusion",
    ),
    Method(
        "pmr", "prototypical modal rebalance: prototype cross-entropy speeds up the slower modality"
    ),
)
METHODS: tuple[str, ...] = tuple(m.name for m in METHODS_LIST)

_MASKED = ("synib", "masking_only")
_HEADS = (
    "vanilla",
    "synib",
    "masking_only",
    "modality_dropout",
    "ogm_ge",
    "mmpareto",
    "dnr",
    "mcr",
)


@dataclass(frozen=True)
class Knob:
    """One knob. Bounds are inclusive unless ``*_exclusive``; ``choices`` lists allowed strings;
    ``methods`` names the methods that read it (None: every method); ``attr`` is the Python
    attribute when the knob's name is a keyword (``lambda`` -> ``lam``); ``check`` is an extra
    validator of a parsed value returning the reason it is bad, or None."""

    name: str
    type: KnobType
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    methods: tuple[str, ...] | None = None
    attr: str = ""
    check: Callable[[Any], str | None] | None = field(default=None, compare=False, repr=False)

    @property
    def attribute(self) -> str:
        return self.attr or self.name

    def allowed(self) -> str:
        """The allowed values in words (for error messages and the docs)."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type == "bool":
            return "true or false"
        if self.type == "str":
            return self.help
        parts = []
        if self.min is not None:
            parts.append(("> " if self.min_exclusive else ">= ") + f"{self.min:g}")
        if self.max is not None:
            parts.append(("< " if self.max_exclusive else "<= ") + f"{self.max:g}")
        kind = "an integer" if self.type == "int" else "a number"
        return f"{kind} " + " and ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The knob as ``GET /api/v1/knobs`` and ``synib knobs --json`` show it."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
            "group": self.group,
            "allowed": self.allowed(),
            "choices": list(self.choices) if self.choices is not None else None,
            "min": self.min,
            "max": self.max if self.max is not None else (INT_MAX if self.type == "int" else None),
            "min_exclusive": self.min_exclusive,
            "max_exclusive": self.max_exclusive,
            "methods": list(self.methods) if self.methods is not None else None,
        }


def parse_modality_weights(text: str) -> dict[str, float]:
    """``"audio=1,video=0.5"`` -> ``{"audio": 1.0, "video": 0.5}``; ``""`` -> ``{}``."""
    weights: dict[str, float] = {}
    for item in text.split(",") if text.strip() else []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise KnobError("modality_weights", f"{item!r} is not of the form name=w")
        try:
            w = float(value)
        except ValueError:
            raise KnobError("modality_weights", f"weight {value!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise KnobError("modality_weights", f"weight of {name!r} must be >= 0, got {value}")
        if name in weights:
            raise KnobError("modality_weights", f"modality {name!r} is given twice")
        weights[name] = w
    return weights


def _modality_weights_problem(text: str) -> str | None:
    try:
        parse_modality_weights(text)
    except KnobError as exc:
        return exc.reason
    return None


def _k(name: str, type_: KnobType, default: Any, help_: str, group: str, **kw: Any) -> Knob:
    return Knob(name=name, type=type_, default=default, help=help_, group=group, **kw)


def _mask(name: str, type_: KnobType, default: Any, help_: str, **kw: Any) -> Knob:
    """A knob of the counterfactual masks (read by the methods that mask)."""
    return _k(name, type_, default, help_, "mask", methods=_MASKED, **kw)


KNOBS_LIST: tuple[Knob, ...] = (
    # backbone
    _k("encoder", "str", "mlp", "per-modality encoder", "backbone",
       choices=("mlp", "gru", "transformer", "cnn", "identity")),
    _k("hidden", "int", 128, "encoder width (feature dimension H)", "backbone", min=1),
    _k("encoder_layers", "int", 2, "encoder depth", "backbone", min=1),
    _k("fusion", "str", "concat_mlp", "fusion head", "backbone",
       choices=("concat_mlp", "transformer")),
    _k("fusion_hidden", "int", 128, "fusion width", "backbone", min=1),
    _k("fusion_layers", "int", 1, "hidden layers of the fusion MLP / transformer layers",
       "backbone", min=1),
    _k("feature_norm", "str", "auto",
       "parameter-free LayerNorm on encoder outputs; auto = layernorm with feature-level masks, "
       "none with input-level masks (docs/METHOD.md section 2)",
       "backbone", choices=("auto", "layernorm", "none")),
    # training
    _k("epochs", "int", 30, "training epochs", "training", min=1),
    _k("batch_size", "int", 64, "mini-batch size", "training", min=1),
    _k("lr", "float", 3e-4, "learning rate", "training", min=0.0, min_exclusive=True),
    _k("weight_decay", "float", 1e-5, "weight decay", "training", min=0.0),
    _k("optimizer", "str", "adam", "optimiser", "training", choices=("adam", "adamw", "sgd")),
    _k("lr_schedule", "str", "constant", "learning-rate schedule", "training",
       choices=("constant", "cosine")),
    _k("dropout", "float", 0.0, "dropout probability", "training",
       min=0.0, max=1.0, max_exclusive=True),
    _k("patience", "int", 0, "early-stopping patience in epochs (0 = none)", "training", min=0),
    _k("grad_clip", "float", 0.0, "clip the gradient's global norm to this (0 = no clipping)",
       "training", min=0.0),
    # the SynIB objective
    _k("lambda", "float", 1.0, "SynIB penalty weight", "synib", min=0.0, attr="lam",
       methods=_MASKED),
    _k("penalty", "str", "kl_uniform", "SynIB penalty Omega", "synib",
       choices=("kl_uniform", "kl_prior", "anchor", "logit_l2"), methods=("synib",)),
    _k("warmup_epochs", "int", 0, "epochs of linear lambda warm-up", "synib", min=0,
       methods=_MASKED),
    _k("modality_weights", "str", "", "per-modality penalty weights: '' or 'name=w,name=w'",
       "synib", methods=_MASKED, check=_modality_weights_problem),
    # counterfactual masks
    _mask("mask", "str", "random", "counterfactual mask",
       choices=("random", "full", "oracle", "learned")),
    _mask("mask_prob", "float", 0.5, "corruption probability of the random mask",
       min=0.0, min_exclusive=True, max=1.0),
    _mask("mask_level", "str", "feature", "where to corrupt", choices=("feature", "input")),
    _mask("fill", "str", "auto",
          "what replaces a corrupted element; auto = swap with feature-level masks, noise with "
          "input-level masks (docs/METHOD.md section 3)",
          choices=("auto", "swap", "noise", "zeros", "ema")),
    _mask("noise_std", "float", 1.0, "std of the noise fill", min=0.0, min_exclusive=True),
    _mask("mask_steps", "int", 20, "inner Adam steps of the learned mask", min=1),
    _mask("mask_lr", "float", 0.1, "inner learning rate of the learned mask",
       min=0.0, min_exclusive=True),
    _mask("mask_sparsity", "float", 0.1, "sparsity weight of the learned mask", min=0.0),
    _mask("mask_tau", "float", 1.0, "temperature of the learned gate",
       min=0.0, min_exclusive=True),
    _mask("mask_hard", "bool", False, "hard-threshold the learned gate at 0.5"),
    _mask("learned_direction", "str", "keep_unimodal", "what the learned mask corrupts",
       choices=("keep_unimodal", "destroy_unimodal")),
    # unimodal heads and the baselines
    _k("w_uni", "float", 0.0, "weight of the unimodal-head CE losses", "baselines", min=0.0,
       methods=_HEADS),
    _k("uni_detach", "bool", False,
       "unimodal heads train on detached features (they then never shape the encoders)",
       "baselines",
       methods=("vanilla", "synib", "masking_only", "modality_dropout", "ogm_ge", "dnr", "mcr")),
    _k("modality_dropout_prob", "float", 0.3, "drop probability per modality", "baselines",
       min=0.0, max=1.0, max_exclusive=True, methods=("modality_dropout",)),
    _k("ogm_alpha", "float", 0.5, "OGM-GE modulation strength", "baselines", min=0.0,
       methods=("ogm_ge",)),
    _k("reconboost_stage_epochs", "int", 4, "epochs of each modality's boosting stage",
       "baselines", min=1, methods=("reconboost",)),
    _k("reconboost_rectify_epochs", "int", 4,
       "epochs of joint rectification (all learners, CE of their sum) after each stage",
       "baselines", min=0, methods=("reconboost",)),
    _k("reconboost_own_weight", "float", 5.0, "ReconBoost weight w1 of the learner's own CE",
       "baselines", min=0.0, min_exclusive=True, methods=("reconboost",)),
    _k("reconboost_others_weight", "float", 1.0,
       "ReconBoost weight w2 of the other learners' confidence (down-weights what they get "
       "right)",
       "baselines", min=0.0, methods=("reconboost",)),
    _k("dnr_alpha", "float", 3.0,
       "D&R re-initialisation strength: tanh(dnr_alpha * train-validation purity gap)",
       "baselines", min=0.0, methods=("dnr",)),
    _k("dnr_every", "int", 10, "D&R diagnoses and re-initialises every this many epochs",
       "baselines", min=1, methods=("dnr",)),
    _k("mcr_lambda", "float", 0.1, "MCR weight of the competition (permutation) regulariser",
       "baselines", min=0.0, methods=("mcr",)),
    _k("agm_alpha", "float", 1.5, "AGM modulation strength", "baselines", min=0.0,
       methods=("agm",)),
    _k("pmr_alpha", "float", 1.0, "PMR weight of the slower modality's prototype CE",
       "baselines", min=0.0, methods=("pmr",)),
    _k("pmr_momentum", "float", 0.2, "PMR momentum of the class prototypes between epochs",
       "baselines", min=0.0, max=1.0, max_exclusive=True, methods=("pmr",)),
    # runtime
    _k("amp", "bool", False, "automatic mixed precision (CUDA only; ignored on CPU)", "runtime"),
    _k("device", "str", "auto", "training device", "runtime", choices=("auto", "cpu", "cuda")),
)  # fmt: skip

KNOBS: dict[str, Knob] = {k.name: k for k in KNOBS_LIST}


def method_reads(method: str, knob: str) -> bool:
    """Whether ``method`` reads ``knob`` (a sweep over a knob a method does not read gives that
    method one trial, not one per value)."""
    methods = KNOBS[knob].methods
    return methods is None or method in methods


def defaults() -> dict[str, Any]:
    """Every knob's default, by knob name."""
    return {k.name: k.default for k in KNOBS_LIST}


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _typed(knob: Knob, value: Any, strict: bool) -> Any:
    """The value converted to the knob's type, or raise KnobError (no bounds checked yet).

    ``strict`` (JSON): the value's own type must be the knob's (an int knob takes an integer,
    not ``true``, ``"5"`` or ``5.0``; a float knob takes any number); text is parsed otherwise."""
    bad = KnobError(knob.name, f"expected {knob.allowed()}, got {shown(value)}")
    if knob.type == "bool":
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if knob.type == "str":
        if not isinstance(value, str):
            raise bad
        return value.strip()
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str) and not strict:
        try:
            value = float(value.strip()) if knob.type == "float" else _int_text(value)
        except ValueError:
            raise bad from None
    if not isinstance(value, int | float) or (
        strict and knob.type == "int" and isinstance(value, float)
    ):
        raise bad
    try:  # an integer of hundreds of digits is beyond a float's range: no number we take
        number = float(value)
    except OverflowError:
        raise bad from None
    if not math.isfinite(number):
        raise bad
    if knob.type == "int":
        if number != int(value):
            raise bad
        return int(value)
    return number


def shown(value: Any) -> str:
    """A rejected value as the user wrote it: JSON (``true``, ``"5"``) where it can be, else its
    Python repr (``nan``, a date)."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


def _int_text(text: str) -> int:
    number = float(text.strip())
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def parse_knob(name: str, value: Any, *, strict: bool = False) -> Any:
    """The typed, checked value of knob ``name``; KnobError naming the knob otherwise."""
    knob = KNOBS.get(str(name))
    if knob is None:
        raise KnobError(str(name), "unknown knob; known knobs: " + ", ".join(KNOBS))
    typed = _typed(knob, value, strict)
    bad = KnobError(knob.name, f"expected {knob.allowed()}, got {value!r}")
    if knob.choices is not None and typed not in knob.choices:
        raise bad
    if knob.min is not None and (typed < knob.min or (knob.min_exclusive and typed == knob.min)):
        raise bad
    if knob.max is not None and (typed > knob.max or (knob.max_exclusive and typed == knob.max)):
        raise bad
    if knob.type == "int" and typed > INT_MAX:
        raise KnobError(knob.name, f"expected an integer <= {INT_MAX}, got {value!r}")
    problem = knob.check(typed) if knob.check is not None else None
    if problem is not None:
        raise KnobError(knob.name, problem)
    return typed


def parse_knobs(values: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """``{knob: value}`` typed and checked; KnobError naming the first bad knob."""
    if not isinstance(values, Mapping):
        raise KnobError(
            "knobs", f"expected a mapping of knob -> value, got {type(values).__name__}"
        )
    return {str(k): parse_knob(str(k), v, strict=strict) for k, v in values.items()}


def resolve(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every knob: the defaults overlaid with ``values`` (already typed)."""
    return {**defaults(), **values}


def resolve_feature_norm(values: Mapping[str, Any]) -> str:
    """The LayerNorm a model really uses: ``auto`` (the default) is ``layernorm`` with
    feature-level masks (they corrupt normalised features) and ``none`` with input-level masks
    (with it the encoder learns to make corrupted inputs recognisable: docs/METHOD.md)."""
    resolved = resolve(values)
    if resolved["feature_norm"] != "auto":
        return str(resolved["feature_norm"])
    return "layernorm" if resolved["mask_level"] == "feature" else "none"


def resolve_fill(values: Mapping[str, Any]) -> str:
    """The fill a model really uses: ``auto`` (the default) is ``swap`` with feature-level
    masks (a swapped feature is indistinguishable from a clean one) and ``noise`` with
    input-level masks (a swapped raw input is a real other sample, and on data whose synergy
    class is a mismatch between the views it makes exactly that class: docs/METHOD.md)."""
    resolved = resolve(values)
    if resolved["fill"] != "auto":
        return str(resolved["fill"])
    return "swap" if resolved["mask_level"] == "feature" else "noise"


@dataclass(frozen=True)
class Rule:
    """A rule between knobs: ``problem(values)`` returns why the combination is refused
    (``severity`` "error") or measurably hurts (``"warning"``: the run goes ahead), else None.
    It applies to a method only when the method reads every knob in ``knobs``; its message
    names ``field``, the knob to change."""

    knobs: tuple[str, ...]
    field: str
    problem: Callable[[Mapping[str, Any]], str | None]
    severity: Literal["error", "warning"] = "error"


def _feature_level_needs_layernorm(v: Mapping[str, Any]) -> str | None:
    if v["mask_level"] == "feature" and resolve_feature_norm(v) == "none":
        return (
            "mask_level='feature' corrupts LayerNorm-normalised features: use "
            "feature_norm='auto' (or 'layernorm'), or mask_level='input'"
        )
    return None


def _input_level_with_layernorm(v: Mapping[str, Any]) -> str | None:
    if v["mask_level"] == "input" and resolve_feature_norm(v) == "layernorm":
        return (
            "mask_level='input' with feature_norm='layernorm' lets the encoder make corrupted "
            "inputs recognisable, so the penalty is met without using both modalities (it lost "
            "up to 17 synergy points on real data; docs/METHOD.md): use feature_norm='auto' "
            "(or 'none')"
        )
    return None


def _oracle_indexes_inputs(v: Mapping[str, Any]) -> str | None:
    if v["mask"] == "oracle" and v["mask_level"] == "feature" and v["encoder"] != "identity":
        return (
            "mask='oracle' corrupts the dataset's oracle INPUT coordinates: use "
            "mask_level='input' (at 'feature' they would index encoder units, meaningful only "
            "with encoder='identity')"
        )
    return None


RULES: tuple[Rule, ...] = (
    Rule(("mask_level", "feature_norm"), "feature_norm", _feature_level_needs_layernorm),
    Rule(("mask_level", "feature_norm"), "feature_norm", _input_level_with_layernorm, "warning"),
    Rule(("mask", "mask_level", "encoder"), "mask_level", _oracle_indexes_inputs),
    Rule(
        ("mask", "w_uni"),
        "w_uni",
        lambda v: (
            "mask='learned' needs unimodal heads: set w_uni > 0"
            if v["mask"] == "learned" and v["w_uni"] <= 0
            else None
        ),
    ),
    Rule(
        ("penalty", "w_uni"),
        "w_uni",
        lambda v: (
            "penalty='anchor' needs unimodal heads: set w_uni > 0"
            if v["penalty"] == "anchor" and v["w_uni"] <= 0
            else None
        ),
    ),
    Rule(
        ("reconboost_own_weight", "reconboost_others_weight"),
        "reconboost_others_weight",
        lambda v: (
            "must not exceed reconboost_own_weight (a sample's weight w1 - w2 * p_others(y) "
            "would turn negative)"
            if v["reconboost_others_weight"] > v["reconboost_own_weight"]
            else None
        ),
    ),
)


def broken_rules(method: str, values: Mapping[str, Any]) -> list[tuple[Rule, str]]:
    """Every rule ``method`` breaks with these typed knobs (unset ones take their defaults), with
    its reason; errors before warnings."""
    resolved = resolve(values)
    broken = []
    for rule in RULES:
        if all(method_reads(method, k) for k in rule.knobs):
            reason = rule.problem(resolved)
            if reason is not None:
                broken.append((rule, reason))
    return sorted(broken, key=lambda pair: pair[0].severity != "error")


def check_rules(method: str, values: Mapping[str, Any]) -> SpecError | None:
    """The first rule ``method`` breaks as an error (a KnobError naming the knob to change);
    None when no error rule is broken (warnings: ``rule_warnings``)."""
    for rule, reason in broken_rules(method, values):
        if rule.severity == "error":
            return KnobError(rule.field, reason)
    return None


def rule_warnings(method: str, values: Mapping[str, Any]) -> list[SpecError]:
    """The warning rules ``method`` breaks (the run goes ahead; users are told why it may hurt)."""
    return [
        KnobError(r.field, why)
        for r, why in broken_rules(method, values)
        if r.severity == "warning"
    ]


def knob_table() -> dict[str, Any]:
    """The vocabulary as JSON: what ``GET /api/v1/knobs`` answers and the dashboard reads (the
    backbone vocabulary, ``synib_spec.backbones.vocabulary()``, included)."""
    from synib_spec.backbones import vocabulary

    return {
        "knobs": [k.to_json() for k in KNOBS_LIST],
        "methods": [{"name": m.name, "help": m.help} for m in METHODS_LIST],
        "backbones": vocabulary(),
    }


def markdown_table() -> str:
    """The knob table in Markdown (``synib knobs --markdown``)."""
    rows = [
        "| knob | type | default | allowed | read by | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for k in KNOBS_LIST:
        default = str(k.default).lower() if k.type == "bool" else repr(k.default)
        default = "''" if k.default == "" else default.strip("'")
        read_by = "all methods" if k.methods is None else ", ".join(k.methods)
        allowed = k.allowed() if k.choices is not None or k.type != "str" else "see left"
        rows.append(f"| `{k.name}` | {k.type} | {default} | {allowed} | {read_by} | {k.help} |")
    return "\n".join(rows) + "\n"

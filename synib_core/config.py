"""Experiment configuration: the knob vocabulary and the frozen ``TrainConfig``.

``KNOBS`` is the single source of the knob list (``api/knobs.py`` mirrors it). Field ``lam`` is
the knob ``lambda`` (a Python keyword). Every value is validated when a ``TrainConfig`` is built,
whether directly or through ``config_from_knobs``.

Example:
    >>> cfg = config_from_knobs({"lambda": "10", "mask": "full", "lr": "1e-3"})
    >>> cfg.lam, cfg.mask, cfg.lr
    (10.0, 'full', 0.001)
    >>> cfg.to_knobs()["lambda"]
    10.0
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KNOBS",
    "METHODS",
    "METHOD_KNOBS",
    "SHARED_KNOBS",
    "ConfigFileError",
    "KnobError",
    "KnobSpec",
    "TrainConfig",
    "config_from_knobs",
    "load_config_file",
    "parse_modality_weights",
]


class KnobError(ValueError):
    """A knob value (or name) a user gave is not allowed: ``key`` names it, ``reason`` says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class ConfigFileError(ValueError):
    """A knob file cannot be read or does not hold a mapping of knobs."""


@dataclass(frozen=True)
class KnobSpec:
    """One knob: ``type`` is "int" | "float" | "str" | "bool"; bounds are inclusive unless
    ``min_exclusive`` / ``max_exclusive``; ``choices`` lists the allowed strings."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type == "bool":
            return "true or false"
        if self.name == "modality_weights":
            return "'' (all 1) or 'name=w,name=w' with w >= 0"
        lo = "" if self.min is None else ("> " if self.min_exclusive else ">= ") + f"{self.min:g}"
        hi = "" if self.max is None else ("< " if self.max_exclusive else "<= ") + f"{self.max:g}"
        parts = [p for p in (lo, hi) if p]
        return f"{'an integer' if self.type == 'int' else 'a number'} " + " and ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description (what ``api/knobs.py`` mirrors)."""
        out = dataclasses.asdict(self)
        out["choices"] = list(self.choices) if self.choices is not None else None
        return out


def _k(name: str, type_: str, default: Any, help_: str, **kw: Any) -> KnobSpec:
    return KnobSpec(name=name, type=type_, default=default, help=help_, **kw)


_KNOB_LIST: tuple[KnobSpec, ...] = (
    _k(
        "encoder",
        "str",
        "mlp",
        "per-modality encoder",
        choices=("mlp", "gru", "transformer", "cnn", "identity"),
    ),
    _k("hidden", "int", 128, "encoder width (feature dimension H)", min=1),
    _k("encoder_layers", "int", 2, "encoder depth", min=1),
    _k("fusion", "str", "concat_mlp", "fusion head", choices=("concat_mlp", "transformer")),
    _k("fusion_hidden", "int", 128, "fusion width", min=1),
    _k("fusion_layers", "int", 1, "hidden layers of the fusion MLP / transformer layers", min=1),
    _k(
        "feature_norm",
        "str",
        "layernorm",
        "parameter-free LayerNorm on encoder outputs (needed by feature-level masks) or none",
        choices=("layernorm", "none"),
    ),
    _k("epochs", "int", 30, "training epochs", min=1),
    _k("batch_size", "int", 64, "mini-batch size", min=1),
    _k("lr", "float", 3e-4, "learning rate", min=0.0, min_exclusive=True),
    _k("weight_decay", "float", 1e-5, "weight decay", min=0.0),
    _k("optimizer", "str", "adam", "optimiser", choices=("adam", "adamw", "sgd")),
    _k("lr_schedule", "str", "constant", "learning-rate schedule", choices=("constant", "cosine")),
    _k("dropout", "float", 0.0, "dropout probability", min=0.0, max=1.0, max_exclusive=True),
    _k("patience", "int", 0, "early-stopping patience in epochs (0 = none)", min=0),
    _k("lambda", "float", 1.0, "SynIB penalty weight", min=0.0),
    _k(
        "penalty",
        "str",
        "kl_uniform",
        "SynIB penalty Omega",
        choices=("kl_uniform", "kl_prior", "anchor", "logit_l2"),
    ),
    _k(
        "mask",
        "str",
        "random",
        "counterfactual mask",
        choices=("random", "full", "oracle", "learned"),
    ),
    _k(
        "mask_prob",
        "float",
        0.5,
        "corruption probability of the random mask",
        min=0.0,
        min_exclusive=True,
        max=1.0,
    ),
    _k("mask_level", "str", "feature", "where to corrupt", choices=("feature", "input")),
    _k(
        "fill",
        "str",
        "swap",
        "what replaces a corrupted element",
        choices=("swap", "noise", "zeros", "ema"),
    ),
    _k("noise_std", "float", 1.0, "std of the noise fill", min=0.0, min_exclusive=True),
    _k("mask_steps", "int", 20, "inner Adam steps of the learned mask", min=1),
    _k(
        "mask_lr",
        "float",
        0.1,
        "inner learning rate of the learned mask",
        min=0.0,
        min_exclusive=True,
    ),
    _k("mask_sparsity", "float", 0.1, "sparsity weight of the learned mask", min=0.0),
    _k("mask_tau", "float", 1.0, "temperature of the learned gate", min=0.0, min_exclusive=True),
    _k("mask_hard", "bool", False, "hard-threshold the learned gate at 0.5"),
    _k(
        "learned_direction",
        "str",
        "keep_unimodal",
        "what the learned mask corrupts",
        choices=("keep_unimodal", "destroy_unimodal"),
    ),
    _k("w_uni", "float", 0.0, "weight of the unimodal-head CE losses", min=0.0),
    _k(
        "uni_detach",
        "bool",
        False,
        "unimodal heads train on detached features (they then never shape the encoders)",
    ),
    _k("warmup_epochs", "int", 0, "epochs of linear lambda warm-up", min=0),
    _k("modality_weights", "str", "", "per-modality penalty weights: '' or 'name=w,name=w'"),
    _k(
        "modality_dropout_prob",
        "float",
        0.3,
        "drop probability per modality",
        min=0.0,
        max=1.0,
        max_exclusive=True,
    ),
    _k("ogm_alpha", "float", 0.5, "OGM-GE modulation strength", min=0.0),
    _k("amp", "bool", False, "automatic mixed precision (CUDA only; ignored on CPU)"),
    _k("device", "str", "auto", "training device", choices=("auto", "cpu", "cuda")),
)

KNOBS: dict[str, KnobSpec] = {spec.name: spec for spec in _KNOB_LIST}

METHODS: tuple[str, ...] = (
    "vanilla",
    "synib",
    "masking_only",
    "modality_dropout",
    "ensemble",
    "ogm_ge",
    "mmpareto",
)

# Architecture and optimiser knobs every method reads.
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

# Knobs each method reads beyond SHARED_KNOBS; a sweep over any other knob is a no-op for it.
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

_FIELD_OF_KNOB = {"lambda": "lam"}
_KNOB_OF_FIELD = {v: k for k, v in _FIELD_OF_KNOB.items()}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_modality_weights(text: str) -> dict[str, float]:
    """Parse ``"audio=1,video=0.5"`` into ``{"audio": 1.0, "video": 0.5}``; ``""`` -> ``{}``."""
    weights: dict[str, float] = {}
    if not text.strip():
        return weights
    for item in text.split(","):
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


def _coerce(spec: KnobSpec, value: Any) -> Any:
    """Convert ``value`` (maybe a string) to the knob's type; raise KnobError if impossible."""
    bad = KnobError(spec.name, f"expected {spec.allowed()}, got {value!r}")
    if spec.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if spec.type == "str":
        if not isinstance(value, str):
            raise bad
        return value.strip()
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise bad from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise bad
    if spec.type == "int":
        if float(value) != int(value):
            raise bad
        return int(value)
    return float(value)


def _check(spec: KnobSpec, value: Any) -> None:
    """Check an already typed value against the knob's choices and bounds."""
    bad = KnobError(spec.name, f"expected {spec.allowed()}, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise bad
    if spec.name == "modality_weights":
        parse_modality_weights(value)
    if spec.min is not None and (value < spec.min or (spec.min_exclusive and value == spec.min)):
        raise bad
    if spec.max is not None and (value > spec.max or (spec.max_exclusive and value == spec.max)):
        raise bad


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of the experiment (see ``KNOBS`` for the meaning and the allowed values)."""

    encoder: str = "mlp"
    hidden: int = 128
    encoder_layers: int = 2
    fusion: str = "concat_mlp"
    fusion_hidden: int = 128
    fusion_layers: int = 1
    feature_norm: str = "layernorm"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-5
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    dropout: float = 0.0
    patience: int = 0
    lam: float = 1.0
    penalty: str = "kl_uniform"
    mask: str = "random"
    mask_prob: float = 0.5
    mask_level: str = "feature"
    fill: str = "swap"
    noise_std: float = 1.0
    mask_steps: int = 20
    mask_lr: float = 0.1
    mask_sparsity: float = 0.1
    mask_tau: float = 1.0
    mask_hard: bool = False
    learned_direction: str = "keep_unimodal"
    w_uni: float = 0.0
    uni_detach: bool = False
    warmup_epochs: int = 0
    modality_weights: str = ""
    modality_dropout_prob: float = 0.3
    ogm_alpha: float = 0.5
    amp: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            spec = KNOBS[_KNOB_OF_FIELD.get(field.name, field.name)]
            value = _coerce(spec, getattr(self, field.name))
            _check(spec, value)
            object.__setattr__(self, field.name, value)
        self._check_cross_fields()

    def _check_cross_fields(self) -> None:
        if self.mask_level == "feature" and self.feature_norm == "none":
            raise KnobError(
                "feature_norm",
                "mask_level='feature' corrupts normalised features: use feature_norm='layernorm' "
                "or mask_level='input'",
            )
        if self.mask == "learned" and self.w_uni <= 0:
            raise KnobError("w_uni", "mask='learned' needs unimodal heads: set w_uni > 0")
        if self.penalty == "anchor" and self.w_uni <= 0:
            raise KnobError("w_uni", "penalty='anchor' needs unimodal heads: set w_uni > 0")

    def to_knobs(self) -> dict[str, Any]:
        """All knobs by knob name (``lam`` -> ``lambda``), JSON-serialisable."""
        return {
            _KNOB_OF_FIELD.get(f.name, f.name): getattr(self, f.name)
            for f in dataclasses.fields(self)
        }

    def modality_weight_map(self, modalities: tuple[str, ...]) -> dict[str, float]:
        """Weight w_m per modality (default 1); raises KnobError for an unknown modality name."""
        given = parse_modality_weights(self.modality_weights)
        unknown = sorted(set(given) - set(modalities))
        if unknown:
            raise KnobError(
                "modality_weights", f"unknown modalities {unknown}; the data has {list(modalities)}"
            )
        return {m: given.get(m, 1.0) for m in modalities}


def config_from_knobs(knobs: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Build a ``TrainConfig`` from ``base`` (default: all defaults) with ``knobs`` overriding it.

    Values may be strings ("1e-3", "true", "64"). An unknown knob or a bad value raises
    ``KnobError`` naming the knob and the allowed values.
    """
    if not isinstance(knobs, Mapping):
        raise KnobError("knobs", f"expected a mapping of knob -> value, got {type(knobs).__name__}")
    changes: dict[str, Any] = {}
    for key, value in knobs.items():
        spec = KNOBS.get(str(key))
        if spec is None:
            raise KnobError(str(key), "unknown knob; known knobs: " + ", ".join(KNOBS))
        typed = _coerce(spec, value)
        _check(spec, typed)
        changes[_FIELD_OF_KNOB.get(spec.name, spec.name)] = typed
    return dataclasses.replace(base if base is not None else TrainConfig(), **changes)


def load_config_file(path: str | Path) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or JSON file holding a mapping of knobs."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"{p}: cannot read the knob file ({exc.strerror})") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            loaded = yaml.safe_load(text)
        else:
            loaded = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's subclasses
        raise ConfigFileError(f"{p}: not valid {p.suffix or 'JSON'}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError is not a ValueError
        raise ConfigFileError(f"{p}: not valid YAML: {exc}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigFileError(f"{p}: expected a mapping of knob -> value at the top level")
    return config_from_knobs(loaded)

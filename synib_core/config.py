"""Experiment configuration: the frozen ``TrainConfig``, one field per knob of
``synib_spec.knobs`` (the one table of knobs; field ``lam`` is the knob ``lambda``, a Python
keyword). Every value is typed and checked when a ``TrainConfig`` is built, whether directly or
through ``config_from_knobs``; the rules between knobs depend on the method and are checked by
``check_method_rules`` (``fit`` does).

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
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synib_spec.knobs import (
    KNOBS,
    KNOBS_LIST,
    METHODS,
    Knob,
    KnobError,
    check_rules,
    method_reads,
    parse_knob,
    parse_modality_weights,
    rule_warnings,
)

__all__ = [
    "KNOBS",
    "METHODS",
    "ConfigFileError",
    "Knob",
    "KnobError",
    "TrainConfig",
    "check_method_rules",
    "config_from_knobs",
    "load_config_file",
    "method_reads",
    "parse_modality_weights",
]

_KNOB_OF_ATTR = {k.attribute: k.name for k in KNOBS_LIST}
_PY_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


class ConfigFileError(ValueError):
    """A knob file cannot be read or does not hold a mapping of knobs."""


class _ConfigMethods:
    """What ``TrainConfig`` adds to its generated fields."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = parse_knob(_KNOB_OF_ATTR[field.name], getattr(self, field.name))
            object.__setattr__(self, field.name, value)

    def to_knobs(self) -> dict[str, Any]:
        """All knobs by knob name (``lam`` -> ``lambda``), JSON-serialisable."""
        return {
            _KNOB_OF_ATTR[f.name]: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }

    def modality_weight_map(self, modalities: tuple[str, ...]) -> dict[str, float]:
        """Weight w_m per modality (default 1); raises KnobError for an unknown modality name."""
        given = parse_modality_weights(self.to_knobs()["modality_weights"])
        unknown = sorted(set(given) - set(modalities))
        if unknown:
            raise KnobError(
                "modality_weights", f"unknown modalities {unknown}; the data has {list(modalities)}"
            )
        return {m: given.get(m, 1.0) for m in modalities}


def _make_config_class() -> type:
    fields = [(k.attribute, _PY_TYPES[k.type], dataclasses.field(default=k.default))
              for k in KNOBS_LIST]  # fmt: skip
    cls = dataclasses.make_dataclass("TrainConfig", fields, bases=(_ConfigMethods,), frozen=True)
    cls.__module__ = __name__  # pickles as synib_core.config.TrainConfig
    cls.__doc__ = "Every knob of the experiment (see ``synib_spec.knobs`` for the meaning)."
    return cls


if TYPE_CHECKING:

    class TrainConfig(_ConfigMethods):
        """Typed view of the generated dataclass: one attribute per knob."""

        def __init__(self, **knobs: Any) -> None: ...
        def __getattr__(self, name: str) -> Any: ...

else:
    TrainConfig = _make_config_class()


def check_method_rules(config: TrainConfig, method: str) -> None:
    """Raise KnobError when ``config`` breaks a rule between knobs that ``method`` reads; warn
    (``UserWarning``) for a combination that runs but measurably hurts."""
    knobs = config.to_knobs()
    error = check_rules(method, knobs)
    if error is not None:
        raise KnobError(error.field, error.reason)
    for warning in rule_warnings(method, knobs):
        warnings.warn(str(warning), UserWarning, stacklevel=2)


def config_from_knobs(knobs: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Build a ``TrainConfig`` from ``base`` (default: all defaults) with ``knobs`` overriding it.

    Values may be strings ("1e-3", "true", "64"). An unknown knob or a bad value raises
    ``KnobError`` naming the knob and the allowed values.
    """
    if not isinstance(knobs, Mapping):
        raise KnobError("knobs", f"expected a mapping of knob -> value, got {type(knobs).__name__}")
    changes = {KNOBS[str(k)].attribute if str(k) in KNOBS else str(k): parse_knob(str(k), v)
               for k, v in knobs.items()}  # fmt: skip
    return dataclasses.replace(base if base is not None else TrainConfig(), **changes)  # type: ignore[type-var]


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

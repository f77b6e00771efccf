"""Built-in dataset generators: their names and typed, checked parameters.

The library's generators (``synib_core.data.generators``) build the data; this table says which
exist and what each takes, so the API can refuse a bad request without importing the library,
and the docs and the dashboard list the same parameters. Values may arrive as strings (the
library's CLI); the API checks JSON values strictly (``resolve_params(..., strict=True)``: an
integer parameter takes an integer, not ``true``, ``"5"`` or ``5.0``).
``GENERATOR_LAYOUTS`` says what each sample stores, so the size of a dataset is known from its
parameters: ``check_budget`` refuses one over the service's budget (at registration in the API,
again in the worker before generating).

Example:
    >>> resolve_params("xor_spurious", {"alpha": "0.5"})["alpha"]
    0.5
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from synib_spec.datasets import GeneratorParamError
from synib_spec.knobs import shown

MIB = 1 << 20

__all__ = [
    "GENERATORS",
    "GENERATOR_LAYOUTS",
    "GENERATOR_PARAMS",
    "Layout",
    "Param",
    "check_budget",
    "estimated_bytes",
    "generated_fingerprint",
    "resolve_params",
]


@dataclass(frozen=True)
class Param:
    """One generator parameter: ``parse`` turns a value (or its text) into the typed value,
    ``check`` accepts or rejects it, ``allowed`` says in words what is accepted, ``json_type``
    says which JSON values a strict caller (the API) may give."""

    default: Any
    parse: Callable[[Any], Any]
    check: Callable[[Any], bool]
    allowed: str
    json_type: Literal["integer", "number", "string", "numbers"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


JSON_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "string": lambda v: isinstance(v, str),
    "numbers": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
}
"""Whether a JSON value has a parameter's type (``Param.json_type``)."""


def parse_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def parse_floats(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.strip("()[] ").split(",") if v.strip()]
    return tuple(float(v) for v in value)


def int_param(default: int, low: int, high: int = 10_000_000) -> Param:
    allowed = f"an integer in {low}..{high}"
    return Param(default, parse_int, lambda v: low <= v <= high, allowed, "integer")


def float_param(default: float, low: float, high: float, *, open_high: bool = False) -> Param:
    bound = ")" if open_high else "]"

    def check(v: float) -> bool:
        return low <= v < high if open_high else low <= v <= high

    return Param(default, float, check, f"a number in [{low}, {high}{bound}", "number")


def choice_param(default: str, choices: tuple[str, ...]) -> Param:
    return Param(default, str, lambda v: v in choices, "one of " + ", ".join(choices), "string")


SAMPLE_COUNTS = ("n_train", "n_val", "n_test")


def _probabilities(p: tuple[float, ...]) -> bool:
    return len(p) == 4 and min(p) >= 0 and abs(sum(p) - 1.0) < 1e-6


GENERATOR_PARAMS: dict[str, dict[str, Param]] = {
    "xor_spurious": {
        "alpha": float_param(0.8, 0.0, 10.0),
        "n_train": int_param(300, 2),
        "n_val": int_param(300, 1),
        "n_test": int_param(30000, 1),
        "dim": int_param(64, 10, 100_000),
        "val_alpha": float_param(-1.0, -1.0, 10.0),  # -1: as alpha (the shortcut in val too)
    },
    "xor_pid": {
        "p": Param(
            (0.45, 0.0, 0.45, 0.10),
            parse_floats,
            _probabilities,
            "four numbers >= 0 summing to 1 (pU_a,pU_b,pR,pS)",
            "numbers",
        ),
        "n_train": int_param(1800, 2),
        "n_val": int_param(200, 1),
        "n_test": int_param(4000, 1),
        "signal": float_param(3.0, 0.0, 100.0),
        "projection_seed": int_param(0, 0, 2**31 - 1),
    },
    "digits_pairs": {
        "n_train": int_param(2000, 2),
        "n_val": int_param(400, 1),
        "n_test": int_param(1000, 1),
        "synergy_rate": float_param(0.2, 0.0, 1.0, open_high=True),
        "layout": choice_param("flat", ("flat", "image")),
    },
    # Real signals (espeak-ng speech embedded by resemblyzer, text by MiniLM, digit images):
    # synib_core/data/speech_irony.py and digit_speech.py say what each sample is.
    "speech_irony": {
        "n_train": int_param(2000, 2),
        "n_val": int_param(400, 1),
        "n_test": int_param(1000, 1),
        "synergy_rate": float_param(0.1, 0.0, 1.0, open_high=True),
    },
    "digit_speech": {
        "n_train": int_param(2000, 2),
        "n_val": int_param(400, 1),
        "n_test": int_param(1000, 1),
        "synergy_rate": float_param(0.1, 0.0, 1.0, open_high=True),
    },
}

GENERATORS: tuple[str, ...] = tuple(GENERATOR_PARAMS)


@dataclass(frozen=True)
class Layout:
    """What one generated sample stores (``synib_core.data.save_npz``): ``features`` gives the
    values per sample of each modality (float32) from the resolved parameters; ``group_chars``
    is the longest group label (stored as 4-byte characters); ``size_params`` are the parameters
    the size grows with, one of which a refusal names."""

    features: Callable[[Mapping[str, Any]], dict[str, int]]
    group_chars: int
    size_params: tuple[str, ...] = SAMPLE_COUNTS

    def bytes_per_sample(self, params: Mapping[str, Any]) -> int:
        """float32 features + int64 label + int8 split + the group label."""
        return 4 * sum(self.features(params).values()) + 8 + 1 + 4 * self.group_chars


GENERATOR_LAYOUTS: dict[str, Layout] = {
    "xor_spurious": Layout(lambda p: {"a": p["dim"], "b": p["dim"]}, 7, (*SAMPLE_COUNTS, "dim")),
    "xor_pid": Layout(lambda p: {"a": 32, "b": 32}, 9),
    "digits_pairs": Layout(lambda p: {"a": 64, "b": 64}, 8),
    "speech_irony": Layout(lambda p: {"text": 384, "voice": 256}, 9),
    "digit_speech": Layout(lambda p: {"image": 64, "speech": 256}, 9),
}

GENERATOR_HELP: dict[str, str] = {
    "xor_spurious": "XOR of one bit per modality with a shortcut in train and validation only",
    "xor_pid": "XOR with unique, redundant and synergistic samples in known proportions",
    "digits_pairs": "two digit images; a share of samples labelled by their parity relation",
    "speech_irony": "spoken and written sentiment; contradicting pairs form an extra class",
    "digit_speech": "a digit image and a spoken number; a share labelled by their relation",
}


def generator_table() -> list[dict[str, Any]]:
    """Every built-in generator with its help and its parameters' defaults and allowed values:
    what ``GET /api/v1/datasets/generators`` answers and the dashboard's form is built from."""
    return [
        {
            "name": name,
            "help": GENERATOR_HELP[name],
            "params": [
                {"name": p, "default": spec.default, "allowed": spec.allowed}
                for p, spec in params.items()
            ],
        }
        for name, params in GENERATOR_PARAMS.items()
    ]


def resolve_params(
    generator: str, params: Mapping[str, Any], *, strict: bool = False
) -> dict[str, Any]:
    """The defaults of ``generator`` overlaid with ``params``, parsed and checked;
    GeneratorParamError names the bad parameter (or ``generator`` when it is unknown).
    ``strict``: each given value must already have its parameter's JSON type (no text parsed,
    no ``true`` for a number)."""
    schema = GENERATOR_PARAMS.get(generator)
    if schema is None:
        raise GeneratorParamError(
            "generator", f"unknown generator {generator!r}; allowed: {', '.join(GENERATORS)}"
        )
    unknown = sorted(set(params) - set(schema))
    if unknown:
        allowed = ", ".join(sorted(schema)) or "none"
        raise GeneratorParamError(
            unknown[0], f"unknown parameter of {generator}; allowed: {allowed}"
        )
    resolved = {}
    for name, spec in schema.items():
        raw = params.get(name, spec.default)
        try:
            value = spec.parse(raw)
            ok = spec.check(value)
        except (TypeError, ValueError):
            ok = False
        if strict and name in params and not JSON_TYPE_CHECKS[spec.json_type](raw):
            ok = False
        if not ok:
            raise GeneratorParamError(
                name, f"invalid value {shown(raw)} for {generator}; allowed: {spec.allowed}"
            )
        resolved[name] = value
    return resolved


def estimated_bytes(generator: str, params: Mapping[str, Any]) -> int:
    """Bytes of the arrays ``generator`` makes with resolved ``params``, all splits and
    modalities (the file's size, within its headers)."""
    samples = sum(int(params[name]) for name in SAMPLE_COUNTS)
    return samples * GENERATOR_LAYOUTS[generator].bytes_per_sample(params)


def check_budget(generator: str, params: Mapping[str, Any], limit_mb: float) -> int:
    """The estimate of ``estimated_bytes``, or GeneratorParamError naming the size parameter
    that most drives it over ``limit_mb`` (MiB), with the estimate and the limit."""
    estimate = estimated_bytes(generator, params)
    if estimate <= limit_mb * MIB:
        return estimate
    layout = GENERATOR_LAYOUTS[generator]
    defaults = GENERATOR_PARAMS[generator]

    def without(name: str) -> tuple[int, int]:  # the estimate with `name` at its default
        return estimated_bytes(generator, {**params, name: defaults[name].default}), -params[name]

    field = min(layout.size_params, key=without)
    samples = sum(int(params[name]) for name in SAMPLE_COUNTS)
    raise GeneratorParamError(
        field,
        f"{generator} with {field}={params[field]} would make about {estimate / MIB:,.0f} MiB "
        f"({samples:,} samples x {layout.bytes_per_sample(params):,} bytes), over the limit of "
        f"{limit_mb:,g} MiB (setting max_builtin_dataset_mb); lower {field}",
    )


def generated_fingerprint(generator: str, seed: int, params: Mapping[str, Any]) -> str:
    """sha256 of the generator name, seed and resolved parameters (stable JSON)."""
    blob = json.dumps({"generator": generator, "seed": seed, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()

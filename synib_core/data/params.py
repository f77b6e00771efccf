"""Typed, validated generator parameters (values may arrive as strings from the CLI)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synib_core.data.dataset import GeneratorParamError


@dataclass(frozen=True)
class Param:
    """One generator parameter: `parse` turns a value (or its string form) into the typed value,
    `check` accepts or rejects it, `allowed` says in words what is accepted."""

    default: Any
    parse: Callable[[Any], Any]
    check: Callable[[Any], bool]
    allowed: str


def parse_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def parse_floats(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.strip("()[] ").split(",") if v.strip()]
    return tuple(float(v) for v in value)


def int_param(default: int, low: int, high: int = 10_000_000) -> Param:
    return Param(default, parse_int, lambda v: low <= v <= high, f"an integer in {low}..{high}")


def float_param(default: float, low: float, high: float, *, open_high: bool = False) -> Param:
    bound = ")" if open_high else "]"

    def check(v: float) -> bool:
        return low <= v < high if open_high else low <= v <= high

    return Param(default, float, check, f"a number in [{low}, {high}{bound}")


def choice_param(default: str, choices: tuple[str, ...]) -> Param:
    return Param(default, str, lambda v: v in choices, "one of " + ", ".join(choices))


def resolve_params(
    generator: str, schema: Mapping[str, Param], params: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults overlaid with `params`, parsed and checked; GeneratorParamError names the bad one.

    Example: ``resolve_params("xor_spurious", SCHEMA, {"alpha": "0.5"})["alpha"] == 0.5``.
    """
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
        if not ok:
            raise GeneratorParamError(
                name, f"invalid value {raw!r} for {generator}; allowed: {spec.allowed}"
            )
        resolved[name] = value
    return resolved


def generated_fingerprint(generator: str, seed: int, params: Mapping[str, Any]) -> str:
    """sha256 of the generator name, seed and resolved parameters (stable JSON)."""
    blob = json.dumps({"generator": generator, "seed": seed, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()

"""Registry of built-in dataset generators: name -> fn(seed=0, **params) -> MultimodalData.

Parameters are checked (and parsed from strings, for the CLI) against `GENERATOR_PARAMS`; a bad
one raises `GeneratorParamError(param, reason)` (a DatasetError) naming the allowed values.

The real-signal generators (`speech_irony`, `digit_speech`) also take ``cache_dir``, where their
extracted features are cached (not a data parameter: it changes no value); they need the
``signals`` extra and the program espeak-ng, and raise `SignalDependencyError` (a DatasetError)
naming what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from synib_core.data.dataset import GeneratorParamError, MultimodalData
from synib_core.data.digit_speech import make_digit_speech
from synib_core.data.digits import make_digits_pairs
from synib_core.data.params import (
    Param,
    choice_param,
    float_param,
    generated_fingerprint,
    int_param,
    parse_floats,
    resolve_params,
)
from synib_core.data.speech_irony import make_speech_irony
from synib_core.data.synthetic import make_xor_pid, make_xor_spurious


def _check_probs(p: tuple[float, ...]) -> bool:
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
            _check_probs,
            "four numbers >= 0 summing to 1 (pU_a,pU_b,pR,pS)",
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

# Generators whose features are extracted by pretrained models and cached on disk.
CACHED_GENERATORS = ("speech_irony", "digit_speech")

_BUILDERS: dict[str, Callable[..., MultimodalData]] = {
    "xor_spurious": make_xor_spurious,
    "xor_pid": make_xor_pid,
    "digits_pairs": make_digits_pairs,
    "speech_irony": make_speech_irony,
    "digit_speech": make_digit_speech,
}


def _registered(name: str) -> Callable[..., MultimodalData]:
    def generate(
        seed: int = 0, *, cache_dir: str | os.PathLike[str] | None = None, **params: Any
    ) -> MultimodalData:
        try:
            seed = int(seed)
        except (TypeError, ValueError) as exc:
            raise GeneratorParamError("seed", f"must be an integer, got {seed!r}") from exc
        if seed < 0:
            raise GeneratorParamError("seed", f"must be >= 0, got {seed}")
        resolved = resolve_params(name, GENERATOR_PARAMS[name], params)
        fp = generated_fingerprint(name, seed, resolved)
        if name in CACHED_GENERATORS:
            return _BUILDERS[name](seed, fingerprint=fp, cache_dir=cache_dir, **resolved)
        return _BUILDERS[name](seed, fingerprint=fp, **resolved)

    generate.__name__ = name
    generate.__doc__ = _BUILDERS[name].__doc__
    return generate


GENERATORS: dict[str, Callable[..., MultimodalData]] = {
    name: _registered(name) for name in _BUILDERS
}


def make_dataset(
    name: str,
    seed: int = 0,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    **params: Any,
) -> MultimodalData:
    """Generate a built-in dataset by name; GeneratorParamError("generator", ...) for an unknown
    name. ``cache_dir``: where real-signal generators cache their features (see feature_cache)."""
    if name not in GENERATORS:
        raise GeneratorParamError(
            "generator", f"unknown generator {name!r}; allowed: {', '.join(GENERATORS)}"
        )
    return GENERATORS[name](seed, cache_dir=cache_dir, **params)

"""Registry of built-in dataset generators: name -> fn(seed=0, **params) -> MultimodalData.

Parameters are checked (and parsed from strings, for the CLI) against
``synib_spec.builtin.GENERATOR_PARAMS``; a bad one raises `GeneratorParamError(param, reason)`
(a DatasetError) naming the allowed values.

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
from synib_core.data.speech_irony import make_speech_irony
from synib_core.data.synthetic import make_xor_pid, make_xor_spurious
from synib_spec.builtin import GENERATOR_PARAMS, generated_fingerprint, resolve_params

__all__ = ["GENERATORS", "GENERATOR_PARAMS", "make_dataset"]


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
        resolved = resolve_params(name, params)
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

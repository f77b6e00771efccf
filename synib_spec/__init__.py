"""The service's vocabulary, defined once: knobs and methods with their rules (``knobs``), the
job spec and its trial plan (``jobs``), the dataset contract (``datasets``) and the built-in
dataset generators' parameters (``builtin``).

Standard library and numpy only, so the API, the worker, the library and the docs all import
the same definitions without pulling torch, Ray or a web framework.
"""

from __future__ import annotations

from synib_spec.errors import SpecError, SpecErrors

__all__ = ["SpecError", "SpecErrors"]

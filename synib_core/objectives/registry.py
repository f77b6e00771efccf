"""``OBJECTIVES``: method name -> objective class, and ``build_objective``.

Adding a method is one module and one line here (plus its ``Method`` and knobs in
``synib_spec.knobs``).

Example:
    >>> objective = build_objective("synib", TrainConfig(lam=10.0), data.spec())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

from synib_core.config import TrainConfig
from synib_core.objectives.agm import AGM
from synib_core.objectives.base import Objective, ObjectiveConfigError, SpecLike
from synib_core.objectives.baselines import Ensemble, ModalityDropout, Vanilla
from synib_core.objectives.dnr import DiagnoseRelearn
from synib_core.objectives.mcr import MCR
from synib_core.objectives.mla import MLA
from synib_core.objectives.mmpareto import MMPareto
from synib_core.objectives.ogm_ge import OgmGe
from synib_core.objectives.pmr import PMR
from synib_core.objectives.reconboost import ReconBoost
from synib_core.objectives.synib import MaskingOnly, SynIB

__all__ = ["OBJECTIVES", "build_objective"]

OBJECTIVES: dict[str, Callable[[TrainConfig, SpecLike], Objective]] = {
    "synib": SynIB,
    "vanilla": Vanilla,
    "masking_only": MaskingOnly,
    "modality_dropout": ModalityDropout,
    "ensemble": Ensemble,
    "ogm_ge": OgmGe,
    "mmpareto": MMPareto,
    "reconboost": ReconBoost,
    "dnr": DiagnoseRelearn,
    "mcr": MCR,
    "agm": AGM,
    "mla": MLA,
    "pmr": PMR,
}


def build_objective(method: str, config: TrainConfig, spec: SpecLike) -> Objective:
    """The objective of ``method`` configured from ``config`` for the dataset ``spec``
    (modalities, num_classes). An unknown method raises ObjectiveConfigError (a ValueError)."""
    builder = OBJECTIVES.get(method)
    if builder is None:
        raise ObjectiveConfigError(
            "method", f"unknown {method!r}; allowed: {', '.join(OBJECTIVES)}"
        )
    return builder(config, spec)

"""Metrics as pure numpy functions (numpy arrays in, floats or masks out)."""

from synib_core.metrics.bootstrap import paired_bootstrap_ci, paired_bootstrap_cis
from synib_core.metrics.classification import accuracy, expected_calibration_error, macro_f1
from synib_core.metrics.summary import summarize
from synib_core.metrics.synergy import (
    counterfactual_confidence,
    group_accuracies,
    strict_synergy_mask,
    unimodal_groups,
)

__all__ = [
    "accuracy",
    "counterfactual_confidence",
    "expected_calibration_error",
    "group_accuracies",
    "macro_f1",
    "paired_bootstrap_ci",
    "paired_bootstrap_cis",
    "strict_synergy_mask",
    "summarize",
    "unimodal_groups",
]

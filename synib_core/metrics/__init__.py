"""Metrics as pure numpy functions (numpy arrays in, floats or masks out); the PID estimates
need the ``pid`` extra (cvxpy) when called, not when imported."""

from synib_core.metrics.bootstrap import paired_bootstrap_ci, paired_bootstrap_cis
from synib_core.metrics.calibration import fit_temperature, scaled_nll, temperature_probs
from synib_core.metrics.classification import accuracy, expected_calibration_error, macro_f1
from synib_core.metrics.discretise import default_clusters, discretise, discretise_modalities
from synib_core.metrics.pid import PID, PIDUnavailable, dataset_pid, prediction_pid
from synib_core.metrics.pid_verdict import describe_pid, pid_verdict
from synib_core.metrics.power import seeds_needed
from synib_core.metrics.summary import summarize
from synib_core.metrics.synergy import (
    counterfactual_confidence,
    group_accuracies,
    strict_synergy_mask,
    unimodal_groups,
)

__all__ = [
    "PID",
    "PIDUnavailable",
    "accuracy",
    "counterfactual_confidence",
    "dataset_pid",
    "default_clusters",
    "describe_pid",
    "discretise",
    "discretise_modalities",
    "expected_calibration_error",
    "fit_temperature",
    "group_accuracies",
    "macro_f1",
    "paired_bootstrap_ci",
    "paired_bootstrap_cis",
    "pid_verdict",
    "prediction_pid",
    "scaled_nll",
    "seeds_needed",
    "strict_synergy_mask",
    "summarize",
    "temperature_probs",
    "unimodal_groups",
]

"""Evaluation: the study's metrics, significance tests, oracle, reports and figures.

One trusted, documented standard for every model (see ``docs/evaluation.md``):
great-circle distance on a sphere of radius 6372.795 km, a photo is correct at
threshold ``t`` when its error ``d <= t``, thresholds 1/25/200/750/2500 km.

Pure numpy/scipy/pandas: importing this package never imports torch.
"""

from trigeo.evaluate.averaging import album_keys, average_by_album, average_by_user
from trigeo.evaluate.calibration import (
    apply_temperature,
    credible_sets,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
)
from trigeo.evaluate.core import Evaluation, EvaluationConfig, Truth, evaluate, oracle_rows
from trigeo.evaluate.geography import continent_of, country_of
from trigeo.evaluate.inputs import EvaluationWarning, load_predictions
from trigeo.evaluate.metrics import (
    DEFAULT_THRESHOLDS_KM,
    accuracy_at,
    bootstrap_accuracy_ci,
    compare_models,
    error_km,
    kl_divergence,
    outdoor_mask,
    prediction_entropy,
    summarize_errors,
)

__all__ = [
    "DEFAULT_THRESHOLDS_KM",
    "Evaluation",
    "EvaluationConfig",
    "EvaluationWarning",
    "Truth",
    "accuracy_at",
    "album_keys",
    "apply_temperature",
    "average_by_album",
    "average_by_user",
    "bootstrap_accuracy_ci",
    "compare_models",
    "continent_of",
    "country_of",
    "credible_sets",
    "error_km",
    "evaluate",
    "expected_calibration_error",
    "fit_temperature",
    "kl_divergence",
    "load_predictions",
    "log_softmax",
    "oracle_rows",
    "outdoor_mask",
    "prediction_entropy",
    "summarize_errors",
]

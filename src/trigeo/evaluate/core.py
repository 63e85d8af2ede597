"""Evaluate any number of models on the same truth photos: the trusted standard.

:func:`evaluate` scores each model (trigeo predictions or a peer's lat/lon
CSV), adds the best possible rows for each mesh (oracle), the Wilcoxon tests
between every pair of models, per-continent accuracy, country confusions and
calibration, and returns an :class:`Evaluation` that the report renders.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.evaluate.averaging import average_by_album, average_by_user
from trigeo.evaluate.calibration import credible_sets, expected_calibration_error, reliability_curve
from trigeo.evaluate.geography import (
    CONTINENT_NAMES,
    continent_of_country,
    country_confusions,
    country_of,
)
from trigeo.evaluate.inputs import (
    EvaluationWarning,
    MeshLike,
    _examples,
    align_predictions,
    check_predictions,
    detect_swapped_latlon,
)
from trigeo.evaluate.metrics import (
    DEFAULT_THRESHOLDS_KM,
    WilcoxonResult,
    accuracy_at,
    bootstrap_accuracy_ci,
    compare_models,
    error_km,
    kl_divergence,
    outdoor_mask,
    prediction_entropy,
    summarize_errors,
)
from trigeo.predictions import Predictions
from trigeo.sphere import EARTH_RADIUS_KM

__all__ = [
    "Evaluation",
    "EvaluationConfig",
    "ModelResult",
    "Truth",
    "evaluate",
    "oracle_rows",
]

_SHOWN_MISSING = 20


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
    averaging: bool = False
    credible_levels: tuple[float, ...] = (0.5, 0.9, 0.95)

    def __post_init__(self) -> None:
        if self.missing not in ("miss", "exclude"):
            raise InputError(f"missing must be 'miss' or 'exclude', got {self.missing!r}")
        if self.label not in (None, "cell", "imagery"):
            raise InputError(f"label must be 'cell' or 'imagery', got {self.label!r}")
        if not np.isfinite(self.radius_km) or self.radius_km <= 0:
            raise InputError(f"radius_km must be positive, got {self.radius_km}")

    @property
    def miss_error_km(self) -> float:
        return float(np.pi * self.radius_km)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Truth:
    """The photos every model is scored on (one dataset split)."""

    photo_id: NDArray[np.str_]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    outdoor: NDArray[np.float64]
    table: pd.DataFrame
    all_ids: NDArray[np.str_] | None = None
    _continent: NDArray[np.str_] | None = field(default=None, repr=False)
    _country: NDArray[np.str_] | None = field(default=None, repr=False)
    _cells: dict[str, NDArray[np.int64]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_table(
        cls,
        table: pd.DataFrame,
        *,
        split: str | None = "val",
        outdoor_only: bool = False,
        source: str | Path | None = None,
    ) -> Truth:
        """Select the evaluated photos of a validated photo table."""
        rows = table
        if split is not None:
            rows = table[table["split"] == split]
            if len(rows) == 0:
                raise InputError(
                    f"split {split!r} is empty; the dataset has splits "
                    f"{sorted(table['split'].unique())} (use --split)",
                    source=source,
                    column="split",
                )
        if outdoor_only:
            outdoor = rows["outdoor"].to_numpy(dtype=np.float64, na_value=np.nan)
            if not np.isfinite(outdoor).any():
                raise InputError(
                    "--outdoor-only needs the 'outdoor' column, but it is empty for every "
                    "evaluated photo (run the scene model first)",
                    source=source,
                    column="outdoor",
                )
            rows = rows[outdoor_mask(outdoor)]
            if len(rows) == 0:
                raise InputError("no evaluated photo is outdoor", source=source, column="outdoor")
        rows = rows.reset_index(drop=True)
        return cls(
            photo_id=np.asarray(rows["photo_id"].astype(str), dtype=str),
            lat=rows["lat"].to_numpy(dtype=np.float64),
            lon=rows["lon"].to_numpy(dtype=np.float64),
            outdoor=rows["outdoor"].to_numpy(dtype=np.float64, na_value=np.nan),
            table=rows,
            all_ids=np.asarray(table["photo_id"].astype(str), dtype=str),
        )

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, *, split: str | None = "val", outdoor_only: bool = False
    ) -> Truth:
        return cls.from_table(
            dataset.table, split=split, outdoor_only=outdoor_only, source=dataset.root
        )

    def __len__(self) -> int:
        return len(self.photo_id)

    @property
    def continent(self) -> NDArray[np.str_]:
        if self._continent is None:
            self._continent = continent_of_country(self.country)
        return self._continent

    @property
    def country(self) -> NDArray[np.str_]:
        if self._country is None:
            self._country = country_of(self.lat, self.lon)
        return self._country

    def cells_in(self, mesh: MeshLike) -> NDArray[np.int64]:
        """Cell of each photo in ``mesh`` (-1 outside kept cells), located once per mesh."""
        cells = self._cells.get(mesh.mesh_hash)
        if cells is None:
            cells = self._cells[mesh.mesh_hash] = np.asarray(mesh.locate(self.lat, self.lon))
        return cells


@dataclass
class ModelResult:
    """One model's scores; arrays are per scored photo, in truth order."""

    name: str
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
    outdoor: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    reliability: tuple[NDArray, NDArray, NDArray] | None = None
    true_cells: NDArray[np.int64] | None = None
    pred_country: NDArray[np.str_] | None = None

    @property
    def n_scored(self) -> int:
        return int(self.errors_km.size)

    def summary(self, thresholds: Sequence[float]) -> dict[str, Any]:
        """JSON-ready scores (no per-photo arrays)."""
        keys = [f"{t:g}km" for t in thresholds]
        return {
            "model": self.name,
            "source": self.source,
            "mesh_hash": self.mesh_hash,
            "mesh": self.mesh_name,
            "label": self.label,
            "photos_evaluated": self.n_truth,
            "photos_scored": self.n_scored,
            "photos_missing": int(self.missing_ids.size),
            "missing_photo_ids": [str(v) for v in self.missing_ids],
            **_accuracy_json(keys, self.accuracy, self.ci_low, self.ci_high),
            "mean_error_km": self.mean_km,
            "median_error_km": self.median_km,
            "kl_divergence": self.kl,
            "prediction_entropy": self.entropy,
            "kl_mesh": self.kl_mesh,
            "outdoor": self.outdoor,
            "calibration": self.calibration,
        }


@dataclass
class Evaluation:
    """Everything a report shows; ``to_json`` is what ``metrics.json`` stores."""

    config: EvaluationConfig
    n_truth: int
    models: list[ModelResult]
    oracle: list[dict[str, Any]]
    wilcoxon: list[WilcoxonResult]
    continents: pd.DataFrame
    confusions: dict[str, pd.DataFrame]
    warnings: list[str]
    mesh_names: dict[str, str]

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
        }


def _accuracy_json(
    keys: Sequence[str], accuracy: Any, low: Any, high: Any
) -> dict[str, dict[str, Any]]:
    """The ``accuracy_pct`` / ``accuracy_ci95_pct`` fields of metrics.json rows."""
    return {
        "accuracy_pct": dict(zip(keys, map(float, accuracy), strict=True)),
        "accuracy_ci95_pct": {
            key: [float(lo), float(hi)] for key, lo, hi in zip(keys, low, high, strict=True)
        },
    }


def _accuracy_block(errors: NDArray, config: EvaluationConfig) -> dict[str, Any]:
    thresholds = config.thresholds_km
    acc = accuracy_at(errors, thresholds, strict_less=config.strict_less)
    low, high = bootstrap_accuracy_ci(
        errors,
        thresholds,
        n_resamples=config.n_resamples,
        confidence=config.confidence,
        seed=config.seed,
        strict_less=config.strict_less,
    )
    return {"photos": int(errors.size), "accuracy": acc, "low": low, "high": high}


def _mesh_for(
    preds: Predictions, meshes: dict[str, tuple[str, MeshLike]], source: str
) -> tuple[str, MeshLike] | None:
    """The given mesh a model was predicted with, matched by hash (None if not given)."""
    if preds.mesh_hash and preds.mesh_hash in meshes:
        return meshes[preds.mesh_hash]
    if preds.has_cells and meshes:
        given = ", ".join(f"{name} ({h[:12]})" for h, (name, _) in meshes.items())
        warnings.warn(
            f"{source}: mesh hash {str(preds.mesh_hash)[:12]!r} matches none of the given "
            f"meshes ({given}); its cell ids cannot be used, so cell-based scores (KL, "
            "calibration) are skipped for it",
            EvaluationWarning,
            stacklevel=3,
        )
    return None


def _locations(
    preds: Predictions, rows: NDArray, mesh: MeshLike | None, label: str | None, source: str
) -> tuple[NDArray, NDArray, str]:
    if label is None or not preds.has_cells:
        return preds.lat[rows], preds.lon[rows], str(preds.meta.get("location_label", "file"))
    if mesh is None:
        raise InputError(
            f"--label {label} re-derives locations from cell centroids, which needs the "
            f"model's mesh (hash {str(preds.mesh_hash)[:12]!r}); pass it with --mesh",
            source=source,
        )
    lat, lon = mesh.centroids(kind=label)
    top1 = np.asarray(preds.top_cells)[rows, 0]
    return np.asarray(lat)[top1], np.asarray(lon)[top1], label


def _classes(cells: NDArray, n_cells: int) -> NDArray[np.int64]:
    """Cell ids with -1 (no kept cell) mapped to an extra class ``n_cells``."""
    cells = np.asarray(cells).astype(np.int64)
    return np.where(cells < 0, n_cells, cells)


def _score_model(
    preds: Predictions,
    source: str,
    truth: Truth,
    meshes: dict[str, tuple[str, MeshLike]],
    truth_cells: dict[str, NDArray[np.int64]],
    config: EvaluationConfig,
) -> ModelResult:
    matched = _mesh_for(preds, meshes, source)
    mesh_name, mesh = matched if matched else (None, None)
    check_predictions(preds, source, n_cells=None if mesh is None else int(mesh.n_cells_))
    align = align_predictions(preds, truth.photo_id, truth.all_ids, source)
    lat, lon, label = _locations(preds, align.pred_rows, mesh, config.label, source)
    t_lat, t_lon = truth.lat[align.truth_rows], truth.lon[align.truth_rows]
    if not preds.has_cells and not preds.meta.get("swapped_latlon"):
        if detect_swapped_latlon(t_lat, t_lon, lat, lon):
            warnings.warn(
                f"{source}: swapping its lat and lon columns would halve the median error; "
                "check that latitude comes first",
                EvaluationWarning,
                stacklevel=2,
            )
    errors = error_km(t_lat, t_lon, lat, lon, radius_km=config.radius_km)
    rows = align.truth_rows
    answered = np.ones(rows.size, dtype=bool)
    missing_ids = truth.photo_id[align.missing_rows]
    if missing_ids.size:
        action = (
            f"scored as misses (error {config.miss_error_km:.0f} km)"
            if config.missing == "miss"
            else "excluded from its scores"
        )
        warnings.warn(
            f"{source}: no prediction for {missing_ids.size} of {len(truth)} photos "
            f"({100 * missing_ids.size / len(truth):.1f}%), {action}: "
            f"{_examples(missing_ids, _SHOWN_MISSING)}",
            EvaluationWarning,
            stacklevel=2,
        )
        if config.missing == "miss":
            rows = np.concatenate([rows, align.missing_rows])
            errors = np.concatenate([errors, np.full(missing_ids.size, config.miss_error_km)])
            answered = np.concatenate([answered, np.zeros(missing_ids.size, dtype=bool)])
    order = np.argsort(rows, kind="stable")
    rows, errors, answered = rows[order], errors[order], answered[order]
    pred_lat = np.full(rows.size, np.nan)
    pred_lon = np.full(rows.size, np.nan)
    # Answered entries keep their order relative to align.truth_rows after the sort.
    answered_order = np.argsort(align.truth_rows, kind="stable")
    pred_lat[answered], pred_lon[answered] = lat[answered_order], lon[answered_order]

    block = _accuracy_block(errors, config)
    stats = summarize_errors(errors)
    result = ModelResult(
        name=preds.model_id,
        source=source,
        mesh_hash=preds.mesh_hash,
        mesh_name=mesh_name,
        label=label,
        n_truth=len(truth),
        truth_rows=rows,
        errors_km=errors,
        answered=answered,
        pred_lat=pred_lat,
        pred_lon=pred_lon,
        missing_ids=missing_ids,
        accuracy=block["accuracy"],
        ci_low=block["low"],
        ci_high=block["high"],
        mean_km=stats["mean_km"],
        median_km=stats["median_km"],
    )
    _add_classes(
        result, preds, align.pred_rows[answered_order], mesh, mesh_name, meshes, truth_cells
    )
    if not config.outdoor_only:
        _add_outdoor(result, truth, config)
    return result


def _add_classes(
    result: ModelResult,
    preds: Predictions,
    pred_rows: NDArray,
    mesh: MeshLike | None,
    mesh_name: str | None,
    meshes: dict[str, tuple[str, MeshLike]],
    truth_cells: dict[str, NDArray[np.int64]],
) -> None:
    """KL / entropy, and calibration when the model's own mesh is given."""
    rows = result.truth_rows[result.answered]
    if mesh is not None:
        kl_mesh_hash, kl_mesh_name, kl_mesh = mesh.mesh_hash, mesh_name, mesh
        pred_cells = np.asarray(preds.top_cells)[pred_rows, 0]
    elif not preds.has_cells and meshes:
        # A peer has no cells: place its locations in the first given mesh.
        kl_mesh_hash = next(iter(meshes))
        kl_mesh_name, kl_mesh = meshes[kl_mesh_hash]
        pred_cells = kl_mesh.locate(preds.lat[pred_rows], preds.lon[pred_rows])
    else:
        return
    n_cells = int(kl_mesh.n_cells_)
    true_cells = truth_cells[kl_mesh_hash][rows]
    # Class n_cells collects photos outside every kept cell, so p and q count the same photos.
    result.kl = kl_divergence(
        _classes(true_cells, n_cells), _classes(pred_cells, n_cells), n_cells + 1
    )
    result.entropy = prediction_entropy(_classes(pred_cells, n_cells), n_cells + 1)
    result.kl_mesh = kl_mesh_name
    if mesh is None:
        return
    result.true_cells = true_cells
    top1 = np.asarray(preds.top_cells)[pred_rows, 0]
    confidence = np.asarray(preds.top_probs, dtype=np.float64)[pred_rows, 0]
    correct = top1 == true_cells
    if preds.full_probs is not None:
        sets = credible_sets(
            None,
            np.asarray(preds.full_probs)[pred_rows],
            true_cells,
            cell_areas_km2=mesh.cell_areas_km2(),
        )
    else:
        sets = credible_sets(
            np.asarray(preds.top_cells)[pred_rows],
            np.asarray(preds.top_probs)[pred_rows],
            true_cells,
            cell_areas_km2=mesh.cell_areas_km2(),
        )
    result.calibration = {
        "top1_cell_accuracy": float(correct.mean()) if correct.size else float("nan"),
        "mean_top1_probability": float(confidence.mean()) if confidence.size else float("nan"),
        "ece": expected_calibration_error(confidence, correct),
        "probabilities": "full" if preds.full_probs is not None else "top-k",
        "sets": [s.summary() for s in sets],
    }
    result.reliability = reliability_curve(confidence, correct)


def _add_outdoor(result: ModelResult, truth: Truth, config: EvaluationConfig) -> None:
    outdoor = truth.outdoor[result.truth_rows]
    if not np.isfinite(outdoor).any():
        return
    mask = outdoor_mask(outdoor)
    block = _accuracy_block(result.errors_km[mask], config)
    stats = summarize_errors(result.errors_km[mask])
    keys = [f"{t:g}km" for t in config.thresholds_km]
    result.outdoor = {
        "photos": block["photos"],
        **_accuracy_json(keys, block["accuracy"], block["low"], block["high"]),
        **stats,
    }


def oracle_rows(
    truth: Truth,
    mesh: MeshLike,
    mesh_name: str,
    config: EvaluationConfig,
    labels: Sequence[str] = ("cell", "imagery"),
    truth_cells: NDArray | None = None,
) -> list[dict[str, Any]]:
    """Best possible accuracy of a mesh: every photo gets its true cell's label point.

    Scored, as in the study, over the truth photos that fall in kept cells;
    ``photos`` and ``photos_outside`` say how many that is.
    """
    cells = truth.cells_in(mesh) if truth_cells is None else truth_cells
    inside = cells >= 0
    out = []
    for label in labels:
        lat, lon = mesh.centroids(kind=label)
        errors = error_km(
            truth.lat[inside],
            truth.lon[inside],
            np.asarray(lat)[cells[inside]],
            np.asarray(lon)[cells[inside]],
            radius_km=config.radius_km,
        )
        block = _accuracy_block(errors, config)
        keys = [f"{t:g}km" for t in config.thresholds_km]
        out.append(
            {
                "model": "oracle (best possible)",
                "mesh": mesh_name,
                "mesh_hash": mesh.mesh_hash,
                "label": label,
                "photos": int(inside.sum()),
                "photos_outside": int((~inside).sum()),
                **_accuracy_json(keys, block["accuracy"], block["low"], block["high"]),
                **summarize_errors(errors),
            }
        )
    return out


def _continent_table(
    models: list[ModelResult], truth: Truth, config: EvaluationConfig
) -> pd.DataFrame:
    records = []
    continent = truth.continent
    for model in models:
        codes = continent[model.truth_rows]
        for code in sorted(np.unique(codes)):
            mask = codes == code
            block = _accuracy_block(model.errors_km[mask], config)
            record = {
                "model": model.name,
                "continent": CONTINENT_NAMES.get(code, code),
                "photos": block["photos"],
                "median_km": float(np.median(model.errors_km[mask])),
            }
            for t, acc, lo, hi in zip(
                config.thresholds_km, block["accuracy"], block["low"], block["high"], strict=True
            ):
                record[f"{t:g}km"] = float(acc)
                record[f"{t:g}km_ci"] = [float(lo), float(hi)]
            records.append(record)
    return pd.DataFrame.from_records(records)


def _subset(preds: Predictions, keep: NDArray[np.bool_]) -> Predictions:
    """The rows of ``preds`` where ``keep`` is true (all arrays, full vectors included)."""
    if keep.all():
        return preds
    rows = np.flatnonzero(keep)
    return Predictions(
        photo_id=preds.photo_id[rows],
        lat=preds.lat[rows],
        lon=preds.lon[rows],
        top_cells=None if preds.top_cells is None else preds.top_cells[rows],
        top_probs=None if preds.top_probs is None else preds.top_probs[rows],
        model_id=preds.model_id,
        mesh_hash=preds.mesh_hash,
        meta=preds.meta,
        full_probs=None if preds.full_probs is None else np.asarray(preds.full_probs[rows]),
    )


def evaluate(
    truth: Truth,
    predictions: Sequence[tuple[str, Predictions]],
    *,
    meshes: Sequence[tuple[str, MeshLike]] = (),
    config: EvaluationConfig | None = None,
    oracle: bool = False,
) -> Evaluation:
    """Score every model on the truth photos by the trigeo standard.

    Parameters
    ----------
    truth
        The evaluated photos (:meth:`Truth.from_dataset`).
    predictions
        ``(source name, Predictions)`` per model; model names must be unique.
    meshes
        ``(name, mesh)`` pairs; each model uses the mesh whose hash it records.
    config
        The evaluation standard's settings.
    oracle
        Add the best possible rows of every mesh (cell and imagery labels,
        or only ``config.label`` when set).

    Returns
    -------
    Evaluation
        Its ``warnings`` repeat every :class:`EvaluationWarning` raised.
    """
    config = config or EvaluationConfig()
    if not predictions and not oracle:
        raise InputError("nothing to evaluate: give at least one predictions file (or --oracle)")
    if oracle and not meshes:
        raise InputError("--oracle needs a mesh (--mesh)")
    mesh_map = {mesh.mesh_hash: (name, mesh) for name, mesh in meshes}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        truth_cells = {h: truth.cells_in(m) for h, (_, m) in mesh_map.items()}
        results: list[ModelResult] = []
        for source, preds in predictions:
            results.append(_score_model(preds, source, truth, mesh_map, truth_cells, config))
            # Averaging a photo-independent baseline reproduces it exactly: skip those rows.
            is_baseline = "baseline" in preds.meta.get("config", {})
            if config.averaging and preds.has_cells and not is_baseline:
                matched = mesh_map.get(preds.mesh_hash or "")
                centroids = None
                n_cells = None
                kind = config.label or "imagery"
                if matched is not None:
                    centroids = matched[1].centroids(kind=kind)
                    n_cells = int(matched[1].n_cells_)
                # Users and albums are formed from the evaluated photos only.
                # A hash lookup: np.isin on string ids can fall back to an O(n^2) loop.
                keep = pd.Index(truth.photo_id).get_indexer(preds.photo_id) >= 0
                evaluated = _subset(preds, keep)
                for derive in (average_by_user, average_by_album):
                    derived = derive(
                        evaluated, truth.table, centroids=centroids, n_cells=n_cells, label=kind
                    )
                    results.append(
                        _score_model(derived, source, truth, mesh_map, truth_cells, config)
                    )
        names = [r.name for r in results]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(
                f"several predictions files have the model id(s) {duplicates}; rename one "
                "(model ids label the report's rows)"
            )
        oracle_list: list[dict[str, Any]] = []
        if oracle:
            labels = (config.label,) if config.label else ("cell", "imagery")
            for mesh_hash, (name, mesh) in mesh_map.items():
                oracle_list += oracle_rows(
                    truth, mesh, name, config, labels, truth_cells[mesh_hash]
                )
        tests = compare_models(
            {r.name: (truth.photo_id[r.truth_rows], r.errors_km) for r in results}
        )
        continents = _continent_table(results, truth, config) if results else pd.DataFrame()
        confusions = {}
        for r in results:
            answered = r.answered
            true_country = truth.country[r.truth_rows[answered]]
            r.pred_country = country_of(r.pred_lat[answered], r.pred_lon[answered])
            confusions[r.name] = country_confusions(true_country, r.pred_country)
    messages = [str(w.message) for w in caught if issubclass(w.category, EvaluationWarning)]
    for w in caught:
        if not issubclass(w.category, EvaluationWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return Evaluation(
        config=config,
        n_truth=len(truth),
        models=results,
        oracle=oracle_list,
        wilcoxon=tests,
        continents=continents,
        confusions=confusions,
        warnings=messages,
        mesh_names={h: name for h, (name, _) in mesh_map.items()},
    )

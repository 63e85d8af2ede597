"""Score one model on the truth photos: errors, accuracies, KL, calibration, outdoor subset.

:func:`score_model` aligns a predictions file with the truth, scores photos it
did not predict per ``config.missing``, and fills a :class:`ModelResult`;
:func:`accuracy_block` is the accuracy-with-bootstrap-interval computation
shared with the oracle and per-continent rows.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.calibration import credible_sets, expected_calibration_error, reliability_curve
from trigeo.errors import InputError
from trigeo.evaluate.admin import admin_accuracy, admin_places
from trigeo.evaluate.geoscore import bootstrap_mean_ci, geoscore_from_errors
from trigeo.evaluate.inputs import (
    EvaluationWarning,
    MeshLike,
    _examples,
    align_predictions,
    check_predictions,
    detect_swapped_latlon,
)
from trigeo.evaluate.metrics import (
    accuracy_at,
    bootstrap_accuracy_ci,
    error_km,
    kept_cell_scores,
    outdoor_mask,
    summarize_errors,
)
from trigeo.evaluate.results import EvaluationConfig, ModelResult, accuracy_json, threshold_keys
from trigeo.evaluate.truth import Truth
from trigeo.predictions import Predictions

__all__ = ["MeshMap", "accuracy_block", "score_model", "truth_users"]

#: Mesh hash -> (name, mesh) of the meshes given to an evaluation.
MeshMap = dict[str, tuple[str, MeshLike]]

_SHOWN_MISSING = 20


def accuracy_block(
    errors: NDArray, config: EvaluationConfig, users: NDArray[np.int64] | None = None
) -> dict[str, Any]:
    """Accuracy at each threshold and its bootstrap interval, by the config's standard.

    Parameters
    ----------
    errors
        Per-photo errors in km.
    config
        The evaluation standard.
    users
        The user (code) of each photo; with ``config.ci_unit == "user"`` the
        interval resamples users with all their photos. None, or
        ``ci_unit == "photo"``, resamples photos.

    Returns
    -------
    dict
        ``photos`` (count), ``accuracy``, ``low`` and ``high`` (percentages per
        threshold) and ``ci_unit`` (what was resampled).
    """
    thresholds = config.thresholds_km
    acc = accuracy_at(errors, thresholds, strict_less=config.strict_less)
    groups = users if config.ci_unit == "user" else None
    low, high = bootstrap_accuracy_ci(
        errors,
        thresholds,
        n_resamples=config.n_resamples,
        confidence=config.confidence,
        seed=config.seed,
        strict_less=config.strict_less,
        groups=groups,
    )
    return {
        "photos": int(errors.size),
        "accuracy": acc,
        "low": low,
        "high": high,
        "ci_unit": "photo" if groups is None else "user",
    }


def truth_users(truth: Truth, rows: NDArray) -> NDArray[np.int64] | None:
    """User codes of the truth photos at ``rows`` (None when the truth has no users)."""
    codes = truth.user_codes
    return None if codes is None else codes[rows]


def _mesh_for(preds: Predictions, meshes: MeshMap, source: str) -> tuple[str, MeshLike] | None:
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
    """Predicted lat/lon of ``rows``: the file's, or the top cell's centroid of ``label``."""
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


def score_model(
    preds: Predictions,
    source: str,
    name: str,
    truth: Truth,
    meshes: MeshMap,
    truth_cells: dict[str, NDArray[np.int64]],
    config: EvaluationConfig,
) -> ModelResult:
    """Score one model on the truth photos.

    Parameters
    ----------
    preds
        The model's predictions.
    source
        Where they came from (a file name), for messages.
    name
        The model's display name in tables (:mod:`~trigeo.evaluate.naming`).
    truth
        The evaluated photos.
    meshes
        The given meshes by hash; the model uses the one matching its own hash.
    truth_cells
        Mesh hash -> cell of each truth photo (``truth.cells_in``).
    config
        The evaluation standard.

    Returns
    -------
    ModelResult
        Problems worked around (missing photos, a mesh that does not match,
        a likely lat/lon swap) are raised as :class:`EvaluationWarning`.
    """
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

    block = accuracy_block(errors, config, truth_users(truth, rows))
    stats = summarize_errors(errors)
    result = ModelResult(
        name=name,
        model_id=preds.model_id,
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
        ci_unit=block["ci_unit"],
        mean_km=stats["mean_km"],
        median_km=stats["median_km"],
    )
    _add_osv_metrics(result, truth, config)
    _add_classes(
        result, preds, align.pred_rows[answered_order], mesh, mesh_name, meshes, truth_cells
    )
    if not config.outdoor_only:
        _add_outdoor(result, truth, config)
    return result


def _add_osv_metrics(result: ModelResult, truth: Truth, config: EvaluationConfig) -> None:
    """OSV-5M's metrics: mean GeoScore with its interval, and admin-level accuracy.

    GeoScore is on its own 6371 km sphere whatever ``config.radius_km``
    (:mod:`~trigeo.evaluate.geoscore`); its interval resamples the same unit
    as the accuracies'. A photo scored as a miss gets the antipode's score
    and is wrong at every admin level.
    """
    scores = geoscore_from_errors(result.errors_km, config.radius_km)
    users = truth_users(truth, result.truth_rows) if config.ci_unit == "user" else None
    result.geoscore = float(scores.mean()) if scores.size else float("nan")
    result.geoscore_ci = bootstrap_mean_ci(
        scores,
        n_resamples=config.n_resamples,
        confidence=config.confidence,
        seed=config.seed,
        groups=users,
    )
    result.admin_accuracy = admin_accuracy(
        truth.admin_places.take(result.truth_rows),
        admin_places(result.pred_lat, result.pred_lon),
        result.answered,
        true_country=truth.admin_country[result.truth_rows],
    )


def _add_classes(
    result: ModelResult,
    preds: Predictions,
    pred_rows: NDArray,
    mesh: MeshLike | None,
    mesh_name: str | None,
    meshes: MeshMap,
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
    true_cells = truth_cells[kl_mesh_hash][rows]
    # Over the photos whose true cell is kept, as the oracle rows count them: photos no
    # model of the mesh can place would add the same constant to every model's KL.
    scores = kept_cell_scores(true_cells, pred_cells, int(kl_mesh.n_cells_))
    result.kl = scores.kl
    result.entropy = scores.entropy
    result.kl_photos = scores.photos
    result.kl_outside_share = scores.outside_share
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
    """The model's scores on the outdoor photos (when the dataset says which they are)."""
    outdoor = truth.outdoor[result.truth_rows]
    if not np.isfinite(outdoor).any():
        return
    mask = outdoor_mask(outdoor)
    block = accuracy_block(
        result.errors_km[mask], config, truth_users(truth, result.truth_rows[mask])
    )
    stats = summarize_errors(result.errors_km[mask])
    result.outdoor = {
        "photos": block["photos"],
        **accuracy_json(
            threshold_keys(config.thresholds_km), block["accuracy"], block["low"], block["high"]
        ),
        "ci_unit": block["ci_unit"],
        **stats,
    }

"""Evaluate any number of models on the same truth photos: the trusted standard.

:func:`evaluate` scores each model (trigeo predictions or a peer's lat/lon
CSV, :mod:`~trigeo.evaluate.scoring`), adds the best possible rows for each
mesh (:mod:`~trigeo.evaluate.oracle`), the Wilcoxon tests between every pair
of models, per-continent accuracy and country confusions
(:mod:`~trigeo.evaluate.regions`), and returns an :class:`Evaluation` that the
report renders.

The truth and result types used to live here and are still importable from
this module.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.errors import InputError
from trigeo.evaluate.averaging import average_by_album, average_by_user, recorded_label_kind
from trigeo.evaluate.inputs import EvaluationWarning, MeshLike
from trigeo.evaluate.naming import display_names
from trigeo.evaluate.oracle import oracle_rows
from trigeo.evaluate.paired import compare_models
from trigeo.evaluate.regions import confusion_tables, continent_table
from trigeo.evaluate.results import Evaluation, EvaluationConfig, ModelResult
from trigeo.evaluate.scoring import MeshMap, score_model
from trigeo.evaluate.truth import Truth
from trigeo.predictions import Predictions

__all__ = [
    "Evaluation",
    "EvaluationConfig",
    "ModelResult",
    "Truth",
    "evaluate",
    "oracle_rows",
]


def _subset(preds: Predictions, keep: NDArray[np.bool_]) -> Predictions:
    """The rows of ``preds`` where ``keep`` is true (all arrays, full vectors included)."""
    if keep.all():
        return preds
    rows = np.flatnonzero(keep)
    return dataclasses.replace(
        preds,
        photo_id=preds.photo_id[rows],
        lat=preds.lat[rows],
        lon=preds.lon[rows],
        top_cells=None if preds.top_cells is None else preds.top_cells[rows],
        top_probs=None if preds.top_probs is None else preds.top_probs[rows],
        full_probs=None if preds.full_probs is None else np.asarray(preds.full_probs[rows]),
    )


def _averaged(
    preds: Predictions, truth: Truth, mesh_map: MeshMap, config: EvaluationConfig
) -> list[Predictions]:
    """User- and album-averaged versions of a model, formed from the evaluated photos only."""
    matched = mesh_map.get(preds.mesh_hash or "")
    centroids = None
    n_cells = None
    # The file's own label kind (a `predict --label cell` file, or a hierarchical file of
    # cell-label parts, averages to cell centroids too).
    kind = config.label or recorded_label_kind(preds) or "imagery"
    if matched is not None:
        centroids = matched[1].centroids(kind=kind)
        n_cells = int(matched[1].n_cells_)
    # A hash lookup: np.isin on string ids can fall back to an O(n^2) loop.
    keep = pd.Index(truth.photo_id).get_indexer(preds.photo_id) >= 0
    evaluated = _subset(preds, keep)
    return [
        derive(evaluated, truth.table, centroids=centroids, n_cells=n_cells, label=kind)
        for derive in (average_by_user, average_by_album)
    ]


def _check_unique(results: list[ModelResult]) -> None:
    """Model ids identify rows in metrics.json and names label them: neither may repeat."""
    ids = [r.model_id for r in results]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(
            f"several predictions files have the model id(s) {duplicates}; rename one "
            "(model ids identify the rows of metrics.json)"
        )
    names = [r.name for r in results]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # Shared names were numbered already: only a name that looks like an
        # averaged row ("X +user-avg") can still collide.
        raise InputError(
            f"the display name(s) {duplicates} label several rows of the report; "
            "choose another --name"
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
        ``(source name, Predictions)`` per model; model ids must be unique. Each
        model is shown under its display name (``Predictions.model_name``, else
        the shortened source file stem; see :mod:`~trigeo.evaluate.naming`),
        numbered when several models share one.
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
        Its ``warnings`` repeat every :class:`EvaluationWarning` raised. Its
        ``config`` is the one used: ``ci_unit`` falls back to ``"photo"``
        (with a line in ``notes``) when the truth has no ``user_id``.
    """
    config = config or EvaluationConfig()
    notes: list[str] = []
    if config.ci_unit == "user" and not truth.has_users:
        # Without users the clustered interval cannot be formed; say so rather than fail,
        # and record the unit actually used in the returned (and stored) config.
        config = dataclasses.replace(config, ci_unit="photo")
        notes.append(
            "the truth has no user_id, so confidence intervals resample photos "
            "(--ci-unit photo) and the user-level paired tests are skipped"
        )
    if not predictions and not oracle:
        raise InputError("nothing to evaluate: give at least one predictions file (or --oracle)")
    if oracle and not meshes:
        raise InputError("--oracle needs a mesh (--mesh)")
    mesh_map = {mesh.mesh_hash: (name, mesh) for name, mesh in meshes}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        truth_cells = {h: truth.cells_in(m) for h, (_, m) in mesh_map.items()}
        results: list[ModelResult] = []
        names = display_names(predictions)
        for (source, preds), name in zip(predictions, names, strict=True):
            results.append(score_model(preds, source, name, truth, mesh_map, truth_cells, config))
            # Averaging a photo-independent baseline reproduces it exactly: skip those rows.
            is_baseline = "baseline" in preds.meta.get("config", {})
            if config.averaging and preds.has_cells and not is_baseline:
                for derived in _averaged(preds, truth, mesh_map, config):
                    derived_name = f"{name} {derived.meta['derived']}"
                    results.append(
                        score_model(
                            derived, source, derived_name, truth, mesh_map, truth_cells, config
                        )
                    )
        _check_unique(results)
        oracle_list: list[dict[str, Any]] = []
        if oracle:
            labels = (config.label,) if config.label else ("cell", "imagery")
            for mesh_hash, (name, mesh) in mesh_map.items():
                oracle_list += oracle_rows(
                    truth, mesh, name, config, labels, truth_cells[mesh_hash]
                )
        tests = compare_models(
            {r.name: (truth.photo_id[r.truth_rows], r.errors_km) for r in results},
            users=(truth.photo_id, truth.user_codes) if truth.has_users else None,
            thresholds_km=config.thresholds_km,
            strict_less=config.strict_less,
        )
        continents = continent_table(results, truth, config) if results else pd.DataFrame()
        confusions = confusion_tables(results, truth)
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
        notes=notes,
        country_lookups=truth.country_lookups(),
    )

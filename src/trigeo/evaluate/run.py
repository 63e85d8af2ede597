"""``trigeo evaluate`` as one library call: files in, report directory out.

:func:`run_evaluation` opens the dataset, meshes and predictions files, adds
the requested baselines, scores everything with :func:`~trigeo.evaluate.core.evaluate`,
records the inputs' hashes and writes the report. The command line only
parses its options into these arguments and prints the result.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.evaluate.baselines import BASELINES, predict_prior
from trigeo.evaluate.core import evaluate
from trigeo.evaluate.inputs import EvaluationWarning, MeshLike, load_predictions
from trigeo.evaluate.report import build_figures, write_report
from trigeo.evaluate.results import Evaluation, EvaluationConfig
from trigeo.evaluate.truth import Truth
from trigeo.predictions import Predictions
from trigeo.provenance import hash_file, make_provenance

__all__ = ["EvaluationRun", "run_evaluation"]


@dataclass
class EvaluationRun:
    """What :func:`run_evaluation` produced.

    Attributes
    ----------
    evaluation
        Every score; its ``warnings`` start with the problems found while
        reading the files.
    written
        Report artifact name (``report.md``, ``metrics.json``, ``figures/...``) -> path.
    """

    evaluation: Evaluation
    written: dict[str, Path]


def _check_baselines(baselines: Sequence[str], meshes: Sequence[str | Path]) -> None:
    for name in baselines:
        if name not in BASELINES:
            raise InputError(f"unknown --baseline {name!r}; choose from {', '.join(BASELINES)}")
        if not meshes:
            raise InputError(f"--baseline {name} predicts from a mesh's class counts; add --mesh")


def _check_names(names: Sequence[str], preds: Sequence[Path]) -> None:
    if not names:
        return
    if len(names) != len(preds):
        raise InputError(
            f"--name was given {len(names)} time(s) for {len(preds)} --pred file(s); give "
            "one --name per --pred, in the same order (or none to use the files' own names)"
        )
    for name, path in zip(names, preds, strict=True):
        if not name.strip():
            raise InputError(f"--name for {path} is empty; give a short name such as 'M1 coarse'")


def _load_meshes(paths: Sequence[Path], inputs: dict[str, str]) -> list[tuple[str, MeshLike]]:
    """``(file stem, mesh)`` per mesh file; records each file's hash in ``inputs``."""
    if not paths:
        return []
    # The mesh package pulls in numba: only pay for it when a mesh is given.
    from trigeo.mesh import load_mesh

    meshes = []
    for path in paths:
        meshes.append((path.stem, load_mesh(path)))
        inputs[f"mesh:{path}"] = hash_file(path)
    return meshes


def _load_predictions(
    paths: Sequence[Path], names: Sequence[str], inputs: dict[str, str]
) -> tuple[list[tuple[str, Predictions]], list[str]]:
    """Each file's predictions (named ``names`` if given) and the warnings raised reading them."""
    predictions = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EvaluationWarning)
        for i, path in enumerate(paths):
            preds = load_predictions(path)
            if names:
                preds = dataclasses.replace(preds, model_name=names[i].strip())
            predictions.append((str(path), preds))
    for path in paths:
        inputs[f"pred:{path}"] = hash_file(path)
        probs = path.with_suffix(".probs.npy")
        if probs.exists():
            inputs[f"pred:{probs}"] = hash_file(probs)
    messages = [str(w.message) for w in caught if issubclass(w.category, EvaluationWarning)]
    return predictions, messages


def run_evaluation(
    truth: str | Path,
    out: str | Path,
    *,
    preds: Sequence[str | Path] = (),
    names: Sequence[str] = (),
    meshes: Sequence[str | Path] = (),
    baselines: Sequence[str] = (),
    config: EvaluationConfig | None = None,
    oracle: bool = False,
    figures: bool = True,
) -> EvaluationRun:
    """Score predictions files against a dataset and write the report to ``out``.

    Parameters
    ----------
    truth
        Dataset directory holding the true locations.
    out
        Report directory (report.md, report.html, metrics.json, figures/, missing/).
    preds
        Predictions Parquet files or peers' ``photo_id,lat,lon`` CSVs.
    names
        Display names of ``preds``, one each in the same order (empty: each
        file's ``model_name``, else its shortened stem; see
        :mod:`~trigeo.evaluate.naming`).
    meshes
        Mesh files; each model uses the one matching its mesh hash.
    baselines
        Reference predictors (:data:`~trigeo.evaluate.baselines.BASELINES`),
        scored once per mesh.
    config
        The evaluation standard (thresholds, radius, split, ...).
    oracle
        Add the best possible rows of each mesh.
    figures
        Draw the report's figures.

    Returns
    -------
    EvaluationRun

    Raises
    ------
    InputError
        For anything that makes the scores meaningless (named file, row and column).
    """
    config = config or EvaluationConfig()
    pred_paths = [Path(p) for p in preds]
    mesh_paths = [Path(m) for m in meshes]
    _check_names(names, pred_paths)
    _check_baselines(baselines, mesh_paths)
    dataset = Dataset.open(truth)
    truth_photos = Truth.from_dataset(dataset, split=config.split, outdoor_only=config.outdoor_only)
    inputs = {f"truth:{truth}": dataset.hash}
    mesh_list = _load_meshes(mesh_paths, inputs)
    predictions, read_warnings = _load_predictions(pred_paths, names, inputs)
    for name in baselines:
        for mesh_name, mesh in mesh_list:
            model_id = f"{name} baseline ({mesh_name})"
            prior = predict_prior(
                mesh,
                truth_photos.photo_id,
                label=config.label or "imagery",
                model_id=model_id,
                # One mesh: plain "prior"; several: say whose class counts it predicts.
                model_name=name if len(mesh_list) == 1 else f"{name} ({mesh_name})",
            )
            predictions.append((model_id, prior))
    evaluation = evaluate(truth_photos, predictions, meshes=mesh_list, config=config, oracle=oracle)
    # Problems found while reading files (e.g. swapped columns) lead the report's warnings.
    evaluation.warnings[:0] = read_warnings
    provenance = make_provenance(
        {
            **config.as_dict(),
            "truth": str(truth),
            "pred": [str(p) for p in pred_paths],
            "name": list(names),
            "mesh": [str(m) for m in mesh_paths],
            "baseline": list(baselines),
            "oracle": oracle,
        },
        inputs,
    )
    drawn = build_figures(evaluation, truth_photos, mesh_list) if figures else []
    return EvaluationRun(evaluation, write_report(evaluation, out, provenance, drawn))

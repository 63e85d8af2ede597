"""Hierarchical inference across meshes: coarse meshes vote on the fine mesh's cells.

Coarse meshes win at 750/2500 km and fine meshes at 1/25 km (the study's
finding). Following the hierarchical scheme of the S2-cell systems, each cell
``f`` of the finest mesh is scored by

    score(f) = p_fine(f) * prod_c p_c(parent_c(f)),

where ``parent_c(f)`` is the cell of coarser mesh ``c`` that contains ``f``'s
label point (its imagery centroid by default), and the scores are
renormalised per photo. The result is a normal predictions file on the finest
mesh.

Inputs are predictions files. With full probabilities (``trigeo predict
--full-probs``) the product is exact. With top-k only, the probability mass a
file does not list (1 - sum of its top-k) is spread evenly over the cells it
does not list: the maximum-entropy reading of a truncated distribution, and it
never zeroes a fine cell outright. A fine cell whose label point falls outside
every kept cell of a coarse mesh gets that mesh's unlisted-cell probability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.errors import InputError
from trigeo.predictions import Predictions
from trigeo.runtime.options import InferenceOptions

__all__ = [
    "HierarchicalResult",
    "combine_hierarchical",
    "dense_probabilities",
    "predict_hierarchical",
]

log = logging.getLogger("trigeo.predict")

_CHUNK_ROWS = 2048


@dataclass
class HierarchicalResult:
    """Combined top-k on the finest mesh, for the photos every input predicted.

    ``path`` and ``mesh`` are the file written and the finest mesh (set by
    :func:`predict_hierarchical`; ``None`` from :func:`combine_hierarchical`).
    """

    photo_id: NDArray[np.str_]
    top_cells: NDArray[np.int32]
    top_probs: NDArray[np.float32]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    path: Path | None = None
    mesh: Any = None

    def outputs(self) -> list[tuple[Path, Any]]:
        """``(predictions file, its mesh)``: the one file written."""
        return [] if self.path is None else [(self.path, self.mesh)]


def dense_probabilities(preds: Predictions, rows: NDArray[np.int64], n_cells: int) -> NDArray:
    """Probability vectors ``(len(rows), n_cells)`` of the given rows of ``preds``.

    Full probabilities when the file has them; otherwise the top-k scattered
    and the unlisted mass spread evenly over the unlisted cells.
    """
    if preds.full_probs is not None:
        probs = np.asarray(preds.full_probs[rows], dtype=np.float64)
        if probs.shape[1] != n_cells:
            raise InputError(
                f"{preds.model_id}: {probs.shape[1]} probabilities per photo but the mesh has "
                f"{n_cells} cells"
            )
        return probs
    if preds.top_cells is None or preds.top_probs is None:
        raise InputError(f"{preds.model_id}: a lat/lon-only file has no cell probabilities")
    cells = preds.top_cells[rows].astype(np.int64)
    listed = preds.top_probs[rows].astype(np.float64)
    if cells.size and cells.max() >= n_cells:
        raise InputError(f"{preds.model_id}: cell id {cells.max()} beyond the mesh's {n_cells}")
    rest = np.clip(1.0 - listed.sum(axis=1), 0.0, None) / max(n_cells - cells.shape[1], 1)
    probs = np.repeat(rest[:, None], n_cells, axis=1)
    np.put_along_axis(probs, cells, listed, axis=1)
    return probs


def _parents(fine_mesh: Any, coarse_mesh: Any, label: str) -> NDArray[np.int64]:
    lat, lon = fine_mesh.centroids(kind=label)
    return np.asarray(coarse_mesh.locate(np.asarray(lat), np.asarray(lon)), dtype=np.int64)


def combine_hierarchical(
    fine: Predictions,
    fine_mesh: Any,
    coarse: Sequence[Predictions],
    coarse_meshes: Sequence[Any],
    *,
    label: str = "imagery",
    top_k: int = 20,
) -> HierarchicalResult:
    """Combine a fine mesh's predictions with coarser meshes' predictions.

    Parameters
    ----------
    fine, fine_mesh
        Predictions on the finest mesh and that mesh.
    coarse, coarse_meshes
        Predictions on each coarser mesh, and the meshes, in the same order.
    label
        Which point of a fine cell finds its coarse parents and is reported
        as the predicted location (``imagery`` or ``cell``).
    top_k
        Cells kept per photo in the result.

    Raises
    ------
    InputError
        A predictions file made on another mesh, no photo common to all
        inputs, or mismatched lengths.
    """
    if len(coarse) != len(coarse_meshes) or not coarse:
        raise InputError("give one mesh per coarse predictions file (at least one)")
    for preds, mesh in ((fine, fine_mesh), *zip(coarse, coarse_meshes, strict=True)):
        if preds.mesh_hash and str(preds.mesh_hash) != str(mesh.mesh_hash):
            raise InputError(
                f"{preds.model_id} was predicted on mesh {preds.mesh_hash}, not on "
                f"{mesh.mesh_hash}; pass the mesh each model was trained with"
            )
    common = np.asarray(fine.photo_id)
    for preds in coarse:
        common = np.intersect1d(common, preds.photo_id)
    if common.size == 0:
        raise InputError("the predictions files have no photo in common")
    positions = [np.searchsorted(np.sort(p.photo_id), common) for p in (fine, *coarse)]
    order = [np.argsort(p.photo_id, kind="stable") for p in (fine, *coarse)]
    rows = [o[pos] for o, pos in zip(order, positions, strict=True)]
    n_fine = int(fine_mesh.n_cells_)
    parents = [_parents(fine_mesh, mesh, label) for mesh in coarse_meshes]
    k = min(top_k, n_fine)
    top_cells = np.empty((common.size, k), dtype=np.int32)
    top_probs = np.empty((common.size, k), dtype=np.float32)
    for start in range(0, common.size, _CHUNK_ROWS):
        chunk = slice(start, start + _CHUNK_ROWS)
        score = dense_probabilities(fine, rows[0][chunk], n_fine)
        for preds, mesh, parent, row in zip(coarse, coarse_meshes, parents, rows[1:], strict=True):
            coarse_probs = dense_probabilities(preds, row[chunk], int(mesh.n_cells_))
            # Outside every kept coarse cell: that file's unlisted-cell probability.
            floor = coarse_probs.min(axis=1, keepdims=True)
            factor = np.where(parent >= 0, coarse_probs[:, np.maximum(parent, 0)], floor)
            score *= factor
        total = score.sum(axis=1, keepdims=True)
        score = np.divide(score, total, out=np.full_like(score, 1.0 / n_fine), where=total > 0)
        best = np.argpartition(-score, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(score, best, axis=1)
        # Descending score, ties to the lower cell id: the same answer on every platform.
        ranked = np.lexsort((best, -best_scores), axis=1)
        top_cells[chunk] = np.take_along_axis(best, ranked, axis=1)
        top_probs[chunk] = np.take_along_axis(best_scores, ranked, axis=1)
    lat, lon = (np.asarray(a, dtype=np.float64) for a in fine_mesh.centroids(kind=label))
    return HierarchicalResult(
        photo_id=common,
        top_cells=top_cells,
        top_probs=top_probs,
        lat=lat[top_cells[:, 0]],
        lon=lon[top_cells[:, 0]],
    )


def predict_hierarchical(
    model_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    images: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    split: str | None = "val",
    heads: Sequence[str] | None = None,
    name: str | None = None,
    top_k: int = 20,
    five_crop: bool = False,
    label: str | None = None,
    answer: str = "top-cell",
    options: InferenceOptions | None = None,
    report: Callable[[str], None] = log.info,
) -> HierarchicalResult | None:
    """Run M1 models (or one multi-head M1) over the same photos and combine them.

    The mesh with the most cells is the fine one; the others vote through
    their cells' probabilities. Each mesh's full probabilities are kept next
    to the output (``<out>.parts/``), so the combination is exact. The
    output's provenance config records ``label_kind`` (the fine part's: its
    lat/lon are that kind of label point) and each part's ``model_id``,
    ``mesh_hash`` and ``label_kind`` under ``parts``.

    Parameters
    ----------
    model_dirs
        Two or more single-head M1 model directories trained on meshes of the
        same photos, or one multi-head M1 (one backbone pass serves every head).
    images, data, split, five_crop, label, options
        Passed to :func:`~trigeo.predict.m1.predict_m1` for every part.
    heads
        A multi-head M1's heads to combine (default: all of them).
    answer
        The rule choosing each photo's reported point from the combined top
        cells and the fine mesh's label points: ``top-cell``, ``geoscore``
        or ``median`` (:mod:`trigeo.answer`).

    Returns
    -------
    HierarchicalResult or None
        ``None`` on non-zero DDP ranks.

    Raises
    ------
    InputError
        Fewer than two meshes, ``heads`` with several model directories, an
        unknown head, or a model directory that is not an M1.
    """
    from trigeo.answer import answer_points, check_cell_answer
    from trigeo.models.m1 import M1Model
    from trigeo.predict.m1 import predict_m1

    check_cell_answer(answer)
    models = [M1Model.load(path) for path in model_dirs]
    chosen = _chosen_heads(models, heads)
    run_part = partial(
        predict_m1,
        images=images,
        data=data,
        split=split,
        five_crop=five_crop,
        label=label,
        options=options,
        full_probs=True,
        top_k=top_k,
        report=report,
    )
    parts = _predict_parts(models, model_dirs, chosen, Path(str(out) + ".parts"), run_part)
    if parts is None:
        return None
    parts.sort(key=lambda m: -int(m.mesh.n_cells_))
    fine, coarse = parts[0], parts[1:]
    combined = combine_hierarchical(
        fine.preds,
        fine.mesh,
        [m.preds for m in coarse],
        [m.mesh for m in coarse],
        label=fine.label_kind,
        top_k=top_k,
    )
    label_lat, label_lon = fine.mesh.centroids(kind=fine.label_kind)
    combined.lat, combined.lon = answer_points(
        answer, combined.top_cells, combined.top_probs, label_lat, label_lon
    )
    _write_combined(out, combined, parts, name=name, top_k=top_k, answer=answer)
    names = " x ".join(m.name for m in parts)
    report(f"wrote {len(combined.photo_id)} hierarchical predictions ({names}) to {out}")
    combined.path, combined.mesh = Path(out), fine.mesh
    return combined


@dataclass
class _Part:
    """One mesh's predictions: its display name, mesh, label kind, ids and the file read."""

    name: str
    mesh: Any
    label_kind: str
    model_id: str
    mesh_hash: str
    preds: Predictions


def _chosen_heads(models: Sequence[Any], heads: Sequence[str] | None) -> list[int] | None:
    """A multi-head M1's heads to combine (``None``: several single-head models).

    Raises
    ------
    InputError
        Fewer than two heads or models, or ``heads`` with several models.
    """
    if len(models) == 1 and models[0].is_multi_head:
        model = models[0]
        chosen = [model.head_index(h) for h in heads] if heads else range(len(model.heads))
        chosen = list(dict.fromkeys(chosen))
        if len(chosen) < 2:
            raise InputError("--hierarchical needs two or more heads to combine")
        return chosen
    if heads:
        raise InputError("--head chooses heads of one multi-head M1, not of several models")
    if len(models) < 2:
        raise InputError(
            "--hierarchical needs two or more --model directories (M1 models), "
            "or one M1 trained with several --mesh"
        )
    return None


def _predict_parts(
    models: Sequence[Any],
    model_dirs: Sequence[str | Path],
    chosen: list[int] | None,
    parts: Path,
    run_part: Callable[..., Any],
) -> list[_Part] | None:
    """Each mesh's predictions with full probabilities, under ``parts`` (``None`` off rank 0).

    ``chosen``: the heads of one multi-head model, else each model's primary head.
    """
    from trigeo.predictions import read_predictions

    multi = chosen is not None
    members: list[_Part] = []
    for i, model in enumerate(models):
        stem = Path(model_dirs[i]).name
        path = parts / (f"{stem}.parquet" if multi else f"{i}-{stem}.parquet")
        # The loaded model is passed on: its weights and meshes are read once.
        result = run_part(model, path)
        if result is None:
            return None
        for h in chosen if chosen is not None else [model.net.primary]:
            spec = model.heads[h]
            preds = read_predictions(result.files[spec.name])
            # The part's own record: `--label` may have overridden the model's label kind.
            kind = (preds.meta.get("config") or {}).get("label_kind") or model.label_kind
            members.append(
                _Part(preds.model_name, spec.mesh, kind, preds.model_id, spec.mesh_hash, preds)
            )
    return members


def _write_combined(
    out: str | Path,
    combined: HierarchicalResult,
    parts: Sequence[_Part],
    *,
    name: str | None,
    top_k: int,
    answer: str,
) -> None:
    """Write the combined predictions on the fine mesh (``parts[0]``)."""
    from trigeo.answer import answer_model_id
    from trigeo.predictions import write_predictions
    from trigeo.provenance import make_provenance

    fine = parts[0]
    names = " x ".join(m.name for m in parts)
    write_predictions(
        out,
        combined.photo_id,
        combined.lat,
        combined.lon,
        top_cells=combined.top_cells,
        top_probs=combined.top_probs,
        model_id=answer_model_id(
            "hier-" + "-".join(m.model_id.rsplit("-", 1)[-1] for m in parts), answer
        ),
        model_name=name or f"hier {names}"[:40] + ("" if answer == "top-cell" else f" {answer}"),
        mesh_hash=fine.mesh_hash,
        provenance=make_provenance(
            {
                "rule": "fine probability x coarse parents' probabilities",
                "top_k": top_k,
                # The reported point is the fine part's label point: averaging and
                # evaluation read this to re-derive points of the same kind.
                "label_kind": fine.label_kind,
                "parts": [
                    {"model_id": m.model_id, "mesh_hash": m.mesh_hash, "label_kind": m.label_kind}
                    for m in parts
                ],
            },
            {m.model_id: m.mesh_hash for m in parts},
        ),
        answer=answer,
        answer_params={"top_k": int(combined.top_cells.shape[1])},
    )

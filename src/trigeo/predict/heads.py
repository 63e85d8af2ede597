"""Predict with a saved M2 or M3 model directory: M1's top cells + posting times -> cells.

The head's input needs M1's predictions for the same photos. They come from
``m1_pred`` (a predictions file made by the head's M1), or else the M1
recorded in the head's model directory (or ``m1_dir``) is run over the same
photos first and its file is kept next to the output (``<out>.m1.parquet``).
Posting times (and, for M3, user ids) come from the dataset; for image
files from ``posted_at`` or EXIF (:mod:`trigeo.predict.times`). Photos
without a time or an M1 prediction are left out and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.images import expand_image_paths
from trigeo.errors import InputError
from trigeo.predict.m1 import PredictResult
from trigeo.provenance import make_provenance

__all__ = ["predict_head"]

log = logging.getLogger("trigeo.predict")


def _image_times(
    paths: list[Path], posted_at: str | None
) -> tuple[pd.Series, np.ndarray, dict[str, str]]:
    """Posting time and its source per image; reasons for the images without one."""
    from trigeo.predict.times import exif_posting_time, parse_posted_at

    if posted_at is not None:
        stamp = parse_posted_at(posted_at)
        return (
            pd.Series([stamp] * len(paths), dtype="datetime64[ns, UTC]"),
            np.array(["--posted-at"] * len(paths), dtype=object),
            {},
        )
    times, sources, missing = [], [], {}
    for path in paths:
        stamp, note = exif_posting_time(path)
        times.append(stamp if stamp is not None else pd.NaT)
        sources.append(note if stamp is not None else "none")
        if stamp is None:
            missing[str(path)] = note
    return pd.Series(pd.to_datetime(times, utc=True)), np.array(sources, dtype=object), missing


def _m1_predictions(
    model: Any,
    out: Path,
    m1_pred: str | Path | None,
    m1_dir: str | Path | None,
    run_m1: Callable[..., Any],
    report: Callable[[str], None],
) -> Any:
    from trigeo.models.m2 import check_m1_predictions, read_model_json
    from trigeo.predictions import read_predictions

    if m1_pred is not None:
        path = Path(m1_pred)
        if not path.exists():
            raise InputError("M1 predictions file not found", source=path)
    else:
        directory = Path(m1_dir or model.m1["dir"])
        meta = read_model_json(directory) if (directory / "model.json").exists() else None
        if meta is None:
            raise InputError(
                f"{model.name} needs M1's predictions: the M1 it was trained on "
                f"({model.m1['model_id']}) is not at {directory}; pass --m1 DIR or "
                "--m1-pred FILE",
                source=directory,
            )
        if meta.get("model_id") != model.m1["model_id"]:
            raise InputError(
                f"{directory} holds M1 {meta.get('model_id')}, but {model.name} was trained on "
                f"{model.m1['model_id']}; pass the M1 it was trained on",
                source=directory,
            )
        path = out.with_name(out.name.removesuffix(".parquet") + ".m1.parquet")
        report(f"running M1 {meta.get('name') or ''} ({directory}) for {model.name}'s input")
        run_m1(directory, path)
    pred = read_predictions(path)
    check_m1_predictions(pred, path, {"model_id": model.m1["model_id"], **model.m1})
    return pred, path


def predict_head(
    model: Any,
    out: str | Path,
    *,
    images: Sequence[str | Path] | None = None,
    data: str | Path | None = None,
    split: str | None = "val",
    m1_pred: str | Path | None = None,
    m1_dir: str | Path | None = None,
    posted_at: str | None = None,
    name: str | None = None,
    top_k: int = 20,
    answer: str = "top-cell",
    m1_options: dict[str, Any] | None = None,
    device: str = "cpu",
    report: Callable[[str], None] = log.info,
) -> PredictResult:
    """Predict cells with an M2 or M3 model and write a predictions file.

    Parameters
    ----------
    model
        A loaded :class:`~trigeo.models.m2.M2Model` or
        :class:`~trigeo.models.m3.M3Model`.
    images, data, split
        Image files or folders, or a dataset and its split (``None``: every
        photo). For M3, the images given are taken as one user's photos.
    m1_pred
        M1's predictions for these photos; default: run the head's M1.
    m1_dir
        Where the head's M1 lives now (default: the directory recorded at training).
    posted_at
        ISO 8601 time with an offset for every image (image mode only);
        default: each image's EXIF time.
    answer
        The rule choosing each photo's reported point from its top cells:
        ``top-cell``, ``geoscore`` or ``median`` (:mod:`trigeo.answer`).
    m1_options
        Keyword arguments for :func:`~trigeo.predict.m1.predict_m1` when M1 runs.

    Raises
    ------
    InputError
        Neither or both inputs; ``posted_at`` with a dataset; no photo with a
        posting time (names the images and why); M1 predictions from another
        M1 or mesh.
    """
    from trigeo.answer import answer_model_id, answer_points, check_cell_answer
    from trigeo.data.table import Dataset
    from trigeo.models.m2 import has_posting_time, m2_inputs
    from trigeo.predict.m1 import predict_m1
    from trigeo.predictions import write_predictions

    out = Path(out)
    if (images is None or len(images) == 0) == (data is None):
        raise InputError("give either image paths or --data DATASET (not both)")
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    check_cell_answer(answer)
    inputs: dict[str, str] = {"model": model.model_id, "mesh": model.mesh_hash}
    missing: dict[str, str] = {}
    if data is not None:
        if posted_at is not None:
            raise InputError("--posted-at is for image files; a dataset has its own times")
        dataset = Dataset.open(data)
        rows = dataset.photos(split)
        ids = rows["photo_id"].astype(str).to_numpy()
        users = rows["user_id"].astype(str).to_numpy()
        times = pd.to_datetime(rows["posted_at"], utc=True).reset_index(drop=True)
        sources = np.array(["dataset"] * len(rows), dtype=object)
        timed = has_posting_time(rows)
        missing = {pid: "no posting time" for pid in ids[~timed]}
        inputs["dataset"] = dataset.hash
        target: dict[str, Any] = {"data": dataset.root, "split": split}
    else:
        paths = expand_image_paths(images or [])
        if not paths:
            raise InputError("no image files found in the given paths")
        ids = np.array([str(p) for p in paths])
        users = np.array(["images"] * len(paths))
        times, sources, missing = _image_times(paths, posted_at)
        timed = times.notna().to_numpy()
        target = {"images": paths}
        if not timed.any():
            shown = "; ".join(f"{p}: {why}" for p, why in list(missing.items())[:5])
            raise InputError(
                f"{model.name} needs each photo's posting time and none has one ({shown}); "
                "pass --posted-at 2014-07-01T21:30:00+02:00 (ISO 8601 with an offset)",
                column="--posted-at",
            )

    def run_m1(directory: Path, path: Path) -> None:
        from trigeo.models.heads import read_model_json
        from trigeo.models.m1 import head_record

        meta = read_model_json(directory)
        # A multi-head M1: only the head this model was trained on, written to `path`.
        head = head_record(meta, model.mesh_hash)["name"] if meta.get("heads") else None
        predict_m1(
            directory,
            path,
            **target,
            head=head,
            top_k=max(20, model.top_k),
            **(m1_options or {}),
        )

    pred, pred_path = _m1_predictions(model, out, m1_pred, m1_dir, run_m1, report)
    inputs["m1_predictions"] = str(pred_path)
    position = pd.Series(np.arange(len(pred.photo_id)), index=pred.photo_id)
    where = position.reindex(ids).to_numpy()
    predicted = ~np.isnan(where)
    for pid in ids[timed & ~predicted]:
        missing[str(pid)] = "no M1 prediction"
    keep = timed & predicted
    counts = {
        "photos": len(ids),
        "no_posting_time": int((~timed).sum()),
        "no_m1_prediction": int((timed & ~predicted).sum()),
        "predicted": int(keep.sum()),
    }
    for photo, why in list(missing.items())[:10]:
        report(f"left out {photo}: {why}")
    if counts["no_posting_time"] or counts["no_m1_prediction"]:
        report(
            f"left out {counts['no_posting_time']} photos without a posting time and "
            f"{counts['no_m1_prediction']} without an M1 prediction, of {len(ids)}"
        )
    if not keep.any():
        raise InputError(f"no photo left to predict with {model.name}: {counts}")
    where = where[keep].astype(np.int64)
    ids, users, sources = ids[keep], users[keep], sources[keep]
    times = times[keep].reset_index(drop=True)
    if data is None:
        for photo, stamp, source in list(zip(ids, times, sources, strict=True))[:20]:
            report(f"{photo}: posted {stamp:%Y-%m-%d %H:%M:%S} UTC (from {source})")
    x = m2_inputs(
        pred.top_cells[where], pred.top_probs[where], model.num_classes, times, top_k=model.top_k
    )
    if hasattr(model, "predict_albums"):
        probs = model.predict_albums(x, users, times, ids, device=device)
    else:
        probs = model.predict_proba(x, device=device)
    k = min(top_k, probs.shape[1])
    top_cells = np.argsort(-probs, axis=1, kind="stable")[:, :k].astype(np.int32)
    top_probs = np.take_along_axis(probs, top_cells, axis=1)
    label_lat, label_lon = model.label_points()
    lat, lon = answer_points(answer, top_cells, top_probs, label_lat, label_lon)
    source_counts = {str(s): int(n) for s, n in pd.Series(sources).value_counts().items()}
    model_id = answer_model_id(model.model_id, answer)
    display = name or (model.name if answer == "top-cell" else f"{model.name} {answer}")
    path = write_predictions(
        out,
        ids,
        lat,
        lon,
        top_cells=top_cells,
        top_probs=top_probs,
        model_id=model_id,
        model_name=display,
        mesh_hash=model.mesh_hash,
        provenance=make_provenance(
            {"top_k": top_k, "split": split if data is not None else None},
            inputs,
            counts=counts,
            time_sources=source_counts,
            left_out=dict(list(missing.items())[:100]),
        ),
        answer=answer,
        answer_params={"top_k": int(top_cells.shape[1])},
    )
    report(
        f"wrote {len(ids)} {model.name} predictions to {path} (posting time from "
        + ", ".join(f"{s}: {n}" for s, n in source_counts.items())
        + ")"
    )
    return PredictResult(
        path=Path(path),
        photo_id=ids,
        lat=lat,
        lon=lon,
        top_cells=top_cells,
        top_probs=top_probs,
        skipped=missing,
        label_lat=label_lat,
        label_lon=label_lon,
        model_id=model_id,
        model_name=display,
        files={model.name: Path(path)},
        meshes={model.name: model.mesh},
    )

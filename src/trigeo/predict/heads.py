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

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trigeo.data.images import expand_image_paths
from trigeo.errors import InputError
from trigeo.predict.m1 import PredictResult
from trigeo.provenance import make_provenance
from trigeo.runtime.options import InferenceOptions

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
    five_crop: bool = False,
    options: InferenceOptions | None = None,
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
    five_crop, options
        How :func:`~trigeo.predict.m1.predict_m1` runs when M1 runs (default:
        :class:`InferenceOptions`).
    device
        The torch device the head itself runs on.

    Raises
    ------
    InputError
        Neither or both inputs; ``posted_at`` with a dataset; no photo with a
        posting time (names the images and why); M1 predictions from another
        M1 or mesh.
    """
    from trigeo.answer import check_cell_answer
    from trigeo.models.m2 import m2_inputs

    out = Path(out)
    if (images is None or len(images) == 0) == (data is None):
        raise InputError("give either image paths or --data DATASET (not both)")
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    check_cell_answer(answer)
    photos = _head_photos(model, images, data, split, posted_at)
    run_m1 = partial(
        _run_m1, model, photos.target, five_crop=five_crop, options=options or InferenceOptions()
    )
    pred, pred_path = _m1_predictions(model, out, m1_pred, m1_dir, run_m1, report)
    inputs = {"model": model.model_id, "mesh": model.mesh_hash}
    if photos.dataset_hash is not None:
        inputs["dataset"] = photos.dataset_hash
    inputs["m1_predictions"] = str(pred_path)
    photos, where, counts = photos.with_m1_predictions(pred, model.name, report)
    if data is None:
        for photo, stamp, source in list(
            zip(photos.ids, photos.times, photos.sources, strict=True)
        )[:20]:
            report(f"{photo}: posted {stamp:%Y-%m-%d %H:%M:%S} UTC (from {source})")
    x = m2_inputs(
        pred.top_cells[where],
        pred.top_probs[where],
        model.num_classes,
        photos.times,
        top_k=model.top_k,
    )
    if hasattr(model, "predict_albums"):
        probs = model.predict_albums(x, photos.users, photos.times, photos.ids, device=device)
    else:
        probs = model.predict_proba(x, device=device)
    return _write_head(
        model,
        out,
        photos,
        probs,
        config={"top_k": top_k, "split": split if data is not None else None},
        inputs=inputs,
        counts=counts,
        name=name,
        answer=answer,
        report=report,
    )


@dataclass
class _HeadPhotos:
    """The photos a head predicts, with their users, posting times and the times' sources."""

    ids: np.ndarray
    users: np.ndarray
    times: pd.Series
    sources: np.ndarray
    #: Which photos have a posting time.
    timed: np.ndarray
    #: Photo id -> why it is left out.
    missing: dict[str, str]
    #: ``predict_m1``'s input keywords for the same photos.
    target: dict[str, Any]
    dataset_hash: str | None = None

    def with_m1_predictions(
        self, pred: Any, model_name: str, report: Callable[[str], None]
    ) -> tuple[_HeadPhotos, np.ndarray, dict[str, int]]:
        """The photos with both a posting time and an M1 prediction, their rows in
        ``pred``, and the counts of those left out (reported)."""
        position = pd.Series(np.arange(len(pred.photo_id)), index=pred.photo_id)
        where = position.reindex(self.ids).to_numpy()
        predicted = ~np.isnan(where)
        missing = dict(self.missing)
        for pid in self.ids[self.timed & ~predicted]:
            missing[str(pid)] = "no M1 prediction"
        keep = self.timed & predicted
        counts = {
            "photos": len(self.ids),
            "no_posting_time": int((~self.timed).sum()),
            "no_m1_prediction": int((self.timed & ~predicted).sum()),
            "predicted": int(keep.sum()),
        }
        for photo, why in list(missing.items())[:10]:
            report(f"left out {photo}: {why}")
        if counts["no_posting_time"] or counts["no_m1_prediction"]:
            report(
                f"left out {counts['no_posting_time']} photos without a posting time and "
                f"{counts['no_m1_prediction']} without an M1 prediction, of {len(self.ids)}"
            )
        if not keep.any():
            raise InputError(f"no photo left to predict with {model_name}: {counts}")
        kept = dataclasses.replace(
            self,
            ids=self.ids[keep],
            users=self.users[keep],
            times=self.times[keep].reset_index(drop=True),
            sources=self.sources[keep],
            timed=self.timed[keep],
            missing=missing,
        )
        return kept, where[keep].astype(np.int64), counts


def _head_photos(
    model: Any,
    images: Sequence[str | Path] | None,
    data: str | Path | None,
    split: str | None,
    posted_at: str | None,
) -> _HeadPhotos:
    """The dataset split's photos and times, or the image files' (``posted_at`` or EXIF)."""
    from trigeo.data.table import Dataset
    from trigeo.models.m2 import has_posting_time

    if data is not None:
        if posted_at is not None:
            raise InputError("--posted-at is for image files; a dataset has its own times")
        dataset = Dataset.open(data)
        rows = dataset.photos(split)
        ids = rows["photo_id"].astype(str).to_numpy()
        timed = has_posting_time(rows)
        return _HeadPhotos(
            ids=ids,
            users=rows["user_id"].astype(str).to_numpy(),
            times=pd.to_datetime(rows["posted_at"], utc=True).reset_index(drop=True),
            sources=np.array(["dataset"] * len(rows), dtype=object),
            timed=timed,
            missing={pid: "no posting time" for pid in ids[~timed]},
            target={"data": dataset.root, "split": split},
            dataset_hash=dataset.hash,
        )
    paths = expand_image_paths(images or [])
    if not paths:
        raise InputError("no image files found in the given paths")
    times, sources, missing = _image_times(paths, posted_at)
    timed = times.notna().to_numpy()
    if not timed.any():
        shown = "; ".join(f"{p}: {why}" for p, why in list(missing.items())[:5])
        raise InputError(
            f"{model.name} needs each photo's posting time and none has one ({shown}); "
            "pass --posted-at 2014-07-01T21:30:00+02:00 (ISO 8601 with an offset)",
            column="--posted-at",
        )
    return _HeadPhotos(
        ids=np.array([str(p) for p in paths]),
        users=np.array(["images"] * len(paths)),
        times=times,
        sources=sources,
        timed=timed,
        missing=missing,
        target={"images": paths},
    )


def _run_m1(
    model: Any,
    target: dict[str, Any],
    directory: Path,
    path: Path,
    *,
    five_crop: bool,
    options: InferenceOptions,
) -> None:
    """Run the head's M1 from ``directory`` over the same photos, into ``path``."""
    from trigeo.models.heads import read_model_json
    from trigeo.models.m1 import head_record
    from trigeo.predict.m1 import predict_m1

    meta = read_model_json(directory)
    # A multi-head M1: only the head this model was trained on, written to `path`.
    head = head_record(meta, model.mesh_hash)["name"] if meta.get("heads") else None
    predict_m1(
        directory,
        path,
        **target,
        head=head,
        top_k=max(20, model.top_k),
        five_crop=five_crop,
        options=options,
    )


def _write_head(
    model: Any,
    out: Path,
    photos: _HeadPhotos,
    probs: np.ndarray,
    *,
    config: dict[str, Any],
    inputs: dict[str, str],
    counts: dict[str, int],
    name: str | None,
    answer: str,
    report: Callable[[str], None],
) -> PredictResult:
    """Write the head's predictions file from its probabilities for ``photos``."""
    from trigeo.answer import answer_model_id, answer_points
    from trigeo.predictions import write_predictions

    ids = photos.ids
    k = min(config["top_k"], probs.shape[1])
    top_cells = np.argsort(-probs, axis=1, kind="stable")[:, :k].astype(np.int32)
    top_probs = np.take_along_axis(probs, top_cells, axis=1)
    label_lat, label_lon = model.label_points()
    lat, lon = answer_points(answer, top_cells, top_probs, label_lat, label_lon)
    source_counts = {str(s): int(n) for s, n in pd.Series(photos.sources).value_counts().items()}
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
            config,
            inputs,
            counts=counts,
            time_sources=source_counts,
            left_out=dict(list(photos.missing.items())[:100]),
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
        skipped=photos.missing,
        label_lat=label_lat,
        label_lon=label_lon,
        model_id=model_id,
        model_name=display,
        files={model.name: Path(path)},
        meshes={model.name: model.mesh},
    )

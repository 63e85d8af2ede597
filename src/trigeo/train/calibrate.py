"""Fit M1's softmax temperature on held-out photos (``trigeo train calibrate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.runtime.options import InferenceOptions

__all__ = ["calibrate_m1"]


def calibrate_m1(
    model_dir: str | Path,
    data: str | Path,
    *,
    split: str = "heads",
    max_photos: int | None = 20000,
    seed: int = 0,
    options: InferenceOptions | None = None,
) -> float | None:
    """Fit a softmax temperature on a held-out split and store it in the model dir.

    Uses the photos of ``split`` that fall in kept cells (never ``train``).
    A multi-head model gets one temperature per head, each fitted on the
    photos in that head's kept cells, from one backbone pass.

    ``options``: how the photos are scored (default: :class:`InferenceOptions`
    with a batch size of 128).

    Returns
    -------
    float or None
        The (primary head's) temperature; ``trigeo predict`` applies it from
        then on. ``None`` on ranks other than 0 when several devices score the
        photos (rank 0 gathers the logits, fits and saves).
    """
    from trigeo.calibration import fit_temperature
    from trigeo.data.loading import PhotoDataset, build_transform
    from trigeo.models.m1 import M1Model
    from trigeo.runtime.inference import run_inference

    options = options or InferenceOptions(batch_size=128)
    model = M1Model.load(model_dir)
    train_split = model.config.get("train_split", "train")
    if split == train_split:
        raise InputError(f"calibrate on held-out photos, not the training split {split!r}")
    dataset = Dataset.open(data)
    rows = dataset.photos(split)
    cells = np.asarray(model.mesh.locate(rows["lat"].to_numpy(), rows["lon"].to_numpy()))
    rows, cells = rows[cells >= 0], cells[cells >= 0]
    if len(rows) == 0:
        raise InputError(
            f"no {split!r} photo falls in a kept cell of the model's mesh", source=data
        )
    if max_photos and len(rows) > max_photos:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), max_photos, replace=False))
        rows, cells = rows.iloc[pick], cells[pick]
    transform = build_transform(model.data_config, train=False)
    result = run_inference(
        model.net,
        PhotoDataset(dataset.root, rows["image"].to_numpy(), cells, transform),
        options=options,
        mode="logits",
    )
    if result is None:
        return None
    if not model.is_multi_head:
        temperature = fit_temperature(result["logits"], cells[result["index"]])
        model.save_temperature(
            temperature, dataset=dataset.hash, split=split, photos=len(result["index"])
        )
        return temperature
    lat, lon = rows["lat"].to_numpy()[result["index"]], rows["lon"].to_numpy()[result["index"]]
    for h, spec in enumerate(model.heads):
        head_cells = np.asarray(spec.mesh.locate(lat, lon))
        labelled = head_cells >= 0
        temperature = fit_temperature(result[f"logits.{h}"][labelled], head_cells[labelled])
        model.save_temperature(
            temperature,
            head=h,
            dataset=dataset.hash,
            split=split,
            photos=int(labelled.sum()),
        )
    return model.temperature

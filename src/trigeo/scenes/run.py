"""Fill a dataset's ``outdoor`` column with a Places365 scene classifier.

Batched over the dataset's images, with a progress bar; partial results are
saved every few batches so an interrupted run resumes where it stopped;
unreadable images are skipped (their ``outdoor`` stays empty) and reported,
and a run where more than ``max_unreadable`` of them fail stops with an error
before the table is touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.data.split import keep_meta
from trigeo.data.table import Dataset
from trigeo.errors import InputError, UnreadableImagesError
from trigeo.provenance import atomic_path, hash_arrays, hash_file, make_provenance
from trigeo.runtime.options import InferenceOptions

__all__ = ["PARTIAL_FILE", "ScenesResult", "score_outdoor"]

log = logging.getLogger("trigeo.scenes")
PARTIAL_FILE = ".scenes-partial.npz"


@dataclass
class ScenesResult:
    """What :func:`score_outdoor` wrote."""

    dataset: Dataset
    scored: int
    skipped: dict[str, str]
    resumed: int
    outdoor_share: float


def _run_key(dataset: Dataset, weights_sha256: str, arch: str, split: str | None) -> str:
    text = json.dumps([dataset.hash, weights_sha256, arch, split])
    return hash_arrays(np.frombuffer(text.encode(), dtype=np.uint8))[:16]


def _load_partial(path: Path, key: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    scores, done = np.full(n, np.nan), np.zeros(n, dtype=bool)
    if path.exists():
        stored = np.load(path)
        if str(stored["key"]) == key and len(stored["scores"]) == n:
            return stored["scores"].copy(), stored["done"].copy()
    return scores, done


def _save_partial(path: Path, key: str, scores: np.ndarray, done: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, key=key, scores=scores, done=done)


def score_outdoor(
    data: str | Path,
    weights: str | Path,
    *,
    arch: str = "resnet18",
    out: str | Path | None = None,
    split: str | None = None,
    options: InferenceOptions | None = None,
    checkpoint_every: int = 20,
    report: Callable[[str], None] = log.info,
    on_batch: Callable[[int], None] | None = None,
) -> ScenesResult:
    """Score every photo's P(outdoor) and write the dataset's ``outdoor`` column.

    Parameters
    ----------
    data
        Dataset directory.
    weights, arch
        A published Places365 checkpoint and its architecture.
    out
        Dataset directory to write (default: ``data``, rewritten in place like
        ``trigeo data split``). Another directory gets the table with absolute
        image references, so the images stay where they are.
    split
        Score only this split's photos (the others keep their ``outdoor`` value).
    options
        Batch size, loader workers, progress bar, the unreadable-image limit,
        and the one device to run on (``accelerator``/``devices``,
        :func:`~trigeo.runtime.devices.torch_device`); default:
        :class:`InferenceOptions`.
    checkpoint_every
        Save partial scores every this many batches (resume on the next run).
    on_batch
        Called with the batch number after each batch (tests use it to interrupt).

    Returns
    -------
    ScenesResult

    Raises
    ------
    InputError
        Bad weights, empty split, an accelerator or devices that are not one device.
    UnreadableImagesError
        More than ``max_unreadable`` of the images cannot be read (the table is
        left as it was).
    """
    from trigeo.runtime.devices import usable_device
    from trigeo.scenes.places365 import load_places_checkpoint

    options = options or InferenceOptions()
    device = usable_device(options.accelerator, options.devices)
    dataset = Dataset.open(data)
    rows = dataset.photos(split)
    weights = Path(weights)
    net = load_places_checkpoint(weights, arch)
    net.to(device)
    work = Path(out) if out is not None else dataset.root
    work.mkdir(parents=True, exist_ok=True)
    partial = work / PARTIAL_FILE
    # Hashed once: Places365 checkpoints are 45-115 MB, and the hash serves key and provenance.
    weights_sha256 = hash_file(weights)
    key = _run_key(dataset, weights_sha256, arch, split)
    images = rows["image"].to_numpy().astype(str)
    scores, done = _load_partial(partial, key, len(images))
    resumed = int(done.sum())
    if resumed:
        report(f"resuming: {resumed} of {len(images)} photos already scored")
    run = _Run(net, device, partial, key, scores, done)
    skipped = _score(run, dataset.root, images, options, checkpoint_every, on_batch)
    ids = rows["photo_id"].to_numpy().astype(str)
    if len(skipped) > options.max_unreadable * len(images):
        examples = "; ".join(list(skipped.values())[:3])
        raise UnreadableImagesError(
            f"{dataset.root}: {len(skipped)} of {len(images)} images could not be read (limit "
            f"--max-unreadable {options.max_unreadable:g}); the table was not changed. "
            f"e.g. {examples}"
        )
    finite = np.isfinite(scores)
    if not finite.any():
        raise InputError("no photo could be scored", source=dataset.root)
    table = dataset.table.copy()
    table.loc[rows.index, "outdoor"] = scores
    if work.resolve() != dataset.root.resolve():
        table["image"] = [str((dataset.root / ref).resolve()) for ref in table["image"]]
    provenance = make_provenance(
        {"stage": "scenes", "arch": arch, "rule": "mean outdoor flag of the top-10 categories",
         "split": split},
        {"table.parquet": dataset.hash, "weights": weights_sha256},
        parent=dataset.meta.get("provenance"),
        unreadable=len(skipped),
    )  # fmt: skip
    written = Dataset.write(work, table, provenance, **keep_meta(dataset.meta))
    partial.unlink(missing_ok=True)
    return ScenesResult(
        dataset=written,
        scored=int(finite.sum()),
        skipped={ids[i]: e for i, e in skipped.items()},
        resumed=resumed,
        outdoor_share=float(np.mean(scores[finite] >= 0.5)),
    )


@dataclass
class _Run:
    """The network, its device, and the scores so far with where they are saved."""

    net: Any
    device: str
    partial: Path
    key: str
    scores: np.ndarray
    done: np.ndarray


def _score(
    run: _Run,
    root: Path,
    images: np.ndarray,
    options: InferenceOptions,
    checkpoint_every: int,
    on_batch: Callable[[int], None] | None,
) -> dict[int, str]:
    """Score the photos not done yet into ``run.scores``; the unreadable ones' errors.

    Partial scores are saved every ``checkpoint_every`` batches and at the end.
    """
    import torch
    from rich.progress import Progress

    from trigeo.data.loading import PhotoDataset, collate_skip
    from trigeo.scenes.places365 import outdoor_probability, places_transform

    todo = np.flatnonzero(~run.done)
    photos = PhotoDataset(root, images, None, places_transform())
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(photos, todo.tolist()),
        batch_size=options.batch_size,
        num_workers=options.num_workers,
        collate_fn=collate_skip,
    )
    skipped: dict[int, str] = {}
    with Progress(disable=not options.progress, transient=True) as bar:
        task = bar.add_task("scenes", total=len(loader))
        for number, batch in enumerate(loader, 1):
            # Items carry their position among this run's photos (the Subset passes it on).
            for index, error in zip(batch["skipped"], batch["errors"], strict=True):
                # Not marked done: a resumed run tries (and reports) them again.
                skipped[int(index)] = error
            if batch["image"] is not None:
                with torch.inference_mode():
                    logits = run.net(batch["image"].to(run.device)).float().cpu().numpy()
                index = batch["index"].numpy()
                run.scores[index] = outdoor_probability(logits)
                run.done[index] = True
            if number % checkpoint_every == 0:
                _save_partial(run.partial, run.key, run.scores, run.done)
            bar.advance(task)
            if on_batch is not None:
                on_batch(number)
    _save_partial(run.partial, run.key, run.scores, run.done)
    return skipped

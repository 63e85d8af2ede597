"""M1 descriptors: batched over photos on disk, or in memory for one request.

The descriptor of a photo is M1's pooled penultimate feature vector
(:meth:`trigeo.models.m1.M1Net.embed`), computed with the model's eval
transform (resize + center crop), as the study's query by example.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from trigeo.errors import InputError, UnreadableImagesError
from trigeo.runtime.options import InferenceOptions

__all__ = ["Embedded", "QueryPhotos", "embed_photos", "forward_images", "query_photos"]

log = logging.getLogger("trigeo.retrieve")


@dataclass
class Embedded:
    """Descriptors of the readable photos among those asked for.

    ``rows`` are positions in the input list; ``skipped`` maps the others to
    their read error.
    """

    features: NDArray[np.float32]
    rows: NDArray[np.int64]
    skipped: dict[int, str]


@dataclass
class QueryPhotos:
    """Photos to embed: image references under ``root``, their photo ids and dataset."""

    root: Path
    refs: list[str]
    photo_ids: NDArray
    #: The dataset's table hash (``None`` for image files).
    dataset_hash: str | None = None


def query_photos(
    images: Sequence[str | Path] | None, data: str | Path | None, split: str | None
) -> QueryPhotos:
    """The photos of a dataset's ``split`` (``data`` given), or else the image files given.

    Image files are referenced by absolute path and named by the path as given;
    an empty list of them is the caller's to refuse.
    """
    from trigeo.data.images import expand_image_paths
    from trigeo.data.table import Dataset

    if data is not None:
        dataset = Dataset.open(data)
        rows = dataset.photos(split)
        return QueryPhotos(
            dataset.root,
            rows["image"].astype(str).tolist(),
            rows["photo_id"].astype(str).to_numpy(),
            dataset.hash,
        )
    paths = expand_image_paths(images or [])
    return QueryPhotos(
        Path.cwd(), [str(p.resolve()) for p in paths], np.array([str(p) for p in paths])
    )


def embed_photos(
    model: Any,
    root: str | Path,
    images: Sequence[str],
    *,
    options: InferenceOptions | None = None,
    log_file: str | Path | None = None,
    work_dir: str | Path | None = None,
    report: Callable[[str], None] = log.info,
) -> Embedded:
    """Descriptors of ``images`` (``image`` column values under ``root``, or absolute paths).

    Runs :func:`trigeo.runtime.inference.run_inference` in ``embed`` mode, so
    it scales from one CPU to several GPUs, as ``options`` say (default:
    :class:`~trigeo.runtime.options.InferenceOptions`). Unreadable photos are
    reported and left out; more than ``options.max_unreadable`` of them stop
    with an error.

    Raises
    ------
    UnreadableImagesError
        Too many photos could not be read.
    """
    from trigeo.data.loading import PhotoDataset, build_transform
    from trigeo.runtime.inference import run_inference

    options = options or InferenceOptions()
    if len(images) == 0:
        raise InputError("no photos to embed")
    dataset = PhotoDataset(
        root,
        list(images),
        None,
        build_transform(model.data_config, train=False),
        draft_size=PhotoDataset.eval_draft_size(model.data_config),
    )
    result = run_inference(
        model.net,
        dataset,
        options=options,
        mode="embed",
        work_dir=work_dir,
        log_file=log_file,
    )
    if result is None:  # a non-zero DDP rank
        return Embedded(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), {})
    skipped = {int(i): str(error) for i, error in result["skipped"].items()}
    for error in list(skipped.values())[:10]:
        report(f"skipped unreadable image: {error}")
    if len(skipped) > options.max_unreadable * len(images) or len(result["index"]) == 0:
        raise UnreadableImagesError(
            f"{len(skipped)} of {len(images)} images could not be read (limit "
            f"--max-unreadable {options.max_unreadable:g}); "
            f"e.g. {'; '.join(list(skipped.values())[:3])}"
        )
    features = np.ascontiguousarray(result["features"], dtype=np.float32)
    return Embedded(features, np.asarray(result["index"], dtype=np.int64), skipped)


@torch.inference_mode()
def forward_images(
    net: Any, batch: torch.Tensor, *, temperature: float = 1.0, head: int | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """One forward pass over a batch of transformed images: descriptors and cell probabilities.

    Parameters
    ----------
    net
        An :class:`~trigeo.models.m1.M1Net` in eval mode.
    batch
        ``(B, C, H, W)`` tensor from the model's eval transform.
    temperature
        Softmax temperature (the model's calibration).
    head
        A multi-head network's head to answer with (default: the primary).

    Returns
    -------
    (descriptors, probs)
        ``(B, D)`` pooled penultimate features (what the index holds) and
        ``(B, K)`` probabilities over the kept cells.
    """
    pooled = net.embed(batch)
    logits = net.classify(pooled) if head is None else net.classify_heads(pooled)[head]
    logits = logits.double() / float(temperature)
    probs = torch.softmax(logits, dim=1)
    return pooled.float().cpu().numpy(), probs.cpu().numpy()

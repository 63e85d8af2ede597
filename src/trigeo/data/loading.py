"""Torch datasets over trigeo dataset directories (image folders and webdataset shards).

This is the one torch-dependent module of ``trigeo.data``; nothing else in the
package imports it.

Image references
----------------
The table's ``image`` column holds either a path relative to the dataset root
(``images/ab/123.jpg``) or a shard reference ``shards/shard-000000.tar#KEY``
written by ``trigeo data shard`` (a webdataset tar whose samples carry ``jpg``
and ``json`` members). Shards are read by random access: each tar is indexed
once (member offsets), so the study's class-balanced sampler and DDP sharding
work the same on folders and shards.

JPEG draft mode
---------------
For prediction, a JPEG much larger than the eval transform's resize target is
decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (PIL's ``Image.draft``),
never below that target (:func:`eval_draft_size`): with a small network,
decoding and resizing full-size photos is a large part of prediction's cost
(``benchmarks/bench_predict.py``). Training's random-resized crop keeps full
resolution: a small crop of a draft image would be upsampled.

Corrupt images
--------------
A photo that cannot be read or decoded does not stop a run: the dataset
returns an error record, :func:`collate_skip` drops it from the batch and
passes its index on in ``batch["skipped"]`` so the caller can report it.
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, JpegImagePlugin

# Re-exported: the image-reference format and the shard index are shared with the
# torch-free importers (trigeo.data.images).
from trigeo.data.images import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from trigeo.data.images import index_shard, split_image_ref
from trigeo.data.stores import StoreReader

__all__ = [
    "FeatureDataset",
    "FiveCropTransform",
    "ImageReader",
    "PhotoDataset",
    "build_transform",
    "collate_skip",
    "eval_draft_size",
    "five_crop_transform",
    "index_shard",
    "split_image_ref",
]


class ImageReader:
    """Read image bytes for ``image`` values of one dataset root.

    Shard indexes are built once, in the process that creates the reader
    (before DataLoader workers fork); file handles are opened per process.
    """

    def __init__(self, root: str | Path, images: Sequence[str] = ()) -> None:
        self.root = Path(root)
        self._index: dict[str, dict[str, tuple[int, int]]] = {}
        self._handles: dict[str, Any] = {}
        self._pid = os.getpid()
        # msgpack records and zip members (trigeo.data.stores) carry their own position
        # or are found through the archive: only tars need an index up front.
        self._stores = StoreReader(self.root)
        shards = sorted(
            {p for p, key in map(split_image_ref, images) if key is not None and p.endswith(".tar")}
        )
        for shard in shards:
            self._index[shard] = index_shard(self.root / shard)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _handle(self, shard: str) -> Any:
        if os.getpid() != self._pid:
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = open(self.root / shard, "rb")
        return handle

    def read(self, image: str) -> bytes:
        """The encoded bytes of one image (raises ``OSError``/``KeyError`` if absent)."""
        path, key = split_image_ref(image)
        if key is None:
            if "://" in path:
                raise OSError(f"{image}: remote images are not fetched; download them first")
            return (self.root / path).read_bytes()
        if not path.endswith(".tar"):
            return self._stores.read(path, key)
        if path not in self._index:
            self._index[path] = index_shard(self.root / path)
        try:
            offset, size = self._index[path][key]
        except KeyError:
            raise KeyError(f"{image}: key {key!r} not in shard {path}") from None
        handle = self._handle(path)
        handle.seek(offset)
        return handle.read(size)

    def open(self, image: str, draft_size: tuple[int, int] | None = None) -> Image.Image:
        """Decode one image to RGB.

        Parameters
        ----------
        image
            An ``image`` column value.
        draft_size
            ``(width, height)`` the decoded image must at least have. A JPEG at
            least twice as large in both dimensions is decoded at a reduced
            scale (1/2, 1/4 or 1/8, the largest that keeps both dimensions at or
            above ``draft_size``); other images are decoded at full size.

        The EXIF Orientation tag is applied, so the result is upright.
        """
        with Image.open(io.BytesIO(self.read(image))) as img:
            # JpegImageFile covers MPO (many phone photos) too; other formats have no draft.
            if draft_size is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
                img.draft("RGB", (int(draft_size[0]), int(draft_size[1])))
            # Phone photos are often stored sideways with an EXIF Orientation tag; the
            # model must see them upright, as a viewer shows them.
            return ImageOps.exif_transpose(img).convert("RGB")


def eval_draft_size(data_config: dict[str, Any]) -> tuple[int, int]:
    """Smallest ``(width, height)`` a decoded image may have for the eval transform.

    timm's eval transform resizes to ``input_size / crop_pct`` (the short side
    in ``center`` mode, each side in ``squash``, the fitting box in
    ``border``) and then crops; :class:`FiveCropTransform` does the same with
    rounding. A decoded image at least this large in both dimensions is only
    ever downscaled, so JPEG draft decoding to this size changes the model
    input only by the resampling filter, not by lost resolution. Rounded up,
    so it is never below what either transform needs.

    Parameters
    ----------
    data_config
        A backbone's timm data config (``input_size`` as ``(C, H, W)``,
        optional ``crop_pct``, default 0.875 as in timm).
    """
    _, height, width = (int(v) for v in data_config["input_size"])
    crop_pct = float(data_config.get("crop_pct") or 0.875)
    return math.ceil(width / crop_pct), math.ceil(height / crop_pct)


class PhotoDataset(torch.utils.data.Dataset):
    """Map-style dataset of transformed photos and their cell labels.

    Items are requested either by position ``i`` or by ``(i, seed)``; with a
    seed the random augmentation of that item is reproducible whatever the
    worker or rank that loads it (the samplers in ``trigeo.train`` pass one),
    which is what makes an interrupted and resumed run match an
    uninterrupted one.

    Parameters
    ----------
    root
        Dataset directory the ``images`` are relative to.
    images
        ``image`` column values.
    labels
        Cell id per photo (or ``None`` for unlabeled prediction); a 2-d
        ``(photos, heads)`` array gives one cell id per mesh of a multi-head
        M1 (-1 where the photo falls in a dropped cell of that mesh).
    transform
        Callable PIL image -> tensor.
    draft_size
        Passed to :meth:`ImageReader.open`: large JPEGs are decoded at reduced
        scale, no smaller than this ``(width, height)``. For eval transforms
        only (see :func:`eval_draft_size`); leave ``None`` for training.
    """

    # Reachable from the class so callers that import only PhotoDataset can size drafts.
    eval_draft_size = staticmethod(eval_draft_size)

    def __init__(
        self,
        root: str | Path,
        images: Sequence[str],
        labels: Sequence[int] | np.ndarray | None,
        transform: Callable[[Image.Image], torch.Tensor],
        *,
        draft_size: tuple[int, int] | None = None,
    ) -> None:
        self.images = [str(image) for image in images]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")
        self.transform = transform
        self.draft_size = None if draft_size is None else (int(draft_size[0]), int(draft_size[1]))
        self.reader = ImageReader(root, self.images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(key, tuple):
            index, seed = int(key[0]), int(key[1])
            random.seed(seed)
            # The CPU generator only: the transforms draw from it, and torch.manual_seed
            # also seeds every accelerator backend, queueing a lazy CUDA seed with a
            # formatted stack trace each call -- 0.4-0.5 ms a photo, a third of decoding
            # and transforming a 64 px JPEG (benchmarks/bench_m1.py).
            torch.default_generator.manual_seed(seed)
        else:
            index = int(key)
        try:
            image = self.reader.open(self.images[index], self.draft_size)
            tensor = self.transform(image)
        except Exception as exc:  # any decode/read failure skips this photo, reported upstream
            return {"index": index, "error": f"{self.images[index]}: {type(exc).__name__}: {exc}"}
        return {"index": index, "image": tensor, "label": _label(self.labels, index)}


def _label(labels: np.ndarray | None, index: int) -> int | np.ndarray:
    if labels is None:
        return -1
    return int(labels[index]) if labels.ndim == 1 else labels[index]


class FeatureDataset(torch.utils.data.Dataset):
    """Cached backbone features and labels (``--freeze-backbone`` training)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> None:
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.valid = np.asarray(valid, dtype=bool)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = int(key[0]) if isinstance(key, tuple) else int(key)
        if not self.valid[index]:
            return {"index": index, "error": "image could not be read when features were cached"}
        return {"index": index, "image": self.features[index], "label": _label(self.labels, index)}


def collate_skip(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack good items; report unreadable ones in ``skipped``/``errors``.

    ``image`` is ``None`` when the whole batch was unreadable.
    """
    good = [item for item in items if "image" in item]
    bad = [item for item in items if "image" not in item]
    return {
        "image": torch.stack([item["image"] for item in good]) if good else None,
        # np.asarray first: torch builds a tensor from a list of arrays very slowly.
        "label": torch.as_tensor(np.asarray([item["label"] for item in good]), dtype=torch.long),
        "index": torch.tensor([item["index"] for item in good], dtype=torch.long),
        "skipped": [int(item["index"]) for item in bad],
        "errors": [str(item["error"]) for item in bad],
    }


def build_transform(
    data_config: dict[str, Any],
    *,
    train: bool,
    scale: Sequence[float] = (0.08, 1.0),
    hflip: float = 0.5,
    color_jitter: float = 0.4,
) -> Callable[[Image.Image], torch.Tensor]:
    """timm transform from a backbone's data config (``resolve_image_config``).

    Training uses timm's random-resized-crop pipeline with the given
    augmentation strength; evaluation uses the config's resize + center crop.
    """
    from timm.data import create_transform

    kwargs: dict[str, Any] = {
        "input_size": tuple(data_config["input_size"]),
        "interpolation": data_config.get("interpolation", "bilinear"),
        "mean": tuple(data_config["mean"]),
        "std": tuple(data_config["std"]),
        "crop_pct": data_config.get("crop_pct"),
        "crop_mode": data_config.get("crop_mode"),
    }
    if train:
        kwargs.update(
            is_training=True,
            scale=tuple(scale),
            hflip=float(hflip),
            color_jitter=float(color_jitter),
        )
    return create_transform(**kwargs)


class FiveCropTransform:
    """Resize then take the 4 corner and the center crops: a ``(5, C, H, W)`` tensor.

    A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(self, data_config: dict[str, Any]) -> None:
        from torchvision import transforms
        from torchvision.transforms import InterpolationMode

        size = int(data_config["input_size"][-1])
        crop_pct = float(data_config.get("crop_pct") or 0.875)
        interpolation = InterpolationMode(data_config.get("interpolation", "bilinear"))
        self.resize = transforms.Resize(round(size / crop_pct), interpolation=interpolation)
        self.five = transforms.FiveCrop(size)
        self.normalize = transforms.Compose(
            [
                transforms.ToTensor(),
                transforms.Normalize(mean=list(data_config["mean"]), std=list(data_config["std"])),
            ]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.stack([self.normalize(crop) for crop in self.five(self.resize(image))])


def five_crop_transform(data_config: dict[str, Any]) -> FiveCropTransform:
    """Five-crop test-time transform for a backbone's data config."""
    return FiveCropTransform(data_config)

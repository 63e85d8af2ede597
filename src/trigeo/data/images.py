"""Safe image decoding and resizing for importers (no torch).

Corrupt, truncated and non-image files and decompression bombs are turned
into a :class:`BadImageError` with a short reason an import report can count.

HEIC/HEIF (the iPhone's default) decodes through pillow-heif, registered as a
Pillow opener once, when this module is imported: every path that reads
images (``trigeo data photos``, the training loaders, ``trigeo predict`` on
files, ``trigeo serve`` uploads) imports this module first. AVIF decodes
through Pillow itself.
"""

from __future__ import annotations

import io
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from trigeo.errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "BadImageError",
    "ShardIndex",
    "decode_image",
    "encode_resized",
    "expand_image_paths",
    "index_shard",
    "register_heif",
    "sniff_image",
    "split_image_ref",
]

#: Extensions (lower case, no dot) that name an image in folders, tars and zips.
#: JPEG first: a locator that tries each extension in turn finds the common case first.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "avif", "heic", "heif")
#: The same, as file suffixes (``.jpg``): what a folder given on the command line is read for.
IMAGE_SUFFIXES = tuple(f".{extension}" for extension in IMAGE_EXTENSIONS)


def expand_image_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Image files given directly or found (non-recursively) in given directories.

    A file given by name is kept whatever its suffix (the reader then says
    what it is); a directory contributes its files with an image suffix
    (:data:`IMAGE_SUFFIXES`, any case), sorted.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def register_heif() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with Pillow (once; later calls are free).

    Returns
    -------
    bool
        Whether HEIF decodes here. ``False`` only when pillow-heif is not
        installed (it is a pinned dependency); readers then report HEIC
        files as needing it instead of failing on import.
    """
    if "HEIF" in Image.OPEN:
        return True
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    # Thumbnails embedded in HEIC files are not needed: only the primary image is decoded.
    register_heif_opener(thumbnails=False)
    return "HEIF" in Image.OPEN


register_heif()


class BadImageError(Exception):
    """An image that cannot be used; ``reason`` is a short category for reports."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def decode_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Decode and fully load image bytes, converting to RGB.

    Parameters
    ----------
    data
        Encoded image bytes.
    max_pixels
        Refuse images with more pixels than this (decompression bombs);
        defaults to Pillow's ``Image.MAX_IMAGE_PIXELS``.

    Raises
    ------
    BadImageError
        ``empty file``, ``not an image``, ``decompression bomb``,
        ``truncated image`` or ``corrupt image``.
    """
    if not data:
        raise BadImageError("empty file")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if limit is not None and image.width * image.height > limit:
                raise BadImageError(
                    "decompression bomb", f"{image.width}x{image.height} pixels > {limit}"
                )
            image.load()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError("decompression bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        # Pillow's message names the BytesIO object, which tells a user nothing.
        head = bytes(data[:16])
        raise BadImageError(
            "not an image", f"{len(data)} bytes starting {head!r}: no decoder accepts them"
        ) from exc
    except OSError as exc:
        reason = "truncated image" if "truncated" in str(exc).lower() else "corrupt image"
        raise BadImageError(reason, str(exc)) from exc
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        raise BadImageError("corrupt image", f"{type(exc).__name__}: {exc}") from exc
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise BadImageError("corrupt image", str(exc)) from exc
    return image


def encode_resized(
    data: bytes, max_side: int | None = 512, quality: int = 90, max_pixels: int | None = None
) -> tuple[bytes, tuple[int, int]]:
    """Decode, shrink so the longer side is at most ``max_side``, and JPEG-encode.

    A JPEG that is already RGB and small enough is passed through unchanged
    (after a full decode proves it is intact), so sharding is lossless there.

    Returns
    -------
    (jpeg_bytes, (width, height))
    """
    image = decode_image(data, max_pixels=max_pixels)
    fits = max_side is None or max(image.size) <= max_side
    if fits and data[:3] == b"\xff\xd8\xff":
        return data, image.size
    if not fits:
        assert max_side is not None
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), image.size


def sniff_image(data: bytes) -> None:
    """Check that ``data`` starts like an image Pillow can open (header only, no decode).

    Importers of millions of records use it instead of :func:`decode_image`
    (some 30 us against milliseconds); a photo whose pixel data turns out
    corrupt later is skipped and reported by the loader.

    Raises
    ------
    BadImageError
        ``empty file`` or ``not an image``.
    """
    if not data:
        raise BadImageError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width < 1 or image.height < 1:
                raise BadImageError("not an image", f"{image.width}x{image.height} pixels")
    except BadImageError:
        raise
    except UnidentifiedImageError as exc:
        head = data[:8].hex(" ")
        raise BadImageError("not an image", f"{len(data)} bytes starting {head}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        head = data[:8].hex(" ")
        raise BadImageError("not an image", f"{len(data)} bytes starting {head}: {exc}") from exc


STORE_SUFFIXES = (".tar", ".msg", ".zip")


def split_image_ref(image: str) -> tuple[str, str | None]:
    """Split an ``image`` value into (path, key or None).

    A key follows ``#`` after a webdataset tar (``shard.tar#KEY``), a msgpack
    shard (``shard_0.msg#OFFSET+LENGTH``) or a zip archive (``00.zip#MEMBER``);
    see :mod:`trigeo.data.stores`. Any other ``#`` is part of a file name.
    """
    for suffix in STORE_SUFFIXES:
        marker = suffix + "#"
        at = image.find(marker)
        if at > 0:
            return image[: at + len(suffix)], image[at + len(marker) :]
    return image, None


def index_shard(path: str | Path) -> dict[str, tuple[int, int]]:
    """Map each sample key of a webdataset tar to its image member's (offset, size).

    Raises
    ------
    InputError
        If the tar cannot be read.
    """
    index: dict[str, tuple[int, int]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.rpartition(".")
                if ext.lower() in IMAGE_EXTENSIONS and key not in index:
                    index[key] = (member.offset_data, member.size)
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"cannot read shard ({exc})", source=path) from exc
    return index


class ShardIndex:
    """Read sample members from webdataset tars by key (an index per tar, built lazily)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index: dict[str, dict[str, tuple[int, int]]] = {}
        self._stores: Any = None

    def read(self, image: str) -> bytes:
        """Bytes of an ``image`` value: a file under the root, ``shard.tar#KEY``, or a
        msgpack record or zip member (:mod:`trigeo.data.stores`)."""
        path, key = split_image_ref(image)
        if key is None:
            return (self.root / path).read_bytes()
        if not path.endswith(".tar"):
            if self._stores is None:
                from trigeo.data.stores import StoreReader

                self._stores = StoreReader(self.root)
            try:
                return self._stores.read(path, key)
            except ValueError as exc:
                raise OSError(str(exc)) from exc
        if path not in self._index:
            self._index[path] = index_shard(self.root / path)
        offset, size = self._index[path][key]
        with open(self.root / path, "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

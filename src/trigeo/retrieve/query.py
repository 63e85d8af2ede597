"""``trigeo retrieve``: the nearest indexed photos of query images, and a contact sheet."""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.errors import InputError
from trigeo.provenance import atomic_path
from trigeo.runtime.options import InferenceOptions

__all__ = [
    "QUERY_OPTIONS",
    "Neighbour",
    "QueryResult",
    "exif_location",
    "neighbours_of",
    "query_images",
    "thumbnail_jpeg",
    "write_contact_sheet",
]

log = logging.getLogger("trigeo.retrieve")

#: A few query images: read in the main process, no progress bar.
QUERY_OPTIONS = InferenceOptions(num_workers=0, progress=False)


@dataclass
class Neighbour:
    """One indexed photo near a query: its index row, id, location and distances."""

    rank: int
    row: int
    photo_id: str
    lat: float
    lon: float
    l2: float
    km_from_truth: float | None = None


@dataclass
class QueryResult:
    """A query image, its true location when its EXIF has one, and its neighbours."""

    query: str
    truth: tuple[float, float] | None
    neighbours: list[Neighbour] = field(default_factory=list)
    error: str | None = None


def exif_location(image: Any) -> tuple[float, float] | None:
    """(lat, lon) from a Pillow image's EXIF GPS tags, or ``None`` when it has none."""
    from trigeo.data.photos import BadExifError, read_exif

    try:
        info = read_exif(image)
    except BadExifError:
        return None
    return float(info.lat), float(info.lon)


def neighbours_of(
    index: Any,
    distance: np.ndarray,
    rows: np.ndarray,
    truth: tuple[float, float] | None = None,
) -> list[Neighbour]:
    """:class:`Neighbour` records for one query's search row (missing rows dropped)."""
    from trigeo.sphere import distance_km

    photos = index.photos
    out: list[Neighbour] = []
    for rank, (d, r) in enumerate(zip(distance, rows, strict=True), start=1):
        if r < 0:
            continue
        lat, lon = float(photos["lat"].iat[r]), float(photos["lon"].iat[r])
        km = None if truth is None else float(distance_km(truth[0], truth[1], lat, lon))
        out.append(Neighbour(rank, int(r), str(photos["photo_id"].iat[r]), lat, lon, float(d), km))
    return out


def query_images(
    index_dir: str | Path,
    images: Sequence[str | Path],
    *,
    k: int = 6,
    model_dir: str | Path | None = None,
    nprobe: int | None = None,
    options: InferenceOptions = QUERY_OPTIONS,
    report: Callable[[str], None] = log.info,
) -> tuple[list[QueryResult], Any]:
    """Search the index for the nearest photos of each query image.

    Parameters
    ----------
    index_dir
        An index written by ``trigeo index build``.
    images
        Query image files or folders of them.
    model_dir
        The model to describe the queries with (default: the one recorded in
        the index); a model other than the index's is refused.
    options
        How the queries are embedded (default :data:`QUERY_OPTIONS`); an
        unreadable query is reported in its result, never an error.

    Returns
    -------
    (results, index)
        One :class:`QueryResult` per query file (unreadable ones carry
        ``error``), and the loaded :class:`~trigeo.retrieve.index.RetrievalIndex`.
    """
    from PIL import Image

    from trigeo.data.images import expand_image_paths
    from trigeo.models.m1 import M1Model
    from trigeo.retrieve.embed import embed_photos
    from trigeo.retrieve.index import RetrievalIndex

    index = RetrievalIndex.load(index_dir)
    if model_dir is None:
        model_dir = index.meta.get("model_dir")
        if not model_dir:
            raise InputError("the index records no model directory; pass --model DIR")
    model = M1Model.load(model_dir)
    index.check_model(model.model_id)
    paths = expand_image_paths(images)
    if not paths:
        raise InputError("no query image files found in the given paths")
    embedded = embed_photos(
        model,
        Path.cwd(),
        [str(p.resolve()) for p in paths],
        options=options.replace(max_unreadable=1.0),
        report=report,
    )
    distance, rows = index.search(embedded.features, k, nprobe=nprobe)
    results: list[QueryResult] = []
    position = {int(r): i for i, r in enumerate(embedded.rows)}
    for i, path in enumerate(paths):
        if i not in position:
            results.append(
                QueryResult(str(path), None, error=embedded.skipped.get(i, "unreadable"))
            )
            continue
        try:
            with Image.open(path) as img:
                truth = exif_location(img)
        except OSError:
            truth = None
        j = position[i]
        results.append(
            QueryResult(str(path), truth, neighbours_of(index, distance[j], rows[j], truth))
        )
    return results, index


def thumbnail_jpeg(image: Any, size: int = 160, quality: int = 80) -> bytes:
    """A JPEG thumbnail (longer side ``size``) of a Pillow image, without its metadata."""
    from PIL import Image

    thumb = image.convert("RGB")
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def write_contact_sheet(
    results: Sequence[QueryResult], index: Any, path: str | Path, *, size: int = 160
) -> Path:
    """A self-contained HTML page: each query beside its neighbours' thumbnails.

    Thumbnails are embedded (data URIs), so the file can be moved or mailed;
    indexed photos are read from the dataset folder recorded in the index.
    """
    from PIL import Image

    from trigeo.data.loading import ImageReader

    root = Path(str(index.meta.get("dataset_root", ".")))
    images = index.photos["image"].astype(str).tolist()
    reader = ImageReader(root, images)

    def thumb_of_row(row: int) -> str:
        try:
            return _data_uri(thumbnail_jpeg(reader.open(images[row]), size))
        except Exception as exc:  # a moved dataset: say so in the sheet, keep going
            return f"missing: {type(exc).__name__}"

    def cell(src: str, caption: str) -> str:
        if src.startswith("data:"):
            img = f'<img src="{src}" alt="">'
        else:
            img = f'<div class="missing">{html.escape(src)}</div>'
        return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"

    blocks = []
    for result in results:
        try:
            with Image.open(result.query) as img:
                query_src = _data_uri(thumbnail_jpeg(img, size))
        except OSError as exc:
            query_src = f"unreadable: {exc}"
        truth = f"<br>true {result.truth[0]:.3f}, {result.truth[1]:.3f}" if result.truth else ""
        figures = [cell(query_src, f"<b>query</b> {html.escape(result.query)}{truth}")]
        for nb in result.neighbours:
            km = "" if nb.km_from_truth is None else f"<br>{nb.km_from_truth:,.0f} km from truth"
            figures.append(
                cell(
                    thumb_of_row(nb.row),
                    f"#{nb.rank} {html.escape(nb.photo_id)}<br>{nb.lat:.3f}, {nb.lon:.3f}"
                    f"<br>L2 {nb.l2:.3f}{km}",
                )
            )
        note = f"<p class='error'>{html.escape(result.error)}</p>" if result.error else ""
        blocks.append(f"<section>{note}{''.join(figures)}</section>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trigeo retrieve</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }}
section {{ display: flex; flex-wrap: wrap; gap: 10px; border-bottom: 1px solid #ddd;
  padding: 10px 0; }}
figure {{ margin: 0; width: {size}px; }}
figure img {{ max-width: {size}px; max-height: {size}px; display: block; }}
figcaption {{ font-size: 12px; color: #444; word-break: break-all; }}
.missing {{ width: {size}px; height: {size // 2}px; background: #eee; font-size: 11px; }}
.error {{ color: #b00; width: 100%; }}
</style></head><body>
<h1>Nearest indexed photos</h1>
<p>Index {html.escape(str(index.root))}: {len(index)} photos, model
{html.escape(index.model_id)}; distance is L2 between M1 descriptors.</p>
{"".join(blocks)}
</body></html>
"""
    path = Path(path)
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(page, "utf-8")
    return path

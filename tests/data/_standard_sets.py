"""Small fixtures in the published layouts of the field's standard sets.

Layouts (as the publishers write them):

* Im2GPS3k / YFCC4k: ``im2gps3k_places365.csv`` / ``yfcc25600_places365.csv``
  with ``IMG_ID,AUTHOR,LAT,LON,S3_Label,S16_Label,S365_Label,Prob_indoor,
  Prob_natural,Prob_urban`` and a folder of images named by ``IMG_ID``
  (Im2GPS3k ids look like ``1000269685_e60e9cdfb4_1125_78841376@N00.jpg``).
* MP-16: ``mp16_places365.csv`` (same columns; ids like ``a6/7b/2389409380.jpg``)
  and ``shard_<N>.msg`` files, each a concatenation of
  ``msgpack.packb({"image": jpeg_bytes, "id": IMG_ID})``.
* OSV-5M: ``test.csv`` with ``id,latitude,longitude,thumb_original_url,
  country,sequence,captured_at,lon_bin,lat_bin,cell,region,sub-region,city,
  land_cover,road_index,drive_side,climate,soil,dist_sea,quadtree_10_5000,
  quadtree_10_25000,quadtree_10_1000,quadtree_10_50000,quadtree_10_12500,
  quadtree_10_500,quadtree_10_2500,unique_region,unique_sub-region,
  unique_city,unique_country,creator_username,creator_id`` and
  ``images/test/<NN>.zip`` holding ``<NN>/<id>.jpg`` (or extracted).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

S2_HEADER = [
    "IMG_ID",
    "AUTHOR",
    "LAT",
    "LON",
    "S3_Label",
    "S16_Label",
    "S365_Label",
    "Prob_indoor",
    "Prob_natural",
    "Prob_urban",
]
OSV5M_HEADER = (
    "id,latitude,longitude,thumb_original_url,country,sequence,captured_at,lon_bin,lat_bin,"
    "cell,region,sub-region,city,land_cover,road_index,drive_side,climate,soil,dist_sea,"
    "quadtree_10_5000,quadtree_10_25000,quadtree_10_1000,quadtree_10_50000,quadtree_10_12500,"
    "quadtree_10_500,quadtree_10_2500,unique_region,unique_sub-region,unique_city,"
    "unique_country,creator_username,creator_id"
).split(",")


def jpeg(seed: int, size: int = 24, rgb: tuple[int, int, int] | None = None) -> bytes:
    """A small noisy JPEG, distinct per seed."""
    rng = np.random.default_rng(seed)
    array = np.empty((size, size, 3))
    array[:] = rgb if rgb is not None else rng.integers(0, 255, 3)
    array += rng.normal(0, 20, array.shape)
    buffer = io.BytesIO()
    Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def s2_row(
    img_id: str, author: str, lat: object, lon: object, prob_indoor: float = 0.25
) -> list[object]:
    """One row of the S2-cell systems' metadata CSVs."""
    natural = round((1 - prob_indoor) / 2, 6)
    return [img_id, author, lat, lon, 2, 12, 353, prob_indoor, natural, 1 - prob_indoor - natural]


def write_msgpack_shard(path: Path, records: list[dict[str, object]]) -> Path:
    """Records appended one ``packb`` each, as the published download script does."""
    import msgpack

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for record in records:
            handle.write(msgpack.packb(record))
    return path


def osv5m_row(photo_id: str, lat: object, lon: object, captured_at: object, creator: str) -> list:
    """One OSV-5M row (values in the published column order)."""
    values = {
        "id": photo_id,
        "latitude": lat,
        "longitude": lon,
        "thumb_original_url": f"https://example.invalid/{photo_id}.jpg",
        "country": "FR",
        "sequence": "seqA",
        "captured_at": captured_at,
        "lon_bin": 3,
        "lat_bin": 7,
        "cell": "(3, 7)",
        "region": "Ile-de-France",
        "sub-region": "Paris",
        "city": "Paris",
        "land_cover": 5,
        "road_index": 4.5,
        "drive_side": 0,
        "climate": 14,
        "soil": 3,
        "dist_sea": 0.125,
        "unique_region": "Ile-de-France_FR",
        "unique_sub-region": "Paris_Ile-de-France_FR",
        "unique_city": "Paris_Paris_Ile-de-France_FR",
        "unique_country": "FR",
        "creator_username": "someone",
        "creator_id": creator,
    }
    for name in OSV5M_HEADER:
        if name.startswith("quadtree"):
            values[name] = 17
    return [values[name] for name in OSV5M_HEADER]


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path

"""HEIC/HEIF (iPhone photos) and AVIF on every path that reads images.

The fixtures are written at test time: HEIC by pillow-heif (the opener trigeo registers),
AVIF by Pillow, both with EXIF GPS and taking time.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import trigeo.data.images as images
from trigeo.data.images import (
    IMAGE_EXTENSIONS,
    IMAGE_SUFFIXES,
    decode_image,
    expand_image_paths,
    register_heif,
)
from trigeo.data.photos import import_photos

#: Tokyo, 35°40'48" N 139°42'00" E.
TOKYO_GPS = {1: "N", 2: (35.0, 40.0, 48.0), 3: "E", 4: (139.0, 42.0, 0.0)}
TOKYO = (35.68, 139.7)


def photo(format: str, gps: dict | None = TOKYO_GPS, seed: int = 0, size=(48, 32)) -> bytes:
    """An encoded photo with GPS, a taking time and its UTC offset in its EXIF."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    exif = Image.Exif()
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2023:04:05 13:14:15"
    sub[0x9011] = "+09:00"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, exif=exif.tobytes())
    return buffer.getvalue()


def test_pillow_heif_is_registered_once_on_import():
    assert "HEIF" in Image.OPEN and register_heif() is True
    data = photo("HEIF")
    assert data[4:12] == b"ftypheic"
    image = decode_image(data)
    assert image.mode == "RGB" and image.size == (48, 32)
    assert decode_image(photo("AVIF")).size == (48, 32)
    assert {"heic", "heif", "avif"} <= set(IMAGE_EXTENSIONS)
    assert {".heic", ".heif", ".avif"} <= set(IMAGE_SUFFIXES)
    assert images.IMAGE_EXTENSIONS[0] == "jpg"  # the common case is tried first


def test_data_photos_imports_heic_and_avif_with_gps_and_time(tmp_path: Path):
    src = tmp_path / "phone"
    src.mkdir()
    (src / "IMG_0001.HEIC").write_bytes(photo("HEIF", seed=1))
    (src / "IMG_0002.heif").write_bytes(photo("HEIF", seed=2))
    (src / "IMG_0003.avif").write_bytes(photo("AVIF", seed=3))
    (src / "IMG_0004.heic").write_bytes(photo("HEIF", gps=None, seed=4))  # no position
    dataset, report = import_photos(src, tmp_path / "out")
    table = dataset.table.set_index("photo_id")
    assert sorted(table.index) == ["IMG_0001.HEIC", "IMG_0002.heif", "IMG_0003.avif"]
    np.testing.assert_allclose(table["lat"], TOKYO[0], atol=1e-6)
    np.testing.assert_allclose(table["lon"], TOKYO[1], atol=1e-6)
    # 13:14:15 at +09:00 is 04:14:15 UTC, read from the HEIC's and the AVIF's EXIF.
    stamps = {str(pd_ts) for pd_ts in table["posted_at"]}
    assert stamps == {"2023-04-05 04:14:15+00:00"}
    assert set(table["time_source"]) == {"exif-offset"}
    assert report.read == 4 and sum(report.skipped.values()) == 1


def test_folders_and_loaders_find_and_read_heic(tmp_path: Path):
    from trigeo.data.image_index import FolderIndex
    from trigeo.data.loading import ImageReader

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, format in (
        ("a.heic", "HEIF"),
        ("b.HEIC", "HEIF"),
        ("c.heif", "HEIF"),
        ("d.avif", "AVIF"),
        ("e.jpg", "JPEG"),
    ):
        (folder / name).write_bytes(photo(format))
    (folder / "notes.txt").write_text("not a photo")
    # trigeo predict on a folder: every image, HEIC in any case, nothing else.
    assert [p.name for p in expand_image_paths([folder])] == [
        "a.heic",
        "b.HEIC",
        "c.heif",
        "d.avif",
        "e.jpg",
    ]
    # An importer finds a photo id's image whatever its extension.
    locator = FolderIndex(folder)
    # (References are under the dataset's link to the image folder.)
    assert locator.find("a")[0] == "images/a.heic"
    assert locator.find("b")[0] == "images/b.HEIC"
    assert locator.find("d")[0] == "images/d.avif"
    # The training loaders decode them.
    reader = ImageReader(folder, ["a.heic", "d.avif"])
    assert reader.open("a.heic").size == (48, 32) and reader.open("d.avif").mode == "RGB"


def test_predict_on_heic_files(tmp_path: Path):
    import torch

    from trigeo.mesh import DelaunayMesh
    from trigeo.models.m1 import M1Model, M1Net, resolve_image_config
    from trigeo.predict.m1 import predict_m1
    from trigeo.runtime.options import InferenceOptions

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 60, 400), rng.uniform(-180, 180, 400)
    mesh = DelaunayMesh(minimum_examples=20, refinement_limit=100, init_grid=4).fit(lat, lon)
    mesh.save(tmp_path / "mesh.npz")
    torch.manual_seed(0)
    net = M1Net("test_resnet", int(mesh.n_cells_)).eval()
    model = M1Model(
        net, mesh, label_kind="cell", data_config=resolve_image_config(net.backbone, 32)
    )
    model.save(tmp_path / "model", tmp_path / "mesh.npz", inputs={})
    folder = tmp_path / "phone"
    folder.mkdir()
    (folder / "IMG_0001.HEIC").write_bytes(photo("HEIF", seed=1))
    (folder / "IMG_0002.avif").write_bytes(photo("AVIF", seed=2))
    result = predict_m1(
        tmp_path / "model",
        tmp_path / "pred.parquet",
        images=[folder],
        options=InferenceOptions(num_workers=0, batch_size=2, progress=False, accelerator="cpu"),
        report=lambda _: None,
    )
    assert result is not None and not result.skipped
    assert sorted(Path(p).name for p in result.photo_id) == ["IMG_0001.HEIC", "IMG_0002.avif"]
    assert np.all(np.isfinite(result.lat)) and (result.top_probs.sum(1) <= 1 + 1e-6).all()


@pytest.mark.parametrize("format", ["HEIF", "AVIF"])
def test_a_truncated_heic_or_avif_is_a_bad_image_not_a_crash(format: str):
    data = photo(format)
    with pytest.raises(images.BadImageError):
        decode_image(data[: len(data) // 2])

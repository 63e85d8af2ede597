"""img2dataset's input list and its output attached in place.

The output is written here in img2dataset's published layout (as its
``writer.py`` and ``downloader.py`` 1.47 write it): per shard ``NNNNN.tar``
with ``KEY.jpg``, ``KEY.json`` and ``KEY.txt`` (``--output_format
webdataset``) or a folder ``NNNNN/`` of the same files (``files``), the
status parquet ``NNNNN.parquet`` with one row per URL, and
``NNNNN_stats.json`` written when the shard is finished. Keys are the
shard id times 10**ceil(log10(samples per shard)) plus the sample's index,
zero-padded to that many digits plus 5.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner
from webdataset import TarWriter

from trigeo.cli import app
from trigeo.data.img2dataset import (
    FAILED_FILE,
    REPORT_FILE,
    attach_img2dataset,
    img2dataset_command,
    spark_script,
    write_url_list,
)
from trigeo.data.loading import ImageReader, PhotoDataset
from trigeo.data.table import Dataset
from trigeo.errors import InputError

runner = CliRunner()
BASE = "http://127.0.0.1:1"


def _color(i: int) -> tuple[int, int, int]:
    return (i * 37 % 256, i * 91 % 256, i * 53 % 256)


def _jpeg(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 14), _color(i)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _url_dataset(root: Path, n: int, local: int = 0) -> Dataset:
    """``n`` photos ``p.0`` ... whose images are URLs, but for the last ``local``."""
    images = [f"{BASE}/img/{i}.jpg" for i in range(n - local)]
    images += [f"images/{i}.jpg" for i in range(n - local, n)]
    table = pd.DataFrame(
        {
            "photo_id": [f"p.{i}" for i in range(n)],
            "image": images,
            "lat": np.linspace(-40, 40, n),
            "lon": np.linspace(-100, 100, n),
            "user_id": [f"u{i % 3}" for i in range(n)],
            "posted_at": pd.Timestamp("2014-05-01", tz="UTC"),
            "split": "train",
        }
    )
    return Dataset.write(root, table, {}, images="urls")


def _write_output(
    folder: Path,
    photos: list[int],
    *,
    failures: dict[int, tuple[str, str]] | None = None,
    per_shard: int = 4,
    layout: str = "webdataset",
    finished: bool = True,
    photo_id_in_json: bool = True,
) -> None:
    """img2dataset's output for photos ``p.<i>``; ``failures`` maps i -> (status, error)."""
    failures = failures or {}
    folder.mkdir(parents=True, exist_ok=True)
    oom = math.ceil(math.log10(per_shard))
    for shard_id in range(math.ceil(len(photos) / per_shard)):
        stem = f"{shard_id:05d}"
        chunk = photos[shard_id * per_shard : (shard_id + 1) * per_shard]
        rows: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        for index, i in enumerate(chunk):
            key = f"{10**oom * shard_id + index:0{oom + 5}d}"
            status, error = failures.get(i, ("success", None))
            ok = status == "success"
            meta = {
                **({"photo_id": f"p.{i}"} if photo_id_in_json else {}),
                "url": f"{BASE}/img/{i}.jpg",
                "key": key,
                "status": status,
                "error_message": error,
                "width": 20 if ok else None,
                "height": 14 if ok else None,
                "original_width": 20 if ok else None,
                "original_height": 14 if ok else None,
                "exif": "{}" if ok else None,
                "sha256": "0" * 64 if ok else None,
            }
            rows.append(meta)
            if ok:
                samples.append(
                    {"__key__": key, "jpg": _jpeg(i), "txt": "", "json": json.dumps(meta, indent=4)}
                )
        if layout == "webdataset":
            # As img2dataset's WebDatasetSampleWriter: webdataset's TarWriter, which puts a
            # pax header (mtime) before every member.
            with open(folder / f"{stem}.tar", "wb") as handle:
                writer = TarWriter(handle)
                for sample in samples:
                    writer.write(sample)
                writer.close()
        else:
            (folder / stem).mkdir()
            for sample in samples:
                key = sample["__key__"]
                (folder / stem / f"{key}.jpg").write_bytes(sample["jpg"])
                (folder / stem / f"{key}.txt").write_text(sample["txt"])
                (folder / stem / f"{key}.json").write_text(sample["json"])
        schema = pa.schema(
            [
                ("photo_id", pa.string()),
                ("url", pa.string()),
                ("key", pa.string()),
                ("status", pa.string()),
                ("error_message", pa.string()),
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("original_width", pa.int32()),
                ("original_height", pa.int32()),
                ("exif", pa.string()),
                ("sha256", pa.string()),
            ]
        )
        pq.write_table(pa.Table.from_pylist(rows, schema), folder / f"{stem}.parquet")
        if finished:
            by_error: dict[str, int] = {}
            for row in rows:
                label = "success" if row["status"] == "success" else row["error_message"]
                by_error[label] = by_error.get(label, 0) + 1
            stats = {
                "count": len(rows),
                "successes": sum(r["status"] == "success" for r in rows),
                "failed_to_download": sum(r["status"] == "failed_to_download" for r in rows),
                "failed_to_resize": sum(r["status"] == "failed_to_resize" for r in rows),
                "duration": 0.5,
                "start_time": 1_700_000_000.0 + shard_id,
                "end_time": 1_700_000_000.5 + shard_id,
                "status_dict": by_error,
            }
            (folder / f"{stem}_stats.json").write_text(json.dumps(stats, indent=4))


FAILURES = {
    2: ("failed_to_download", "HTTP Error 404: Not Found"),
    5: ("failed_to_download", "HTTP Error 404: Not Found"),
    7: ("failed_to_download", "<urlopen error [Errno 111] Connection refused>"),
    9: ("failed_to_resize", "Image decoding error"),
}


def _mean_color(image: Image.Image) -> tuple[float, ...]:
    return tuple(np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0))


def test_url_list_holds_url_and_photo_id_of_remote_rows(tmp_path: Path) -> None:
    _url_dataset(tmp_path / "d", 6, local=2)
    counts = write_url_list(tmp_path / "d", tmp_path / "urls.parquet")
    assert counts == {"rows": 6, "urls": 4, "local": 2}
    urls = pq.read_table(tmp_path / "urls.parquet")
    assert urls.column_names == ["url", "photo_id"]
    assert urls.column("photo_id").to_pylist() == ["p.0", "p.1", "p.2", "p.3"]
    assert urls.column("url").to_pylist()[1] == f"{BASE}/img/1.jpg"


def test_url_list_refuses_a_dataset_without_urls(tmp_path: Path) -> None:
    _url_dataset(tmp_path / "d", 3, local=3)
    with pytest.raises(InputError, match="nothing for img2dataset to download"):
        write_url_list(tmp_path / "d", tmp_path / "urls.parquet")
    assert not (tmp_path / "urls.parquet").exists()


def test_printed_commands_use_img2dataset_flags() -> None:
    command = img2dataset_command("urls.parquet", "out")
    for flag in (
        "--url_list urls.parquet",
        "--input_format parquet",
        "--url_col url",
        "--save_additional_columns '[\"photo_id\"]'",
        "--output_format webdataset",
        "--output_folder out",
    ):
        assert flag in command
    script = spark_script("hdfs:///x/urls.parquet", "hdfs:///x/shards")
    assert 'distributor="pyspark"' in script
    compile(script, "spark_script", "exec")  # a valid Python script


def test_attach_webdataset_in_place_then_load(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 12)
    _write_output(out, list(range(12)), failures=FAILURES)
    dataset, report = attach_img2dataset(root, out)

    table = dataset.table.set_index("photo_id")
    attached = [i for i in range(12) if i not in FAILURES]
    assert report.read == 12 and report.written == 8
    assert dict(report.skipped) == {
        "failed_to_download: HTTP Error 404: Not Found": 2,
        "failed_to_download: <urlopen error [Errno 111] Connection refused>": 1,
        "failed_to_resize: Image decoding error": 1,
    }
    # Photo 4 is the first sample of shard 1: key 10**1 * 1 + 0, six digits.
    assert table.loc["p.4", "image"] == "img2dataset/00001.tar#000010"
    assert (root / "img2dataset").resolve() == out.resolve()  # a link, nothing copied
    assert not any(p.suffix == ".jpg" for p in root.rglob("*") if not p.is_symlink())
    for i in FAILURES:
        assert table.loc[f"p.{i}", "image"] == f"{BASE}/img/{i}.jpg"  # kept for another run
    assert dataset.meta["images"] == "mixed"
    assert dataset.meta["img2dataset"][0]["layout"] == "webdataset"

    refs = [table.loc[f"p.{i}", "image"] for i in attached]
    reader = ImageReader(root, refs)
    for i, ref in zip(attached, refs, strict=True):
        assert np.allclose(_mean_color(reader.open(ref)), _color(i), atol=3)

    photos = PhotoDataset(root, refs, [0] * len(refs), lambda im: np.asarray(im))
    items = [photos[j] for j in range(len(photos))]
    assert all("error" not in item for item in items)
    assert items[0]["image"].shape == (14, 20, 3)

    failed = pd.read_csv(root / FAILED_FILE)
    assert sorted(failed["photo_id"]) == sorted(f"p.{i}" for i in FAILURES)
    saved = json.loads((root / REPORT_FILE).read_text())
    assert saved["img2dataset_stats"]["count"] == 12
    assert saved["img2dataset_stats"]["successes"] == 8

    # What is still missing is what the next URL list holds.
    counts = write_url_list(root, tmp_path / "again.parquet")
    assert counts["urls"] == len(FAILURES)


def test_drop_failed_and_attach_twice(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 12)
    _write_output(out, list(range(12)), failures=FAILURES)
    attach_img2dataset(root, out)
    dataset, report = attach_img2dataset(root, out, drop_failed=True)  # same folder again
    assert len(dataset.table) == 8
    assert not dataset.table["image"].str.contains("://").any()
    assert dataset.meta["images"] == "shards"
    assert report.notes["dropped_rows"] == 4
    assert [s["link"] for s in dataset.meta["img2dataset"]] == ["img2dataset"]


def test_files_layout_and_a_second_folder(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _url_dataset(root, 10)
    _write_output(tmp_path / "first", list(range(8)), layout="files")
    dataset, report = attach_img2dataset(root, tmp_path / "first")
    assert report.written == 8
    ref = dataset.table.set_index("photo_id").loc["p.5", "image"]
    assert ref == "img2dataset/00001/000011.jpg"
    assert dataset.meta["images"] == "mixed"
    with Image.open(root / ref) as image:
        assert np.allclose(_mean_color(image.convert("RGB")), _color(5), atol=3)

    # The two photos left are downloaded into another folder and attached beside.
    _write_output(tmp_path / "second", [8, 9], layout="files")
    dataset, report = attach_img2dataset(root, tmp_path / "second")
    table = dataset.table.set_index("photo_id")
    assert table.loc["p.9", "image"] == "img2dataset-2/00000/000001.jpg"
    assert table.loc["p.5", "image"] == ref
    assert dataset.meta["images"] == "folder"
    assert [s["link"] for s in dataset.meta["img2dataset"]] == ["img2dataset", "img2dataset-2"]


def test_output_inside_the_dataset_needs_no_link(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _url_dataset(root, 4)
    _write_output(root / "downloads", list(range(4)))
    dataset, _ = attach_img2dataset(root, root / "downloads")
    assert dataset.table["image"].iloc[0] == "downloads/00000.tar#000000"
    assert not (root / "img2dataset").exists()


def test_mostly_failed_run_stops_and_keeps_the_table(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    before = _url_dataset(root, 8).hash
    dead = {i: ("failed_to_download", "HTTP Error 404: Not Found") for i in range(5)}
    _write_output(out, list(range(8)), failures=dead)
    with pytest.raises(InputError, match=r"only 3 of 8 .*HTTP Error 404: Not Found \(5\)"):
        attach_img2dataset(root, out)
    assert Dataset.open(root).hash == before
    assert not (root / "img2dataset").exists()
    assert json.loads((root / REPORT_FILE).read_text())["written"] == 3


def test_photo_ids_of_another_dataset_are_refused(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 4)
    _write_output(out, [20, 21, 22, 23])
    with pytest.raises(InputError, match="only 0 of 4"):
        attach_img2dataset(root, out)
    report = json.loads((root / REPORT_FILE).read_text())
    assert report["skipped_by_reason"] == {"photo id not in the dataset": 4}


def test_samples_without_photo_id_name_the_flag(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 4)
    _write_output(out, list(range(4)), photo_id_in_json=False)
    with pytest.raises(InputError, match=r"00000\.tar.*save_additional_columns"):
        attach_img2dataset(root, out)


def test_a_corrupt_sample_json_is_reported_once(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 4)
    _write_output(out, list(range(4)), layout="files")
    (out / "00000" / "000002.json").write_text("{not json")
    dataset, report = attach_img2dataset(root, out)
    assert report.written == 3
    assert dict(report.skipped) == {"unreadable sample json": 1}
    assert dataset.table.set_index("photo_id").loc["p.2", "image"].startswith(BASE)


def test_tar_headers_read_fast_or_through_tarfile_alike(tmp_path: Path) -> None:
    from trigeo.data.img2dataset import _tarfile_members, _ustar_members

    path = tmp_path / "00000.tar"
    with open(path, "wb") as handle:  # what img2dataset's WebDatasetSampleWriter does
        writer = TarWriter(handle)
        for i, key in enumerate(["000000000", "000000001", "k" * 120]):  # a pax path too
            meta = json.dumps({"photo_id": f"p.{i}"}, indent=4)
            writer.write({"__key__": key, "jpg": _jpeg(i), "json": meta, "txt": ""})
        writer.close()
    assert _ustar_members(path) == _tarfile_members(path)
    assert _ustar_members(path)[-2][0] == "k" * 120 + ".json"
    assert [name for name, _ in _ustar_members(path)][:3] == [
        "000000000.jpg",
        "000000000.json",
        "000000000.txt",
    ]


def test_other_tar_headers_and_truncated_tars(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 4)
    out.mkdir()
    long_key = "k" * 120
    with tarfile.open(out / "00000.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("extra")
        folder.type = tarfile.DIRTYPE  # not a file: this tar is read through tarfile
        tar.addfile(folder)
        for i, key in enumerate([long_key, "000001"]):
            for name, data in (
                (f"{key}.jpg", _jpeg(i)),
                (f"{key}.json", json.dumps({"photo_id": f"p.{i}"}).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (out / "00000_stats.json").write_text(json.dumps({"count": 2, "successes": 2}))
    dataset, report = attach_img2dataset(root, out)
    assert report.written == 2
    assert dataset.table["image"].iloc[0] == f"img2dataset/00000.tar#{long_key}"

    data = (out / "00000.tar").read_bytes()
    cut = data.index(b"000001.jpg") + 512 + 100  # inside the second image's data
    (out / "00000.tar").write_bytes(data[:cut])
    with pytest.raises(InputError, match=r"00000\.tar: cannot read the shard"):
        attach_img2dataset(root, out)


def test_unfinished_shard_is_left_out_and_named(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 8)
    _write_output(out, list(range(8)))
    (out / "00001_stats.json").unlink()  # img2dataset writes it last
    dataset, report = attach_img2dataset(root, out)
    assert report.written == 4 and report.read == 4
    assert report.notes["unfinished_shards"] == ["00001"]
    assert dataset.table["image"].str.contains("://").sum() == 4


def test_shard_without_status_file_reports_from_its_stats(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 12)
    _write_output(out, list(range(12)), failures=FAILURES)
    for path in out.glob("*.parquet"):
        path.unlink()
    _, report = attach_img2dataset(root, out)
    assert report.written == 8
    assert report.skipped["failed: HTTP Error 404: Not Found"] == 2
    assert report.n_skipped == 4


def test_parquet_output_and_wrong_folder_are_explained(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _url_dataset(root, 2)
    inline = tmp_path / "pq"
    inline.mkdir()
    pq.write_table(
        pa.table({"key": ["000000"], "status": ["success"], "jpg": [b"\xff\xd8"]}),
        inline / "00000.parquet",
    )
    with pytest.raises(InputError, match="--output_format parquet"):
        attach_img2dataset(root, inline)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no img2dataset shard"):
        attach_img2dataset(root, tmp_path / "empty")
    with pytest.raises(InputError, match="not a folder"):
        attach_img2dataset(root, tmp_path / "absent")


def test_cli_urls_then_images(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 12)
    result = runner.invoke(
        app, ["data", "urls", "--data", str(root), "--out", str(tmp_path / "u.parquet")]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "12 URLs" in text and "--save_additional_columns" in text
    _write_output(out, list(range(12)), failures=FAILURES)
    result = runner.invoke(
        app, ["data", "images", "--data", str(root), "--from-img2dataset", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "attached 8 photos" in text and "HTTP Error 404" in text
    assert "4 still URLs" in text


def test_cli_mostly_failed_exits_with_status_2(tmp_path: Path) -> None:
    root, out = tmp_path / "d", tmp_path / "i2d"
    _url_dataset(root, 4)
    dead = {i: ("failed_to_download", "timed out") for i in range(3)}
    _write_output(out, list(range(4)), failures=dead)
    result = runner.invoke(
        app, ["data", "images", "--data", str(root), "--from-img2dataset", str(out)]
    )
    assert result.exit_code == 2
    assert "only 1 of 4" in " ".join(result.output.split())

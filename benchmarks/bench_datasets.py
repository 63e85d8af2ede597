"""Standard-set importers: CSV rows/s at 1M rows; images/s from msgpack shards vs a folder.

* **CSV import**: a 1M-row table in the ``mp16_places365.csv`` layout
  (``IMG_ID, AUTHOR, LAT, LON`` and the six scene columns), coordinates cycled
  from the shared MP-16 sample (``--mp16``), the image column holding URLs so
  that the table path alone is timed (no image lookups). ``trigeo data csv``
  streams it to Parquet (auto-detected columns, times, seeded split, bad-row
  checks, checkpoints). Peers in the same run: ``pandas.read_csv`` of the whole
  file into memory (parsing only, no output), and a ``csv.reader`` pass that
  only splits the lines.
* **Images**: the same JPEGs (320 px short side, the size the published MP-16
  download script stores) written once as ``shard_<N>.msg`` msgpack shards and
  once as a folder of files, then read back in random order, as the
  class-balanced sampler reads them, through :class:`trigeo.data.loading.ImageReader`
  (bytes only, and bytes + decode). Peer: the published readers' sequential
  ``msgpack.Unpacker`` pass over the shards. Every file is read once before
  timing, so all rows measure the page-cached case; the scan the importer does
  once (``scan_shards``: every record's position and image header) is timed too.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
from _common import DEFAULT_MP16, best_time  # noqa: E402 (benchmarks run as scripts)

sys.path.insert(0, str(HERE.parent / "src"))


def _coordinates(mp16: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    if mp16.exists():
        import pandas as pd

        sample = pd.read_csv(mp16)
        lat, lon = sample["LAT"].to_numpy(), sample["LON"].to_numpy()
        print(f"coordinates: {len(lat):,} MP-16 photos from {mp16}, cycled")
    else:
        rng = np.random.default_rng(0)
        lat, lon = rng.uniform(-60, 70, 100_000), rng.uniform(-180, 180, 100_000)
        print(f"coordinates: uniform random ({mp16} not found)")
    reps = -(-n // len(lat))
    return np.tile(lat, reps)[:n], np.tile(lon, reps)[:n]


def write_table(path: Path, n: int, mp16: Path) -> Path:
    """``n`` rows in the mp16_places365.csv layout plus a URL column."""
    lat, lon = _coordinates(mp16, n)
    rng = np.random.default_rng(1)
    indoor = rng.random(n)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["IMG_ID", "AUTHOR", "LAT", "LON", "S3_Label", "S16_Label", "S365_Label",
             "Prob_indoor", "Prob_natural", "Prob_urban", "url"]
        )  # fmt: skip
        for i in range(n):
            photo = 2_000_000_000 + i
            img_id = f"{photo % 256:02x}/{(photo >> 8) % 256:02x}/{photo}.jpg"
            writer.writerow(
                [img_id, f"{i % 50_000}@N0{i % 7}", f"{lat[i]:.6f}", f"{lon[i]:.6f}", i % 3,
                 i % 16, i % 365, f"{indoor[i]:.17g}", f"{(1 - indoor[i]) / 2:.17g}",
                 f"{(1 - indoor[i]) / 2:.17g}", f"http://farm{i % 9}.staticflickr.com/{img_id}"]
            )  # fmt: skip
    return path


def bench_csv(work: Path, rows: int, repeats: int, mp16: Path) -> None:
    import pandas as pd

    from trigeo.data.csvimport import import_csv

    table = write_table(work / "mp16_places365.csv", rows, mp16)
    size_mb = table.stat().st_size / 1e6

    def ours() -> None:
        shutil.rmtree(work / "out", ignore_errors=True)
        import_csv(table, work / "out", columns={"image": "url"}, images=work)

    def pandas_read() -> None:
        pd.read_csv(table)

    def split_only() -> None:
        with open(table, newline="", encoding="utf-8") as handle:
            for _ in csv.reader(handle):
                pass

    t_ours = best_time(ours, repeats)
    t_pandas = best_time(pandas_read, repeats)
    t_split = best_time(split_only, repeats)
    print(f"csv     file: {rows:,} rows, {size_mb:.1f} MB (mp16_places365.csv layout + url)")
    print(f"csv     trigeo data csv (streamed to Parquet): {rows / t_ours:>12,.0f} rows/s")
    print(f"csv     peer pandas.read_csv (in memory):      {rows / t_pandas:>12,.0f} rows/s")
    print(f"csv     peer csv.reader (split only):          {rows / t_split:>12,.0f} rows/s")
    print(f"csv     ratio trigeo / pandas.read_csv: {t_pandas / t_ours:.2f}x")


def _jpegs(n: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(2)
    out = []
    for i in range(n):
        # Smooth gradients plus noise: compresses like a photo (~20-40 kB at 320x427).
        y, x = np.mgrid[0:320, 0:427]
        base = (np.sin(x / (20 + i % 30)) + np.cos(y / (15 + i % 20))) * 60 + 128
        array = np.stack([base, base * 0.8 + 30, 255 - base], axis=-1)
        array += rng.normal(0, 12, array.shape)
        buffer = io.BytesIO()
        Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def bench_images(work: Path, n: int, repeats: int) -> None:
    import msgpack

    from trigeo.data.image_index import LINK
    from trigeo.data.loading import ImageReader
    from trigeo.data.msgpack_shards import scan_shards
    from trigeo.data.report import ImportReport

    jpegs = _jpegs(n)
    ids = [f"{i % 256:02x}/{i // 256:02x}/{3_000_000_000 + i}.jpg" for i in range(n)]
    shards = work / "mp16"
    folder = work / "folder"
    shards.mkdir()
    per_shard = 4096 if n > 4096 * 2 else max(1, n // 4)
    for s in range(0, n, per_shard):
        with open(shards / f"shard_{s // per_shard}.msg", "wb") as handle:
            for i in range(s, min(s + per_shard, n)):
                handle.write(msgpack.packb({"image": jpegs[i], "id": ids[i]}))
    for i in range(n):
        path = folder / ids[i]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpegs[i])
    mb = sum(map(len, jpegs)) / 1e6
    dataset = work / "ds"
    dataset.mkdir()
    (dataset / LINK).symlink_to(shards, target_is_directory=True)
    (dataset / "folder").symlink_to(folder, target_is_directory=True)

    def scan() -> None:
        shutil.rmtree(dataset / ".msgpack-scan", ignore_errors=True)
        scan_shards(shards, dataset, ImportReport("bench", shards))

    t_scan = best_time(scan, repeats)
    index, _ = scan_shards(shards, dataset, ImportReport("bench", shards))
    msg_refs = index.refs.to_pylist()
    file_refs = [f"folder/{i}" for i in ids]
    order = list(range(n))
    random.Random(0).shuffle(order)
    msg_refs = [msg_refs[i] for i in order]  # index order is by id key; shuffle anyway
    file_refs = [file_refs[i] for i in order]

    def read_all(refs: list[str], decode: bool) -> None:
        reader = ImageReader(dataset, refs)
        for ref in refs:
            reader.open(ref) if decode else reader.read(ref)

    def unpacker_pass() -> None:
        for path in sorted(shards.glob("shard_*.msg")):
            with open(path, "rb") as handle:
                for record in msgpack.Unpacker(handle, raw=True, max_buffer_size=1 << 30):
                    record[b"image"]

    for refs in (msg_refs, file_refs):
        read_all(refs, decode=False)  # warm the page cache for both
    t_msg = best_time(lambda: read_all(msg_refs, False), repeats)
    t_file = best_time(lambda: read_all(file_refs, False), repeats)
    t_seq = best_time(unpacker_pass, repeats)
    t_msg_dec = best_time(lambda: read_all(msg_refs, True), repeats)
    t_file_dec = best_time(lambda: read_all(file_refs, True), repeats)
    print(
        f"images  set: {n:,} JPEGs, {mb:.1f} MB, 320 px short side, "
        f"{len(list(shards.iterdir()))} shards"
    )
    print(
        f"images  scan_shards (positions + headers, once per import): {n / t_scan:>10,.0f} images/s"
    )
    print(f"images  read bytes, random order, msgpack shards:     {n / t_msg:>10,.0f} images/s")
    print(f"images  read bytes, random order, folder of files:    {n / t_file:>10,.0f} images/s")
    print(f"images  peer msgpack.Unpacker sequential pass:        {n / t_seq:>10,.0f} images/s")
    print(f"images  read + decode, random order, msgpack shards:  {n / t_msg_dec:>10,.0f} images/s")
    print(
        f"images  read + decode, random order, folder of files: {n / t_file_dec:>10,.0f} images/s"
    )
    print(f"images  ratio msgpack / folder (bytes): {t_file / t_msg:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=DEFAULT_MP16)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=None, help="CSV rows (default 1M; quick 100k)")
    parser.add_argument("--images", type=int, default=None, help="JPEGs (default 5000; quick 500)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", choices=["csv", "images"], default=None)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    images = args.images or (500 if args.quick else 5000)
    repeats = args.repeats or (1 if args.quick else 2)
    work = Path(tempfile.mkdtemp(prefix="trigeo-bench-datasets-"))
    try:
        if args.only in (None, "csv"):
            (work / "csv").mkdir()
            bench_csv(work / "csv", rows, repeats, args.mp16)
        if args.only in (None, "images"):
            (work / "img").mkdir()
            bench_images(work / "img", images, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dataset importers: ``data csv`` rows/s at 3M rows (images absent and present); image reads.

* **CSV import** (issue 21's target: at least 200k rows/s at 3M rows, both
  ways): a generic table ``id, lat, lon, user`` of ``--rows`` rows (3M by
  default), coordinates cycled from the shared MP-16 sample (``--mp16``), ids
  like ``p0000042`` (not numeric, so id keys are hashed: the slower path).
  ``trigeo data csv`` (:func:`trigeo.data.csvimport.import_csv`) streams it to
  a dataset with ``allow_missing_images``, twice:

  - *absent*: the image root is an empty folder, so no row finds its image;
  - *present*: the image root holds one small real JPEG per ten rows (300k
    files at 3M rows), named ``<id>.jpg`` and found by id, so the rule's
    extension candidates are exercised;

  then once more on *present* with ``check_images`` (the optional header pass,
  reported as images/s of its own). Each time is the whole call: listing the
  image root, parsing, checks, the seeded split, writing Parquet parts with
  checkpoints and joining them into ``table.parquet``.
  Peer, in the same run: ``pyarrow.csv.read_csv`` of the same file into memory
  (its default, multi-threaded; parsing only, no output). The ratio is
  ours / peer in rows/s.
* **Images**: the same JPEGs (320 px short side, the size the published MP-16
  download script stores) written once as ``shard_<N>.msg`` msgpack shards and
  once as a folder of files, then read back in random order, as the
  class-balanced sampler reads them, through :class:`trigeo.data.loading.ImageReader`
  (bytes only, and bytes + decode). Peer: the published readers' sequential
  ``msgpack.Unpacker`` pass over the shards. Every file is read once before
  timing, so all rows measure the page-cached case; the scan the importer does
  once (``scan_shards``: every record's position and image header) is timed too.

Data is generated under ``--work`` (a fresh temporary folder by default) and
deleted afterwards.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
from _common import DEFAULT_MP16, best_time, machine_load  # noqa: E402 (run as scripts)

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
    """``n`` rows of ``id, lat, lon, user`` (ids ``p0000000``...), written by pyarrow."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    lat, lon = _coordinates(mp16, n)
    index = np.arange(n)
    ids = pa.array(np.char.add("p", np.char.zfill(index.astype(str), 7)))
    users = pa.array(
        np.char.add(np.char.add((index % 50_000).astype(str), "@N0"), (index % 7).astype(str))
    )
    table = pa.table({"id": ids, "lat": np.round(lat, 6), "lon": np.round(lon, 6), "user": users})
    pacsv.write_csv(table, path)
    return path


def write_images(folder: Path, n: int, every: int) -> int:
    """One small real JPEG for every ``every``-th row's id (``<id>.jpg``); returns how many."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (90, 140, 200)).save(buffer, "JPEG", quality=80)
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for i in range(0, n, every):
        with open(folder / f"p{i:07d}.jpg", "wb") as handle:
            handle.write(data)
        count += 1
    return count


def bench_csv(work: Path, rows: int, repeats: int, mp16: Path, every: int) -> None:
    import pyarrow.csv as pacsv

    from trigeo.data.csvimport import import_csv

    table = write_table(work / "photos.csv", rows, mp16)
    size_mb = table.stat().st_size / 1e6
    empty, present = work / "no-images", work / "images"
    empty.mkdir()
    files = write_images(present, rows, every)
    reports = {}

    def ours(root: Path, check: bool = False) -> None:
        shutil.rmtree(work / "out", ignore_errors=True)
        _, reports[root, check] = import_csv(
            table, work / "out", images=root, allow_missing_images=True, check_images=check
        )

    def peer() -> None:
        pacsv.read_csv(table)

    print(f"csv     file: {rows:,} rows, {size_mb:.1f} MB (id, lat, lon, user); {machine_load()}")
    t_peer = best_time(peer, repeats)
    t_absent = best_time(lambda: ours(empty), repeats)
    t_present = best_time(lambda: ours(present), repeats)
    t_checked = best_time(lambda: ours(present, check=True), 1)
    t_peer = min(t_peer, best_time(peer, repeats))  # and after ours: the machine is shared
    found = rows - reports[present, False].notes["missing_images_kept"]
    listed = reports[present, False].notes["image_store"]
    check = reports[present, True].notes["image_check"]
    print(f"csv     peer pyarrow.csv.read_csv (in memory):     {rows / t_peer:>12,.0f} rows/s")
    print(
        f"csv     trigeo data csv, images absent:            {rows / t_absent:>12,.0f} rows/s"
        f"  ({t_absent:.1f} s; {t_peer / t_absent:.2f}x pyarrow.csv.read_csv)"
    )
    print(
        f"csv     trigeo data csv, images present:           {rows / t_present:>12,.0f} rows/s"
        f"  ({t_present:.1f} s; {t_peer / t_present:.2f}x pyarrow.csv.read_csv;"
        f" {found:,} of {files:,} files matched, listed in {listed['list_seconds']:.1f} s)"
    )
    print(
        f"csv     trigeo data csv --check-images, present:   {rows / t_checked:>12,.0f} rows/s"
        f"  ({t_checked:.1f} s; header pass {check['images']:,} images at"
        f" {check['images_per_second']:,} images/s)"
    )


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
    parser.add_argument("--rows", type=int, default=None, help="CSV rows (default 3M; quick 300k)")
    parser.add_argument(
        "--image-every", type=int, default=10, help="one image file per this many rows"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    parser.add_argument("--images", type=int, default=None, help="JPEGs (default 5000; quick 500)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", choices=["csv", "images"], default=None)
    args = parser.parse_args()
    rows = args.rows or (300_000 if args.quick else 3_000_000)
    images = args.images or (500 if args.quick else 5000)
    repeats = args.repeats or (1 if args.quick else 2)
    work = Path(tempfile.mkdtemp(prefix="trigeo-bench-datasets-", dir=args.work))
    try:
        if args.only in (None, "csv"):
            (work / "csv").mkdir()
            bench_csv(work / "csv", rows, repeats, args.mp16, args.image_every)
        if args.only in (None, "images"):
            (work / "img").mkdir()
            bench_images(work / "img", images, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

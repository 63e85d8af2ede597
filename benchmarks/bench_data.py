"""Data-stage speed: YFCC import rows/s and synthetic-world photos/s, against named peers.

* **Import** streams a YFCC100M-layout TSV (25 columns, realistic field
  lengths, written by ``trigeo.data.yfcc.write_yfcc`` from a synthetic world;
  half the lines without coordinates and 2% videos, as in YFCC100M) into a
  dataset. Peer: a plain ``csv.reader`` pass over the same file that
  only splits the lines (no parsing, no output), in the same run.
* **Synth** generates the synthetic world at 64 px (sampling, rendering, JPEG
  encoding, file writes, table). Peers: Pillow JPEG encode-only of the same
  number of 64 px images already in memory, and creating as many new files
  (the filesystem's ceiling: on a busy disk, file creation dominates). Run on
  the temporary directory's disk and, when present, on /dev/shm.

``--mp16`` is accepted for uniformity with the other benchmarks and unused.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
from _common import DEFAULT_MP16, best_time  # noqa: E402 (benchmarks run as scripts)


def bench_import(work: Path, rows: int, repeats: int, with_bz2: bool) -> None:
    from trigeo.data.synth import WorldConfig, sample_photos
    from trigeo.data.yfcc import import_yfcc, write_yfcc

    table, _ = sample_photos(WorldConfig(photos=rows, users=max(rows // 20, 1), seed=1))
    tsv = write_yfcc(table, work / "yfcc.tsv")
    # Like YFCC100M (48.4M geotagged of 100M lines), blank the coordinates of
    # every other line; and make every 50th line a video.
    lines = tsv.read_text("utf-8").splitlines()
    for i in range(0, len(lines), 2):
        fields = lines[i].split("\t")
        fields[12] = fields[13] = ""
        lines[i] = "\t".join(fields)
    for i in range(1, len(lines), 50):
        lines[i] = lines[i][:-1] + "1"
    tsv.write_text("\n".join(lines) + "\n", "utf-8")
    size_mb = tsv.stat().st_size / 1e6

    def csv_pass() -> None:
        with open(tsv, newline="", encoding="utf-8") as fh:
            for _ in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                pass

    def trigeo_import() -> None:
        import_yfcc(tsv, work / "out", seed=0)

    t_peer = best_time(csv_pass, repeats)
    t_ours = best_time(trigeo_import, repeats)
    print(
        f"import  file: {rows:,} lines, {size_mb:.1f} MB (25 columns; half not geotagged, "
        "2% videos)"
    )
    print(f"import  peer csv.reader (split only): {rows / t_peer:>12,.0f} rows/s")
    print(f"import  trigeo data yfcc (to Parquet): {rows / t_ours:>12,.0f} rows/s")
    print(f"import  ratio trigeo / csv.reader: {t_peer / t_ours:.2f}x")
    if with_bz2:
        compressed = work / "yfcc.tsv.bz2"
        compressed.write_bytes(bz2.compress(tsv.read_bytes(), compresslevel=9))

        def bz2_pass() -> None:
            with bz2.open(compressed, "rb") as fh:
                while fh.read(1 << 22):
                    pass

        t_bz2_peer = best_time(bz2_pass, 1)
        t_bz2 = best_time(lambda: import_yfcc(compressed, work / "out_bz2", seed=0), 1)
        print(f"import  peer bz2 decompress only: {rows / t_bz2_peer:>12,.0f} rows/s")
        print(f"import  trigeo data yfcc (.bz2):  {rows / t_bz2:>12,.0f} rows/s")


def bench_synth(work: Path, photos: int, repeats: int) -> None:
    from PIL import Image

    from trigeo.data.synth import WorldConfig, make_world, render_images, sample_photos

    users = max(photos // 15, 1)
    _, params = sample_photos(WorldConfig(photos=photos, users=users))
    pixels = render_images(params, 64, seed=0)
    encoded: list[bytes] = []

    def encode_only() -> None:
        encoded.clear()
        for i in range(photos):
            buffer = io.BytesIO()
            Image.fromarray(pixels[i]).save(buffer, format="JPEG", quality=90)
            encoded.append(buffer.getvalue())

    def create_files(where: Path):
        def run() -> None:
            folder = where / "files"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for i, data in enumerate(encoded):
                (folder / f"{i:07d}.jpg").write_bytes(data)

        return run

    def world(where: Path, workers: int):
        def run() -> None:
            out = where / f"world{workers}"
            shutil.rmtree(out, ignore_errors=True)
            make_world(out, photos=photos, users=users, seed=0, workers=workers)

        return run

    t_peer = best_time(encode_only, repeats)
    print(f"synth   {photos:,} photos at 64 px")
    print(f"synth   peer PIL JPEG encode-only (in memory): {photos / t_peer:>10,.0f} photos/s")
    places = [("disk", work)]
    shm = Path("/dev/shm")
    if shm.is_dir():
        places.append(("RAM disk", Path(tempfile.mkdtemp(prefix="trigeo-bench-", dir=shm))))
    try:
        for label, where in places:
            t_files = best_time(create_files(where), repeats)
            t_one = best_time(world(where, 1), repeats)
            t_two = best_time(world(where, 2), repeats)
            print(
                f"synth   [{label}] peer: create {photos:,} new JPEG files: "
                f"{photos / t_files:>10,.0f} files/s"
            )
            print(
                f"synth   [{label}] trigeo data synth, 1 worker:  {photos / t_one:>10,.0f} photos/s"
            )
            print(
                f"synth   [{label}] trigeo data synth, 2 workers: {photos / t_two:>10,.0f} photos/s"
            )
            best = min(t_one, t_two)
            print(f"synth   [{label}] ratio (best) / encode-only: {t_peer / best:.2f}x")
    finally:
        for _, where in places[1:]:
            shutil.rmtree(where, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=DEFAULT_MP16, help="unused here")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, one repeat")
    args = parser.parse_args()
    rows = 60_000 if args.quick else 400_000
    photos = 2_000 if args.quick else 10_000
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="trigeo-bench-data-") as tmp:
        work = Path(tmp)
        bench_import(work, rows, repeats, with_bz2=not args.quick)
        bench_synth(work, photos, repeats)
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

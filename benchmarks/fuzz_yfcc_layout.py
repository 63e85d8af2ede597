"""Fuzz the YFCC layout detection: no file whose lines are mostly well formed is refused.

Writes ``--files`` small YFCC100M metadata files (25 columns, 23 with the photo
id first, 23 with the hash first), mutates each at random (the first line is
corrupted in about half of them: truncated, tabs dropped or added, binary
junk, emptied; other lines lose or gain fields, get junk bytes or bad
coordinates; the last line may be cut short) and imports each with
``import_yfcc`` into its own output directory. A line is *well formed* when
it has its layout's field count and a valid lat/lon (lines split as the
import splits them: on ``\\n``, ``\\r`` or ``\\r\\n``; empty lines ignored).

Target (issue 21): no file with more than half of its lines well formed is
refused whole (a trigeo error, or a crash, which is also counted apart).
Exit status 1 on FAIL. Run: ``python benchmarks/fuzz_yfcc_layout.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigeo.data.yfcc import import_yfcc
from trigeo.errors import TrigeoError

LAYOUTS = ("25", "23-id", "23-hash")
_NUMBER = re.compile(rb"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_LINE_END = re.compile(rb"\r\n|\r|\n")
BINS = ((0.0, 0.0, "0%"), (0.0, 0.25, "(0, 25%]"), (0.25, 0.5, "(25, 50%]"))
BINS += ((0.5, 0.75, "(50, 75%]"), (0.75, 1.0, "(75, 100%]"))


@dataclass
class Outcome:
    name: str
    layout: str
    mutation: str
    share: float
    status: str  # imported, refused or crashed
    rows: int = 0
    error: str = ""


def _fields(i: int, rng: np.random.Generator, layout: str) -> list[str]:
    """One valid line's fields, in ``layout``."""
    pid, user = str(5_000_000 + i), f"{int(rng.integers(10**7, 10**8))}@N0{i % 8}"
    lat, lon = rng.uniform(-89.9, 89.9), rng.uniform(-179.9, 179.9)
    hash_, uploaded = (
        f"{int(rng.integers(2**62)):032x}",
        int(rng.integers(1_100_000_000, 14 * 10**8)),
    )
    full = [str(i), pid, hash_, user, "nick", "2010-05-01 12:00:00.0", str(uploaded),
            "Canon+EOS+400D", "a+title", "View+from+the+old+town", "tag,another", "",
            f"{lon:.6f}", f"{lat:.6f}", "16", f"http://www.flickr.com/photos/{user}/{pid}/",
            f"http://farm4.staticflickr.com/3/{pid}_abc.jpg", "Attribution License",
            "http://creativecommons.org/licenses/by/2.0/", "3", "4", "abc", "def", "jpg",
            "0"]  # fmt: skip
    return full if layout == "25" else [full[1], *full[3:]] if layout == "23-id" else full[2:]


def _junk(rng: np.random.Generator, n: int) -> bytes:
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def _corrupt_first(line: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    kind = str(rng.choice(["truncate", "drop-tabs", "add-tabs", "junk", "empty"]))
    if kind == "truncate":
        return line[: int(rng.integers(1, len(line)))], kind
    if kind == "drop-tabs":
        parts = line.split(b"\t")
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(len(parts) - 1))
            parts[j : j + 2] = [parts[j] + parts[j + 1]]
        return b"\t".join(parts), kind
    if kind == "add-tabs":
        for _ in range(int(rng.integers(1, 4))):
            j = int(rng.integers(len(line)))
            line = line[:j] + b"\t" + line[j:]
        return line, kind
    if kind == "junk":
        return _junk(rng, int(rng.integers(10, 300))), kind
    return b"", kind


def _mutate_line(fields: list[str], rng: np.random.Generator, lat: int) -> tuple[bytes, str]:
    kind = str(rng.choice(["drop", "add", "junk", "coord"]))
    if kind == "drop":
        for _ in range(int(rng.integers(1, 4))):
            fields.pop(int(rng.integers(len(fields))))
    elif kind == "add":
        for _ in range(int(rng.integers(1, 4))):
            fields.insert(int(rng.integers(len(fields) + 1)), "extra")
    elif kind == "coord":
        fields[lat] = str(rng.choice(["north", "91.5", "", "nan"]))
    line = "\t".join(fields).encode()
    if kind == "junk":
        buf = bytearray(line)
        for j in rng.integers(0, len(buf), int(rng.integers(1, 7))):
            buf[j] = int(rng.integers(256))
        line = bytes(buf)
    return line, kind


def make_file(path: Path, n_lines: int, rng: np.random.Generator) -> tuple[str, str]:
    """Write one mutated file; its layout and a description of its mutations."""
    layout = LAYOUTS[int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
    lat = 13 if layout == "25" else 11
    p_line = rng.uniform(0.0, 1.0)  # spreads the well-formed share from 0 to 1
    lines, kinds = [], Counter[str]()
    for i in range(n_lines):
        fields = _fields(i, rng, layout)
        if i > 0 and rng.random() < p_line:
            line, kind = _mutate_line(fields, rng, lat)
            kinds[kind] += 1
        else:
            line = "\t".join(fields).encode()
        lines.append(line)
    desc = []
    if rng.random() < 0.5:
        lines[0], kind = _corrupt_first(lines[0], rng)
        desc.append(f"first:{kind}")
    if kinds:
        desc.append("lines:" + ",".join(f"{n}{k}" for k, n in sorted(kinds.items())))
    data = b"\n".join(lines) + b"\n"
    if rng.random() < 0.25:
        data = data[: len(data) - 1 - int(rng.integers(1, max(2, len(lines[-1]) // 2)))]
        desc.append("cut-last")
    path.write_bytes(data)
    return layout, " ".join(desc) or "none"


def well_formed_share(path: Path, layout: str) -> float:
    """Share of the non-empty lines with the layout's width and a valid lat/lon."""
    width, lon, lat = (25, 12, 13) if layout == "25" else (23, 10, 11)
    lines = [x for x in _LINE_END.split(path.read_bytes()) if x]
    good = 0
    for line in lines:
        f = line.split(b"\t")
        if len(f) == width and _NUMBER.match(f[lat]) and _NUMBER.match(f[lon]):
            good += abs(float(f[lat])) <= 90 and abs(float(f[lon])) <= 180
    return good / len(lines) if lines else 0.0


def run(files: int, n_lines: int, seed: int, work: Path) -> list[Outcome]:
    rng = np.random.default_rng(seed)
    outcomes = []
    for k in range(files):
        path = work / f"f{k:05d}.tsv"
        layout, mutation = make_file(path, n_lines, rng)
        o = Outcome(path.name, layout, mutation, well_formed_share(path, layout), "imported")
        try:
            _, report = import_yfcc(path, work / f"out{k:05d}")
            o.rows = report.written
        except TrigeoError as e:
            o.status, o.error = "refused", str(e).replace(str(path) + ": ", "")
            o.error = o.error.replace(str(work), "WORK")
        except Exception as e:  # a crash: anything that is not a trigeo error
            o.status, o.error = "crashed", f"{type(e).__name__}: {e}"
        outcomes.append(o)
    return outcomes


def summarise(outcomes: list[Outcome], n_lines: int, seed: int) -> bool:
    by = Counter(o.status for o in outcomes)
    lost = [o for o in outcomes if o.status != "imported"]
    first = [o for o in outcomes if "first:" in o.mutation]
    layouts = ", ".join(f"{k} {n}" for k, n in sorted(Counter(o.layout for o in outcomes).items()))
    print(f"fuzz_yfcc_layout: {len(outcomes)} files x {n_lines} lines, seed {seed}")
    print(f"layouts: {layouts}; <=50% lines well formed: {sum(o.share <= 0.5 for o in outcomes)}")
    print(f"files            {len(outcomes):6d}")
    print(f"imported         {by['imported']:6d}   rows written {sum(o.rows for o in outcomes)}")
    print(f"refused whole    {by['refused']:6d}")
    print(f"crashes          {by['crashed']:6d}")
    lost_first = sum(o.status != "imported" for o in first)
    print(f"first line bad   {len(first):6d}   of them refused or crashed {lost_first}")
    print("refused/crashed files by well-formed share:")
    for lo, hi, label in BINS:
        n = sum((lo < o.share <= hi) or (hi == lo == o.share) for o in lost)
        print(f"  {label:12s} {n:6d}")
    reasons = Counter(re.sub(r"\d+", "N", o.error)[:64] for o in lost)
    for reason, n in reasons.most_common(5):
        print(f"  {n:5d}x {reason}")
    for o in [o for o in outcomes if o.status == "crashed"][:10]:
        print(f"  crash {o.name}: {o.error[:60]}")
    failing = [o for o in lost if o.share > 0.5]
    print("target: no file with >50% of its lines well formed refused whole")
    print(f"{'PASS' if not failing else 'FAIL'}: {len(failing)} such files refused")
    for o in failing[:10]:
        print(f"  {o.name} {o.layout} {o.share:.0%} {o.status}: {o.mutation}"[:80])
        print(f"    {o.error}"[:80])
    return not failing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--lines", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="kept (default: a temp dir)")
    args = ap.parse_args()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        outcomes = run(args.files, args.lines, args.seed, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="fuzz-yfcc-") as tmp:
            outcomes = run(args.files, args.lines, args.seed, Path(tmp))
    return 0 if summarise(outcomes, args.lines, args.seed) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run every ``benchmarks/bench_*.py`` in its own process and print their reports.

Each benchmark accepts ``--mp16 PATH`` (the shared MP-16 coordinate sample;
default ``../shared/data/mp16_gps_100k.csv``) and prints ratios against a peer
measured in the same run. Pass ``--quick`` for a smaller, faster run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
from _common import DEFAULT_MP16  # noqa: E402 (benchmarks run as scripts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mp16", type=Path, default=DEFAULT_MP16)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "-k", "--only", default="", help="run only benchmarks whose name contains this"
    )
    args = parser.parse_args()
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if args.only not in script.stem:
            continue
        command = [sys.executable, str(script), "--mp16", str(args.mp16)]
        if args.quick:
            command.append("--quick")
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, check=False)
        print(f"=== {script.name}: exit {result.returncode}, {time.perf_counter() - start:.1f} s")
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Every answer rule for every demo predictor: the table of docs/evaluation.md, "The answer".

Not a ``bench_*.py``: it needs a finished demo run, so ``run_all.py`` leaves it out.

For a finished demo run (``trigeo demo --out RUN``: ``RUN/world``, ``RUN/m1``,
``RUN/m2-coarse``, ``RUN/index``, ``RUN/coarse.npz``, ``RUN/fine.npz`` and the
run's ``RUN/predictions/m1-coarse.parquet``, M2's input), this runs

* ``trigeo predict --answer RULE`` for M1 coarse, M1 fine, the hierarchical
  coarse x fine predictor and M2 coarse, with RULE each of top-cell,
  geoscore, median and refine (refine with ``--index RUN/index``);
* ``trigeo predict --answer knn --index RUN/index`` once (the kNN predictor
  does not read the classifier, so its row is the same for every model);
* one ``trigeo evaluate`` over all 17 files (thresholds, median and mean km,
  GeoScore with its user-bootstrap interval);

then prints the table, the two targets of issue 21 (refine against M1 and kNN
on GeoScore; hierarchical within 0.5 points of the best single mesh at every
threshold) and the default-answer rule (best mean GeoScore over the four
models, never more than 0.5 points below top-cell at any threshold, no index).

``--search`` adds the finer candidate search of geoscore and median
(``search="local"``, :func:`trigeo.answer.answer_points`), computed here from
the top-cell files and scored with the evaluation's own distance and
GeoScore functions: the library has it, the CLI does not, and this says why.

``--depths 10,30,100,300`` measures refine's search depth (indexed photos
searched before the top-cell filter; ``trigeo predict`` uses
:data:`trigeo.retrieve.refine.REFINE_DEPTH`) the same way, from one
embedding pass and one search.

Every command is printed before it runs. Usage::

    python benchmarks/answers_table.py RUN --out OUT [--search] [--depths LIST] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

TRIGEO = str(Path(sys.executable).with_name("trigeo"))
RULES = ("top-cell", "geoscore", "median", "refine")
THRESHOLDS = ("1km", "25km", "200km", "750km", "2500km")
#: (key, display name, predict arguments after --model) of each classifier.
MODELS = (
    ("m1-coarse", "M1 coarse", ["{run}/m1", "--head", "coarse"]),
    ("m1-fine", "M1 fine", ["{run}/m1", "--head", "fine"]),
    ("hier", "hier coarse x fine",
     ["{run}/m1", "--hierarchical", "--head", "coarse", "--head", "fine"]),
    ("m2-coarse", "M2 coarse",
     ["{run}/m2-coarse", "--m1-pred", "{run}/predictions/m1-coarse.parquet"]),
)  # fmt: skip
#: The target's margin and the default rule's floor, in accuracy points.
MARGIN = 0.5


def _run(args: list[str]) -> None:
    print("  $ " + shlex.join(args), flush=True)
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    print(f"    {time.perf_counter() - start:.0f} s", flush=True)


def predict_all(run: Path, out: Path, reuse: bool) -> list[Path]:
    """Every (model, rule) predictions file, and the kNN one."""
    preds = out / "predictions"
    preds.mkdir(parents=True, exist_ok=True)
    common = ["--data", f"{run}/world", "--split", "val", "--no-progress"]
    files = []
    for key, name, model_args in MODELS:
        for rule in RULES:
            path = preds / f"{key}-{rule}.parquet"
            files.append(path)
            if reuse and path.exists():
                continue
            args = [TRIGEO, "predict", "--model", *(a.format(run=run) for a in model_args)]
            args += [*common, "--answer", rule, "--name", f"{name} {rule}", "--out", str(path)]
            if rule == "refine":
                args += ["--index", f"{run}/index"]
            _run(args)
    path = preds / "knn.parquet"
    files.append(path)
    if not (reuse and path.exists()):
        _run([TRIGEO, "predict", "--model", f"{run}/m1", *common, "--answer", "knn",
              "--index", f"{run}/index", "--name", "kNN", "--out", str(path)])  # fmt: skip
    return files


def evaluate_all(run: Path, out: Path, files: list[Path]) -> dict:
    args = [TRIGEO, "evaluate", "--data", f"{run}/world", "--out", str(out / "evaluation")]
    for path in files:
        args += ["--pred", str(path)]
    args += ["--mesh", f"{run}/coarse.npz", "--mesh", f"{run}/fine.npz", "--no-figures"]
    _run(args)
    return json.loads((out / "evaluation" / "metrics.json").read_text())


def table(metrics: dict) -> dict[str, dict]:
    """Rows by display name: accuracies, median, mean, GeoScore and its interval."""
    rows = {}
    for m in metrics["models"]:
        rows[m["model"]] = {
            "acc": [m["accuracy_pct"][t] for t in THRESHOLDS],
            "median": m["median_error_km"],
            "mean": m["mean_error_km"],
            "geoscore": m["geoscore"],
            "ci": m.get("geoscore_ci"),
        }
    return rows


def print_table(rows: dict[str, dict]) -> None:
    print("\n| model | answer | 1 km | 25 km | 200 km | 750 km | 2500 km | median km | "
          "mean km | GeoScore [95% CI] |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _, name, _ in MODELS:
        for rule in RULES:
            _print_row(name, rule, rows[f"{name} {rule}"])
    _print_row("kNN", "knn", rows["kNN"])


def _print_row(model: str, rule: str, row: dict) -> None:
    acc = " | ".join(f"{a:.1f}" for a in row["acc"])
    ci = f" [{row['ci'][0]:.0f}, {row['ci'][1]:.0f}]" if row["ci"] else ""
    print(f"| {model} | {rule} | {acc} | {row['median']:,.0f} | {row['mean']:,.0f} | "
          f"{row['geoscore']:.0f}{ci} |")  # fmt: skip


def targets(rows: dict[str, dict]) -> None:
    """Issue 21's two targets and the default-answer rule, from the table."""
    get = rows.__getitem__
    knn = get("kNN")["geoscore"]
    print("\nrefine beats M1 and kNN on GeoScore:")
    for name in ("M1 coarse", "M1 fine"):
        refine, top = get(f"{name} refine")["geoscore"], get(f"{name} top-cell")["geoscore"]
        print(f"  {name}: refine {refine:.0f} vs top-cell {top:.0f} ({refine - top:+.0f}), "
              f"vs kNN {knn:.0f} ({refine - knn:+.0f})")  # fmt: skip
    print("\nhierarchical vs the best single mesh (M1 coarse, M1 fine), points per threshold:")
    best_any = [max(get(f"{m} {r}")["acc"][i] for m in ("M1 coarse", "M1 fine") for r in RULES)
                for i in range(len(THRESHOLDS))]  # fmt: skip
    for rule in RULES:
        hier = get(f"hier coarse x fine {rule}")["acc"]
        same = [max(get(f"{m} {rule}")["acc"][i] for m in ("M1 coarse", "M1 fine"))
                for i in range(len(THRESHOLDS))]  # fmt: skip
        gaps = [h - b for h, b in zip(hier, same, strict=True)]
        worst = min(gaps)
        verdict = "within" if worst >= -MARGIN else "NOT within"
        print(f"  {rule:9s} same rule: " + " ".join(f"{g:+.1f}" for g in gaps)
              + f"  (worst {worst:+.1f}: {verdict} {MARGIN})")  # fmt: skip
        gaps = [h - b for h, b in zip(hier, best_any, strict=True)]
        print(f"  {'':9s} any rule:  " + " ".join(f"{g:+.1f}" for g in gaps)
              + f"  (worst {min(gaps):+.1f})")  # fmt: skip
    print("\ndefault answer: mean GeoScore over the four models; worst threshold vs top-cell")
    names = [name for _, name, _ in MODELS]
    for rule in ("top-cell", "geoscore", "median"):  # an index rule cannot be the default
        mean = sum(get(f"{n} {rule}")["geoscore"] for n in names) / len(names)
        worst = min(
            a - b
            for n in names
            for a, b in zip(get(f"{n} {rule}")["acc"], get(f"{n} top-cell")["acc"], strict=True)
        )
        ok = "eligible" if worst >= -MARGIN else "not eligible"
        print(f"  {rule:9s} mean GeoScore {mean:.1f}, worst {worst:+.1f} points ({ok})")


def finer_search(run: Path, out: Path) -> None:
    """geoscore/median from the top-cell files' cells: label points only, and local search."""
    import numpy as np

    from trigeo.answer import answer_points
    from trigeo.data.table import Dataset
    from trigeo.evaluate.geoscore import geoscore_from_errors
    from trigeo.mesh import load_mesh
    from trigeo.predictions import read_predictions
    from trigeo.sphere import EARTH_RADIUS_KM, distance_km

    truth = Dataset.open(run / "world").photos("val").set_index("photo_id")
    meshes = {}
    for name in ("coarse", "fine"):
        mesh = load_mesh(run / f"{name}.npz")
        meshes[str(mesh.mesh_hash)] = mesh
    print("\nfiner search (candidates = top-k label points, then local pattern search):")
    print("| model | answer | search | 1 km | 25 km | 200 km | 750 km | 2500 km | GeoScore | s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, name, _ in MODELS:
        preds = read_predictions(out / "predictions" / f"{key}-top-cell.parquet")
        kind = (preds.meta.get("config") or {}).get("label_kind") or "imagery"
        label = meshes[str(preds.mesh_hash)].centroids(kind=kind)
        rows = truth.loc[preds.photo_id]
        for rule in ("geoscore", "median"):
            for search in ("cells", "local"):
                start = time.perf_counter()
                lat, lon = answer_points(rule, preds.top_cells, preds.top_probs, *label,
                                         search=search)  # fmt: skip
                seconds = time.perf_counter() - start
                d = distance_km(rows["lat"], rows["lon"], lat, lon, radius_km=EARTH_RADIUS_KM)
                acc = " | ".join(f"{100 * np.mean(d <= t):.1f}" for t in (1, 25, 200, 750, 2500))
                score = geoscore_from_errors(d, EARTH_RADIUS_KM).mean()
                print(f"| {name} | {rule} | {search} | {acc} | {score:.0f} | {seconds:.1f} |")


def refine_depths(run: Path, out: Path, depths: list[int]) -> None:
    """refine at several search depths, from the top-cell files' cells."""
    import numpy as np

    from trigeo.data.table import Dataset
    from trigeo.evaluate.geoscore import geoscore_from_errors
    from trigeo.mesh import load_mesh
    from trigeo.models.m1 import M1Model
    from trigeo.predictions import read_predictions
    from trigeo.retrieve.embed import embed_photos
    from trigeo.retrieve.index import RetrievalIndex
    from trigeo.retrieve.refine import index_cells, refine_points, search_neighbours
    from trigeo.runtime.options import InferenceOptions
    from trigeo.sphere import EARTH_RADIUS_KM, distance_km

    dataset = Dataset.open(run / "world")
    val = dataset.photos("val")
    index = RetrievalIndex.load(run / "index")
    embedded = embed_photos(M1Model.load(run / "m1"), dataset.root,
                            val["image"].astype(str).tolist(),
                            options=InferenceOptions(progress=False))  # fmt: skip
    ids = val["photo_id"].astype(str).to_numpy()[embedded.rows]
    distance, found = search_neighbours(index, embedded.features, ids, max(depths))
    position = {pid: i for i, pid in enumerate(ids)}
    n_lat = index.photos["lat"].to_numpy()
    n_lon = index.photos["lon"].to_numpy()
    truth = val.set_index("photo_id")
    meshes = {}
    for name in ("coarse", "fine"):
        mesh = load_mesh(run / f"{name}.npz")
        meshes[str(mesh.mesh_hash)] = mesh
    print("\nrefine's search depth (k = 10 neighbours clustered, 100 km radius):")
    print("| model | depth | 1 km | 25 km | 200 km | 750 km | 2500 km | GeoScore | refined |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, name, _ in MODELS:
        preds = read_predictions(out / "predictions" / f"{key}-top-cell.parquet")
        cells = index_cells(index, meshes[str(preds.mesh_hash)])
        rows = np.array([position[pid] for pid in preds.photo_id])
        t = truth.loc[preds.photo_id]
        for depth in depths:
            near, dist = found[rows, :depth], distance[rows, :depth]
            safe = np.maximum(near, 0)
            got = refine_points(preds.top_cells, preds.top_probs, preds.lat, preds.lon,
                                n_lat[safe], n_lon[safe], np.where(near >= 0, cells[safe], -1),
                                dist)  # fmt: skip
            d = distance_km(t["lat"], t["lon"], got.lat, got.lon, radius_km=EARTH_RADIUS_KM)
            acc = " | ".join(f"{100 * np.mean(d <= x):.1f}" for x in (1, 25, 200, 750, 2500))
            score = geoscore_from_errors(d, EARTH_RADIUS_KM).mean()
            print(f"| {name} | {depth} | {acc} | {score:.0f} | {100 * got.refined.mean():.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="A finished demo run (trigeo demo --out RUN).")
    parser.add_argument("--out", type=Path, required=True, help="Where files and report go.")
    parser.add_argument("--reuse", action="store_true", help="Keep predictions already there.")
    parser.add_argument("--search", action="store_true", help="Also measure the local search.")
    parser.add_argument("--depths", default="", help="Also measure refine at these depths.")
    args = parser.parse_args()
    files = predict_all(args.run, args.out, args.reuse)
    rows = table(evaluate_all(args.run, args.out, files))
    print_table(rows)
    targets(rows)
    if args.search:
        finer_search(args.run, args.out)
    if args.depths:
        refine_depths(args.run, args.out, [int(d) for d in args.depths.split(",")])


if __name__ == "__main__":
    main()

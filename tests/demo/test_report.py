"""The demo's study report from a small hand-made evaluation directory."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imsave
from PIL import Image

from trigeo.demo.figures import plot_longitude_vs_hour
from trigeo.demo.findings import Finding
from trigeo.demo.report import write_demo_report
from trigeo.demo.robustness import compare_runs, load_findings
from trigeo.errors import ArtifactError, InputError
from trigeo.provenance import hash_file

KEYS = ["1km", "25km", "200km", "750km", "2500km"]
PNG = b"\x89PNG\r\n\x1a\n"


def _row(name: str, acc: list[float], mean: float, kl: float | None) -> dict[str, Any]:
    return {
        "model": name, "photos_scored": 40, "accuracy_pct": dict(zip(KEYS, acc, strict=True)),
        "mean_error_km": mean, "median_error_km": mean / 2, "kl_divergence": kl,
        "prediction_entropy": 2.0, "kl_mesh": "coarse", "outdoor": None,
    }  # fmt: skip


def _test(a: str, b: str, p: float, median: float) -> dict[str, Any]:
    return {"model_a": a, "model_b": b, "n_photos": 40, "n_differing": 30, "p_value": p,
            "median_difference_km": median, "statistic": 3.0, "zero_method": "wilcox"}  # fmt: skip


METRICS = {
    "config": {"thresholds_km": [1.0, 25.0, 200.0, 750.0, 2500.0], "split": "val"},
    "photos_evaluated": 40,
    "models": [
        _row("M1 coarse", [2.5, 12.5, 30, 45, 60], 3000, 0.8),
        _row("M1 coarse cell", [0, 5, 25, 45, 60], 3200, 0.8),
        _row("M2 coarse", [2.5, 15, 32.5, 50, 65], 2800, 0.7),
        _row("M1 coarse +user-avg", [0, 15, 35, 55, 70], 2500, 0.9),
        # A constant prediction's entropy can come out as -0.0.
        {**_row("prior", [0, 0, 5, 10, 30], 6000, 3.0), "prediction_entropy": -0.0},
    ],
    "oracle": [
        {"model": "oracle (best possible)", "mesh": "coarse", "label": label, "photos": 38,
         "photos_outside": 2, "accuracy_pct": dict(zip(KEYS, acc, strict=True))}
        for label, acc in (("cell", [0, 10, 80, 100, 100]), ("imagery", [5, 40, 95, 100, 100]))
    ],
    "wilcoxon": [
        _test("M1 coarse", "M1 coarse cell", 0.001, -20.0),
        _test("M1 coarse", "M2 coarse", 0.3, 5.0),
        _test("M1 coarse", "M1 coarse +user-avg", 0.01, 30.0),
    ],
}  # fmt: skip
ROLES = {"m1_coarse": "M1 coarse", "m1_coarse_cell": "M1 coarse cell", "m2": "M2 coarse",
         "prior": "prior"}  # fmt: skip
STAGES = [
    {"name": "synthetic world", "command": "trigeo data synth --photos 40 --out w",
     "seconds": 2.5, "status": "ran"},
    {"name": "evaluation report", "command": "trigeo evaluate --data w --out eval",
     "seconds": 1.0, "status": "reused"},
]  # fmt: skip


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A world table, a mesh map and an evaluation dir, as the pipeline leaves them."""
    rng = np.random.default_rng(0)
    world = tmp_path / "world"
    world.mkdir()
    start = pd.Timestamp("2020-01-01", tz="UTC")
    pd.DataFrame({
        "photo_id": [str(i) for i in range(200)],
        "lat": rng.uniform(-60, 60, 200),
        "lon": rng.uniform(-180, 180, 200),
        "posted_at": start + pd.to_timedelta(rng.uniform(0, 86400 * 30, 200), unit="s"),
    }).to_parquet(world / "table.parquet")  # fmt: skip
    figures = tmp_path / "eval" / "figures"
    figures.mkdir(parents=True)
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(METRICS), "utf-8")
    (tmp_path / "eval" / "report.html").write_text("<html></html>", "utf-8")
    for name in ("error_cdf.png", "median_error_map_M1_coarse.png"):
        (figures / name).write_bytes(PNG + name.encode())
    # A mesh plot is ~200 dpi: 1733 px wide, scaled to 1000 in the report.
    imsave(tmp_path / "coarse.png", np.zeros((40, 1733, 3)))
    (tmp_path / "coarse.npz").write_bytes(b"mesh")
    return tmp_path


def write(run_dir: Path, **changes: Any) -> dict[str, Path]:
    kwargs: dict[str, Any] = {
        "metrics": METRICS,
        "roles": ROLES,
        "meshes": {"coarse": {"path": str(run_dir / "coarse.npz"), "cells": 40,
                              "kind": "delaunay", "rule": "cells of 50+ photos"}},
        "stages": STAGES,
        "evaluation_dir": run_dir / "eval",
        "mesh_maps": {"coarse": run_dir / "coarse.png"},
        "world": run_dir / "world",
    }  # fmt: skip
    kwargs.update(changes)
    return write_demo_report(run_dir / "study", **kwargs)


def test_report_files_findings_first_with_study_numbers(run_dir):
    written = write(run_dir)
    out = run_dir / "study"
    assert set(written) == {
        "report.md", "report.html", "report.json", "figures/mesh_coarse.png",
        "figures/longitude_vs_hour.png", "figures/error_cdf.png",
        "figures/median_error_map_M1_coarse.png",
    }  # fmt: skip
    assert (out / "figures" / "error_cdf.png").read_bytes() == PNG + b"error_cdf.png"
    assert Image.open(out / "figures" / "mesh_coarse.png").size == (1000, 23)
    page = (out / "report.html").read_text("utf-8")
    assert page.index("<h2>Findings</h2>") < page.index("(a) Best possible accuracy")
    # imagery vs cell (coarse) and user averaging reproduce; time is not significant.
    assert page.count('class="badge ok"') == 2 and page.count('class="badge bad"') == 1
    assert page.count('class="badge na"') == 5
    # The study's M1 coarse at 750 km (38.72) and best possible coarse imagery at 25 km (43.38).
    assert '45.0<span class="study">38.7</span>' in page
    assert '40.0<span class="study">43.4</span>' in page
    assert "<script" not in page and "http" not in page
    for src in re.findall(r'src="([^"]+)"', page):
        assert src.startswith("figures/") and (out / src).is_file()
    assert 'href="../eval/report.html"' in page
    assert "Total 3.5 s over 2 stages (1 ran, 1 reused)." in page
    md = (out / "report.md").read_text("utf-8")
    assert "| 45.0 (study 38.7) |" in md and "(study 56.7)" in md
    assert "`trigeo data synth --photos 40 --out w`" in md
    assert "| prior | coarse | 3.000 | 0.000 | 6,000 | 3,000 |" in md
    assert "![Error CDF of every model (evaluation figure).](figures/error_cdf.png)" in md
    assert "40 photos evaluated (split val)" in md
    assert "2 of 8 findings reproduced, 1 not reproduced, 5 not run" in md
    # This metrics.json predates user-level tests: the units say photos, and why.
    assert "- tests over photos: imagery_vs_cell, time_helps, user_averaging (paired" in md
    assert "| 0.001 (per photo) | **reproduced**" in md
    assert "photo-level test: metrics.json predates user-level tests" in md
    # Table 7 in grey beside this run's KL / entropy / errors, KL to the study's 4 decimals.
    assert "| M2 coarse | coarse | 0.700 (study 0.4998) | 2.000 (study 5.289) | 2,800 (study " in md
    assert "| M1 coarse +user-avg | coarse | 0.900 (study 0.9702) |" in md
    # Rows from before ci_unit were bootstrapped over photos; rows without intervals say "—".
    assert "| 45.0 (study 38.7) | 60.0 (study 56.7) | — |" in md
    assert "other run" not in md


def test_report_json_has_findings_and_provenance(run_dir):
    write(run_dir)
    record = json.loads((run_dir / "study" / "report.json").read_text("utf-8"))
    assert [f["verdict"] for f in record["findings"]][:3] == [
        "reproduced", "not run", "not reproduced",
    ]  # fmt: skip
    assert record["findings"][0]["p_value"] == 0.001
    assert record["findings"][1]["p_value"] is None
    inputs = record["provenance"]["inputs"]
    assert inputs["metrics.json"] == hash_file(run_dir / "eval" / "metrics.json")
    assert inputs["table.parquet"] == hash_file(run_dir / "world" / "table.parquet")
    assert inputs["mesh coarse"] == hash_file(run_dir / "coarse.npz")
    assert record["provenance"]["trigeo_version"]
    assert "Table 1 best possible accuracy" in record["source"]


def test_user_level_tests_and_interval_units_are_said(run_dir):
    metrics = json.loads(json.dumps(METRICS))
    metrics["models"][0].update(ci_unit="user", accuracy_ci95_pct={"1km": [0.0, 5.0]})
    metrics["models"][2]["accuracy_ci95_pct"] = {"1km": [0.0, 5.0]}
    metrics["wilcoxon"][1]["user"] = {
        "test": "wilcoxon", "p_value": 0.02, "n_users": 12, "n_differing": 10,
        "median_difference_km": 4.0, "mean_difference_km": 6.0, "hits": {},
    }  # fmt: skip
    write(run_dir, metrics=metrics)
    md = (run_dir / "study" / "report.md").read_text("utf-8")
    assert "| M1 coarse | M1 coarse | 40 |" in md and "60.0 (study 56.7) | — | user |" in md
    assert "65.0 (study 60.7) | — | photo |" in md
    # Stored as (M1, M2) with +4 km: M2 is better, over users.
    assert "user-level Wilcoxon p = 0.020 in M2 coarse's favour (10 of 12 users differ" in md
    assert "| 0.02 (per user) | **reproduced**" in md
    assert "tests over photos: imagery_vs_cell, user_averaging; over users: time_helps" in md


def test_geoscore_with_its_interval_beside_the_thresholds(run_dir):
    metrics = json.loads(json.dumps(METRICS))
    metrics["models"][0].update(geoscore=2301.49, geoscore_ci=[1927.6, 2663.05])
    metrics["models"][2].update(geoscore=1500.4)
    write(run_dir, metrics=metrics)
    md = (run_dir / "study" / "report.md").read_text("utf-8")
    assert "| GeoScore | 95% CI by |" in md
    assert "60.0 (study 56.7) | 2,301 (1,928-2,663) |" in md
    assert "| 1,500 |" in md
    # A row from an evaluation before GeoScore shows a dash, not a made-up number.
    averaging = next(line for line in md.splitlines() if line.startswith("| user averaging |"))
    assert "| — |" in averaging


def test_other_run_verdicts_and_not_robust(run_dir):
    write(run_dir)
    first = run_dir / "study" / "report.json"
    mine = load_findings(first)
    assert [f.key for f in mine][:3] == ["imagery_vs_cell", "coarse_vs_fine", "time_helps"]
    # Another run where time helps significantly and imagery loses: two flips, rest agree.
    flips = {"time_helps": "reproduced", "imagery_vs_cell": "not reproduced"}
    other = [replace(f, verdict=flips.get(f.key, f.verdict)) for f in mine]
    out = run_dir / "seed8.json"
    out.write_text(json.dumps({"findings": [asdict(f) for f in other]}), "utf-8")
    write(run_dir, other_run=out, other_label="seed 8")
    md = (run_dir / "study" / "report.md").read_text("utf-8")
    assert "| claim | this run | p | verdict | other run |" in md
    assert "| seed 8: not reproduced; not robust at this size |" in md
    assert "| seed 8: reproduced; not robust at this size |" in md
    assert "| seed 8: not run; not compared (not run in both) |" in md
    assert "| seed 8: reproduced too |" in md
    assert "compared with seed 8: 1 verdicts agree, 2 not robust at this size, 5 not compared" in md
    page = (run_dir / "study" / "report.html").read_text("utf-8")
    assert "<th>other run</th>" in page and page.count("not robust at this size") == 3
    record = json.loads(first.read_text("utf-8"))
    assert record["other_run"]["label"] == "seed 8"
    assert record["other_run"]["path"] == str(out)
    assert [c["agrees"] for c in record["other_run"]["comparison"]][:3] == [False, None, False]
    # Findings given directly, labelled by default; a report.json's directory works too.
    write(run_dir, other_run=other)
    assert "the other run: reproduced too" in (run_dir / "study" / "report.md").read_text("utf-8")
    assert load_findings(run_dir / "study")[0].key == "imagery_vs_cell"


def test_compare_runs_and_reading_old_or_broken_report_json(tmp_path):
    def finding(key: str, verdict: str) -> Finding:
        return Finding("claim", "numbers", None, verdict, "why", key)

    this = [finding("a", "reproduced"), finding("b", "not run"), finding("c", "reproduced")]
    got = compare_runs(this, [finding("c", "not reproduced"), finding("a", "reproduced")], "s8")
    assert [(c.key, c.agrees, c.text) for c in got] == [
        ("a", True, "s8: reproduced too"),
        ("b", None, "s8: no such finding"),
        ("c", False, "s8: not reproduced; not robust at this size"),
    ]
    with pytest.raises(ValueError, match="two findings with the key 'a'"):
        compare_runs(this, [finding("a", "reproduced")] * 2, "s8")
    # A report.json written before Finding had 'unit' reads back with its default.
    old = {"findings": [{"claim": "c", "numbers": "n", "p_value": 0.01, "verdict": "reproduced",
                         "why": "w", "key": "a", "study": "s", "future_field": 1}]}  # fmt: skip
    (tmp_path / "report.json").write_text(json.dumps(old), "utf-8")
    assert load_findings(tmp_path) == [Finding("c", "n", 0.01, "reproduced", "w", "a", "s")]
    old["findings"][0]["verdict"] = "maybe"
    (tmp_path / "report.json").write_text(json.dumps(old), "utf-8")
    with pytest.raises(ArtifactError, match=r"findings\[0\] has verdict 'maybe'"):
        load_findings(tmp_path / "report.json")
    (tmp_path / "report.json").write_text(json.dumps({"source": "x"}), "utf-8")
    with pytest.raises(ArtifactError, match="no 'findings' list"):
        load_findings(tmp_path)
    with pytest.raises(ArtifactError, match="no such demo report"):
        load_findings(tmp_path / "nope.json")


def test_missing_evaluation_figures_are_said(run_dir):
    for png in (run_dir / "eval" / "figures").iterdir():
        png.unlink()
    written = write(run_dir)
    assert "figures/error_cdf.png" not in written
    md = (run_dir / "study" / "report.md").read_text("utf-8")
    assert "The evaluation has no error_cdf.png (was it run with --no-figures?)." in md


def test_bad_inputs(run_dir):
    with pytest.raises(InputError, match="evaluation's directory"):
        write(run_dir, stages=[], evaluation_dir=run_dir / "study")
    with pytest.raises(InputError, match="status must be 'ran' or 'reused'"):
        write(run_dir, stages=[{**STAGES[0], "status": "skipped"}])
    with pytest.raises(InputError, match=r"stage 1 lacks field\(s\) \['seconds'\]"):
        write(run_dir, stages=[{k: v for k, v in STAGES[0].items() if k != "seconds"}])
    with pytest.raises(ArtifactError, match="mesh map of 'fine' not found"):
        write(run_dir, mesh_maps={"fine": run_dir / "fine.png"})
    (run_dir / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ArtifactError, match=r"broken\.png is not a readable PNG"):
        write(run_dir, mesh_maps={"coarse": run_dir / "broken.png"})
    (run_dir / "eval" / "metrics.json").unlink()
    with pytest.raises(ArtifactError, match=r"metrics\.json not found"):
        write(run_dir)
    assert not (run_dir / "study" / "report.html").exists()


def test_longitude_vs_hour_figure(run_dir, tmp_path):
    png = plot_longitude_vs_hour(run_dir / "world" / "table.parquet")
    assert png.startswith(PNG) and len(png) < 200_000
    assert plot_longitude_vs_hour(run_dir / "world") == png
    pd.DataFrame({"lon": [1.0], "taken": [dt.datetime(2020, 1, 1)]}).to_parquet(tmp_path / "t.pq")
    with pytest.raises(InputError, match="column 'posted_at'"):
        plot_longitude_vs_hour(tmp_path / "t.pq")
    with pytest.raises(InputError, match="no such dataset table"):
        plot_longitude_vs_hour(tmp_path / "none.parquet")

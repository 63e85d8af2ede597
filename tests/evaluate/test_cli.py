"""``trigeo evaluate`` through the Typer root, with a real DelaunayMesh."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.mesh import DelaunayMesh
from trigeo.predictions import write_predictions

runner = CliRunner()


def _evaluate(dataset, *args: str):
    """``trigeo evaluate --data <dataset> ARGS`` through the root CLI."""
    return runner.invoke(app, ["evaluate", "--data", str(dataset.root), *args])


def _write_model(
    path: Path,
    table: pd.DataFrame,
    mesh: DelaunayMesh,
    wrong: float,
    seed: int,
    *,
    model_id: str | None = None,
    model_name: str | None = None,
):
    val = table[table["split"] == "val"]
    rng = np.random.default_rng(seed)
    cells = mesh.locate(val["lat"].to_numpy(), val["lon"].to_numpy())
    cells = np.where(cells < 0, 0, cells)
    flip = rng.random(len(val)) < wrong
    top1 = np.where(flip, rng.integers(0, mesh.n_cells_, len(val)), cells)
    top = np.stack([top1, (top1 + 1) % mesh.n_cells_, (top1 + 2) % mesh.n_cells_], axis=1)
    probs = np.tile([0.7, 0.2, 0.1], (len(val), 1))
    lat, lon = mesh.centroids("imagery")
    write_predictions(
        path,
        val["photo_id"],
        lat[top1],
        lon[top1],
        top_cells=top,
        top_probs=probs,
        model_id=model_id or path.stem,
        mesh_hash=mesh.mesh_hash,
        model_name=model_name,
    )
    return path


def test_cli_writes_report_with_two_models_and_a_peer(tmp_path, dataset, table, mesh_path):
    mesh = DelaunayMesh.load(mesh_path)
    a = _write_model(tmp_path / "model_a.parquet", table, mesh, 0.1, 1)
    b = _write_model(tmp_path / "model_b.parquet", table, mesh, 0.5, 2)
    val = table[table["split"] == "val"]
    peer = tmp_path / "peer.csv"
    val[["photo_id", "lat", "lon"]].assign(lat=val["lat"] + 0.2).iloc[:-6].to_csv(peer, index=False)
    out = tmp_path / "report"
    result = _evaluate(
        dataset,
        "--pred",
        str(a),
        "--pred",
        str(b),
        "--pred",
        str(peer),
        "--mesh",
        str(mesh_path),
        "--oracle",
        "--averaging",
        "--bootstrap",
        "200",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "no prediction for 6 of 120 photos" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["trigeo_version"]
    assert metrics["provenance"]["config"]["radius_km"] == 6372.795
    assert any(k.startswith("pred:") for k in metrics["provenance"]["inputs"])
    assert [m["model"] for m in metrics["models"]] == [
        "model_a",
        "model_a +user-avg",
        "model_a +album-avg",
        "model_b",
        "model_b +user-avg",
        "model_b +album-avg",
        "peer",
    ]
    assert len(metrics["oracle"]) == 2 and len(metrics["wilcoxon"]) == 21
    for test in metrics["wilcoxon"]:
        assert test["zero_method"] == "wilcox" and 0 <= test["n_differing"] <= test["n_photos"]
        # Beside the photo-level test: McNemar per threshold and the user-level tests.
        assert test["unit"] == "photo"
        assert (
            set(test["mcnemar"])
            == set(test["user"]["hits"])
            == set(metrics["models"][0]["accuracy_pct"])
        )
        assert 0 <= test["user"]["n_differing"] <= test["user"]["n_users"] <= 12
    # The dataset has users: intervals resample them, and every row says so.
    assert metrics["config"]["ci_unit"] == "user"
    assert {m["ci_unit"] for m in metrics["models"]} == {"user"}
    assert {row["ci_unit"] for row in metrics["oracle"]} == {"user"}
    # KL counts photos in kept cells; the share outside is reported beside it.
    for row in metrics["models"]:
        assert 0.0 <= row["kl_outside_share"] < 1.0 and row["kl_photos"] > 0
    peer_row = metrics["models"][-1]
    assert peer_row["photos_missing"] == 6 and len(peer_row["missing_photo_ids"]) == 6
    assert (out / "missing" / "peer.txt").read_text().split() == peer_row["missing_photo_ids"]
    model_a = metrics["models"][0]
    assert model_a["accuracy_pct"]["2500km"] >= metrics["models"][3]["accuracy_pct"]["2500km"]
    assert model_a["calibration"]["sets"][0]["level"] == 0.5
    # metrics.json is strict JSON (no NaN) and every accuracy has a CI around it.
    json.loads((out / "metrics.json").read_text(), parse_constant=pytest.fail)
    for key, (lo, hi) in model_a["accuracy_ci95_pct"].items():
        assert lo <= model_a["accuracy_pct"][key] <= hi

    md = (out / "report.md").read_text()
    for title in (
        "Accuracy by model and mesh",
        "Outdoor only vs all",
        "KL divergence",
        "Pairwise Wilcoxon",
        "Bootstrap 95%",
        "Accuracy by continent",
        "Calibrated uncertainty",
        "Top country confusions",
        "Missing predictions",
    ):
        assert title in md
    assert "zero_method='wilcox': photos on which both models' errors are equal" in md
    assert "photos tested (errors differ)" in md
    assert "photos outside (not in KL)" in md and "Pairwise tests by user" in md
    html = (out / "report.html").read_text()
    # Self-contained: figures are embedded PNGs and nothing is fetched from the network.
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 3
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert "http://" not in html and "https://" not in html
    assert (out / "figures" / "error_cdf.png").stat().st_size > 5000


def test_cli_oracle_only(tmp_path, dataset, mesh_path):
    out = tmp_path / "oracle"
    result = _evaluate(
        dataset,
        "--oracle",
        "--mesh",
        str(mesh_path),
        "--out",
        str(out),
        "--no-figures",
        "--label",
        "imagery",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["models"] == [] and [r["label"] for r in metrics["oracle"]] == ["imagery"]
    assert "oracle (best possible)" in (out / "report.md").read_text()


def test_cli_strict_less_radius_and_exclude(tmp_path, dataset, table):
    val = table[table["split"] == "val"]
    peer = tmp_path / "peer.csv"
    val[["photo_id", "lat", "lon"]].iloc[:100].to_csv(peer, index=False)
    out = tmp_path / "r"
    result = _evaluate(
        dataset,
        "--pred",
        str(peer),
        "--strict-less",
        "--earth-radius-km",
        "6371",
        "--missing",
        "exclude",
        "--thresholds",
        "0,1",
        "--no-figures",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (model,) = json.loads((out / "metrics.json").read_text())["models"]
    # Exact predictions: d = 0 counts at t = 0 only with <=; 20 photos are excluded.
    assert model["accuracy_pct"] == {"0km": 0.0, "1km": 100.0}
    assert model["photos_scored"] == 100 and model["photos_missing"] == 20


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("photo_id,lat,lon\np0000,1,2\np0000,1,2\n", "duplicated photo_id 'p0000'"),
        ("photo_id,lat,lon\nnope,1,2\n", "none of its 1 photo ids"),
        ("photo_id,lat\np0000,1\n", "no longitude column"),
    ],
)
def test_cli_bad_input_is_one_clear_error(tmp_path, dataset, content, message):
    peer = tmp_path / "bad.csv"
    peer.write_text(content)
    result = _evaluate(
        dataset,
        "--pred",
        str(peer),
        "--out",
        str(tmp_path / "o"),
    )
    # The root CLI turns TrigeoError into one red error line and exit status 2.
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_cli_mesh_hash_mismatch_is_reported(tmp_path, dataset, table, mesh_path):
    mesh = DelaunayMesh.load(mesh_path)
    other = DelaunayMesh(refinement_limit=50, minimum_examples=1).fit(
        table["lat"].to_numpy(), table["lon"].to_numpy()
    )
    model = _write_model(tmp_path / "m.parquet", table, other, 0.0, 0)
    result = _evaluate(
        dataset,
        "--pred",
        str(model),
        "--mesh",
        str(mesh_path),
        "--no-figures",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.exit_code == 0, result.output
    assert f"mesh hash {other.mesh_hash[:12]!r} matches none of the given meshes" in " ".join(
        result.output.split()
    )
    assert mesh.mesh_hash != other.mesh_hash


def test_cli_reports_a_swapped_peer_csv(tmp_path, dataset, table):
    val = table[table["split"] == "val"]
    peer = tmp_path / "swapped.csv"
    pd.DataFrame({"photo_id": val["photo_id"], "lat": val["lon"], "lon": val["lat"]}).to_csv(
        peer, index=False
    )
    out = tmp_path / "o"
    result = _evaluate(
        dataset,
        "--pred",
        str(peer),
        "--no-figures",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("look swapped" in w for w in metrics["warnings"])
    assert "look swapped" in (out / "report.md").read_text()
    # Swapped back, the exact coordinates score 100% at 1 km.
    assert metrics["models"][0]["accuracy_pct"]["1km"] == 100.0


def test_cli_shows_short_names_and_keeps_full_ids(tmp_path, dataset, table, mesh_path):
    mesh = DelaunayMesh.load(mesh_path)
    named = _write_model(
        tmp_path / "m1-coarse.parquet",
        table,
        mesh,
        0.1,
        1,
        model_id="m1-test_resnet-imagery-c835f3f09c",
        model_name="M1 coarse",
    )
    unnamed = _write_model(
        tmp_path / "m1-test_resnet-imagery-77ab12e0d4.parquet",
        table,
        mesh,
        0.4,
        2,
        model_id="m1-test_resnet-imagery-77ab12e0d4",
    )
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["evaluate", "--data", str(dataset.root), "--pred", str(named), "--pred", str(unnamed),
         "--mesh", str(mesh_path), "--oracle", "--averaging", "--baseline", "prior",
         "--no-figures", "--bootstrap", "50", "--out", str(out)],
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    short = "m1-test_resnet-imag…"
    names = ["M1 coarse", "M1 coarse +user-avg", "M1 coarse +album-avg", short,
             f"{short} +user-avg", f"{short} +album-avg", "prior"]  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["model"] for m in metrics["models"]] == names
    assert metrics["models"][0]["model_id"] == "m1-test_resnet-imagery-c835f3f09c"
    assert metrics["models"][4]["model_id"] == "m1-test_resnet-imagery-77ab12e0d4 +user-avg"
    assert {(w["model_a"], w["model_b"]) for w in metrics["wilcoxon"]} >= {("M1 coarse", short)}
    # The console table fits 80 columns with every name whole on one line.
    lines = result.output.splitlines()
    table_lines = lines[lines.index(next(x for x in lines if "accuracy (%)" in x)) :][:-1]
    assert max(map(len, table_lines)) <= 80
    for name in names:
        assert any(line.startswith(name + "  ") for line in table_lines), name
    assert not any("c835f3f09c" in line for line in table_lines)
    # The report keeps each full id in a footnote (md and html).
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for text in (md, html):
        assert f"M1 coarse: model id m1-test_resnet-imagery-c835f3f09c, from {named}" in text
        assert f"{short}: model id m1-test_resnet-imagery-77ab12e0d4, from {unnamed}" in text
        assert "prior: model id prior baseline (mesh)" in text
    assert "| M1 coarse +user-avg | mesh | imagery |" in md


def test_cli_name_overrides_and_same_names_are_numbered(tmp_path, dataset, table, mesh_path):
    mesh = DelaunayMesh.load(mesh_path)
    a = _write_model(tmp_path / "a.parquet", table, mesh, 0.1, 1, model_name="from file")
    b = _write_model(tmp_path / "b.parquet", table, mesh, 0.4, 2)

    def names(*extra: str) -> tuple[list[str], list[str]]:
        out = tmp_path / "o"
        result = _evaluate(
            dataset, "--pred", str(a), "--pred", str(b), *extra, "--no-figures",
            "--bootstrap", "50", "--out", str(out),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        return [m["model"] for m in metrics["models"]], metrics["warnings"]

    assert names() == (["from file", "b"], [])
    assert names("--name", "M1 coarse", "--name", "M2 coarse")[0] == ["M1 coarse", "M2 coarse"]
    shown, warned = names("--name", "M1", "--name", "M1")
    assert shown == ["M1 #1", "M1 #2"]
    assert warned == [
        "2 models have the display name 'M1'; they are shown as 'M1 #1' (a), 'M1 #2' (b). "
        "Give each its own --name to choose."
    ]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["only one"], "--name was given 1 time(s) for 2 --pred file(s)"),
        (["a", "b", "c"], "--name was given 3 time(s) for 2 --pred file(s)"),
        (["a", " "], "--name for"),
    ],
)
def test_cli_name_count_must_match_pred(tmp_path, dataset, table, names, message):
    val = table[table["split"] == "val"]
    peer = tmp_path / "peer.csv"
    val[["photo_id", "lat", "lon"]].to_csv(peer, index=False)
    args = [arg for name in names for arg in ("--name", name)]
    result = _evaluate(
        dataset, "--pred", str(peer), "--pred", str(peer), *args, "--out", str(tmp_path / "o")
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()

"""``run_evaluation``: the whole command as a library call, and the CLI only delegating to it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.errors import InputError
from trigeo.evaluate.results import Evaluation, EvaluationConfig
from trigeo.evaluate.run import EvaluationRun, run_evaluation


def test_run_evaluation_writes_the_report(tmp_path, dataset, table, mesh_path):
    val = table[table["split"] == "val"]
    peer = tmp_path / "peer.csv"
    val[["photo_id", "lat", "lon"]].to_csv(peer, index=False)
    out = tmp_path / "report"
    run = run_evaluation(
        dataset.root,
        out,
        preds=[peer],
        meshes=[mesh_path],
        baselines=["prior"],
        config=EvaluationConfig(n_resamples=50),
        oracle=True,
        figures=False,
    )
    assert {"report.md", "report.html", "metrics.json"} <= set(run.written)
    assert all(path.parent == out for path in run.written.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["source"] for m in metrics["models"]] == [str(peer), "prior baseline (mesh)"]
    assert metrics["provenance"]["config"]["baseline"] == ["prior"]
    assert set(metrics["provenance"]["inputs"]) == {
        f"truth:{dataset.root}",
        f"mesh:{mesh_path}",
        f"pred:{peer}",
    }
    assert run.evaluation.models[0].accuracy[0] == 100.0


def test_a_bad_baseline_fails_before_any_file_is_read(tmp_path):
    with pytest.raises(InputError, match="unknown --baseline 'nope'"):
        run_evaluation(tmp_path / "no-dataset", tmp_path / "o", baselines=["nope"])
    with pytest.raises(InputError, match="add --mesh"):
        run_evaluation(tmp_path / "no-dataset", tmp_path / "o", baselines=["prior"])


def test_the_cli_parses_delegates_and_prints(tmp_path, monkeypatch):
    calls = []

    def fake_run(truth, out, **kwargs):
        calls.append((truth, out, kwargs))
        evaluation = Evaluation(
            config=kwargs["config"],
            n_truth=3,
            models=[],
            oracle=[],
            wilcoxon=[],
            continents=pd.DataFrame(),
            confusions={},
            warnings=["something was worked around"],
            mesh_names={},
        )
        written = {name: out / name for name in ("report.html", "report.md", "metrics.json")}
        return EvaluationRun(evaluation, written)

    monkeypatch.setattr("trigeo.evaluate.run.run_evaluation", fake_run)
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", "ds", "--out", "o", "--pred", "a.parquet", "--pred", "b.csv",
         "--mesh", "m.npz", "--baseline", "prior", "--thresholds", "1,25", "--split", "all",
         "--label", "cell", "--no-figures", "--averaging"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((truth, out, kwargs),) = calls
    assert (str(truth), str(out)) == ("ds", "o")
    assert [str(p) for p in kwargs["preds"]] == ["a.parquet", "b.csv"]
    assert [str(m) for m in kwargs["meshes"]] == ["m.npz"] and kwargs["baselines"] == ["prior"]
    config = kwargs["config"]
    assert config.thresholds_km == (1.0, 25.0) and config.split is None
    assert config.label == "cell" and config.averaging and not kwargs["figures"]
    assert "warning: something was worked around" in result.output
    assert "accuracy (%), 3 photos" in result.output
    assert "wrote o/report.html, o/report.md, o/metrics.json" in result.output

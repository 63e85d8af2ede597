"""The demo's pipeline: explicit mesh limits by photos per cell, and M2/M3 stages wired in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigeo.demo import MESH_RULES, demo_stages, mesh_args


def test_mesh_limits_follow_photos_per_cell():
    args, rule = mesh_args("coarse", 7200)
    assert args == ["--minimum-examples", "50", "--refinement-limit", "250", "--init-grid", "8"]
    assert "at least 50 training photos, split above 250 (5x), 8x8 initial grid" in rule
    args, _ = mesh_args("fine", 25000)
    assert args[-1] == "31" and MESH_RULES["fine"] == (20, 100)
    with pytest.raises(ValueError, match="unknown demo mesh"):
        mesh_args("fineP", 100)


def test_stages_train_and_predict_m2_and_m3_before_one_evaluation(tmp_path):
    stages = demo_stages(tmp_path, 12000, 600, 0, ["coarse"])
    names = [s.name for s in stages]
    assert names == [
        "synthetic world", "coarse mesh", "coarse mesh plot", "M1 on the coarse mesh",
        "predict val with M1 (coarse)", "predict heads with M1 (coarse)",
        "M2 on the coarse mesh", "predict val with M2 (coarse)",
        "M3 on the coarse mesh", "predict val with M3 (coarse)", "evaluation report",
    ]  # fmt: skip
    by_name = {s.name: s for s in stages}
    synth = by_name["synthetic world"].args
    assert synth[synth.index("--val-fraction") + 1] == "0.4"
    mesh = by_name["coarse mesh"]
    assert "--scaled" not in mesh.args and "--preset" not in mesh.args
    assert "7,200 training photos" in mesh.note  # 12,000 x (1 - 0.4)
    heads_pred = str(tmp_path / "predictions" / "m1-coarse-heads.parquet")
    m2 = by_name["M2 on the coarse mesh"].args
    assert m2[:2] == ["train", "m2"] and m2[m2.index("--m1-pred") + 1] == heads_pred
    m3 = by_name["M3 on the coarse mesh"].args
    assert m3[m3.index("--m2") + 1] == str(tmp_path / "m2-coarse")
    # M3 reruns when its M2 changes; M2/M3 predictions reuse M1's val file.
    assert tmp_path / "m2-coarse" / "model.json" in by_name["M3 on the coarse mesh"].reads
    m3_pred = by_name["predict val with M3 (coarse)"].args
    assert m3_pred[m3_pred.index("--m1-pred") + 1].endswith("m1-coarse.parquet")
    evaluate = by_name["evaluation report"].args
    preds = [Path(evaluate[i + 1]).name for i, a in enumerate(evaluate) if a == "--pred"]
    assert preds == ["m1-coarse.parquet", "m2-coarse.parquet", "m3-coarse.parquet"]
    assert "--averaging" in evaluate

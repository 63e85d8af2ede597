"""The demo's pipeline: mesh limits by photos per cell, one multi-head M1, every predictor."""

from __future__ import annotations

import pytest

from trigeo.demo import MESH_RULES, ROLES, demo_stages, mesh_args


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_mesh_limits_follow_photos_per_cell():
    args, rule = mesh_args("fine", 18000)
    assert args == ["--minimum-examples", "10", "--refinement-limit", "120", "--init-grid", "16"]
    assert "at least 10 training photos, split above 120, 16x16 initial grid" in rule
    # The coarse mesh asks more photos per cell than the fine one, from a finer first grid
    # than the old 8x8 (which left sparse triangles too large for 750 km).
    assert MESH_RULES["coarse"][2] > 5 * MESH_RULES["fine"][2]
    args, rule = mesh_args("s2", 18000)
    assert args[:2] == ["--kind", "quadtree"] and "--init-grid" not in args
    assert MESH_RULES["s2"][1:3] == MESH_RULES["fine"][1:3] and "S2 quad-tree" in rule
    with pytest.raises(ValueError, match="unknown demo mesh"):
        mesh_args("fineP", 100)


@pytest.mark.parametrize("seed", [7, 11])
def test_coarse_mesh_covers_the_demo_world_as_the_studys_does(seed):
    """At least 95% of the training photos kept, best possible >= 99% at 750 km (the study's
    coarse mesh: 99.98%), on the coordinates of the demo's own worlds."""
    import numpy as np

    from trigeo.data.synth import WorldConfig, sample_photos
    from trigeo.demo.pipeline import HEADS_FRACTION, VAL_FRACTION
    from trigeo.mesh import DelaunayMesh, oracle_accuracy

    config = WorldConfig(
        photos=30000,
        users=1500,
        seed=seed,
        val_fraction=VAL_FRACTION,
        heads_fraction=HEADS_FRACTION,
    )
    table, _ = sample_photos(config)
    train = table[table["split"] == "train"]
    lat, lon = train["lat"].to_numpy(), train["lon"].to_numpy()
    _, minimum, limit, grid = MESH_RULES["coarse"]
    mesh = DelaunayMesh(refinement_limit=limit, minimum_examples=minimum, init_grid=grid)
    mesh.fit(lat, lon)
    kept = float(np.mean(mesh.locate(lat, lon) >= 0))
    assert kept >= 0.95, f"seed {seed}: {kept:.1%} of training photos in kept coarse cells"
    best = oracle_accuracy(mesh, lat, lon, thresholds_km=[750], label="imagery")
    assert best["750"] >= 99.0, f"seed {seed}: best possible {best['750']:.2f}% at 750 km"
    assert 100 <= mesh.n_cells_ <= 250


def test_one_multi_head_m1_feeds_every_predictor_and_one_evaluation(tmp_path):
    stages = demo_stages(tmp_path, 30000, 1500, 0)
    by_name = {s.name: s for s in stages}
    names = [s.name for s in stages]
    assert names[0] == "synthetic world" and names[-1] == "evaluation"
    assert names.index("M1, one backbone with a head per mesh") > names.index("s2 mesh map")
    m1 = by_name["M1, one backbone with a head per mesh"].args
    meshes = [m1[i + 1] for i, a in enumerate(m1) if a == "--mesh"]
    assert meshes == [str(tmp_path / f"{n}.npz") for n in ("coarse", "fine", "s2")]
    assert _value(m1, "--config") == "demo"
    # M2 trains on the coarse head's predictions for the heads split, never on val.
    heads = by_name["predict heads with the coarse head"].args
    assert _value(heads, "--split") == "heads" and _value(heads, "--head") == "coarse"
    m2 = by_name["M2 on the coarse head"].args
    assert _value(m2, "--m1-pred") == _value(heads, "--out")
    assert _value(m2, "--name") == ROLES["m2"]
    m3 = by_name["M3 on the coarse head"].args
    assert _value(m3, "--m2") == str(tmp_path / "m2-coarse") and _value(m3, "--name") == ROLES["m3"]
    cell = by_name["predict val at the cell centroid (coarse)"].args
    assert _value(cell, "--label") == "cell" and _value(cell, "--name") == ROLES["m1_coarse_cell"]
    hier = by_name["hierarchical coarse x fine"].args
    assert "--hierarchical" in hier and _value(hier, "--name") == ROLES["hier"]
    assert _value(by_name["predict val by kNN retrieval"].args, "--name") == ROLES["knn"]
    evaluation = by_name["evaluation"].args
    preds = [evaluation[i + 1] for i, a in enumerate(evaluation) if a == "--pred"]
    produced = {str(s.output) for s in stages}
    # Every evaluated file is some stage's output (the per-head files come from one stage).
    per_head = {str(tmp_path / "predictions" / f"m1-{n}.parquet") for n in MESH_RULES}
    assert set(preds) - per_head <= produced and len(preds) == 10
    assert {"--oracle", "--averaging"} <= set(evaluation)
    # Each stage's key changes with its command line.
    assert len({s.key() for s in stages}) == len(stages)


def test_quick_keeps_every_stage_but_trains_one_epoch_on_small_images(tmp_path):
    full = demo_stages(tmp_path, 4000, 200, 0)
    quick = demo_stages(tmp_path, 4000, 200, 0, quick=True)
    assert [s.name for s in quick] == [s.name for s in full]
    by_name = {s.name: s for s in quick}
    assert _value(by_name["M1, one backbone with a head per mesh"].args, "--config") == "quick"
    assert _value(by_name["M2 on the coarse head"].args, "--config") == "test"
    assert _value(by_name["synthetic world"].args, "--image-size") == "32"
    # A quarter of the photos per cell (the minimum at least 2) on 2,400 training photos.
    coarse = by_name["coarse mesh"].args
    assert _value(coarse, "--minimum-examples") == str(max(2, MESH_RULES["coarse"][1] // 4))
    assert _value(coarse, "--refinement-limit") == str(MESH_RULES["coarse"][2] // 4)


def test_every_role_the_pipeline_names_is_one_the_findings_read():
    from trigeo.demo.findings import ROLE_KEYS

    assert set(ROLES) == set(ROLE_KEYS)


def test_against_reads_another_runs_report_and_names_it_by_seed(tmp_path):
    import json

    from trigeo.demo.pipeline import _other_report
    from trigeo.errors import InputError

    other = tmp_path / "seed11"
    (other / "report").mkdir(parents=True)
    (other / "world").mkdir()
    (other / "report" / "report.json").write_text("{}")
    (other / "world" / "dataset.json").write_text(json.dumps({"provenance": {"seed": 11}}))
    assert _other_report(other) == (other / "report" / "report.json", "seed 11")
    # A report.json on its own is labelled by its path.
    lone = tmp_path / "elsewhere.json"
    lone.write_text("{}")
    assert _other_report(lone) == (lone, str(lone))
    with pytest.raises(InputError, match="no demo report there"):
        _other_report(tmp_path / "missing")

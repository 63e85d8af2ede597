"""The study's published numbers: shipped with the package, transcribed right, checked on load."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from trigeo.demo.study import load_study_numbers
from trigeo.errors import ArtifactError

ROOT = Path(__file__).resolve().parents[2]


def packaged() -> dict:
    return json.loads(resources.files("trigeo.demo").joinpath("study.json").read_text("utf-8"))


def test_study_json_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["trigeo"]
    assert "demo/study.json" in patterns or "**/*.json" in patterns


def test_published_numbers_as_transcribed():
    study = load_study_numbers()
    assert "2018 study of photo geolocation from YFCC100M" in study.source
    assert "Table 1 best possible accuracy" in study.source
    assert "headline results on YFCC100M validation" in study.source
    assert study.thresholds_km == (1.0, 25.0, 200.0, 750.0, 2500.0)
    best = study.best_possible
    assert best[("coarse", "cell")].accuracy_pct["1km"] == 1.57
    assert best[("coarse", "imagery")].at(25) == 43.38
    assert best[("fine", "cell")].at(200) == 97.26
    assert best[("fine", "imagery")].at(1) == 31.22
    head = study.headline
    assert head["m1_coarse"].at(750) == 38.72 and head["m1_fine"].at(1) == 4.44
    assert head["m2"].at(2500) == 60.66 and head["m2_fine"].at(25) == 12.28
    assert head["user_avg"].at(1) == 0.84 and head["m3"].at(200) == 25.65
    assert study.outdoor_gain_points == (4.0, 8.0)
    assert study.outdoor_thresholds_km == (200.0, 750.0)
    assert study.outdoor_text == "4 to 8 points at region and country level"
    assert study.time_p_below == 1e-16 and study.time_photos == 2_700_000
    assert study.cells == {"coarse": 538, "fine": 6565, "fineP": 4771}
    assert "Table 7 KL divergence, entropy and errors" in study.source
    errors = study.errors
    assert (errors["m3"].kl, errors["m2"].kl, errors["user_avg"].kl) == (0.4991, 0.4998, 0.9702)
    assert (errors["m1_coarse"].kl, errors["m1_fine"].kl, errors["m2_fine"].kl) == (
        0.6718, 1.712, 0.3543,
    )  # fmt: skip
    assert errors["m1_coarse"].entropy == 5.636 and errors["m3"].entropy == 5.19
    assert (errors["m2"].mean_km, errors["m2"].median_km) == (3516, 1262)
    assert (errors["best_coarse"].kl, errors["best_coarse"].mean_km) == (0.0, 62)
    assert (errors["best_fine"].entropy, errors["best_fine"].median_km) == (8.609, 4)
    assert errors["user_avg"].name == "coarse user averaging"
    # paper-notes has no outdoor-only rows (Table 6): none are transcribed, and it says so.
    assert packaged()["outdoor_gain"]["rows"] is None
    assert "does not give Table 6's outdoor-only accuracies" in study.outdoor_rows_note
    assert study.photos == {"train": 12_200_000, "validation": 2_700_000}


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "study.json"
    path.write_text(json.dumps(raw), "utf-8")
    return path


def test_a_copy_loads_like_the_package(tmp_path):
    assert load_study_numbers(write(tmp_path, packaged())) == load_study_numbers()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("source"), "missing field 'source'"),
        (lambda r: r["headline"]["rows"].pop(0), "no row with key 'm1_coarse'"),
        (lambda r: r["best_possible"]["rows"].pop(3), "no row for fine/imagery"),
        (lambda r: r["headline"]["rows"][0]["accuracy_pct"].update({"750km": 3.8}),
         r"headline.rows\[0\]: accuracy falls from 23.99 at 200km to 3.8 at 750km"),
        (lambda r: r["best_possible"]["rows"][0]["accuracy_pct"].update({"2500km": 100.5}),
         "accuracy at 2500km is 100.5, not a percentage"),
        (lambda r: r["best_possible"]["rows"][1]["accuracy_pct"].pop("1km"), "keys"),
        (lambda r: r["best_possible"]["rows"][1].update({"label": "centroid"}),
         "label 'centroid'"),
        (lambda r: r.update({"thresholds_km": [1, 25, 200]}), "thresholds_km"),
        (lambda r: r["time_significance"].update({"p_below": 2}), "not in \\(0, 1\\)"),
        (lambda r: r["outdoor_gain"].update({"min_points": 9}), "outdoor_gain range"),
        (lambda r: r["cells"].update({"coarse": True}), "'coarse' should be"),
        (lambda r: r["table7"]["rows"].pop(3), "table7 has no row with key 'm3'"),
        (lambda r: r["table7"]["rows"][0].update({"kl": -0.1}), r"table7.rows\[0\]: kl is -0.1"),
        (lambda r: r["table7"]["rows"][1].update({"mean_km": 0}), "mean_km is 0.0, out of range"),
        (lambda r: r["outdoor_gain"].update({"rows": []}), "'rows' is not read yet"),
    ],
)  # fmt: skip
def test_bad_numbers_are_refused_naming_the_field(tmp_path, edit, message):
    raw = packaged()
    edit(raw)
    with pytest.raises(ArtifactError, match=message):
        load_study_numbers(write(tmp_path, raw))


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ArtifactError, match="no such study numbers file"):
        load_study_numbers(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{", "utf-8")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_study_numbers(tmp_path / "bad.json")

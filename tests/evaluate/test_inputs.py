"""Bad input gets a clear error or warning naming the problem."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from trigeo.errors import InputError
from trigeo.evaluate.core import EvaluationConfig, Truth, evaluate
from trigeo.evaluate.inputs import (
    EvaluationWarning,
    align_predictions,
    check_predictions,
    detect_swapped_latlon,
    load_predictions,
)
from trigeo.predictions import Predictions, write_predictions


def _val(table):
    return table[table["split"] == "val"].reset_index(drop=True)


def test_peer_csv_with_swapped_columns_is_detected_and_repaired(tmp_path, table):
    val = _val(table)
    path = tmp_path / "peer.csv"
    # Columns in the wrong order: the 'lat' column holds longitudes (|lon| > 90 for
    # New York, Los Angeles, Sydney, Tokyo: half the photos).
    pd.DataFrame({"photo_id": val["photo_id"], "lat": val["lon"], "lon": val["lat"]}).to_csv(
        path, index=False
    )
    with pytest.warns(EvaluationWarning, match="look swapped"):
        preds = load_predictions(path)
    np.testing.assert_allclose(preds.lat, val["lat"])
    np.testing.assert_allclose(preds.lon, val["lon"])


def test_swapped_peer_csv_keeps_numeric_looking_ids_verbatim(tmp_path):
    path = tmp_path / "peer.csv"
    path.write_text("photo_id,lat,lon\n007,139.7,35.7\n010,-74.0,40.7\n")
    with pytest.warns(EvaluationWarning, match="look swapped"):
        preds = load_predictions(path)
    assert preds.photo_id.tolist() == ["007", "010"]
    assert preds.meta["swapped_latlon"] is True
    np.testing.assert_allclose(preds.lat, [35.7, 40.7])


def test_a_few_bad_latitudes_are_an_error_naming_the_row(tmp_path, table):
    val = _val(table)
    frame = pd.DataFrame({"photo_id": val["photo_id"], "lat": val["lat"], "lon": val["lon"]})
    frame.loc[3, "lat"] = 95.0  # one row of 120: under 1%, a typo rather than a swap
    path = tmp_path / "peer.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"row 4.*outside \[-90, 90\]"):
        load_predictions(path)


def test_swap_within_valid_ranges_is_warned_by_comparing_errors(rng):
    lat = rng.uniform(-40, 60, 300)
    lon = rng.uniform(-20, 50, 300)  # Europe/Africa: every longitude is a valid latitude
    assert detect_swapped_latlon(lat, lon, lon + 0.1, lat - 0.1)
    assert not detect_swapped_latlon(lat, lon, lat + 0.1, lon - 0.1)


def test_duplicated_photo_ids_are_an_error():
    preds = Predictions(
        photo_id=np.array(["a", "b", "a", "c", "b"]), lat=np.zeros(5), lon=np.zeros(5)
    )
    with pytest.raises(InputError, match=r"row 3.*duplicated photo_id 'a' \(2 duplicated"):
        check_predictions(preds, "x.parquet")


def test_probabilities_that_do_not_sum_to_one_are_an_error():
    base = dict(photo_id=np.array(["a", "b"]), lat=np.zeros(2), lon=np.zeros(2))
    over = Predictions(
        **base, top_cells=np.array([[0, 1], [1, 0]]), top_probs=np.array([[0.5, 0.4], [0.9, 0.3]])
    )
    with pytest.raises(InputError, match=r"row 2.*top_probs of photo 'b' sum to 1.2000"):
        check_predictions(over, "m.parquet")
    full = Predictions(
        **base,
        top_cells=np.array([[0, 1], [1, 0]]),
        top_probs=np.array([[0.5, 0.4], [0.6, 0.3]]),
        full_probs=np.array([[0.5, 0.4, 0.1], [0.6, 0.3, 0.3]], dtype=np.float32),
    )
    with pytest.raises(InputError, match=r"m.probs.npy.*photo 'b' sums to 1.2000"):
        check_predictions(full, "m.parquet")
    unsorted = Predictions(
        **base, top_cells=np.array([[0, 1], [1, 0]]), top_probs=np.array([[0.1, 0.4], [0.6, 0.3]])
    )
    with pytest.raises(InputError, match="not sorted"):
        check_predictions(unsorted, "m.parquet")


def test_cell_ids_outside_the_mesh_are_an_error():
    preds = Predictions(
        photo_id=np.array(["a"]),
        lat=np.zeros(1),
        lon=np.zeros(1),
        top_cells=np.array([[3, 9]]),
        top_probs=np.array([[0.6, 0.4]]),
    )
    with pytest.raises(InputError, match=r"cell ids outside \[0, 5\)"):
        check_predictions(preds, "m.parquet", n_cells=5)


def test_unknown_photo_ids_warn_and_foreign_files_fail():
    truth_ids = np.array(["a", "b", "c"])
    all_ids = np.array(["a", "b", "c", "t1"])
    preds = Predictions(photo_id=np.array(["c", "zz", "a", "t1"]), lat=np.zeros(4), lon=np.zeros(4))
    with pytest.warns(
        EvaluationWarning, match=r"1 predicted photo ids are not in the dataset.*'zz'"
    ):
        align = align_predictions(preds, truth_ids, all_ids, "p.csv")
    assert align.truth_rows.tolist() == [2, 0] and align.pred_rows.tolist() == [0, 2]
    assert align.missing_rows.tolist() == [1] and align.other_split == 1
    foreign = Predictions(photo_id=np.array(["x", "y"]), lat=np.zeros(2), lon=np.zeros(2))
    with pytest.raises(InputError, match="none of its 2 photo ids"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            align_predictions(foreign, truth_ids, all_ids, "p.csv")


def test_missing_photos_are_listed_and_scored_by_the_missing_flag(tmp_path, dataset, table):
    val = _val(table)
    kept = val.iloc[: int(0.95 * len(val))]  # the peer predicted 95% of the photos
    path = tmp_path / "peer.csv"
    kept[["photo_id", "lat", "lon"]].to_csv(path, index=False)
    truth = Truth.from_dataset(dataset)
    preds = [(str(path), load_predictions(path))]
    missing_ids = sorted(set(val["photo_id"]) - set(kept["photo_id"]))

    as_miss = evaluate(truth, preds, config=EvaluationConfig(missing="miss"))
    (model,) = as_miss.models
    assert sorted(model.missing_ids.tolist()) == missing_ids and len(missing_ids) == 6
    assert model.n_scored == len(val)
    assert model.accuracy[-1] == pytest.approx(100.0 * len(kept) / len(val))
    assert any("no prediction for 6 of 120 photos" in w for w in as_miss.warnings)
    assert any(missing_ids[0] in w for w in as_miss.warnings)

    excluded = evaluate(truth, preds, config=EvaluationConfig(missing="exclude"))
    (model,) = excluded.models
    assert model.n_scored == len(kept) and model.accuracy[0] == 100.0
    assert sorted(model.missing_ids.tolist()) == missing_ids


def test_mesh_hash_mismatch_warns_and_label_needs_the_mesh(tmp_path, dataset, table, grid_mesh):
    val = _val(table)
    n = len(val)
    path = tmp_path / "m.parquet"
    write_predictions(
        path,
        val["photo_id"],
        val["lat"],
        val["lon"],
        top_cells=np.tile([0, 1], (n, 1)),
        top_probs=np.tile([0.7, 0.3], (n, 1)),
        model_id="other-mesh-model",
        mesh_hash="not-the-grid-hash",
    )
    truth = Truth.from_dataset(dataset)
    preds = [(str(path), load_predictions(path))]
    result = evaluate(truth, preds, meshes=[("grid", grid_mesh)])
    assert any("mesh hash 'not-the-grid' matches none" in w for w in result.warnings)
    assert result.models[0].kl is None and result.models[0].calibration is None
    with pytest.raises(InputError, match=r"--label cell .* needs the model's mesh"):
        evaluate(truth, preds, meshes=[("grid", grid_mesh)], config=EvaluationConfig(label="cell"))


def test_config_rejects_unknown_choices():
    with pytest.raises(InputError, match="missing"):
        EvaluationConfig(missing="drop")
    with pytest.raises(InputError, match="label"):
        EvaluationConfig(label="centre")

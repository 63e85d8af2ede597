"""Display names: derived from files, taken from the predictions, made distinct."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from trigeo.errors import InputError
from trigeo.evaluate.core import evaluate
from trigeo.evaluate.inputs import EvaluationWarning
from trigeo.evaluate.naming import MAX_DERIVED_CHARS, derived_name, display_name, display_names
from trigeo.evaluate.results import EvaluationConfig
from trigeo.predictions import Predictions


def _preds(model_id: str = "m", model_name: str | None = None, n: int = 2) -> Predictions:
    return Predictions(
        photo_id=np.array([f"p{i:04d}" for i in range(n)]),
        lat=np.zeros(n),
        lon=np.zeros(n),
        model_id=model_id,
        model_name=model_name,
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("peer.csv", "peer"),
        ("peers/their-system.csv.gz", "their-system"),
        ("runs/m1-coarse.parquet", "m1-coarse"),
        # The weights hash identifies, it does not describe; the rest is cut to 20 characters.
        ("m1-test_resnet-imagery-c835f3f09c.parquet", "m1-test_resnet-imag…"),
        ("m1-resnet-c835f3f09c.parquet", "m1-resnet"),
        # Hex-looking words without a digit stay; a stem that is only a hash stays too.
        ("city-facade.csv", "city-facade"),
        ("c835f3f09c.parquet", "c835f3f09c"),
        ("prior baseline (coarse)", "prior baseline (coa…"),
    ],
)
def test_derived_name(source, expected):
    assert derived_name(source) == expected
    assert len(derived_name(source)) <= MAX_DERIVED_CHARS


def test_the_files_own_name_wins_over_the_file_name():
    assert display_name(_preds("m1-x-c835f3f09c", "M1 coarse"), "a/long-file.parquet") == (
        "M1 coarse"
    )
    assert display_name(_preds("m1-x-c835f3f09c", "  "), "a/m1-coarse.parquet") == "m1-coarse"


def test_shared_names_are_numbered_with_a_warning():
    given = [
        ("a.parquet", _preds("id-a", "M1")),
        ("b.parquet", _preds("id-b", "M1 #1")),  # "M1 #1" is taken: the shared ones skip it
        ("c.parquet", _preds("id-c", "M1")),
        ("d.parquet", _preds("id-d")),
    ]
    with pytest.warns(EvaluationWarning) as caught:
        names = display_names(given)
    assert names == ["M1 #2", "M1 #1", "M1 #3", "d"]
    (warning,) = caught
    assert str(warning.message) == (
        "2 models have the display name 'M1'; they are shown as 'M1 #2' (id-a), "
        "'M1 #3' (id-c). Give each its own --name to choose."
    )


def test_distinct_names_raise_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert display_names([("x.csv", _preds("x")), ("y.csv", _preds("y"))]) == ["x", "y"]


def test_evaluate_names_rows_and_averaged_rows(truth, grid_mesh):
    cells = grid_mesh.locate(truth.lat, truth.lon)
    lat, lon = grid_mesh.centroids("imagery")
    top = np.stack([np.maximum(cells, 0), (np.maximum(cells, 0) + 1) % grid_mesh.n_cells_], 1)

    def model(model_id: str, name: str | None) -> Predictions:
        return Predictions(
            photo_id=truth.photo_id,
            lat=lat[top[:, 0]],
            lon=lon[top[:, 0]],
            top_cells=top.astype(np.int32),
            top_probs=np.tile(np.float32([0.7, 0.3]), (len(truth), 1)),
            model_id=model_id,
            mesh_hash=grid_mesh.mesh_hash,
            model_name=name,
        )

    result = evaluate(
        truth,
        [("one.parquet", model("m1-a-0123456789", "M1")), ("two.parquet", model("m1-b", "M1"))],
        meshes=[("grid", grid_mesh)],
        config=EvaluationConfig(averaging=True, n_resamples=20),
    )
    assert [(m.name, m.model_id) for m in result.models] == [
        ("M1 #1", "m1-a-0123456789"),
        ("M1 #1 +user-avg", "m1-a-0123456789 +user-avg"),
        ("M1 #1 +album-avg", "m1-a-0123456789 +album-avg"),
        ("M1 #2", "m1-b"),
        ("M1 #2 +user-avg", "m1-b +user-avg"),
        ("M1 #2 +album-avg", "m1-b +album-avg"),
    ]
    assert any("display name 'M1'" in w for w in result.warnings)
    assert set(result.confusions) == {m.name for m in result.models}
    assert set(result.continents["model"]) == {m.name for m in result.models}
    # A name that collides with an averaged row cannot be numbered away: a clear error.
    with pytest.raises(InputError, match=r"\['M1 \+user-avg'\] label several rows"):
        evaluate(
            truth,
            [("a", model("id-a", "M1")), ("b", model("id-b", "M1 +user-avg"))],
            meshes=[("grid", grid_mesh)],
            config=EvaluationConfig(averaging=True, n_resamples=20),
        )

"""trigeo predict with M2 and M3 model directories: dataset splits, image files, times, errors."""

from __future__ import annotations

import datetime as dt
import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from trigeo.cli import app
from trigeo.errors import InputError
from trigeo.models import load_model_dir, m2_inputs
from trigeo.models.m3 import make_albums
from trigeo.predict.heads import predict_head
from trigeo.predict.times import exif_posting_time, parse_posted_at
from trigeo.predictions import read_predictions, write_predictions
from trigeo.runtime.options import InferenceOptions

M1_OPTIONS = InferenceOptions(num_workers=0, batch_size=16, progress=False)


@pytest.fixture(scope="module")
def heads(model_dir, tmp_path_factory):
    from trigeo.train.heads_config import load_head_config
    from trigeo.train.m2 import train_m2
    from trigeo.train.m3 import train_m3

    m1, dataset = model_dir
    root = tmp_path_factory.mktemp("heads")
    train_m2(dataset.root, m1, root / "m2", load_head_config("m2", "test"))
    train_m3(dataset.root, root / "m2", root / "m3", load_head_config("m3", "test"))
    return root / "m2", root / "m3"


def _expected(model, m1_pred, dataset, split="val"):
    """What the head should output, computed from the parts: M1's file, times, the net."""
    pred = read_predictions(m1_pred)
    rows = dataset.photos(split).set_index("photo_id").loc[pred.photo_id]
    x = m2_inputs(pred.top_cells, pred.top_probs, model.num_classes, rows["posted_at"])
    if hasattr(model, "predict_albums"):
        probs = np.zeros((len(x), model.num_classes), dtype=np.float32)
        import torch

        with torch.no_grad():
            for album in make_albums(rows["user_id"], rows["posted_at"], pred.photo_id):
                logits = model.net(torch.from_numpy(x[None, album]), torch.ones(1, len(album)) > 0)
                probs[album] = torch.softmax(logits[0], 1).numpy()
        return pred.photo_id, probs
    import torch

    with torch.no_grad():
        probs = torch.softmax(model.net(torch.from_numpy(x)), 1).numpy()
    return pred.photo_id, probs


@pytest.mark.parametrize("kind", [0, 1])
def test_split_predictions_run_the_chain_and_match_the_parts(model_dir, heads, tmp_path, kind):
    _, dataset = model_dir
    model = load_model_dir(heads[kind])
    out = tmp_path / "p.parquet"
    notes: list[str] = []
    predict_head(model, out, data=dataset.root, top_k=3, options=M1_OPTIONS, report=notes.append)
    m1_file = tmp_path / "p.m1.parquet"  # M1 was run through the chain recorded in the model
    assert m1_file.exists() and any("running M1" in n for n in notes)
    pred = read_predictions(out)
    assert pred.model_id == model.model_id and pred.mesh_hash == model.mesh_hash
    assert pred.model_name == model.name and pred.top_cells.shape == (32, 3)
    ids, probs = _expected(model, m1_file, dataset)
    order = pd.Series(np.arange(len(ids)), index=ids).loc[pred.photo_id].to_numpy()
    top = np.argsort(-probs[order], axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(pred.top_cells, top)
    np.testing.assert_allclose(pred.top_probs, np.take_along_axis(probs[order], top, 1), atol=1e-6)
    lat, lon = model.label_points()
    np.testing.assert_allclose(pred.lat, lat[top[:, 0]])
    np.testing.assert_allclose(pred.lon, lon[top[:, 0]])
    assert pred.meta["time_sources"] == {"dataset": 32}
    # Given M1's file instead, the same predictions without running M1 again.
    again = tmp_path / "q.parquet"
    predict_head(model, again, data=dataset.root, top_k=3, m1_pred=m1_file)
    assert not (tmp_path / "q.m1.parquet").exists()
    np.testing.assert_array_equal(read_predictions(again).top_cells, pred.top_cells)


def test_m1_predictions_of_another_model_are_refused(model_dir, heads, tmp_path):
    _, dataset = model_dir
    model = load_model_dir(heads[0])
    good = tmp_path / "good.parquet"
    predict_head(model, tmp_path / "x.parquet", data=dataset.root, options=M1_OPTIONS)
    shutil.copy(tmp_path / "x.m1.parquet", good)
    pred = read_predictions(good)
    write_predictions(
        tmp_path / "bad.parquet", pred.photo_id, pred.lat, pred.lon, top_cells=pred.top_cells,
        top_probs=pred.top_probs, model_id="m1-someone-else", mesh_hash=pred.mesh_hash,
    )  # fmt: skip
    with pytest.raises(InputError, match="made by m1-someone-else, not by the given M1"):
        predict_head(
            model, tmp_path / "y.parquet", data=dataset.root, m1_pred=tmp_path / "bad.parquet"
        )
    with pytest.raises(InputError, match="is not at"):
        predict_head(model, tmp_path / "z.parquet", data=dataset.root, m1_dir=tmp_path)


def _jpeg(path, when: str | None, offset: str | None):
    image = Image.fromarray(np.full((32, 32, 3), 120, dtype=np.uint8))
    exif = Image.Exif()
    if when is not None:
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = when
        if offset is not None:
            ifd[0x9011] = offset
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def test_exif_and_posted_at_times():
    assert parse_posted_at("2014-12-31T23:59:59Z") == pd.Timestamp("2014-12-31 23:59:59", tz="UTC")
    assert parse_posted_at("2015-03-29T03:30:00+02:00") == pd.Timestamp(
        "2015-03-29 01:30", tz="UTC"
    )
    with pytest.raises(InputError, match="no UTC offset"):
        parse_posted_at("2015-03-29T03:30:00")
    with pytest.raises(InputError, match="not an ISO 8601 time"):
        parse_posted_at("yesterday")


def test_exif_time_with_offset_is_converted_to_utc(tmp_path):
    path = _jpeg(tmp_path / "a.jpg", "2015:03:29 03:30:00", "+02:00")
    assert exif_posting_time(path) == (pd.Timestamp("2015-03-29 01:30", tz="UTC"), "exif-offset")
    no_offset = _jpeg(tmp_path / "b.jpg", "2015:03:29 03:30:00", None)
    assert exif_posting_time(no_offset)[0] is None
    assert "without OffsetTimeOriginal" in exif_posting_time(no_offset)[1]
    assert exif_posting_time(_jpeg(tmp_path / "c.jpg", None, None)) == (
        None,
        "no EXIF DateTimeOriginal",
    )


def test_image_files_take_exif_or_posted_at_and_refuse_no_time(model_dir, heads, tmp_path):
    model = load_model_dir(heads[0])
    a = _jpeg(tmp_path / "a.jpg", "2015:07:04 21:30:00", "-04:00")  # 2015-07-05 01:30 UTC
    b = _jpeg(tmp_path / "b.jpg", None, None)
    notes: list[str] = []
    result = predict_head(
        model, tmp_path / "p.parquet", images=[a, b], options=M1_OPTIONS, report=notes.append
    )
    assert list(result.photo_id) == [str(a)]
    assert any("posted 2015-07-05 01:30:00 UTC (from exif-offset)" in n for n in notes)
    assert any(f"left out {b}: no EXIF DateTimeOriginal" in n for n in notes)
    meta = read_predictions(tmp_path / "p.parquet").meta
    assert meta["counts"]["no_posting_time"] == 1 and meta["time_sources"] == {"exif-offset": 1}
    # The time features used are those of the UTC time (Sunday 01:xx, July).
    pred = read_predictions(tmp_path / "p.m1.parquet")
    x = m2_inputs(pred.top_cells[:1], pred.top_probs[:1], model.num_classes, ["2015-07-05T01:30Z"])
    np.testing.assert_allclose(result.top_probs[0, 0], model.predict_proba(x)[0].max(), rtol=1e-5)
    # --posted-at wins for every image.
    result = predict_head(
        model, tmp_path / "q.parquet", images=[b], posted_at="2015-07-05T03:30:00+02:00",
        m1_pred=tmp_path / "p.m1.parquet",
    )  # fmt: skip
    np.testing.assert_allclose(result.top_probs[0, 0], model.predict_proba(x)[0].max(), rtol=1e-5)
    with pytest.raises(InputError, match=r"needs each photo's posting time and none has one"):
        predict_head(model, tmp_path / "r.parquet", images=[b], m1_pred=tmp_path / "p.m1.parquet")


def test_cli_dispatches_on_the_model_kind(model_dir, heads, tmp_path):
    m1, dataset = model_dir
    runner = CliRunner()
    common = ["--data", str(dataset.root), "--workers", "0", "--no-progress"]
    result = runner.invoke(
        app, ["predict", "--model", str(heads[1]), "--out", str(tmp_path / "m3.parquet"), *common]
    )
    assert result.exit_code == 0, result.output
    assert read_predictions(tmp_path / "m3.parquet").model_name == "M3 mesh"
    result = runner.invoke(
        app,
        ["predict", "--model", str(m1), "--out", str(tmp_path / "m1.parquet"), "--posted-at",
         "2015-01-01T00:00Z", *common],
    )  # fmt: skip
    assert result.exit_code == 2 and "--posted-at apply to M2/M3 models" in result.output
    when = dt.datetime(2015, 1, 1, tzinfo=dt.UTC).isoformat()
    result = runner.invoke(
        app,
        ["predict", "--model", str(heads[0]), "--out", str(tmp_path / "x.parquet"),
         "--posted-at", when, *common],
    )  # fmt: skip
    assert result.exit_code == 2 and "--posted-at is for image files" in result.output


def test_a_head_answers_by_the_rule_asked_for(model_dir, heads, tmp_path):
    from trigeo.answer import answer_points

    _, dataset = model_dir
    model = load_model_dir(heads[0])
    top = predict_head(model, tmp_path / "top.parquet", data=dataset.root, top_k=3,
                       options=M1_OPTIONS)  # fmt: skip
    m1_file = tmp_path / "top.m1.parquet"  # M1's own file, top-cell: M2 reads only its cells
    out = tmp_path / "median.parquet"
    got = predict_head(model, out, data=dataset.root, top_k=3, m1_pred=m1_file,
                       answer="median")  # fmt: skip
    pred = read_predictions(out)
    assert pred.answer == "median" and pred.model_id == f"{model.model_id}+median"
    assert pred.model_name == f"{model.name} median"
    np.testing.assert_array_equal(pred.top_cells, top.top_cells)
    want = answer_points("median", pred.top_cells, pred.top_probs, *model.label_points())
    np.testing.assert_allclose(pred.lat, want[0])
    np.testing.assert_allclose(got.lon, want[1])
    with pytest.raises(InputError, match="retrieval index"):
        predict_head(model, out, data=dataset.root, m1_pred=m1_file, answer="refine")

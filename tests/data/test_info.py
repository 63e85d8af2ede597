from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from trigeo.data.cli import app
from trigeo.data.info import describe_dataset, plot_density_map, plot_time_longitude
from trigeo.data.table import Dataset

runner = CliRunner()


def test_describe(small_world: Path) -> None:
    ds = Dataset.open(small_world)
    info = describe_dataset(ds)
    assert info["photos"] == 600 and info["users"] == 60
    assert sum(info["splits"].values()) == 600
    assert info["posted_from"] < info["posted_to"]
    assert 0.3 < info["outdoor_share"] < 0.7
    assert info["photos_per_user"]["max"] >= info["photos_per_user"]["median"]
    assert info["countries"] == ds.table["country"].nunique()


def test_plots(small_world: Path, tmp_path: Path) -> None:
    table = Dataset.open(small_world).table
    result = plot_time_longitude(table, tmp_path / "time.png", seed=1)
    assert result["photos"] == 60
    assert result["circular_correlation"] < 0
    with Image.open(tmp_path / "time.png") as im:
        assert im.size[0] > 500
    plot_density_map(table, tmp_path / "map.png")
    with Image.open(tmp_path / "map.png") as im:
        assert im.size[0] > 500


def test_cli_info_and_plot_time(small_world: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["info", "--data", str(small_world), "--out", str(tmp_path / "m.png")]
    )
    assert result.exit_code == 0, result.output
    assert "photos" in result.output and (tmp_path / "m.png").exists()
    result = runner.invoke(
        app, ["plot-time", "--data", str(small_world), "--out", str(tmp_path / "t.png")]
    )
    assert result.exit_code == 0, result.output
    assert "circular correlation" in result.output

"""`trigeo data csv` on the command line: the column choice is printed, errors are one line."""

from __future__ import annotations

from pathlib import Path

from tests.data._standard_sets import S2_HEADER, jpeg, s2_row, write_csv
from typer.testing import CliRunner

from trigeo.cli import app

runner = CliRunner()


def test_cli_prints_columns_and_summary(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    rows = []
    for i in range(3):
        (images / f"{i}_x_1_1@N00.jpg").write_bytes(jpeg(i))
        rows.append(s2_row(f"{i}_x_1_1@N00.jpg", "1@N00", 10 + i, 20 + i))
    rows.append(s2_row("9_x_1_1@N00.jpg", "1@N00", 95, 20))
    table = write_csv(tmp_path / "im2gps3k_places365.csv", S2_HEADER, rows)
    result = runner.invoke(
        app,
        ["data", "csv", str(table), "--images", str(images), "--out", str(tmp_path / "ds"),
         "--assign-split", "test"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Generic format: the S2 columns are found by their common spellings.
    assert "id <- IMG_ID (auto)" in result.output
    assert "lat <- LAT (auto)" in result.output and "user <- AUTHOR (auto)" in result.output
    assert "images: found by photo id" in result.output
    assert "latitude beyond ±90" in result.output
    assert "wrote" in result.output and "'test': 3" in result.output


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "t.csv", ["a", "b"], [[1, 2]])
    result = runner.invoke(app, ["data", "csv", str(table), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 2
    assert "no id column found" in result.output
    result = runner.invoke(
        app, ["data", "csv", str(table), "--out", str(tmp_path / "ds"), "--format", "nope"]
    )
    assert result.exit_code == 2 and "--format must be one of" in result.output

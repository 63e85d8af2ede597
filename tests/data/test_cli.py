from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from trigeo.data.cli import app
from trigeo.data.table import Dataset

runner = CliRunner()


def test_synth_then_split(tmp_path: Path) -> None:
    out = tmp_path / "w"
    result = runner.invoke(
        app,
        [
            "synth",
            "--photos",
            "80",
            "--users",
            "8",
            "--image-size",
            "24",
            "--seed",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    # rich wraps long paths at the terminal width, so compare with whitespace folded.
    assert "80 photos" in " ".join(result.output.split())
    result = runner.invoke(app, ["split", "--data", str(out), "--seed", "3", "--by-user"])
    assert result.exit_code == 0, result.output
    ds = Dataset.open(out)
    assert (ds.table.groupby("user_id")["split"].nunique() == 1).all()
    assert ds.meta["provenance"]["config"]["stage"] == "data.split"

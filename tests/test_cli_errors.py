"""How the ``trigeo`` command reports failures: one line, exit status 2, never a bare "Aborted."."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from trigeo.cli import _Group, app
from trigeo.data.synth import WorldConfig, sample_photos
from trigeo.data.table import Dataset
from trigeo.data.yfcc import REPORT_FILE, write_yfcc

runner = CliRunner()


def _folded(text: str) -> str:
    """Output with whitespace folded: rich wraps long lines at the terminal width."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def cut_gzip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], int]:
    """A YFCC file cut two thirds into its gzip data: (path, photo ids, complete lines)."""
    folder = tmp_path_factory.mktemp("cut")
    table, _ = sample_photos(WorldConfig(photos=300, users=30, seed=4))
    text = write_yfcc(table, folder / "m.tsv").read_bytes()
    whole = gzip.compress(text, mtime=0)
    cut = whole[: len(whole) * 2 // 3]
    complete = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    path = folder / "cut.tsv.gz"
    path.write_bytes(cut)
    return path, list(table["photo_id"]), complete


def test_truncated_yfcc_keeps_rows_and_exits_2(
    cut_gzip: tuple[Path, list[str], int], tmp_path: Path
) -> None:
    path, ids, complete = cut_gzip
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "yfcc", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    text = _folded(result.output)
    assert "Aborted" not in text
    assert f"error: {path}: the gzip data ends early, after line {complete} (" in text
    assert f"{out} holds the photos of lines 1-{complete} only" in text
    assert "incomplete input:" in text  # the summary says so before the error line
    assert list(Dataset.open(out).table["photo_id"]) == ids[:complete]
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["written"] == complete
    assert report["incomplete"]["last_complete_line"] == complete


def test_stray_eof_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """An EOFError no command expected (numpy reading an empty file) is not a bare 'Aborted.'."""
    empty = tmp_path / "probs.npy"
    empty.write_bytes(b"")
    probe = typer.Typer(cls=_Group)

    @probe.command()
    def load() -> None:
        np.load(empty)

    @probe.command()
    def other() -> None:  # a second command, so "load" is a sub-command as in trigeo
        pass

    result = runner.invoke(probe, ["load"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: unexpected end of data (EOFError: No data left in file)")
    assert "empty or truncated" in lines[0]


def test_interrupted_yfcc_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during an import: exit 130 and a line saying that running again resumes."""
    import trigeo.data.yfcc as yfcc

    table, _ = sample_photos(WorldConfig(photos=50, users=5, seed=2))
    path = write_yfcc(table, tmp_path / "m.tsv.gz")
    out = tmp_path / "out"
    convert = yfcc._convert

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(yfcc, "_convert", interrupted)
    result = runner.invoke(app, ["data", "yfcc", str(path), "--out", str(out)])
    assert result.exit_code == 130
    assert "interrupted: run the same command again to resume the import" in result.output
    monkeypatch.setattr(yfcc, "_convert", convert)
    result = runner.invoke(app, ["data", "yfcc", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert list(Dataset.open(out).table["photo_id"]) == list(table["photo_id"])

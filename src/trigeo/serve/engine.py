"""What the server computes for one photo: the reported answer.

A backend (:mod:`trigeo.serve.backends`: :class:`M1Backend`,
:class:`M2Backend`, :func:`load_backend`, :func:`register_backend`, all
importable from here too) turns decoded photos and optional posting times into
cell probabilities and M1 descriptors.

:class:`Engine` turns probabilities into the reported answer: the answer
point chosen by the server's rule (``--answer``, :mod:`trigeo.answer`: the
top region's label point, the expected-GeoScore maximiser or the median over
the top 20 regions, retrieval refined inside them, or the kNN estimate), the
top-k regions with their nearest populous city, the 50/90/95% credible regions
(:func:`trigeo.calibration.credible_sets`), a GeoJSON FeatureCollection of
region probabilities, the EXIF truth and error (the records of
:mod:`trigeo.serve.report`), and the nearest indexed photos with a kNN
estimate (:mod:`trigeo.serve.neighbours`). With ``coarsen_km`` every
coordinate is rounded and small cells are merged (:mod:`trigeo.serve.coarsen`),
and EXIF truth is never echoed back.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.serve.backends import (
    Inference,
    M1Backend,
    M2Backend,
    load_backend,
    register_backend,
)
from trigeo.serve.coarsen import Regions, build_regions, round_to_grid
from trigeo.serve.neighbours import IndexedPhotos, neighbour_records
from trigeo.serve.report import (
    ANSWER_TOP_K,
    CREDIBLE_LEVELS,
    GEOJSON_MAX_FEATURES,
    GEOJSON_MIN_PROB,
    credible_records,
    listed_count,
    listed_geojson,
    listed_regions,
    region_feature,
    round_coord,
    top_k_records,
    top_regions,
    truth_record,
)

__all__ = [
    "ANSWER_TOP_K",
    "CREDIBLE_LEVELS",
    "GEOJSON_MAX_FEATURES",
    "GEOJSON_MIN_PROB",
    "Engine",
    "Inference",
    "M1Backend",
    "M2Backend",
    "load_backend",
    "register_backend",
]


class Engine:
    """A backend plus everything the answer needs: regions, places, the index.

    Parameters
    ----------
    backend
        From :func:`load_backend`.
    index
        A :class:`~trigeo.retrieve.index.RetrievalIndex` built with the
        backend's M1 (refused otherwise), or ``None``.
    coarsen_km
        The responsible-use setting (:mod:`trigeo.serve.coarsen`).
    neighbours
        Indexed photos reported per query.
    thumbnails
        Whether the indexed (training) photos' thumbnails are served and
        linked from answers; ``None``: yes, unless ``coarsen_km`` is given
        (they are other people's photos, shown at full detail).
    answer
        The rule of the reported point (:data:`trigeo.answer.ANSWERS`);
        ``refine`` and ``knn`` need the index.

    Raises
    ------
    InputError
        An unknown rule, or ``refine``/``knn`` without an index.
    """

    def __init__(
        self,
        backend: Any,
        *,
        index: Any = None,
        coarsen_km: float | None = None,
        neighbours: int = 6,
        thumbnails: bool | None = None,
        answer: str = "top-cell",
    ) -> None:
        from trigeo.answer import check_answer

        self.answer_rule = check_answer(answer, has_index=index is not None)
        self.backend = backend
        self.coarsen_km = coarsen_km
        self.neighbours = int(neighbours)
        self.thumbnails = (coarsen_km is None) if thumbnails is None else bool(thumbnails)
        label_lat, label_lon = backend.label_points()
        self.regions: Regions = build_regions(backend.mesh, label_lat, label_lon, coarsen_km)
        self._cell_counts = np.array([len(cells) for cells in self.regions.cells], dtype=np.int64)
        self.index = index
        self._photos: IndexedPhotos | None = None
        if index is not None:
            index.check_model(backend.m1.model_id)
            self._photos = IndexedPhotos(
                index, backend.mesh, self.regions, with_regions=self.answer_rule == "refine"
            )
        self._places: dict[tuple[float, float], str] = {}
        self._lock = threading.Lock()

    # --- helpers -------------------------------------------------------------------
    def place(self, lat: float, lon: float) -> str:
        """Nearest populous city (cached per reported point)."""
        from trigeo.predict.m1 import nearest_place

        key = (round(lat, 4), round(lon, 4))
        with self._lock:
            if key not in self._places:
                self._places[key] = nearest_place(lat, lon)
            return self._places[key]

    def report_point(self, lat: float, lon: float) -> tuple[float, float]:
        """A coordinate as reported: rounded to the grid when coarsening."""
        if self.coarsen_km is None:
            return round_coord(lat), round_coord(lon)
        r_lat, r_lon = round_to_grid(lat, lon, self.coarsen_km)
        return round_coord(r_lat), round_coord(r_lon)

    def describe(self) -> dict[str, Any]:
        record = self.backend.describe()
        record["coarsen_km"] = self.coarsen_km
        record["answer"] = self.answer_rule
        record["regions"] = len(self.regions)
        record["thumbnails"] = self.thumbnails and self.index is not None
        record["index"] = (
            None
            if self.index is None
            else {
                "photos": len(self.index),
                "kind": self.index.kind,
                "dataset_sha256": self.index.meta.get("dataset_sha256"),
                "split": self.index.meta.get("split"),
            }
        )
        return record

    def regions_geojson(self) -> dict[str, Any]:
        """Every reported region's geometry, once: answers name regions by ``id``.

        Without ``--coarsen-km`` region ``i`` is cell ``i``; with it, merged
        grid squares and the cells left as they are.
        """
        regions = self.regions
        features = [region_feature(regions, r) for r in range(len(regions))]
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {"regions": len(regions), "coarsen_km": self.coarsen_km},
        }

    # --- inference -----------------------------------------------------------------
    def prepare(self, image: Any) -> Any:
        """A decoded photo as the backend's input (its transform), for a batched pass.

        A backend without ``prepare`` (a plug-in written for :meth:`predict`)
        gets the decoded image itself.
        """
        prepare = getattr(self.backend, "prepare", None)
        return image if prepare is None else prepare(image)

    def infer_prepared(self, inputs: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """One forward pass over inputs from :meth:`prepare`."""
        infer = getattr(self.backend, "infer_prepared", None)
        return (infer or self.backend.infer)(inputs, posted_at)

    # --- the answer ----------------------------------------------------------------
    def predict(
        self,
        images: Sequence[Any],
        posted_at: Sequence[pd.Timestamp | None],
        truths: Sequence[tuple[float, float] | None],
        top_k: int = 5,
        geojson: bool = False,
    ) -> list[dict[str, Any]]:
        """The reported answer for each decoded photo (one forward pass)."""
        inferences = self.backend.infer(images, posted_at)
        n = len(inferences)
        return self.answers(inferences, truths, [top_k] * n, [geojson] * n)

    def answers(
        self,
        inferences: Sequence[Inference],
        truths: Sequence[tuple[float, float] | None],
        top_ks: Sequence[int],
        geojsons: Sequence[bool],
    ) -> list[dict[str, Any]]:
        """The answers of one forward pass; the index is searched once for all of them."""
        from trigeo.calibration import credible_sets

        n = len(inferences)
        if n == 0:
            return []
        regions = self.regions
        p = np.stack([regions.probabilities(inference.probs) for inference in inferences])
        # One call for the whole pass: the smallest sets of regions holding 50/90/95%.
        sets = credible_sets(
            None, p, np.full(n, -1), CREDIBLE_LEVELS, cell_areas_km2=regions.area_km2
        )
        found: list[dict[str, Any] | None] = [None] * n
        with_descriptor = [i for i, inf in enumerate(inferences) if inf.descriptor is not None]
        points = self._answer_points(p)
        if self._photos is not None and with_descriptor:
            found_rows = self._photos.search(
                np.stack([inferences[i].descriptor for i in with_descriptor]),
                p[with_descriptor],
                regions,
                rule=self.answer_rule,
                neighbours=self.neighbours,
            )
            for j, i in enumerate(with_descriptor):
                found[i] = found_rows[j]
                if found_rows[j]["answer"] is not None:
                    points[i] = found_rows[j]["answer"]
        per_photo = [
            [(c.level, int(c.size[i]), float(c.area_km2[i]), bool(c.complete[i])) for c in sets]
            for i in range(n)
        ]
        return [
            self._answer(
                inferences[i],
                p[i],
                per_photo[i],
                truths[i],
                top_ks[i],
                geojsons[i],
                found[i],
                points[i],
            )
            for i in range(n)
        ]

    def _answer_points(self, p: NDArray[np.float64]) -> list[tuple[float, float, str | None]]:
        """Each photo's answer by a cell rule: the server's own, or the top region's
        point for ``refine``/``knn`` until the index search replaces it.

        Returns ``(lat, lon, note)`` per row of ``p`` (``(n, regions)``).
        """
        from trigeo.answer import CELL_ANSWERS, answer_points

        regions = self.regions
        rule = self.answer_rule if self.answer_rule in CELL_ANSWERS else "top-cell"
        top, top_p = top_regions(p)
        lat, lon = answer_points(rule, top, top_p, regions.lat, regions.lon)
        # A photo without a descriptor (a plug-in backend) cannot be searched.
        note = None if rule == self.answer_rule else "no descriptor: the top region's point"
        return [(float(a), float(b), note) for a, b in zip(lat, lon, strict=True)]

    def answer(
        self,
        inference: Inference,
        truth: tuple[float, float] | None,
        top_k: int,
        geojson: bool = False,
    ) -> dict[str, Any]:
        """The reported answer for one inference."""
        return self.answers([inference], [truth], [top_k], [geojson])[0]

    def _answer(
        self,
        inference: Inference,
        p: NDArray[np.float64],
        sets: list[tuple[float, int, float, bool]],
        truth: tuple[float, float] | None,
        top_k: int,
        geojson: bool,
        hits: dict[str, Any] | None,
        point: tuple[float, float, str | None],
    ) -> dict[str, Any]:
        regions = self.regions
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        credible = credible_records(sets, order, self._cell_counts)
        top = top_k_records(regions, p, order, top_k, self.place)
        listed = listed_count(sorted_p, credible)
        a_lat, a_lon, a_note = point
        r_lat, r_lon = self.report_point(a_lat, a_lon)
        answer: dict[str, Any] = {
            "answer": {
                "rule": self.answer_rule,
                "lat": r_lat,
                "lon": r_lon,
                "place": self.place(r_lat, r_lon),
                "note": a_note,
            },
            "model": {
                "id": self.backend.model_id,
                "name": self.backend.name,
                "answered_by": inference.model,
                "time_used": inference.time_used,
                "note": inference.note,
            },
            "coarsen_km": self.coarsen_km,
            "top_k": top,
            "credible_regions": credible,
            "regions": listed_regions(order, sorted_p, listed, len(regions)),
        }
        if geojson:
            answer["geojson"] = listed_geojson(regions, p, order[:listed], credible)
        answer["truth"] = truth_record(truth, self.coarsen_km, a_lat, a_lon)
        if hits is not None and self._photos is not None:
            answer.update(
                neighbour_records(hits, self._photos.ids, self.report_point, self.thumbnails)
            )
        return answer

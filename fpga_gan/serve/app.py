"""The ASGI application: a JSON API over the try-on, the garment editor and the design generator,
and the static page that uses it.

Every answer is JSON. A request the server cannot take gets a 4xx with ``{"error": message}``
naming the field and what is wrong; a bug of ours gets a 500 whose message says so, with the
traceback in the server's log only. Request bodies are read with a limit: a body announced larger
than ``max_body`` is refused before one byte of it is read, and a body streamed without a length
is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .catalogue import Catalogue, CatalogueError
from .engine import Busy, Engine
from .images import ImageError, decode_image, png_data_url, resize

__all__ = ["ApiError", "ServeConfig", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger("fpga_gan.serve")


@dataclass
class ServeConfig:
    backend: str = "auto"
    artifacts: Path | None = None      # a folder of artifact directories tryon/, editor/, designer/
    data: Path | None = None           # a VITON-HD style data set for the catalogue (default: synthetic)
    max_body: int = 8 * 1024 * 1024    # bytes of one request body (uploads are base64 inside JSON)
    max_waiting: int = 8               # requests queued per accelerator before 503
    max_samples: int = 32              # design samples per request
    open_models: bool = True           # open every accelerator at start-up


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _size(acc) -> tuple[int, int]:
    shape = acc.input_spec.shape
    return int(shape[2]), int(shape[3])


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object, read at most ``limit`` bytes far."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"the request is {int(declared):,} bytes; the limit is {limit:,} "
                                "(images of a few MB at most)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request is larger than the limit of {limit:,} bytes")
    try:
        data = json.loads(bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def _garment_from(body: dict[str, Any], catalogue: Catalogue, size: tuple[int, int]) -> tuple[str, np.ndarray | None]:
    """(garment id, uploaded image or None) of a request: ``garment`` (a catalogue id) or
    ``garment_upload`` (a data URL)."""
    upload = body.get("garment_upload")
    if upload is not None:
        return "upload", resize(decode_image(upload, "garment_upload"), size)
    if "garment" not in body:
        raise ApiError(422, "give a garment: 'garment' (a catalogue id) or 'garment_upload' (an image data URL)")
    catalogue.image_path("garment", body["garment"])        # a clear error for an unknown id
    return body["garment"], None


def create_app(config: ServeConfig, engine: Engine | None = None, catalogue: Catalogue | None = None) -> Starlette:
    """The web application. ``engine`` and ``catalogue`` are made from ``config`` when not given
    (and then closed with the app)."""
    owned: list = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        nonlocal engine, catalogue
        if catalogue is None:
            catalogue = Catalogue(config.data) if config.data else Catalogue.synthetic()
            owned.append(catalogue)
        if engine is None:
            engine = Engine(config.backend, config.artifacts, config.max_waiting)
            owned.append(engine)
        try:
            if config.open_models:
                engine.open_all()
            yield
        finally:
            for thing in owned:
                thing.close()

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    async def health(request: Request) -> JSONResponse:
        from .. import __version__

        return JSONResponse({"status": "ok", **engine.health(), "version": __version__,
                             "catalogue": {"persons": len(catalogue.persons), "garments": len(catalogue.garments)}})

    async def catalogue_list(request: Request) -> JSONResponse:
        from ..data.edits import EDIT_ATTRIBUTES, FIT_RANGE, LENGTH_RANGE, PERIOD_RANGE, edit_choices

        def entries(kind: str, names: list[str]) -> list[dict]:
            return [{"id": n, "url": f"/api/catalogue/{kind}/{n}"} for n in names]

        return JSONResponse({"persons": entries("person", catalogue.persons),
                             "garments": entries("garment", catalogue.garments),
                             "edit": {"attributes": list(EDIT_ATTRIBUTES), "choices": edit_choices(),
                                      "ranges": {"length": LENGTH_RANGE, "fit": FIT_RANGE,
                                                 "period": PERIOD_RANGE}}})

    async def catalogue_image(request: Request) -> FileResponse:
        path = catalogue.image_path(request.path_params["kind"], request.path_params["name"])
        return FileResponse(path)

    async def tryon(request: Request) -> JSONResponse:
        from ..data.viton import tryon_input

        started = time.perf_counter()
        body = await read_json(request, config.max_body)
        if body.get("person_upload") is not None:
            raise ApiError(422, "a photo of a person needs the fitting-room pipeline (pose and body parsing), "
                                "which this server does not have yet: pick a catalogue person")

        def job(acc) -> tuple[np.ndarray, dict]:
            t0 = time.perf_counter()
            size = _size(acc)
            garment, upload = _garment_from(body, catalogue, size)
            item = catalogue.item(body.get("person"), garment, size, upload)
            x = tryon_input(item)[None]
            t1 = time.perf_counter()
            out = acc.run(x)[0].transpose(1, 2, 0).astype(np.uint8)
            return out, {"prepare_ms": 1e3 * (t1 - t0), "accelerator_ms": 1e3 * (time.perf_counter() - t1),
                         "keypoints": item.keypoints[:, :2].round(2).tolist(), "size": list(size)}

        (image, info), _ = await engine.run("tryon", job)
        if request.url.path.endswith("fitting-room"):
            # Until the fitting-room pipeline (pose + parsing from the frame) exists, its pose is
            # the catalogue's ground truth, and the answer says so.
            info["pose_source"] = "ground truth"
        else:
            info.pop("keypoints")
        return _image_answer(image, "tryon", started, info)

    async def design_edit(request: Request) -> JSONResponse:
        from ..app import run_edits
        from ..data.edits import parse_edit

        started = time.perf_counter()
        body = await read_json(request, config.max_body)
        edit = body.get("edit")
        if not isinstance(edit, dict) or not edit:
            raise ApiError(422, "give 'edit': an object of attributes to change, e.g. {\"colour\": \"#aa3300\"}")
        edit = parse_edit([f"{k}={v}" for k, v in edit.items()])

        def job(acc) -> tuple[np.ndarray, dict]:
            t0 = time.perf_counter()
            size = _size(acc)
            garment, upload = _garment_from(body, catalogue, size)
            source = upload if upload is not None else catalogue.garment(garment, size)
            t1 = time.perf_counter()
            out = run_edits(acc, source[None], [edit])[0]
            return out, {"prepare_ms": 1e3 * (t1 - t0), "accelerator_ms": 1e3 * (time.perf_counter() - t1),
                         "source": png_data_url(source)}

        (image, info), _ = await engine.run("editor", job)
        return _image_answer(image, "editor", started, info)

    async def design_sample(request: Request) -> JSONResponse:
        from ..app import run_designer
        from ..data.design import sample_designs
        from ..data.edits import parse_edit

        started = time.perf_counter()
        params = dict(request.query_params)
        try:
            n, seed = int(params.pop("n", 8)), int(params.pop("seed", 0))
        except ValueError:
            raise ApiError(422, "n and seed must be integers") from None
        if not 1 <= n <= config.max_samples:
            raise ApiError(422, f"n must be 1 to {config.max_samples}, got {n}")
        fixed = parse_edit([f"{k}={v}" for k, v in params.items()]) if params else None
        designs = sample_designs(n, seed=seed, fixed=fixed)

        def job(acc) -> np.ndarray:
            return run_designer(acc, designs)

        images, seconds = await engine.run("designer", job)
        return JSONResponse({"images": [png_data_url(im) for im in images], "backend": _backend("designer"),
                             "timings_ms": {"accelerator_ms": 1e3 * seconds,
                                            "total_ms": 1e3 * (time.perf_counter() - started)}})

    def _backend(model: str) -> str:
        return engine.health()["models"][model].get("backend", engine.backend)

    def _image_answer(image: np.ndarray, model: str, started: float, info: dict) -> JSONResponse:
        t0 = time.perf_counter()
        url = png_data_url(image)
        timings = {k: info.pop(k) for k in ("prepare_ms", "accelerator_ms")}
        timings["encode_ms"] = 1e3 * (time.perf_counter() - t0)
        timings["total_ms"] = 1e3 * (time.perf_counter() - started)
        return JSONResponse({"image": url, "backend": _backend(model), "timings_ms": timings, **info})

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        from ..data.edits import EditError
        from ..errors import UserError

        if isinstance(exc, ApiError):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        if isinstance(exc, HTTPException):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        if isinstance(exc, CatalogueError):
            return JSONResponse({"error": str(exc)}, status_code=404)
        if isinstance(exc, (ImageError, EditError)):
            return JSONResponse({"error": str(exc)}, status_code=422)
        if isinstance(exc, Busy):
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        if isinstance(exc, UserError):           # e.g. an artifact that fails its integrity check
            return JSONResponse({"error": str(exc)}, status_code=500)
        log.exception("internal error serving %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"},
                            status_code=500)

    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/catalogue", catalogue_list),
        Route("/api/catalogue/{kind}/{name}", catalogue_image),
        Route("/api/tryon", tryon, methods=["POST"]),
        Route("/api/fitting-room", tryon, methods=["POST"]),
        Route("/api/design/edit", design_edit, methods=["POST"]),
        Route("/api/design/sample", design_sample),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    from ..data.edits import EditError
    from ..errors import UserError

    # The expected failures are answered by Starlette's exception middleware; anything else
    # reaches the server-error middleware, which answers with api_error's 500 and logs it.
    handlers = {cls: api_error for cls in (ApiError, HTTPException, CatalogueError, ImageError, EditError, Busy,
                                           UserError, Exception)}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)

"""The FastAPI application of ``mnist-flow serve``: the page at ``/``, the API, ``/healthz``.

Every refusal is a JSON ``{"error": "..."}`` with its status (400 bad input, 413 a body over
:data:`MAX_BODY_BYTES`, 503 no model to answer with) and the server goes on answering.
Images are prepared by the code ``mnist-flow predict`` uses
(:func:`tasks.images.prepare.preprocess_bytes`: ink detection, cropping, centring), so a
digit drawn on the page and a scanned one are treated alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

import numpy as np
from anyio import to_thread
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flows.serve.corrections import Corrections
from flows.serve.model import ChampionSource, FixedSource, NoModel, ServedModel
from tasks.data.datasets import get_dataset
from tasks.data.versions import DataStore, DataVersion
from tasks.errors import DataError, MnistFlowError
from tasks.images.classify import score_images
from tasks.images.prepare import MnistStyle, preprocess_bytes

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest request body accepted (413 above): a drawn digit is a few kB."""

Emit = Callable[[DataVersion, str], Any]


class ModelInfo(BaseModel):
    version: str
    dataset: str
    test_accuracy: float | None


class Prediction(BaseModel):
    """The answer of ``POST /api/predict`` (its schema on the OpenAPI page)."""

    label: int
    class_name: str
    probabilities: list[float]  # one per class
    model: ModelInfo


class ServeError(Exception):
    """A refusal: its HTTP status and the message sent as ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyLimit:
    """ASGI middleware answering 413 to a request body over ``limit`` bytes.

    A declared ``Content-Length`` is refused before anything is read; a chunked body is
    read up to the limit and handed on only if it stays under it.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"request body over the {self.limit // (1024 * 1024)} MB limit"
        await JSONResponse({"error": message}, status_code=413)(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


WORKER_THREADS = 2
"""Threads that run the sync endpoints at once (anyio's default: 40)."""


@asynccontextmanager
async def _few_threads(_: FastAPI) -> AsyncIterator[None]:
    """Run the sync endpoints on :data:`WORKER_THREADS` threads.

    Under the GIL one core does the work however many threads there are; with a thread per
    request in flight they hand the GIL to one another at every numpy and Pillow call and
    the server spends its time switching. Two keep an answer coming while a request waits
    on a slow model (a swap while it is scored), and the event loop queues the others.
    """
    to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    yield


def emit_if_served(version: DataVersion, store: str) -> str | None:
    """Emit ``mnist-flow.data.added`` to the server of ``PREFECT_API_URL``; None without one.

    Without a configured server no trigger could hear the event (a temporary server would
    start and stop for nothing): the batch is added and ``mnist-retrain`` can be run by hand.
    """
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None
    from tasks.events import emit_data_added

    return emit_data_added(version, store)


def page() -> str:
    """The self-contained page (no external scripts, styles or fonts)."""
    return resources.files("flows.serve").joinpath("page.html").read_text(encoding="utf-8")


def create_app(
    source: ChampionSource | FixedSource,
    *,
    dataset: str,
    store: DataStore,
    emit: Emit | None = None,
) -> FastAPI:
    """The application serving ``source``'s model; corrections go to ``store``.

    ``emit`` sends the ``mnist-flow.data.added`` event of a submitted batch (default:
    :func:`tasks.events.emit_data_added`, as ``mnist-flow data add``).
    """
    spec = get_dataset(dataset)
    corrections = Corrections(store, spec, spec.n_classes or 10)
    style = MnistStyle()

    app = FastAPI(
        lifespan=_few_threads,
        title="mnist-flow",
        summary="Predict with the champion; record corrections that become a data batch.",
        version="1",
    )

    @app.exception_handler(ServeError)
    async def _refused(_: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors():
            where = ".".join(str(x) for x in error.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(parts)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    def served() -> ServedModel:
        try:
            return source.current()
        except NoModel as exc:
            raise ServeError(503, str(exc)) from None

    def prepared(image: UploadFile) -> np.ndarray:
        """The upload as an MNIST-style 28x28 digit, prepared by ``predict``'s own code."""
        data = image.file.read()
        if not data:
            raise ServeError(400, "image: empty upload")
        try:
            return preprocess_bytes(data, style, name="image")
        except MnistFlowError as exc:
            raise ServeError(400, str(exc)) from None

    def label_of(text: str, names: tuple[str, ...]) -> int:
        value = text.strip()
        if value.isdigit() and int(value) < len(names):
            return int(value)
        lowered = [n.lower() for n in names]
        if value.lower() in lowered:
            return lowered.index(value.lower())
        classes = ", ".join(f"{k} ({n})" for k, n in enumerate(names))
        raise ServeError(400, f"label: {text!r} is not one of the classes {classes}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page()

    @app.get("/healthz", summary="Liveness and the model being served")
    def healthz() -> JSONResponse:
        try:
            model = source.current()
        except NoModel as exc:
            return JSONResponse({"status": "no model", "error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "model": model.describe()})

    @app.get("/api/model", summary="The model being served, its classes and waiting corrections")
    def model_info() -> dict[str, Any]:
        model = served()
        return {
            **model.describe(),
            "class_names": list(model.class_names),
            "corrections_waiting": corrections.count(),
        }

    @app.post(
        "/api/predict",
        summary="Classify one image (multipart field `image`)",
        response_model=Prediction,
    )
    def predict(image: Annotated[UploadFile, File()]) -> JSONResponse:
        model = served()  # the model this request answers with, whatever is swapped meanwhile
        digit = prepared(image)
        proba = score_images(model.predictor, digit[None])[0]
        label = int(np.argmax(proba))
        # A response built here skips FastAPI's validation of the return value, and its
        # second trip through the threadpool for a sync endpoint.
        return JSONResponse(
            {
                "label": label,
                "class_name": model.class_names[label],
                "probabilities": [round(p, 6) for p in proba.tolist()],
                "model": model.describe(),
            }
        )

    @app.post(
        "/api/corrections",
        status_code=201,
        summary="Record an image and the class it shows (multipart `image` and `label`)",
    )
    def record(
        image: Annotated[UploadFile, File()], label: Annotated[str, Form()]
    ) -> dict[str, Any]:
        names = tuple(corrections.names)
        index = label_of(label, names)
        image.file.seek(0)
        data = image.file.read()
        image.file.seek(0)
        prepared(image)  # refuses what `data add` would refuse: not an image, no ink, too large
        try:
            waiting = corrections.record(data, index)
        except DataError as exc:
            raise ServeError(500, str(exc)) from None
        return {"waiting": waiting, "label": index, "class_name": names[index]}

    @app.get("/api/corrections", summary="The corrections waiting")
    def waiting() -> dict[str, Any]:
        items = corrections.list()
        return {
            "waiting": len(items),
            "corrections": [
                {"file": c.file, "label": c.label, "class_name": c.class_name} for c in items
            ],
        }

    @app.post(
        "/api/corrections/submit",
        status_code=201,
        summary="Add the waiting corrections as a data batch (as `mnist-flow data add`)",
    )
    def submit() -> dict[str, Any]:
        try:
            version, skipped = corrections.submit()
        except DataError as exc:
            raise ServeError(400, str(exc)) from None
        event = (emit or emit_if_served)(version, str(store.root))
        return {
            "version": version.id,
            "count": version.n_images,
            "held_out": version.n_heldout,
            "skipped": [str(p) for p in skipped],
            "event": event,
        }

    app.add_middleware(BodyLimit)
    return app

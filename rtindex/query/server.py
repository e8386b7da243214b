"""The query service: the contract's HTTP API over :class:`~rtindex.query.search.Searcher`.

Read-only by design: no call writes. Bad parameters answer 422 with a reason; Redis
being unreachable answers 503; anything else is a bug and is logged loudly.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path as FilePath
from types import FrameType
from typing import Annotated, Any, Literal

import anyio.to_thread
import orjson
import redis
import redis.exceptions as rx
import uvicorn
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from rtindex.indexer.store import LayoutMismatch
from rtindex.query.auth import BearerTokenMiddleware
from rtindex.query.observe import IndexCollector, Metrics, ObserveMiddleware
from rtindex.query.recall import Recaller
from rtindex.query.search import (
    MAX_ID_BYTES,
    MAX_K,
    MAX_OFFSET,
    MAX_Q_CHARS,
    GeoFilter,
    Searcher,
    SearchRequest,
)
from rtindex.query.stats import OpsView
from rtindex.settings import IndexSchema, Settings

log = logging.getLogger(__name__)
DASHBOARD = FilePath(__file__).with_name("dashboard.html")

_JSON = "application/json"


def _id_bytes(v: str) -> str:
    if len(v.encode("utf-8", errors="replace")) > MAX_ID_BYTES:
        raise ValueError(f"ids are at most {MAX_ID_BYTES} bytes of UTF-8")
    return v


Id = Annotated[str, Query(min_length=1, max_length=512), AfterValidator(_id_bytes)]
K = Annotated[int, Query(ge=0, le=MAX_K)]

# Contract parameter name -> schema field, where they differ.
_PARAM_ALIASES = {"tag": "tags"}
_FIXED = {"q", "k", "offset", "op", "lat", "lon", "radius_km", "user_id"}


def _param(name: str, schema: dict[str, Any], what: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": what,
    }


_NUMBER = {"type": "number"}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def search_parameters(schema: IndexSchema) -> list[dict[str, Any]]:
    """``/search``'s query parameters for this index schema, for the OpenAPI document
    (``build_request`` validates them; FastAPI does not see them)."""
    aliases = {field: name for name, field in _PARAM_ALIASES.items()}
    params = [
        _param(
            "q", {"type": "string", "minLength": 1, "maxLength": MAX_Q_CHARS}, "the query", True
        ),
        _param("k", {"type": "integer", "minimum": 0, "maximum": MAX_K, "default": 10}, "hits"),
        _param(
            "offset",
            {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
            "hits to skip",
        ),
        _param("op", {"type": "string", "enum": ["or", "and"], "default": "or"}, "term logic"),
    ]
    for field in schema.keyword:
        params.append(
            _param(aliases.get(field, field), _STRINGS, f"keyword filter on {field}: any of these")
        )
    for field in schema.number:
        params.append(_param(f"{field}_min", _NUMBER, f"range filter: {field} at least this"))
        params.append(_param(f"{field}_max", _NUMBER, f"range filter: {field} at most this"))
    if schema.geo:
        geo = schema.geo[0]
        params += [
            _param("lat", {"type": "number", "minimum": -90, "maximum": 90}, f"{geo} filter"),
            _param("lon", {"type": "number", "minimum": -180, "maximum": 180}, f"{geo} filter"),
            _param(
                "radius_km",
                {"type": "number", "exclusiveMinimum": 0, "maximum": 20037.6},
                "with lat and lon (all three or none): the radius",
            ),
        ]
    params.append(
        _param(
            "user_id",
            {"type": "string", "minLength": 1, "maxLength": 512},
            "personalize: boost hits matching this user's preferences (at most 512 bytes)",
        )
    )
    return params


# -- response bodies, for the OpenAPI document (handlers write JSON with orjson) ----------
class Problem(BaseModel):
    """Every 4xx and 5xx answer of the service."""

    detail: str = Field(description="the reason, for a human")


class Hit(BaseModel):
    id: str
    score: float
    doc: dict[str, Any] = Field(description="the stored document")


class SearchResponse(BaseModel):
    total: int = Field(description="documents matching the query and filters")
    took_ms: float
    hits: list[Hit] = Field(description="best first")


class DocumentResponse(BaseModel):
    id: str
    version: int
    doc: dict[str, Any]


class Item(BaseModel):
    id: str
    score: float
    sources: list[Literal["i2i", "preference", "trending"]]
    doc: dict[str, Any] = Field(description="the stored document")


class TrendingResponse(BaseModel):
    took_ms: float
    items: list[Item]


class SimilarResponse(TrendingResponse):
    item_id: str


class RecommendResponse(TrendingResponse):
    user_id: str


class Alive(BaseModel):
    status: Literal["alive"]


class Ready(BaseModel):
    status: Literal["ready"]


class NotReady(BaseModel):
    status: Literal["not ready"]
    reasons: list[str]


class StatsResponse(BaseModel):
    """The dashboard's numbers; see ``rtindex.query.stats``."""

    at_ms: int
    window_s: float
    headline: dict[str, Any]
    ready: dict[str, Any]
    index: dict[str, Any]
    behavior: dict[str, Any]
    consumers: dict[str, Any]
    query: dict[str, Any]
    dlq: dict[str, Any]
    redis: dict[str, Any]


def _problem(what: str) -> dict[str, Any]:
    return {"model": Problem, "description": what}


Responses = dict[int | str, dict[str, Any]]
_BAD: Responses = {422: _problem("invalid parameters: the reason in detail")}
_DOWN: Responses = {503: _problem("the index store (Redis) is unavailable")}


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: not a number: {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number")
    return value


def _unprocessable(reason: str) -> JSONResponse:
    return JSONResponse({"detail": reason}, status_code=422)


def _reason(errors: Sequence[Any]) -> str:
    """Pydantic or FastAPI validation errors -> one line: "k: Input should be ..."."""
    parts = []
    for err in errors[:3]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path")]
        parts.append(f"{'.'.join(loc)}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts) or "invalid parameters"


def build_request(params: list[tuple[str, str]], searcher: Searcher) -> SearchRequest:
    """Query-string pairs -> a validated SearchRequest; ValueError/ValidationError -> 422."""
    schema = searcher.schema
    single: dict[str, str] = {}
    keywords: dict[str, list[str]] = {}
    ranges: dict[str, list[float | None]] = {}
    for name, value in params:
        field = _PARAM_ALIASES.get(name, name)
        if field in schema.keyword:
            keywords.setdefault(field, []).append(value)
        elif name.endswith(("_min", "_max")) and name[:-4] in schema.number:
            lo_hi = ranges.setdefault(name[:-4], [None, None])
            lo_hi[0 if name.endswith("_min") else 1] = _number(name, value)
        elif name in _FIXED:
            if name in single:
                raise ValueError(f"{name!r} given more than once")
            single[name] = value
        else:
            raise ValueError(f"unknown parameter {name!r}")
    geo = None
    geo_parts = [single.pop(p, None) for p in ("lat", "lon", "radius_km")]
    if any(p is not None for p in geo_parts):
        if any(p is None for p in geo_parts):
            raise ValueError("lat, lon and radius_km go together")
        if not schema.geo:
            raise ValueError("the index schema has no geo field")
        lat, lon, radius = (
            _number(n, p or "") for n, p in zip(("lat", "lon", "radius_km"), geo_parts, strict=True)
        )
        geo = GeoFilter(field=schema.geo[0], lat=lat, lon=lon, radius_km=radius)
    return SearchRequest.model_validate(
        {
            **single,
            "keywords": {f: tuple(v) for f, v in keywords.items()},
            "ranges": {f: tuple(v) for f, v in ranges.items()},
            "geo": geo,
        }
    )


def _threads_within(client: redis.Redis) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that caps the threads running handlers at the Redis pool's size.

    Handlers are sync and run in anyio's thread pool (40 threads); each holds one pooled
    connection at a time. A pool smaller than that (``connect``: 32) raises "Too many
    connections" — answered 503 — when more requests run at once than it has
    connections, so 50 concurrent callers would see errors. With at most as many
    threads as connections, the surplus waits for a thread instead.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        limit = getattr(client.connection_pool, "max_connections", None)
        limiter = anyio.to_thread.current_default_thread_limiter()
        if isinstance(limit, int) and 0 < limit < limiter.total_tokens:
            limiter.total_tokens = limit
        yield

    return lifespan


def create_app(settings: Settings, searcher: Searcher | None = None) -> FastAPI:
    searcher = searcher or Searcher.connect(settings)
    recaller = Recaller(searcher.client, settings)
    metrics = Metrics(settings.ops.window_s)
    ops = OpsView(searcher, recaller, settings)
    metrics.registry.register(IndexCollector(ops.snapshot))
    app = FastAPI(
        title="rtindex query service",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=_threads_within(searcher.client),
    )
    app.state.searcher = searcher

    if settings.api.token is not None:
        app.add_middleware(BearerTokenMiddleware, token=settings.api.token)
    # Added last, so outermost: 401s are counted too.
    app.add_middleware(ObserveMiddleware, metrics=metrics)

    @app.exception_handler(rx.ConnectionError)
    @app.exception_handler(rx.TimeoutError)
    @app.exception_handler(rx.BusyLoadingError)
    async def redis_down(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis unavailable: %s", exc)
        return JSONResponse({"detail": "the index store is unavailable"}, status_code=503)

    @app.exception_handler(LayoutMismatch)
    async def layout_mismatch(_request: Request, exc: Exception) -> JSONResponse:
        # This service's configuration reads the index wrongly: say so, don't guess.
        log.error("%s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The contract's "422 with a reason", shaped as /search's: {"detail": "k: ..."}.
        return _unprocessable(_reason(exc.errors()))

    # 401 only when a token is configured, and never on the probes or the page.
    auth: Responses = {}
    if settings.api.token is not None:
        auth[401] = {
            "description": "a valid bearer token is required",
            # Spelled out: on /metrics, "model" would be documented as text/plain.
            "content": {_JSON: {"schema": Problem.model_json_schema()}},
        }
    reads: Responses = {**auth, **_BAD, **_DOWN}

    @app.get(
        "/search",
        response_model=SearchResponse,
        responses=reads,
        openapi_extra={"parameters": search_parameters(searcher.schema)},
    )
    def search(request: Request) -> Any:
        # Validated once, by build_request (parameters are documented in OpenAPI by hand:
        # typed FastAPI parameters would validate everything a second time, ~0.8 ms).
        try:
            req = build_request(list(request.query_params.multi_items()), searcher)
            prefs = recaller.preferences(req.user_id) if req.user_id else None
            result = searcher.search(req, prefs)
        except ValidationError as e:
            return _unprocessable(_reason(e.errors(include_url=False, include_input=False)))
        except ValueError as e:
            return _unprocessable(str(e))
        metrics.total_hits.observe(result["total"])
        metrics.results.labels("/search").observe(len(result["hits"]))
        # orjson straight to bytes: FastAPI's jsonable_encoder costs ~0.4 ms a page.
        return Response(orjson.dumps(result), media_type="application/json")

    @app.get(
        # :path: ids may contain "/" (any UTF-8 without control characters).
        "/docs/{doc_id:path}",
        response_model=DocumentResponse,
        responses={**reads, 404: _problem("no live document with this id")},
    )
    def get_document(doc_id: Annotated[str, Path(min_length=1, max_length=512)]) -> Any:
        try:
            _id_bytes(doc_id)
        except ValueError as e:
            return _unprocessable(f"doc_id: {e}")
        doc = searcher.get_document(doc_id)
        if doc is None:
            return JSONResponse({"detail": f"no document {doc_id!r}"}, status_code=404)
        return Response(orjson.dumps(doc), media_type=_JSON)

    @app.get("/recommend", response_model=RecommendResponse, responses=reads)
    def recommend(user_id: Id, k: K = 20) -> Any:
        """Items for this user: i2i from their recent items, trending in the categories
        they prefer, global trending; each item names the channels that produced it."""
        return _items("/recommend", recaller.recommend(user_id, k))

    @app.get("/similar", response_model=SimilarResponse, responses=reads)
    def similar(item_id: Id, k: K = 20) -> Any:
        """Items people interact with together with this one (real-time co-occurrence)."""
        return _items("/similar", recaller.similar(item_id, k))

    @app.get("/trending", response_model=TrendingResponse, responses=reads)
    def trending(
        k: K = 20, category: Annotated[str | None, Query(min_length=1, max_length=256)] = None
    ) -> Any:
        """Trending items (exponentially time-decayed), globally or in one category."""
        return _items("/trending", recaller.trending(k, category))

    @app.get("/healthz", response_model=Alive)
    async def healthz() -> Any:
        # async: answered on the event loop, even while every handler thread is busy.
        return {"status": "alive"}

    @app.get(
        "/readyz",
        response_model=Ready,
        responses={503: {"model": NotReady, "description": "not ready, and why"}},
    )
    def readyz() -> Any:
        """Ready when Redis answers and no consumer partition lags beyond
        ``ops.ready_max_lag_messages`` / ``ops.ready_max_lag_s``: a replica whose index is
        catching up should not get traffic. With ``ops.ready_requires_consumers``, also
        not before a documents consumer reports (nor after the last one stops)."""
        try:
            searcher.client.ping()
            searcher.follow_layout()
            reasons = ops.consumer_reasons()
        except (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError) as e:
            reasons = [f"redis: {e}"]
        except LayoutMismatch as e:
            reasons = [f"index: {e}"]
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return {"status": "ready"}

    @app.get("/stats", response_model=StatsResponse, responses={**auth, **_DOWN})
    def stats() -> Any:
        """Headline numbers (the dashboard's), the index, the consumers (lag per partition,
        events/s, freshness p50/p99 over ``ops.window_s``), query latency, the DLQ."""
        return Response(orjson.dumps(ops.stats(metrics.window)), media_type=_JSON)

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        """A live page of the headline numbers; everything it loads comes from here."""
        return HTMLResponse(DASHBOARD.read_bytes())

    def _items(endpoint: str, result: dict[str, Any]) -> Response:
        metrics.results.labels(endpoint).observe(len(result["items"]))
        return Response(orjson.dumps(result), media_type=_JSON)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            **auth,
            200: {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        },
    )
    def metrics_endpoint() -> Response:
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _Server(uvicorn.Server):
    """SIGTERM/SIGINT are the normal way to stop the service: shut down gracefully and
    exit 0, instead of uvicorn's re-raising the signal after shutdown (exit -15)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open requests
        self.should_exit = True


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.api.host,
        port=settings.api.port if port is None else port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # None: uvicorn's loggers go through ours (rtindex.ops.logs), JSON lines included.
        log_config=None,
    )
    server = _Server(config)
    server.run()
    return 0 if server.started else 1

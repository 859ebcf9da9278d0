"""The FastAPI application: ``/v1`` over one or more pipelines, ``/metrics``, the dashboard.

``create_app(sources)`` serves the pipelines of ``sources`` (``streamfit.api.sources``),
whether a worker runs in this process (``streamfit run --serve``) or not (``streamfit
serve``). Every path is documented at ``/docs`` (OpenAPI at ``/openapi.json``).

Writes (every ``POST``) need an API key with the right for them (``streamfit.api.security``);
reads are public unless ``keyed_reads``. Bodies are bounded (``max_body_bytes``; events per
request ``schemas.MAX_EVENTS``); a body that does not validate gets 422 and the path of each
bad field (``body.events.3``). Pipeline, model and topic names in a path or a body are looked
up among the spec's: an unknown one is 404 (path) or 422 (body), never part of a query.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
import orjson
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamfit import __version__
from streamfit.api import reads
from streamfit.api.prometheus import PipelineMetrics
from streamfit.api.schemas import (
    CheckpointInfo,
    CommandAccepted,
    Counters,
    DeadLetterRow,
    DeadLettersPage,
    ErrorBody,
    EventsRequest,
    EventsResponse,
    FieldStatistics,
    Health,
    MetricPoint,
    MetricSeries,
    ModelCommand,
    ModelCommands,
    ModelInfo,
    ModelVersion,
    PartitionLag,
    PartitionOffset,
    PipelineDetail,
    PipelineStatus,
    PipelineSummary,
    PredictRequest,
    PredictResponse,
    Readiness,
    ResultRow,
    ResultsPage,
    RollbackRequest,
    StatisticsResponse,
    Throughput,
    ValidationErrorBody,
)
from streamfit.api.security import ApiKeys
from streamfit.api.serving import EventRejectedError
from streamfit.api.sources import NotAcceptedError, PipelineSource, Sample, Status
from streamfit.errors import SpecError, StreamfitError
from streamfit.spec.model import FileSourceSpec, KafkaSourceSpec

__all__ = ["create_app"]

log = logging.getLogger("streamfit.api")

#: largest request body accepted, in bytes, unless told otherwise
MAX_BODY_BYTES = 4 * 1024 * 1024
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
_WRITE: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or an unknown one"},
    403: {"model": ErrorBody, "description": "The key lacks the right for this"},
    413: {"model": ErrorBody, "description": "The body is larger than allowed"},
    422: {"model": ValidationErrorBody, "description": "A bad field (its path is given)"},
    **_NOT_FOUND,
}


def create_app(
    sources: Sequence[PipelineSource],
    keys: ApiKeys | None = None,
    keyed_reads: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The application over ``sources`` (each a pipeline; names must differ)."""
    by_name: dict[str, PipelineSource] = {}
    for source in sources:
        if source.name in by_name:
            raise ValueError(f"two pipelines are named {source.name!r}")
        by_name[source.name] = source
    keys = keys or ApiKeys()
    metrics = PipelineMetrics(by_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        for source in by_name.values():
            start = getattr(source, "start", None)
            if start is not None:
                start()
        yield

    app = FastAPI(
        title="streamfit",
        version=__version__,
        summary="Real-time machine learning on event streams: pipelines, models, "
        "statistics, results, predictions.",
        lifespan=lifespan,
    )
    app.state.sources = by_name
    app.state.metrics = metrics
    app.add_middleware(_PredictFastPath, sources=by_name, keys=keys)
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)  # outermost: bounds both

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StreamfitError)
    async def unavailable(request: Request, exc: StreamfitError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def database_down(request: Request, exc: sa.exc.SQLAlchemyError) -> JSONResponse:
        log.warning("%s %s: the database failed: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "the database is not available"}, status_code=503)

    # -- who may do what

    # The dependencies are coroutines: FastAPI would run plain functions on its thread pool,
    # a hop that costs more than they do.

    def allowed(right: str) -> Callable[[Request], Awaitable[None]]:
        async def check(request: Request) -> None:
            key = _presented_key(request)
            if key is None:
                raise HTTPException(
                    401,
                    f"this needs an API key with the right '{right}' "
                    "(header 'Authorization: Bearer KEY' or 'X-API-Key: KEY')",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            rights = keys.rights_of(key)
            if rights is None:
                raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
            if right not in rights:
                raise HTTPException(403, f"this API key lacks the right '{right}'")

        return check

    async def public(request: Request) -> None:
        if keyed_reads:
            await allowed("read")(request)

    read = [Depends(public)]

    # -- health

    @app.get("/health", response_model=Health, tags=["health"])
    def health() -> Health:
        """The process answers."""
        return Health()

    @app.get("/ready", response_model=Readiness, tags=["health"], responses={503: {}})
    def ready() -> JSONResponse:
        """Every pipeline's store (and broker, and worker) answer; 503 if one does not."""
        checks = {name: source.ready() for name, source in by_name.items()}
        ok = all(all(c.values()) for c in checks.values())
        body = Readiness(ready=ok, checks=checks).model_dump()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], dependencies=read, response_class=Response)
    def prometheus() -> Response:
        """The pipelines' figures in the Prometheus exposition format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- pipelines

    @app.get(
        "/v1/pipelines",
        response_model=list[PipelineSummary],
        tags=["pipelines"],
        dependencies=read,
    )
    def list_pipelines() -> list[PipelineSummary]:
        """Every pipeline this server serves."""
        return [_summary(source) for source in by_name.values()]

    @app.get(
        "/v1/pipelines/{name}",
        response_model=PipelineDetail,
        tags=["pipelines"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_pipeline(source: Source) -> PipelineDetail:
        """One pipeline: its spec and its status."""
        summary = _summary(source)
        spec = source.spec.model_dump(mode="json", exclude_none=True)
        return PipelineDetail(**summary.model_dump(), spec=spec, status=_status(source))

    @app.get(
        "/v1/pipelines/{name}/status",
        response_model=PipelineStatus,
        tags=["pipelines"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_status(source: Source) -> PipelineStatus:
        """Counters, throughput, consumer lag per partition, the last checkpoint, and the
        versions that serve."""
        return _status(source)

    @app.get(
        "/v1/pipelines/{name}/throughput",
        response_model=Throughput,
        tags=["pipelines"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_throughput(source: Source) -> Throughput:
        """The counters over the last minutes (about one point a second)."""
        return Throughput(pipeline=source.name, points=[_counters(s) for s in source.samples])

    # -- models

    @app.get(
        "/v1/pipelines/{name}/models",
        response_model=list[ModelInfo],
        tags=["models"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_models(source: Source) -> list[ModelInfo]:
        """Each model: its role, whether it serves, its version, latest metrics and the
        versions saved."""
        return _models(source)

    @app.get(
        "/v1/pipelines/{name}/metrics",
        response_model=MetricSeries,
        tags=["models"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_metrics(
        source: Source,
        model: Annotated[str | None, Query(description="One model (default: all)")] = None,
        since: Annotated[dt.datetime | None, Query(description="Recorded at or after")] = None,
        until: Annotated[dt.datetime | None, Query(description="Recorded before")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> MetricSeries:
        """The models' metrics over time (the training table): the last ``limit`` points."""
        if model is not None and model not in {m.name for m in source.spec.models}:
            raise HTTPException(404, f"pipeline {source.name} has no model {model!r}")
        rows = reads.metrics_series(
            source.store, source.spec, model, _utc(since), _utc(until), limit
        )
        return MetricSeries(pipeline=source.name, points=[_point(r) for r in rows])

    # -- statistics

    @app.get(
        "/v1/pipelines/{name}/statistics",
        response_model=StatisticsResponse,
        tags=["statistics"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_statistics(source: Source) -> StatisticsResponse:
        """The latest statistics of every field."""
        table = source.spec.stats.table_name(source.name)
        rows = source.store.read_field_stats(table) if source.spec.stats.enabled else []
        return StatisticsResponse(
            pipeline=source.name, table=table, fields=[_field_stats(r) for r in rows]
        )

    @app.get(
        "/v1/pipelines/{name}/statistics/{field}",
        response_model=StatisticsResponse,
        tags=["statistics"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_field_history(
        source: Source,
        field: Annotated[str, Path(max_length=1000)],
        since: Annotated[dt.datetime | None, Query()] = None,
        until: Annotated[dt.datetime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> StatisticsResponse:
        """One field's statistics over time (the last ``limit`` snapshots)."""
        table = source.spec.stats.table_name(source.name)
        rows = source.store.read_field_stats(table, field, latest=False)
        if not rows:
            raise HTTPException(404, f"no statistics of a field {field!r} in {table}")
        low, high = _utc(since), _utc(until)
        rows = [
            r
            for r in rows
            if (low is None or r["recorded_at"] >= low)
            and (high is None or r["recorded_at"] < high)
        ][-limit:]
        return StatisticsResponse(
            pipeline=source.name, table=table, fields=[_field_stats(r) for r in rows]
        )

    # -- results

    @app.get(
        "/v1/pipelines/{name}/results",
        response_model=ResultsPage,
        tags=["results"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_results(source: Source, limit: Limit = 100, after: After = None) -> ResultsPage:
        """Scored events with their predictions: the latest ``limit``, oldest first, or the
        ones written after the cursor ``after``."""
        page = _cursor_errors(lambda: reads.results_page(source.store, source.spec, limit, after))
        return ResultsPage(
            pipeline=source.name, rows=[_result(r) for r in page.rows], next=page.next
        )

    @app.get(
        "/v1/pipelines/{name}/anomalies",
        response_model=ResultsPage,
        tags=["results"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_anomalies(
        source: Source,
        quantile: Annotated[
            float, Query(gt=0, lt=1, description="Events whose score ranks at or above this")
        ] = 0.99,
        limit: Limit = 100,
        after: After = None,
    ) -> ResultsPage:
        """Scored events whose anomaly score is at or above the ``quantile`` of the recent
        scores (pipelines with ``task: anomaly``)."""
        page = _cursor_errors(
            lambda: reads.results_page(source.store, source.spec, limit, after, quantile)
        )
        return ResultsPage(
            pipeline=source.name, rows=[_result(r) for r in page.rows], next=page.next
        )

    @app.get(
        "/v1/pipelines/{name}/dead-letters",
        response_model=DeadLettersPage,
        tags=["results"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_dead_letters(
        source: Source, limit: Limit = 100, after: After = None
    ) -> DeadLettersPage:
        """Events set aside, with the reason: the latest ``limit``, or those after ``after``."""
        page = _cursor_errors(
            lambda: reads.dead_letters_page(source.store, source.spec, limit, after)
        )
        rows = [DeadLetterRow.model_validate(r) for r in page.rows]
        return DeadLettersPage(pipeline=source.name, rows=rows, next=page.next)

    # -- writes

    @app.post(
        "/v1/pipelines/{name}/predict",
        response_model=PredictResponse,
        tags=["predict"],
        responses={**_WRITE, 409: {"model": ErrorBody}},
        dependencies=[Depends(allowed("predict"))],
    )
    async def predict(source: Source, body: PredictRequest) -> Response:
        """Score one event (``event``) or several (``events``) with the serving model (or
        ``model``; every model with ``challengers``), through the worker's featurizer; nothing
        is learned or written. The response names the model and version."""
        return _predict(source, body)

    @app.post(
        "/v1/pipelines/{name}/events",
        response_model=EventsResponse,
        tags=["events"],
        responses={**_WRITE, 409: {"model": ErrorBody}},
        dependencies=[Depends(allowed("events"))],
    )
    def send_events(source: Source, body: EventsRequest) -> EventsResponse:
        """Send events into the pipeline: to its first ``train`` or ``score`` topic (``role``),
        or to one of its topics (``topic``). Kafka: produced and flushed before the answer."""
        topic = _topic(source, body)
        values = [orjson.dumps(event) for event in body.events]
        try:
            accepted = source.send(topic, values)
        except NotAcceptedError as exc:
            raise HTTPException(409, str(exc)) from exc
        return EventsResponse(pipeline=source.name, topic=topic, accepted=accepted)

    # -- the operator's commands (what `streamfit models promote|rollback` do)

    _LATER = "carried out at a running worker's next checkpoint, or when a worker starts"

    @app.post(
        "/v1/pipelines/{name}/models/{model}/promote",
        response_model=CommandAccepted,
        status_code=202,
        tags=["models"],
        responses=_WRITE,
        dependencies=[Depends(allowed("admin"))],
    )
    def promote_model(
        source: Source, model: Annotated[str, Path(max_length=200)]
    ) -> CommandAccepted:
        """Make ``model`` the champion (``streamfit models promote``): the command is queued
        in the store and carried out by the pipeline's workers; see ``.../commands``."""
        from streamfit.runtime.operator import promote

        if model not in {m.name for m in source.spec.models}:
            raise HTTPException(404, f"pipeline {source.name} has no model {model!r}")
        command = promote(source.spec, model, store=source.store)
        return CommandAccepted(pipeline=source.name, command=_command(source, command), note=_LATER)

    @app.post(
        "/v1/pipelines/{name}/rollback",
        response_model=CommandAccepted,
        status_code=202,
        tags=["models"],
        responses={**_WRITE, 409: {"model": ErrorBody}},
        dependencies=[Depends(allowed("admin"))],
    )
    def roll_back(source: Source, body: RollbackRequest | None = None) -> CommandAccepted:
        """Reinstate the previous champion (no body), or take ``model`` back to its saved
        version ``to`` (``streamfit models rollback [MODEL] [--to VERSION]``); 409 for a
        version not saved or pruned."""
        from streamfit.runtime.operator import rollback

        body = body or RollbackRequest()
        if body.model is not None and body.model not in {m.name for m in source.spec.models}:
            raise _invalid("body.model", f"pipeline {source.name} has no model {body.model!r}")
        if body.to is not None and body.model is None:
            raise _invalid("body.to", "'to' is a version of a model: give 'model' too")
        try:
            command = rollback(source.spec, body.model, body.to, store=source.store)
        except SpecError as exc:
            raise HTTPException(409, str(exc)) from exc
        return CommandAccepted(pipeline=source.name, command=_command(source, command), note=_LATER)

    @app.get(
        "/v1/pipelines/{name}/commands",
        response_model=ModelCommands,
        tags=["models"],
        responses=_NOT_FOUND,
        dependencies=read,
    )
    def get_commands(source: Source) -> ModelCommands:
        """The champion in the workers' last checkpoint, the commands not carried out yet and
        the last ones carried out, with what the worker did (``streamfit models list``)."""
        from streamfit.runtime.operator import model_report

        report = model_report(source.spec, store=source.store)
        return ModelCommands(
            pipeline=source.name,
            champion=report["champion"],
            pending=[ModelCommand.model_validate(c) for c in report["pending"]],
            recent=[ModelCommand.model_validate(c) for c in report["recent"]],
        )

    from streamfit.ui import mount_dashboard

    mount_dashboard(app)
    return app


# -- path and query parameters ---------------------------------------------------------------------


async def _pipeline(
    request: Request, name: Annotated[str, Path(description="The pipeline's name")]
) -> PipelineSource:
    found: PipelineSource | None = request.app.state.sources.get(name)
    if found is None:
        raise HTTPException(404, f"no pipeline named {name!r}; see /v1/pipelines")
    return found


Source = Annotated[PipelineSource, Depends(_pipeline)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Rows at most")]
After = Annotated[
    str | None,
    Query(
        max_length=2000,
        description="A 'next' cursor: the rows written after it ('start': from the first)",
    ),
]


# -- middleware ---------------------------------------------------------------------------------


class _BodyLimit:
    """413 for a request body past ``max_bytes`` (declared, or counted as it streams)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await _too_large(send, self.max_bytes)
                    return
        seen = 0
        too_large = False

        async def counted() -> Message:
            # past the limit, the app gets an empty end of body and its answer is replaced
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def answer(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await _too_large(send, self.max_bytes)

        await self.app(scope, counted, answer)


async def _too_large(send: Callable[[Message], Awaitable[None]], limit: int) -> None:
    body = orjson.dumps({"detail": f"the request body is larger than {limit} bytes"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _PredictFastPath:
    """``POST /v1/pipelines/{name}/predict`` answered without FastAPI's routing and
    dependency machinery, which cost as much as scoring one event does.

    A request with a key that has the ``predict`` right and a body that validates as a
    ``PredictRequest`` is scored here by the same ``_predict`` as the route; anything else
    (no key, a bad key or body, an error while scoring) goes on, body and all, to the route,
    which gives the documented answer (401, 403, 409, 422, 503). Nothing here reads the
    database: the serving copy is in memory.
    """

    _PREFIX, _SUFFIX = "/v1/pipelines/", "/predict"

    def __init__(self, app: ASGIApp, sources: Mapping[str, PipelineSource], keys: ApiKeys) -> None:
        self.app = app
        self.sources = sources
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(self._PREFIX)
            or not path.endswith(self._SUFFIX)
        ):
            await self.app(scope, receive, send)
            return
        source = self.sources.get(path[len(self._PREFIX) : -len(self._SUFFIX)])
        key = _key_of(Headers(scope=scope))
        rights = None if key is None else self.keys.rights_of(key)
        if source is None or rights is None or "predict" not in rights:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            answer = _predict(source, PredictRequest.model_validate_json(body))
        except (ValidationError, HTTPException, StreamfitError, sa.exc.SQLAlchemyError):
            answer = None
        if answer is None:
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await answer(scope, receive, send)


def _problem(error: Mapping[str, Any]) -> dict[str, str]:
    """A validation error as its path and message; a body that is not JSON at all is
    ``body`` (FastAPI places it at the character where the JSON went wrong).

    >>> _problem({"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error",
    ...           "ctx": {"error": "Expecting value"}})
    {'path': 'body', 'message': 'not JSON: Expecting value (at character 1)'}
    """
    location = [str(p) for p in error["loc"]]
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error") or error["msg"]
        at = f" (at character {location[1]})" if len(location) > 1 else ""
        return {"path": "body", "message": f"not JSON: {reason}{at}"}
    return {"path": ".".join(location), "message": str(error["msg"])}


def _presented_key(request: Request) -> str | None:
    return _key_of(request.headers)


def _key_of(headers: Headers) -> str | None:
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


# -- shaping ------------------------------------------------------------------------------------


def _summary(source: PipelineSource) -> PipelineSummary:
    spec = source.spec
    kind = spec.source_or_kafka
    return PipelineSummary(
        name=spec.name,
        task=spec.task,
        target=spec.target,
        source=(
            "kafka"
            if isinstance(kind, KafkaSourceSpec)
            else "file"
            if isinstance(kind, FileSourceSpec)
            else "memory"
        ),
        mode=source.mode,
        topics={"train": list(spec.topics.train), "score": list(spec.topics.score)},
        models=[m.name for m in spec.models],
    )


def _counters(sample: Sample) -> Counters:
    return Counters(
        at=dt.datetime.fromtimestamp(sample.at, dt.UTC),
        events_in=sample.events_in,
        events_trained=sample.events_trained,
        events_scored=sample.events_scored,
        dead_letters=sample.dead_letters,
        events_per_second=sample.events_per_second,
    )


def _status(source: PipelineSource) -> PipelineStatus:
    status: Status = source.status()
    lag = [
        PartitionLag(topic=t, partition=p, position=pos, end=end, lag=max(end - pos, 0))
        for t, p, pos, end in source.lag(status)
    ]
    at = status.checkpoint_at
    age = None if at is None else (dt.datetime.now(dt.UTC) - at).total_seconds()
    offsets = status.checkpoint_offsets or status.positions
    served = source.served()
    return PipelineStatus(
        pipeline=source.name,
        mode=status.mode,
        running=status.running,
        counters=_counters(status.sample),
        checkpoints=status.checkpoints,
        last_checkpoint=CheckpointInfo(
            written_at=at,
            age_seconds=age,
            offsets=[
                PartitionOffset(topic=t, partition=p, offset=o)
                for (t, p), o in sorted(offsets.items())
            ],
        ),
        lag=lag,
        serving={} if served is None else served.versions,
        serving_since=None if served is None else dt.datetime.fromtimestamp(served.made_at, dt.UTC),
    )


def _models(source: PipelineSource) -> list[ModelInfo]:
    served = source.served()
    slots = {} if served is None else {s.name: s for s in served.models.slots}
    champion = source.spec.models[0].name if served is None else served.champion
    shares = {champion: 1.0} if served is None else served.serving
    quality = {row["model"]: row for row in source.quality()}
    saved = _saved_versions(source)
    out = []
    for spec in source.spec.models:
        slot = slots.get(spec.name)
        row = quality.get(spec.name, {})
        recorded = row.get("recorded_at")
        if isinstance(recorded, int | float):
            recorded = dt.datetime.fromtimestamp(recorded, dt.UTC)
        out.append(
            ModelInfo(
                name=spec.name,
                kind=slot.kind if slot is not None else _kind(spec),
                role="champion" if spec.name == champion else "challenger",
                serving=spec.name in shares,
                share=shares.get(spec.name) if len(shares) > 1 else None,
                version=None if slot is None else slot.version,
                events_learned=None if slot is None else slot.events_learned,
                metrics=reads.metric_values(row),
                metrics_at=recorded,
                versions=saved.get(spec.name, []),
            )
        )
    return out


def _kind(spec: Any) -> str:
    from streamfit.runtime.models import model_kind

    return model_kind(spec)


def _saved_versions(source: PipelineSource) -> dict[str, list[ModelVersion]]:
    """Each model's saved versions, as ``streamfit models list`` shows them."""
    out: dict[str, list[ModelVersion]] = {}
    for row in source.store.model_versions():
        saved = row["saved_at"]
        if isinstance(saved, dt.datetime) and saved.tzinfo is None:
            saved = saved.replace(tzinfo=dt.UTC)
        out.setdefault(row["name"], []).append(
            ModelVersion(
                version=row["version"],
                saved_at=saved,
                worker=row["worker"],
                state_kept=row["state_bytes"] > 0,
                metrics=row["metrics"],
            )
        )
    return out


def _command(source: PipelineSource, command_id: int) -> ModelCommand:
    for row in source.store.model_commands(after=command_id - 1):
        if int(row["id"]) == command_id:
            return ModelCommand.model_validate(row)
    raise HTTPException(503, f"command {command_id} was queued but cannot be read back")


def _point(row: Mapping[str, Any]) -> MetricPoint:
    return MetricPoint(
        model=row["model"],
        worker=row.get("worker"),
        version=row.get("model_version"),
        events_seen=row["events_seen"],
        recorded_at=row["recorded_at"],
        metrics=reads.metric_values(dict(row)),
    )


_STATS_KEYS = ("field", "worker", "events_seen", "recorded_at", "kind")


def _field_stats(row: Mapping[str, Any]) -> FieldStatistics:
    return FieldStatistics(
        field=row["field"],
        kind=row.get("kind"),
        events_seen=row["events_seen"],
        recorded_at=row["recorded_at"],
        figures={k: _json_value(v) for k, v in row.items() if k not in _STATS_KEYS},
    )


def _result(row: Mapping[str, Any]) -> ResultRow:
    shaped = {k: _json_value(v) for k, v in row.items() if k not in ("fields", "challengers")}
    shaped["fields"] = {k: _json_value(v) for k, v in row["fields"].items()}
    shaped["challengers"] = row["challengers"]
    return ResultRow.model_validate(shaped)


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _cursor_errors(read: Callable[[], reads.Page]) -> reads.Page:
    try:
        return read()
    except reads.BadCursorError as exc:
        raise HTTPException(422, str(exc)) from exc


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=dt.UTC)


def _topic(source: PipelineSource, body: EventsRequest) -> str:
    topics = source.spec.topics
    if (body.role is None) == (body.topic is None):
        raise _invalid("body", "give either 'role' (train or score) or 'topic'")
    if body.role is not None:
        named = topics.train if body.role == "train" else topics.score
        if not named:
            raise _invalid("body.role", f"pipeline {source.name} has no {body.role} topic")
        return named[0]
    if body.topic not in topics.all:
        raise _invalid("body.topic", f"not a topic of pipeline {source.name}: {topics.all}")
    return str(body.topic)


def _invalid(path: str, message: str) -> HTTPException:
    return HTTPException(422, [{"path": path, "message": message}])


def _predict(source: PipelineSource, body: PredictRequest) -> Response:
    """The answer of ``POST .../predict``, shaped as ``PredictResponse`` and written with
    orjson directly (the hot path: validating the response model again would cost as much
    as scoring one event)."""
    if (body.event is None) == (body.events is None):
        raise _invalid("body", "give either 'event' (one) or 'events' (a list)")
    events = [body.event] if body.event is not None else body.events or []
    served = source.served()
    if served is None:
        raise HTTPException(409, f"pipeline {source.name} has no model to predict with yet")
    if body.model is not None and body.model not in served.versions:
        raise _invalid("body.model", f"pipeline {source.name} has no model {body.model!r}")
    first = body.model or served.champion
    wanted = None if body.challengers else {first}
    started = time.perf_counter()
    try:
        scored = served.predict(source.spec, events, wanted)
    except EventRejectedError as exc:
        where = "body.event" if body.event is not None else f"body.events.{exc.index}"
        raise _invalid(where, exc.reason) from exc
    main = next(p for p in scored if p.name == first)
    columns = [
        (
            p.name,
            p.version,
            [_json_value(v) for v in np.asarray(p.prediction).tolist()],
            None
            if p.probability is None
            else [_json_value(v) for v in np.asarray(p.probability).tolist()],
        )
        for p in [main, *(p for p in scored if p.name != first)]
    ]
    name, version, values, probabilities = columns[0]
    predictions = [
        {
            "model": name,
            "version": version,
            "prediction": value,
            "probability": None if probabilities is None else probabilities[i],
            "others": [
                {
                    "model": other,
                    "version": other_version,
                    "prediction": other_values[i],
                    "probability": None if other_probabilities is None else other_probabilities[i],
                }
                for other, other_version, other_values, other_probabilities in columns[1:]
            ],
        }
        for i, value in enumerate(values)
    ]
    log.debug("predicted %d events in %.2f ms", len(events), (time.perf_counter() - started) * 1e3)
    answer = {"pipeline": source.name, "model": first, "version": version}
    answer["predictions"] = predictions
    return Response(orjson.dumps(answer), media_type="application/json")

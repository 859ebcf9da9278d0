"""The API's bodies and responses (pydantic): what the OpenAPI docs at ``/docs`` show.

Request bodies forbid unknown keys and are bounded: at most ``MAX_EVENTS`` events a request,
each an object of at most ``MAX_EVENT_FIELDS`` fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "MAX_EVENTS",
    "MAX_EVENT_FIELDS",
]

#: events in one request at most (predict, events)
MAX_EVENTS = 1000
#: fields in one event at most
MAX_EVENT_FIELDS = 2000

Event = Annotated[
    dict[str, JsonValue],
    Field(max_length=MAX_EVENT_FIELDS, description="One event: a JSON object, as on the topic"),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- health ---------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, dict[str, bool]] = Field(
        description="Per pipeline: whether its store, broker (and worker) answer"
    )


class ErrorBody(BaseModel):
    detail: str


class ValidationProblem(BaseModel):
    path: str = Field(description="Where in the request, e.g. body.events.3")
    message: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationProblem]


# -- pipelines -----------------------------------------------------------------------------------


class PipelineSummary(BaseModel):
    name: str
    task: str
    target: str | None
    source: str = Field(description="kafka, memory or file")
    mode: Literal["worker", "store"] = Field(
        description="worker: served from the running worker's memory; store: from the "
        "database and the latest checkpoint"
    )
    topics: dict[str, list[str]]
    models: list[str]


class PartitionLag(BaseModel):
    topic: str
    partition: int
    position: int = Field(description="Next offset the pipeline reads (or checkpointed)")
    end: int = Field(description="Offset after the partition's last event")
    lag: int


class PartitionOffset(BaseModel):
    topic: str
    partition: int
    offset: int


class CheckpointInfo(BaseModel):
    written_at: dt.datetime | None
    age_seconds: float | None
    offsets: list[PartitionOffset]


class Counters(BaseModel):
    at: dt.datetime
    events_in: int | None = Field(
        description="Events read (worker); the checkpointed offsets' sum (store)"
    )
    events_trained: int | None
    events_scored: int | None = Field(description="Unknown (null) when read from the store")
    dead_letters: int | None
    events_per_second: float | None


class PipelineStatus(BaseModel):
    pipeline: str
    mode: Literal["worker", "store"]
    running: bool
    counters: Counters
    checkpoints: int | None = Field(description="Checkpoints this worker wrote (worker mode)")
    last_checkpoint: CheckpointInfo
    lag: list[PartitionLag]
    serving: dict[str, int] = Field(description="Each model's version predictions use")
    serving_since: dt.datetime | None = Field(description="When that copy was made")


class PipelineDetail(PipelineSummary):
    spec: dict[str, Any]
    status: PipelineStatus


class Throughput(BaseModel):
    pipeline: str
    points: list[Counters]


# -- models --------------------------------------------------------------------------------------


class ModelVersion(BaseModel):
    version: int
    saved_at: dt.datetime | None
    worker: str | None = Field(default=None, description="The worker that saved it")
    state_kept: bool = Field(
        default=True, description="False once its state was pruned (no rollback to it)"
    )
    metrics: dict[str, JsonValue] = Field(
        default_factory=dict, description="The model's metrics when this version was saved"
    )


class ModelInfo(BaseModel):
    name: str
    kind: str
    role: Literal["champion", "challenger"]
    serving: bool = Field(description="Whether its predictions are the pipeline's")
    share: float | None = Field(
        default=None, description="With A/B serving: the share of the events it serves"
    )
    version: int | None = Field(description="The version predictions use now")
    events_learned: int | None
    metrics: dict[str, float] = Field(description="Latest metrics (cumulative and window_*)")
    metrics_at: dt.datetime | None
    versions: list[ModelVersion] = Field(description="Versions saved in the models table")


class MetricPoint(BaseModel):
    model: str
    worker: str | None
    version: int | None
    events_seen: int
    recorded_at: dt.datetime
    metrics: dict[str, float]


class MetricSeries(BaseModel):
    pipeline: str
    points: list[MetricPoint]


# -- statistics ----------------------------------------------------------------------------------


class FieldStatistics(BaseModel):
    field: str
    kind: str | None
    events_seen: int
    recorded_at: dt.datetime
    figures: dict[str, JsonValue] = Field(
        description="count, missing, mean, quantiles (p01...), histogram, top_values..., "
        "over all time and (window_*) over the recent window"
    )


class StatisticsResponse(BaseModel):
    pipeline: str
    table: str
    fields: list[FieldStatistics]


# -- results -------------------------------------------------------------------------------------


class ResultRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    source_topic: str
    source_partition: int
    source_offset: int
    event_key: str | None = None
    prediction: JsonValue = None
    probability: float | None = None
    model: str | None = None
    model_version: int | None = None
    label: JsonValue = None
    event_time: dt.datetime | None = None
    processed_at: dt.datetime | None = None
    fields: dict[str, JsonValue]
    challengers: dict[str, dict[str, JsonValue]]


class ResultsPage(BaseModel):
    pipeline: str
    rows: list[ResultRow]
    next: str | None = Field(description="Give it as 'after' to get the rows after these")


class DeadLetterRow(BaseModel):
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    preview: str | None
    event_time: dt.datetime | None
    recorded_at: dt.datetime


class DeadLettersPage(BaseModel):
    pipeline: str
    rows: list[DeadLetterRow]
    next: str | None


# -- predict and events --------------------------------------------------------------------------


class PredictRequest(_Body):
    """One event (``event``) or several (``events``)."""

    event: Event | None = None
    events: list[Event] | None = Field(default=None, min_length=1, max_length=MAX_EVENTS)
    model: str | None = Field(
        default=None, description="Score with this model only (default: the serving one)"
    )
    challengers: bool = Field(default=False, description="Also score with every other model")


class ModelPrediction(BaseModel):
    model: str
    version: int
    prediction: JsonValue
    probability: float | None = None


class Prediction(BaseModel):
    model: str
    version: int
    prediction: JsonValue
    probability: float | None = Field(
        default=None, description="Probability of the predicted class (classifiers)"
    )
    others: list[ModelPrediction] = Field(default_factory=list)


class PredictResponse(BaseModel):
    pipeline: str
    model: str = Field(description="The model that predicted (the serving one by default)")
    version: int
    predictions: list[Prediction]


class RollbackRequest(_Body):
    """What to roll back: the previous champion (no ``model``), or a model's state to a
    saved version (``model``, and ``to``: by default its last saved version before the
    current one)."""

    model: str | None = Field(default=None, description="A model of the pipeline")
    to: int | None = Field(default=None, ge=1, description="A saved version of that model")


class ModelCommand(BaseModel):
    id: int
    command: Literal["promote", "rollback"]
    model: str | None
    version: int | None
    requested_at: dt.datetime | None
    applied_at: dt.datetime | None = None
    result: str | None = Field(description="What the worker did, once it has taken it")


class CommandAccepted(BaseModel):
    pipeline: str
    command: ModelCommand
    note: str = Field(
        description="When it takes effect: at a running worker's next checkpoint, or when "
        "one starts"
    )


class ModelCommands(BaseModel):
    pipeline: str
    champion: str = Field(description="The champion in the workers' last checkpoint")
    pending: list[ModelCommand]
    recent: list[ModelCommand] = Field(description="The last commands carried out")


class EventsRequest(_Body):
    """Events into one of the pipeline's topics, named by role or by topic."""

    role: Literal["train", "score"] | None = Field(
        default=None, description="train: labeled events; score: unlabeled ones"
    )
    topic: str | None = Field(default=None, description="One of the pipeline's topics")
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    pipeline: str
    topic: str
    accepted: int

"""The pipeline spec: what a pipeline reads, learns, scores and writes.

A spec is YAML, validated by pydantic with unknown keys rejected; ``load_spec`` turns any
problem into a ``SpecError`` naming the path of the bad key.

>>> spec = PipelineSpec.model_validate({
...     "name": "demo",
...     "source": {"kind": "memory"},
...     "topics": {"train": "t", "score": "s"},
...     "target": "y",
...     "models": [{"name": "lr", "builtin": "logistic_regression"}],
... })
>>> spec.models[0].name, spec.outputs.results_table_name(spec.name)
('lr', 'demo_results')
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from streamfit.spec.drift import DriftSpec, expand_on_drift

__all__ = [
    "RESERVED_TABLES",
    "AnomalySpec",
    "BatchSpec",
    "BuiltinModelSpec",
    "CheckpointSpec",
    "EvaluationSpec",
    "FeaturesSpec",
    "FileSourceSpec",
    "GateSpec",
    "KafkaSourceSpec",
    "LabelsSpec",
    "LearningSpec",
    "MemorySourceSpec",
    "ModelSpec",
    "OnnxModelSpec",
    "OutputsSpec",
    "PipelineSpec",
    "PretrainedSklearnSpec",
    "PromotionSpec",
    "RiverModelSpec",
    "RollbackSpec",
    "ServingSpec",
    "SklearnModelSpec",
    "SourceSpec",
    "StatsSpec",
    "TargetSpec",
    "TextSpec",
    "TopicsSpec",
    "TtlSpec",
    "default_models",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,59}$")

#: The tables streamfit keeps for every pipeline of a database (``streamfit.store.tables``):
#: no results or training table may take one of these names, in any case.
RESERVED_TABLES = frozenset(
    {
        "checkpoint_states",
        "checkpoints",
        "dead_letters",
        "model_commands",
        "models",
        "result_fields",
    }
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSourceSpec(_Frozen):
    """Read from Apache Kafka as one member of a consumer group."""

    kind: Literal["kafka"] = "kafka"
    # default: STREAMFIT_KAFKA_BOOTSTRAP, else the broker of `streamfit kafka start`, else
    # 127.0.0.1:9092 (streamfit.streams.local_kafka.find_bootstrap)
    bootstrap_servers: str | None = None
    group_id: str | None = None  # default: "streamfit-<pipeline name>"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    config: dict[str, str | int | float | bool] = Field(default_factory=dict)


class MemorySourceSpec(_Frozen):
    """The in-process stream (one process, no broker): for demos and tests."""

    kind: Literal["memory"] = "memory"


class FileSourceSpec(_Frozen):
    """Replay a CSV, JSONL or Parquet file as a stream, at ``rate`` events/s (0 = flat out)."""

    kind: Literal["file"] = "file"
    path: str
    rate: float = Field(default=0.0, ge=0.0)
    topic: str | None = None  # the role topic the rows are replayed as; default: train topic


SourceSpec = Annotated[
    KafkaSourceSpec | MemorySourceSpec | FileSourceSpec, Field(discriminator="kind")
]


class TopicsSpec(_Frozen):
    """Topics by role. One topic may carry both roles: rows without a target are scored.

    ``labels``: topics of labels that come after their events (``{key, label}`` events, see
    ``LabelsSpec``); the events they are for are those of the ``score`` topics.
    """

    train: list[str] = Field(default_factory=list)
    score: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)

    @field_validator("train", "score", "labels", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _some_topic(self) -> TopicsSpec:
        if not self.train and not self.score:
            raise ValueError("name at least one topic, as 'train' or 'score'")
        if self.labels and not self.score:
            raise ValueError(
                "a 'labels' topic carries labels for the events of the 'score' topics: name them"
            )
        both = sorted(set(self.labels) & {*self.train, *self.score})
        if both:
            raise ValueError(f"a 'labels' topic carries labels only, not events: {both}")
        return self

    @property
    def all(self) -> list[str]:
        return list(dict.fromkeys([*self.train, *self.score, *self.labels]))


FieldType = Literal["numeric", "categorical", "boolean", "text"]


class TextSpec(_Frozen):
    """How text fields become features (``streamfit.features.text``): word tokens, and word
    bigrams with ``bigrams``; each token weighted ``log(1 + count)``, times its inverse
    document frequency learned online with ``weighting: tfidf`` (``tf``: without it)."""

    bigrams: bool = True
    weighting: Literal["tfidf", "tf"] = "tfidf"


class FeaturesSpec(_Frozen):
    """Which fields become features; types are inferred unless given in ``types``."""

    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    types: dict[str, FieldType] = Field(default_factory=dict)
    hash_bits: int = Field(default=18, ge=4, le=26)
    text_fields_min_tokens: int = Field(default=4, ge=1)
    text: TextSpec = Field(default_factory=TextSpec)


#: Metrics a gate or a promotion rule can judge by: the first group for classifiers, the second
#: for regressors. ``log_loss``, ``mae`` and ``rmse`` are better when lower.
CLASSIFICATION_SCORES = ("f1", "accuracy", "precision", "recall", "roc_auc", "log_loss")
REGRESSION_SCORES = ("rmse", "mae", "r2")
ScoreName = Literal[
    "f1", "accuracy", "precision", "recall", "roc_auc", "log_loss", "rmse", "mae", "r2"
]


class GateSpec(_Frozen):
    """An update gate on one model (``streamfit.lifecycle.gate``): each learned block is
    applied to a copy of the model; the copy is scored on a held-out share of the block
    (``holdout``, chosen by offset, never learned by this model) and replaces the model only
    if its score beats ``ratio`` x the mean score of the updates kept so far (for a metric
    that is better when lower, ``log_loss``, ``mae``, ``rmse``: is below that mean / ``ratio``).
    Otherwise the model stays exactly as it was. After ``reset_after`` rejections in a row the
    next update is kept and the mean starts again from it (the stream has shifted: the old
    mean no longer says what a good score is); ``null`` never resets."""

    metric: ScoreName = "f1"
    ratio: float = Field(default=0.95, gt=0, le=10)
    holdout: float = Field(default=0.2, gt=0, lt=1)
    reset_after: int | None = Field(default=20, ge=1)


class _NamedModel(_Frozen):
    name: str
    gate: GateSpec | None = None
    standby: bool = False  # waits, untrained, for a drift (``on_drift: challenger``)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a model name is letters, digits and '_', at most 41 characters")
        return value


class _ModelBase(_NamedModel):
    params: dict[str, Any] = Field(default_factory=dict)


class BuiltinModelSpec(_ModelBase):
    """A learner shipped with streamfit."""

    builtin: Literal[
        "logistic_regression",
        "binned_logistic_regression",
        "linear_regression",
        "histogram_detector",
    ]


class RiverModelSpec(_ModelBase):
    """Any River estimator, by its path below ``river``: ``tree.HoeffdingTreeClassifier``.

    A parameter may itself be an estimator, written ``{river: <path>, params: {...}}`` (or a
    list of them): ``river: multiclass.OneVsRestClassifier`` with ``params: {classifier:
    {river: linear_model.LogisticRegression}}``; a pipeline is ``river: compose.Pipeline``
    with ``params: {steps: [...]}`` (a class taking ``*args`` gets the list named after them).

    ``reads``: ``records`` (default) gives the estimator each event's fields whole, as River
    users feed it (numbers unscaled, categories and text as strings, zeros kept; see
    ``Featurizer.records``); ``matrix`` gives it streamfit's hashed, standardized features,
    keyed by column number (for estimators that need numbers only, such as a bare
    ``linear_model.LogisticRegression`` on a stream with categorical fields).
    """

    river: str
    reads: Literal["records", "matrix"] = "records"


class SklearnModelSpec(_ModelBase):
    """Any scikit-learn estimator with ``partial_fit``: ``linear_model.SGDClassifier``."""

    sklearn: str


Label = str | int | bool
FillValue = float | int | str | bool


class _PretrainedBase(_NamedModel):
    """What every pretrained model has: the event fields it reads, and what a missing one is.

    ``inputs``: the event fields the model reads, in the order of its input columns; by
    default its own input names (an ONNX graph's inputs, a scikit-learn estimator's
    ``feature_names_in_``). ``fill_missing``: the value a missing field takes, by field;
    otherwise NaN for a number, 0 for an integer and ``""`` for a string.
    """

    inputs: list[str] | None = Field(default=None, min_length=1)
    fill_missing: dict[str, FillValue] = Field(default_factory=dict)


class OnnxModelSpec(_PretrainedBase):
    """A model trained elsewhere, exported to ONNX, scored through onnxruntime (one session
    run per poll). Frozen: it never learns. ``classes``: the labels of the probability
    columns, where the graph does not name them."""

    onnx: str
    classes: list[Label] | None = Field(default=None, min_length=2)


class PretrainedSklearnSpec(_PretrainedBase):
    """A fitted scikit-learn estimator from a file. ``.skops`` files load through skops,
    which builds only the types it trusts: scikit-learn's, NumPy's and SciPy's here, plus
    ``trusted_types``. A joblib or pickle file (``.joblib``, ``.pkl``, ``.pickle``) runs
    whatever code it holds as it loads: it is refused unless ``trusted: true`` says that
    you know where it came from. Frozen unless ``learn: true`` and the estimator has
    ``partial_fit``."""

    sklearn_file: str
    trusted: bool = False
    trusted_types: list[str] = Field(default_factory=list)
    learn: bool = False


_MODEL_KINDS = ("builtin", "river", "sklearn_file", "sklearn", "onnx")


def _model_kind(value: Any) -> str | None:
    keys = value if isinstance(value, dict) else vars(value) if hasattr(value, "__dict__") else {}
    for kind in _MODEL_KINDS:
        if kind in keys:
            return kind
    return None


ModelSpec = Annotated[
    Annotated[BuiltinModelSpec, Tag("builtin")]
    | Annotated[RiverModelSpec, Tag("river")]
    | Annotated[SklearnModelSpec, Tag("sklearn")]
    | Annotated[PretrainedSklearnSpec, Tag("sklearn_file")]
    | Annotated[OnnxModelSpec, Tag("onnx")],
    Discriminator(
        _model_kind,
        custom_error_type="model_kind",
        custom_error_message="a model names one of 'builtin', 'river', 'sklearn', "
        "'sklearn_file' or 'onnx'",
    ),
]


class RollbackSpec(_Frozen):
    """After a promotion, the previous champion is reinstated if, at any of the next
    ``within`` evaluation points, the new champion's windowed score is worse than the
    previous champion's by more than ``margin``."""

    within: int = Field(default=10, ge=1)
    margin: float = Field(default=0.0, ge=0)


class PromotionSpec(_Frozen):
    """Champion and challengers (``streamfit.lifecycle.promotion``). Every ``every`` labeled
    events learned is an evaluation point; a challenger whose score over the last ``window``
    events beats the champion's by ``margin`` at ``patience`` points in a row becomes the
    champion. ``rollback``: when to undo a promotion (``null``: never)."""

    metric: ScoreName = "roc_auc"
    window: int = Field(default=5000, ge=10)
    margin: float = Field(default=0.01, ge=0)
    patience: int = Field(default=3, ge=1)
    every: int = Field(default=1000, ge=1)
    rollback: RollbackSpec | None = Field(default_factory=RollbackSpec)


class ServingSpec(_Frozen):
    """A/B serving (``streamfit.lifecycle.serving``): ``split`` gives each model named its
    share of the scored events (shares add up to 1). An event goes to the same model every
    time: chosen by a hash of its key (the spec's ``key`` field, else its Kafka key), or of
    its offset when it has no key."""

    split: dict[str, float] = Field(min_length=1)

    @field_validator("split")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        if any(share <= 0 or share > 1 for share in value.values()):
            raise ValueError("each share is above 0 and at most 1")
        total = sum(value.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the shares add up to {total:g}, not 1")
        return value


class EvaluationSpec(_Frozen):
    """Prequential evaluation: every labeled event is predicted before it is learned from."""

    window: int = Field(default=1000, ge=10)
    interval_events: int = Field(default=10_000, ge=1)
    interval_seconds: float = Field(default=5.0, gt=0)


class OutputsSpec(_Frozen):
    """Where predictions, metrics and rejects go.

    ``score_training_events``: a labeled event of a ``train`` topic is, by default, only
    learned from (its prequential prediction goes into the metrics). Set, it is also scored
    as it arrives, like an unlabeled event, by the model serving at that moment (which has
    not learned it yet): its prediction goes to the predictions topic and its results row,
    with its label, to the results table.
    """

    predictions_topic: str | None = None
    dead_letter_topic: str | None = None
    database: str | None = None  # default: settings.database_url (sqlite:///streamfit.db)
    results_table: str | None = None
    training_table: str | None = None
    write_results: bool = True
    score_training_events: bool = False

    @field_validator("results_table", "training_table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _TABLE.match(value):
            raise ValueError(
                "a table name is letters, digits and '_', not starting with a digit, "
                "at most 60 characters"
            )
        if value.lower() in RESERVED_TABLES:
            raise ValueError(f"streamfit keeps a table {value.lower()!r} of its own")
        return value

    def results_table_name(self, pipeline: str) -> str:
        return self.results_table or f"{pipeline}_results"

    def training_table_name(self, pipeline: str) -> str:
        return self.training_table or f"{pipeline}_training"


#: The quantiles a field statistics row reports by default (columns p01 ... p99).
DEFAULT_STATS_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class StatsSpec(_Frozen):
    """Live statistics of the stream's fields (``streamfit.explore``): on by default.

    ``stats: false`` turns them off. ``fields``: which fields (names or glob patterns; all by
    default), minus ``exclude``; ``window``: events in the recent window, besides all time;
    ``quantiles``: the quantiles reported (each a column, ``p01`` for 0.01, ``p99_9`` for
    0.999); ``histogram_bins`` and ``top_values``: the size of each field's histogram and
    list of most frequent values; ``correlation``: the correlations of the numeric fields;
    ``max_fields``: fields tracked at most (the first that come; ``limits.MAX_STATS_FIELDS``
    at most); ``interval_seconds``: a snapshot goes to the table at the metrics interval, at
    most one every so many seconds, and one at the end of a run; ``table`` and
    ``schema_changes_table``: where snapshots and schema changes go (default
    ``<name>_field_stats`` and ``<name>_schema_changes``).
    """

    enabled: bool = True
    fields: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    window: int = Field(default=100_000, ge=100, le=100_000_000)
    quantiles: list[float] = Field(
        default_factory=lambda: list(DEFAULT_STATS_QUANTILES), min_length=1, max_length=20
    )
    histogram_bins: int = Field(default=10, ge=2, le=100)
    top_values: int = Field(default=10, ge=1, le=50)
    correlation: bool = True
    max_fields: int = Field(default=200, ge=1, le=200)
    interval_seconds: float = Field(default=5.0, ge=0.0)
    table: str | None = None
    schema_changes_table: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _on_or_off(cls, data: Any) -> Any:
        """``stats: true`` / ``stats: false`` is the same as ``{enabled: ...}``."""
        return {"enabled": data} if isinstance(data, bool) else data

    @field_validator("quantiles")
    @classmethod
    def _valid_quantiles(cls, value: list[float]) -> list[float]:
        if not all(0.0 < q < 1.0 for q in value):
            raise ValueError("each quantile is a number between 0 and 1, such as 0.99")
        if len(set(value)) != len(value):
            raise ValueError("each quantile once")
        return sorted(value)

    @field_validator("table", "schema_changes_table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        return OutputsSpec._valid_table(value)

    def table_name(self, pipeline: str) -> str:
        return self.table or f"{pipeline}_field_stats"

    def schema_changes_table_name(self, pipeline: str) -> str:
        return self.schema_changes_table or f"{pipeline}_schema_changes"


class TtlSpec(_Frozen):
    """How long an event waits for its label (and a label for its event): ``events``, as
    many more events of the score topics, or ``seconds``, of the events' and labels' own
    timestamps (never the wall clock: a replay waits the same). A bare number is events."""

    events: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"events": data}
        return data

    @model_validator(mode="after")
    def _one(self) -> TtlSpec:
        if (self.events is None) == (self.seconds is None):
            raise ValueError("give the ttl in 'events' or in 'seconds' (one of them)")
        return self


class LabelsSpec(_Frozen):
    """Labels that come after their events, on the ``labels`` topics (``streamfit.delayed``).

    A label event carries an event's key and its label. Its key is its field named ``key``
    here (default: the field named by the pipeline's ``key:``, else a field ``key``, else the
    label event's own Kafka key); its label, its field named ``label`` here (default: the
    pipeline's ``target:`` field, else a field ``label``). An event waits for its label for
    ``ttl``, and at most ``max_waiting`` events wait (past that the oldest stop waiting:
    counted as evicted); ``table``: where the join's figures go (default ``<name>_labels``).
    """

    ttl: TtlSpec = Field(default_factory=lambda: TtlSpec(events=100_000))
    max_waiting: int = Field(default=1_000_000, ge=1, le=100_000_000)
    key: str | None = None
    label: str | None = None
    table: str | None = None

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        return OutputsSpec._valid_table(value)

    def table_name(self, pipeline: str) -> str:
        return self.table or f"{pipeline}_labels"


class CheckpointSpec(_Frozen):
    """How often model state and input offsets are written, together, to the database.

    Each checkpoint also records every model whose version changed as a version in the
    ``models`` table, with its metrics; ``keep_model_versions``: how many versions of each
    model keep their state there (older ones keep their metrics, their state is emptied), so
    that ``streamfit models rollback NAME --to VERSION`` can go back to them.
    """

    interval_events: int = Field(default=50_000, ge=1)
    interval_seconds: float = Field(default=5.0, gt=0)
    keep_model_versions: int = Field(default=20, ge=1)


class LearningSpec(_Frozen):
    """Learning happens in blocks of ``block_events`` offsets of a partition, aligned on
    offsets, so that a replay after a crash learns exactly what an uninterrupted run learned.
    By default an incomplete block waits for its last events (scoring never waits). With
    ``max_wait_seconds`` set, a block still incomplete after that long without new events is
    learned as it is: fresher models on a quiet stream, at the price of bit-exact replay
    (where the stream paused depends on timing).
    """

    block_events: int = Field(default=512, ge=1, le=1_000_000)
    max_wait_seconds: float | None = Field(default=None, gt=0)


class BatchSpec(_Frozen):
    """How many events the worker takes at a time, at most, and how long a poll waits when
    none is there (a poll takes the events that have come; it never waits for more)."""

    max_records: int = Field(default=1000, ge=1, le=1_000_000)
    timeout: float = Field(default=0.2, gt=0, le=60)


def default_models(task: str) -> list[dict[str, Any]]:
    """What a spec without ``models:`` runs: one built-in learner (or, for ``task: anomaly``,
    the built-in detector), named ``default``, with its default settings (how they were
    chosen: ``bench/README.md``).

    >>> default_models("classification")
    [{'name': 'default', 'builtin': 'binned_logistic_regression'}]
    >>> default_models("anomaly")[0]["builtin"]
    'histogram_detector'
    """
    builtin = {
        "regression": "linear_regression",
        "anomaly": "histogram_detector",
    }.get(task, "binned_logistic_regression")
    return [{"name": "default", "builtin": builtin}]


class AnomalySpec(_Frozen):
    """When a ``task: anomaly`` pipeline raises an alarm (``is_anomaly``): when an event's
    score is above ``alarm_quantile`` of the last ``window`` scores (its ``score_quantile``),
    or, with ``alarm_score`` set, above that fixed score instead."""

    alarm_quantile: float = Field(default=0.99, gt=0.0, lt=1.0)
    alarm_score: float | None = None
    window: int = Field(default=10_000, ge=100, le=100_000_000)


class TargetSpec(_Frozen):
    """Another field of the same stream to model from the others (``targets:``): its own
    models, tables and metrics, over the pipeline's topics, decoded and described once.

    Every event that has a value of ``target`` is learned from (predicted first:
    prequential), every other event is scored. ``name`` (default: the target field) names
    its tables: ``<pipeline>_<name>_results`` and ``<pipeline>_<name>_training`` unless
    ``results_table`` / ``training_table`` say otherwise.
    """

    target: str
    name: str | None = None
    task: Literal["classification", "regression"] = "classification"
    classes: list[Label] | None = Field(default=None, min_length=1)
    models: list[ModelSpec] = Field(default_factory=list)  # empty: ``default_models``
    results_table: str | None = None
    training_table: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("models"):
            task = data.get("task", "classification")
            data = {**data, "models": default_models(task if isinstance(task, str) else "")}
        return data

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("a target's name is letters, digits and '_', at most 41 characters")
        return value

    @field_validator("results_table", "training_table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        return OutputsSpec._valid_table(value)

    @property
    def head(self) -> str:
        """Its name: ``name``, else the target field made a name."""
        return self.name or (re.sub(r"[^A-Za-z0-9_]", "_", self.target)[:41] or "target")


class PipelineSpec(_Frozen):
    """A whole pipeline. Without ``models:`` it runs the default model (``default_models``).

    ``source`` left out: Apache Kafka, at the broker ``find_bootstrap`` finds (the pipeline
    logs which), unless the pipeline is built over an in-process broker (``build_worker(spec,
    broker=...)``). ``classes``: the labels a classifier may learn; an event of a ``train``
    topic with another label is a dead letter. Without it, every new label is learned and
    logged once. ``missing_label``: what happens to an event of a train-only topic (a topic
    that is not also a ``score`` topic) that has no label: a dead letter (``dead_letter``), or
    scored as an unlabeled event (``score``).
    """

    name: str
    source: SourceSpec | None = None
    topics: TopicsSpec
    key: str | None = None
    target: str | None = None
    task: Literal["classification", "regression", "anomaly"] = "classification"
    classes: list[Label] | None = Field(default=None, min_length=1)
    missing_label: Literal["dead_letter", "score"] = "dead_letter"
    label: str | None = None  # task: anomaly: the field that says which events are anomalies
    anomaly: AnomalySpec = Field(default_factory=AnomalySpec)
    targets: list[TargetSpec] = Field(default_factory=list)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    models: list[ModelSpec] = Field(default_factory=list)  # empty: ``default_models``
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    learning: LearningSpec = Field(default_factory=LearningSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    stats: StatsSpec = Field(default_factory=StatsSpec)
    labels: LabelsSpec = Field(default_factory=LabelsSpec)
    processing: Literal["at_least_once", "exactly_once"] = "at_least_once"
    promotion: PromotionSpec | None = None
    serving: ServingSpec | None = None
    drift: DriftSpec | None = None
    on_drift: Literal["log", "challenger"] = "log"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a pipeline name is letters, digits and '_', at most 41 characters")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        """No ``models:`` (or an empty list): the pipeline runs the default model."""
        if isinstance(data, dict) and not data.get("models"):
            task = data.get("task", "classification")
            data = {**data, "models": default_models(task if isinstance(task, str) else "")}
        if isinstance(data, dict) and isinstance(data.get("models"), list):
            data = expand_on_drift(data, data["models"])  # ``streamfit.spec.drift``
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        self._check_anomaly()
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        if self.topics.train and not self.target:
            raise ValueError("a 'train' topic needs a 'target' field")
        self._check_lifecycle(names)
        self._check_drift(names)
        outputs = self.outputs
        results = outputs.results_table_name(self.name)
        if results.lower() == outputs.training_table_name(self.name).lower():
            key = "training_table" if outputs.training_table else "results_table"
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "table_name",
                            "the results and the training table must differ (both are {name!r})",
                            {"name": results},
                        ),
                        loc=("outputs", key),
                        input=getattr(outputs, key),
                    )
                ],
            )
        stats = self.stats
        taken = {results.lower(), outputs.training_table_name(self.name).lower()}
        heads = {""}
        for i, extra in enumerate(self.targets):
            where = ("targets", str(i))
            if extra.head in heads:
                raise _error_at(self, (*where, "name"), "each target's name once", extra.head)
            heads.add(extra.head)
            if extra.target in (self.target, self.key, self.label):
                raise _error_at(
                    self,
                    (*where, "target"),
                    "is the pipeline's own target, key or label already",
                    extra.target,
                )
            for key, table in (
                ("results_table", self.target_results_table(extra)),
                ("training_table", self.target_training_table(extra)),
            ):
                if not _TABLE.match(table) or table.lower() in taken:
                    raise _error_at(
                        self,
                        (*where, key),
                        f"{table!r} is not a table name this target can have (letters, digits "
                        "and '_', at most 60 characters, and none of the pipeline's other "
                        "tables): set it",
                        getattr(extra, key),
                    )
                taken.add(table.lower())
            names = [m.name for m in extra.models]
            if len(set(names)) != len(names):
                raise _error_at(self, (*where, "models"), "model names must be unique", names)
        for section, key, table in (
            ("stats", "table", stats.table_name(self.name)),
            ("stats", "schema_changes_table", stats.schema_changes_table_name(self.name)),
            ("labels", "table", self.labels.table_name(self.name)),
            *([("drift", "table", self.drift.table_name(self.name))] if self.drift else []),
        ):
            if table.lower() in taken:
                raise _error_at(
                    self,
                    (section, key),
                    f"{table!r} is another table of this pipeline already",
                    getattr(getattr(self, section), key),
                )
            taken.add(table.lower())
        self._check_labels()
        if self.classes is not None:
            if self.task != "classification":
                raise _error_at(
                    self,
                    ("classes",),
                    f"only a classification pipeline has classes (task: {self.task})",
                    self.classes,
                )
            texts = [str(c).lower() if isinstance(c, bool) else str(c) for c in self.classes]
            if len(set(texts)) != len(texts):
                raise _error_at(self, ("classes",), "each class once", self.classes)
        if isinstance(self.source, FileSourceSpec):
            for key in ("predictions_topic", "dead_letter_topic"):
                if getattr(self.outputs, key):
                    raise _error_at(
                        self,
                        ("outputs", key),
                        "a file source writes no Kafka topics (predictions go to the results "
                        "table, rejects to dead_letters); remove it, or send the file to a "
                        "topic with 'streamfit produce' and read it from Kafka",
                        getattr(self.outputs, key),
                    )
        return self

    def _check_labels(self) -> None:
        """A pipeline with ``labels`` topics joins labels to scored events by key."""
        if not self.topics.labels:
            return
        if self.task == "anomaly":
            raise _error_at(
                self,
                ("topics", "labels"),
                "labels topics are for classification and regression pipelines",
                self.topics.labels,
            )
        if not self.key:
            raise _error_at(
                self,
                ("key",),
                "a 'labels' topic pairs each label with its event by key: name the events' "
                "key field here",
                None,
            )
        for i, model in enumerate(self.models):
            if getattr(model, "learn", False) is True:
                raise _error_at(
                    self,
                    ("models", i, "learn"),
                    "with a 'labels' topic, events wait for their labels as hashed features "
                    "only: a pretrained model that reads the events' fields cannot learn then",
                    True,
                )
            if getattr(model, "reads", "matrix") == "records":
                raise _error_at(
                    self,
                    ("models", i, "reads"),
                    "with a 'labels' topic, events wait for their labels as hashed features "
                    "only: a River model reads them with 'reads: matrix'",
                    "records",
                )

    def _check_anomaly(self) -> None:
        if self.task != "anomaly":
            if self.label is not None:
                raise _error_at(
                    self,
                    ("label",),
                    "only a task: anomaly pipeline has a label field (for evaluation); "
                    "a model's target is 'target'",
                    self.label,
                )
            return
        if self.target is not None:
            raise _error_at(
                self,
                ("target",),
                "task: anomaly learns without a target; a field that says which events are "
                "anomalies, used for evaluation only, is 'label'",
                self.target,
            )
        if self.topics.train:
            raise _error_at(
                self,
                ("topics", "train"),
                "task: anomaly scores every event, then learns from it: name the topics "
                "under 'score'",
                self.topics.train,
            )
        if self.label is not None and self.label == self.key:
            raise _error_at(self, ("label",), "the label cannot be the key", self.label)

    def target_spec(self, extra: TargetSpec) -> PipelineSpec:
        """The spec of one of ``targets``: this one with its target, task, models and
        tables, learning from every event that has its target (every topic is a ``train``
        and a ``score`` topic for it), and no further targets."""
        topics = self.topics.all
        outputs = self.outputs.model_copy(
            update={
                "results_table": self.target_results_table(extra),
                "training_table": self.target_training_table(extra),
            }
        )
        return self.model_copy(
            update={
                "target": extra.target,
                "task": extra.task,
                "classes": extra.classes,
                "models": extra.models,
                "missing_label": "score",
                "label": None,
                "topics": TopicsSpec(train=topics, score=topics),
                "outputs": outputs,
                "targets": [],
                "promotion": None,  # the pipeline's rules name the pipeline's models
                "serving": None,
            }
        )

    def target_results_table(self, extra: TargetSpec) -> str:
        return extra.results_table or f"{self.name}_{extra.head}_results"

    def target_training_table(self, extra: TargetSpec) -> str:
        return extra.training_table or f"{self.name}_{extra.head}_training"

    def _check_lifecycle(self, names: list[str]) -> None:
        """Gates, promotion and serving name metrics of the task and models of the spec."""
        allowed = CLASSIFICATION_SCORES if self.task == "classification" else REGRESSION_SCORES
        for i, model in enumerate(self.models):
            if model.gate is None:
                continue
            if model.gate.metric not in allowed:
                raise _error_at(
                    self,
                    ("models", str(i), "gate", "metric"),
                    f"a {self.task} gate judges by one of {', '.join(allowed)}",
                    model.gate.metric,
                )
            if isinstance(model, OnnxModelSpec) or (
                isinstance(model, PretrainedSklearnSpec) and not model.learn
            ):
                raise _error_at(
                    self,
                    ("models", str(i), "gate"),
                    "a frozen pretrained model never learns: there is no update to gate",
                    "gate",
                )
        if self.promotion is not None and self.promotion.metric not in allowed:
            raise _error_at(
                self,
                ("promotion", "metric"),
                f"a {self.task} promotion rule judges by one of {', '.join(allowed)}",
                self.promotion.metric,
            )
        if self.serving is not None:
            for arm in self.serving.split:
                if arm not in names:
                    raise _error_at(
                        self,
                        ("serving", "split", arm),
                        f"no model {arm!r} in models (there are {', '.join(names)})",
                        arm,
                    )

    def _check_drift(self, names: list[str]) -> None:
        """``drift.models`` names models of the spec; ``on_drift: challenger`` has a
        promotion rule to compete under, and models that learn."""
        if self.drift is not None and self.drift.models is not None:
            for i, name in enumerate(self.drift.models):
                if name not in names:
                    raise _error_at(
                        self,
                        ("drift", "models", str(i)),
                        f"no model {name!r} in models (there are {', '.join(names)})",
                        name,
                    )
        standby = [m.name for m in self.models if m.standby]
        if self.on_drift != "challenger":
            if standby:
                raise _error_at(
                    self,
                    ("models", str(names.index(standby[0])), "standby"),
                    "a standby model waits for a drift: it needs on_drift: challenger",
                    True,
                )
            return
        if self.task == "anomaly":
            raise _error_at(
                self,
                ("on_drift",),
                "task: anomaly has no champion to challenge: use on_drift: log",
                self.on_drift,
            )
        if self.topics.labels:
            raise _error_at(
                self,
                ("on_drift",),
                "a challenger started mid-stream has served nothing a late label can be "
                "joined to: with a labels topic, use on_drift: log",
                self.on_drift,
            )
        if self.promotion is None:
            raise _error_at(
                self,
                ("on_drift",),
                "a challenger competes under the promotion rule: add 'promotion:' (an empty "
                "mapping takes its defaults)",
                self.on_drift,
            )
        if not standby:
            raise _error_at(
                self, ("on_drift",), "no watched model learns: nothing to challenge", "challenger"
            )

    @property
    def source_given(self) -> bool:
        """Whether the spec names its source (else Kafka, or an in-process broker)."""
        return self.source is not None

    @property
    def source_or_kafka(self) -> KafkaSourceSpec | MemorySourceSpec | FileSourceSpec:
        """The spec's source, else Apache Kafka with its defaults."""
        return self.source if self.source is not None else KafkaSourceSpec()


def _error_at(
    model: BaseModel, loc: tuple[str | int, ...], message: str, value: Any
) -> ValidationError:
    """A validation error at ``loc`` (the spec's key path), from a model validator."""
    return ValidationError.from_exception_data(
        type(model).__name__,
        [
            InitErrorDetails(
                type=PydanticCustomError("spec", message.replace("{", "{{").replace("}", "}}")),
                loc=loc,
                input=value,
            )
        ],
    )

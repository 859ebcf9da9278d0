"""Check a pipeline before it runs, and say what it will do (``streamfit check``).

``preflight`` checks what can be checked without events (the spec itself, table names
included, was checked as it loaded): the models are built (an unknown class, a bad
parameter), the files of pretrained models where a model
names one, the source (a file exists; a broker answers, and which of the topics exist), and
the database (it answers; a SQLite file's folder exists). ``streamfit run`` runs it before it
joins a consumer group, so that a bad spec never stalls a healthy group. Each problem raises
``SpecError`` with the path of the key to change.

>>> from streamfit.spec import validate_spec
>>> spec = validate_spec({"name": "sms", "source": {"kind": "memory"},
...                       "topics": {"train": "sms"}, "target": "label",
...                       "models": [{"name": "m", "river": "tree.NoSuchTree"}],
...                       "outputs": {"database": "sqlite://"}})
>>> try:
...     preflight(spec)
... except SpecError as exc:
...     print(exc)
models.0: model 'm' (river: tree.NoSuchTree): river.tree has no 'NoSuchTree'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from streamfit.errors import SpecError, StreamfitError
from streamfit.models import build_model
from streamfit.models.factory import build_detector
from streamfit.spec.model import (
    FileSourceSpec,
    KafkaSourceSpec,
    MemorySourceSpec,
    PipelineSpec,
)
from streamfit.spec.settings import Settings
from streamfit.streams.local_kafka import BrokerAddress, find_bootstrap

__all__ = ["Plan", "preflight"]

_TIMEOUT = 10.0


@dataclass(slots=True)
class Plan:
    """What a checked pipeline will do, as lines for a person (``render``)."""

    name: str
    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, heading: str, text: str) -> None:
        self.lines.append((heading, text))

    def render(self) -> str:
        out = [f"pipeline {self.name}: ok"]
        for heading, text in self.lines:
            first, *rest = text.split("\n")
            out.append(f"  {heading:<9}{first}")
            out += [f"  {'':<9}{line}" for line in rest]
        return "\n".join(out)


def preflight(
    spec: PipelineSpec, settings: Settings | None = None, *, connect: bool = True
) -> Plan:
    """Check ``spec``; return what it will do. ``connect``: reach the broker and database."""
    settings = settings or Settings()
    plan = Plan(spec.name)
    # what needs no network first: a bad model fails in a moment, even with the broker down
    learns, features, models = _labels(spec), _features(spec), _models(spec)
    writes = _outputs(spec, settings, connect=False)
    plan.add("reads", _source(spec, settings, connect))
    plan.add("learns", learns)
    plan.add("features", features)
    plan.add("models", models)
    plan.add("writes", _outputs(spec, settings, connect) if connect else writes)
    checkpoint = spec.checkpoint
    plan.add(
        "delivery",
        f"{spec.processing.replace('_', '-')}; model state and offsets saved every "
        f"{checkpoint.interval_events:,} events or {checkpoint.interval_seconds:g} s",
    )
    return plan


# -- source ----------------------------------------------------------------------------------


def _source(spec: PipelineSpec, settings: Settings, connect: bool) -> str:
    source = spec.source_or_kafka
    topics = spec.topics
    if isinstance(source, FileSourceSpec):
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise SpecError(f"no such file: {path}", path="source.path")
        topic = source.topic or (topics.train or topics.score)[0]
        role = "train" if topic in topics.train else "score"
        rate = f" at {source.rate:g} events/s" if source.rate else ""
        return f"the file {path}{rate}, as {role} topic {topic!r}"
    if isinstance(source, MemorySourceSpec):
        return f"the in-process stream (no broker): topics {', '.join(topics.all)}"
    assert isinstance(source, KafkaSourceSpec)
    broker = find_bootstrap(source.bootstrap_servers, settings.kafka_bootstrap)
    note = "" if spec.source_given else "\n(the spec names no source: Apache Kafka is the default)"
    group = source.group_id or f"streamfit-{spec.name}"
    text = (
        f"Apache Kafka at {broker.describe()}{note}\n"
        f"consumer group {group}, from the {source.auto_offset_reset} offset when it has none"
    )
    if connect:
        existing = _kafka_topics(broker, source, spec.source_given)
        for role, names in (("train", topics.train), ("score", topics.score)):
            for name in names:
                state = (
                    f"{existing[name]} partition{'s' if existing[name] != 1 else ''}"
                    if name in existing
                    else "does not exist yet: read within seconds of its creation"
                )
                text += f"\n{role} topic {name}: {state}"
    return text


def _kafka_topics(broker: BrokerAddress, source: KafkaSourceSpec, given: bool) -> dict[str, int]:
    """The broker's topics and their partition counts; ``SpecError`` if it does not answer."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # the reason goes into the error; librdkafka's own log lines would only repeat it
    settings: dict[str, Any] = {"bootstrap.servers": broker.bootstrap, "log_level": 0}
    settings.update({k: v for k, v in source.config.items() if _client_setting(k)})
    try:
        metadata = AdminClient(settings).list_topics(timeout=_TIMEOUT)
    except KafkaException as exc:
        key = "source.bootstrap_servers"
        hint = (
            "is it running?"
            if given or broker.origin != "default"
            else "start one with `streamfit kafka start`, or name yours in "
            "source.bootstrap_servers or STREAMFIT_KAFKA_BOOTSTRAP"
        )
        raise SpecError(
            f"no Kafka broker answers at {broker.describe()} within {_TIMEOUT:g} s: {hint} "
            f"({exc.args[0].str() if exc.args else exc})",
            path=key,
        ) from None
    return {name: len(t.partitions) for name, t in metadata.topics.items()}


def _client_setting(key: str) -> bool:
    """Settings of the connection (security, timeouts) that an admin client takes too."""
    return key.startswith(("security.", "sasl.", "ssl.", "socket.", "client.", "broker."))


# -- labels, features, models ----------------------------------------------------------------


def _labels(spec: PipelineSpec) -> str:
    if not spec.target:
        return "nothing (no target): scores with the models as they are"
    text = f"{spec.task} of {spec.target!r}"
    if spec.task == "classification":
        if spec.classes is not None:
            listed = ", ".join(map(str, spec.classes))
            text += f"; classes {listed}: any other label is a dead letter"
        else:
            text += "; every label is a class (each new one is logged; 'classes:' fixes them)"
    train_only = [t for t in spec.topics.train if t not in spec.topics.score]
    if train_only:
        if spec.missing_label == "dead_letter":
            text += f"\nan event of {', '.join(train_only)} without {spec.target!r}: dead letter"
        else:
            text += f"\nan event of {', '.join(train_only)} without {spec.target!r}: scored"
    both = [t for t in spec.topics.train if t in spec.topics.score]
    if both:
        text += f"\nan event of {', '.join(both)} without {spec.target!r}: scored"
    return text


def _features(spec: PipelineSpec) -> str:
    features = spec.features
    used = "the fields " + ", ".join(features.include) if features.include else "every field"
    left_out = [name for name in (spec.target, spec.key) if name] + list(features.exclude)
    text = used + (f" but {', '.join(left_out)}" if left_out else "")
    if features.types:
        text += "; " + ", ".join(f"{k}: {v}" for k, v in features.types.items())
        text += ", the others' types inferred"
    else:
        text += "; types inferred from the first events"
    if spec.key:
        text += f"\nkey: {spec.key!r} (the predictions' key and the results' event_key)"
    return text


def _models(spec: PipelineSpec) -> str:
    n_features = 2**spec.features.hash_bits
    lines = []
    heads = [("", spec.task, spec.models)]
    heads += [(f"targets.{j}.", t.task, t.models) for j, t in enumerate(spec.targets)]
    for prefix, task, models in heads:
        for i, model_spec in enumerate(models):
            path = f"{prefix}models.{i}"
            _check_files(model_spec, path)
            model: Any = None
            try:
                if task == "anomaly":
                    build_detector(model_spec)
                else:
                    model = build_model(model_spec, task, n_features)
            except StreamfitError as exc:
                raise SpecError(str(exc), path=path) from None
            if model is not None:
                _check_inputs(spec, model, path)
            kind = _model_kind(model_spec)
            role = "serves (the champion)" if i == 0 else "runs alongside"
            if spec.serving is not None and not prefix:
                share = spec.serving.split.get(model_spec.name)
                role = f"serves {share:.0%} of the events (A/B)" if share else "runs alongside"
            of = f" of target {spec.targets[int(prefix.split('.')[1])].target!r}" if prefix else ""
            lines.append(
                f"{model_spec.name} ({kind}) {role}{of}{_lifecycle_note(model_spec, model)}"
            )
    if spec.promotion is not None:
        rule = spec.promotion
        lines.append(
            f"a challenger becomes the champion when its {rule.metric} over the last "
            f"{rule.window:,} events beats the champion's by {rule.margin:g} at "
            f"{rule.patience} points in a row (a point every {rule.every:,} events)"
        )
    return "\n".join(lines)


def _lifecycle_note(model_spec: Any, model: Any) -> str:
    notes = []
    inputs = getattr(model, "input_fields", None)
    if inputs is not None:
        frozen = "" if getattr(model, "learns", True) else ", frozen"
        notes.append(f"reads {', '.join(inputs)}{frozen}")
    gate = getattr(model_spec, "gate", None)
    if gate is not None:
        notes.append(
            f"gate: keeps an update when {gate.metric} on {gate.holdout:.0%} held out beats "
            f"{gate.ratio:g} x the mean of those kept"
        )
    return f"; {'; '.join(notes)}" if notes else ""


def _check_inputs(spec: PipelineSpec, model: Any, path: str) -> None:
    """A pretrained model's inputs must be fields the events to score can carry."""
    inputs = getattr(model, "input_fields", None)
    if not inputs:
        return
    if spec.target in inputs:
        raise SpecError(
            f"the model reads {spec.target!r}, the target: the events it scores do not have "
            "it (name its inputs under 'inputs')",
            path=f"{path}.inputs",
        )
    source = spec.source
    if isinstance(source, FileSourceSpec):
        fields = _file_fields(source.path)
        missing = [name for name in inputs if fields is not None and name not in fields]
        if missing:
            raise SpecError(
                f"the model reads {', '.join(missing)}, which {source.path} does not have "
                f"(its fields: {', '.join(sorted(fields or []))})",
                path=f"{path}.inputs",
            )


def _file_fields(path: str) -> set[str] | None:
    """The fields of a replayed file's first events (None if it cannot be read)."""
    import orjson

    from streamfit.streams.replay import ReadOptions, read_events

    try:
        table = read_events(Path(path).expanduser(), ReadOptions())
    except Exception:
        return None
    fields: set[str] = set()
    for event in table.events[:100]:
        try:
            value = orjson.loads(event)
        except orjson.JSONDecodeError:
            continue  # a row set aside: a dead letter when it plays
        if isinstance(value, dict):
            fields.update(value)
    return fields


def _model_kind(model_spec: Any) -> str:
    for kind in ("builtin", "river", "sklearn_file", "sklearn", "onnx"):
        value = getattr(model_spec, kind, None)
        if value is not None:
            return f"{kind}: {value}"
    return type(model_spec).__name__


def _check_files(model_spec: Any, path: str) -> None:
    """A pretrained model's file (any field named ``path`` or ``*_file``) must exist."""
    for key, value in model_spec:
        named_file = key in ("path", "onnx") or key.endswith(("_path", "file"))
        if named_file and isinstance(value, str) and not Path(value).expanduser().is_file():
            raise SpecError(f"no such file: {value}", path=f"{path}.{key}")


# -- outputs ---------------------------------------------------------------------------------


def _outputs(spec: PipelineSpec, settings: Settings, connect: bool) -> str:
    outputs = spec.outputs
    results = outputs.results_table_name(spec.name)
    training = outputs.training_table_name(spec.name)
    url = outputs.database or settings.database_url
    shown = _check_database(url, connect, given=outputs.database is not None)
    written = [f"results to {results}" if outputs.write_results else "no results rows"]
    written += [f"metrics to {training}", "rejects to dead_letters"]
    text = f"{', '.join(written)}, in {shown}"
    if outputs.predictions_topic:
        text += f"\npredictions to topic {outputs.predictions_topic}"
    if outputs.dead_letter_topic:
        text += f"\ndead letters to topic {outputs.dead_letter_topic}"
    return text


def _check_database(url: str, connect: bool, given: bool) -> str:
    key = "outputs.database"
    origin = "" if given else " (STREAMFIT_DATABASE_URL or the default)"
    try:
        parsed = sa.make_url(url)
        backend = parsed.get_backend_name()
    except sa.exc.ArgumentError as exc:
        raise SpecError(f"not a database URL{origin}: {url!r} ({exc})", path=key) from None
    shown = parsed.render_as_string(hide_password=True)
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise SpecError(
            f"{shown}{origin}: streamfit writes to SQLite, PostgreSQL and MariaDB/MySQL",
            path=key,
        )
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and "mode=memory" not in str(parsed):
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise SpecError(f"{shown}{origin}: no folder {folder} for the file", path=key)
        return shown
    if not connect:
        return shown
    try:
        engine = sa.create_engine(
            parsed, connect_args={"connect_timeout": int(_TIMEOUT)}, poolclass=sa.NullPool
        )
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SpecError(f"cannot connect to {shown}{origin}: {reason}", path=key) from None
    return shown

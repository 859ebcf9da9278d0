"""``streamfit demo sentiment``: a model that learns the sentiment of sentences as they come.

The bundled SST-2 movie-review phrases (``streamfit/data/sst2``) stream into one topic in an
order shuffled with a fixed seed, each with its ``label`` (1 positive, 0 negative): each is
scored as it arrives (a prediction and a results row), then learned from. Its text is read as
lowercased words and word pairs, weighted by TF-IDF learned from the stream itself
(``streamfit.features.text``). After them come the 2,693 whole sentences of SST-2's dev and
test files without their labels: those are only scored, and the demo compares the results
rows with the labels it kept back. The summary gives the accuracy and F1 over time (the
training table), on the held-out sentences, and SQL to try on the tables.
"""

from __future__ import annotations

import csv
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, f1_score

from streamfit.cli.progress import event_progress
from streamfit.runtime.build import build_worker, database_url
from streamfit.runtime.worker import Worker
from streamfit.spec.loader import load_spec_text
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker

__all__ = [
    "SentimentEvents",
    "render_sentiment_summary",
    "run_sentiment_demo",
    "sentiment_events",
    "sentiment_spec",
    "sst2_sentences",
]

DATA = "streamfit.data.sst2"
SEED = 7


def sentiment_spec_text() -> str:
    """The demo's pipeline spec, as shipped (YAML)."""
    return resources.files(DATA).joinpath("pipeline.yaml").read_text(encoding="utf-8")


def sentiment_spec(kafka: str | None = None, database: str | None = None) -> PipelineSpec:
    """The demo spec, pointed at a Kafka broker and a database when given."""
    data: dict[str, Any] = load_spec_text(sentiment_spec_text()).model_dump(exclude_none=True)
    if kafka:
        run = uuid.uuid4().hex[:8]
        data["source"] = {"kind": "kafka", "bootstrap_servers": kafka, "group_id": f"sf-demo-{run}"}
        data["topics"] = {"train": f"movie_reviews_{run}", "score": f"movie_reviews_{run}"}
        data["outputs"]["predictions_topic"] = f"sentiment_predictions_{run}"
        data["outputs"]["dead_letter_topic"] = f"sentiment_dead_letters_{run}"
    if database:
        data["outputs"]["database"] = database
    return PipelineSpec.model_validate(data)


def sst2_sentences(split: str) -> pd.DataFrame:
    """A bundled SST-2 file (``train``, ``dev`` or ``test``) as columns ``label``, ``sentence``.

    >>> frame = sst2_sentences("dev")
    >>> len(frame), list(frame.columns)
    (872, ['label', 'sentence'])
    """
    with resources.files(DATA).joinpath(f"sst2_{split}.tsv.gz").open("rb") as fh:
        frame = pd.read_csv(
            fh, sep="\t", quoting=csv.QUOTE_NONE, compression="gzip", keep_default_na=False
        )
    return frame.rename(columns={"content": "sentence"})[["label", "sentence"]]


@dataclass(frozen=True)
class SentimentEvents:
    """The demo stream: (key, JSON value) in order, and the held-out sentences' labels."""

    events: list[tuple[bytes, bytes]]
    held_out: dict[str, int]  # id of a sentence sent without its label -> that label
    learned: int  # how many of the events carry their label


def sentiment_events(limit: int | None = None) -> SentimentEvents:
    """The training phrases, shuffled (seed ``SEED``), then the dev and test sentences
    without their labels; ``limit``: only the first that many training phrases."""
    train = sst2_sentences("train").sample(frac=1.0, random_state=SEED)
    if limit is not None:
        train = train.head(limit)
    events: list[tuple[bytes, bytes]] = []
    for i, (label, sentence) in enumerate(zip(train["label"], train["sentence"], strict=True)):
        key = f"phrase-{i}"
        events.append(
            (key.encode(), orjson.dumps({"id": key, "sentence": sentence, "label": label}))
        )
    held_out: dict[str, int] = {}
    for split in ("dev", "test"):
        frame = sst2_sentences(split)
        for i, (label, sentence) in enumerate(zip(frame["label"], frame["sentence"], strict=True)):
            key = f"{split}-{i}"
            held_out[key] = int(label)
            events.append((key.encode(), orjson.dumps({"id": key, "sentence": sentence})))
    return SentimentEvents(events, held_out, len(train))


def _publish(spec: PipelineSpec, kafka: str | None, events: list[tuple[bytes, bytes]]) -> Any:
    topic = spec.topics.train[0]
    if not kafka:
        broker = MemoryBroker()
        broker.append(topic, [v for _, v in events], [k for k, _ in events])
        return broker
    from streamfit.streams.base import OutRecord
    from streamfit.streams.kafka import KafkaSink, create_topics

    create_topics(kafka, [topic], partitions=1)
    sink = KafkaSink(kafka, topic)
    for start in range(0, len(events), 5000):
        sink.write([OutRecord(k, v) for k, v in events[start : start + 5000]])
    sink.flush()
    sink.close()
    return None


def run_sentiment_demo(
    kafka: str | None = None,
    database: str | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run the demo; return its summary (what ``--json`` prints)."""
    spec = sentiment_spec(kafka=kafka, database=database)
    settings = Settings()
    stream = sentiment_events(limit)
    broker = _publish(spec, kafka, stream.events)
    with Store(database_url(spec, settings), spec.name) as store:
        store.delete_checkpoint()  # the demo replays its stream from the start every time
        _forget_earlier_runs(store, spec)
    worker = build_worker(spec, settings, broker=broker)
    total = len(stream.events)
    started = time.monotonic()
    try:
        with event_progress("movie reviews", total, enabled=progress) as bar:
            task = bar.task_ids[0]

            def on_batch(w: Worker, n: int) -> None:
                bar.update(task, completed=w.stats.events_in)

            worker.run(until=lambda w: w.stats.events_in >= total, on_batch=on_batch)
        return _summary(worker, stream, time.monotonic() - started)
    finally:
        worker.close()


def _tables(spec: PipelineSpec) -> dict[str, str]:
    return {
        "results": spec.outputs.results_table_name(spec.name),
        "training": spec.outputs.training_table_name(spec.name),
        "field_stats": spec.stats.table_name(spec.name),
        "dead_letters": "dead_letters",
    }


def _forget_earlier_runs(store: Store, spec: PipelineSpec) -> None:
    """Drop what an earlier run of the demo wrote: its tables then hold this run only."""
    tables = _tables(spec)
    names = [tables[k] for k in ("results", "training", "field_stats")]
    names.append(spec.stats.schema_changes_table_name(spec.name))
    fields = sa.Table("result_fields", sa.MetaData(), autoload_with=store.engine)
    letters = sa.Table("dead_letters", sa.MetaData(), autoload_with=store.engine)
    with store.engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(sa.delete(fields).where(fields.c.table_name.in_(names)))
        conn.execute(sa.delete(letters).where(letters.c.pipeline == spec.name))


_FIGURES = ("accuracy", "f1", "roc_auc", "log_loss", "precision", "recall")


def _summary(worker: Worker, stream: SentimentEvents, elapsed: float) -> dict[str, Any]:
    spec = worker.spec
    store = worker.store
    tables = _tables(spec)
    held_out = _held_out_metrics(store, tables["results"], stream.held_out)
    models = []
    for slot in worker.slots:
        snapshot = worker.evaluation.evaluators[slot.name].snapshot()
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "events_learned": slot.events_learned,
                "metrics": {f: _round(snapshot.get(f)) for f in _FIGURES},
                "window_metrics": {f: _round(snapshot.get(f"window_{f}")) for f in _FIGURES},
                "held_out": held_out if slot is worker.slots[0] else {},
            }
        )
    return {
        "pipeline": spec.name,
        "events_learned": worker.stats.events_trained,
        "events_scored": worker.stats.events_scored,
        "held_out_sentences": len(stream.held_out),
        "dead_letters": worker.stats.dead_letters,
        "elapsed_seconds": round(elapsed, 3),
        "events_per_second": round(worker.stats.events_in / max(elapsed, 1e-9), 1),
        "database": store.display_url,
        "tables": tables,
        "result_rows": store.count(tables["results"]),
        "training_rows": store.count(tables["training"]),
        "over_time": _over_time(store, tables["training"], worker.slots[0].name),
        "models": models,
        "queries": sentiment_queries(tables),
    }


def _over_time(store: Store, training: str, model: str) -> list[dict[str, Any]]:
    """The champion's accuracy and F1 at each evaluation point: all so far and the window."""
    query = sa.text(
        f"SELECT events_seen, accuracy, f1, window_accuracy, window_f1 FROM {training} "
        "WHERE model = :model ORDER BY events_seen"
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query, {"model": model}).all()
    return [
        {
            "events_seen": int(r.events_seen),
            "accuracy": _round(r.accuracy),
            "f1": _round(r.f1),
            "window_accuracy": _round(r.window_accuracy),
            "window_f1": _round(r.window_f1),
        }
        for r in rows
    ]


def _held_out_metrics(store: Store, results: str, truth: dict[str, int]) -> dict[str, Any]:
    """How well the sentences sent without labels were classified (their results rows)."""
    table = sa.Table(results, sa.MetaData(), autoload_with=store.engine)
    query = sa.select(table.c.event_key, table.c.prediction).where(table.c.label.is_(None))
    with store.engine.connect() as conn:
        rows = [(str(k), p) for k, p in conn.execute(query) if str(k) in truth]
    if not rows:
        return {}
    y = np.array([truth[k] for k, _ in rows])
    predicted = np.array([1 if str(p) == "1" else 0 for _, p in rows])
    return {
        "sentences": len(rows),
        "accuracy": _round(float(accuracy_score(y, predicted))),
        "f1": _round(float(f1_score(y, predicted, zero_division=0))),
        "macro_f1": _round(float(f1_score(y, predicted, average="macro", zero_division=0))),
    }


def sentiment_queries(tables: dict[str, str]) -> list[str]:
    """Questions to ask the tables next (portable SQL)."""
    results, training = tables["results"], tables["training"]
    return [
        f"SELECT events_seen, accuracy, f1, window_accuracy, window_f1 FROM {training} "
        f"ORDER BY events_seen;",
        f"SELECT sentence, prediction, ROUND(probability, 3) AS probability FROM {results} "
        f"WHERE label IS NULL ORDER BY probability DESC LIMIT 5;",
        f"SELECT sentence, label, prediction, ROUND(probability, 3) AS probability FROM {results} "
        f"WHERE label IS NOT NULL AND label <> prediction ORDER BY probability DESC LIMIT 5;",
    ]


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def render_sentiment_summary(summary: dict[str, Any]) -> str:
    """The summary as text for a person."""
    lines = [
        "",
        f"streamfit demo: {summary['pipeline']} (movie-review sentences, SST-2)",
        f"  learned {summary['events_learned']:,} labeled phrases as they came (each scored "
        f"first), scored {summary['held_out_sentences']:,} whole sentences sent without "
        f"labels, in {summary['elapsed_seconds']:.1f} s ({summary['events_per_second']:,.0f} "
        f"events/s); dead letters: {summary['dead_letters']}",
        "",
        f"  {'learned':>9} {'accuracy':>9} {'F1':>7}   last 2,000: {'accuracy':>9} {'F1':>7}",
    ]
    for point in summary["over_time"]:
        lines.append(
            f"  {point['events_seen']:>9,} {_fmt(point['accuracy']):>9} {_fmt(point['f1']):>7}"
            f"               {_fmt(point['window_accuracy']):>9} {_fmt(point['window_f1']):>7}"
        )
    for model in summary["models"]:
        m, h = model["metrics"], model["held_out"]
        lines += [
            "",
            f"  {model['name']}: accuracy {_fmt(m['accuracy'])}, F1 {_fmt(m['f1'])}, ROC AUC "
            f"{_fmt(m['roc_auc'])} (prequential, every labeled phrase predicted before it "
            "was learned)",
        ]
        if h:
            lines.append(
                f"  held-out whole sentences ({h['sentences']:,}): accuracy "
                f"{_fmt(h['accuracy'])}, F1 {_fmt(h['f1'])}"
            )
    tables = summary["tables"]
    lines += [
        "",
        f"  database: {summary['database']}",
        f"  tables:   {tables['results']} ({summary['result_rows']:,} rows: each sentence, "
        "its prediction, its label when it had one), ",
        f"            {tables['training']} ({summary['training_rows']:,} rows: quality over "
        f"time), {tables['field_stats']}, {tables['dead_letters']}",
        "",
        "  Try next:",
    ]
    lines += [f"    {q}" for q in summary["queries"]]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

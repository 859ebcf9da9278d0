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
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, f1_score

from streamfit.cli.demos_common import (
    bundled_spec,
    figures,
    formatted,
    publish,
    rounded,
    run_demo_worker,
    start_afresh,
    throughput,
    try_next,
)
from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store

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


def sentiment_spec(kafka: str | None = None, database: str | None = None) -> PipelineSpec:
    """The demo spec, pointed at a Kafka broker and a database when given."""
    return bundled_spec(
        DATA,
        kafka,
        database,
        topics={"train": "movie_reviews", "score": "movie_reviews"},
        predictions_topic="sentiment_predictions",
        dead_letter_topic="sentiment_dead_letters",
    )


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
    topic = spec.topics.train[0]
    broker = publish(kafka, [topic], [(topic, key, value) for key, value in stream.events])
    start_afresh(spec, settings, _written_tables(spec))
    worker = build_worker(spec, settings, broker=broker)
    return run_demo_worker(
        worker,
        "movie reviews",
        len(stream.events),
        lambda w, elapsed: _summary(w, stream, elapsed),
        progress=progress,
    )


def _tables(spec: PipelineSpec) -> dict[str, str]:
    return {
        "results": spec.outputs.results_table_name(spec.name),
        "training": spec.outputs.training_table_name(spec.name),
        "field_stats": spec.stats.table_name(spec.name),
        "dead_letters": "dead_letters",
    }


def _written_tables(spec: PipelineSpec) -> list[str]:
    """The tables the demo writes, dropped at the start of each run: they then hold that run
    only."""
    tables = _tables(spec)
    names = [tables[k] for k in ("results", "training", "field_stats")]
    names.append(spec.stats.schema_changes_table_name(spec.name))
    return names


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
                "metrics": figures(snapshot, _FIGURES),
                "window_metrics": figures(snapshot, _FIGURES, "window_"),
                "held_out": held_out if slot is worker.slots[0] else {},
            }
        )
    return {
        "pipeline": spec.name,
        "events_learned": worker.stats.events_trained,
        "events_scored": worker.stats.events_scored,
        "held_out_sentences": len(stream.held_out),
        **throughput(worker, elapsed),
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
            "accuracy": rounded(r.accuracy),
            "f1": rounded(r.f1),
            "window_accuracy": rounded(r.window_accuracy),
            "window_f1": rounded(r.window_f1),
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
        "accuracy": rounded(float(accuracy_score(y, predicted))),
        "f1": rounded(float(f1_score(y, predicted, zero_division=0))),
        "macro_f1": rounded(float(f1_score(y, predicted, average="macro", zero_division=0))),
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
            f"  {point['events_seen']:>9,} {formatted(point['accuracy']):>9} "
            f"{formatted(point['f1']):>7}               "
            f"{formatted(point['window_accuracy']):>9} {formatted(point['window_f1']):>7}"
        )
    for model in summary["models"]:
        m, h = model["metrics"], model["held_out"]
        lines += [
            "",
            f"  {model['name']}: accuracy {formatted(m['accuracy'])}, F1 {formatted(m['f1'])}, "
            "ROC AUC "
            f"{formatted(m['roc_auc'])} (prequential, every labeled phrase predicted before it "
            "was learned)",
        ]
        if h:
            lines.append(
                f"  held-out whole sentences ({h['sentences']:,}): accuracy "
                f"{formatted(h['accuracy'])}, F1 {formatted(h['f1'])}"
            )
    tables = summary["tables"]
    lines += [
        "",
        f"  database: {summary['database']}",
        f"  tables:   {tables['results']} ({summary['result_rows']:,} rows: each sentence, "
        "its prediction, its label when it had one), ",
        f"            {tables['training']} ({summary['training_rows']:,} rows: quality over "
        f"time), {tables['field_stats']}, {tables['dead_letters']}",
    ]
    lines += try_next(summary["queries"])
    return "\n".join(lines) + "\n"

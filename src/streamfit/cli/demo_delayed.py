"""``streamfit demo delayed``: the speed-dating stream with each outcome arriving much later.

The bundled dates (``streamfit/data/speed_dating``) come in the order of the evenings, as in
``streamfit demo``, but without their outcome: each date's ``match`` comes on a ``labels``
topic a random 1 to 5,000 dates later (uniform, fixed seed), so the outcomes arrive out of
order. The worker scores each date as it comes, keeps its hashed features and served
prediction under its key, and learns when the outcome arrives (``streamfit.delayed``).

The stream is fed to the in-process broker as it would come live: a few hundred arrivals at a
time, each chunk once the worker has read the last, so every date is served by the model of
its moment. The same dates then run with their outcome in the event (labels at once), and the
summary compares the two:

- **label-time** figures (the delayed run's ``<name>_labels`` table): each date predicted by
  the model just before it learned the date's outcome, as the immediate run predicts each date
  just before learning it. They tell whether learning from late, shuffled labels costs model
  quality; the target is a final ROC AUC within 0.01 of the immediate run's.
- **served** figures (the delayed run's training table): the predictions made when each date
  came, by a model that had not yet seen the outcomes of the last few thousand dates
  (often the same people's earlier dates of that evening). They are what production would
  have got, and they are lower for that reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from streamfit.cli.demo import demo_spec_text, speed_dating_frame
from streamfit.cli.demos_common import (
    figures,
    formatted,
    rounded,
    run_until,
    start_afresh,
    try_next,
)
from streamfit.cli.progress import event_progress
from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.loader import load_spec_text
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker
from streamfit.streams.replay import frame_to_events

__all__ = [
    "DelayedStream",
    "delayed_specs",
    "delayed_stream",
    "render_delayed_summary",
    "run_delayed_demo",
]

MAX_DELAY = 5_000
SEED = 11
CHUNK = 250  # arrivals handed to the broker at a time, once the worker has read the last
_FIGURES = ("roc_auc", "accuracy", "f1", "log_loss")


def delayed_specs(database: str | None = None) -> tuple[PipelineSpec, PipelineSpec]:
    """The two pipelines: outcomes in the events (immediate), outcomes on a labels topic."""
    base: dict[str, Any] = load_spec_text(demo_spec_text()).model_dump(exclude_none=True)
    base["features"]["exclude"] = [*base["features"]["exclude"], "date_id"]
    base["key"] = "date_id"
    base["models"] = [{"name": "logistic", "builtin": "logistic_regression"}]
    base["batch"] = {"max_records": 1000, "timeout": 0.2}
    base["outputs"] = {"database": database} if database else {}
    immediate = {**base, "name": "dates_immediate", "topics": {"train": "dates"}}
    delayed = {
        **base,
        "name": "dates_delayed",
        "topics": {"score": "dates", "labels": "date_outcomes"},
        # an outcome comes at most 5,000 dates after its date: ample
        "labels": {"ttl": {"events": 4 * MAX_DELAY}},
    }
    return validate_spec(immediate), validate_spec(delayed)


@dataclass(frozen=True)
class DelayedStream:
    """The dates with their outcomes (immediate run), and the arrivals of the delayed run:
    (topic, key, value), dates and outcomes interleaved as they come."""

    labeled: list[tuple[bytes, bytes]]
    arrivals: list[tuple[str, bytes, bytes]]
    mean_delay: float  # dates between a date and its outcome


def delayed_stream(limit: int | None = None) -> DelayedStream:
    """The demo's streams; ``limit``: the first that many dates only.

    >>> stream = delayed_stream(limit=50)
    >>> len(stream.labeled), len(stream.arrivals)
    (50, 100)
    >>> sorted({topic for topic, _, _ in stream.arrivals})
    ['date_outcomes', 'dates']
    """
    frame = speed_dating_frame()
    if limit is not None:
        frame = frame.head(limit)
    frame = frame.reset_index(drop=True)
    ids = [
        f"{i}-{p}"
        for i, p in zip(frame["iid"], frame["pid"].fillna(-1).astype("int64"), strict=True)
    ]
    frame.insert(0, "date_id", ids)
    keys = [i.encode() for i in ids]
    labeled = list(zip(keys, frame_to_events(frame), strict=True))
    unlabeled = frame_to_events(frame.drop(columns=["match"]))
    outcomes = frame["match"].astype("int64").tolist()
    n = len(frame)
    delays = np.random.default_rng(SEED).integers(1, MAX_DELAY + 1, n)
    # the date of index i comes at time i, its outcome at time i + delay (after the dates of
    # that time)
    order = sorted(
        [(i, 0, i) for i in range(n)] + [(i + int(d), 1, i) for i, d in enumerate(delays)]
    )
    arrivals: list[tuple[str, bytes, bytes]] = []
    for _, is_outcome, i in order:
        if is_outcome:
            value = orjson.dumps({"date_id": ids[i], "match": outcomes[i]})
            arrivals.append(("date_outcomes", keys[i], value))
        else:
            arrivals.append(("dates", keys[i], unlabeled[i]))
    return DelayedStream(labeled, arrivals, float(delays.mean()))


def run_delayed_demo(
    database: str | None = None, progress: bool = True, limit: int | None = None
) -> dict[str, Any]:
    """Run both pipelines; return the summary (what ``--json`` prints)."""
    immediate_spec, delayed_spec = delayed_specs(database)
    settings = Settings()
    stream = delayed_stream(limit)
    for spec in (immediate_spec, delayed_spec):
        start_afresh(spec, settings, _written_tables(spec))
    total = len(stream.labeled) + len(stream.arrivals)
    started = time.monotonic()
    with event_progress("dates, outcomes", total, enabled=progress) as bar:
        broker = MemoryBroker()
        broker.append("dates", [v for _, v in stream.labeled], [k for k, _ in stream.labeled])
        immediate = build_worker(immediate_spec, settings, broker=broker)
        try:
            run_until(immediate, len(stream.labeled), bar)
            immediate_figures = _figures(immediate)
        finally:
            immediate.close()
        delayed_started = time.monotonic()
        broker = MemoryBroker()
        for topic in ("dates", "date_outcomes"):
            broker.create_topic(topic)
        fed = _feed(broker, stream.arrivals, 0)
        delayed = build_worker(delayed_spec, settings, broker=broker)
        try:

            def feed(w: Worker, n: int) -> None:
                nonlocal fed
                if w.stats.events_in >= fed:  # read all that came: the next arrivals come
                    fed = _feed(broker, stream.arrivals, fed)

            run_until(delayed, len(stream.arrivals), bar, offset=len(stream.labeled), then=feed)
            return _summary(
                immediate_spec,
                immediate_figures,
                delayed,
                stream,
                time.monotonic() - started,
                time.monotonic() - delayed_started,
            )
        finally:
            delayed.close()


def _feed(broker: MemoryBroker, arrivals: list[tuple[str, bytes, bytes]], start: int) -> int:
    """Hand the next ``CHUNK`` arrivals to the broker; return how many it has in all."""
    for topic, key, value in arrivals[start : start + CHUNK]:
        broker.append(topic, [value], [key])
    return min(start + CHUNK, len(arrivals))


def _tables(spec: PipelineSpec) -> dict[str, str]:
    tables = {
        "results": spec.outputs.results_table_name(spec.name),
        "training": spec.outputs.training_table_name(spec.name),
    }
    if spec.topics.labels:
        tables["labels"] = spec.labels.table_name(spec.name)
    return tables


def _written_tables(spec: PipelineSpec) -> list[str]:
    return [
        *_tables(spec).values(),
        spec.stats.table_name(spec.name),
        spec.stats.schema_changes_table_name(spec.name),
    ]


def _figures(worker: Worker) -> dict[str, dict[str, float | None]]:
    """Each model's cumulative prequential figures (the training table's last row)."""
    out = {}
    for slot in worker.slots:
        snapshot = worker.evaluation.evaluators[slot.name].snapshot()
        out[slot.name] = figures(snapshot, _FIGURES)
    return out


def _label_time(store: Store, table: str) -> dict[str, dict[str, Any]]:
    """Each model's last row of the labels table: the join's counts and label-time figures."""
    query = sa.text(
        "SELECT model, events_seen, labels_matched, labels_duplicate, labels_unmatched, "
        "events_expired, events_waiting, labels_waiting, mean_delay_events, "
        "learned_roc_auc, learned_accuracy, learned_f1, learned_log_loss "
        f"FROM {table} t WHERE events_seen = (SELECT MAX(events_seen) FROM {table} "
        "WHERE model = t.model)"
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {r.model: dict(r._mapping) for r in rows}


def _summary(
    immediate_spec: PipelineSpec,
    immediate: dict[str, dict[str, float | None]],
    worker: Worker,
    stream: DelayedStream,
    elapsed: float,
    delayed_elapsed: float,
) -> dict[str, Any]:
    spec = worker.spec
    tables = _tables(spec)
    served = _figures(worker)
    label_time = _label_time(worker.store, tables["labels"])
    models = []
    for slot in worker.slots:
        row = label_time.get(slot.name, {})
        metrics = figures(row, _FIGURES, "learned_")
        auc, reference = metrics["roc_auc"], immediate[slot.name]["roc_auc"]
        difference = None if auc is None or reference is None else round(auc - reference, 4)
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "metrics": metrics,
                "served": served[slot.name],
                "immediate": immediate[slot.name],
                "roc_auc_minus_immediate": difference,
                "within_0_01_of_immediate": difference is not None and abs(difference) <= 0.01,
            }
        )
    first = label_time.get(worker.slots[0].name, {})
    join = {
        k: first.get(k)
        for k in (
            "labels_matched",
            "labels_duplicate",
            "labels_unmatched",
            "events_expired",
            "events_waiting",
            "labels_waiting",
        )
    }
    return {
        "pipeline": spec.name,
        "immediate_pipeline": immediate_spec.name,
        "dates": len(stream.labeled),
        "max_delay_dates": MAX_DELAY,
        "mean_delay_dates": round(stream.mean_delay, 1),
        "join": {**join, "mean_delay_events": rounded(first.get("mean_delay_events"))},
        "dead_letters": worker.stats.dead_letters,
        "elapsed_seconds": round(elapsed, 3),
        "events_per_second": round(worker.stats.events_in / max(delayed_elapsed, 1e-9), 1),
        "database": worker.store.display_url,
        "tables": {
            **tables,
            "immediate_training": immediate_spec.outputs.training_table_name(immediate_spec.name),
            "dead_letters": "dead_letters",
        },
        "models": models,
        "queries": delayed_queries(tables),
    }


def delayed_queries(tables: dict[str, str]) -> list[str]:
    """Questions to ask the tables next (portable SQL)."""
    return [
        f"SELECT events_seen, labels_matched, events_waiting, labels_waiting, "
        f"ROUND(mean_delay_events) AS delay, learned_roc_auc FROM {tables['labels']} "
        "ORDER BY events_seen;",
        f"SELECT event_key, prediction, ROUND(probability, 3) AS probability, label "
        f"FROM {tables['results']} WHERE label IS NOT NULL LIMIT 5;",
        f"SELECT events_seen, roc_auc, window_roc_auc FROM {tables['training']} "
        "ORDER BY events_seen;",
    ]


def render_delayed_summary(summary: dict[str, Any]) -> str:
    """The summary as text for a person."""
    join = summary["join"]
    lines = [
        "",
        f"streamfit demo: delayed labels ({summary['dates']:,} speed dates; each outcome on a "
        f"labels topic 1 to {summary['max_delay_dates']:,} dates later, "
        f"{summary['mean_delay_dates']:,.0f} on average, out of order)",
        f"  both runs in {summary['elapsed_seconds']:.1f} s; outcomes matched "
        f"{join['labels_matched']:,}, duplicate {join['labels_duplicate']}, without a date "
        f"{join['labels_unmatched']}, dates never labeled {join['events_expired']}; dead "
        f"letters: {summary['dead_letters']}",
        "",
        f"  {'model':<10} {'ROC AUC':>8} {'acc':>7} {'F1':>7}",
    ]
    for model in summary["models"]:
        for what, shown in (
            ("immediate labels (prequential)", model["immediate"]),
            ("delayed, at label time", model["metrics"]),
            ("delayed, as served", model["served"]),
        ):
            lines.append(
                f"  {model['name']:<10} {formatted(shown['roc_auc']):>8} "
                f"{formatted(shown['accuracy']):>7} {formatted(shown['f1']):>7}   {what}"
            )
        difference = model["roc_auc_minus_immediate"]
        if difference is not None:
            verdict = "within" if model["within_0_01_of_immediate"] else "NOT within"
            lines.append(
                f"  label-time ROC AUC - immediate: {difference:+.4f} ({verdict} 0.01); the "
                "served predictions came before the outcomes of the last thousands of dates"
            )
    tables = summary["tables"]
    lines += [
        "",
        f"  database: {summary['database']}",
        f"  tables:   {tables['results']} (a row per date, its label filled when it came), "
        f"{tables['labels']} (the join), {tables['training']} (served), "
        f"{tables['immediate_training']}",
    ]
    lines += try_next(summary["queries"])
    return "\n".join(lines) + "\n"

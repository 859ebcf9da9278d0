"""``streamfit demo shuttle``: anomaly detection on the space shuttle's sensor stream.

The bundled Statlog Shuttle readings (nine sensors, and ``outlier``: 1 for a reading of a
rare state) are replayed in their order. Every reading is scored by streamfit's histogram
detector and by River's Half-Space Trees side by side, then learned from; ``outlier`` is used
for evaluation only. At the end the summary gives each detector's prequential ROC AUC and
average precision, the alarms raised, where the tables are, and SQL to try on them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson
import pandas as pd
import sqlalchemy as sa

from streamfit.cli.demos_common import (
    bundled_spec,
    formatted,
    publish,
    rounded,
    run_demo_worker,
    split_snapshot,
    start_afresh,
    throughput,
    try_next,
)
from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import Worker
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store

__all__ = ["render_shuttle_summary", "run_shuttle_demo", "shuttle_events", "shuttle_spec"]

DATA = "streamfit.data.shuttle"


def shuttle_spec(kafka: str | None = None, database: str | None = None) -> PipelineSpec:
    """The demo spec, pointed at a Kafka broker and a database when given."""
    return bundled_spec(
        DATA,
        kafka,
        database,
        topics={"score": "shuttle_sensors"},
        predictions_topic="shuttle_alarms",
        dead_letter_topic="shuttle_dead_letters",
    )


def shuttle_events() -> list[tuple[bytes, bytes]]:
    """The readings as (key, JSON value), in the file's order; the key is the row number."""
    with resources.files(DATA).joinpath("shuttle_anomaly.csv.gz").open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip")
    return [
        (str(i).encode(), orjson.dumps(row))
        for i, row in enumerate(frame.to_dict(orient="records"))
    ]


def run_shuttle_demo(
    kafka: str | None = None,
    database: str | None = None,
    progress: bool = True,
    serve: str | None = None,
    stop: threading.Event | None = None,
    show: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo; return its summary (what ``--json`` prints), after ``show(summary)``.

    ``serve`` (``[HOST:]PORT``): serve the dashboard and the API from the worker while the
    demo runs, and after its stream ends until ``stop`` is set (its address is printed).
    """
    spec = shuttle_spec(kafka=kafka, database=database)
    settings = Settings()
    events = shuttle_events()
    topic = spec.topics.score[0]
    broker = publish(kafka, [topic], [(topic, key, value) for key, value in events])
    start_afresh(spec, settings, _written_tables(spec))
    worker = build_worker(spec, settings, broker=broker)
    return run_demo_worker(
        worker,
        "shuttle sensors",
        len(events),
        _summary,
        progress=progress,
        serve=serve,
        broker=broker,
        stop=stop,
        show=show,
    )


def _tables(spec: PipelineSpec) -> dict[str, str]:
    return {
        "results": spec.outputs.results_table_name(spec.name),
        "training": spec.outputs.training_table_name(spec.name),
        "field_stats": spec.stats.table_name(spec.name),
        "schema_changes": spec.stats.schema_changes_table_name(spec.name),
        "dead_letters": "dead_letters",
    }


def _written_tables(spec: PipelineSpec) -> list[str]:
    """The tables the demo writes, dropped at the start of each run: they then hold that run
    only."""
    tables = _tables(spec)
    return [tables[k] for k in ("results", "training", "field_stats", "schema_changes")]


def _summary(worker: Worker, elapsed: float) -> dict[str, Any]:
    spec = worker.spec
    store = worker.store
    tables = _tables(spec)
    head: Any = worker.head
    models = []
    for slot in worker.slots:
        snapshot = head.assessment.evaluators[slot.name].snapshot()
        metrics, window_metrics = split_snapshot(snapshot)
        metrics["alarms"] = _alarms(store, tables["results"], slot.name, worker.slots[0].name)
        quantiles = head.scores[slot.name].quantiles() or []
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "events_scored": slot.events_learned,
                "metrics": metrics,
                "window_metrics": window_metrics,
                "score_quantiles": dict(
                    zip(("p50", "p90", "p99", "p99_9"), map(rounded, quantiles), strict=False)
                ),
            }
        )
    fields = [row["field"] for row in store.read_field_stats(tables["field_stats"])]
    return {
        "pipeline": spec.name,
        "events_scored": worker.stats.events_scored,
        **throughput(worker, elapsed),
        "tables": tables,
        "result_rows": store.count(tables["results"]),
        "training_rows": store.count(tables["training"]),
        "field_stats_fields": fields,
        "models": models,
        "queries": shuttle_queries(tables),
    }


def _alarms(store: Store, results: str, model: str, champion: str) -> int:
    """How many events ``model`` raised an alarm for, read back from the results table."""
    column = "is_anomaly" if model == champion else f"is_anomaly__{model}"
    table = sa.Table(results, sa.MetaData(), autoload_with=store.engine)
    query = sa.select(sa.func.count()).where(table.c[column].is_(True))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def shuttle_queries(tables: dict[str, str]) -> list[str]:
    """Questions to ask the tables next (portable SQL)."""
    results, stats, training = tables["results"], tables["field_stats"], tables["training"]
    return [
        f"SELECT field, count, mean, p01, p50, p99, distinct_count, top_values FROM {stats} "
        f"WHERE field = 'A5' ORDER BY events_seen DESC LIMIT 1;",
        f"SELECT source_offset, a1, a5, a9, anomaly_score, score_quantile, label FROM {results} "
        f"ORDER BY anomaly_score DESC LIMIT 10;",
        f"SELECT model, events_seen, roc_auc, average_precision, precision, recall, score_p99 "
        f"FROM {training} ORDER BY events_seen DESC, model LIMIT 2;",
    ]


def render_shuttle_summary(summary: dict[str, Any]) -> str:
    """The summary as text for a person."""
    lines = [
        "",
        f"streamfit demo: {summary['pipeline']} (anomaly detection)",
        f"  scored {summary['events_scored']:,} sensor readings, each then learned from, "
        f"in {summary['elapsed_seconds']:.1f} s ({summary['events_per_second']:,.0f} events/s); "
        f"dead letters: {summary['dead_letters']}",
        "",
        f"  {'detector':<18} {'ROC AUC':>8} {'avg prec':>9} {'alarms':>7} {'precision':>10} "
        f"{'recall':>7}   (prequential, against `outlier`)",
    ]
    for model in summary["models"]:
        m = model["metrics"]
        lines.append(
            f"  {model['name']:<18} {formatted(m.get('roc_auc')):>8} "
            f"{formatted(m.get('average_precision')):>9} {m.get('alarms', 0):>7,} "
            f"{formatted(m.get('precision')):>10} {formatted(m.get('recall')):>7}"
        )
    tables = summary["tables"]
    lines += [
        "",
        f"  database: {summary['database']}",
        f"  tables:   {tables['results']} ({summary['result_rows']:,} rows: anomaly_score, "
        "score_quantile, is_anomaly per reading),",
        f"            {tables['training']} ({summary['training_rows']:,} rows: the detectors' "
        "quality and score quantiles over time),",
        f"            {tables['field_stats']} (statistics of "
        f"{len(summary['field_stats_fields'])} fields), {tables['schema_changes']}, "
        f"{tables['dead_letters']}",
    ]
    lines += try_next(
        summary["queries"], "  Try next (or: streamfit stats with the demo's spec and --db):"
    )
    return "\n".join(lines) + "\n"

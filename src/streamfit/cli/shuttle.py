"""``streamfit demo shuttle``: anomaly detection on the space shuttle's sensor stream.

The bundled Statlog Shuttle readings (nine sensors, and ``outlier``: 1 for a reading of a
rare state) are replayed in their order. Every reading is scored by streamfit's histogram
detector and by River's Half-Space Trees side by side, then learned from; ``outlier`` is used
for evaluation only. At the end the summary gives each detector's prequential ROC AUC and
average precision, the alarms raised, where the tables are, and SQL to try on them.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from importlib import resources
from typing import Any

import orjson
import pandas as pd
import sqlalchemy as sa

from streamfit.cli.progress import event_progress
from streamfit.runtime.build import build_worker, database_url
from streamfit.runtime.worker import Worker
from streamfit.spec.loader import load_spec_text
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker

__all__ = ["render_shuttle_summary", "run_shuttle_demo", "shuttle_events", "shuttle_spec"]

DATA = "streamfit.data.shuttle"


def shuttle_spec_text() -> str:
    """The demo's pipeline spec, as shipped (YAML)."""
    return resources.files(DATA).joinpath("pipeline.yaml").read_text(encoding="utf-8")


def shuttle_spec(kafka: str | None = None, database: str | None = None) -> PipelineSpec:
    """The demo spec, pointed at a Kafka broker and a database when given."""
    data: dict[str, Any] = load_spec_text(shuttle_spec_text()).model_dump(exclude_none=True)
    if kafka:
        run = uuid.uuid4().hex[:8]
        data["source"] = {"kind": "kafka", "bootstrap_servers": kafka, "group_id": f"sf-demo-{run}"}
        data["topics"] = {"score": f"shuttle_sensors_{run}"}
        data["outputs"]["predictions_topic"] = f"shuttle_alarms_{run}"
        data["outputs"]["dead_letter_topic"] = f"shuttle_dead_letters_{run}"
    if database:
        data["outputs"]["database"] = database
    return PipelineSpec.model_validate(data)


def shuttle_events() -> list[tuple[bytes, bytes]]:
    """The readings as (key, JSON value), in the file's order; the key is the row number."""
    with resources.files(DATA).joinpath("shuttle_anomaly.csv.gz").open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip")
    return [
        (str(i).encode(), orjson.dumps(row))
        for i, row in enumerate(frame.to_dict(orient="records"))
    ]


def _publish(spec: PipelineSpec, kafka: str | None, events: list[tuple[bytes, bytes]]) -> Any:
    topic = spec.topics.score[0]
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
    broker = _publish(spec, kafka, events)
    with Store(database_url(spec, settings), spec.name) as store:
        store.delete_checkpoint()  # the demo replays its stream from the start every time
        _forget_earlier_runs(store, spec)
    worker = build_worker(spec, settings, broker=broker)
    total = len(events)
    started = time.monotonic()
    with ExitStack() as stack:
        stack.callback(worker.close)
        live = None
        if serve is not None:
            from streamfit.api import serve_live

            live = stack.enter_context(serve_live(worker, serve, broker=broker))
            print(f"streamfit demo: the dashboard is at {live.url}", file=sys.stderr, flush=True)
        with event_progress("shuttle sensors", total, enabled=progress) as bar:
            task = bar.task_ids[0]

            def on_batch(w: Worker, n: int) -> None:
                bar.update(task, completed=w.stats.events_in)
                if live is not None:
                    live.source.on_batch(w, n)

            worker.run(until=lambda w: w.stats.events_in >= total, on_batch=on_batch)
        summary = _summary(worker, time.monotonic() - started)
        if show is not None:
            show(summary)
        if live is not None:
            live.source.running = False
            live.source.publish(worker, force=True)
            print(
                f"streamfit demo: the stream has ended; the dashboard stays up at {live.url} "
                "(Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            (stop or threading.Event()).wait()
        return summary


def _tables(spec: PipelineSpec) -> dict[str, str]:
    return {
        "results": spec.outputs.results_table_name(spec.name),
        "training": spec.outputs.training_table_name(spec.name),
        "field_stats": spec.stats.table_name(spec.name),
        "schema_changes": spec.stats.schema_changes_table_name(spec.name),
        "dead_letters": "dead_letters",
    }


def _forget_earlier_runs(store: Store, spec: PipelineSpec) -> None:
    """Drop what an earlier run of the demo wrote: its tables then hold this run only."""
    tables = _tables(spec)
    names = [tables[k] for k in ("results", "training", "field_stats", "schema_changes")]
    fields = sa.Table("result_fields", sa.MetaData(), autoload_with=store.engine)
    letters = sa.Table("dead_letters", sa.MetaData(), autoload_with=store.engine)
    with store.engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(sa.delete(fields).where(fields.c.table_name.in_(names)))
        conn.execute(sa.delete(letters).where(letters.c.pipeline == spec.name))


def _summary(worker: Worker, elapsed: float) -> dict[str, Any]:
    spec = worker.spec
    store = worker.store
    tables = _tables(spec)
    head: Any = worker.head
    models = []
    for slot in worker.slots:
        snapshot = head.assessment.evaluators[slot.name].snapshot()
        metrics = {
            k: _round(v)
            for k, v in snapshot.items()
            if not k.startswith("window_") and k != "events_seen"
        }
        metrics["alarms"] = _alarms(store, tables["results"], slot.name, worker.slots[0].name)
        quantiles = head.scores[slot.name].quantiles() or []
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "events_scored": slot.events_learned,
                "metrics": metrics,
                "window_metrics": {
                    k.removeprefix("window_"): _round(v)
                    for k, v in snapshot.items()
                    if k.startswith("window_")
                },
                "score_quantiles": dict(
                    zip(("p50", "p90", "p99", "p99_9"), map(_round, quantiles), strict=False)
                ),
            }
        )
    fields = [row["field"] for row in store.read_field_stats(tables["field_stats"])]
    return {
        "pipeline": spec.name,
        "events_scored": worker.stats.events_scored,
        "dead_letters": worker.stats.dead_letters,
        "elapsed_seconds": round(elapsed, 3),
        "events_per_second": round(worker.stats.events_in / max(elapsed, 1e-9), 1),
        "database": store.display_url,
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


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


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
            f"  {model['name']:<18} {_fmt(m.get('roc_auc')):>8} "
            f"{_fmt(m.get('average_precision')):>9} {m.get('alarms', 0):>7,} "
            f"{_fmt(m.get('precision')):>10} {_fmt(m.get('recall')):>7}"
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
        "",
        "  Try next (or: streamfit stats with the demo's spec and --db):",
    ]
    lines += [f"    {q}" for q in summary["queries"]]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

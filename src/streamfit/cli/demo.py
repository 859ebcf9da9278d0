"""``streamfit demo``: the speed-dating case on the bundled data.

Waves are replayed in order. In each wave most dates go to the train stream with their
outcome; a share goes to the score stream without it. The worker learns from the first while
it classifies the second; the demo keeps the withheld outcomes and, at the end, reads the
results table back and reports how well those dates were classified.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from streamfit.cli.progress import event_progress
from streamfit.runtime.build import build_worker, database_url
from streamfit.runtime.worker import Worker
from streamfit.spec.loader import load_spec_text
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store, prediction_column, probability_column
from streamfit.streams.memory import MemoryBroker
from streamfit.streams.replay import frame_to_events

__all__ = ["DemoEvents", "demo_spec", "prepare_events", "run_demo", "speed_dating_frame"]

DATA = "streamfit.data.speed_dating"


def demo_spec_text() -> str:
    """The demo's pipeline spec, as shipped (YAML)."""
    return resources.files(DATA).joinpath("pipeline.yaml").read_text(encoding="utf-8")


def demo_spec(kafka: str | None = None, database: str | None = None) -> PipelineSpec:
    """The demo spec, pointed at a Kafka broker and a database when given."""
    data: dict[str, Any] = load_spec_text(demo_spec_text()).model_dump(exclude_none=True)
    if kafka:
        run = uuid.uuid4().hex[:8]
        data["source"] = {"kind": "kafka", "bootstrap_servers": kafka, "group_id": f"sf-demo-{run}"}
        data["topics"] = {
            "train": f"speed_dating_train_{run}",
            "score": f"speed_dating_score_{run}",
        }
        data["outputs"]["predictions_topic"] = f"speed_dating_predictions_{run}"
        data["outputs"]["dead_letter_topic"] = f"speed_dating_dead_letters_{run}"
    if database:
        data["outputs"]["database"] = database
    return PipelineSpec.model_validate(data)


@dataclass(frozen=True)
class DemoEvents:
    """The demo stream: (topic, key, value) in order, and the withheld outcomes."""

    events: list[tuple[str, bytes, bytes]]
    truth: dict[bytes, int]  # key of a scored date -> its withheld `match`


def speed_dating_frame() -> pd.DataFrame:
    """The bundled dates, in chronological order (wave, round, order of the evening)."""
    with resources.files(DATA).joinpath("speed_dating_kaggle.csv.gz").open("rb") as fh:
        frame = pd.read_csv(
            fh,
            compression="gzip",
            encoding="latin-1",
            low_memory=False,
            dtype_backend="numpy_nullable",  # whole-number columns stay integers
        )
    return frame.sort_values(["wave", "round", "order", "iid"], kind="stable")


def prepare_events(spec: PipelineSpec, score_share: float = 0.2, seed: int = 7) -> DemoEvents:
    """Split every wave's dates into the train and score streams, in chronological order."""
    frame = speed_dating_frame()
    rng = np.random.default_rng(seed)
    to_score = rng.random(len(frame)) < score_share
    keys = [
        f"{i}-{p}".encode()
        for i, p in zip(frame["iid"], frame["pid"].fillna(-1).astype("int64"), strict=True)
    ]
    target = spec.target or "match"
    truth_values = frame[target].astype("int64").tolist()
    labeled = frame_to_events(frame)
    unlabeled = frame_to_events(frame.drop(columns=[target]))
    train_topic, score_topic = spec.topics.train[0], spec.topics.score[0]
    events: list[tuple[str, bytes, bytes]] = []
    truth: dict[bytes, int] = {}
    for i, scored in enumerate(to_score.tolist()):
        if scored:
            events.append((score_topic, keys[i], unlabeled[i]))
            truth[keys[i]] = truth_values[i]
        else:
            events.append((train_topic, keys[i], labeled[i]))
    return DemoEvents(events, truth)


def _publish_memory(broker: MemoryBroker, events: list[tuple[str, bytes, bytes]]) -> None:
    for topic, key, value in events:
        broker.append(topic, [value], [key])


def _publish_kafka(
    bootstrap: str, spec: PipelineSpec, events: list[tuple[str, bytes, bytes]]
) -> None:
    from streamfit.streams.base import OutRecord
    from streamfit.streams.kafka import KafkaSink, create_topics

    create_topics(bootstrap, spec.topics.all, partitions=1)
    sinks = {topic: KafkaSink(bootstrap, topic) for topic in spec.topics.all}
    for topic, key, value in events:
        sinks[topic].write([OutRecord(key, value)])
    for sink in sinks.values():
        sink.flush()
        sink.close()


def run_demo(
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
    spec = demo_spec(kafka=kafka, database=database)
    settings = Settings()
    demo = prepare_events(spec)
    broker = MemoryBroker()
    if kafka:
        _publish_kafka(kafka, spec, demo.events)
    else:
        _publish_memory(broker, demo.events)
    with Store(database_url(spec, settings), spec.name) as store:
        store.delete_checkpoint()  # the demo replays its stream from the start every time
        _forget_earlier_runs(store, spec)
    worker = build_worker(spec, settings, broker=broker)
    total = len(demo.events)
    started = time.monotonic()
    with ExitStack() as stack:
        stack.callback(worker.close)
        live = None
        if serve is not None:
            from streamfit.api import serve_live

            live = stack.enter_context(serve_live(worker, serve, broker=broker))
            print(f"streamfit demo: the dashboard is at {live.url}", file=sys.stderr, flush=True)
        with event_progress("speed dating", total, enabled=progress) as bar:
            task = bar.task_ids[0]

            def on_batch(w: Worker, n: int) -> None:
                bar.update(task, completed=w.stats.events_in)
                if live is not None:
                    live.source.on_batch(w, n)

            worker.run(until=lambda w: w.stats.events_in >= total, on_batch=on_batch)
        elapsed = time.monotonic() - started
        summary = _summary(worker, demo, elapsed)
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


def _forget_earlier_runs(store: Store, spec: PipelineSpec) -> None:
    """Drop what an earlier demo wrote to this database: its tables then hold this run only
    (a run through Kafka uses topics of its own, so its rows would not replace the last's)."""
    names = [
        spec.outputs.results_table_name(spec.name),
        spec.outputs.training_table_name(spec.name),
    ]
    fields = sa.Table("result_fields", sa.MetaData(), autoload_with=store.engine)
    letters = sa.Table("dead_letters", sa.MetaData(), autoload_with=store.engine)
    with store.engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(sa.delete(fields).where(fields.c.table_name.in_(names)))
        conn.execute(sa.delete(letters).where(letters.c.pipeline == spec.name))


def _summary(worker: Worker, demo: DemoEvents, elapsed: float) -> dict[str, Any]:
    spec = worker.spec
    store = worker.store
    results = spec.outputs.results_table_name(spec.name)
    training = spec.outputs.training_table_name(spec.name)
    holdout = _holdout_metrics(worker, demo, results)
    models = []
    for slot in worker.slots:
        snapshot = worker.evaluation.evaluators[slot.name].snapshot()
        metrics = {
            k: _round(v)
            for k, v in snapshot.items()
            if not k.startswith("window_") and k != "events_seen"
        }
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "version": slot.version,
                "events_learned": slot.events_learned,
                "metrics": metrics,
                "window_metrics": {
                    k.removeprefix("window_"): _round(v)
                    for k, v in snapshot.items()
                    if k.startswith("window_")
                },
                "holdout": holdout.get(slot.name, {}),
            }
        )
    return {
        "pipeline": spec.name,
        "events_trained": worker.stats.events_trained,
        "events_scored": worker.stats.events_scored,
        "dead_letters": worker.stats.dead_letters,
        "elapsed_seconds": round(elapsed, 3),
        "events_per_second": round(worker.stats.events_in / max(elapsed, 1e-9), 1),
        "database": store.display_url,
        "tables": {
            "results": results,
            "training": training,
            "dead_letters": "dead_letters",
            "models": "models",
        },
        "result_rows": store.count(results),
        "rows_without_prediction": _without_prediction(store, results),
        "training_rows": store.count(training),
        "models": models,
        "queries": example_queries(results, training),
    }


def _without_prediction(store: Store, results: str) -> int:
    """Results rows scored before any model had learned a class (prediction NULL)."""
    table = sa.Table(results, sa.MetaData(), autoload_with=store.engine)
    query = sa.select(sa.func.count()).where(table.c.prediction.is_(None))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _holdout_metrics(
    worker: Worker, demo: DemoEvents, results: str
) -> dict[str, dict[str, float | None]]:
    """How well the withheld dates were classified, read back from the results table."""
    spec = worker.spec
    names = [slot.name for slot in worker.slots]
    columns = ["event_key", "prediction", "probability"]
    for name in names[1:]:
        columns += [prediction_column(name), probability_column(name)]
    table = sa.Table(results, sa.MetaData(), autoload_with=worker.store.engine)
    query = sa.select(*[table.c[c] for c in columns]).where(
        table.c.source_topic == spec.topics.score[0]
    )
    with worker.store.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return {}
    frame = pd.DataFrame(rows, columns=columns)
    truth = np.array([demo.truth.get(str(k).encode(), -1) for k in frame["event_key"]])
    known = truth >= 0
    out: dict[str, dict[str, float | None]] = {}
    for i, name in enumerate(names):
        pred_col, prob_col = (
            ("prediction", "probability")
            if i == 0
            else (prediction_column(name), probability_column(name))
        )
        predicted = frame[pred_col].astype(str).to_numpy()[known]
        confidence = frame[prob_col].astype(float).to_numpy()[known]
        y = truth[known]
        is_one = predicted == "1"
        p_one = np.where(is_one, confidence, 1.0 - confidence)
        p_one = np.nan_to_num(p_one, nan=0.5)
        out[name] = {
            "events": int(known.sum()),
            "roc_auc": _round(float(roc_auc_score(y, p_one))) if len(set(y.tolist())) > 1 else None,
            "accuracy": _round(float(accuracy_score(y, is_one.astype(int)))),
            "f1": _round(float(f1_score(y, is_one.astype(int), zero_division=0))),
        }
    return out


def example_queries(results: str, training: str) -> list[str]:
    """Three questions to ask the tables next (portable SQL)."""
    return [
        f"SELECT model, events_seen, roc_auc, window_roc_auc, f1 FROM {training} "
        f"WHERE events_seen = (SELECT MAX(events_seen) FROM {training}) ORDER BY roc_auc DESC;",
        f"SELECT wave, COUNT(*) AS dates, SUM(CASE WHEN prediction = '1' THEN 1 ELSE 0 END) "
        f"AS predicted_matches, ROUND(AVG(probability), 3) AS avg_confidence FROM {results} "
        f"GROUP BY wave ORDER BY wave;",
        f"SELECT field, COUNT(*) AS dates, SUM(CASE WHEN prediction = '1' THEN 1 ELSE 0 END) "
        f"AS predicted_matches FROM {results} GROUP BY field "
        f"ORDER BY predicted_matches DESC LIMIT 10;",
    ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def render_summary(summary: dict[str, Any]) -> str:
    """The summary as text for a person."""
    lines = [
        "",
        f"streamfit demo: {summary['pipeline']}",
        f"  trained on {summary['events_trained']:,} labeled events, "
        f"scored {summary['events_scored']:,} "
        f"in {summary['elapsed_seconds']:.1f} s ({summary['events_per_second']:,.0f} events/s); "
        f"dead letters: {summary['dead_letters']}",
        "",
        f"  {'model':<16} {'prequential (train stream)':<34} {'withheld score stream':<30}",
        f"  {'':<16} {'ROC AUC':>8} {'F1':>8} {'acc':>8} {'logloss':>8} "
        f"{'ROC AUC':>9} {'F1':>8} {'acc':>8}",
    ]
    for model in summary["models"]:
        m, h = model["metrics"], model["holdout"]
        lines.append(
            f"  {model['name']:<16} {_fmt(m.get('roc_auc')):>8} {_fmt(m.get('f1')):>8} "
            f"{_fmt(m.get('accuracy')):>8} {_fmt(m.get('log_loss')):>8} "
            f"{_fmt(h.get('roc_auc')):>9} "
            f"{_fmt(h.get('f1')):>8} {_fmt(h.get('accuracy')):>8}"
        )
    tables = summary["tables"]
    lines += [
        "",
        f"  database: {summary['database']}",
        f"  tables:   {tables['results']} ({summary['result_rows']:,} rows, one per scored event), "
        f"{tables['training']} ({summary['training_rows']:,} rows), "
        f"{tables['dead_letters']}, {tables['models']}",
    ]
    unscored = summary.get("rows_without_prediction", 0)
    if unscored:
        lines.append(
            f"            {unscored} of the results rows have no prediction (NULL): those dates "
            "were scored before any model had learned from a labeled one"
        )
    lines += [
        "",
        "  Try next:",
    ]
    lines += [f"    {q}" for q in summary["queries"]]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def summary_json(summary: dict[str, Any]) -> str:
    return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()


def default_demo_db() -> str:
    return f"sqlite:///{Path.cwd() / 'streamfit_demo.db'}"

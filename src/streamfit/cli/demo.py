"""``streamfit demo``: the speed-dating case on the bundled data.

Waves are replayed in order. In each wave most dates go to the train stream with their
outcome; a share goes to the score stream without it. The worker learns from the first while
it classifies the second; the demo keeps the withheld outcomes and, at the end, reads the
results table back and reports how well those dates were classified.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from streamfit.cli.demos_common import (
    bundled_spec,
    bundled_spec_text,
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
from streamfit.store import Store, prediction_column, probability_column
from streamfit.streams.replay import frame_to_events

__all__ = ["DemoEvents", "demo_spec", "prepare_events", "run_demo", "speed_dating_frame"]

DATA = "streamfit.data.speed_dating"


def demo_spec_text() -> str:
    """The demo's pipeline spec, as shipped (YAML)."""
    return bundled_spec_text(DATA)


def demo_spec(kafka: str | None = None, database: str | None = None) -> PipelineSpec:
    """The demo spec, pointed at a Kafka broker and a database when given."""
    return bundled_spec(
        DATA,
        kafka,
        database,
        topics={"train": "speed_dating_train", "score": "speed_dating_score"},
        predictions_topic="speed_dating_predictions",
        dead_letter_topic="speed_dating_dead_letters",
    )


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
    broker = publish(kafka, spec.topics.all, demo.events)  # None through Kafka
    start_afresh(spec, settings, _written_tables(spec))
    worker = build_worker(spec, settings, broker=broker)
    return run_demo_worker(
        worker,
        "speed dating",
        len(demo.events),
        lambda w, elapsed: _summary(w, demo, elapsed),
        progress=progress,
        serve=serve,
        broker=broker,
        stop=stop,
        show=show,
    )


def _written_tables(spec: PipelineSpec) -> list[str]:
    """The tables the demo writes, dropped at the start of each run: they then hold that run
    only (a run through Kafka uses topics of its own, so its rows would not replace the last's)."""
    return [
        spec.outputs.results_table_name(spec.name),
        spec.outputs.training_table_name(spec.name),
    ]


def _summary(worker: Worker, demo: DemoEvents, elapsed: float) -> dict[str, Any]:
    spec = worker.spec
    store = worker.store
    results = spec.outputs.results_table_name(spec.name)
    training = spec.outputs.training_table_name(spec.name)
    holdout = _holdout_metrics(worker, demo, results)
    models = []
    for slot in worker.slots:
        snapshot = worker.evaluation.evaluators[slot.name].snapshot()
        metrics, window_metrics = split_snapshot(snapshot)
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "version": slot.version,
                "events_learned": slot.events_learned,
                "metrics": metrics,
                "window_metrics": window_metrics,
                "holdout": holdout.get(slot.name, {}),
            }
        )
    return {
        "pipeline": spec.name,
        "events_trained": worker.stats.events_trained,
        "events_scored": worker.stats.events_scored,
        **throughput(worker, elapsed),
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
            "roc_auc": rounded(float(roc_auc_score(y, p_one)))
            if len(set(y.tolist())) > 1
            else None,
            "accuracy": rounded(float(accuracy_score(y, is_one.astype(int)))),
            "f1": rounded(float(f1_score(y, is_one.astype(int), zero_division=0))),
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
            f"  {model['name']:<16} {formatted(m.get('roc_auc')):>8} {formatted(m.get('f1')):>8} "
            f"{formatted(m.get('accuracy')):>8} {formatted(m.get('log_loss')):>8} "
            f"{formatted(h.get('roc_auc')):>9} "
            f"{formatted(h.get('f1')):>8} {formatted(h.get('accuracy')):>8}"
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
    lines += try_next(summary["queries"])
    return "\n".join(lines) + "\n"


def default_demo_db() -> str:
    return f"sqlite:///{Path.cwd() / 'streamfit_demo.db'}"

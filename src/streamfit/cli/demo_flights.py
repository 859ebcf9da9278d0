"""``streamfit demo flights``: a model trained offline, deployed into the stream, A/B tested.

The gradient-boosting model of ``streamfit.cli.flights_model`` (trained on the first 8,000
flights of the bundled airline delays sample, exported to ONNX: ``make flights-model``, or
trained here on first use) is deployed beside a model that learns online from the stream
(streamfit's default binned logistic regression). The other 18,969 flights stream into one
topic, labeled; each is served by one of the two models, 50/50 by a hash of its flight
(airline and number: a flight always gets the same model), and then learned from. The
promotion rule watches both on every labeled flight (ROC AUC over the last 2,000). The demo
prints each arm's figures on the flights it served, read from the training table, and which
model the promotion rule chose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from streamfit.cli.demos_common import (
    figures,
    formatted,
    run_demo_worker,
    start_afresh,
)
from streamfit.cli.flights_model import TRAIN_ROWS, flights, train_flights_model
from streamfit.runtime.build import build_worker
from streamfit.runtime.lifecycle import model_events_table
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.streams.memory import MemoryBroker
from streamfit.streams.replay import frame_to_events

__all__ = ["flights_spec", "run_flights_demo"]

DEFAULT_MODEL = "flights_gbm.onnx"


def flights_spec(model: str, database: str | None = None) -> PipelineSpec:
    """The demo's pipeline over the ONNX file ``model``."""
    return validate_spec(
        {
            "name": "flights",
            "source": {"kind": "memory"},
            "topics": {"train": "flights", "score": "flights"},
            "target": "Delay",
            "key": "flight",
            "classes": [0, 1],
            "features": {"exclude": ["flight", "Flight"]},
            "models": [
                {"name": "gbm", "onnx": model},
                {"name": "online", "builtin": "binned_logistic_regression"},
            ],
            "serving": {"split": {"gbm": 0.5, "online": 0.5}},
            "promotion": {
                "metric": "roc_auc",
                "window": 2000,
                "margin": 0.01,
                "patience": 3,
                "every": 1000,
            },
            "evaluation": {"window": 2000, "interval_events": 2000},
            "learning": {"block_events": 500},
            "outputs": {
                "score_training_events": True,
                **({"database": database} if database else {}),
            },
        }
    )


def run_flights_demo(
    database: str | None = None, model: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run the demo (training the model first if its file is missing); return its summary."""
    path = Path(model or DEFAULT_MODEL)
    trained = None
    if not path.is_file():
        trained = train_flights_model(path)
    spec = flights_spec(str(path), database)
    settings = Settings()
    start_afresh(spec, settings, _written_tables(spec), ("result_fields", "models"))
    rest = flights().iloc[TRAIN_ROWS:].reset_index(drop=True)
    rest.insert(0, "flight", rest["Airline"] + "-" + rest["Flight"].astype(str))
    events = frame_to_events(rest)
    broker = MemoryBroker()
    broker.append("flights", events)
    worker = build_worker(spec, settings, broker=broker)
    return run_demo_worker(
        worker,
        "flights",
        len(events),
        lambda w, elapsed: _summary(w, elapsed, str(path), trained),
        progress=progress,
    )


def _written_tables(spec: PipelineSpec) -> list[str]:
    return [
        spec.outputs.results_table_name(spec.name),
        spec.outputs.training_table_name(spec.name),
        model_events_table(spec.name),
    ]


_FIGURES = ("roc_auc", "accuracy", "f1", "log_loss")


def _summary(
    worker: Worker, elapsed: float, model: str, trained: dict[str, Any] | None
) -> dict[str, Any]:
    spec = worker.spec
    training = spec.outputs.training_table_name(spec.name)
    results = spec.outputs.results_table_name(spec.name)
    query = sa.text(
        f"SELECT arm, events_seen, roc_auc, accuracy, f1, log_loss FROM {training} t "
        "WHERE role = 'arm' AND events_seen = "
        f"(SELECT MAX(events_seen) FROM {training} WHERE model = t.model)"
    )
    with worker.store.engine.connect() as conn:
        arms = {
            row.arm: {
                "events_served": int(row.events_seen),
                **figures(row._mapping, _FIGURES),
            }
            for row in conn.execute(query)
        }
        served: dict[str, int] = dict(
            conn.execute(sa.text(f"SELECT model, COUNT(*) FROM {results} GROUP BY model")).all()
        )
    events = worker.store.read_model_events(model_events_table(spec.name))
    models = []
    for slot in worker.slots:
        snapshot = worker.evaluation.evaluators[slot.name].snapshot()
        models.append(
            {
                "name": slot.name,
                "kind": slot.kind,
                "version": slot.version,
                "metrics": figures(snapshot, _FIGURES),
                "served": arms.get(slot.name, {}),
                "results_rows": int(served.get(slot.name, 0)),
            }
        )
    return {
        "pipeline": spec.name,
        "events": worker.stats.events_in,
        "elapsed_seconds": round(elapsed, 2),
        "model_file": model,
        "trained_now": trained,
        "split": dict(spec.serving.split) if spec.serving else {},
        "models": models,
        "champion": worker.models.policy.champion,
        "promotions": [
            {"kind": e["kind"], "model": e["model"], "events_seen": e["events_seen"]}
            for e in events
            if e["kind"] in ("promoted", "rolled_back")
        ],
        "database": worker.store.display_url,
        "tables": {
            "results": results,
            "training": training,
            "model_events": model_events_table(spec.name),
            "models": "models",
        },
        "query": query.text.strip(),
    }


def render_flights_summary(summary: dict[str, Any]) -> str:
    lines = [
        "",
        f"streamfit demo: flights ({summary['events']:,} flights in "
        f"{summary['elapsed_seconds']:.1f} s; model {summary['model_file']}"
        + (" trained now" if summary["trained_now"] else "")
        + ")",
        "",
        f"  {'model':<8} {'served':>7} {'ROC AUC':>8} {'acc':>7} {'F1':>7}  "
        f"| all flights: {'ROC AUC':>8} {'acc':>7}",
    ]
    for model in summary["models"]:
        s, m = model["served"], model["metrics"]
        lines.append(
            f"  {model['name']:<8} {s.get('events_served', 0):>7,} "
            f"{formatted(s.get('roc_auc')):>8} "
            f"{formatted(s.get('accuracy')):>7} {formatted(s.get('f1')):>7}  "
            f"|              {formatted(m.get('roc_auc')):>8} {formatted(m.get('accuracy')):>7}"
        )
    moves = ", ".join(
        f"{p['kind']} {p['model']} at {p['events_seen']:,}" for p in summary["promotions"]
    )
    lines += [
        "",
        f"  the promotion rule chose {summary['champion']}" + (f" ({moves})" if moves else ""),
        f"  database: {summary['database']}",
        f"  each arm, in one query: {summary['query']}",
    ]
    return "\n".join(lines) + "\n"

"""``streamfit demo clickstream``: continuous learning behind an update gate.

Generated page views (``streamfit.cli.clickstream``: a shift of concept half-way, a burst of
mislabeled clicks before it) stream into one topic; every event is predicted, then learned
from. Two copies of the same logistic regression learn side by side: ``gated`` keeps an
update only when its F1 on held-out events of the block is above 0.95 x the mean F1 of the
updates it kept, ``ungated`` learns everything. The demo prints how many updates the gate
kept and rejected, and draws log loss, accuracy and F1 over the last 1,000 events of each
model against the stream, with the gate's rejections marked (a PNG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamfit.cli.clickstream import click_events
from streamfit.cli.demos_common import rounded, run_demo_worker, start_afresh
from streamfit.evaluation import ClassificationEvaluator
from streamfit.runtime.build import build_worker
from streamfit.runtime.component import Component, Outcome
from streamfit.runtime.lifecycle import model_events_table
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.streams.memory import MemoryBroker

__all__ = ["Curves", "clickstream_spec", "run_clickstream_demo"]

EVENTS, SHIFT_AT, MISLABELED = 40_000, 24_000, (12_000, 14_000)
WINDOW = 1000
FIGURES = ("log_loss", "accuracy", "f1")


def clickstream_spec(database: str | None = None) -> PipelineSpec:
    """The demo's pipeline: one topic of clicks, the gated and the ungated model."""
    learner = {"builtin": "logistic_regression"}
    return validate_spec(
        {
            "name": "clickstream",
            "source": {"kind": "memory"},
            "topics": {"train": "clicks"},
            "target": "click",
            "key": "user",
            "classes": [0, 1],
            "models": [
                {
                    "name": "gated",
                    **learner,
                    "gate": {"metric": "f1", "ratio": 0.95, "holdout": 0.2, "reset_after": 8},
                },
                {"name": "ungated", **learner},
            ],
            "evaluation": {"window": WINDOW, "interval_events": 2000},
            "learning": {"block_events": 500},
            "outputs": {"database": database} if database else {},
        }
    )


class Curves(Component):
    """Each model's log loss, accuracy and F1 over its last ``WINDOW`` events, after every
    block, against the count of events of the stream learned so far."""

    def __init__(self, models: list[str]) -> None:
        self.evaluators = {m: ClassificationEvaluator(window=WINDOW, auc_bins=1) for m in models}
        self.position = 0
        self.points: dict[str, list[tuple[int, dict[str, float | None]]]] = {m: [] for m in models}
        self._first = models[0]

    def learned(self, outcome: Outcome) -> None:
        if outcome.model == self._first:
            self.position += len(outcome.labels)
        evaluator = self.evaluators[outcome.model]
        evaluator.update(outcome.labels, outcome.predicted, list(outcome.classes))
        snapshot = evaluator.snapshot()
        self.points[outcome.model].append(
            (self.position, {f: snapshot.get(f"window_{f}") for f in FIGURES})
        )


def run_clickstream_demo(
    database: str | None = None, png: str | Path = "clickstream.png", progress: bool = True
) -> dict[str, Any]:
    """Run the demo; return its summary (what ``--json`` prints)."""
    spec = clickstream_spec(database)
    settings = Settings()
    start_afresh(spec, settings, _written_tables(spec), ("models",))
    clicks = click_events(EVENTS, shift_at=SHIFT_AT, mislabeled=MISLABELED, seed=0)
    broker = MemoryBroker()
    broker.append("clicks", clicks.values, clicks.keys)
    curves = Curves([m.name for m in spec.models])
    worker = build_worker(spec, settings, broker=broker, components=[curves])

    def summarize(worker: Worker, elapsed: float) -> dict[str, Any]:
        events = worker.store.read_model_events(model_events_table(spec.name))
        path = _draw(curves, events, Path(png))
        return _summary(worker, curves, events, path, elapsed)

    return run_demo_worker(worker, "clickstream", EVENTS, summarize, progress=progress)


def _written_tables(spec: PipelineSpec) -> list[str]:
    return [
        spec.outputs.results_table_name(spec.name),
        spec.outputs.training_table_name(spec.name),
        model_events_table(spec.name),
    ]


def _draw(curves: Curves, events: list[dict[str, Any]], path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    colors = {"gated": "tab:blue", "ungated": "tab:orange"}
    rejected = [e["events_seen"] for e in events if e["kind"] == "gate_rejected"]
    for ax, figure in zip(axes, FIGURES, strict=True):
        for model, points in curves.points.items():
            xs = [x for x, _ in points]
            ys = [np.nan if f[figure] is None else f[figure] for _, f in points]
            ax.plot(xs, ys, label=model, color=colors.get(model), linewidth=1.2)
        for x in rejected:
            ax.axvline(x, color="tab:red", alpha=0.25, linewidth=1)
        ax.axvspan(*MISLABELED, color="grey", alpha=0.15)
        ax.axvline(SHIFT_AT, color="black", linestyle="--", linewidth=1)
        ax.set_ylabel(f"{figure.replace('_', ' ')}\n(last {WINDOW:,})")
        ax.grid(alpha=0.3)
    axes[0].set_title(
        "Clickstream: the gate's rejections (red), mislabeled clicks (grey), shift (dashed)"
    )
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("events learned")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _summary(
    worker: Worker,
    curves: Curves,
    events: list[dict[str, Any]],
    png: str,
    elapsed: float,
) -> dict[str, Any]:
    spec = worker.spec
    models = []
    for slot in worker.slots:
        snapshot = worker.evaluation.evaluators[slot.name].snapshot()
        gate = slot.gate
        models.append(
            {
                "name": slot.name,
                "version": slot.version,
                "events_learned": slot.events_learned,
                "metrics": {k: rounded(v) for k, v in snapshot.items() if k != "events_seen"},
                "gate": None if gate is None else {"kept": gate.kept, "rejected": gate.rejected},
            }
        )
    rejected = [e for e in events if e["kind"] == "gate_rejected"]
    in_burst = [
        e for e in rejected if MISLABELED[0] <= e["detail"].get("first_offset", -1) < MISLABELED[1]
    ]
    return {
        "pipeline": spec.name,
        "events": worker.stats.events_in,
        "elapsed_seconds": round(elapsed, 2),
        "stream": {"shift_at": SHIFT_AT, "mislabeled": list(MISLABELED), "block_events": 500},
        "gate": {
            "kept": sum(1 for e in events if e["kind"] == "gate_kept"),
            "rejected": len(rejected),
            "rejected_in_the_mislabeled_burst": len(in_burst),
            "blocks_in_the_mislabeled_burst": (MISLABELED[1] - MISLABELED[0]) // 500,
        },
        "promotions": sum(1 for e in events if e["kind"] in ("promoted", "rolled_back")),
        "models": models,
        "png": png,
        "database": worker.store.display_url,
        "tables": {  # no results table: every event is labeled, predicted, then learned
            "training": spec.outputs.training_table_name(spec.name),
            "model_events": model_events_table(spec.name),
            "models": "models",
        },
    }


def render_clickstream_summary(summary: dict[str, Any]) -> str:
    gate = summary["gate"]
    lines = [
        "",
        f"streamfit demo: clickstream ({summary['events']:,} page views in "
        f"{summary['elapsed_seconds']:.1f} s; concept shift at {summary['stream']['shift_at']:,},"
        f" clicks {summary['stream']['mislabeled'][0]:,}-{summary['stream']['mislabeled'][1]:,}"
        " mislabeled)",
        f"  the gate kept {gate['kept']} updates and rejected {gate['rejected']}, "
        f"{gate['rejected_in_the_mislabeled_burst']} of the "
        f"{gate['blocks_in_the_mislabeled_burst']} blocks of mislabeled clicks among them",
        "",
        f"  {'model':<10} {'log loss':>9} {'accuracy':>9} {'F1':>7}   (prequential, all events)",
    ]
    for model in summary["models"]:
        m = model["metrics"]
        lines.append(
            f"  {model['name']:<10} {m['log_loss']:>9.4f} {m['accuracy']:>9.4f} {m['f1']:>7.4f}"
        )
    tables = summary["tables"]
    lines += [
        "",
        f"  figure:   {summary['png']}",
        f"  database: {summary['database']}",
        f"  tables:   {tables['model_events']} (every gate decision), {tables['training']}, "
        f"{tables['models']}",
        f"  Try: SELECT events_seen, kind, score, threshold FROM {tables['model_events']} "
        "WHERE kind = 'gate_rejected';",
    ]
    return "\n".join(lines) + "\n"

"""Scoring through ONNX in the worker against the built-in logistic regression, per event.

The same batches of flights (the bundled airline delays sample after the first 8,000, 1,000
events a batch, decoded as the worker decodes them) are scored by three heads of the worker
(``runtime.head.Head.predict``: featurize, then the model): one whose model is the
gradient-boosting ONNX graph of ``streamfit.cli.flights_model`` (100 trees), one whose model
is the built-in ``logistic_regression``, trained first on the same 8,000 flights, and one
whose model is an ONNX graph of the same kind as the built-in one: the flights demo's
pipeline with scikit-learn's ``LogisticRegression`` in place of the trees, which shows what
the ONNX path itself costs. Each is timed over all batches, best of ``REPEAT``, in this one
process, alternating, so that the load of the machine weighs on all alike. Two figures per
model: the worker's whole scoring step (what an event costs to score), and the model's own
part (``ModelSet.predict`` on the featurized batch). Target: the gradient-boosting ONNX
step costs at most 2x the logistic one per event.

    python -m bench.onnx_scoring        # prints the JSON ``make bench`` stores
"""

from __future__ import annotations

import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from streamfit.batch import Batch, Messages
from streamfit.cli.flights_model import (
    CATEGORIES,
    NUMBERS,
    TRAIN_ROWS,
    flights,
    model_inputs,
    to_onnx_bytes,
    train_flights_model,
)
from streamfit.codecs import decode_json
from streamfit.runtime.head import Head
from streamfit.spec import validate_spec
from streamfit.streams.replay import frame_to_events

__all__ = ["onnx_scoring_suite"]

REPEAT = 7
BATCH = 1000
TARGET_RATIO = 2.0


def _head(model: dict[str, Any], train: list[bytes]) -> Head:
    spec = validate_spec(
        {
            "name": "bench_onnx",
            "source": {"kind": "memory"},
            "topics": {"train": "t", "score": "s"},
            "target": "Delay",
            "classes": [0, 1],
            "models": [{"name": "m", **model}],
            "outputs": {"database": "sqlite://"},
        }
    )
    head = Head(spec)
    labeled = decode_json(Messages.from_values(train, topic="t"), "Delay", "classification")
    batch = labeled.batch
    head.learn_runs([(batch, [0, len(batch)])], lambda outcome: None, lambda letters: None)
    return head


def _linear_graph(path: Path) -> None:
    """The flights pipeline with a logistic regression in place of the trees, as ONNX."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32)
    columns = ColumnTransformer(
        [("categories", encoder, CATEGORIES), ("numbers", "passthrough", NUMBERS)]
    )
    pipeline = Pipeline([("columns", columns), ("lr", LogisticRegression(max_iter=500))])
    train = flights().iloc[:TRAIN_ROWS]
    pipeline.fit(model_inputs(train), train["Delay"].to_numpy())
    path.write_bytes(to_onnx_bytes(pipeline))


def _time(head: Head, batches: list[Batch]) -> tuple[float, float]:
    none = np.empty(0, dtype=np.intp)
    started = time.perf_counter()
    for batch in batches:
        head.predict(batch, none)
    step = time.perf_counter() - started
    matrices = [head.featurizer.transform(batch) for batch in batches]
    started = time.perf_counter()
    for batch, X in zip(batches, matrices, strict=True):
        head.models.predict(X, partial(head.featurizer.records, batch), batch=batch)
    return step, time.perf_counter() - started


def onnx_scoring_suite(
    model_path: str | None = None, events: int | None = None, repeat: int = REPEAT
) -> dict[str, Any]:
    """Both heads timed on the same batches (the first ``events`` of the flights after the
    training ones, default all), best of ``repeat``; microseconds per event and their ratio."""
    frame = flights()
    with tempfile.TemporaryDirectory() as folder:
        path = model_path or str(Path(folder) / "flights_gbm.onnx")
        if model_path is None:
            train_flights_model(path)
        train = frame_to_events(frame.iloc[:TRAIN_ROWS])
        linear = Path(folder) / "flights_linear.onnx"
        _linear_graph(linear)
        heads = {
            "onnx": _head({"onnx": path}, train),
            "logistic": _head({"builtin": "logistic_regression"}, train),
            "onnx_linear": _head({"onnx": str(linear)}, train),
        }
    rest = (
        frame.iloc[TRAIN_ROWS:] if events is None else frame.iloc[TRAIN_ROWS : TRAIN_ROWS + events]
    )
    scored = frame_to_events(rest.drop(columns=["Delay"]))
    batches = [
        decode_json(
            Messages.from_values(scored[i : i + BATCH], topic="s"), "Delay", "classification"
        ).batch
        for i in range(0, len(scored), BATCH)
    ]
    events = sum(len(b) for b in batches)
    best = {name: [float("inf"), float("inf")] for name in heads}
    for _ in range(repeat):
        for name, head in heads.items():
            step, model = _time(head, batches)
            best[name] = [min(best[name][0], step), min(best[name][1], model)]
    per_event = {
        name: {
            "step_us": round(step / events * 1e6, 3),
            "model_us": round(model / events * 1e6, 3),
        }
        for name, (step, model) in best.items()
    }
    ratio = per_event["onnx"]["step_us"] / per_event["logistic"]["step_us"]
    return {
        "events": events,
        "batch": BATCH,
        "repeat": repeat,
        "per_event": per_event,
        "step_ratio": round(ratio, 2),
        "model_ratio": round(per_event["onnx"]["model_us"] / per_event["logistic"]["model_us"], 2),
        "linear_step_ratio": round(
            per_event["onnx_linear"]["step_us"] / per_event["logistic"]["step_us"], 2
        ),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


if __name__ == "__main__":
    print(json.dumps(onnx_scoring_suite(), indent=2))

"""The flights demo's pretrained model: gradient boosting trained offline, exported to ONNX.

``train_flights_model`` trains scikit-learn's ``HistGradientBoostingClassifier`` on the first
``TRAIN_ROWS`` flights of the bundled airline delays sample (``streamfit.data.airlines``),
behind an ``OrdinalEncoder`` of the airline and airports, and exports the whole pipeline to
ONNX with skl2onnx: one graph input per event field (``Airline``, ``AirportFrom``,
``AirportTo`` as strings; ``DayOfWeek``, ``Time``, ``Length`` as floats), a probability
output without ``ZipMap``. Nothing is downloaded. ``make flights-model`` runs it::

    python -m streamfit.cli.flights_model flights_gbm.onnx

``streamfit demo flights`` streams the other flights into a worker that serves this model
A/B against a model learning online.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORIES",
    "NUMBERS",
    "TRAIN_ROWS",
    "fit_pipeline",
    "flights",
    "train_flights_model",
]

DATA = "streamfit.data.airlines"
TRAIN_ROWS = 8000
CATEGORIES = ["Airline", "AirportFrom", "AirportTo"]
NUMBERS = ["DayOfWeek", "Time", "Length"]
TARGET = "Delay"


def flights() -> pd.DataFrame:
    """The bundled airline delays sample, in its file's order."""
    with resources.files(DATA).joinpath("airlines_moa_random5pct.csv.gz").open("rb") as fh:
        return pd.read_csv(fh, compression="gzip")


def fit_pipeline(frame: pd.DataFrame, max_iter: int = 100) -> Any:
    """An ordinal encoder of the categories and gradient boosting, fitted on ``frame``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32)
    columns = ColumnTransformer(
        [("categories", encoder, CATEGORIES), ("numbers", "passthrough", NUMBERS)]
    )
    model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0)
    pipeline = Pipeline([("columns", columns), ("gbm", model)])
    pipeline.fit(model_inputs(frame), frame[TARGET].to_numpy())
    return pipeline


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The fields the model reads, typed as the ONNX graph takes them."""
    inputs = frame[CATEGORIES + NUMBERS].copy()
    inputs[NUMBERS] = inputs[NUMBERS].astype(np.float32)
    return inputs


@contextmanager
def _integer_missing_flags() -> Iterator[None]:
    """skl2onnx 1.20 passes a leaf's ``nodes_missing_value_tracks_true`` to onnx as the
    Python bool ``False``, which onnx's protobuf refuses for an integer attribute; this
    hands it over as 0 while the converter runs."""
    import skl2onnx.common.tree_ensemble as trees

    original = trees.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    trees.add_node = add_node
    try:
        yield
    finally:
        trees.add_node = original


def to_onnx_bytes(pipeline: Any) -> bytes:
    """``pipeline`` as an ONNX graph: an input per field, probabilities as a tensor."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(c, StringTensorType([None, 1])) for c in CATEGORIES]
    types += [(c, FloatTensorType([None, 1])) for c in NUMBERS]
    with _integer_missing_flags():
        graph = to_onnx(
            pipeline,
            initial_types=types,
            options={id(pipeline): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    return bytes(graph.SerializeToString())


def train_flights_model(path: str | Path, train_rows: int = TRAIN_ROWS) -> dict[str, Any]:
    """Train on the first ``train_rows`` flights, write the ONNX graph to ``path``; return
    what was trained (rows, ROC AUC on the remaining flights, the file's size)."""
    from sklearn.metrics import roc_auc_score

    frame = flights()
    train, rest = frame.iloc[:train_rows], frame.iloc[train_rows:]
    pipeline = fit_pipeline(train)
    graph = to_onnx_bytes(pipeline)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(graph)
    proba = pipeline.predict_proba(model_inputs(rest))[:, 1]
    return {
        "path": str(target),
        "train_rows": train_rows,
        "held_out_rows": len(rest),
        "held_out_roc_auc": round(float(roc_auc_score(rest[TARGET], proba)), 4),
        "bytes": len(graph),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default="flights_gbm.onnx", help="where to write")
    parser.add_argument("--train-rows", type=int, default=TRAIN_ROWS)
    args = parser.parse_args(argv)
    print(json.dumps(train_flights_model(args.path, args.train_rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

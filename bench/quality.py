"""How well streamfit learns, against River, on the shared real streams (``make bench-quality``).

Every model sees the same rows in the same order, prequentially: each event is predicted by
the model as it was just before it, then learned. In one process, one stream after another:

* **streamfit default**: what a spec without ``models:`` runs. The events go as JSON through
  the worker's own learning step: ``decode_json``, the featurizer (``learn_transform_blocks``
  over blocks of ``learning.block_events`` = 512 offsets) and ``predict_then_learn``, the
  call the worker makes on each block. Its events/s include decoding and featurizing.
* **streamfit linear**: the same with the built-in ``logistic_regression`` (default settings).
  The default model is the nonlinear built-in, ``binned_logistic_regression``.
* **River LR**: ``StandardScaler | LogisticRegression`` over the numeric fields, one-hot
  categoricals (``OneHotEncoder(drop_zeros=True)``) and ``BagOfWords`` of each text field;
  ``OneVsRestClassifier`` of it for more than two classes.
* **River HAT** and **River ARF** (10 trees): ``HoeffdingAdaptiveTreeClassifier`` and
  ``ARFClassifier(n_models=10)`` on the raw fields (categoricals as nominal values) and
  ``BagOfWords`` of each text field.

River's models get ready-made dicts (building them is not timed); each takes
``predict_proba_one`` then ``learn_one`` per event. Metrics are computed afterwards from every
model's probabilities, the same way for all: accuracy (an event with no prediction yet counts
as wrong), ROC AUC of the positive class (binary) or macro F1 (multiclass), log loss (the true
class's probability clipped to [1e-15, 1]), and accuracy over a sliding window for the plot.

Writes ``bench/results/quality.json``, ``quality.md`` and ``quality.png``, and the tables into
``bench/README.md`` and ``README.md`` between the ``quality`` markers. ``--rows N`` caps each
stream (a quick look); ``--streams a,b`` picks streams.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from bench.common import ROOT, replace_between


def _datasets() -> Path:
    """``$STREAMFIT_DATASETS``, else ``shared/datasets`` beside the checkout or an ancestor."""
    given = os.environ.get("STREAMFIT_DATASETS")
    if given:
        return Path(given)
    for parent in ROOT.parents:
        if (parent / "shared" / "datasets").is_dir():
            return parent / "shared" / "datasets"
    return ROOT.parent / "shared" / "datasets"


DATASETS = _datasets()
RESULTS = ROOT / "bench" / "results"
BLOCK_EVENTS = 512
WINDOW = 500

Kinds = dict[str, str]  # field -> "numeric" | "categorical" | "text"


@dataclass
class Stream:
    """One labeled stream: its feature fields (by kind), labels and positive class."""

    name: str
    frame: pd.DataFrame
    labels: npt.NDArray[Any]
    kinds: Kinds
    positive: object | None  # None: multiclass (macro F1 instead of ROC AUC)
    note: str

    @property
    def classes(self) -> list[object]:
        return sorted(set(self.labels.tolist()), key=str)


# ------------------------------------------------------------------------------------ streams


def _speed_dating() -> Stream:
    df = pd.read_csv(DATASETS / "speed_dating" / "speed_dating_kaggle.csv.gz", encoding="latin-1")
    labels = df["match"].to_numpy()
    # leaks (match == dec & dec_o; the follow-ups were collected after the date), as the demo's
    # spec excludes them
    leaks = ["match", "dec", "dec_o", "you_call", "them_cal", "length"]
    leaks += [c for c in df.columns if c.endswith(("_2", "_3"))]
    df = df.drop(columns=leaks)
    for column in ("mn_sat", "tuition", "income"):
        df[column] = pd.to_numeric(df[column].str.replace(",", ""), errors="coerce")
    categorical = ["field", "undergra", "from", "career", "zipcode", "iid", "pid"]
    for column in categorical:
        df[column] = df[column].map(lambda v: v if pd.isna(v) else str(v))
    kinds = {c: "categorical" if c in categorical else "numeric" for c in df.columns}
    return Stream("speed dating", df, labels, kinds, 1, "8,378 dates in wave order, `match`")


def _sms_spam() -> Stream:
    df = pd.read_csv(
        DATASETS / "sms_spam" / "SMSSpamCollection.gz",
        sep="\t",
        header=None,
        names=["label", "text"],
        quoting=csv.QUOTE_NONE,
    )
    labels = df.pop("label").to_numpy()
    return Stream("SMS spam", df, labels, {"text": "text"}, "spam", "5,574 messages, file order")


def _sst2(rows: int = 20_000) -> Stream:
    df = pd.read_csv(DATASETS / "sst2" / "train.tsv.gz", sep="\t", quoting=csv.QUOTE_NONE)
    df = df.iloc[:rows].rename(columns={"sentence": "text"})
    labels = df.pop("label").to_numpy()
    note = f"the first {rows:,} of the 67,349 training phrases, file order"
    return Stream("SST-2", df, labels, {"text": "text"}, 1, note)


def _shuttle() -> Stream:
    df = pd.read_csv(DATASETS / "shuttle" / "shuttle_trn.csv.gz")
    labels = df.pop("class").to_numpy()
    kinds = dict.fromkeys(df.columns, "numeric")
    return Stream("shuttle", df, labels, kinds, None, "43,500 rows (UCI train split), 7 classes")


def _airlines() -> Stream:
    df = pd.read_csv(DATASETS / "airlines_subsets" / "airlines_moa_random5pct.csv.gz")
    labels = df.pop("Delay").to_numpy()
    # typed as in the MOA stream: Flight, DayOfWeek, Time and Length numeric
    kinds = {c: "numeric" if pd.api.types.is_numeric_dtype(df[c]) else "categorical" for c in df}
    note = "26,969 flights (a shuffled 5% of the MOA stream), `Delay`"
    return Stream("airlines", df, labels, kinds, 1, note)


def _credit_card() -> Stream:
    df = pd.read_csv(DATASETS / "creditcard_fraud_sample" / "creditcard_sample.csv.gz", index_col=0)
    df = df.sort_values("Time", kind="stable").reset_index(drop=True)
    labels = df.pop("Class").to_numpy()
    kinds = dict.fromkeys(df.columns, "numeric")
    note = "1,722 transactions (all 492 frauds, undersampled legit ones) in time order"
    return Stream("credit-card fraud", df, labels, kinds, 1, note)


STREAMS: dict[str, Callable[[], Stream]] = {
    "speed_dating": _speed_dating,
    "sms_spam": _sms_spam,
    "sst2": _sst2,
    "shuttle": _shuttle,
    "airlines": _airlines,
    "credit_card": _credit_card,
}


def records(stream: Stream) -> list[dict[str, Any]]:
    """Each event's fields as a dict, missing values left out (River's convention)."""
    columns = {c: stream.frame[c].tolist() for c in stream.frame.columns}
    out: list[dict[str, Any]] = []
    for i in range(len(stream.frame)):
        row: dict[str, Any] = {}
        for name, values in columns.items():
            value = values[i]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            row[name] = float(value) if stream.kinds[name] == "numeric" else value
        out.append(row)
    return out


# ------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One model's prequential probabilities on one stream, columns in ``classes`` order."""

    model: str
    proba: npt.NDArray[np.float64]
    classes: list[object]
    seconds: float
    figures: dict[str, float | None] = field(default_factory=dict)


def run_streamfit(stream: Stream, spec: dict[str, Any] | None, label: str) -> Run:
    """The worker's learning step over the stream sent as JSON (see the module doc)."""
    from pydantic import TypeAdapter

    from streamfit.batch import Messages
    from streamfit.codecs import decode_json
    from streamfit.features import Featurizer
    from streamfit.models.factory import build_model, default_model_spec
    from streamfit.runtime.models import predict_then_learn
    from streamfit.spec.model import FeaturesSpec, ModelSpec

    target = "__label__"
    events = records(stream)
    for event, y in zip(events, stream.labels.tolist(), strict=True):
        event[target] = y
    values = [orjson.dumps(e) for e in events]
    featurizer = Featurizer(FeaturesSpec(types=stream.kinds), exclude=[target])  # type: ignore[arg-type]
    model_spec = (
        default_model_spec("classification")
        if spec is None
        else TypeAdapter(ModelSpec).validate_python(spec)
    )
    model = build_model(model_spec, "classification", featurizer.n_features)
    _warm_up(model_spec, stream.kinds)
    parts: list[tuple[npt.NDArray[np.float64], list[object]]] = []
    poll = 8 * BLOCK_EVENTS
    started = time.perf_counter()
    for start in range(0, len(values), poll):
        messages = Messages.from_values(values[start : start + poll], first_offset=start)
        batch = decode_json(messages, target, "classification").batch
        n = len(batch)
        bounds = [*range(0, n, BLOCK_EVENTS), n]
        blocks = featurizer.learn_transform_blocks(batch, bounds)
        y = batch.columns[target]
        for X, a, b in zip(blocks, bounds, bounds[1:], strict=False):
            parts.append(predict_then_learn(model, X, y[a:b]))
    seconds = time.perf_counter() - started
    classes = parts[-1][1]
    proba = np.zeros((len(values), len(classes)))
    row = 0
    for p, _ in parts:
        proba[row : row + len(p), : p.shape[1]] = p
        row += len(p)
    return Run(label, proba, classes, seconds)


def _warm_up(spec: Any, kinds: Kinds) -> None:
    """Compile (or load from numba's cache) the compiled loops before the clock starts."""
    import scipy.sparse as sp

    from streamfit.features.moments import standardize_running
    from streamfit.models.factory import build_model

    model = build_model(spec, "classification", 16)
    X = sp.csr_matrix(np.eye(3, 16))
    model.learn_many(X, np.array(["a", "b", "c"], dtype=object))
    one = np.zeros(1)
    standardize_running(np.ones((1, 2)), np.zeros(1, np.int64), one, one.copy(), 5.0)


def river_models(stream: Stream) -> dict[str, Any]:
    """River's LR, HAT and ARF pipelines for this stream's fields (see the module doc)."""
    from river import (
        compose,
        feature_extraction,
        forest,
        linear_model,
        multiclass,
        preprocessing,
        tree,
    )

    numeric = [c for c, k in stream.kinds.items() if k == "numeric"]
    categorical = [c for c, k in stream.kinds.items() if k == "categorical"]
    text = [c for c, k in stream.kinds.items() if k == "text"]

    def union(parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)

    def select(names: list[str]) -> Any:  # River's Select needs every key in every event
        keep = frozenset(names)
        return compose.FuncTransformer(lambda x: {k: v for k, v in x.items() if k in keep})

    scaled: list[Any] = []
    if numeric:
        scaled.append(select(numeric) | preprocessing.StandardScaler())
    if categorical:
        # drop_zeros: without it River copies a zero for every category seen, per event
        scaled.append(select(categorical) | preprocessing.OneHotEncoder(drop_zeros=True))
    scaled += [feature_extraction.BagOfWords(on=t) for t in text]
    raw: list[Any] = []
    if numeric or categorical:
        raw.append(select(numeric + categorical))
    raw += [feature_extraction.BagOfWords(on=t) for t in text]

    binary = stream.positive is not None
    lr: Any = linear_model.LogisticRegression()
    if binary:  # River's binary classifiers learn bools: the positive class is True
        lr = _BoolLabels(lr, stream.positive, [c for c in stream.classes if c != stream.positive])
    else:
        lr = multiclass.OneVsRestClassifier(lr)
    return {
        "River LR": _Chain(union(scaled), lr),
        "River HAT": union(raw) | tree.HoeffdingAdaptiveTreeClassifier(seed=0),
        "River ARF": union(raw) | forest.ARFClassifier(n_models=10, seed=0),
    }


class _Chain:
    """A River transformer, then a classifier: what ``|`` does, for a wrapped classifier."""

    def __init__(self, transformer: Any, model: Any) -> None:
        self.transformer, self.model = transformer, model

    def predict_proba_one(self, x: dict[str, Any]) -> dict[object, float]:
        proba: dict[object, float] = self.model.predict_proba_one(self.transformer.transform_one(x))
        return proba

    def learn_one(self, x: dict[str, Any], y: object) -> None:
        self.transformer.learn_one(x)
        self.model.learn_one(self.transformer.transform_one(x), y)


class _BoolLabels:
    """A River binary classifier told ``y == positive``, its probabilities given back under the
    stream's own labels."""

    def __init__(self, model: Any, positive: object, others: list[object]) -> None:
        self.model, self.positive, self.negative = model, positive, others[0]

    def predict_proba_one(self, x: dict[str, Any]) -> dict[object, float]:
        proba = self.model.predict_proba_one(x)
        return {self.negative: proba.get(False, 0.0), self.positive: proba.get(True, 0.0)}

    def learn_one(self, x: dict[str, Any], y: object) -> None:
        self.model.learn_one(x, y == self.positive)


def run_river(stream: Stream, events: list[dict[str, Any]], model: Any, label: str) -> Run:
    classes = stream.classes
    column = {c: i for i, c in enumerate(classes)}
    proba = np.zeros((len(events), len(classes)))
    started = time.perf_counter()
    for i, (x, y) in enumerate(zip(events, stream.labels.tolist(), strict=True)):
        for c, p in model.predict_proba_one(x).items():
            proba[i, column[c]] = p
        model.learn_one(x, y)
    return Run(label, proba, classes, time.perf_counter() - started)


# ---------------------------------------------------------------------------------- figures


def score(stream: Stream, run: Run) -> None:
    """Accuracy, ROC AUC or macro F1, log loss and events/s of ``run``, into its figures."""
    from sklearn.metrics import f1_score, roc_auc_score

    y = stream.labels
    labels = np.empty(len(run.classes), dtype=object)
    labels[:] = run.classes
    some = run.proba.sum(axis=1) > 0
    predicted = np.where(some, labels[run.proba.argmax(axis=1)], None)
    correct = np.array([p is not None and p == t for p, t in zip(predicted, y, strict=True)])
    column = {c: i for i, c in enumerate(run.classes)}
    p_true = np.array([run.proba[i, column[t]] if t in column else 0.0 for i, t in enumerate(y)])
    figures: dict[str, float | None] = {
        "accuracy": float(correct.mean()),
        "log_loss": float(-np.log(np.clip(p_true, 1e-15, 1.0)).mean()),
        "events_per_s": len(y) / run.seconds,
    }
    if stream.positive is not None:
        p_pos = run.proba[:, column[stream.positive]] if stream.positive in column else 0 * y
        figures["roc_auc"] = float(roc_auc_score(y == stream.positive, p_pos))
    else:
        truth = [str(t) for t in y]
        guess = [str(p) for p in predicted]
        present = sorted(set(truth), key=str)
        figures["macro_f1"] = float(f1_score(truth, guess, labels=present, average="macro"))
    run.figures = figures
    run.window = _windowed(correct)  # type: ignore[attr-defined]


def _windowed(correct: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    window = min(WINDOW, max(len(correct) // 10, 1))
    sums = np.cumsum(np.concatenate([[0], correct.astype(np.float64)]))
    out: npt.NDArray[np.float64] = (sums[window:] - sums[:-window]) / window
    return out


# ---------------------------------------------------------------------------------- targets

# the default model is the nonlinear built-in (binned logistic regression): it answers both
TARGETS = (
    ("streamfit default", "River LR", ("accuracy", "quality"), 3.0),
    ("streamfit default", "River ARF", ("accuracy",), 10.0),
)


def targets(results: dict[str, dict[str, dict[str, float | None]]]) -> list[dict[str, Any]]:
    """Per stream and target: met or not, and by how much."""
    out = []
    for name, theirs, metrics, speed in TARGETS:
        for stream, runs in results.items():
            if name not in runs or theirs not in runs:
                continue
            mine, other = runs[name], runs[theirs]
            checks = {}
            for metric in metrics:
                key = metric
                if metric == "quality":
                    key = "roc_auc" if "roc_auc" in mine else "macro_f1"
                checks[key] = (mine[key], other[key], (mine[key] or 0) >= (other[key] or 0))
            ratio = (mine["events_per_s"] or 0) / (other["events_per_s"] or 1)
            checks["speed"] = (ratio, speed, ratio >= speed)
            met = all(c[2] for c in checks.values())
            out.append(
                {"stream": stream, "model": name, "against": theirs, "checks": checks, "met": met}
            )
    return out


# ---------------------------------------------------------------------------------- outputs


def table(results: dict[str, dict[str, dict[str, float | None]]]) -> str:
    lines = [
        "| stream | model | accuracy | ROC AUC / macro F1 | log loss | events/s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for stream, runs in results.items():
        for model, f in runs.items():
            quality = f.get("roc_auc", f.get("macro_f1"))
            tag = "AUC" if "roc_auc" in f else "F1"
            lines.append(
                f"| {stream} | {model} | {f['accuracy']:.4f} | {tag} {quality:.4f} | "
                f"{f['log_loss']:.4f} | {f['events_per_s']:,.0f} |"
            )
    return "\n".join(lines) + "\n"


def targets_text(checked: list[dict[str, Any]]) -> str:
    lines = [
        "| stream | target | figures (ours vs theirs) | speed | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in checked:
        figures = ", ".join(
            f"{k} {a:.4f} vs {b:.4f}" for k, (a, b, _) in t["checks"].items() if k != "speed"
        )
        ratio, need, _ = t["checks"]["speed"]
        lines.append(
            f"| {t['stream']} | {t['model']} vs {t['against']} | {figures} | "
            f"{ratio:.1f}x (need {need:.0f}x) | {'yes' if t['met'] else '**no**'} |"
        )
    met = sum(t["met"] for t in checked)
    lines.append(f"\n{met} of {len(checked)} targets met.\n")
    return "\n".join(lines)


def summary_text(
    results: dict[str, dict[str, dict[str, float | None]]], checked: list[dict[str, Any]]
) -> str:
    """One row per stream, for the project README: the default against River's LR and ARF."""
    lines = [
        "| stream | streamfit default | River LR | River ARF | events/s: default, LR, ARF "
        "| targets met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def figures(f: dict[str, float | None] | None) -> str:
        if not f:
            return ""
        tag, value = ("AUC", f.get("roc_auc")) if "roc_auc" in f else ("F1", f.get("macro_f1"))
        return f"{f['accuracy']:.3f} / {tag} {value:.3f} / {f['log_loss']:.3f}"

    for stream, runs in results.items():
        default, lr, arf = (runs.get(m) for m in ("streamfit default", "River LR", "River ARF"))
        speeds = ", ".join(
            f"{r['events_per_s']:,.0f}" for r in (default, lr, arf) if r and r.get("events_per_s")
        )
        mine = [t for t in checked if t["stream"] == stream]
        met = f"{sum(t['met'] for t in mine)} of {len(mine)}"
        lines.append(
            f"| {stream} | {figures(default)} | {figures(lr)} | {figures(arf)} | {speeds} | {met} |"
        )
    met = sum(t["met"] for t in checked)
    lines.append(
        f"\nAccuracy / ROC AUC or macro F1 / log loss, prequential over every event; "
        f"{met} of {len(checked)} targets met. The full table, the targets one by one and "
        "the plot: [`bench/README.md`](bench/README.md).\n"
    )
    return "\n".join(lines)


def write_reports(
    data: dict[str, Any], checked: list[dict[str, Any]], out: Path, readme: bool = True
) -> str:
    """The tables into ``out/quality.md`` and (for the results folder) the READMEs'
    ``quality`` markers."""
    text = "### Learning quality\n\n" + table(data["results"]) + "\n### Targets\n\n"
    text += targets_text(checked)
    (out / "quality.md").write_text(text)
    if readme and out == RESULTS:
        replace_between(ROOT / "bench" / "README.md", "quality", text)
        replace_between(ROOT / "README.md", "quality", summary_text(data["results"], checked))
    return text


def plot(windows: dict[str, dict[str, npt.NDArray[np.float64]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(windows)
    cols = 3
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, stream in zip(axes.ravel(), names, strict=False):
        for model, series in windows[stream].items():
            ax.plot(np.arange(len(series)), series, label=model, linewidth=1)
        ax.set_title(stream)
        ax.set_xlabel("events")
        ax.set_ylabel("accuracy over a sliding window")
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def linear_spec() -> dict[str, Any]:
    """The built-in logistic regression with its default settings."""
    return {"name": "linear", "builtin": "logistic_regression"}


def bench(names: list[str], rows: int | None, river: bool) -> dict[str, Any]:
    results: dict[str, dict[str, dict[str, float | None]]] = {}
    windows: dict[str, dict[str, npt.NDArray[np.float64]]] = {}
    notes: dict[str, str] = {}
    for key in names:
        stream = STREAMS[key]()
        if rows is not None and len(stream.frame) > rows:
            stream.frame = stream.frame.iloc[:rows].reset_index(drop=True)
            stream.labels = stream.labels[:rows]
        notes[stream.name] = stream.note
        runs = [
            run_streamfit(stream, None, "streamfit default"),
            run_streamfit(stream, linear_spec(), "streamfit linear"),
        ]
        if river:
            events = records(stream)
            for label, model in river_models(stream).items():
                runs.append(run_river(stream, events, model, label))
        results[stream.name] = {}
        windows[stream.name] = {}
        for run in runs:
            score(stream, run)
            results[stream.name][run.model] = run.figures
            windows[stream.name][run.model] = run.window  # type: ignore[attr-defined]
            f = run.figures
            print(
                f"{stream.name:18} {run.model:20} acc {f['accuracy']:.4f} "
                f"{'auc' if 'roc_auc' in f else 'f1 '} {f.get('roc_auc', f.get('macro_f1')):.4f} "
                f"logloss {f['log_loss']:.4f} {f['events_per_s']:>10,.0f}/s",
                flush=True,
            )
    return {"results": results, "windows": windows, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--no-river", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the tables from quality.json"
    )
    args = parser.parse_args(argv)
    if args.report_only:  # the reports again from the last run's figures
        saved = json.loads((args.out / "quality.json").read_text())
        print(write_reports(saved, saved["targets"], args.out, readme=not args.no_readme))
        return 0
    names = [n.strip() for n in args.streams.split(",") if n.strip()]
    data = bench(names, args.rows, not args.no_river)
    checked = targets(data["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(
        json.dumps(
            {"results": data["results"], "notes": data["notes"], "targets": checked},
            indent=1,
            default=str,
        )
    )
    plot(data["windows"], args.out / "quality.png")
    print(write_reports(data, checked, args.out, readme=not args.no_readme))
    return 0


if __name__ == "__main__":
    sys.exit(main())

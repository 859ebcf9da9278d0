"""One benchmark scenario per process: ``python -m bench.scenarios NAME --bootstrap B ...``.

Each scenario reads ``--events`` events of ``--topic`` from the beginning with a fresh consumer
group and prints one JSON line: events handled, seconds (from the moment the first batch of
events was received to the moment the last one was handled, outputs flushed), events per
second, the process's peak RSS (``ru_maxrss``) and what it produced (predictions, results rows,
ROC AUC). One process per scenario keeps peak memory per scenario and the scenarios apart.

Scenarios:

``bare_consume``
    (a) The ceiling: a confluent-kafka consumer (librdkafka defaults, as the streamfit worker
    uses) that only receives the messages, in batches of 5,000.
``streamfit``
    (b)/(b') A streamfit worker built from a spec with ``streamfit.spec.validate_spec`` and
    ``streamfit.runtime.build.build_worker``: built-in logistic regression, metrics to SQLite,
    predictions to ``--predictions-topic``, results rows to SQLite with ``--write-results``.
    ``--roles train`` makes the topic a ``train`` topic (test-then-train: every labeled event
    is predicted, scored by the evaluator, then learned); ``--roles both`` makes it a
    ``train`` and a ``score`` topic (labeled events are learned, unlabeled ones are scored and
    written out). ``--score-training`` sets ``outputs.score_training_events`` where the worker
    has it (predictions and results rows for training events too). ``--ready`` waits for the
    partition assignment and prints ``READY`` first (the latency run starts producing then);
    ``--drain`` (the scale run, several workers in one ``--group``) runs until the partitions
    this worker holds are read to their end.
``river``
    (c1) River, one event at a time from a confluent-kafka consumer: ``orjson.loads``, then
    ``predict_proba_one``, ``metrics.ROCAUC.update``, ``learn_one``. The model is River's
    canonical ``StandardScaler | LogisticRegression``; on ``mixed30`` a ``TransformerUnion``
    of scaled numerics, one-hot categoricals and a bag of words of the text (missing values
    are dropped from the event dict, River's convention).
``river_text``
    (t2) River's ``TFIDF`` of the ``sentence`` field into ``LogisticRegression``, one event at
    a time from a confluent-kafka consumer (the text suite, ``bench.text``).
``quix_river``
    (c2) Quix Streams + River: an ``Application`` with a JSON topic and ``sdf.update`` calling
    the same River model and metric per event. Runs in ``bench/.venv-quix`` (Quix Streams
    pins an older confluent-kafka and pydantic than streamfit).
``kafka_python_sklearn``
    (c3) kafka-python ``KafkaConsumer`` iterated message by message, scikit-learn
    ``SGDClassifier(loss="log_loss")``: ``predict_proba`` then ``partial_fit`` on a 1-row
    array (``FeatureHasher`` over the event dict on ``mixed30``), and a running log loss.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

Result = dict[str, Any]
SCENARIOS: dict[str, Callable[[argparse.Namespace], Result]] = {}


def scenario(name: str) -> Callable[[Callable[[argparse.Namespace], Result]], Any]:
    def register(fn: Callable[[argparse.Namespace], Result]) -> Any:
        SCENARIOS[name] = fn
        return fn

    return register


def _group() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


#: Set on every confluent-kafka consumer here, as streamfit's ``KafkaSource`` sets it: with
#: librdkafka's default (1000 ms) a consumer that empties its prefetch queue (100k messages)
#: faster than that waits on it, which held bare consume near 240k events/s on this machine
#: (about 900k/s without the wait).
PREFETCH = {"fetch.queue.backoff.ms": 10}


def _consumer(args: argparse.Namespace) -> Any:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": _group(),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **PREFETCH,
        }
    )
    consumer.subscribe([args.topic])
    return consumer


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC from ranks (ties averaged), for the final report only."""
    if len(np.unique(y)) < 2:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(p)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------------------------- (a) ceiling


@scenario("bare_consume")
def bare_consume(args: argparse.Namespace) -> Result:
    consumer = _consumer(args)
    seen = 0
    first = 0.0
    while seen < args.events:
        msgs = consumer.consume(5_000, 1.0)
        if msgs and not first:
            first = time.perf_counter()
        seen += sum(1 for m in msgs if m.error() is None)
    elapsed = time.perf_counter() - first
    consumer.close()
    return {"events": seen, "seconds": elapsed}


@scenario("echo")
def echo(args: argparse.Namespace) -> Result:
    """The latency floor: consume and produce every event's key to the predictions topic."""
    from confluent_kafka import Producer

    consumer = _consumer(args)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    while not consumer.assignment():
        consumer.poll(0.1)
    print("READY", flush=True)
    seen = 0
    first = 0.0
    while seen < args.events:
        msgs = _poll_as_streamfit(consumer, args.batch, args.timeout)
        if msgs and not first:
            first = time.perf_counter()
        for msg in msgs:
            if msg.error() is None:
                producer.produce(args.predictions_topic, b"{}", msg.key())
                seen += 1
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - first
    consumer.close()
    return {"events": seen, "seconds": elapsed}


def _poll_as_streamfit(consumer: Any, max_records: int, timeout: float) -> list[Any]:
    """What the worker's ``KafkaSource.poll`` takes: the messages the client holds now, else
    the first to come within ``timeout`` and those that came with it."""
    msgs: list[Any] = consumer.consume(max_records, 0)
    if not msgs:
        msgs = consumer.consume(1, timeout)
        if msgs and max_records > 1:
            msgs += consumer.consume(max_records - 1, 0)
    return msgs


# ---------------------------------------------------------------------------- (c) baselines


def river_model(dataset: str) -> Any:
    """River's canonical online logistic regression for ``dataset`` (see the module doc)."""
    import numbers

    from river import compose, feature_extraction, linear_model, preprocessing

    if dataset == "numeric10":
        return preprocessing.StandardScaler() | linear_model.LogisticRegression()
    features = compose.TransformerUnion(
        compose.SelectType(numbers.Number) | preprocessing.StandardScaler(),
        compose.Discard("text")
        | compose.SelectType(str)
        | preprocessing.OneHotEncoder(drop_zeros=True),
        feature_extraction.BagOfWords(on="text"),
    )
    return features | linear_model.LogisticRegression()


def river_features(dataset: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Event dict (label removed) to River's input: missing values dropped."""
    if dataset == "numeric10":
        return lambda x: x

    def clean(x: dict[str, Any]) -> dict[str, Any]:
        x = {k: v for k, v in x.items() if v is not None}
        x.setdefault("text", "")
        return x

    return clean


@scenario("river")
def river_baseline(args: argparse.Namespace) -> Result:
    from river import metrics

    metric = metrics.ROCAUC()
    return _river_loop(args, river_model(args.dataset), river_features(args.dataset), metric)


@scenario("river_hst")
def river_half_space_trees(args: argparse.Namespace) -> Result:
    """(d') River's Half-Space Trees (after the MinMaxScaler they need), fed one event at a
    time by a confluent-kafka consumer: ``score_one`` then ``learn_one`` per event."""
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=0))
    score, learn = model.score_one, model.learn_one

    def handle(x: dict[str, Any]) -> None:
        x.pop("y", None)
        score(x)
        learn(x)

    return _one_at_a_time(args, handle)


@scenario("river_lr")
def river_lr_alone(args: argparse.Namespace) -> Result:
    """River's ``LogisticRegression`` alone, predict then learn per event: no scaling and no
    metric, less work than (b) does (numeric10 only: the model takes numbers only)."""
    from river import linear_model

    return _river_loop(args, linear_model.LogisticRegression(), lambda x: x, None)


def _river_loop(
    args: argparse.Namespace, model: Any, features: Callable[[dict[str, Any]], Any], metric: Any
) -> Result:
    def handle(x: dict[str, Any]) -> None:
        y = x.pop("y")
        x = features(x)
        probabilities = model.predict_proba_one(x)
        if metric is not None:
            metric.update(y, probabilities)
        model.learn_one(x, y)

    result = _one_at_a_time(args, handle)
    return {**result, "roc_auc": metric.get() if metric is not None else None}


def _one_at_a_time(args: argparse.Namespace, handle: Callable[[dict[str, Any]], None]) -> Result:
    """Hand ``handle`` each event's decoded value, one at a time, from a confluent-kafka
    consumer (polls of 500), until ``--events``; the seconds from the first poll that brought
    events to the last event handled."""
    consumer = _consumer(args)
    loads = orjson.loads
    seen = 0
    first = 0.0
    while seen < args.events:
        msgs = consumer.consume(500, 1.0)
        if msgs and not first:
            first = time.perf_counter()
        for msg in msgs:
            if msg.error() is not None:
                continue
            handle(loads(msg.value()))
            seen += 1
            if seen >= args.events:
                break
    elapsed = time.perf_counter() - first
    consumer.close()
    return {"events": seen, "seconds": elapsed}


@scenario("river_text")
def river_text(args: argparse.Namespace) -> Result:
    """(t2) River's ``feature_extraction.TFIDF`` of the ``sentence`` field into
    ``linear_model.LogisticRegression``, one event at a time: ``predict_proba_one`` (its most
    probable class is the prediction; none before the first label counts as wrong), the
    accuracy and ROC AUC, ``learn_one``."""
    from river import feature_extraction, linear_model, metrics

    model = feature_extraction.TFIDF(on="sentence") | linear_model.LogisticRegression()
    accuracy, auc = metrics.Accuracy(), metrics.ROCAUC()

    def handle(x: dict[str, Any]) -> None:
        y = x.pop("y") == 1
        probabilities = model.predict_proba_one(x)
        predicted = max(probabilities, key=probabilities.get) if probabilities else None
        accuracy.update(y, predicted)
        auc.update(y, probabilities)
        model.learn_one(x, y)

    result = _one_at_a_time(args, handle)
    return {**result, "accuracy": accuracy.get(), "roc_auc": auc.get()}


@scenario("quix_river")
def quix_river(args: argparse.Namespace) -> Result:
    import logging

    from quixstreams import Application
    from river import metrics

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=_group(),
        auto_offset_reset="earliest",
        loglevel=logging.WARNING,
        consumer_extra_config=dict(PREFETCH),
    )
    topic = app.topic(args.topic, value_deserializer="json")
    model = river_model(args.dataset)
    features = river_features(args.dataset)
    metric = metrics.ROCAUC()
    state = {"seen": 0, "first": 0.0, "last": 0.0}

    def predict_then_learn(value: dict[str, Any]) -> None:
        if not state["first"]:
            state["first"] = time.perf_counter()
        x = dict(value)
        y = x.pop("y")
        x = features(x)
        metric.update(y, model.predict_proba_one(x))
        model.learn_one(x, y)
        state["seen"] += 1
        if state["seen"] == args.events:
            state["last"] = time.perf_counter()
            app.stop()

    sdf = app.dataframe(topic)
    sdf = sdf.update(predict_then_learn)
    app.run()
    return {
        "events": state["seen"],
        "seconds": (state["last"] or time.perf_counter()) - state["first"],
        "roc_auc": metric.get(),
    }


@scenario("kafka_python_sklearn")
def kafka_python_sklearn(args: argparse.Namespace) -> Result:
    from kafka import KafkaConsumer
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import SGDClassifier

    from bench.data import NUMERICS_NUMERIC

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=_group(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    model = SGDClassifier(loss="log_loss")
    classes = np.array([0, 1])
    hasher = FeatureHasher(n_features=2**12, input_type="dict")

    def vectorize(x: dict[str, Any]) -> Any:
        if args.dataset == "numeric10":
            return np.array([[x[name] for name in NUMERICS_NUMERIC]])
        row: dict[str, Any] = {}
        for key, value in x.items():
            if value is None:
                continue
            if key == "text":
                for token in value.split():
                    row[f"text={token}"] = 1.0
            else:
                row[key] = value  # strings hash as "key=value"
        return hasher.transform([row])

    ys = np.empty(args.events, dtype=np.int64)
    ps = np.empty(args.events)
    log_loss = 0.0
    seen = 0
    first = 0.0
    for msg in consumer:
        if not first:
            first = time.perf_counter()
        x = orjson.loads(msg.value)
        y = x.pop("y")
        X = vectorize(x)
        p = float(model.predict_proba(X)[0, 1]) if seen else 0.5
        log_loss -= math.log(max(p if y == 1 else 1.0 - p, 1e-15))
        model.partial_fit(X, [y], classes=classes)
        ys[seen], ps[seen] = y, p
        seen += 1
        if seen >= args.events:
            break
    elapsed = time.perf_counter() - first
    consumer.close()
    return {
        "events": seen,
        "seconds": elapsed,
        "roc_auc": _auc(ys[:seen], ps[:seen]),
        "log_loss": log_loss / max(seen, 1),
    }


# --------------------------------------------------------------------------- (b) streamfit


def streamfit_spec(args: argparse.Namespace, db: Path) -> Any:
    from streamfit.spec import validate_spec
    from streamfit.spec.model import OutputsSpec, PipelineSpec

    outputs: dict[str, Any] = {
        "database": f"sqlite:///{db}",
        "predictions_topic": args.predictions_topic,
        "write_results": args.write_results,
    }
    if args.score_training:
        if "score_training_events" not in OutputsSpec.model_fields:
            raise SystemExit("this streamfit has no outputs.score_training_events")
        outputs["score_training_events"] = True
    roles = (
        {"train": args.topic}
        if args.roles == "train"
        else {"train": args.topic, "score": args.topic}
    )
    learning: dict[str, Any] = {
        "topics": roles,
        "target": "y",
        "models": [{"name": "logistic", "builtin": "logistic_regression"}],
    }
    if args.dataset == "sst2":  # (t1): the sentence is text, read as words and word pairs
        learning["features"] = {"types": {"sentence": "text"}}
    if args.anomaly:  # (d): every event scored by the default detector, then learned from
        outputs.pop("score_training_events", None)
        learning = {"topics": {"score": args.topic}, "task": "anomaly"}
        learning["features"] = {"exclude": ["y"]}  # the label of (b), not a sensor
    return validate_spec(
        {
            "name": "bench",
            "source": {
                "kind": "kafka",
                "bootstrap_servers": args.bootstrap,
                "group_id": args.group or _group(),
            },
            **learning,
            "outputs": outputs,
            "batch": {"max_records": args.batch, "timeout": args.timeout},
            "processing": args.processing,
            "learning": {"block_events": args.block_events},
            "checkpoint": {
                "interval_events": 10**12 if args.checkpoint_seconds <= 0 else 10**9,
                "interval_seconds": 10**9
                if args.checkpoint_seconds <= 0
                else args.checkpoint_seconds,
            },
            **(
                {"evaluation": {"interval_events": args.metrics_every}}
                if args.metrics_every
                else {}
            ),
            # field statistics (on by default in the product) only where the scenario asks
            **({"stats": args.stats} if "stats" in PipelineSpec.model_fields else {}),
            # drift detectors on each model's errors (b-drift)
            **({"drift": True} if args.drift else {}),
        }
    )


class _Drained:
    """``until`` for the scale run: True once this worker holds partitions and has read each
    of them to its end (the topic is complete before the run starts, so its end offsets are
    read once; positions are checked every 0.2 s). A partition handed over after another
    worker read it to the end has no position until something arrives, so the group's
    committed offset stands for it: without that, a worker that joins late waits forever."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.ends = _end_offsets(bootstrap, topic)
        self.next_check = 0.0

    def __call__(self, worker: Any) -> bool:
        now = time.monotonic()
        if now < self.next_check:
            return False
        self.next_check = now + 0.2
        source = worker.source
        assigned = source.assignment()
        if not assigned:
            return False
        position = source.position()
        unread = [tp for tp in assigned if tp not in position]
        if unread:  # nothing fetched from these yet: at their end if the group committed it
            position.update(source.committed(unread))
        return all(position.get(tp, -1) >= self.ends[tp] for tp in assigned)


@scenario("streamfit")
def streamfit_pipeline(args: argparse.Namespace) -> Result:
    from streamfit.runtime.build import build_worker

    db = Path(tempfile.mkdtemp(prefix="streamfit-bench-")) / "bench.db"
    spec = streamfit_spec(args, db)
    worker = build_worker(spec)
    source = worker.source
    target = args.events
    if args.ready:
        while not source.assignment():
            worker.step(timeout=0.1)
        print("READY", flush=True)

    first = [0.0]
    poll = source.poll

    def timed_poll(max_records: int, timeout: float) -> Any:
        messages = poll(max_records, timeout)
        if messages is not None and len(messages) and not first[0]:
            first[0] = time.perf_counter()
            first.append(time.time())
        return messages

    source.poll = timed_poll
    until = (
        _Drained(args.bootstrap, args.topic)
        if args.drain
        else lambda w: w.stats.events_in >= target
    )
    timeline = _Timeline(source) if args.drain else None
    worker.run(until=until, on_batch=timeline)
    end = time.perf_counter()
    source.poll = poll
    stats = worker.stats
    figures = worker.evaluation.evaluators[worker.slots[0].name].snapshot()
    auc, accuracy = figures.get("roc_auc"), figures.get("accuracy")
    worker.close()  # leave the group: a scale run's other worker takes the partitions at once
    predictions = (
        _topic_size(args.bootstrap, args.predictions_topic) if args.predictions_topic else 0
    )
    rows = _count_rows(db, spec.outputs.results_table_name(spec.name))
    training_rows = _count_rows(db, spec.outputs.training_table_name(spec.name))
    shutil.rmtree(db.parent, ignore_errors=True)
    return {
        "events": stats.events_in,
        "seconds": end - first[0],
        "wall_start": first[1] if len(first) > 1 else None,
        "wall_end": time.time(),
        "events_trained": stats.events_trained,
        "events_scored": stats.events_scored,
        "predictions_emitted": predictions,
        "results_rows": rows,
        "training_rows": training_rows,
        "roc_auc": auc,
        "accuracy": accuracy,
        "batch": {"max_records": args.batch, "timeout": args.timeout},
        **({"timeline": timeline.samples, "assigned": timeline.changes} if timeline else {}),
    }


class _Timeline:
    """``on_batch`` for the scale run: (wall time, events read, CPU seconds of the main thread,
    CPU seconds of the whole process, seconds the main thread waited for a CPU while ready to
    run) every 0.1 s, and the wall times at which this worker's partition assignment changed,
    so the harness can measure the group's throughput, and where the time went, once every
    worker holds its final partitions."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.samples: list[tuple[float, int, float, float, float]] = []
        self.changes: list[float] = []
        self._assignment: set[Any] = set()
        self._next = 0.0

    def __call__(self, worker: Any, _n: int) -> None:
        now = time.time()
        if now < self._next:
            return
        self._next = now + 0.1
        self.samples.append(
            (now, worker.stats.events_in, time.thread_time(), time.process_time(), _waited())
        )
        assignment = set(self.source.assignment())
        if assignment != self._assignment:
            self._assignment = assignment
            self.changes.append(now)


def _waited() -> float:
    """Seconds this thread has spent ready to run but waiting for a CPU (Linux schedstat;
    NaN where there is none)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan


def _end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": _group()})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def _topic_size(bootstrap: str, topic: str) -> int:
    return sum(_end_offsets(bootstrap, topic).values())


def _count_rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()[0]
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]) if found else 0


def peak_rss_mb() -> float:
    """This process's peak resident set size: ``VmHWM`` of its memory map. (``ru_maxrss`` is
    no good here: Linux keeps in it the RSS the process had before ``exec``, i.e. the parent's
    at ``fork``, so every scenario would show at least the harness's peak.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(SCENARIOS))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--dataset", default="numeric10")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--predictions-topic")
    parser.add_argument("--write-results", action="store_true")
    parser.add_argument("--roles", choices=("train", "both"), default="train")
    parser.add_argument("--score-training", action="store_true")
    parser.add_argument("--metrics-every", type=int, default=0)
    parser.add_argument("--group")
    parser.add_argument("--ready", action="store_true")
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--block-events", type=int, default=4096)
    parser.add_argument("--stats", action="store_true", help="field statistics on (b-stats)")
    parser.add_argument("--drift", action="store_true", help="drift: ADWIN on the errors (b-drift)")
    parser.add_argument(
        "--anomaly", action="store_true", help="task: anomaly, the default detector (d)"
    )
    parser.add_argument(
        "--checkpoint-seconds", type=float, default=5.0, help="0: only the final checkpoint"
    )
    parser.add_argument(
        "--processing", choices=("at_least_once", "exactly_once"), default="at_least_once"
    )
    args = parser.parse_args(argv)
    if os.environ.get("BENCH_DEBUG"):
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result = SCENARIOS[args.name](args)
    seconds = result["seconds"]
    result = {
        "scenario": args.name,
        "dataset": args.dataset,
        **result,
        "seconds": round(seconds, 4),
        "events_per_second": round(result["events"] / seconds, 1) if seconds > 0 else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""streamfit from Python: build a pipeline, send it events, run it, read what it wrote.

``Pipeline`` is what ``streamfit run`` uses too: a spec (a YAML file, a mapping, or a
``PipelineSpec``) becomes a worker with its source, outputs and store. In a notebook or a test
the in-process stream needs no broker: ``send`` appends events to its topics, ``run`` handles
them and returns once every topic is read to its end; the tables it wrote come back as data
frames. Over Kafka, ``send`` produces to the topic and ``run`` goes on until a condition
(``max_events``, ``idle``, ``until``) or a stop event, such as SIGINT.

The pipeline is a context manager: leaving the ``with`` block always leaves the consumer
group, flushes and closes the outputs, whatever happened inside.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> train = [{"x": float(x), "y": int(x > 0)} for x in rng.normal(size=2000)]
>>> with Pipeline({
...     "name": "quick",
...     "topics": {"train": "train", "score": "score"},
...     "target": "y",
...     "models": [{"name": "lr", "builtin": "logistic_regression"}],
...     "outputs": {"database": "sqlite://"},
... }) as pipeline:
...     sent = pipeline.send("train", train) + pipeline.send("score", [{"x": -2.0}, {"x": 2.0}])
...     stats = pipeline.run()
...     results = pipeline.results()
...     metrics = pipeline.metrics()
>>> stats.events_in, stats.events_trained, stats.events_scored
(2002, 2000, 2)
>>> results["prediction"].tolist()
['0', '1']
>>> last = metrics.iloc[-1]
>>> last["model"], int(last["events_seen"]), bool(last["window_accuracy"] > 0.9)
('lr', 2000, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

import numpy as np
import orjson
import pandas as pd

from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.errors import SpecError
from streamfit.runtime.build import build_worker
from streamfit.runtime.component import Component
from streamfit.runtime.worker import RunStats, Worker
from streamfit.spec.loader import load_spec, validate_spec
from streamfit.spec.model import KafkaSourceSpec, MemorySourceSpec, PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.streams.memory import MemoryBroker
from streamfit.streams.replay import frame_to_events

__all__ = ["Pipeline", "idle_for"]

Event: TypeAlias = Mapping[str, Any] | bytes
Events: TypeAlias = Iterable[Event] | pd.DataFrame


def idle_for(seconds: float) -> Callable[[Worker], bool]:
    """A stop condition: no new event for ``seconds`` since the worker was last assigned
    partitions (or a service came back), once it holds any.

    Joining a group can take longer than ``seconds`` when a dead member is still in it: the
    clock starts when partitions are assigned.
    """

    def idle(worker: Worker) -> bool:
        if not (worker.read or worker.assigned):
            return False
        since = max(worker.last_event_at, worker.assigned_at, worker.resumed_at)
        return time.monotonic() - since >= seconds

    return idle


class Pipeline:
    """One pipeline: its spec, its worker, its in-process stream when it has one.

    Parameters
    ----------
    spec
        A ``PipelineSpec``, or a mapping with the same keys as the YAML spec. A mapping
        without ``source`` runs on the in-process stream.
    database
        A database URL that overrides the spec's ``outputs.database``.
    worker_id
        This worker's id among the pipeline's workers (default: ``STREAMFIT_WORKER_ID``, 0).
    components
        Extra worker components (``streamfit.runtime.component.Component``).
    """

    def __init__(
        self,
        spec: PipelineSpec | Mapping[str, Any],
        *,
        database: str | None = None,
        worker_id: str | None = None,
        settings: Settings | None = None,
        components: Sequence[Component] = (),
    ) -> None:
        if not isinstance(spec, PipelineSpec):
            data = dict(spec)
            data.setdefault("source", {"kind": "memory"})
            spec = validate_spec(data)
        if database:
            spec = spec.model_copy(
                update={"outputs": spec.outputs.model_copy(update={"database": database})}
            )
        self.spec = spec
        self.broker = MemoryBroker() if isinstance(spec.source, MemorySourceSpec) else None
        self.settings = settings or Settings()
        self.worker = build_worker(
            spec, self.settings, broker=self.broker, worker_id=worker_id, components=components
        )
        self._producers: dict[str, Any] = {}

    @classmethod
    def from_yaml(cls, path: str | Path, **options: Any) -> Pipeline:
        """The pipeline a YAML spec file describes (``options`` as for the constructor)."""
        return cls(load_spec(path), **options)

    def __repr__(self) -> str:
        return f"Pipeline(name={self.spec.name!r}, source={self.spec.source_or_kafka.kind!r})"

    # -- events in -------------------------------------------------------------------------------

    def send(self, topic: str, events: Events, keys: Sequence[bytes | None] | None = None) -> int:
        """Append ``events`` to ``topic``: mappings (JSON-encoded), bytes (as they are) or the
        rows of a data frame. In-process stream: at once; Kafka: produced and flushed.
        Returns how many were sent."""
        values = _encode(events)
        if self.broker is not None:
            self.broker.append(topic, values, keys=keys)
        elif isinstance(kafka := self.spec.source_or_kafka, KafkaSourceSpec):
            from streamfit.runtime.build import kafka_bootstrap
            from streamfit.streams.kafka import KafkaSink

            sink = self._producers.get(topic)
            if sink is None:
                bootstrap = kafka_bootstrap(kafka, self.settings)
                sink = KafkaSink(bootstrap, topic, config=dict(kafka.config))
                self._producers[topic] = sink
            sink.write(list(zip(keys or [None] * len(values), values, strict=True)))
            sink.flush()
        else:
            raise SpecError("a file source replays its file: nothing can be sent to it", "source")
        return len(values)

    # -- running ---------------------------------------------------------------------------------

    def run(
        self,
        until: Callable[[Worker], bool] | None = None,
        *,
        max_events: int | None = None,
        idle: float | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[Worker, int], None] | None = None,
    ) -> RunStats:
        """Handle events until a condition holds, then learn what is pending and checkpoint.

        Stops at the first of: ``until(worker)`` true, ``max_events`` more events handled,
        ``idle`` seconds without an event, ``stop`` set (a stop by ``stop`` leaves the last
        incomplete block for the next run). With none of them, an in-process pipeline stops
        once every topic is read to its end, and any other runs until ``stop`` is set.
        """
        worker = self.worker
        conditions: list[Callable[[Worker], bool]] = [] if until is None else [until]
        if max_events is not None:
            target = worker.stats.events_in + max_events
            conditions.append(lambda w: w.stats.events_in >= target)
        if idle is not None:
            conditions.append(idle_for(idle))
        if not conditions and stop is None:
            if self.broker is None:
                raise ValueError("give run() a condition (until, max_events, idle) or a stop")
            conditions.append(self._caught_up)
        return worker.run(
            stop=stop,
            until=lambda w: any(condition(w) for condition in conditions),
            on_batch=on_batch,
        )

    def _caught_up(self, worker: Worker) -> bool:
        assert self.broker is not None
        for topic in self.spec.topics.all:
            for tp, end in self.broker.end_offsets(topic).items():
                if worker.read.get(tp, 0) < end:
                    return False
        return True

    # -- what it wrote ---------------------------------------------------------------------------

    def results(self, limit: int | None = None) -> pd.DataFrame:
        """The results table: a row per scored event, its fields and predictions."""
        rows = self.worker.store.read_results(self.worker.outputs.results_table, limit=limit)
        return pd.DataFrame(rows)

    def metrics(self, model: str | None = None) -> pd.DataFrame:
        """The training table: each model's prequential metrics over time."""
        return pd.DataFrame(self.worker.store.read_training(self.worker.evaluation.table, model))

    def dead_letters(self) -> pd.DataFrame:
        """The events set aside, with their reasons and original bytes."""
        letters = self.worker.store.read_dead_letters()
        columns = ["topic", "partition", "offset", "reason", "value", "key"]
        return pd.DataFrame(
            [[getattr(letter, c) for c in columns] for letter in letters], columns=columns
        )

    def predict(self, events: Events) -> pd.DataFrame:
        """What each model predicts for ``events`` now (nothing is learned or written): one
        row per event, ``prediction`` and ``probability`` of the champion, then the others'
        as ``prediction__<model>``."""
        values = _encode(events)
        if self.spec.task == "anomaly":
            raise ValueError(
                "Pipeline.predict is for classification and regression pipelines: an anomaly "
                "pipeline's scores are in its results table (Pipeline.results())"
            )
        decoded = decode_json(Messages.from_values(values), self.spec.target, self.spec.task)
        if decoded.dead_letters:
            first = decoded.dead_letters[0]
            raise ValueError(f"event {first.offset} cannot be decoded: {first.reason}")
        featurizer = self.worker.featurizer
        X = featurizer.transform(decoded.batch)
        records = partial(featurizer.records, decoded.batch)  # for models that read records
        out: dict[str, Any] = {}
        for i, predicted in enumerate(self.worker.models.predict(X, records)):
            suffix = "" if i == 0 else f"__{predicted.name}"
            out[f"prediction{suffix}"] = predicted.prediction
            if predicted.probability is not None:
                out[f"probability{suffix}"] = np.asarray(predicted.probability, dtype=float)
        return pd.DataFrame(out)

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the consumer group, flush and close the outputs and the store."""
        try:
            self.worker.close()
        finally:
            for sink in self._producers.values():
                sink.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _encode(events: Events) -> list[bytes]:
    if isinstance(events, pd.DataFrame):
        return frame_to_events(events)
    option = orjson.OPT_SERIALIZE_NUMPY
    return [e if isinstance(e, bytes) else orjson.dumps(e, option=option) for e in events]

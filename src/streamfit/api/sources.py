"""Where the API's figures come from: a running worker, or the store alone.

A ``PipelineSource`` gives the API one pipeline's spec, store, serving copy (``Served``),
status (events, throughput, lag, last checkpoint) and current model quality, and takes the
events sent to it. Two kinds:

* ``LiveSource`` (``streamfit run --serve``): the worker's own figures. The worker loop runs
  on the main thread; between two batches its ``on_batch`` hook calls ``publish``, which
  copies what the API reads (counters, offsets, each model's metrics) and, each
  ``publish_seconds`` or after a checkpoint, a new ``Served``. Server threads read only what
  was published: they never touch the worker's own objects.
* ``StoreSource`` (``streamfit serve``): the tables, and the models of the latest checkpoint,
  reloaded as new checkpoints land (a background thread looks every ``reload_seconds``).

Consumer lag is the broker's end offset of each partition less the position the pipeline has
read (live) or checkpointed (store). For Kafka it comes from a client of the API's own that
joins no group (``KafkaLag``), never from the worker's consumer.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import sqlalchemy as sa

from streamfit.api.serving import Served
from streamfit.batch import Offsets
from streamfit.errors import StreamfitError
from streamfit.spec.model import KafkaSourceSpec, MemorySourceSpec, PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.store.tables import fixed_metadata
from streamfit.streams.memory import MemoryBroker

__all__ = [
    "KafkaLag",
    "LiveSource",
    "PipelineSource",
    "Sample",
    "Status",
    "StoreSource",
]

log = logging.getLogger("streamfit.api")

TopicPartition = tuple[str, int]

#: the store's own tables, defined once: building them is most of what a look at the store
#: each second would cost (on a thread that holds the GIL while requests wait for it)
_FIXED = fixed_metadata()
#: throughput samples kept per pipeline (one a second: a quarter of an hour)
_SAMPLES = 900


class NotAcceptedError(StreamfitError):
    """The pipeline cannot take events this way (a file replay, an in-process stream that
    another process runs)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """The pipeline's counters at one moment (epoch seconds)."""

    at: float
    events_in: int | None
    events_trained: int | None
    events_scored: int | None
    dead_letters: int | None
    events_per_second: float | None


@dataclass(frozen=True, slots=True)
class Status:
    """What a pipeline has done, where it reads and when it last checkpointed."""

    mode: Literal["worker", "store"]
    running: bool
    sample: Sample
    checkpoints: int | None = None
    positions: Offsets = field(default_factory=dict)  # next offset to read (or checkpointed)
    checkpoint_at: dt.datetime | None = None
    checkpoint_offsets: Offsets = field(default_factory=dict)


class KafkaLag:
    """End offsets of a pipeline's topics, from a Kafka client that joins no group; cached
    for ``ttl`` seconds. Safe to call from several threads."""

    def __init__(self, bootstrap: str, topics: Sequence[str], config: Mapping[str, Any]) -> None:
        self.topics = list(topics)
        self._config = {
            **{k: v for k, v in config.items() if not k.startswith(("group.", "enable."))},
            "bootstrap.servers": bootstrap,
            "group.id": "streamfit-api-lag",  # never joined: no subscribe, no commit
            "enable.auto.commit": False,
        }
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._cached: tuple[float, Offsets] | None = None
        self.ttl = 2.0

    def end_offsets(self) -> Offsets:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1]
            ends = self._read()
            self._cached = (now, ends)
            return ends

    def _read(self) -> Offsets:
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        if self._consumer is None:
            self._consumer = Consumer(self._config)
        ends: Offsets = {}
        try:
            metadata = self._consumer.list_topics(timeout=3)
            for topic in self.topics:
                found = metadata.topics.get(topic)
                if found is None or found.error is not None:
                    continue
                for partition in sorted(found.partitions):
                    _low, high = self._consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=3
                    )
                    ends[(topic, partition)] = int(high)
        except KafkaException as exc:
            log.warning("reading the end offsets of %s failed: %s", self.topics, exc)
        return ends

    def reachable(self) -> bool:
        from confluent_kafka import KafkaException

        with self._lock:
            try:
                from confluent_kafka import Consumer

                if self._consumer is None:
                    self._consumer = Consumer(self._config)
                self._consumer.list_topics(timeout=3)
                return True
            except KafkaException:
                return False

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


class PipelineSource:
    """One pipeline as the API sees it (see the module docstring)."""

    mode: Literal["worker", "store"] = "store"

    def __init__(self, spec: PipelineSpec, store: Store, settings: Settings) -> None:
        self.spec = spec
        self.store = store
        self.settings = settings
        self.samples: deque[Sample] = deque(maxlen=_SAMPLES)
        self.lag_reader: KafkaLag | None = None
        self.batch_seconds: Callable[[float], None] | None = None  # set by the metrics
        self.checkpoint_seconds: Callable[[float], None] | None = None
        source = spec.source_or_kafka
        if isinstance(source, KafkaSourceSpec):
            from streamfit.runtime.build import kafka_bootstrap

            self.lag_reader = KafkaLag(
                kafka_bootstrap(source, settings), spec.topics.all, source.config
            )

    @property
    def name(self) -> str:
        return self.spec.name

    # -- what subclasses give

    def served(self) -> Served | None:
        raise NotImplementedError

    def status(self) -> Status:
        raise NotImplementedError

    def quality(self) -> list[dict[str, Any]]:
        """Each model's latest metrics (rows shaped as the training table's)."""
        raise NotImplementedError

    def send(self, topic: str, events: Sequence[bytes]) -> int:
        raise NotAcceptedError(f"pipeline {self.name} takes no events from the API")

    def end_offsets(self) -> Offsets:
        return self.lag_reader.end_offsets() if self.lag_reader is not None else {}

    def lag(self, status: Status) -> list[tuple[str, int, int, int]]:
        """(topic, partition, position, end) for each partition of the pipeline's topics."""
        ends = self.end_offsets()
        rows = []
        for (topic, partition), end in sorted(ends.items()):
            position = status.positions.get((topic, partition), 0)
            rows.append((topic, partition, position, end))
        return rows

    def ready(self) -> dict[str, bool]:
        """Whether the store (and the broker, if any) answer."""
        checks = {"store": _store_answers(self.store)}
        if self.lag_reader is not None:
            checks["broker"] = self.lag_reader.reachable()
        return checks

    def close(self) -> None:
        if self.lag_reader is not None:
            self.lag_reader.close()


class LiveSource(PipelineSource):
    """The pipeline of a worker running in this process (``streamfit run --serve``)."""

    mode: Literal["worker", "store"] = "worker"

    def __init__(
        self,
        worker: Any,  # streamfit.runtime.worker.Worker (imported lazily: it is the runtime)
        settings: Settings | None = None,
        broker: MemoryBroker | None = None,
        send: Callable[[str, list[bytes]], int] | None = None,
        publish_seconds: float = 1.0,
    ) -> None:
        super().__init__(worker.spec, _reader_store(worker.store), settings or Settings())
        self._worker_store = worker.store
        self.broker = broker
        self._send = send
        self.publish_seconds = publish_seconds
        self.running = False
        self._served: Served | None = None
        self._status: Status | None = None
        self._quality: list[dict[str, Any]] = []
        self._published_at = 0.0
        self._served_checkpoints = -1
        self._last_batch = time.monotonic()
        self._last_checkpoints = 0
        self._rate_mark: tuple[float, int] | None = None
        self._rate = 0.0
        self.publish(worker, force=True)

    @classmethod
    def of_pipeline(cls, pipeline: Any, publish_seconds: float = 1.0) -> LiveSource:
        """The source of a ``streamfit.Pipeline``: its worker, stream and ``send``."""
        return cls(
            pipeline.worker,
            pipeline.settings,
            pipeline.broker,
            pipeline.send,
            publish_seconds=publish_seconds,
        )

    def on_batch(self, worker: Any, n: int) -> None:
        """The worker's ``on_batch`` hook: time the batch, publish when it is due."""
        now = time.monotonic()
        if n and self.batch_seconds is not None:
            self.batch_seconds(now - self._last_batch)
        if worker.stats.checkpoints != self._last_checkpoints:
            self._last_checkpoints = worker.stats.checkpoints
            if self.checkpoint_seconds is not None:
                self.checkpoint_seconds(worker.stats.last_checkpoint_seconds)
        self.publish(worker)
        self._last_batch = time.monotonic()

    def publish(self, worker: Any, force: bool = False) -> None:
        """Copy what the API reads (on the worker's thread, between two batches)."""
        now = time.monotonic()
        checkpointed = worker.stats.checkpoints != self._served_checkpoints
        if not force and now - self._published_at < self.publish_seconds and not checkpointed:
            return
        stats = worker.stats
        if self._rate_mark is not None and now > self._rate_mark[0]:
            self._rate = (stats.events_in - self._rate_mark[1]) / (now - self._rate_mark[0])
        self._rate_mark = (now, stats.events_in)
        sample = Sample(
            time.time(),
            stats.events_in,
            stats.events_trained,
            stats.events_scored,
            stats.dead_letters,
            self._rate,
        )
        self._status = Status(
            "worker",
            self.running,
            sample,
            checkpoints=stats.checkpoints,
            positions=dict(worker.read),
            checkpoint_at=_checkpoint_time(worker),
        )
        self._quality = worker.evaluation.rows()
        self._served = Served.of_head(worker.head)
        self._served_checkpoints = stats.checkpoints
        self._published_at = now
        self.samples.append(sample)

    def served(self) -> Served | None:
        return self._served

    def status(self) -> Status:
        assert self._status is not None
        return replace(self._status, running=self.running)

    def quality(self) -> list[dict[str, Any]]:
        return self._quality

    def end_offsets(self) -> Offsets:
        broker = self.broker
        if broker is None:
            return super().end_offsets()
        ends: Offsets = {}
        for topic in self.spec.topics.all:
            ends.update(broker.end_offsets(topic))
        return ends

    def ready(self) -> dict[str, bool]:
        checks = super().ready()
        checks["worker"] = self.running
        return checks

    def close(self) -> None:
        super().close()
        if self.store is not self._worker_store:
            self.store.close()

    def send(self, topic: str, events: Sequence[bytes]) -> int:
        if self._send is None:
            return super().send(topic, events)
        return int(self._send(topic, list(events)))


class StoreSource(PipelineSource):
    """A pipeline read from its store, with the models of its latest checkpoint
    (``streamfit serve``)."""

    def __init__(
        self, spec: PipelineSpec, settings: Settings | None = None, reload_seconds: float = 1.0
    ) -> None:
        from streamfit.runtime.build import database_url

        settings = settings or Settings()
        super().__init__(spec, Store(database_url(spec, settings), spec.name), settings)
        self.reload_seconds = reload_seconds
        self._served: Served | None = None
        self._status = Status("store", False, Sample(time.time(), None, None, None, None, None))
        self._mark: Any = None  # the newest checkpoint state's time when last loaded
        self._producers: dict[str, Any] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.reload()

    def start(self) -> None:
        """Reload in the background as new checkpoints land."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._reload_loop, name=f"reload-{self.name}", daemon=True
            )
            self._thread.start()

    def _reload_loop(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.reload()
            except Exception:  # the store may be down for a while: say so, keep trying
                log.exception("reloading the checkpoint of %s failed", self.name)

    def reload(self) -> bool:
        """Load the latest checkpoint if a newer one landed; True if it did."""
        with self._lock:
            mark = _latest_checkpoint_time(self.store)
            if mark is None or mark == self._mark:
                self._sample()
                return False
            checkpoint = self.store.load_checkpoint()
            if checkpoint is None:
                return False
            served = Served.from_checkpoint(self.spec, checkpoint)
            if served is not None:
                self._served = served
            self._mark = mark
            topics = set(self.spec.topics.all)
            offsets = {tp: o for tp, o in checkpoint.offsets.items() if tp[0] in topics}
            self._status = replace(
                self._status,
                positions=offsets,
                checkpoint_at=checkpoint.written_at,
                checkpoint_offsets=offsets,
            )
            self._sample(served)
            return True

    def _sample(self, served: Served | None = None) -> None:
        """A throughput sample: events read up to the checkpointed offsets."""
        offsets = self._status.checkpoint_offsets
        events_in = sum(offsets.values()) if offsets else None
        served = served or self._served
        learned = None
        if served is not None:
            learned = max((slot.events_learned for slot in served.models.slots), default=0)
        rate = None
        previous = self.samples[-1] if self.samples else None
        at = time.time()
        if previous is not None and events_in is not None and previous.events_in is not None:
            if events_in != previous.events_in:
                rate = (events_in - previous.events_in) / max(at - previous.at, 1e-9)
            else:
                rate = previous.events_per_second if at - previous.at < 10 else 0.0
        letters = _dead_letter_count(self.store)
        sample = Sample(at, events_in, learned, None, letters, rate)
        self._status = replace(self._status, sample=sample)
        if events_in is not None and (previous is None or previous.events_in != events_in):
            self.samples.append(sample)

    def served(self) -> Served | None:
        return self._served

    def status(self) -> Status:
        return self._status

    def quality(self) -> list[dict[str, Any]]:
        from streamfit.api.reads import latest_metrics

        return latest_metrics(self.store, self.spec)

    def send(self, topic: str, events: Sequence[bytes]) -> int:
        source = self.spec.source_or_kafka
        if not isinstance(source, KafkaSourceSpec):
            raise NotAcceptedError(
                f"pipeline {self.name} reads "
                + ("a file" if not isinstance(self.spec.source, MemorySourceSpec) else "")
                + (
                    "an in-process stream of another process"
                    if isinstance(self.spec.source, MemorySourceSpec)
                    else ""
                )
                + ": send its events with 'streamfit run --serve' instead"
            )
        from streamfit.runtime.build import kafka_bootstrap
        from streamfit.streams.base import OutRecord
        from streamfit.streams.kafka import KafkaSink

        with self._lock:
            sink = self._producers.get(topic)
            if sink is None:
                bootstrap = kafka_bootstrap(source, self.settings)
                sink = KafkaSink(bootstrap, topic, config=dict(source.config))
                self._producers[topic] = sink
            sink.write([OutRecord(None, value) for value in events])
            sink.flush()
        return len(events)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for sink in self._producers.values():
            sink.close()
        super().close()
        self.store.close()


# -- helpers ------------------------------------------------------------------------------------


def _reader_store(store: Store) -> Store:
    """A store of the API's own over the worker's database (its own connections), except for
    an in-memory SQLite database, which only the worker's connection sees."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return store
    return Store(url.render_as_string(hide_password=False), store.pipeline)


def _checkpoint_time(worker: Any) -> dt.datetime | None:
    at = getattr(worker, "_last_checkpoint", None)
    if not worker.stats.checkpoints or at is None:
        return None
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - at)


def _latest_checkpoint_time(store: Store) -> Any:
    states = _FIXED.tables["checkpoint_states"]
    query = sa.select(sa.func.max(states.c.written_at), sa.func.count()).where(
        states.c.pipeline == store.pipeline
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).one()
    return None if row[0] is None else (str(row[0]), int(row[1]))


def _dead_letter_count(store: Store) -> int | None:
    letters = _FIXED.tables["dead_letters"]
    query = sa.select(sa.func.count()).where(letters.c.pipeline == store.pipeline)
    try:
        with store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    except sa.exc.SQLAlchemyError:
        return None


def _store_answers(store: Store) -> bool:
    try:
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False

"""Build a ``Worker`` and its source, sinks and store from a spec and the settings."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamfit.runtime.component import Component
from streamfit.runtime.drift import drift_component
from streamfit.runtime.statistics import statistics_component
from streamfit.runtime.worker import Worker
from streamfit.spec.model import (
    FileSourceSpec,
    KafkaSourceSpec,
    MemorySourceSpec,
    PipelineSpec,
)
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.streams.base import RecordSink, Source
from streamfit.streams.local_kafka import find_bootstrap
from streamfit.streams.memory import MemoryBroker, MemorySink, MemorySource
from streamfit.streams.replay import FileReplaySource

__all__ = ["build_worker", "database_url", "kafka_bootstrap"]

log = logging.getLogger(__name__)


def database_url(spec: PipelineSpec, settings: Settings) -> str:
    """The spec's database, else the settings' (``STREAMFIT_DATABASE_URL``)."""
    return spec.outputs.database or settings.database_url


def kafka_bootstrap(spec: KafkaSourceSpec, settings: Settings) -> str:
    """The spec's ``bootstrap_servers``, else ``STREAMFIT_KAFKA_BOOTSTRAP``, else the local
    broker of ``streamfit kafka start``, else 127.0.0.1:9092 (``find_bootstrap``)."""
    return find_bootstrap(spec.bootstrap_servers, settings.kafka_bootstrap).bootstrap


def group_id(spec: PipelineSpec) -> str:
    source = spec.source
    if isinstance(source, KafkaSourceSpec) and source.group_id:
        return source.group_id
    return f"streamfit-{spec.name}"


def build_worker(
    spec: PipelineSpec,
    settings: Settings | None = None,
    broker: MemoryBroker | None = None,
    store: Store | None = None,
    worker_id: str | None = None,
    components: Sequence[Component] = (),
) -> Worker:
    """Everything a pipeline needs, connected: source, sinks, store and worker, with the
    components its spec asks for (field statistics, drift) before ``components``."""
    settings = settings or Settings()
    store = store or Store(database_url(spec, settings), spec.name)
    source: Source
    predictions: RecordSink | None = None
    dead_letters: RecordSink | None = None
    outputs = spec.outputs
    worker_id = worker_id or settings.worker_id
    transactions = None
    source_spec = spec.source_or_kafka
    if spec.source is None and broker is not None:  # the in-process stream, as asked
        source_spec = MemorySourceSpec()
    match source_spec:
        case KafkaSourceSpec() as kafka:
            from streamfit.streams.kafka import KafkaSink, KafkaSource

            bootstrap = kafka_bootstrap(kafka, settings)
            if not spec.source_given:
                log.warning(
                    "the spec names no source: reading Apache Kafka at %s",
                    find_bootstrap(None, settings.kafka_bootstrap).describe(),
                )
            config = dict(kafka.config)
            source = KafkaSource(
                bootstrap,
                spec.topics.all,
                group_id(spec),
                auto_offset_reset=kafka.auto_offset_reset,
                config=config,
            )
            if spec.processing == "exactly_once":
                from streamfit.streams.kafka import KafkaTransactions

                # one per worker of the group: a restarted worker fences its killed self
                transactions = KafkaTransactions(
                    bootstrap, f"{group_id(spec)}-{worker_id}", source, config=config
                )
                if outputs.predictions_topic:
                    predictions = transactions.sink(outputs.predictions_topic)
                if outputs.dead_letter_topic:
                    dead_letters = transactions.sink(outputs.dead_letter_topic)
            else:
                if outputs.predictions_topic:
                    predictions = KafkaSink(bootstrap, outputs.predictions_topic, config=config)
                if outputs.dead_letter_topic:
                    dead_letters = KafkaSink(bootstrap, outputs.dead_letter_topic, config=config)
        case MemorySourceSpec():
            broker = broker or MemoryBroker()
            source = MemorySource(broker, spec.topics.all, group_id(spec))
            if outputs.predictions_topic:
                predictions = MemorySink(broker, outputs.predictions_topic)
            if outputs.dead_letter_topic:
                dead_letters = MemorySink(broker, outputs.dead_letter_topic)
        case FileSourceSpec() as replay:
            topic = replay.topic or (spec.topics.train or spec.topics.score)[0]
            source = FileReplaySource(replay.path, topic=topic, rate=replay.rate)
            broker = broker or MemoryBroker()
            if outputs.predictions_topic:
                predictions = MemorySink(broker, outputs.predictions_topic)
            if outputs.dead_letter_topic:
                dead_letters = MemorySink(broker, outputs.dead_letter_topic)
    statistics = statistics_component(spec, worker_id)
    drift = drift_component(spec, worker_id)
    return Worker(
        spec,
        source,
        store,
        predictions=predictions,
        dead_letter_sink=dead_letters,
        worker_id=worker_id,
        transactions=transactions,
        components=[*(c for c in (statistics, drift) if c is not None), *components],
    )

"""``/metrics``: the pipelines' figures in Prometheus' exposition format (prometheus_client).

Each scrape reads what the sources last published (a running worker) or what the store holds
(``streamfit serve``); nothing is counted twice. The families (labels: ``pipeline``, and
``topic``/``partition`` or ``model``/``version`` where they apply):

=============================================  ============================================
``streamfit_events_in_total``                  events read (store: the checkpointed offsets)
``streamfit_events_scored_total``              events scored (worker only)
``streamfit_events_learned_total``             events learned
``streamfit_dead_letters_total``               events set aside as dead letters
``streamfit_events_per_second``                throughput over the last second or so
``streamfit_consumer_lag``                     per partition: end offset less position
``streamfit_checkpoint_age_seconds``           since the last checkpoint
``streamfit_batch_duration_seconds``           histogram: poll and handle one batch (worker)
``streamfit_checkpoint_duration_seconds``      histogram: one checkpoint (worker)
``streamfit_model_version``                    each model's serving version
``streamfit_model_serving``                    1 for the model whose predictions are served
``streamfit_model_events_learned_total``       events each model learned
``streamfit_model_<metric>``                   model quality, ``window="recent"`` (the
                                               evaluation window) or ``"all"``: accuracy,
                                               precision, recall, f1, log_loss, roc_auc, mae,
                                               rmse, r2 (those the task has)
``streamfit_anomaly_score_quantile``           an anomaly detector's recent scores at
                                               ``quantile`` 0.5, 0.9, 0.99, 0.999
``streamfit_model_updates_total``              a gated model's learned blocks, by
                                               ``decision``: ``kept`` or ``rejected``
``streamfit_model_promotions_total``           times the model became the champion, ``by``
                                               ``rule`` (the promotion rule) or ``operator``
``streamfit_model_rollbacks_total``            rollbacks to the model, ``by`` ``rule`` or
                                               ``operator`` (the champion back, or a state)
=============================================  ============================================
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamfit.api import reads
from streamfit.api.sources import PipelineSource

__all__ = ["PipelineMetrics"]

log = logging.getLogger("streamfit.api")

_QUALITY = ("accuracy", "precision", "recall", "f1", "log_loss", "roc_auc", "mae", "rmse", "r2")
_SCORE_QUANTILES = {
    "score_p50": "0.5",
    "score_p90": "0.9",
    "score_p99": "0.99",
    "score_p99_9": "0.999",
}
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CHECKPOINT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PipelineMetrics(Collector):
    """The registry ``/metrics`` exposes, over every source of an app."""

    def __init__(self, sources: Mapping[str, PipelineSource]) -> None:
        self.sources = sources
        self.registry = CollectorRegistry(auto_describe=False)
        self.batch = Histogram(
            "streamfit_batch_duration_seconds",
            "Time to poll and handle one batch",
            ["pipeline"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.checkpoint = Histogram(
            "streamfit_checkpoint_duration_seconds",
            "Time to write one checkpoint (sinks flushed, state and offsets in one transaction)",
            ["pipeline"],
            buckets=_CHECKPOINT_BUCKETS,
            registry=self.registry,
        )
        for name, source in sources.items():
            source.batch_seconds = self.batch.labels(name).observe
            source.checkpoint_seconds = self.checkpoint.labels(name).observe
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for name, source in self.sources.items():
            try:
                families.add(name, source)
            except Exception:  # a source whose store is down: the others still report
                log.exception("collecting the metrics of %s failed", name)
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels)

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        p = ["pipeline"]
        self.events_in = counter("streamfit_events_in", "Events read", p)
        self.scored = counter("streamfit_events_scored", "Events scored", p)
        self.learned = counter("streamfit_events_learned", "Events learned", p)
        self.dead = counter("streamfit_dead_letters", "Events set aside as dead letters", p)
        self.rate = gauge("streamfit_events_per_second", "Events read per second, lately", p)
        self.lag = gauge(
            "streamfit_consumer_lag",
            "Events at the broker not read yet, per partition",
            [*p, "topic", "partition"],
        )
        self.age = gauge("streamfit_checkpoint_age_seconds", "Seconds since the last checkpoint", p)
        m = [*p, "model"]
        self.version = gauge("streamfit_model_version", "Version of each model that serves", m)
        self.serving = gauge(
            "streamfit_model_serving", "1 for the model whose predictions are served", m
        )
        self.model_learned = counter(
            "streamfit_model_events_learned", "Events each model learned", m
        )
        self.quality = {
            metric: gauge(
                f"streamfit_model_{metric}",
                f"Model quality: {metric} over the evaluation window (recent) or all events",
                [*m, "version", "window"],
            )
            for metric in _QUALITY
        }
        self.scores = gauge(
            "streamfit_anomaly_score_quantile",
            "An anomaly detector's recent scores at a quantile",
            [*m, "version", "quantile"],
        )
        self.updates = counter(
            "streamfit_model_updates",
            "Learned blocks a model's update gate kept or rejected",
            [*m, "decision"],
        )
        self.promotions = counter(
            "streamfit_model_promotions",
            "Times a model became the champion, by the promotion rule or an operator",
            [*m, "by"],
        )
        self.rollbacks = counter(
            "streamfit_model_rollbacks",
            "Rollbacks to a model (the previous champion reinstated, or a saved state)",
            [*m, "by"],
        )

    def add(self, name: str, source: PipelineSource) -> None:
        status = source.status()
        sample = status.sample
        for family, value in (
            (self.events_in, sample.events_in),
            (self.scored, sample.events_scored),
            (self.learned, sample.events_trained),
            (self.dead, sample.dead_letters),
            (self.rate, sample.events_per_second),
        ):
            if value is not None:
                family.add_metric([name], float(value))
        for topic, partition, position, end in source.lag(status):
            self.lag.add_metric([name, topic, str(partition)], float(max(end - position, 0)))
        if status.checkpoint_at is not None:
            age = (dt.datetime.now(dt.UTC) - status.checkpoint_at).total_seconds()
            self.age.add_metric([name], max(age, 0.0))
        served = source.served()
        if served is not None:
            serving = served.serving
            for slot in served.models.slots:
                self.version.add_metric([name, slot.name], float(slot.version))
                self.serving.add_metric([name, slot.name], 1.0 if slot.name in serving else 0.0)
                self.model_learned.add_metric([name, slot.name], float(slot.events_learned))
        for row in source.quality():
            self._quality(name, row)
        if source.spec.task != "anomaly":  # detectors have no lifecycle
            self._lifecycle(name, source)

    def _lifecycle(self, name: str, source: PipelineSource) -> None:
        counts = reads.model_event_counts(source.store, source.spec)
        for model in source.spec.models:
            labels = [name, model.name]

            def count(*kinds: str, model: str = model.name) -> float:
                return float(sum(counts.get((model, kind), 0) for kind in kinds))

            if model.gate is not None:
                self.updates.add_metric([*labels, "kept"], count("gate_kept"))
                self.updates.add_metric([*labels, "rejected"], count("gate_rejected"))
            self.promotions.add_metric([*labels, "rule"], count("promoted"))
            self.promotions.add_metric([*labels, "operator"], count("operator_promoted"))
            self.rollbacks.add_metric([*labels, "rule"], count("rolled_back"))
            self.rollbacks.add_metric([*labels, "operator"], count("operator_rolled_back"))

    def _quality(self, name: str, row: Mapping[str, Any]) -> None:
        version = "" if row.get("model_version") is None else str(row["model_version"])
        for metric, family in self.quality.items():
            for window, column in (("recent", f"window_{metric}"), ("all", metric)):
                value = row.get(column)
                if value is not None and value == value:  # not NaN
                    family.add_metric([name, str(row["model"]), version, window], float(value))
        for column, quantile in _SCORE_QUANTILES.items():
            value = row.get(column)
            if value is not None and value == value:
                self.scores.add_metric([name, str(row["model"]), version, quantile], float(value))

    def all(self) -> Iterator[Metric]:
        yield from (
            self.events_in,
            self.scored,
            self.learned,
            self.dead,
            self.rate,
            self.lag,
            self.age,
            self.version,
            self.serving,
            self.model_learned,
        )
        yield from self.quality.values()
        yield from (self.scores, self.updates, self.promotions, self.rollbacks)

"""What the API predicts with: a featurizer and models that no other thread changes.

A worker learns on its main thread; a server answers on others. Rather than lock the models
while a request reads them, the server predicts with a ``Served``: a copy of the featurizer
and of the models as they serve (the mergeable ones merged with the other workers'), taken
through their documented states. In ``streamfit run --serve`` the worker publishes a fresh copy
between two batches (``streamfit.api.sources.LiveSource``); ``streamfit serve`` builds one
from each new checkpoint in the store. A copy is never changed after it is made: a request
sees one version of every model, never one half-updated.

Predictions go through the same steps as the worker's scoring: the JSON decoder, the
featurizer's ``transform`` (nothing is learned) and ``ModelSet.predict``.

>>> import numpy as np
>>> from streamfit.pipeline import Pipeline
>>> rng = np.random.default_rng(0)
>>> with Pipeline({
...     "name": "served",
...     "topics": {"train": "train"},
...     "target": "y",
...     "models": [{"name": "lr", "builtin": "logistic_regression"}],
...     "outputs": {"database": "sqlite://"},
... }) as pipeline:
...     _ = pipeline.send("train", [{"x": float(x), "y": int(x > 0)} for x in rng.normal(size=500)])
...     _ = pipeline.run()
...     served = Served.of_head(pipeline.worker.head)
>>> scored = served.predict(pipeline.spec, [{"x": -3.0}, {"x": 3.0}])
>>> [(p.name, p.version) for p in scored], scored[0].prediction.tolist()
([('lr', 1)], [0, 1])
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.errors import StreamfitError
from streamfit.features import Featurizer
from streamfit.runtime.anomaly import AnomalyHead, DetectorSet
from streamfit.runtime.head import Head
from streamfit.runtime.models import ModelSet
from streamfit.runtime.snapshot import Snapshot
from streamfit.runtime.targets import build_heads
from streamfit.spec.model import PipelineSpec
from streamfit.store import Checkpoint, ModelPredictions

__all__ = ["EventRejectedError", "Served"]


class EventRejectedError(StreamfitError):
    """An event sent to ``predict`` that the decoder rejects (``index``: which one)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"event {index}: {reason}")
        self.index = index
        self.reason = reason


@dataclass(frozen=True)
class Served:
    """A featurizer and models to predict with, copied from a worker or a checkpoint. For an
    anomaly pipeline, ``detectors``: a head of its own that scores (``AnomalyHead.score``),
    whose detectors are ``models``."""

    featurizer: Featurizer
    models: ModelSet | DetectorSet
    made_at: float = field(default_factory=time.time)  # epoch seconds
    source: str = "worker"  # "worker" (live copy) or "checkpoint"
    detectors: AnomalyHead | None = None

    @classmethod
    def of_head(cls, head: Head) -> Served:
        """A copy of what ``head`` serves now (call it on the worker's thread)."""
        if isinstance(head, AnomalyHead):
            scorer = head.serving_copy()
            return cls(scorer.featurizer, scorer.models, detectors=scorer)
        assert isinstance(head.models, ModelSet)
        return cls(Featurizer.from_state(head.featurizer.state()), head.models.copy())

    @classmethod
    def from_checkpoint(cls, spec: PipelineSpec, checkpoint: Checkpoint) -> Served | None:
        """What the pipeline's workers served at their last checkpoints: the featurizer and
        models of the worker that had learned most, its mergeable models merged with the
        other workers' (as a worker serves them); None if the checkpoint holds no model."""
        counters = _worker_counters(checkpoint)
        if not counters:
            return None
        worker = max(sorted(counters), key=lambda w: counters[w])
        head = build_heads(spec, worker)[0]
        own = Snapshot(worker)
        restored, _ = own.restore(checkpoint, [head], [])
        if not restored:
            return None
        prefix = own.prefix

        def others(name: str) -> dict[str, bytes]:
            suffix = f"/{head.model_key(name)}"
            return {
                key: blob
                for key, blob in checkpoint.model_states.items()
                if key.endswith(suffix)
                and not key.startswith(prefix)
                # "<worker>/model/<name>": not a longer key that ends alike
                and "/" not in key.removesuffix(suffix)
            }

        head.models.refresh_serving(others)
        scorer = head if isinstance(head, AnomalyHead) else None
        return cls(head.featurizer, head.models, source="checkpoint", detectors=scorer)

    @property
    def versions(self) -> dict[str, int]:
        """Each model's version, by name (champion first)."""
        return {slot.name: slot.version for slot in self.models.slots}

    @property
    def champion(self) -> str:
        """The model whose predictions are served (the first detector of an anomaly
        pipeline)."""
        if isinstance(self.models, ModelSet):
            return self.models.policy.champion
        return self.models.slots[0].name

    @property
    def serving(self) -> dict[str, float]:
        """Each model that serves, with its share of the events (A/B serving), else the
        champion alone (1.0)."""
        split = getattr(self.models, "split", None)
        if split is None:
            return {self.champion: 1.0}
        shares, below = {}, 0.0
        for arm, bound in zip(split.arms, split.bounds.tolist(), strict=True):
            upper = min(float(bound), 1.0)
            shares[str(arm)] = round(upper - below, 12)
            below = upper
        return shares

    def predict(
        self,
        spec: PipelineSpec,
        events: Sequence[Mapping[str, Any]],
        models: Collection[str] | None = None,
    ) -> list[ModelPredictions]:
        """Each model's predictions (those in ``models``; all by default) for ``events``,
        as the worker would score them now. Raises ``EventRejectedError`` for an event the
        decoder would send to the dead letters."""
        values = [orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY) for event in events]
        task = "classification" if spec.task == "anomaly" else spec.task  # as the worker reads
        decoded = decode_json(Messages.from_values(values, topic="api"), spec.target, task)
        if decoded.dead_letters:
            first = decoded.dead_letters[0]
            raise EventRejectedError(first.offset, first.reason)
        if self.detectors is not None:
            return self.detectors.score(decoded.batch, models)
        assert isinstance(self.models, ModelSet)
        X = self.featurizer.transform(decoded.batch)
        return self.models.predict(X, partial(self.featurizer.records, decoded.batch), models)


def _worker_counters(checkpoint: Checkpoint) -> dict[str, int]:
    """Events learned, per worker that checkpointed its counters."""
    found: dict[str, int] = {}
    for name, blob in checkpoint.extra.items():
        worker, _, key = name.partition("/")
        if key == "counters":
            try:
                found[worker] = int(orjson.loads(blob).get("events_learned", 0))
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                found[worker] = 0
    return found

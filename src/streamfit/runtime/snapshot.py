"""What a worker writes into a checkpoint besides the offsets, and how it reads it back.

Every name starts with the worker's id, so the workers of one pipeline share the checkpoint
tables without overwriting each other: ``<worker>/model/<m>`` (a model's state, in the
``models`` slot), and in the ``extra`` slot ``<worker>/featurizer``, ``<worker>/evaluator/<m>``
(see ``runtime.head`` for the names of other heads), each component's keys, and
``<worker>/counters`` (JSON: events learned per head, where the metrics stand).

>>> snapshot = Snapshot("7")
>>> snapshot.names({"model/lr": b"s"})
{'7/model/lr': b's'}
>>> snapshot.own({"7/featurizer": b"f", "8/featurizer": b"g"})
{'featurizer': b'f'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streamfit.runtime.component import Component
from streamfit.runtime.head import Head
from streamfit.runtime.retry import Outages
from streamfit.store import Checkpoint, Store

__all__ = ["Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The checkpoint names of worker ``worker``, and its states gathered and restored."""

    worker: str

    @property
    def prefix(self) -> str:
        return f"{self.worker}/"

    def names(self, states: Mapping[str, bytes]) -> dict[str, bytes]:
        """``states`` under this worker's names."""
        return {f"{self.prefix}{key}": blob for key, blob in states.items()}

    def own(self, states: Mapping[str, bytes]) -> dict[str, bytes]:
        """This worker's ``states``, named without its prefix."""
        prefix = self.prefix
        return {k.removeprefix(prefix): v for k, v in states.items() if k.startswith(prefix)}

    def gather(
        self, heads: Sequence[Head], components: Sequence[Component], metrics_mark: int
    ) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """The model states and the other states to checkpoint, under this worker's names."""
        models: dict[str, bytes] = {}
        extra: dict[str, bytes] = {}
        for head in heads:
            models.update(head.model_states())
            extra.update(head.extra_states())
        for component in components:
            extra.update(component.state())
        extra["counters"] = orjson.dumps(
            {
                "events_learned": sum(head.events_learned for head in heads),
                "metrics_mark": metrics_mark,
                "heads": {head.name: head.counters() for head in heads},
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return self.names(models), self.names(extra)

    def restore(
        self, checkpoint: Checkpoint, heads: Sequence[Head], components: Sequence[Component]
    ) -> tuple[bool, int | None]:
        """Give the heads and components their states back; whether the first head's
        featurizer was there, and where the metrics stood (None: no counters)."""
        models, extra = self.own(checkpoint.model_states), self.own(checkpoint.extra)
        counters: dict[str, Any] = orjson.loads(extra["counters"]) if "counters" in extra else {}
        per_head = counters.get("heads", {"": counters})  # older checkpoints: one head, flat
        restored = [head.restore(models, extra, per_head.get(head.name, {})) for head in heads]
        for component in components:
            component.restore(extra)
        if not counters:
            return restored[0], None
        # metrics were written up to there (older checkpoints: as far as learning went)
        return restored[0], int(counters.get("metrics_mark", heads[0].events_learned))

    def merge_others(
        self,
        store: Store,
        outages: Outages,
        heads: Sequence[Head],
        components: Sequence[Component],
        tell: Callable[[Component, dict[str, dict[str, bytes]]], None],
    ) -> None:
        """Serve with mergeable models merged with the other workers' latest states; hand each
        component that asks for them (``Component.merged_keys``) the other workers' blobs,
        by worker and key, through ``tell``."""
        for head in heads:
            head.models.refresh_serving(
                lambda name, head=head: outages.call(  # type: ignore[misc]
                    "loading other workers' models",
                    lambda: store.load_states(
                        suffix=f"/{head.model_key(name)}", exclude_prefix=self.prefix
                    ),
                )
            )
        for component in components:
            others: dict[str, dict[str, bytes]] = {}
            for key in component.merged_keys:
                suffix = f"/{key}"
                found = outages.call(
                    "loading other workers' states",
                    lambda suffix=suffix: store.load_states(  # type: ignore[misc]
                        suffix=suffix, exclude_prefix=self.prefix, slot="extra"
                    ),
                )
                for name, blob in found.items():
                    worker = name.removesuffix(suffix)
                    if "/" not in worker:  # "<worker>/<key>", not a longer key ending alike
                        others.setdefault(worker, {})[key] = blob
            if component.merged_keys:
                tell(component, others)

"""What the lifecycle decides, as events: one row each in ``<pipeline>_model_events``.

========================  ==================================================================
``kind``                  when
========================  ==================================================================
``gate_kept``             a gated model kept an update (``score`` beat ``threshold``)
``gate_rejected``         a gated model rejected one: it stays as it was
``promoted``              the promotion rule made a challenger the champion
``rolled_back``           the rollback rule reinstated the previous champion
``operator_promoted``     ``streamfit models promote`` made a model the champion
``operator_rolled_back``  ``streamfit models rollback``: the previous champion back, or a
                          model's state back to a saved version (``detail.restored_from``)
``operator_refused``      an operator's request that could not be carried out (``detail``)
``drift_challenger``      a drift of the champion started a model, untrained, as a challenger
                          (``on_drift: challenger``; ``detail``: the alarm)
========================  ==================================================================

>>> ModelEvent("gate_rejected", "lr", 7, "lr", metric="f1", score=0.41).row()["kind"]
'gate_rejected'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EVENT_KINDS", "ModelEvent"]

EVENT_KINDS = (
    "gate_kept",
    "gate_rejected",
    "promoted",
    "rolled_back",
    "operator_promoted",
    "operator_rolled_back",
    "operator_refused",
    "drift_challenger",
)


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """One decision about a model. ``version``: the model's version after it; ``champion``:
    the model that serves after it; ``detail``: anything else worth keeping (JSON values)."""

    kind: str
    model: str
    version: int
    champion: str
    metric: str | None = None
    score: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The event as the columns of the model events table (without its place in the
        stream, which the worker adds)."""
        return asdict(self)

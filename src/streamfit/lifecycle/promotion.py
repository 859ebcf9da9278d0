"""Champion and challengers: which model serves, promotion by score, and rollback.

The first model of the spec starts as the champion; the others are challengers, scored on
the same labeled events. With a promotion rule (``PromotionSpec``) every ``every`` labeled
events learned is an evaluation point: each model's ``metric`` over its last ``window``
events is compared with the champion's. A challenger that beats the champion by ``margin``
at ``patience`` points in a row becomes the champion (the first in spec order, if several
do at once). For ``rollback.within`` points after a promotion, the previous champion is
reinstated as soon as the new one is worse than it by more than ``rollback.margin``; a
champion the operator promoted is not watched so (``streamfit models rollback`` undoes it),
though a challenger that beats it as above is promoted all the same.

Points fall where the count of events learned crosses a multiple of ``every``: a function of
the events alone, so a replay promotes at the same points. The operator's commands
(``promote``, ``rollback``) act between points.

>>> import numpy as np
>>> from streamfit.runtime.component import Outcome
>>> from streamfit.spec.model import PromotionSpec
>>> spec = PromotionSpec(metric="accuracy", window=100, margin=0.05, patience=2, every=50)
>>> policy = ChampionPolicy(["old", "new"], "classification", spec)
>>> y = np.array([0, 1] * 25)
>>> right, wrong = np.eye(2)[y], np.eye(2)[1 - y]
>>> events = []
>>> for block in range(3):
...     old, new = Outcome("old", 1, 50, y, wrong, [0, 1]), Outcome("new", 1, 50, y, right, [0, 1])
...     events += policy.observe([old, new], 50 * block, 50 * (block + 1))
>>> policy.champion, [(e.kind, e.model) for e in events]
('new', [('promoted', 'new')])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamfit.errors import StateFormatError
from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator
from streamfit.lifecycle._state import read_state, write_state
from streamfit.lifecycle.events import ModelEvent
from streamfit.lifecycle.scores import better
from streamfit.spec.model import PromotionSpec

if TYPE_CHECKING:
    from streamfit.runtime.component import Outcome

__all__ = ["ChampionPolicy"]

_MAGIC = b"SFCP"
AnyEvaluator = ClassificationEvaluator | RegressionEvaluator


class ChampionPolicy:
    """Which model serves, and the promotion rule's running figures (module docstring)."""

    def __init__(self, names: Sequence[str], task: str, spec: PromotionSpec | None) -> None:
        self.names = list(names)
        self.task = task
        self.spec = spec
        self.champion = self.names[0]
        self.previous: str | None = None  # the champion before the last promotion
        self.watch = 0  # evaluation points left in which a rollback may happen
        self.streaks = {name: 0 for name in self.names}
        self.points = 0
        self.scores: dict[str, float | None] = {}
        self.evaluators: dict[str, AnyEvaluator] = {}
        if spec is not None:
            self.evaluators = {name: self._evaluator(spec) for name in self.names}

    def _evaluator(self, spec: PromotionSpec) -> AnyEvaluator:
        if self.task == "classification":
            return ClassificationEvaluator(window=spec.window, auc_bins=1)
        return RegressionEvaluator(window=spec.window)

    # -- the rule

    def observe(
        self, outcomes: Sequence[Outcome], learned_before: int, learned_after: int
    ) -> list[ModelEvent]:
        """Take every model's outcome on one block; at an evaluation point, apply the rules.
        Returns the promotions and rollbacks (versions left 0: the caller knows them)."""
        spec = self.spec
        if spec is None:
            return []
        for outcome in outcomes:
            evaluator = self.evaluators.get(outcome.model)
            if isinstance(evaluator, ClassificationEvaluator):
                evaluator.update(outcome.labels, outcome.predicted, list(outcome.classes))
            elif evaluator is not None:
                evaluator.update(outcome.labels.astype(float), outcome.predicted)
        if learned_after // spec.every == learned_before // spec.every:
            return []
        return self._point(spec)

    def _point(self, spec: PromotionSpec) -> list[ModelEvent]:
        self.points += 1
        metric = spec.metric
        self.scores = {
            name: _figure(evaluator.snapshot().get(f"window_{metric}"))
            for name, evaluator in self.evaluators.items()
        }
        champion = self.champion
        if self.previous is not None and self.watch > 0 and spec.rollback is not None:
            self.watch -= 1
            previous = self.previous
            if better(metric, self.scores[previous], self.scores[champion], spec.rollback.margin):
                self._crown(previous, previous=None)
                return [self._event("rolled_back", previous, champion, metric)]
        winner = None
        for name in self.names:
            if name == champion:
                self.streaks[name] = 0
                continue
            if better(metric, self.scores[name], self.scores[champion], spec.margin):
                self.streaks[name] += 1
            else:
                self.streaks[name] = 0
            if winner is None and self.streaks[name] >= spec.patience:
                winner = name
        if winner is None:
            return []
        self._crown(winner, previous=champion)
        return [self._event("promoted", winner, champion, metric)]

    def _crown(self, name: str, previous: str | None) -> None:
        self.champion = name
        self.previous = previous
        rollback = self.spec.rollback if self.spec is not None else None
        self.watch = rollback.within if previous is not None and rollback is not None else 0
        self.streaks = {n: 0 for n in self.names}

    def _event(self, kind: str, model: str, before: str, metric: str | None) -> ModelEvent:
        return ModelEvent(
            kind,
            model,
            0,
            self.champion,
            metric=metric,
            score=self.scores.get(model),
            baseline=self.scores.get(before),
            detail={"from": before, "point": self.points, "scores": dict(self.scores)},
        )

    def start_again(self, name: str) -> None:
        """Model ``name`` starts again untrained: its window and its streak are empty."""
        self.streaks[name] = 0
        self.scores.pop(name, None)
        if self.spec is not None and name in self.evaluators:
            self.evaluators[name] = self._evaluator(self.spec)

    # -- the operator

    def promote(self, name: str) -> ModelEvent:
        """Make ``name`` the champion now (``streamfit models promote``)."""
        if name not in self.names:
            raise KeyError(name)
        before = self.champion
        self._crown(name, previous=before if before != name else self.previous)
        self.watch = 0  # the operator's choice: only the operator's rollback undoes it
        return self._event("operator_promoted", name, before, None)

    def rollback(self) -> ModelEvent | None:
        """Reinstate the previous champion (``streamfit models rollback``); None if there is
        none."""
        if self.previous is None:
            return None
        before, previous = self.champion, self.previous
        self._crown(previous, previous=None)
        return self._event("operator_rolled_back", previous, before, None)

    # -- state

    def state(self) -> dict[str, bytes]:
        """Blobs by key: ``policy`` and one ``window/<model>`` per model's window."""
        out = {
            "policy": write_state(
                _MAGIC,
                {
                    "champion": self.champion,
                    "previous": self.previous,
                    "watch": self.watch,
                    "streaks": self.streaks,
                    "points": self.points,
                    "scores": self.scores,
                },
            )
        }
        out.update({f"window/{n}": ev.state() for n, ev in self.evaluators.items()})
        return out

    def restore(self, states: Mapping[str, bytes]) -> None:
        """Take back ``state()``'s blobs (models no longer in the spec are left out)."""
        blob = states.get("policy")
        if blob is None:
            return
        found = read_state(blob, _MAGIC, "champion policy state")
        try:
            champion = str(found["champion"])
            previous = found["previous"]
            self.champion = champion if champion in self.names else self.names[0]
            self.previous = previous if previous in self.names else None
            self.watch = int(found["watch"])
            self.points = int(found["points"])
            self.streaks = {n: int(found["streaks"].get(n, 0)) for n in self.names}
            self.scores = {n: _figure(v) for n, v in found["scores"].items() if n in self.names}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFormatError(f"champion policy state: {exc!r}") from exc
        for name in self.evaluators:
            window = states.get(f"window/{name}")
            if window is not None:
                evaluator = self.evaluators[name]
                self.evaluators[name] = type(evaluator).from_state(window)


def champion_of(blob: bytes) -> str:
    """The champion a ``policy`` blob names (``streamfit models list`` reads it)."""
    return str(read_state(blob, _MAGIC, "champion policy state")["champion"])


def _figure(value: Any) -> float | None:
    return None if value is None else float(value)

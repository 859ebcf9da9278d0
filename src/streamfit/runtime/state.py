"""What a worker checkpoints besides offsets: featurizer, models, evaluators, counters.

Every piece is stored under a name that starts with the worker's id, so the workers of one
pipeline share the ``checkpoints`` tables without overwriting each other:
``<worker>/model/<name>`` (model state, ``models.state`` format), ``<worker>/featurizer``,
``<worker>/evaluator/<name>`` and ``<worker>/counters`` (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streamfit.errors import StateFormatError
from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator

__all__ = ["WorkerSnapshot", "evaluator_from_state", "names_of"]


@dataclass(frozen=True, slots=True)
class StateNames:
    """The names under which one worker's pieces are stored."""

    worker: str

    def model(self, name: str) -> str:
        return f"{self.worker}/model/{name}"

    def evaluator(self, name: str) -> str:
        return f"{self.worker}/evaluator/{name}"

    @property
    def featurizer(self) -> str:
        return f"{self.worker}/featurizer"

    @property
    def counters(self) -> str:
        return f"{self.worker}/counters"


def names_of(worker: str) -> StateNames:
    return StateNames(worker)


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """A worker's learned state as bytes, ready for ``Store.save_checkpoint``."""

    model_states: dict[str, bytes]
    extra: dict[str, bytes]


def evaluator_from_state(blob: bytes) -> ClassificationEvaluator | RegressionEvaluator:
    """Rebuild whichever evaluator wrote ``blob``."""
    try:
        return ClassificationEvaluator.from_state(blob)
    except StateFormatError:  # not a classification evaluator: try the other kind
        return RegressionEvaluator.from_state(blob)


def encode_counters(counters: dict[str, Any]) -> bytes:
    return orjson.dumps(counters, option=orjson.OPT_SORT_KEYS)


def decode_counters(blob: bytes) -> dict[str, Any]:
    value = orjson.loads(blob)
    return value if isinstance(value, dict) else {}

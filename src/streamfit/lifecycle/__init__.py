"""streamfit.lifecycle: what happens to models over their life in the stream.

* ``gate``: an update gate per model keeps a learned block only when it does not hurt the
  model's score on held-out events (``UpdateGate``, ``gated_update``);
* ``promotion``: champion and challengers, promotion by a windowed score and rollback
  (``ChampionPolicy``);
* ``serving``: A/B serving, each event served by one model chosen by a hash of its key
  (``ServingSplit``);
* ``events``: what those decisions leave behind (``ModelEvent``), a row each in the
  pipeline's ``<name>_model_events`` table;
* ``scores``: the figures they judge by (``score``, ``better``).

Nothing here does I/O: the worker's glue (``streamfit.runtime.lifecycle``) feeds these with
blocks and writes what they decide. Every decision is a function of the events and of the
state saved with the last checkpoint, so a replay from a checkpoint takes the same decisions.
The pretrained model kinds (ONNX, scikit-learn files) are models like the others:
``streamfit.models.onnx_adapter`` and ``streamfit.models.sklearn_file``.
"""

from streamfit.lifecycle.events import ModelEvent
from streamfit.lifecycle.gate import (
    GateDecision,
    GatedUpdate,
    UpdateGate,
    gated_update,
    holdout_rows,
)
from streamfit.lifecycle.promotion import ChampionPolicy
from streamfit.lifecycle.scores import better, higher_is_better, score
from streamfit.lifecycle.serving import ServingSplit, key_fractions

__all__ = [
    "ChampionPolicy",
    "GateDecision",
    "GatedUpdate",
    "ModelEvent",
    "ServingSplit",
    "UpdateGate",
    "better",
    "gated_update",
    "higher_is_better",
    "holdout_rows",
    "key_fractions",
    "score",
]

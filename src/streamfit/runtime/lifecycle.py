"""The worker's side of the model lifecycle: what it writes and takes at a checkpoint.

The decisions themselves (gates, promotion, A/B serving) happen inside each head's
``ModelSet`` as blocks are learned (``streamfit.lifecycle``). At each checkpoint, and once
at start, the worker calls ``at_checkpoint`` / ``take_commands`` per head, which:

1. carries out the operator's commands queued in the store since the last one this worker
   took (``streamfit models promote|rollback``, ``streamfit.runtime.operator``): a
   promotion, the previous champion back, or a model's state back to a saved version;
2. writes the decisions noted since the last checkpoint to ``<pipeline>_model_events``
   (numbered, so a replay rewrites the same rows);
3. records each model whose version changed as a version in the ``models`` table, with its
   metrics, and empties the states of versions past ``checkpoint.keep_model_versions``.

All of it lands before the checkpoint's transaction, so a crash after it replays from a
checkpoint that already covers these writes, and a crash before it rewrites them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamfit.lifecycle import ModelEvent
from streamfit.runtime.models import ModelSet

if TYPE_CHECKING:
    from streamfit.runtime.head import Head
    from streamfit.store import Store

__all__ = [
    "at_checkpoint",
    "commands_waiting",
    "model_events_table",
    "take_commands",
    "write_events",
]

log = logging.getLogger("streamfit.worker")


def model_events_table(pipeline: str) -> str:
    """The table of a pipeline's lifecycle decisions.

    >>> model_events_table("clicks")
    'clicks_model_events'
    """
    return f"{pipeline}_model_events"


def at_checkpoint(head: Head, store: Store, worker: str) -> None:
    """Steps 1 to 3 of the module docstring, for ``head`` (the versions that served until
    now are saved before a command replaces them: a rollback can be undone)."""
    if not isinstance(head.models, ModelSet):  # an anomaly head's detectors: no lifecycle
        return
    save_versions(head, store, worker)
    take_commands(head, store)
    write_events(head, store, worker)
    save_versions(head, store, worker)


def write_events(head: Head, store: Store, worker: str) -> None:
    """Write the decisions ``head``'s models noted since the last call (none: the table is
    made all the same, so that a pipeline's ``<name>_model_events`` can be queried from its
    first checkpoint on, before any decision)."""
    events = head.models.take_events()
    rows = [
        {**event.row(), "worker": worker, "head": head.name, "seq": seq, "events_seen": seen}
        for seq, seen, event in events
    ]
    try:
        store.write_model_events(model_events_table(head.spec.name), rows)
    except Exception:
        head.models.events[:0] = events  # written at the next checkpoint
        raise


def save_versions(head: Head, store: Store, worker: str) -> None:
    """A row in ``models`` for each model whose version changed since it was last saved."""
    keep = head.spec.checkpoint.keep_model_versions
    models = head.models
    for slot in models.slots:
        if models.saved_versions.get(slot.name) == slot.version:
            continue
        evaluator = head.evaluation.evaluators.get(slot.name)
        metrics: dict[str, Any] = {}
        if evaluator is not None:
            metrics = {k: v for k, v in evaluator.snapshot().items() if v is not None}
        metrics["events_learned"] = slot.events_learned
        store.save_model(
            slot.name, slot.version, slot.kind, slot.model.state(), worker=worker, metrics=metrics
        )
        store.prune_model_states(slot.name, keep)
        models.saved_versions[slot.name] = slot.version


class CommandWatch:
    """When to look for the operator's commands on a quiet stream: checkpoints follow events,
    so without events a queued command would wait for ever; look once per checkpoint
    interval since the last checkpoint or look.

    >>> watch = CommandWatch(interval=5.0)
    >>> watch.due(last_checkpoint=0.0, now=6.0), watch.due(last_checkpoint=0.0, now=7.0)
    (True, False)
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.looked = 0.0

    def due(self, last_checkpoint: float, now: float) -> bool:
        if now - max(last_checkpoint, self.looked) < self.interval:
            return False
        self.looked = now
        return True


def commands_waiting(head: Head, store: Store) -> bool:
    """Whether the operator queued a command ``head`` has not taken yet."""
    if not isinstance(head.models, ModelSet):
        return False
    return bool(store.model_commands(after=head.models.command_cursor))


def take_commands(head: Head, store: Store) -> None:
    """Carry out the operator's commands queued since the last one ``head`` took."""
    models = head.models
    if not isinstance(models, ModelSet):
        return
    for command in store.model_commands(after=models.command_cursor):
        models.command_cursor = int(command["id"])
        name = command["model"]
        if name is not None and name not in models.names:
            continue  # another head's model
        if name is None and head.name:
            continue  # the previous champion: the pipeline's own target's
        result = _carry_out(head, store, command)
        log.warning("operator's %s of %s: %s", command["command"], name or "the champion", result)
        store.mark_model_command(int(command["id"]), result)


def _carry_out(head: Head, store: Store, command: dict[str, Any]) -> str:
    models = head.models
    seen = head.events_learned
    name, version = command["model"], command["version"]
    if command["command"] == "promote":
        if name is None:
            return _refuse(head, "", "promote names a model")
        models.promote(name, seen)
        return f"{name} is the champion"
    if name is None:
        before = models.policy.champion
        if not models.rollback(seen):
            return _refuse(head, before, "no earlier champion to reinstate")
        return f"{models.policy.champion} is the champion again (was {before})"
    slot = models.slot(name)
    if version is None:
        earlier = [
            v["version"]
            for v in store.model_versions(name)
            if v["version"] < slot.version and v["state_bytes"] > 0
        ]
        if not earlier:
            return _refuse(head, name, f"no saved version of {name} before {slot.version}")
        version = max(earlier)
    found = store.load_model(name, int(version))
    if found is None:
        return _refuse(head, name, f"{name} has no saved version {version}")
    if not found[2]:
        return _refuse(head, name, f"the state of {name} v{version} was pruned")
    models.restore_version(name, int(version), found[2], seen)
    return f"{name} is back to the state of v{version}, as v{slot.version}"


def _refuse(head: Head, model: str, why: str) -> str:
    models = head.models
    models.note(
        head.events_learned,
        ModelEvent(
            "operator_refused",
            model or models.policy.champion,
            models.slot(model).version if model in models.names else 0,
            models.policy.champion,
            detail={"reason": why},
        ),
    )
    return f"refused: {why}"

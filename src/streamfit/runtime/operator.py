"""The operator's hand on a pipeline's models, through its store: what the CLI
(``streamfit models list|promote|rollback``) and the REST API call.

``promote`` and ``rollback`` queue a command in the ``model_commands`` table; a running
worker carries it out at its next checkpoint, a stopped one when it starts
(``streamfit.runtime.lifecycle``), and records what it did in the command's ``result`` and
in ``<pipeline>_model_events``. ``model_report`` reads each model's versions (the ``models``
table, with their metrics), which one serves (the champion in the workers' last
checkpoint), and the commands not carried out yet.

>>> from streamfit.spec import validate_spec
>>> spec = validate_spec({"name": "ops", "source": {"kind": "memory"}, "topics": {"train": "t"},
...                       "target": "y", "outputs": {"database": "sqlite://"},
...                       "models": [{"name": "a", "builtin": "logistic_regression"}]})
>>> with Store("sqlite://", "ops") as store:
...     promote(spec, "a", store=store)
...     model_report(spec, store=store)["pending"][0]["command"]
1
'promote'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streamfit.errors import SpecError
from streamfit.lifecycle.promotion import champion_of
from streamfit.runtime.build import database_url
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store

__all__ = ["model_report", "promote", "rollback"]


@contextmanager
def _store(spec: PipelineSpec, store: Store | None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    with Store(database_url(spec, Settings()), spec.name) as opened:
        yield opened


def _check_model(spec: PipelineSpec, name: str) -> None:
    names = [m.name for m in spec.models]
    if name not in names:
        raise SpecError(f"no model {name!r} in the spec (its models: {', '.join(names)})")


def promote(spec: PipelineSpec, name: str, store: Store | None = None) -> int:
    """Ask the pipeline's workers to make ``name`` the champion; the command's id."""
    _check_model(spec, name)
    with _store(spec, store) as opened:
        return opened.add_model_command("promote", name)


def rollback(
    spec: PipelineSpec,
    name: str | None = None,
    to: int | None = None,
    store: Store | None = None,
) -> int:
    """Ask for the previous champion back (no ``name``), or for model ``name``'s state of
    version ``to`` (default: its last saved version before the current one); the command's
    id. A version whose state was pruned is refused here already."""
    if name is None and to is not None:
        raise SpecError("--to names a version of a model: give the model's name too")
    with _store(spec, store) as opened:
        if name is not None:
            _check_model(spec, name)
            if to is not None:
                found = {v["version"]: v for v in opened.model_versions(name)}
                if to not in found:
                    saved = ", ".join(str(v) for v in sorted(found)) or "none"
                    raise SpecError(f"{name} has no saved version {to} (saved: {saved})")
                if not found[to]["state_bytes"]:
                    raise SpecError(
                        f"the state of {name} v{to} was pruned (checkpoint.keep_model_versions)"
                    )
        return opened.add_model_command("rollback", name, to)


def model_report(spec: PipelineSpec, store: Store | None = None) -> dict[str, Any]:
    """Each model of ``spec``: its kind, whether it serves, its saved versions with their
    metrics; the commands not carried out yet."""
    with _store(spec, store) as opened:
        versions = opened.model_versions()
        checkpoint = opened.load_checkpoint()
        pending = [c for c in opened.model_commands() if c["applied_at"] is None]
        done = [c for c in opened.model_commands() if c["applied_at"] is not None][-5:]
    champions: dict[str, str] = {}
    if checkpoint is not None:
        for key, blob in checkpoint.extra.items():
            if key.endswith("/lifecycle/policy"):
                champions[key.split("/", 1)[0]] = champion_of(blob)
    serving = spec.serving.split if spec.serving is not None else {}
    first = spec.models[0].name
    champion = sorted(champions.values())[0] if champions else first
    models = []
    for model in spec.models:
        own = [v for v in versions if v["name"] == model.name]
        models.append(
            {
                "name": model.name,
                "serves": model.name in serving if serving else model.name == champion,
                "share": serving.get(model.name),
                "champion": model.name == champion,
                "versions": [
                    {
                        "version": v["version"],
                        "worker": v["worker"],
                        "saved_at": v["saved_at"].isoformat() if v["saved_at"] else None,
                        "state_kept": v["state_bytes"] > 0,
                        "metrics": v["metrics"],
                    }
                    for v in own
                ],
            }
        )
    return {
        "pipeline": spec.name,
        "champion": champion,
        "champions_by_worker": champions,
        "models": models,
        "pending": [_command(c) for c in pending],
        "recent": [_command(c) for c in done],
    }


def _command(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "command": row["command"],
        "model": row["model"],
        "version": row["version"],
        "requested_at": row["requested_at"].isoformat() if row["requested_at"] else None,
        "result": row["result"],
    }

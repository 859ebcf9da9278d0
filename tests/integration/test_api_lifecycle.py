"""Promote and roll back through the REST API, as ``streamfit models promote|rollback`` do,
over ``streamfit serve`` on SQLite, PostgreSQL and MariaDB: the command needs the admin
right, lands in the store, is carried out by the next worker, and then the API's models,
``/metrics`` and ``streamfit models list`` agree on which model serves; the gate and
promotion counters of ``/metrics`` equal the rows of the pipeline's model events table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from streamfit.pipeline import Pipeline
from streamfit.runtime.operator import model_report
from streamfit.spec import validate_spec
from streamfit.store import Store
from tests.integration.api_support import (
    ADMIN_KEY,
    WRITE_KEY,
    rows,
    spec_dict,
    streamfit_serving,
    write_pipeline_spec,
)
from tests.integration.support import wait_until

FLIPPED = range(1500, 1700)  # two blocks whose labels are wrong: the gate should reject them


def _events(n: int) -> list[dict[str, Any]]:
    events = rows(n, seed=1)
    for i in FLIPPED:
        if i < n:
            events[i]["y"] = 1 - events[i]["y"]
    return events


def _run(spec: dict[str, Any], n: int) -> None:
    """A worker (it takes the operator's commands when it starts) learns to offset ``n``."""
    with Pipeline(spec) as pipeline:
        pipeline.send(f"{spec['name']}_train", _events(n))
        pipeline.run()


def _samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _counter(samples: dict[Any, float], name: str, pipeline: str, **labels: str) -> float:
    return samples[(name, tuple(sorted({"pipeline": pipeline, **labels}.items())))]


def _champion(client: httpx.Client, base: str) -> str:
    models = client.get(f"{base}/models").json()
    (champion,) = [m["name"] for m in models if m["role"] == "champion"]
    return str(champion)


def test_promote_and_roll_back_through_the_api(
    database_url: str, tmp_path: Path, unique_name: str
) -> None:
    name = unique_name[:30]
    spec = spec_dict(name, database_url)
    spec["models"][0]["gate"] = {"metric": "f1", "ratio": 0.95, "holdout": 0.2}
    _run(spec, 3000)
    path = write_pipeline_spec(tmp_path / "pipeline.yaml", spec)
    validated = validate_spec(spec)
    with (
        Store(database_url, name) as store,
        streamfit_serving(["serve", str(path)], tmp_path / "serve.log") as server,
        server.client() as public,
        server.client(WRITE_KEY) as writer,
        server.client(ADMIN_KEY) as admin,
    ):
        base = f"/v1/pipelines/{name}"
        assert _champion(public, base) == "lr"

        # the gate's counters are the model events table's rows
        events = store.read_model_events(f"{name}_model_events")
        kept = sum(e["kind"] == "gate_kept" and e["model"] == "lr" for e in events)
        rejected = sum(e["kind"] == "gate_rejected" and e["model"] == "lr" for e in events)
        assert kept > 0 and rejected > 0
        samples = _samples(public)
        updates = "streamfit_model_updates_total"
        assert _counter(samples, updates, name, model="lr", decision="kept") == kept
        assert _counter(samples, updates, name, model="lr", decision="rejected") == rejected
        promotions = "streamfit_model_promotions_total"
        assert _counter(samples, promotions, name, model="binned", by="operator") == 0

        # promote: the admin right only; an unknown model is 404
        promote = f"{base}/models/binned/promote"
        assert public.post(promote).status_code == 401
        assert writer.post(promote).status_code == 403
        assert admin.post(f"{base}/models/nope/promote").status_code == 404
        asked = admin.post(promote)
        assert asked.status_code == 202, asked.text
        command = asked.json()["command"]
        assert (command["command"], command["model"], command["result"]) == (
            "promote",
            "binned",
            None,
        )
        pending = public.get(f"{base}/commands").json()["pending"]
        assert [c["id"] for c in pending] == [command["id"]]

        # carried out by the next worker; the server reloads its checkpoint
        _run(spec, 3400)
        wait_until(lambda: _champion(public, base) == "binned", "binned serving")
        report = model_report(validated, store=store)
        assert report["champion"] == "binned"
        models = public.get(f"{base}/models").json()
        assert [(m["name"], m["serving"]) for m in models] == [("lr", False), ("binned", True)]
        for model, listed in zip(models, report["models"], strict=True):
            assert [v["version"] for v in model["versions"]] == [
                v["version"] for v in listed["versions"]
            ]
            assert [v["state_kept"] for v in model["versions"]] == [
                v["state_kept"] for v in listed["versions"]
            ]
        commands = public.get(f"{base}/commands").json()
        assert commands["pending"] == [] and commands["champion"] == "binned"
        assert commands["recent"][-1]["result"] == "binned is the champion"
        samples = _samples(public)
        assert _counter(samples, promotions, name, model="binned", by="operator") == 1
        assert _counter(samples, "streamfit_model_serving", name, model="binned") == 1
        assert _counter(samples, "streamfit_model_serving", name, model="lr") == 0
        predicted = writer.post(f"{base}/predict", json={"event": rows(1, 9, False)[0]}).json()
        assert predicted["model"] == "binned"

        # rollback: checked before it is queued, then the previous champion back
        bad = admin.post(f"{base}/rollback", json={"to": 1})
        assert bad.status_code == 422 and bad.json()["detail"][0]["path"] == "body.to"
        missing = admin.post(f"{base}/rollback", json={"model": "lr", "to": 99_999})
        assert missing.status_code == 409 and "no saved version 99999" in missing.json()["detail"]
        assert writer.post(f"{base}/rollback").status_code == 403
        asked = admin.post(f"{base}/rollback")
        assert asked.status_code == 202, asked.text
        assert asked.json()["command"]["command"] == "rollback"
        _run(spec, 3800)
        wait_until(lambda: _champion(public, base) == "lr", "lr serving again")
        assert model_report(validated, store=store)["champion"] == "lr"
        samples = _samples(public)
        rollbacks = "streamfit_model_rollbacks_total"
        assert _counter(samples, rollbacks, name, model="lr", by="operator") == 1
        assert _counter(samples, rollbacks, name, model="lr", by="rule") == 0

"""The REST API and /metrics of ``streamfit serve`` over a pipeline's store, on SQLite,
PostgreSQL and MariaDB, called over HTTP as a user would; and a prediction from /predict
equal to the results table's for the same event and model version."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamfit.pipeline import Pipeline
from tests.integration.api_support import (
    WRITE_KEY,
    rows,
    spec_dict,
    streamfit_serving,
    write_pipeline_spec,
)


def _run_pipeline(spec: dict[str, object]) -> None:
    """Train on 3,000 events to the end, then score 40 (the models learn no more), and one
    malformed event (a dead letter)."""
    with Pipeline(spec) as pipeline:
        pipeline.send(f"{spec['name']}_train", rows(3000, seed=1))
        pipeline.run()
        pipeline.send(f"{spec['name']}_score", rows(40, seed=2, labeled=False))
        pipeline.send(f"{spec['name']}_score", [b"{not json"])
        pipeline.run()


def test_serve_answers_every_endpoint_over_the_store(
    database_url: str, tmp_path: Path, unique_name: str
) -> None:
    name = unique_name[:30]
    spec = spec_dict(name, database_url)
    _run_pipeline(spec)
    path = write_pipeline_spec(tmp_path / "pipeline.yaml", spec)
    with (
        streamfit_serving(["serve", str(path)], tmp_path / "serve.log") as server,
        server.client() as public,
        server.client(WRITE_KEY) as writer,
    ):
        base = f"/v1/pipelines/{name}"

        assert public.get("/health").json() == {"status": "ok"}
        ready = public.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"][name]["store"] is True
        listed = public.get("/v1/pipelines").json()
        assert [(p["name"], p["mode"], p["models"]) for p in listed] == [
            (name, "store", ["lr", "binned"])
        ]

        detail = public.get(base).json()
        assert detail["spec"]["target"] == "y" and detail["status"]["pipeline"] == name
        status = public.get(f"{base}/status").json()
        assert status["mode"] == "store" and status["serving"]["lr"] > 0
        assert status["last_checkpoint"]["written_at"] is not None
        assert {(o["topic"], o["offset"]) for o in status["last_checkpoint"]["offsets"]} == {
            (f"{name}_train", 3000),
            (f"{name}_score", 41),
        }
        assert status["counters"]["events_in"] == 3041
        assert status["counters"]["dead_letters"] == 1
        assert public.get(f"{base}/throughput").json()["points"]

        models = public.get(f"{base}/models").json()
        assert [(m["name"], m["role"], m["serving"]) for m in models] == [
            ("lr", "champion", True),
            ("binned", "challenger", False),
        ]
        lr = models[0]
        assert lr["events_learned"] == 3000 and lr["version"] == status["serving"]["lr"]
        assert 0.6 < lr["metrics"]["window_roc_auc"] <= 1.0
        assert lr["versions"] and lr["versions"][-1]["version"] == lr["version"]

        series = public.get(f"{base}/metrics", params={"model": "lr"}).json()["points"]
        assert len(series) == 15 and {p["model"] for p in series} == {"lr"}
        assert [p["events_seen"] for p in series] == list(range(200, 3001, 200))
        middle = series[7]["recorded_at"]
        later = public.get(f"{base}/metrics", params={"model": "lr", "since": middle}).json()
        assert next(p["events_seen"] for p in later["points"]) == series[7]["events_seen"]
        earlier = public.get(f"{base}/metrics", params={"model": "lr", "until": middle}).json()
        assert all(p["recorded_at"] < middle for p in earlier["points"])
        assert public.get(f"{base}/metrics", params={"model": "nope"}).status_code == 404

        stats = public.get(f"{base}/statistics").json()
        by_field = {f["field"]: f for f in stats["fields"]}
        assert {"x0", "x1", "x2", "color", "y"} <= set(by_field)
        assert by_field["x0"]["figures"]["count"] > 0 and "p50" in by_field["x0"]["figures"]
        history = public.get(f"{base}/statistics/x0").json()["fields"]
        assert len(history) >= 2 and all(f["field"] == "x0" for f in history)
        assert public.get(f"{base}/statistics/no_such_field").status_code == 404

        # results: the latest, then paged with the cursor, oldest first, none twice
        latest = public.get(f"{base}/results", params={"limit": 5}).json()
        assert len(latest["rows"]) == 5
        first = public.get(f"{base}/results", params={"limit": 1000}).json()["rows"]
        assert len(first) == 40
        assert latest["rows"] == first[-5:]
        seen, after = [], "start"
        for _ in range(10):
            page = public.get(f"{base}/results", params={"limit": 15, "after": after}).json()
            if not page["rows"]:
                break
            seen += [r["source_offset"] for r in page["rows"]]
            after = page["next"]
        assert seen == [r["source_offset"] for r in first]
        assert sorted(seen) == list(range(40))
        assert public.get(f"{base}/results", params={"after": "garbage"}).status_code == 422
        row = first[0]
        assert set(row["fields"]) == {"x0", "x1", "x2", "color"}
        assert row["model"] == "lr" and "binned" in row["challengers"]
        assert public.get(f"{base}/anomalies").json()["rows"] == []

        letters = public.get(f"{base}/dead-letters").json()["rows"]
        assert [(d["source_topic"], d["source_offset"]) for d in letters] == [(f"{name}_score", 40)]
        assert letters[0]["reason"]

        # predict: the same event, the same model version, the same prediction as stored
        by_offset = {r["source_offset"]: r for r in first}
        events = rows(40, seed=2, labeled=False)
        answer = writer.post(f"{base}/predict", json={"events": events, "challengers": True})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "lr" and body["version"] == lr["version"]
        for offset, predicted in enumerate(body["predictions"]):
            stored = by_offset[offset]
            assert stored["model_version"] == predicted["version"]
            assert str(predicted["prediction"]) == stored["prediction"]
            assert predicted["probability"] == pytest.approx(stored["probability"], abs=1e-12)
            (other,) = predicted["others"]
            assert other["model"] == "binned"
            assert str(other["prediction"]) == stored["challengers"]["binned"]["prediction"]
        one = writer.post(f"{base}/predict", json={"event": events[3], "model": "binned"}).json()
        assert one["model"] == "binned"
        assert (
            str(one["predictions"][0]["prediction"])
            == by_offset[3]["challengers"]["binned"]["prediction"]
        )

        # events cannot go into another process's in-process stream: said, not lost
        sent = writer.post(f"{base}/events", json={"role": "score", "events": events[:2]})
        assert sent.status_code == 409 and "in-process" in sent.json()["detail"]

        # Prometheus
        text = public.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families.values()
            for s in family.samples
        }
        assert samples[("streamfit_events_in_total", (("pipeline", name),))] == 3041
        assert samples[("streamfit_dead_letters_total", (("pipeline", name),))] == 1
        auc = [
            value
            for (metric, labels), value in samples.items()
            if metric == "streamfit_model_roc_auc"
            and dict(labels)["model"] == "lr"
            and dict(labels)["window"] == "recent"
        ]
        assert len(auc) == 1 and 0.6 < auc[0] <= 1
        assert samples[("streamfit_model_serving", (("model", "lr"), ("pipeline", name)))] == 1
        assert ("streamfit_checkpoint_age_seconds", (("pipeline", name),)) in samples

        # the documentation
        openapi = public.get("/openapi.json").json()
        assert "/v1/pipelines/{name}/predict" in openapi["paths"]
        assert public.get("/docs").status_code == 200
        assert "plotly.min.js" in public.get("/").text
        assert public.get("/ui/plotly.min.js").status_code == 200

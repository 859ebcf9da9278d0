"""``streamfit demo shuttle --serve``, as a user runs it: the dashboard and the API answer
while the stream runs, stay up when it ends with the address printed, and the detectors
score an event sent to /predict as they scored it in the stream."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from streamfit.cli.shuttle import shuttle_events
from tests.integration.api_support import WRITE_KEY, streamfit_serving
from tests.integration.support import wait_until

ENDED = re.compile(r"the stream has ended; the dashboard stays up at (http://\S+)")


def test_the_shuttle_demo_keeps_its_dashboard_up_when_the_stream_ends(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shuttle.db'}"
    log = tmp_path / "demo.log"
    with (
        streamfit_serving(["demo", "shuttle", "--db", db], log) as server,
        server.client() as public,
        server.client(WRITE_KEY) as writer,
    ):
        url = wait_until(
            lambda: (found := ENDED.search(server.tail())) and found.group(1),
            "the demo saying its stream ended",
            timeout=600,
        )
        assert url == f"{server.url}/"
        assert "ROC AUC" in log.read_text()  # the summary was printed before

        status = public.get("/v1/pipelines/shuttle/status").json()
        assert status["running"] is False and status["mode"] == "worker"
        assert status["counters"]["events_in"] == 49_097
        models = public.get("/v1/pipelines/shuttle/models").json()
        assert [(m["name"], m["serving"]) for m in models] == [
            ("histogram", True),
            ("half_space_trees", False),
        ]
        flagged = public.get("/v1/pipelines/shuttle/anomalies", params={"limit": 5}).json()
        assert len(flagged["rows"]) == 5
        assert all(r["anomaly_score"] is not None for r in flagged["rows"])
        assert public.get("/").status_code == 200

        event = orjson.loads(shuttle_events()[0][1])
        answer = writer.post("/v1/pipelines/shuttle/predict", json={"event": event})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "histogram" and body["version"] == models[0]["version"]
        (prediction,) = body["predictions"]
        assert isinstance(prediction["prediction"], float)
        assert 0.0 <= prediction["probability"] <= 1.0  # its rank among the recent scores
    assert server.proc.returncode == 0, server.tail()

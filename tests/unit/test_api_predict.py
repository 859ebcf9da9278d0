"""``POST /predict`` over HTTP against a running uvicorn: no request touches the database
(the serving copy is in memory), and the fast path answers as the documented route does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from streamfit.api.app import create_app
from streamfit.api.security import ApiKeys
from streamfit.api.server import ServerThread
from streamfit.api.sources import StoreSource
from streamfit.pipeline import Pipeline
from streamfit.spec import validate_spec
from tests.integration.api_support import rows, spec_dict

KEY = "predict-key-0123456789abcdef"
PREDICT = "/v1/pipelines/served/predict"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, StoreSource]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('predict') / 'predict.db'}"
    spec = spec_dict("served", url)
    with Pipeline(spec) as pipeline:
        pipeline.send("served_train", rows(600, seed=3))
        pipeline.run()
    source = StoreSource(validate_spec(spec))
    app = create_app([source], keys=ApiKeys.parse(f"{KEY}:predict"))
    server = ServerThread(app, "127.0.0.1", 0).start()
    try:
        yield server.url.rstrip("/"), source
    finally:
        server.stop()
        source.close()


def _statements(source: StoreSource) -> list[str]:
    """The SQL the API runs from now on (not the checkpoint reloader's, on its own thread)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not threading.current_thread().name.startswith("reload-"):
            seen.append(statement)

    sa.event.listen(source.store.engine, "before_cursor_execute", record)
    return seen


def test_no_prediction_reads_the_database(served: tuple[str, StoreSource]) -> None:
    url, source = served
    statements = _statements(source)
    events = rows(20, seed=5, labeled=False)
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as client:
        for event in events:
            answer = client.post(PREDICT, json={"event": event})
            assert answer.status_code == 200 and answer.json()["model"] == "lr"
        several = client.post(PREDICT, json={"events": events, "challengers": True})
        assert several.status_code == 200
        assert client.post(PREDICT, json={"event": events[0], "model": "binned"}).is_success
        assert statements == []
        assert client.get("/v1/pipelines/served/results").status_code == 200
    assert statements, "the listener sees what the API reads"


def test_the_fast_path_answers_as_the_route(served: tuple[str, StoreSource]) -> None:
    url, source = served
    events = rows(5, seed=6, labeled=False)
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as client:
        one = [client.post(PREDICT, json={"event": e}).json() for e in events]
        many = client.post(PREDICT, json={"events": events, "challengers": True}).json()
    served_copy = source.served()
    assert served_copy is not None
    (expected,) = served_copy.predict(source.spec, events, {"lr"})
    for i, answer in enumerate(one):
        assert answer["pipeline"] == "served" and answer["version"] == expected.version
        (prediction,) = answer["predictions"]
        assert prediction["prediction"] == expected.prediction[i]
        assert prediction["probability"] == pytest.approx(float(expected.probability[i]))
        assert prediction["others"] == []
        assert many["predictions"][i]["prediction"] == prediction["prediction"]
        assert [o["model"] for o in many["predictions"][i]["others"]] == ["binned"]


def test_a_request_the_fast_path_cannot_take_gets_the_routes_answer(
    served: tuple[str, StoreSource],
) -> None:
    url, _ = served
    with httpx.Client(base_url=url) as client:
        assert client.post(PREDICT, json={"event": {"x0": 1}}).status_code == 401
        bad = client.post(PREDICT, json={"event": 3}, headers={"X-API-Key": KEY})
        assert bad.status_code == 422 and bad.json()["detail"][0]["path"] == "body.event"
        both = client.post(
            PREDICT, json={"event": {"x0": 1}, "events": [{"x0": 1}]}, headers={"X-API-Key": KEY}
        )
        assert both.status_code == 422 and both.json()["detail"][0]["path"] == "body"
        nope = client.post(
            "/v1/pipelines/nope/predict", json={"event": {"x0": 1}}, headers={"X-API-Key": KEY}
        )
        assert nope.status_code == 404

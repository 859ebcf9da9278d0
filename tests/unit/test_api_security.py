"""The API's guard, tried over HTTP against a running uvicorn: keys (401, 403), bodies (413,
422 with the path of the bad field), keyed reads, and request text that never reaches SQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

WRITER = "writer-key-0123456789abcdef"
READER = "reader-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdefgh"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, object]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
    spec = spec_dict("guarded", url)
    with Pipeline(spec) as pipeline:
        pipeline.send("guarded_train", rows(600, seed=3))
        pipeline.run()
        pipeline.send("guarded_score", rows(20, seed=4, labeled=False))
        pipeline.run()
    yield url, spec


def _serve(spec: dict[str, object], keyed_reads: bool, max_body: int = 64 * 1024) -> ServerThread:
    keys = ApiKeys.parse(f"{WRITER}:predict+events,{READER}:read,{ADMIN}")
    source = StoreSource(validate_spec(spec))
    app = create_app([source], keys=keys, keyed_reads=keyed_reads, max_body_bytes=max_body)
    return ServerThread(app, "127.0.0.1", 0).start()


@pytest.fixture(scope="module")
def server(database: tuple[str, dict[str, object]]) -> Iterator[str]:
    running = _serve(database[1], keyed_reads=False)
    try:
        yield running.url.rstrip("/")
    finally:
        running.stop()


EVENT = {"x0": 0.1, "x1": -0.2, "x2": 1.0, "color": "red"}
PREDICT = "/v1/pipelines/guarded/predict"


def test_a_write_needs_a_key_with_its_right(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        assert client.post(PREDICT, json={"event": EVENT}).status_code == 401
        unknown = client.post(PREDICT, json={"event": EVENT}, headers={"X-API-Key": "x" * 30})
        assert unknown.status_code == 401
        reader = client.post(PREDICT, json={"event": EVENT}, headers={"X-API-Key": READER})
        assert reader.status_code == 403 and "predict" in reader.json()["detail"]
        bearer = client.post(
            PREDICT, json={"event": EVENT}, headers={"Authorization": f"Bearer {WRITER}"}
        )
        assert bearer.status_code == 200 and bearer.json()["model"] == "lr"
        admin = client.post(PREDICT, json={"event": EVENT}, headers={"X-API-Key": ADMIN})
        assert admin.status_code == 200
        # reads are public here
        assert client.get("/v1/pipelines/guarded/status").status_code == 200


def test_a_bad_body_gets_422_with_the_path_of_the_bad_field(server: str) -> None:
    with httpx.Client(base_url=server, headers={"X-API-Key": WRITER}) as client:

        def paths(body: object) -> list[str]:
            answer = client.post(PREDICT, json=body)
            assert answer.status_code == 422, answer.text
            return [problem["path"] for problem in answer.json()["detail"]]

        assert paths({"events": [EVENT, "not an object"]}) == ["body.events.1"]
        assert paths({"event": EVENT, "colour": 1}) == ["body.colour"]
        assert paths({"events": [EVENT] * 1001}) == ["body.events"]
        assert paths({"event": EVENT, "model": "no_such_model"}) == ["body.model"]
        assert paths({"event": EVENT, "events": [EVENT]}) == ["body"]
        broken = client.post(
            PREDICT, content=b'{"event": {"x0": 1,}', headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422
        assert broken.json()["detail"][0]["path"] == "body"
        assert broken.json()["detail"][0]["message"].startswith("not JSON: ")
        # an event the worker would dead-letter: its reason, at its place
        answer = client.post(PREDICT, json={"events": [EVENT, {"x0": 1, "y": [1, 2]}]})
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["path"] == "body.events.1"
        topic = client.post(
            "/v1/pipelines/guarded/events", json={"topic": "elsewhere", "events": [EVENT]}
        )
        assert topic.status_code == 422 and topic.json()["detail"][0]["path"] == "body.topic"


def test_a_body_past_the_limit_gets_413(server: str) -> None:
    big = {"events": [{f"field_{i}": "x" * 40 for i in range(200)}] * 20}
    with httpx.Client(base_url=server, headers={"X-API-Key": WRITER}) as client:
        answer = client.post(PREDICT, json=big)
        assert answer.status_code == 413
        # the same without a declared length, streamed in pieces
        chunks = (b" " * 8192 for _ in range(20))
        streamed = client.post(
            PREDICT, content=chunks, headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413


def test_request_text_never_reaches_sql(
    server: str, database: tuple[str, dict[str, object]]
) -> None:
    url, _ = database
    hostile = "x'; DROP TABLE guarded_results; --"
    with httpx.Client(base_url=server) as client:
        assert client.get(f"/v1/pipelines/{hostile}/results").status_code == 404
        assert (
            client.get(
                "/v1/pipelines/guarded/metrics", params={"model": "lr' OR '1'='1"}
            ).status_code
            == 404
        )
        assert (
            client.get("/v1/pipelines/guarded/results", params={"after": hostile}).status_code
            == 422
        )
        assert client.get(f"/v1/pipelines/guarded/statistics/{hostile}").status_code == 404
        assert (
            client.get("/v1/pipelines/guarded/metrics", params={"since": hostile}).status_code
            == 422
        )
        page = client.get("/v1/pipelines/guarded/results", params={"limit": 1000}).json()
        assert len(page["rows"]) == 20
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM guarded_results")).scalar_one()
    engine.dispose()
    assert count == 20


def test_keyed_reads_need_the_read_right(database: tuple[str, dict[str, object]]) -> None:
    running = _serve(database[1], keyed_reads=True)
    try:
        with httpx.Client(base_url=running.url) as client:
            status = "/v1/pipelines/guarded/status"
            assert client.get(status).status_code == 401
            assert client.get("/metrics").status_code == 401
            assert client.get(status, headers={"X-API-Key": WRITER}).status_code == 403
            assert client.get(status, headers={"X-API-Key": READER}).status_code == 200
            assert client.get("/health").status_code == 200  # liveness stays public
    finally:
        running.stop()


def test_keys_are_checked_whole(tmp_path: Path) -> None:
    keys = ApiKeys()
    file = tmp_path / "keys"
    file.write_text(f"# operators\n{ADMIN} admin read\n{WRITER}   predict\n")
    keys.read_file(file)
    assert keys.rights_of(ADMIN) == {"admin", "read"}
    assert keys.rights_of(WRITER) == {"predict"}
    assert keys.rights_of(WRITER[:-1]) is None
    assert keys.rights_of(WRITER + "x") is None
    with pytest.raises(Exception, match="16 to 256"):
        ApiKeys.parse("short")
    with pytest.raises(Exception, match="unknown API key rights"):
        ApiKeys.parse(f"{WRITER}:delete")

"""No input can stop the pipeline: over 10,000 generated messages through the real worker.

Good events (ten numbers and a category deciding a binary label) are interleaved with every
kind of hostile message (``fuzz_events``): random bytes, truncated and deeply nested JSON,
non-objects, invalid UTF-8, NaN and Infinity, numbers beyond a double, wrong target types,
empty and null payloads, payloads past the size limit, wrong-typed values, NUL in strings,
names with quotes, control characters, too long or folding to one column, thousands of
distinct names, strings of a million characters, unseen labels and missing targets. They go
through a real broker to the worker (in process), once per database.

Each message is checked against the rule that applies to it: a dead letter has its reason and
its original bytes (table and topic); every other message is in the results exactly once, with
its label, and with its original bytes in ``event_payload`` where its row cannot hold it as it
came. The worker stays up, and its model, judged on clean events it never saw, is within 0.01
ROC AUC of the model of a clean run over the good events alone.
"""

from __future__ import annotations

import base64
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from sklearn.metrics import roc_auc_score

from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.runtime.build import build_worker
from streamfit.runtime.outputs import MAX_RECORD_PAYLOAD
from streamfit.runtime.worker import Worker
from streamfit.spec import validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store
from streamfit.streams.kafka import delete_topics
from streamfit.streams.memory import MemoryBroker

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_events import Stream, fuzz_stream, held_out

pytestmark = pytest.mark.integration

SEED = 16
BLOCK, POLL = 512, 1000  # the spec's learning.block_events and batch.max_records


@cache
def stream() -> tuple[Stream, list[dict[str, Any]]]:
    return fuzz_stream(SEED)


def spec_for(name: str, source: dict[str, Any], database: str) -> PipelineSpec:
    return validate_spec(
        {
            "name": name,
            "source": source,
            "topics": {"train": "events", "score": "events"} | _topics(name, source),
            "target": "y",
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "learning": {"block_events": BLOCK},
            "batch": {"max_records": POLL},
            "outputs": {
                "database": database,
                "score_training_events": True,  # every accepted event has a results row
                "dead_letter_topic": f"{name}_dead" if source["kind"] == "kafka" else None,
            },
        }
    )


def _topics(name: str, source: dict[str, Any]) -> dict[str, str]:
    return {"train": name, "score": name} if source["kind"] == "kafka" else {}


def model_auc(worker: Worker) -> float:
    """ROC AUC of the worker's champion on clean events it never saw."""
    events, labels = held_out(3000, SEED + 1)
    payloads = [orjson.dumps(e) for e in events]
    batch = decode_json(Messages.from_values(payloads), "y", "classification").batch
    model: Any = worker.slots[0].model
    proba = model.predict_proba_many(worker.featurizer.transform(batch))
    return float(roc_auc_score(labels, proba[:, list(model.classes).index(1)]))


@pytest.fixture(scope="module")
def clean_auc(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The model of a clean run: the good events alone, in the same order."""
    _, good = stream()
    database = f"sqlite:///{tmp_path_factory.mktemp('clean') / 'clean.db'}"
    broker = MemoryBroker()
    broker.append("events", [orjson.dumps(e) for e in good])
    worker = build_worker(spec_for("clean", {"kind": "memory"}, database), broker=broker)
    ends = broker.end_offsets("events")
    worker.run(until=lambda w: all(w.read.get(tp, 0) >= o for tp, o in ends.items()))
    auc = model_auc(worker)
    worker.close()
    return auc


def create_large_topics(bootstrap: str, names: list[str]) -> None:
    """Topics that take messages past the worker's size limit (the broker's default is 1 MiB)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"max.message.bytes": "4000000"}
    futures = admin.create_topics([NewTopic(n, 1, 1, config=config) for n in names])
    for future in futures.values():
        future.result(30)


def produce(bootstrap: str, topic: str, messages: list[bytes | None]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "message.max.bytes": 4_000_000,
            "linger.ms": 5,
        }
    )
    for message in messages:
        while True:
            try:
                producer.produce(topic, value=message)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0


def read_topic(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    idle = 0
    while len(values) < expected and idle < 60:  # a minute without a message: give up
        got = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        values += [m.value() for m in got]
        idle = 0 if got else idle + 1
    consumer.close()
    return values


def test_no_input_stops_the_pipeline(
    kafka_bootstrap: str, database_url: str, unique_name: str, clean_auc: float
) -> None:
    hostile, _ = stream()
    messages, expected = hostile.messages, hostile.expected
    assert len(messages) >= 10_000
    topic, dead_topic = unique_name, f"{unique_name}_dead"
    create_large_topics(kafka_bootstrap, [topic, dead_topic])
    try:
        produce(kafka_bootstrap, topic, messages)
        source = {"kind": "kafka", "bootstrap_servers": kafka_bootstrap, "group_id": unique_name}
        worker = build_worker(spec_for(unique_name, source, database_url))
        started = time.monotonic()
        worker.run(until=lambda w: w.read.get((topic, 0), 0) >= len(messages))
        took = time.monotonic() - started
        fuzzed_auc = model_auc(worker)
        schema, invalid = worker.featurizer.schema, worker.featurizer.invalid_values
        worker.close()
        dead_records = read_topic(kafka_bootstrap, dead_topic, sum(e.dead for e in expected))
    finally:
        delete_topics(kafka_bootstrap, [topic, dead_topic])
    print(
        f"\n{database_url.split(':')[0]}: {len(messages)} messages in {took:.1f} s; "
        f"ROC AUC clean {clean_auc:.4f}, fuzzed {fuzzed_auc:.4f}"
    )

    with Store(database_url, unique_name) as store:
        letters = {d.offset: d for d in store.read_dead_letters()}
        rows = store.read_results(f"{unique_name}_results")

    # every bad message is a dead letter, with its reason and its original bytes
    dead = {i for i, e in enumerate(expected) if e.dead}
    unexpected = {o: (expected[o].kind, letters[o].reason) for o in set(letters) - dead}
    assert not unexpected, f"accepted messages set aside: {list(unexpected.items())[:5]}"
    assert set(letters) == dead, f"{len(dead - set(letters))} bad messages not set aside"
    for offset in sorted(dead):
        letter, rule = letters[offset], expected[offset]
        assert letter.reason.startswith(rule.reason), (rule.kind, letter.reason)
        assert letter.value == messages[offset], rule.kind
    published = {orjson.loads(r)["offset"]: orjson.loads(r) for r in dead_records}
    assert set(published) == dead
    for offset, record in published.items():
        payload = messages[offset] or b""
        assert record["reason"] == letters[offset].reason
        assert record["payload_bytes"] == len(payload)
        if len(payload) <= MAX_RECORD_PAYLOAD:
            assert base64.b64decode(record["payload_base64"]) == payload
        else:  # too large for a record of the default size: in the table only
            assert record["payload_base64"] is None

    # every other message is scored exactly once, by the rule that applies to it
    assert len(rows) == len(messages) - len(dead)
    by_offset = {r["source_offset"]: r for r in rows}
    assert set(by_offset) == set(range(len(messages))) - dead
    for offset, row in by_offset.items():
        rule = expected[offset]
        assert row["label"] == rule.label, (rule.kind, row["label"])
        if row["prediction"] is None:  # scored before the first block was learned
            assert offset < BLOCK + POLL, (rule.kind, offset)
        kept = row["event_payload"]
        if rule.payload is True:
            assert kept == messages[offset].decode(), rule.kind  # type: ignore[union-attr]
        elif rule.payload is False:
            assert kept is None, rule.kind
        elif kept is not None:
            assert kept == messages[offset].decode(), rule.kind  # type: ignore[union-attr]
    nul_rows = [r for o, r in by_offset.items() if expected[o].kind == "NUL"]
    assert nul_rows and all(r["c"].endswith("\ufffd") for r in nul_rows)

    # types decided by the majority: the wrong-typed values early on retyped nothing
    assert {schema[f"x{i}"] for i in range(10)} == {"numeric"} and schema["c"] == "categorical"
    assert all(invalid[f"x{i}"] > 0 for i in range(10))
    assert fuzzed_auc > clean_auc - 0.01

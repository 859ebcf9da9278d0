"""The store's limits on every database (``database_url``: SQLite, PostgreSQL, MariaDB).

Events come through the real decoder, as the worker writes them. Whatever their fields, names
and values, a batch of results is written: fields past ``MAX_RESULT_FIELDS`` get no column,
values that do not fit their column are NULL, NUL becomes U+FFFD, the same way everywhere,
and each such row keeps its event in ``event_payload``.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from streamfit.batch import Batch, Messages
from streamfit.codecs import decode_json
from streamfit.errors import ServiceUnavailableError
from streamfit.limits import MAX_RESULT_FIELDS
from streamfit.store import ModelPredictions, Store

pytestmark = pytest.mark.integration


@pytest.fixture
def store(database_url: str, unique_name: str) -> Iterator[Store]:
    with Store(database_url, unique_name) as s:
        yield s


@pytest.fixture
def results(unique_name: str) -> str:
    return f"{unique_name}_results"


def decoded(events: list[Any], first_offset: int = 0, target: str | None = "y") -> Batch:
    payloads = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
    result = decode_json(
        Messages.from_values(payloads, first_offset=first_offset), target, "classification"
    )
    assert result.dead_letters == []
    return result.batch


def write(
    store: Store, table: str, batch: Batch, models: tuple[str, ...] = ("lr",)
) -> list[dict[str, Any]]:
    n = len(batch)
    predictions = [
        ModelPredictions(m, 1, np.array(["1"] * n, dtype=object), np.full(n, 0.5)) for m in models
    ]
    labels = batch.columns.get("y")
    store.write_results(table, batch, predictions, labels, "classification")
    return store.read_results(table)


def test_thousands_of_field_names_fill_the_columns_up_to_the_limit(
    store: Store, results: str
) -> None:
    # the repro of issue 16: 500 events, 2,500 distinct field names
    events = [{"x": i, **{f"f{i}_{j}": j for j in range(5)}} for i in range(500)]
    rows = write(store, results, decoded(events, target=None))
    columns = store.field_columns(results)
    assert len(columns) == MAX_RESULT_FIELDS
    first = list(dict.fromkeys(name for event in events for name in event))[:MAX_RESULT_FIELDS]
    assert sorted(columns) == sorted(first)  # the first that came
    assert [r["x"] for r in rows] == [float(i) for i in range(500)]
    with_all = (MAX_RESULT_FIELDS - 1) // 5  # events whose five fields all have columns
    assert all(r["event_payload"] is None for r in rows[:with_all])
    for row, event in zip(rows[with_all:], events[with_all:], strict=True):
        assert orjson.loads(row["event_payload"]) == event
    # later batches add no column, and still write
    rows = write(store, results, decoded([{"new": 1, "x": 1}], first_offset=500, target=None))
    assert len(store.field_columns(results)) == MAX_RESULT_FIELDS and len(rows) == 501
    assert orjson.loads(rows[-1]["event_payload"]) == {"new": 1, "x": 1}


def test_workers_adding_fields_at_once_never_pass_the_limit(
    database_url: str, unique_name: str, results: str
) -> None:
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            with Store(database_url, unique_name) as store:
                for step in range(4):
                    events = [{f"w{worker}_{step}_{j}": j for j in range(40)} | {"y": 1}]
                    batch = decoded(events * 3, first_offset=1000 * worker + 10 * step)
                    n = len(batch)
                    lr = ModelPredictions("lr", 1, np.array(["1"] * n, dtype=object), None)
                    while True:  # as the worker does: a server busy with DDL is waited for
                        try:
                            store.write_results(results, batch, [lr], None, "classification")
                            break
                        except ServiceUnavailableError:
                            time.sleep(0.1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store(database_url, unique_name) as store:
        assert len(store.field_columns(results)) == MAX_RESULT_FIELDS  # 480 were offered
        assert store.count(results) == 36


def test_the_widest_row_fits_every_database(store: Store, results: str) -> None:
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits

    def text(n: int) -> str:
        return "".join(rng.choices(alphabet, k=n))  # incompressible, stored out of line

    event = {f"t{i}": text(3000) for i in range(MAX_RESULT_FIELDS)}
    event |= {"more": 1, "big": text(250_000), "y": 1}  # past the limit: event_payload
    models = ("lr", "tree", "forest", "sgd")
    rows = write(store, results, decoded([event]), models=models)
    assert rows[0]["t0"] == event["t0"] and rows[0][f"t{MAX_RESULT_FIELDS - 1}"] is not None
    assert orjson.loads(rows[0]["event_payload"]) == event
    assert rows[0]["prediction__forest"] == "1"


def test_nul_is_stored_as_u_fffd_everywhere_and_said(store: Store, results: str) -> None:
    events = [
        b'{"s": "a\\u0000b", "t": "ok", "y": "c\\u0000d"}',
        b'{"s": "plain", "t": "ok", "y": "e"}',
    ]
    rows = write(store, results, decoded(events))
    assert [r["s"] for r in rows] == ["a\ufffdb", "plain"]
    assert [r["label"] for r in rows] == ["c\ufffdd", "e"]
    assert orjson.loads(rows[0]["event_payload"]) == orjson.loads(events[0])
    assert rows[1]["event_payload"] is None


def test_one_odd_value_first_cannot_make_a_number_column_text(store: Store, results: str) -> None:
    events: list[dict[str, Any]] = [{"x0": i / 10, "y": 1} for i in range(20)]
    events[0]["x0"] = "abc"
    rows = write(store, results, decoded(events))
    assert [r["x0"] for r in rows] == [None] + [i / 10 for i in range(1, 20)]
    assert orjson.loads(rows[0]["event_payload"]) == events[0]
    assert all(r["event_payload"] is None for r in rows[1:])
    rows = write(store, results, decoded([{"x0": "3.5", "y": 1}, {"x0": [1], "y": 1}], 20))
    assert [r["x0"] for r in rows[20:]] == [3.5, None]
    assert [r["event_payload"] is None for r in rows[20:]] == [True, False]


def test_names_that_fold_or_cut_to_one_column_get_their_own(store: Store, results: str) -> None:
    long = "a" * 70
    names = ["Age", "age", "AGE", "âge", long + "x", long + "y", "", '"; DROP TABLE models; --']
    names += ['a"b', "a\\b", "label", "prediction__lr", "event_payload", "1st"]
    event = {name: i for i, name in enumerate(names)} | {"y": 1}
    rows = write(store, results, decoded([event] * 20))
    columns = store.field_columns(results)
    assert sorted(columns) == sorted([*names, "y"])  # the target is a field too
    assert len(set(map(str.lower, columns.values()))) == len(names) + 1
    assert all(len(c) <= 60 and c == c.lower() for c in columns.values())
    for i, name in enumerate(names):
        assert rows[0][columns[name]] == float(i), name
    assert rows[0]["event_payload"] is None and store.count("models") == 0


def test_states_larger_than_a_packet_are_stored_in_parts(store: Store) -> None:
    # a four-class softmax model over 2**18 features is a 19 MB state: more than MariaDB's
    # 16 MiB packets, and more than twice that once PyMySQL escapes it
    big, other = random.Random(1).randbytes(19_000_000), b"small"
    store.save_checkpoint({("t", 0): 5}, {"0/model/lr": big}, {"0/featurizer": other})
    checkpoint = store.load_checkpoint()
    assert checkpoint is not None
    assert checkpoint.model_states == {"0/model/lr": big}
    assert checkpoint.extra == {"0/featurizer": other}
    assert store.load_states(suffix="/model/lr", exclude_prefix="1/") == {"0/model/lr": big}
    # smaller again: the parts of the large one are not read as states
    store.save_checkpoint({("t", 0): 6}, {"0/model/lr": b"now small"})
    checkpoint = store.load_checkpoint()
    assert checkpoint is not None and checkpoint.model_states == {"0/model/lr": b"now small"}
    store.save_model("lr", 3, "builtin", big)
    store.save_model("lr", 4, "builtin", big[::-1])
    assert store.load_model("lr") == (4, "builtin", big[::-1])


def test_dead_letters_keep_their_first_4_mib(store: Store) -> None:
    from streamfit.batch import DeadLetter

    huge = b"x" * (5 << 20)
    store.write_dead_letters([DeadLetter("t", 0, 1, None, huge, 0, "too large")])
    [letter] = store.read_dead_letters()
    assert letter.value == huge[: 4 << 20]
    assert letter.reason == f"too large (payload cut to its first {4 << 20} of {5 << 20} bytes)"


def test_fields_most_events_have_get_the_last_columns_first(store: Store, results: str) -> None:
    junk = [{f"j{i}_{k}": k for k in range(60)} for i in range(5)]  # 300 names, first
    good = [{"x": i, "c": "red"} for i in range(100)]
    rows = write(store, results, decoded([*junk, *good], target=None))
    columns = store.field_columns(results)
    assert len(columns) == MAX_RESULT_FIELDS and {"x", "c"} <= set(columns)
    assert all(r["event_payload"] is None for r in rows[5:])
    assert [r["x"] for r in rows[5:]] == [float(i) for i in range(100)]

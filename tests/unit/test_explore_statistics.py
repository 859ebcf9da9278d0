"""Field statistics: figures against numpy's, merging, state, schema changes, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from streamfit.batch import Batch, Messages
from streamfit.codecs import decode_json
from streamfit.errors import StateFormatError
from streamfit.explore import DEFAULT_QUANTILES, StreamStatistics, quantile_column, rank_error


def batch_of(events: list[dict[str, Any]], first_offset: int = 0, partition: int = 0) -> Batch:
    values = [orjson.dumps(e) for e in events]
    messages = Messages.from_values(
        values, topic="t", partition=partition, first_offset=first_offset
    )
    decoded = decode_json(messages, None, "classification")
    assert not decoded.dead_letters
    return decoded.batch


def feed(stats: StreamStatistics, events: list[dict[str, Any]], size: int = 700) -> None:
    for start in range(0, len(events), size):
        stats.update(batch_of(events[start : start + size], first_offset=start))


def sensor_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    normal = rng.normal(10.0, 3.0, size=n)
    skewed = rng.lognormal(0.0, 1.5, size=n)
    level = rng.integers(0, 5, size=n)
    return [
        {"temp": float(a), "flow": float(b), "level": int(c), "site": "abc"[int(c) % 3]}
        for a, b, c in zip(normal, skewed, level, strict=True)
    ]


def true_rank(data: np.ndarray, value: float) -> tuple[float, float]:
    """The normalized ranks of ``value`` in ``data``: below it, and at or below it."""
    ordered = np.sort(data)
    below = np.searchsorted(ordered, value, side="left") / len(data)
    at_or_below = np.searchsorted(ordered, value, side="right") / len(data)
    return float(below), float(at_or_below)


def assert_quantiles_within_rank_error(
    row: dict[str, Any], data: np.ndarray, prefix: str = ""
) -> None:
    error = rank_error(200)
    for q in DEFAULT_QUANTILES:
        reported = row[f"{prefix}{quantile_column(q)}"]
        below, at_or_below = true_rank(data, reported)
        assert below - error <= q <= at_or_below + error, (q, reported, below, at_or_below)


def test_figures_match_numpy_and_quantiles_are_within_the_rank_error() -> None:
    events = sensor_events(40_000, 1)
    stats = StreamStatistics(window=8_000)
    feed(stats, events)
    rows = {row["field"]: row for row in stats.rows()}
    frame = pd.DataFrame(events)
    for name in ("temp", "flow"):
        data = frame[name].to_numpy()
        row = rows[name]
        assert row["kind"] == "numeric" and row["count"] == 40_000 and row["missing"] == 0
        assert row["min"] == data.min() and row["max"] == data.max()
        assert row["mean"] == pytest.approx(data.mean(), rel=1e-12)
        assert row["variance"] == pytest.approx(data.var(), rel=1e-9)
        assert row["distinct_count"] == pytest.approx(len(np.unique(data)), rel=0.05)
        assert_quantiles_within_rank_error(row, data)
        histogram = row["histogram"]
        assert sum(histogram["counts"]) == pytest.approx(40_000, rel=0.01)
        # the recent window: the last 6,000 to 8,000 events (whole slices of 2,000)
        recent = data[-row["window_events"] :]
        assert 6_000 <= row["window_events"] <= 8_000
        assert row["window_count"] == row["window_events"]
        assert row["window_mean"] == pytest.approx(recent.mean(), rel=1e-12)
        assert_quantiles_within_rank_error(row, recent, prefix="window_")
    level = rows["level"]
    counts = frame["level"].value_counts()
    assert level["distinct_count"] == 5
    assert {v["value"]: v["count"] for v in level["top_values"]} == {
        float(k): int(v) for k, v in counts.items()
    }
    site = rows["site"]
    assert site["kind"] == "categorical" and site["min"] is None and site["distinct_count"] == 3
    assert [v["value"] for v in site["top_values"]] == frame["site"].value_counts().index.tolist()
    correlations = rows["temp"]["correlations"]
    assert correlations["flow"] == pytest.approx(frame["temp"].corr(frame["flow"]), abs=1e-6)


def test_two_halves_merged_equal_the_whole_within_the_sketch_error() -> None:
    events = sensor_events(30_000, 2)
    whole, first, second = StreamStatistics(), StreamStatistics(), StreamStatistics()
    feed(whole, events)
    feed(first, events[::2])
    feed(second, events[1::2])
    merged = {r["field"]: r for r in first.rows(first.merged_views([second]))}
    single = {r["field"]: r for r in whole.rows()}
    for name in ("temp", "flow", "level"):
        one, two = merged[name], single[name]
        assert one["count"] == two["count"] == 30_000
        assert (one["min"], one["max"]) == (two["min"], two["max"])
        assert one["mean"] == pytest.approx(two["mean"], rel=1e-12)
        assert one["variance"] == pytest.approx(two["variance"], rel=1e-9)
        assert one["distinct_count"] == pytest.approx(two["distinct_count"], rel=0.05)
        data = pd.DataFrame(events)[name].to_numpy()
        assert_quantiles_within_rank_error(one, data)
    assert merged["temp"]["correlations"]["flow"] == pytest.approx(
        single["temp"]["correlations"]["flow"], abs=1e-6
    )
    assert merged["site"]["top_values"] == single["site"]["top_values"]


def test_state_round_trip_gives_the_same_figures_and_rejects_garbage() -> None:
    stats = StreamStatistics(window=1000)
    feed(stats, sensor_events(5_000, 3), size=333)
    blob = stats.state()
    again = StreamStatistics.from_state(blob)
    assert again.kinds == stats.kinds
    exact = ("field", "kind", "events", "count", "missing", "invalid", "min", "max", "mean")
    for one, two in zip(again.rows(), stats.rows(), strict=True):
        # a view merges the window's slices, and KLL sketches compact at random as they merge
        assert {k: one[k] for k in exact} == {k: two[k] for k in exact}
        assert {k: one[f"window_{k}"] for k in exact[3:]} == {
            k: two[f"window_{k}"] for k in exact[3:]
        }
    for bad in (b"", blob[:-1], b"XXXXXXXX" + blob[8:], blob[:30] + b"\xff" + blob[31:]):
        with pytest.raises(StateFormatError):
            StreamStatistics.from_state(bad)


def test_bad_values_are_counted_never_sketched() -> None:
    events: list[dict[str, Any]] = [{"v": float(i)} for i in range(100)]
    events += [{"v": "n/a"}, {"v": "NaN"}, {"v": "Infinity"}, {"v": "-inf"}, {"v": 1e200}]
    events += [{"v": None}, {}, {"v": "12.5"}, {"v": "1,000"}]
    stats = StreamStatistics()
    stats.update(batch_of(events))
    row = stats.rows()[0]
    assert (row["count"], row["invalid"], row["missing"]) == (102, 5, 2)
    assert (row["min"], row["max"]) == (0.0, 1000.0)
    assert np.isfinite(row["mean"]) and np.isfinite(row["variance"])
    assert all(np.isfinite(row[quantile_column(q)]) for q in DEFAULT_QUANTILES)


def test_ten_thousand_field_names_in_one_batch_are_capped() -> None:
    events = [{f"f{i}_{j}": 1.0 for j in range(100)} for i in range(100)]  # 10,000 names
    stats = StreamStatistics(max_fields=50)
    stats.update(batch_of(events))  # the decoder keeps 2,000 of them (limits.MAX_BATCH_FIELDS)
    assert len(stats.kinds) == 50
    assert stats.untracked_fields == 1_950
    assert len(stats.rows()) == 50
    stats.update(batch_of(events, first_offset=100))  # the names are not remembered
    assert len(stats.kinds) == 50 and len(stats.state()) < 5_000_000


def test_a_field_that_appears_part_way_and_one_that_disappears() -> None:
    stats = StreamStatistics(window=400)
    first = [{"a": float(i), "b": "x"} for i in range(300)]
    later = [{"a": float(i), "c": i % 3} for i in range(300, 1000)]
    feed(stats, first + later, size=128)
    changes = [(c.field, c.old_kind, c.new_kind, c.offset) for c in stats.take_changes()]
    assert changes == [
        ("a", None, "numeric", 0),
        ("b", None, "categorical", 0),
        ("c", None, "numeric", 300),
        ("b", "categorical", None, 300),  # missing from 400 events in a row from offset 300
    ]
    rows = {r["field"]: r for r in stats.rows()}
    assert rows["b"]["count"] == 300 and rows["b"]["missing"] == 700
    assert rows["c"]["count"] == 700 and rows["c"]["missing"] == 0
    assert rows["b"]["window_count"] == 0
    feed(stats, [{"a": 1.0, "b": "y"}], size=1)
    assert [(c.field, c.old_kind, c.new_kind) for c in stats.take_changes()] == [
        ("b", None, "categorical")
    ]


def test_a_type_change_is_recorded_and_the_field_starts_again_as_its_new_kind() -> None:
    stats = StreamStatistics(window=1000, retype_after=20)
    numbers = [{"code": float(i % 10)} for i in range(500)]
    stray = [{"code": "n/a"}] * 5 + [{"code": 1.0}]  # a few strays change nothing
    words = [{"code": ["low", "high"][i % 2]} for i in range(200)]
    feed(stats, numbers + stray + words, size=64)
    changes = [(c.field, c.old_kind, c.new_kind, c.offset) for c in stats.take_changes()]
    assert changes == [("code", None, "numeric", 0), ("code", "numeric", "categorical", 506)]
    row = stats.rows()[0]
    assert row["kind"] == "categorical"
    assert row["count"] == 200 - 19  # from the 20th value of the run on
    assert {v["value"] for v in row["top_values"]} == {"low", "high"}
    assert row["min"] is None
    state = StreamStatistics.from_state(stats.state())
    assert state.kinds == {"code": "categorical"}


def test_typed_fields_never_change_kind() -> None:
    stats = StreamStatistics(types={"code": "numeric"})
    feed(stats, [{"code": "word"}] * 100)
    assert stats.kinds == {"code": "numeric"}
    assert stats.rows()[0]["invalid"] == 100


def test_include_and_exclude_patterns() -> None:
    stats = StreamStatistics(include=["sensor_*"], exclude=["sensor_secret"])
    feed(stats, [{"sensor_a": 1.0, "sensor_secret": 2.0, "other": 3.0}] * 10)
    assert list(stats.kinds) == ["sensor_a"]


def test_booleans_and_text() -> None:
    stats = StreamStatistics()
    events = [{"ok": i % 4 != 0, "note": f"the pump sounds fine today {i % 2}"} for i in range(100)]
    feed(stats, events)
    rows = {r["field"]: r for r in stats.rows()}
    assert rows["ok"]["kind"] == "boolean" and rows["ok"]["mean"] == 0.75
    assert rows["note"]["kind"] == "text" and rows["note"]["distinct_count"] == 2

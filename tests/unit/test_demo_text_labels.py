"""``streamfit demo sentiment`` and ``streamfit demo delayed`` as a user runs them, and text
and late labels end to end through a worker: three classes with macro F1, a 1 MB text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.metrics import f1_score

from streamfit.cli.main import main
from streamfit.limits import MAX_TEXT_CHARS
from streamfit.runtime.build import build_worker
from streamfit.spec import validate_spec
from streamfit.streams.memory import MemoryBroker


def test_the_sentiment_demo_learns_sentiment_and_fills_its_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'sentiment.db'}"
    assert main(["demo", "sentiment", "--json", "--db", db]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["events_learned"] == 67_349 and summary["held_out_sentences"] == 2_693
    assert summary["events_scored"] == 67_349 + 2_693  # every labeled phrase scored first
    assert summary["dead_letters"] == 0 and summary["result_rows"] == 70_042
    (model,) = summary["models"]
    assert model["name"] == "logistic"
    assert model["metrics"]["accuracy"] > 0.85 and model["metrics"]["f1"] > 0.85
    assert model["held_out"]["sentences"] == 2_693 and model["held_out"]["accuracy"] > 0.78
    points = summary["over_time"]
    assert len(points) >= 10 and points[-1]["events_seen"] == 67_349
    assert points[-1]["window_accuracy"] > points[0]["window_accuracy"]  # it learns


def test_the_delayed_demo_learns_as_well_as_with_labels_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'delayed.db'}"
    assert main(["demo", "delayed", "--json", "--db", db]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    join = summary["join"]
    assert join["labels_matched"] == summary["dates"] == 8_378
    assert join["labels_duplicate"] == join["labels_unmatched"] == join["events_expired"] == 0
    assert join["events_waiting"] == join["labels_waiting"] == 0
    assert summary["dead_letters"] == 0
    assert 2_000 < summary["mean_delay_dates"] < 3_000
    (model,) = summary["models"]
    assert model["within_0_01_of_immediate"], model
    assert abs(model["metrics"]["roc_auc"] - model["immediate"]["roc_auc"]) <= 0.01
    assert model["served"]["roc_auc"] < model["metrics"]["roc_auc"]  # served before the labels


def text_events(n: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` texts of three topics with ids, and their labels (in a shuffled order)."""
    rng = np.random.default_rng(seed)
    words = {
        "sport": ["goal", "match", "team", "score", "coach", "league"],
        "food": ["pasta", "cheese", "bread", "wine", "salad", "oven"],
        "tech": ["code", "chip", "server", "cloud", "app", "kernel"],
    }
    common = ["the", "a", "of", "and", "today", "new", "very"]
    events, labels = [], []
    for i in range(n):
        topic = str(rng.choice(list(words)))
        text = " ".join(rng.permutation([*rng.choice(words[topic], 2), *rng.choice(common, 5)]))
        events.append(orjson.dumps({"id": f"t{i}", "text": text}))
        labels.append(orjson.dumps({"id": f"t{i}", "topic": topic}))
    order = rng.permutation(n)
    return events, [labels[i] for i in order]


def test_three_classes_of_text_with_late_labels_end_to_end_with_macro_f1(
    tmp_path: Path,
) -> None:
    events, labels = text_events(3000, 3)
    broker = MemoryBroker()
    sent = 0
    for end in range(300, 3001, 300):  # the labels, shuffled, come a little behind the events
        broker.append("texts", events[end - 300 : end])
        broker.append("topics", labels[sent : end - 150])
        sent = end - 150
    broker.append("topics", labels[sent:])
    spec = validate_spec(
        {
            "name": "news",
            "topics": {"score": "texts", "labels": "topics"},
            "key": "id",
            "target": "topic",
            "features": {"types": {"text": "text"}, "exclude": ["id"]},
            "models": [{"name": "lr", "builtin": "logistic_regression"}],
            "evaluation": {"window": 500, "interval_events": 1000},
            "outputs": {"database": f"sqlite:///{tmp_path / 'news.db'}"},
            "learning": {"block_events": 100},
            "stats": False,
        }
    )
    worker = build_worker(spec, broker=broker)
    try:
        worker.run(until=lambda w: w.stats.events_in >= 6000)
        assert worker.slots[0].events_learned == 3000
        assert sorted(worker.slots[0].model.classes) == ["food", "sport", "tech"]  # type: ignore[attr-defined]
        rows = worker.store.read_results("news_results")
        assert len(rows) == 3000 and {r["label"] for r in rows} == {"food", "sport", "tech"}
        # the served predictions are evaluated: the training table's F1 is their macro F1
        # events served before any label came have no prediction: wrong for every class
        predicted = [r["prediction"] or "(none)" for r in rows]
        assert sum(p != "(none)" for p in predicted) >= 2000
        macro = f1_score(
            [r["label"] for r in rows],
            predicted,
            labels=["food", "sport", "tech"],
            average="macro",
            zero_division=0,
        )
        last = worker.store.read_training("news_training")[-1]
        assert last["events_seen"] == 3000
        assert last["f1"] == pytest.approx(macro, abs=1e-9)
        assert last["window_accuracy"] > 0.8 and last["window_f1"] > 0.8
        assert worker.store.read_label_join("news_labels")[-1]["learned_f1"] > 0.8
    finally:
        worker.close()


def test_a_one_megabyte_text_is_truncated_counted_and_the_stream_goes_on(
    tmp_path: Path,
) -> None:
    huge = ("great film " * 100_000)[:1_000_000]
    broker = MemoryBroker()
    values = [{"review": "a fine film", "y": 1}, {"review": "dull and bad", "y": 0}] * 20
    values.insert(10, {"review": huge, "y": 1})
    broker.append("reviews", [orjson.dumps(v) for v in values])
    spec = validate_spec(
        {
            "name": "reviews",
            "topics": {"train": "reviews"},
            "target": "y",
            "features": {"types": {"review": "text"}},
            "outputs": {
                "database": f"sqlite:///{tmp_path / 'r.db'}",
                "write_results": True,
                "score_training_events": True,
            },
            "stats": False,
        }
    )
    worker = build_worker(spec, broker=broker)
    try:
        worker.run(until=lambda w: w.stats.events_in >= len(values))
        assert worker.stats.events_trained == len(values) and worker.stats.dead_letters == 0
        assert worker.head.featurizer.truncated_texts == worker.stats.texts_truncated == 1
        stored = [r["review"] for r in worker.store.read_results("reviews_results")]
        assert max(len(r) for r in stored) == 1_000_000 > MAX_TEXT_CHARS  # stored whole
    finally:
        worker.close()

"""``make bench-text`` (and part of ``make bench``): learning sentiment from a stream of text.

The 67,349 SST-2 training phrases bundled with streamfit (``streamfit/data/sst2``, shuffled
with the sentiment demo's seed) go to one topic as ``{"sentence": ..., "y": 0|1}``; on that
topic, in one run, each scenario in its own process (``bench.scenarios``), best of
``--repeat``:

* (t1) streamfit: the (b) worker of ``make bench`` (built-in logistic regression,
  test-then-train, predictions to a topic, metrics to SQLite) with ``sentence`` a text field
  (words and word pairs, TF-IDF learned online);
* (t2) River: ``feature_extraction.TFIDF(on="sentence") | linear_model.LogisticRegression()``
  fed one event at a time by a confluent-kafka consumer: predict, accuracy and ROC AUC, learn.

Both see every phrase once, in the same order, and are scored on their prediction before
learning it (accuracy over all phrases: no prediction counts as wrong). Results:
``bench/results/text.json`` and ``text.md``, and the table of ``bench/README.md`` between the
``bench-text`` markers. The target: (t1)'s accuracy at or above (t2)'s, at 3x its events/s or
more.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import orjson

from bench.common import RESULTS, ROOT, broker, log, new_topic, replace_between, run_scenario
from bench.data import produce

ROWS = [
    ("(t1) streamfit, built-in text model, predictions to a topic", "streamfit"),
    ("(t2) River TFIDF into LogisticRegression, one event at a time", "river_text"),
]


def sentences() -> list[bytes]:
    """The phrases as JSON events, in the order of the sentiment demo."""
    from streamfit.cli.demo_sentiment import SEED, sst2_sentences

    frame = sst2_sentences("train").sample(frac=1.0, random_state=SEED)
    return [
        orjson.dumps({"sentence": s, "y": int(y)})
        for s, y in zip(frame["sentence"], frame["label"], strict=True)
    ]


def _chunks(events: list[bytes], size: int = 10_000) -> Iterator[list[bytes]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def text_suite(bootstrap: str, repeat: int) -> dict[str, Any]:
    events = sentences()
    topic = new_topic(bootstrap, "bench_sst2")
    produce(bootstrap, topic, _chunks(events))
    log(f"  {len(events):,} phrases to {topic}")
    rows = []
    for label, scenario in ROWS:
        extra = (
            ["--predictions-topic", f"{topic}_pred_{time.time_ns()}"]
            if scenario == "streamfit"
            else []
        )
        rows.append(
            run_scenario(label, scenario, bootstrap, topic, len(events), "sst2", extra, repeat)
        )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "events": len(events),
        "repeat": repeat,
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    river = rows[-1]
    lines = [
        f"{result['date']}: {result['events']:,} SST-2 phrases, one partition, best of "
        f"{result['repeat']} by events/s (`bench/text.py`).",
        "",
        "| scenario | events/s | vs River | accuracy | ROC AUC | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        eps = row.get("events_per_second")
        if not eps:
            lines.append(f"| {row['row']} | failed: {row.get('error', '')[:60]} | | | | |")
            continue
        ratio = eps / river["events_per_second"] if river.get("events_per_second") else None
        lines.append(
            f"| {row['row']} | {eps:,.0f} | {_ratio(ratio)} | {_fig(row.get('accuracy'))} | "
            f"{_fig(row.get('roc_auc'))} | {row.get('peak_rss_mb', 0):.0f} |"
        )
    ours = rows[0]
    if ours.get("events_per_second") and river.get("events_per_second"):
        speed = ours["events_per_second"] / river["events_per_second"]
        better = (ours.get("accuracy") or 0) >= (river.get("accuracy") or 0)
        lines += [
            "",
            f"Target: accuracy at or above River's ({'met' if better else 'not met'}: "
            f"{_fig(ours.get('accuracy'))} against {_fig(river.get('accuracy'))}) at 3x its "
            f"events/s or more ({'met' if speed >= 3 else 'not met'}: {speed:.1f}x).",
        ]
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x"


def _fig(value: Any) -> str:
    return "" if value is None else f"{float(value):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    args = parser.parse_args(argv)
    with broker("streamfit-bench-text-") as bootstrap:
        result = text_suite(bootstrap, args.repeat)
    text = table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "text.md").write_text(text)
    if not args.no_readme:
        replace_between(ROOT / "bench" / "README.md", "bench-text", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

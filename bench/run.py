"""``make bench``: streamfit against a bare consumer and three baselines, on the local broker.

One run, one broker, the same topics for every scenario (see ``bench/README.md``):

* two topics of 1M events each (``--quick``: 50k): ``numeric10`` (10 numeric features) and
  ``mixed30`` (30 mixed features: 5 high-cardinality categoricals, a short text field,
  missing values), produced once;
* on each topic, each scenario in its own process (``bench.scenarios``), so peak RSS is per
  scenario: (a) bare consume, the ceiling; (b) streamfit test-then-train, built-in logistic
  regression, predictions to a topic, metrics to SQLite; (b') the same with a results row
  per event in SQLite; (c) River, Quix Streams + River, kafka-python + scikit-learn; the
  slow baselines read a capped number of events (shown in the table);
* produce→prediction latency of (b) at a fixed rate below saturation (``bench.latency``);
* the worker's scoring step per event, an ONNX gradient-boosting model against the built-in
  logistic regression on the same batches (``bench.onnx_scoring``, in process);
* results in ``bench/results/``: ``results.json`` (every number, the machine, the date, the
  commit), ``results.md`` (tables), ``throughput.png``, ``latency.png``; the tables also go to
  ``bench/README.md`` and a summary to the README, between ``<!-- bench:start -->`` and
  ``<!-- bench:end -->``.

``--quick`` (``make bench-quick``) runs the same suite small, in under two minutes, and
writes to ``bench/results/quick/`` (the README is left alone). ``--memory`` measures
streamfit's peak RSS over 1M and 10M events of ``numeric10``; ``--scale`` runs one, then two
streamfit workers of one consumer group on a 4-partition topic. Both add their section to
``results.json``/``results.md`` and keep the rest.

``STREAMFIT_BENCH_KAFKA=host:port`` uses an existing broker; otherwise a fresh one is started
with ``scripts/kafka`` in a temporary directory and stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import latency, memory, onnx_scoring, scale, throughput
from bench.common import (
    FULL,
    QUICK,
    ROOT,
    broker,
    git_state,
    log,
    machine,
    replace_between,
    score_training_supported,
    versions,
)
from bench.report import markdown, plot_latency, plot_throughput, summary


def load_previous(out: Path) -> dict[str, Any]:
    path = out / "results.json"
    if path.exists():
        try:
            previous: dict[str, Any] = json.loads(path.read_text())
            return previous
        except json.JSONDecodeError:
            pass
    return {}


def write_outputs(data: dict[str, Any], out: Path, readme: bool) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    text = markdown(data)
    (out / "results.md").write_text(text)
    if data.get("throughput"):
        plot_throughput(data, out / "throughput.png")
    if data.get("latency"):
        plot_latency(data, out / "latency.png")
    if readme:
        replace_between(ROOT / "README.md", "bench", summary(data))
        replace_between(ROOT / "bench" / "README.md", "bench", text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument("--memory", action="store_true", help="peak RSS at 1M and 10M events")
    parser.add_argument("--scale", action="store_true", help="1 vs 2 workers, 4 partitions")
    parser.add_argument("--events", type=int, help="events per topic (default 1M, quick 50k)")
    parser.add_argument("--repeat", type=int, help="runs per scenario, best kept (default 1)")
    parser.add_argument("--no-readme", action="store_true", help="leave both READMEs alone")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.events:
        plan.events = args.events
    if args.repeat:
        plan.repeat = args.repeat
    started = time.monotonic()
    # stop the broker (on leaving ``broker()``, below) when killed, too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    git = git_state()  # before the run: others may commit while it runs
    data = load_previous(plan.out)
    with broker() as bootstrap:
        option = score_training_supported()
        load_before = [round(x, 2) for x in os.getloadavg()]
        if args.memory or args.scale:
            if args.memory:
                data["memory"] = {**memory.memory_suite(bootstrap, plan, option), "git": git}
            if args.scale:
                data["scale"] = {**scale.scale_suite(bootstrap, plan, option), "git": git}
        else:
            rates, _ = throughput.throughput_suite(bootstrap, plan, option)
            latencies, warmup = latency.latency_suite(bootstrap, plan, option, rates)
            data["meta"] = {
                "mode": "quick" if plan.quick else "full",
                "events_per_topic": plan.events,
                "repeat": plan.repeat,
                "ceiling_repeat": throughput.CEILING_REPEAT,
                "caps": plan.caps,
                "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                "machine": machine(),
                "load_average_before": load_before,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "versions": versions(),
                "git": git,
                "score_training_events": option,
                "latency_batch": latency.LATENCY_BATCH,
                "latency_metrics_every": latency.LATENCY_METRICS_EVERY,
            }
            data["throughput"] = rates
            data["latency"] = latencies
            log("onnx scoring: the flights model against the built-in logistic regression ...")
            data["onnx_scoring"] = onnx_scoring.onnx_scoring_suite()
            data["latency_warmup"] = warmup
    print(
        write_outputs(
            data, plan.out, readme=not plan.quick and not args.no_readme and "meta" in data
        )
    )
    log(f"done in {time.monotonic() - started:.0f}s; results in {plan.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

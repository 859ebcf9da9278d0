"""``make bench``: streamfit against baselines, on the local Kafka broker, in one run.

Every scenario reads the same topic from the beginning in its own process. Results go to
``bench/results/results.json`` and ``results.md`` (the table the README shows, between the
``bench:start``/``bench:end`` markers) and a plot, ``throughput.png``.

Use ``STREAMFIT_BENCH_KAFKA=host:port`` to run against an existing broker; otherwise a fresh
broker is started with ``scripts/kafka`` in a temporary directory and stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.data import numeric_events, produce_events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

LABELS = {
    "bare_consume": "bare confluent-kafka consume (ceiling)",
    "streamfit": "streamfit test-then-train, built-in logistic",
    "river_logistic": "River LogisticRegression, one event at a time (baseline)",
}


def start_broker(workdir: Path) -> str:
    script = ROOT / "scripts" / "kafka"
    subprocess.run([str(script), "fetch"], check=True)
    out = subprocess.run(
        [str(script), "start", "--dir", str(workdir), "--fresh"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def stop_broker(workdir: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "kafka"), "stop", "--dir", str(workdir)], check=False)


def run_scenario(name: str, bootstrap: str, topic: str, events: int, repeat: int) -> dict[str, Any]:
    """Best of ``repeat`` runs of one scenario (each in a fresh process)."""
    best: dict[str, Any] | None = None
    for attempt in range(repeat):
        print(f"  {name} (run {attempt + 1}/{repeat}) ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, "-m", "bench.scenarios", name, "--bootstrap", bootstrap,
             "--topic", topic, "--events", str(events)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        detail = [line for line in out.stderr.splitlines() if "ROC AUC" in line]
        if detail:
            result["note"] = detail[-1]
        print(f"    {result['events_per_second']:,.0f} events/s, peak RSS {result['peak_rss_mb']} MB",
              file=sys.stderr)
        if best is None or result["events_per_second"] > best["events_per_second"]:
            best = result
    assert best is not None
    return best


def write_outputs(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    by_name = {r["scenario"]: r for r in results}
    river = by_name.get("river_logistic", {}).get("events_per_second")
    ceiling = by_name.get("bare_consume", {}).get("events_per_second")
    lines = [
        f"{meta['events']:,} events, 10 numeric features, one partition; {meta['machine']}; "
        f"{meta['date']}; best of {meta['repeat']}.",
        "",
        "| scenario | events/s | vs River baseline | vs bare consume | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        eps = r["events_per_second"]
        lines.append(
            f"| {LABELS.get(r['scenario'], r['scenario'])} | {eps:,.0f} | "
            f"{eps / river:.1f}x | {eps / ceiling:.0%} | {r['peak_rss_mb']:.0f} |"
            if river and ceiling
            else f"| {r['scenario']} | {eps:,.0f} | | | {r['peak_rss_mb']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS / "results.md").write_text(table)
    (RESULTS / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    plot(results, RESULTS / "throughput.png", meta)
    update_readme(table)
    return table


def plot(results: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [LABELS.get(r["scenario"], r["scenario"]) for r in results]
    values = [r["events_per_second"] for r in results]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(results) + 1.5))
    bars = ax.barh(names, values, color=["#999999", "#1f77b4", "#ff7f0e"][: len(values)])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3)
    ax.set_xlabel("events per second (higher is better)")
    ax.set_title(f"End-to-end throughput, {meta['events']:,} events from Kafka")
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        readme.write_text(f"{head}{start}\n{table}{end}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="50k events, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 50_000, 1
    workdir = Path(tempfile.mkdtemp(prefix="streamfit-bench-"))
    bootstrap = os.environ.get("STREAMFIT_BENCH_KAFKA")
    started_here = bootstrap is None
    if bootstrap is None:
        print("starting a local Kafka broker ...", file=sys.stderr)
        bootstrap = start_broker(workdir)
    try:
        topic = f"bench_numeric_{uuid.uuid4().hex[:8]}"
        print(f"producing {args.events:,} events to {topic} ...", file=sys.stderr)
        produce_events(bootstrap, topic, numeric_events(args.events))
        results = [
            run_scenario(name, bootstrap, topic, args.events, args.repeat)
            for name in ("bare_consume", "streamfit", "river_logistic")
        ]
    finally:
        if started_here:
            stop_broker(workdir)
    meta = {
        "events": args.events,
        "repeat": args.repeat,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(write_outputs(results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

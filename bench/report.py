"""Tables (Markdown) and plots (PNG, matplotlib Agg) from ``results.json``.

``python -m bench.report [DIR]`` rebuilds ``results.md`` and the plots of ``DIR`` (default
``bench/results``) from its ``results.json`` without running anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASET_TITLES = {
    "numeric10": "numeric10: 10 numeric features",
    "mixed30": "mixed30: 30 features (5 high-cardinality categoricals, 24 numerics, text; "
    "~10% missing)",
}

#: What each row of the throughput tables is.
LABELS = {
    "bare_consume": "(a) bare confluent-kafka consume (ceiling)",
    "streamfit": "(b) streamfit test-then-train, predictions to a topic",
    "streamfit_results": "(b') streamfit, + a results row per event in SQLite",
    "streamfit_tt": "(b) streamfit test-then-train (no predictions emitted)",
    "streamfit_scored": "(b) streamfit, half learned / half scored to a topic",
    "streamfit_scored_results": "(b') streamfit, half learned / half scored + results rows",
    "river": "(c1) River LogisticRegression, one event at a time",
    "river_lr": "(c1') River LogisticRegression alone: no scaling, no metric",
    "quix_river": "(c2) Quix Streams + River",
    "kafka_python_sklearn": "(c3) kafka-python + scikit-learn partial_fit",
    "streamfit_stats": "(b-stats) streamfit (b) with field statistics on",
    "streamfit_drift": "(b-drift) streamfit (b) with drift: (ADWIN on each model's errors)",
    "streamfit_anomaly": "(d) streamfit anomaly detection: default detector, scores to a topic",
    "river_hst": "(d') River HalfSpaceTrees (+ MinMaxScaler), one event at a time",
}

#: The row that is "(b)" for the targets: test-then-train on the labeled topic.
B_ROWS = ("streamfit", "streamfit_tt")
TARGET_RATE = 20_000


def _label(row: str) -> str:
    return LABELS.get(row, row)


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "" if value is None else format(value, spec)


def _by_row(data: dict[str, Any], dataset: str) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in data.get("throughput", []) if r["dataset"] == dataset}


def _outputs(r: dict[str, Any]) -> str:
    notes = []
    requested, events = r.get("requested"), r.get("events")
    if r.get("error"):
        return f"failed: {r['error'][:80]}"
    if r["scenario"] not in ("streamfit", "bare_consume") and requested:
        notes.append(f"capped at {requested:,} events")
    if r["row"] == "streamfit_anomaly":
        notes.append(f"scored, then learned {r.get('events_scored', 0):,}")
        notes.append(f"scores to topic {r.get('predictions_emitted', 0):,}")
    elif r["scenario"] == "streamfit":
        notes.append(f"learned {r.get('events_trained', 0):,}")
        notes.append(f"predictions to topic {r.get('predictions_emitted', 0):,}")
        notes.append(f"results rows {r.get('results_rows', 0):,}")
    elif r["scenario"] == "bare_consume":
        notes.append("receive only")
    elif r["scenario"] == "river_hst" and events:
        notes.append("score + learn per event")
    elif events:
        metric = "" if r["scenario"] == "river_lr" else " + metric"
        notes.append(f"predict{metric} + learn per event")
    return "; ".join(notes)


def throughput_tables(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for dataset in ("numeric10", "mixed30"):
        rows = _by_row(data, dataset)
        if not rows:
            continue
        ceiling = rows.get("bare_consume", {}).get("events_per_second")
        river = rows.get("river", {}).get("events_per_second")
        lines += [
            f"**{DATASET_TITLES[dataset]}**",
            "",
            "| scenario | events/s | vs (a) | vs River | peak RSS (MB) | ROC AUC | what it did |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row, r in rows.items():
            eps = r.get("events_per_second")
            vs_river = f"{eps / river:.1f}x" if eps and river else ""
            lines.append(
                f"| {_label(row)} | {_fmt(eps)} | "
                f"{_fmt(eps / ceiling if eps and ceiling else None, '.0%')} | {vs_river} | "
                f"{_fmt(r.get('peak_rss_mb'))} | {_fmt(r.get('roc_auc'), '.3f')} | {_outputs(r)} |"
            )
        lines.append("")
    return lines


PIPELINES = {
    "streamfit": "streamfit (b)",
    "echo": "floor: consume → produce, no model",
}


def latency_table(data: dict[str, Any]) -> list[str]:
    runs = data.get("latency") or []
    if not runs:
        return []
    lines = [
        "**Latency from produce to prediction at a fixed rate** "
        "(ms; *to prediction*: the prediction record's Kafka timestamp; *end to end*: "
        "received by a consumer of the predictions topic). Where a pipeline ran several times, "
        "alternating with the other, its row is the run with the median end-to-end p99, and "
        "*every run* lists each run's end-to-end p99." + _warmup_note(data.get("latency_warmup")),
        "",
        "| pipeline | topic | rate (achieved) | settings | predictions measured | "
        "to prediction p50 / p99 / p99.9 | end to end p50 / p99 / p99.9 | every run (p99) | "
        "peak RSS (MB) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in runs:
        pipeline = PIPELINES.get(r.get("scenario", "streamfit"), "")
        if r.get("error"):
            lines.append(
                f"| {pipeline} | {r['dataset']} | {r['rate']:,.0f} | | | "
                f"failed: {r['error'][:80]} | | | |"
            )
            continue
        tp, e2e, batch = r.get("to_prediction_ms", {}), r.get("end_to_end_ms", {}), r["batch"]
        every = r.get("metrics_every")
        metrics = f"; metrics every {every:,} events or 5 s" if every else ""
        if r.get("scenario") == "echo":
            metrics = ""
        every = ", ".join("failed" if v is None else f"{v:g}" for v in r.get("every_run_p99", []))
        lines.append(
            f"| {pipeline} | {r['dataset']} | {r['rate']:,.0f}/s ({r['achieved_rate']:,.0f}) | "
            f"max {batch['max_records']}, timeout {batch['timeout'] * 1000:g} ms{metrics} | "
            f"{r.get('measured', 0):,} of {r['predictions']:,} | "
            f"{tp.get('p50')} / {tp.get('p99')} / {tp.get('p99.9')} | "
            f"{e2e.get('p50')} / {e2e.get('p99')} / {e2e.get('p99.9')} | "
            f"{every} | {_fmt(r.get('worker_peak_rss_mb'))} |"
        )
    lines.append("")
    return lines


def _warmup_note(run: dict[str, Any] | None) -> str:
    """The sentence about the uncounted warm-up run before the measured ones, if any.

    >>> _warmup_note({"seconds": 30, "end_to_end_ms": {"p99": 52.0}})[:60]
    ' Before them, a 30 s run of the floor on numeric10 warms the'
    >>> _warmup_note(None)
    ''
    """
    if not run:
        return ""
    p99 = run.get("end_to_end_ms", {}).get("p99")
    shown = "failed" if p99 is None else f"end-to-end p99 {p99:g} ms"
    return (
        f" Before them, a {run.get('seconds', 0):g} s run of the floor on numeric10 warms the "
        f"broker up and is not counted ({shown})."
    )


def targets(data: dict[str, Any]) -> list[str]:
    rows = _by_row(data, "numeric10")
    b = next((rows[name] for name in B_ROWS if name in rows), {})
    eps = b.get("events_per_second")
    ceiling = rows.get("bare_consume", {}).get("events_per_second")
    river = rows.get("river", {}).get("events_per_second")
    lines = [
        "**Targets** (ratios within this run)",
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
    ]

    def add(name: str, value: float | None, spec: str, ok: bool | None, unit: str = "") -> None:
        shown = "" if value is None else format(value, spec) + unit
        lines.append(f"| {name} | {shown} | {'' if ok is None else ('yes' if ok else 'no')} |")

    if eps and ceiling:
        add("(b) ≥ 50% of (a) on numeric10", eps / ceiling, ".0%", eps / ceiling >= 0.5)
    if eps and river:
        add("(b) ≥ 10x River on numeric10", eps / river, ".1f", eps / river >= 10, "x")
    with_stats = rows.get("streamfit_stats", {}).get("events_per_second")
    if eps and with_stats:
        add(
            "(b-stats) costs at most 25% of (b)'s events/s on numeric10",
            1 - with_stats / eps,
            ".0%",
            with_stats >= 0.75 * eps,
        )
    with_drift = rows.get("streamfit_drift", {}).get("events_per_second")
    if eps and with_drift:
        add(
            "(b-drift) costs at most 10% of (b)'s events/s on numeric10",
            1 - with_drift / eps,
            ".0%",
            with_drift >= 0.9 * eps,
        )
    detector = rows.get("streamfit_anomaly", {}).get("events_per_second")
    hst = rows.get("river_hst", {}).get("events_per_second")
    if detector and hst:
        add(
            "(d) anomaly detection ≥ 3x River HalfSpaceTrees (d') on numeric10 (aim: 10x)",
            detector / hst,
            ".1f",
            detector / hst >= 3,
            "x",
        )
    river_alone = rows.get("river_lr", {}).get("events_per_second")
    if eps and river_alone:
        add(
            "(b) ≥ 10x River's LogisticRegression alone (c1'), which does less than (b)",
            eps / river_alone,
            ".1f",
            eps / river_alone >= 10,
            "x",
        )
    for run in data.get("latency") or []:
        if (
            run["dataset"] == "numeric10"
            and run.get("scenario", "streamfit") == "streamfit"
            and "end_to_end_ms" in run
        ):
            p99 = run["end_to_end_ms"].get("p99")
            add(
                f"p99 < 50 ms at {run['rate']:,.0f} events/s (end to end, numeric10"
                + (", median run)" if run.get("every_run_p99") else ")"),
                p99,
                ".2f",
                p99 is not None and p99 < 50 and run["rate"] >= TARGET_RATE,
            )
    onnx = data.get("onnx_scoring")
    if onnx:
        add(
            "scoring through ONNX ≤ 2x the built-in logistic model's scoring step per event",
            onnx["step_ratio"],
            ".2f",
            onnx["target_met"],
            "x",
        )
    memory = data.get("memory")
    if memory and memory.get("rss_ratio"):
        add(
            "peak RSS at 10M events within 10% of 1M",
            memory["rss_ratio"],
            ".3f",
            memory["rss_ratio"] <= 1.10,
        )
    scale = data.get("scale") or {}
    for series, name in (
        (scale, "2 workers ≥ 1.7x 1 worker, aggregate events/s once assigned (4 partitions)"),
        (scale.get("no_predictions") or {}, "the same, workers without a predictions topic"),
    ):
        if series.get("ratio"):
            add(name, series["ratio"], ".2f", series["ratio"] >= 1.7, "x")
    lines.append("")
    return lines


def memory_table(data: dict[str, Any]) -> list[str]:
    memory = data.get("memory")
    if not memory:
        return []
    lines = [
        f"**Memory** (`--memory`, {memory.get('date', '')}): streamfit (b) on numeric10",
        "",
        "| events | events/s | peak RSS (MB) |",
        "| ---: | ---: | ---: |",
    ]
    for r in memory["runs"]:
        lines.append(
            f"| {r.get('events', 0):,} | {_fmt(r.get('events_per_second'))} | "
            f"{_fmt(r.get('peak_rss_mb'), '.1f')} |"
        )
    lines.append("")
    return lines


def scale_table(data: dict[str, Any]) -> list[str]:
    scale = data.get("scale")
    if not scale:
        return []
    lines = [
        f"**Scale-out** (`--scale`, {scale.get('date', '')}): numeric10, "
        f"{scale['events']:,} events on {scale['partitions']} partitions, streamfit (b) "
        "workers in one consumer group",
        "",
        "*once assigned*: the group's events/s while every worker holds its final partitions; "
        "*whole drain*: all events over the time from the first batch to the last, start-up "
        "rebalance included. Runs in the order 1, 2, 2, 1 workers; the row is each count's "
        "best run (once assigned), and *every run* lists all of them (*no window*: a "
        "rebalance late in the run left no time with the final assignment).",
        "",
        *_scale_rows(scale),
        *scale_cpu_table(scale),
    ]
    bare = scale.get("no_predictions")
    if bare:
        lines += [
            "**The same workers without a predictions topic**, right after: test-then-train "
            "and metrics to SQLite as above, no prediction records made or produced, so the "
            "broker on the same two cores serves the input only.",
            "",
            *_scale_rows(bare),
            *scale_cpu_table(bare),
        ]
    return lines


def _scale_rows(series: dict[str, Any]) -> list[str]:
    lines = [
        "| workers | events/s once assigned | every run | events/s whole drain | seconds "
        "| events per worker |",
        "| ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for workers in (1, 2):
        r = series.get(f"workers_{workers}", {})
        per = ", ".join(f"{w['events']:,}" for w in r.get("per_worker", []))
        every = ", ".join(
            "no window" if x is None else _fmt(x)
            for x in r.get("runs_steady_events_per_second", [])
        )
        lines.append(
            f"| {workers} | {_fmt(r.get('steady_events_per_second'))} | {every} | "
            f"{_fmt(r.get('events_per_second'))} | {_fmt(r.get('seconds'), '.1f')} | "
            f"{per or r.get('error', '')} |"
        )
    lines.append("")
    return lines


def scale_cpu_table(scale: dict[str, Any]) -> list[str]:
    """Where the time went while the rows above were measured (once assigned), and the
    scale-out ratio taken apart: events/s is the main threads' CPU over their CPU per event."""
    cpus = {w: scale.get(f"workers_{w}", {}).get("cpu") or {} for w in (1, 2)}
    if not all(c.get("main_us_per_event") for c in cpus.values()):
        return []

    def each(values: list[float] | None) -> str:
        return " + ".join(_fmt(x, ".1f") for x in values) if values else ""

    lines = [
        f"Where the time went once assigned, in the same runs ({cpus[1].get('cores')} cores, "
        "shared by the broker, the workers and their Kafka clients' threads). Per worker, in % "
        "of the time: its main thread running, and ready to run but waiting for a CPU (the "
        "rest it slept: waiting for messages, the broker or the disk).",
        "",
        "| workers | machine busy (stolen) | broker, % of a core | main thread running "
        "| main thread waiting for a CPU | other threads (librdkafka), % of a core "
        "| main thread CPU per event (µs) |",
        "| ---: | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for workers, c in cpus.items():
        lines.append(
            f"| {workers} | {_fmt(c.get('machine_busy_percent'), '.1f')}% "
            f"({_fmt(c.get('steal_percent'), '.1f')}%) | "
            f"{_fmt(c.get('broker_core_percent'), '.1f')} | {each(c['main_core_percent'])} | "
            f"{each(c.get('main_waiting_for_cpu_percent'))} | "
            f"{each(c['other_threads_core_percent'])} | {_fmt(c['main_us_per_event'], '.2f')} |"
        )
    parts = scale.get("ratio_parts")
    if parts and scale.get("ratio"):
        lines += [
            "",
            f"2 workers ÷ 1 = {parts['main_threads_cpu']:.2f} (the CPU the main threads got) ÷ "
            f"{parts['cost_per_event']:.2f} (their CPU per event) = {scale['ratio']:.2f}x. A "
            "cost per event near 1.00 means the workers do not slow each other down; a main "
            "thread that waits for a CPU is held back by the other processes on the same cores.",
        ]
    lines.append("")
    return lines


def onnx_scoring_table(result: dict[str, Any]) -> list[str]:
    """``bench.onnx_scoring``'s result as a markdown table (bench/README.md)."""
    if not result:
        return []
    per = result["per_event"]
    names = {
        "logistic": "built-in logistic regression",
        "onnx": "ONNX: 100-tree gradient boosting (the flights demo's)",
        "onnx_linear": "ONNX: the same pipeline with a logistic regression",
    }
    linear = result.get("linear_step_ratio")
    return [
        "### Scoring through ONNX (flights) vs the built-in logistic regression",
        "",
        "| model | scoring step, µs/event | the model's part, µs/event |",
        "| --- | --- | --- |",
        *[
            f"| {label} | {per[name]['step_us']:.2f} | {per[name]['model_us']:.2f} |"
            for name, label in names.items()
            if name in per
        ],
        "",
        f"Gradient boosting through ONNX / logistic: {result['step_ratio']:.2f}x the scoring "
        f"step, {result['model_ratio']:.1f}x the model's part (target: at most "
        f"{result['target_ratio']:g}x the step: {'met' if result['target_met'] else 'not met'})"
        + (f"; a logistic regression through ONNX: {linear:.2f}x the step" if linear else "")
        + f"; {result['events']:,} events in batches of {result['batch']:,}, best of "
        f"{result['repeat']}, {result['date']}.",
        "",
    ]


def markdown(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    lines: list[str] = []
    if meta:
        m, v, g = meta["machine"], meta["versions"], meta["git"]
        dirty = " + uncommitted src changes" if g["src_uncommitted_changes"] else ""
        lines += [
            f"{meta['mode']} run, {meta['date']}: {meta['events_per_topic']:,} events per topic, "
            f"one partition, local Kafka {v.get('kafka broker')} broker on the same machine; "
            f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}; "
            f"streamfit at {g['commit']}{dirty}; "
            f"best of {meta['repeat']} (bare consume: best of "
            f"{max(meta['repeat'], meta.get('ceiling_repeat', 1))}). "
            "How each scenario works: `bench/README.md`.",
            "",
        ]
    lines += throughput_tables(data)
    lines += latency_table(data)
    lines += targets(data)
    lines += memory_table(data)
    lines += scale_table(data)
    lines += onnx_scoring_table(data.get("onnx_scoring", {}))
    return "\n".join(lines).rstrip() + "\n"


def summary(data: dict[str, Any]) -> str:
    """The README's short benchmark summary: the headline rates and the targets table."""
    meta = data.get("meta", {})
    numeric, mixed = _by_row(data, "numeric10"), _by_row(data, "mixed30")

    def rate(rows: dict[str, dict[str, Any]], row: str) -> float | None:
        value: float | None = rows.get(row, {}).get("events_per_second")
        return value

    lines: list[str] = []
    b = next((name for name in B_ROWS if name in numeric), "")
    eps, ceiling, river = rate(numeric, b), rate(numeric, "bare_consume"), rate(numeric, "river")
    if meta and eps:
        m, g = meta["machine"], meta["git"]
        sentence = (
            f"Last {meta['mode']} run ({meta['date']}, {m['cores']} shared cores, streamfit at "
            f"{g['commit']}): test-then-train with predictions to a topic ran at {eps:,.0f} "
            "events/s on 10 numeric features"
        )
        if ceiling and river:
            sentence += f" ({eps / ceiling:.0%} of a bare consumer, {eps / river:.1f}x River)"
        b_mixed = next((name for name in B_ROWS if name in mixed), "")
        eps_mixed, river_mixed = rate(mixed, b_mixed), rate(mixed, "river")
        if eps_mixed and river_mixed:
            sentence += (
                f" and {eps_mixed:,.0f} events/s on 30 mixed features "
                f"({eps_mixed / river_mixed:.1f}x River)"
            )
        lines += [sentence + ".", ""]
    lines += targets(data)
    lines.append(
        "Every table of that run, how each scenario works and where each target stands: "
        "[`bench/README.md`](bench/README.md)."
    )
    return "\n".join(lines).rstrip() + "\n"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_throughput(data: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    datasets = [d for d in ("numeric10", "mixed30") if _by_row(data, d)]
    fig, axes = plt.subplots(
        len(datasets), 1, figsize=(10, 3.2 * len(datasets) + 0.8), squeeze=False
    )
    colors = {
        "bare_consume": "#999999",
        "river": "#ff7f0e",
        "river_lr": "#ffbb78",
        "quix_river": "#d62728",
        "kafka_python_sklearn": "#9467bd",
    }
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        rows = [r for r in _by_row(data, dataset).values() if r.get("events_per_second")]
        names = [_label(r["row"]) for r in rows]
        values = [r["events_per_second"] for r in rows]
        bars = ax.barh(names, values, color=[colors.get(r["row"], "#1f77b4") for r in rows])
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 2, max(values) * 6)
        ax.invert_yaxis()
        ax.set_title(DATASET_TITLES[dataset], fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    axes[-1, 0].set_xlabel("events per second, log scale (higher is better)")
    meta = data.get("meta", {})
    fig.suptitle(
        f"Throughput from Kafka, {meta.get('events_per_topic', 0):,} events per topic", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


KIND = {"end_to_end_ms": "end to end", "to_prediction_ms": "to prediction"}


def plot_latency(data: dict[str, Any], path: Path) -> None:
    import math

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in data.get("latency") or []:
        for key, style in (("end_to_end_ms", "-"), ("to_prediction_ms", "--")):
            curve = run.get(key, {}).get("curve")
            if not curve:
                continue
            x = [-math.log10(1 - p / 100) for p, _ in curve]
            ax.plot(
                x,
                [v for _, v in curve],
                style,
                marker="o",
                markersize=3,
                label=f"{PIPELINES.get(run.get('scenario', 'streamfit'))}, {run['dataset']} at "
                f"{run['rate']:,.0f}/s, {KIND[key]}",
            )
    ticks = [50, 90, 99, 99.9, 99.99]
    ax.set_xticks([-math.log10(1 - p / 100) for p in ticks], [f"p{p:g}" for p in ticks])
    ax.axhline(50, color="#cc0000", linewidth=0.8, linestyle=":", label="50 ms target")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_xlabel("percentile")
    ax.set_title("streamfit: produce → prediction latency at a fixed rate")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results"
    data = json.loads((out / "results.json").read_text())
    (out / "results.md").write_text(markdown(data))
    if data.get("throughput"):
        plot_throughput(data, out / "throughput.png")
    if data.get("latency"):
        plot_latency(data, out / "latency.png")
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``streamfit stats``: the latest statistics of each field of a pipeline, in the terminal.

One line per field (count, missing, invalid, mean, quantiles, distinct values, the most
frequent values, and a small histogram as a bar of eight heights), read from the pipeline's
field statistics table; ``--field NAME`` shows one field whole: every figure over all time
and over the recent window, its histogram bar by bar, its top values and correlations.

>>> histogram_bar([0.0, 1.0, 4.0, 8.0, 2.0])
' ▁▄█▂'
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from streamfit.explore import quantile_column
from streamfit.spec.model import PipelineSpec
from streamfit.store import Store

__all__ = ["field_stats_rows", "histogram_bar", "render_field", "render_fields"]

_BARS = " ▁▂▃▄▅▆▇█"


def histogram_bar(counts: list[float]) -> str:
    """One character per bin, its height the bin's count against the largest."""
    top = max(counts, default=0.0)
    if top <= 0:
        return " " * len(counts)
    return "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in counts)


def field_stats_rows(
    spec: PipelineSpec, database: str, field: str | None = None
) -> list[dict[str, Any]]:
    """The last snapshot of each field (of ``field``) in the pipeline's statistics table."""
    with Store(database, spec.name) as store:
        return store.read_field_stats(spec.stats.table_name(spec.name), field)


def render_fields(rows: list[dict[str, Any]], spec: PipelineSpec, console: Console) -> None:
    """A table of every field's latest figures."""
    quantiles = [quantile_column(q) for q in spec.stats.quantiles]
    shown = [q for q in quantiles if q in ("p01", "p50", "p99")] or quantiles[:3]
    table = Table(
        title=f"{spec.stats.table_name(spec.name)}: {rows[0]['events']:,} events"
        if rows and rows[0]["events"] is not None
        else spec.stats.table_name(spec.name),
        title_justify="left",
    )
    names = ["field", "kind", "count", "missing", "invalid", "mean", *shown, "distinct"]
    cells: list[list[str]] = []
    for row in rows:
        top = ", ".join(f"{_value(v['value'])} ({v['count']:,})" for v in row["top_values"][:2])
        histogram = row.get("histogram")
        cells.append(
            [
                str(row["field"]),
                str(row["kind"]),
                _count(row["count"]),
                _count(row["missing"]),
                _count(row["invalid"]),
                _number(row["mean"]),
                *[_number(row.get(q)) for q in shown],
                _count(row["distinct_count"]),
                top or "-",
                histogram_bar(histogram["counts"]) if histogram else "",
            ]
        )
    for i, name in enumerate(names):  # figures are never cut: the top values give way
        widest = max([len(name), *(len(line[i]) for line in cells)])
        table.add_column(
            name,
            justify="left" if name in ("field", "kind") else "right",
            no_wrap=True,
            min_width=widest,
        )
    table.add_column("top values", overflow="ellipsis")
    table.add_column("histogram", no_wrap=True, min_width=10)
    for line in cells:
        table.add_row(*line)
    console.print(table, crop=False)  # too wide for the terminal: it wraps, nothing is cut


def render_field(row: dict[str, Any], spec: PipelineSpec, console: Console) -> None:
    """One field whole: all time and the recent window side by side."""
    table = Table(
        title=f"{row['field']} ({row['kind']}), at {row['recorded_at']:%Y-%m-%d %H:%M:%S} UTC",
        title_justify="left",
    )
    table.add_column("")
    table.add_column(f"all time ({_count(row['events'])} events)", justify="right")
    table.add_column(f"recent window ({_count(row['window_events'])} events)", justify="right")
    figures = ["count", "missing", "invalid", "distinct_count", "min", "max", "mean", "variance"]
    figures += [quantile_column(q) for q in spec.stats.quantiles]
    for name in figures:
        table.add_row(name, _number(row.get(name)), _number(row.get(f"window_{name}")))
    console.print(table)
    for prefix, title in (("", "all time"), ("window_", "recent window")):
        histogram = row.get(f"{prefix}histogram")
        if histogram:
            edges, counts = histogram["edges"], histogram["counts"]
            console.print(f"histogram, {title}:")
            top = max(counts, default=0.0) or 1.0
            for i, count in enumerate(counts):
                bar = "█" * round(count / top * 40)
                console.print(
                    f"  [{_number(edges[i]):>10}, {_number(edges[i + 1]):>10})"
                    f" {_count(count):>10} {bar}"
                )
        top_values = row.get(f"{prefix}top_values") or []
        if top_values:
            listed = ", ".join(f"{_value(v['value'])} ({v['count']:,})" for v in top_values)
            console.print(f"top values, {title}: {listed}")
    correlations = row.get("correlations") or {}
    if correlations:
        strongest = sorted(correlations.items(), key=lambda kv: -abs(kv[1]))[:10]
        console.print(
            "correlations (all time): " + ", ".join(f"{k} {v:+.3f}" for k, v in strongest)
        )


def _count(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}"


def _value(value: Any) -> str:
    text = _number(value) if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else text[:23] + "…"

"""What the ``streamfit demo`` commands share: pointing a bundled spec at Kafka and a
database, publishing the stream, clearing an earlier run's tables, running the worker with a
progress bar (and the dashboard, when asked), and the pieces of their summaries.

>>> rounded(0.123456), rounded(None)
(0.1235, None)
>>> formatted(0.5), formatted(None)
('0.500', '-')
>>> split_snapshot({"f1": 0.5, "window_f1": 0.25, "events_seen": 10})
({'f1': 0.5}, {'f1': 0.25})
>>> try_next(["SELECT 1;"])
['', '  Try next:', '    SELECT 1;']
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from importlib import resources
from typing import Any

import orjson
import sqlalchemy as sa
from rich.progress import Progress

from streamfit.cli.progress import event_progress
from streamfit.runtime.build import database_url
from streamfit.runtime.worker import Worker
from streamfit.spec.loader import load_spec_text
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings
from streamfit.store import Store
from streamfit.streams.memory import MemoryBroker

__all__ = [
    "bundled_spec",
    "bundled_spec_text",
    "figures",
    "formatted",
    "publish",
    "rounded",
    "run_demo_worker",
    "run_until",
    "split_snapshot",
    "start_afresh",
    "summary_json",
    "throughput",
    "try_next",
]

KAFKA_CHUNK = 5000  # records per write to a Kafka topic


def bundled_spec_text(package: str) -> str:
    """The pipeline spec shipped with a demo's data package (YAML)."""
    return resources.files(package).joinpath("pipeline.yaml").read_text(encoding="utf-8")


def bundled_spec(
    package: str,
    kafka: str | None,
    database: str | None,
    topics: Mapping[str, str],
    predictions_topic: str,
    dead_letter_topic: str,
) -> PipelineSpec:
    """A demo's spec, pointed at a Kafka broker and a database when given. Through Kafka the
    topics (``topics``: role -> name, and the outputs') get a suffix of their own per run."""
    data: dict[str, Any] = load_spec_text(bundled_spec_text(package)).model_dump(exclude_none=True)
    if kafka:
        run = uuid.uuid4().hex[:8]
        data["source"] = {"kind": "kafka", "bootstrap_servers": kafka, "group_id": f"sf-demo-{run}"}
        data["topics"] = {role: f"{name}_{run}" for role, name in topics.items()}
        data["outputs"]["predictions_topic"] = f"{predictions_topic}_{run}"
        data["outputs"]["dead_letter_topic"] = f"{dead_letter_topic}_{run}"
    if database:
        data["outputs"]["database"] = database
    return PipelineSpec.model_validate(data)


def publish(
    kafka: str | None, topics: list[str], events: list[tuple[str, bytes, bytes]]
) -> MemoryBroker | None:
    """Write ``events`` (topic, key, value) in order: to new ``topics`` of the broker at
    ``kafka``, else to an in-process broker, which is returned."""
    if not kafka:
        broker = MemoryBroker()
        for topic, keys, values in _runs(events):
            broker.append(topic, values, keys)
        return broker
    from streamfit.streams.base import OutRecord
    from streamfit.streams.kafka import KafkaSink, create_topics

    create_topics(kafka, topics, partitions=1)
    sinks = {topic: KafkaSink(kafka, topic) for topic in topics}
    for topic, keys, values in _runs(events, KAFKA_CHUNK):
        sinks[topic].write([OutRecord(k, v) for k, v in zip(keys, values, strict=True)])
    for sink in sinks.values():
        sink.flush()
        sink.close()
    return None


def _runs(
    events: list[tuple[str, bytes, bytes]], most: int | None = None
) -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """The events as runs of one topic each (of ``most`` events at the most), in order.

    >>> [(t, len(keys)) for t, keys, _ in _runs([("a", b"", b"")] * 3 + [("b", b"", b"")], 2)]
    [('a', 2), ('a', 1), ('b', 1)]
    """
    for topic, same_topic in itertools.groupby(events, key=lambda event: event[0]):
        run = list(same_topic)
        step = most or len(run)
        for start in range(0, len(run), step):
            part = run[start : start + step]
            yield topic, [key for _, key, _ in part], [value for _, _, value in part]


def start_afresh(
    spec: PipelineSpec,
    settings: Settings,
    tables: list[str],
    shared: Iterable[str] = ("result_fields", "dead_letters"),
) -> None:
    """Forget an earlier run of the demo in its database: its checkpoint (a demo replays its
    stream from the start every time), its ``tables``, its rows in the ``shared`` tables
    (``result_fields``, ``dead_letters``, ``models``) and the operator's commands queued for
    it (a promotion asked of the last run is not this run's): they then hold this run only."""
    with Store(database_url(spec, settings), spec.name) as store:
        store.delete_checkpoint()
        _forget_earlier_runs(store, spec, tables, (*shared, "model_commands"))


def _forget_earlier_runs(
    store: Store, spec: PipelineSpec, names: list[str], shared: Iterable[str]
) -> None:
    with store.engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        for shared_name in shared:
            table = sa.Table(shared_name, sa.MetaData(), autoload_with=conn)
            rows: sa.ColumnElement[bool]
            if shared_name == "result_fields":
                rows = table.c.table_name.in_(names)
            else:
                rows = table.c.pipeline == spec.name
            conn.execute(sa.delete(table).where(rows))


def run_until(
    worker: Worker,
    total: int,
    bar: Progress,
    offset: int = 0,
    then: Callable[[Worker, int], None] | None = None,
) -> None:
    """Run ``worker`` until it has read ``total`` events, showing them on ``bar`` (after
    ``offset`` events already shown); ``then(worker, n)`` after every batch."""
    task = bar.task_ids[0]

    def on_batch(w: Worker, n: int) -> None:
        bar.update(task, completed=offset + w.stats.events_in)
        if then is not None:
            then(w, n)

    worker.run(until=lambda w: w.stats.events_in >= total, on_batch=on_batch)


def run_demo_worker(
    worker: Worker,
    description: str,
    total: int,
    summarize: Callable[[Worker, float], dict[str, Any]],
    progress: bool = True,
    serve: str | None = None,
    broker: MemoryBroker | None = None,
    stop: threading.Event | None = None,
    show: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``worker`` through ``total`` events with a progress bar, then close it; return
    ``summarize(worker, seconds elapsed)``, after ``show(summary)``.

    ``serve`` (``[HOST:]PORT``): serve the dashboard and the API from the worker while it
    runs, and after its stream ends until ``stop`` is set (its address is printed).
    """
    started = time.monotonic()
    with ExitStack() as stack:
        stack.callback(worker.close)
        live = None
        if serve is not None:
            from streamfit.api import serve_live

            live = stack.enter_context(serve_live(worker, serve, broker=broker))
            print(f"streamfit demo: the dashboard is at {live.url}", file=sys.stderr, flush=True)
        with event_progress(description, total, enabled=progress) as bar:
            run_until(worker, total, bar, then=None if live is None else live.source.on_batch)
        summary = summarize(worker, time.monotonic() - started)
        if show is not None:
            show(summary)
        if live is not None:
            live.source.running = False
            live.source.publish(worker, force=True)
            print(
                f"streamfit demo: the stream has ended; the dashboard stays up at {live.url} "
                "(Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            (stop or threading.Event()).wait()
        return summary


def rounded(value: Any) -> float | None:
    """A figure of a summary: four decimals, or None."""
    return None if value is None else round(float(value), 4)


def formatted(value: float | None) -> str:
    """A figure in a table of a summary: three decimals, or ``-``."""
    return "-" if value is None else f"{value:.3f}"


def figures(
    snapshot: Mapping[Any, Any], names: Iterable[str], prefix: str = ""
) -> dict[str, float | None]:
    """The figures ``names`` (each after ``prefix``, such as ``window_``) of an evaluator's
    snapshot, rounded (None where missing)."""
    return {name: rounded(snapshot.get(prefix + name)) for name in names}


def split_snapshot(
    snapshot: Mapping[str, Any],
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """An evaluator's snapshot as its figures over all events and over the last window."""
    overall = {
        k: rounded(v)
        for k, v in snapshot.items()
        if not k.startswith("window_") and k != "events_seen"
    }
    window = {
        k.removeprefix("window_"): rounded(v)
        for k, v in snapshot.items()
        if k.startswith("window_")
    }
    return overall, window


def throughput(worker: Worker, elapsed: float) -> dict[str, Any]:
    """The summary's figures of a run: dead letters, time, rate, and where it wrote."""
    return {
        "dead_letters": worker.stats.dead_letters,
        "elapsed_seconds": round(elapsed, 3),
        "events_per_second": round(worker.stats.events_in / max(elapsed, 1e-9), 1),
        "database": worker.store.display_url,
    }


def try_next(queries: list[str], heading: str = "  Try next:") -> list[str]:
    """The summary's closing lines: SQL to try on the tables."""
    return ["", heading, *(f"    {q}" for q in queries)]


def summary_json(summary: dict[str, Any]) -> str:
    """A summary as what ``--json`` prints."""
    return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()

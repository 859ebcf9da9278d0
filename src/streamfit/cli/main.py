"""The ``streamfit`` command (Typer): run, check, produce, demo, and the local Kafka broker.

Every failure a user can fix prints one line that says what to change and exits non-zero: a
bad spec (or an unreachable broker or database it names) ``streamfit: bad spec: <key>: ...``
with exit code 2, as a bad command-line option does; other errors exit 1.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.exceptions import TyperException

from streamfit import __version__
from streamfit.errors import SpecError, StreamfitError
from streamfit.limits import MAX_TEXT_CHARS

if TYPE_CHECKING:
    from streamfit.runtime.worker import RunStats
    from streamfit.spec.model import PipelineSpec

__all__ = ["app", "main"]

log = logging.getLogger("streamfit")

app = typer.Typer(
    name="streamfit",
    help="Real-time machine learning on event streams: learn from labeled events, score the "
    "others, write predictions and metrics to Kafka and SQL.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
kafka_app = typer.Typer(
    help="The local Apache Kafka broker (single node, 127.0.0.1:9092 unless that port is taken).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(kafka_app, name="kafka")
models_app = typer.Typer(
    help="A pipeline's models: their versions, which serves; promote one, roll back.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")


class LogLevel(StrEnum):
    """How much the commands log to standard error."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _version(value: bool) -> None:
    if value:
        print(f"streamfit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="How much to log to standard error.",
        ),
    ] = LogLevel.warning,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=getattr(logging, log_level.value.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamfit`` console script; returns the exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name="streamfit",
            standalone_mode=False,
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except TyperException as exc:  # a bad option or argument: the message says which
        message = getattr(exc, "message", None)
        if isinstance(message, str):
            exc.message = message.replace("Value error, ", "")
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"streamfit: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except SpecError as exc:
        print(f"streamfit: bad spec: {exc}", file=sys.stderr)
        return 2
    except StreamfitError as exc:
        print(f"streamfit: {exc}", file=sys.stderr)
        return 1
    return int(result) if isinstance(result, int) else 0


# -------------------------------------------------------------------------------- run, check

SpecPath = Annotated[
    Path, typer.Argument(help="The pipeline spec (YAML).", show_default=False, metavar="SPEC")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Database URL (SQLAlchemy), instead of the spec's outputs.database. "
        "Default: the spec's, else STREAMFIT_DATABASE_URL, else sqlite:///streamfit.db.",
        show_default=False,
    ),
]


@app.command()
def check(spec: SpecPath, db: DatabaseOption = None) -> int:
    """Check a pipeline without running it, and say what it will do.

    Checks the spec, builds its models, and reaches its broker and database; exits 2 with the
    key to change when something is wrong.
    """
    from streamfit.runtime.preflight import preflight

    plan = preflight(_load(spec, db))
    print(plan.render())
    return 0


@app.command()
def run(
    spec: SpecPath,
    db: DatabaseOption = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="This worker's id among the workers of one pipeline (they share a consumer "
            "group and need distinct ids). Default: STREAMFIT_WORKER_ID, else 0.",
            show_default=False,
        ),
    ] = None,
    stop_when_idle: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            min=0,
            help="Stop after this many seconds without new events. Default: run until "
            "SIGINT or SIGTERM.",
            show_default=False,
        ),
    ] = None,
    serve: ServeOption = None,
    api_keys: ApiKeysOption = None,
) -> int:
    """Run a pipeline until stopped (Ctrl-C, SIGTERM) or idle.

    Runs the same checks as 'streamfit check' first, before joining the consumer group.
    With --serve, the REST API, /metrics and the dashboard answer from this worker's
    live models while it runs.
    """
    stop = _stop_on_signals()  # first: a stop asked for while starting up is a clean stop
    from streamfit.cli.progress import RateMeter
    from streamfit.pipeline import Pipeline
    from streamfit.runtime.preflight import preflight
    from streamfit.runtime.worker import Worker

    spec_checked = _load(spec, db)
    plan = preflight(spec_checked)  # before joining any consumer group
    log.info("%s", plan.render())
    name = spec_checked.name
    last_report = [time.monotonic()]
    meter = RateMeter(window=10.0)

    def on_batch(w: Worker, n: int) -> None:
        now = time.monotonic()
        meter.add(w.stats.events_in, now)
        if now - last_report[0] >= 10:
            last_report[0] = now
            log.warning(
                "%s: %.0f events/s over the last 10 s; %s",
                name,
                meter.rate(now),
                _counts(spec_checked, w.stats),
            )

    with Pipeline(spec_checked, worker_id=worker_id) as pipeline:
        if serve is None:
            stats = pipeline.run(idle=stop_when_idle, stop=stop, on_batch=on_batch)
        else:
            from streamfit.api import serve_live

            with serve_live(pipeline, serve, api_keys) as live:
                print(f"{name}: serving on {live.url}", file=sys.stderr, flush=True)

                def both(w: Worker, n: int) -> None:
                    on_batch(w, n)
                    live.source.on_batch(w, n)

                stats = pipeline.run(idle=stop_when_idle, stop=stop, on_batch=both)
    print(f"{name}: {_counts(spec_checked, stats)}", file=sys.stderr)
    return 0


def _counts(spec: PipelineSpec, stats: RunStats) -> str:
    """What a run did: events in, trained, scored (by each head: the pipeline's and its
    ``targets:``; an anomaly pipeline's detectors learn from what they score), dead
    letters, and texts read only in part."""
    scored = f"{stats.events_scored} scored"
    if spec.task == "anomaly":
        scored += " (the detectors learn from each event they score)"
    return (
        f"{stats.events_in} events in, {stats.events_trained} trained, {scored}, "
        f"{stats.dead_letters} dead letters"
        + (
            f", {stats.texts_truncated} texts read only up to {MAX_TEXT_CHARS:,} characters"
            if stats.texts_truncated
            else ""
        )
    )


ServeOption = Annotated[
    str | None,
    typer.Option(
        "--serve",
        metavar="[HOST:]PORT",
        help="Serve the REST API, /metrics and the dashboard on this address while running "
        "(host 127.0.0.1 unless given). Default: no serving.",
        show_default=False,
    ),
]
ApiKeysOption = Annotated[
    Path | None,
    typer.Option(
        "--api-keys",
        metavar="FILE",
        help="API keys for writes, one a line with its rights (besides STREAMFIT_API_KEYS). "
        "Default: STREAMFIT_API_KEYS_FILE.",
        show_default=False,
        exists=True,
        dir_okay=False,
    ),
]


@app.command()
def serve(
    specs: Annotated[
        list[Path],
        typer.Argument(
            help="The pipeline specs (YAML), or a demo's name (speed-dating, shuttle, ...: "
            "what 'streamfit demo' wrote, in its database).",
            show_default=False,
            metavar="SPEC...",
        ),
    ],
    db: DatabaseOption = None,
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", help="Port to listen on.")
    ] = 8000,
    api_keys: ApiKeysOption = None,
) -> int:
    """Serve the REST API, /metrics and the dashboard over pipelines' stores.

    Predictions use the models of each pipeline's latest checkpoint, reloaded as new ones
    land. Runs until Ctrl-C or SIGTERM.
    """
    from streamfit.api import build_app
    from streamfit.api.server import serve_forever, url_of
    from streamfit.api.sources import StoreSource

    sources = [StoreSource(_load_or_demo(spec, db)) for spec in specs]
    try:
        application = build_app(sources, api_keys)
        print(
            f"streamfit: serving {', '.join(s.name for s in sources)} on {url_of(host, port)}",
            file=sys.stderr,
            flush=True,
        )
        serve_forever(application, host, port)
    finally:
        for source in sources:
            source.close()
    return 0


def _load_or_demo(path: Path, database: str | None) -> Any:
    """The spec at ``path``, or the spec of the demo of that name when no such file exists
    (in the demo's default database unless ``database``)."""
    if not path.exists() and str(path) in {d.value for d in DemoName}:
        from streamfit.cli.demo import default_demo_db

        spec = _demo_spec(DemoName(str(path)))
        outputs = spec.outputs.model_copy(update={"database": database or default_demo_db()})
        return spec.model_copy(update={"outputs": outputs})
    return _load(path, database)


def _load(path: Path, database: str | None) -> Any:
    from streamfit.spec.loader import load_spec

    spec = load_spec(path)
    if database:
        spec = spec.model_copy(
            update={"outputs": spec.outputs.model_copy(update={"database": database})}
        )
    return spec


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received %s: finishing the current batch, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


# ----------------------------------------------------------------------------------- produce


class FileFormat(StrEnum):
    """How ``produce`` reads a file."""

    auto = "auto"
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"
    parquet = "parquet"


class Header(StrEnum):
    """Whether a CSV/TSV file's first line names its columns."""

    auto = "auto"
    yes = "yes"
    no = "no"


@app.command()
def produce(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, TSV, JSON Lines or Parquet file, gzipped or not.",
            show_default=False,
            metavar="FILE",
            exists=True,
            dir_okay=False,
        ),
    ],
    topic: Annotated[
        str,
        typer.Option(metavar="TOPIC", help="Topic to send the events to.", show_default=False),
    ],
    bootstrap: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Kafka bootstrap servers. Default: STREAMFIT_KAFKA_BOOTSTRAP, else the "
            "broker of 'streamfit kafka start', else 127.0.0.1:9092.",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            min=0, metavar="EVENTS_PER_S", help="Events per second; 0 sends as fast as it can."
        ),
    ] = 0.0,
    key: Annotated[
        str | None,
        typer.Option(
            metavar="FIELD",
            help="Field whose value becomes each message's key. Default: no key.",
            show_default=False,
        ),
    ] = None,
    file_format: Annotated[
        FileFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="File format; auto: from the name (.csv, .tsv, .jsonl, .parquet, each "
            "optionally .gz), else from the content.",
        ),
    ] = FileFormat.auto,
    header: Annotated[
        Header,
        typer.Option(
            case_sensitive=False,
            help="Whether the first line of a CSV/TSV names the columns; auto: yes unless it "
            "looks like data (then columns are named column_1, column_2, ...).",
        ),
    ] = Header.auto,
    names: Annotated[
        str | None,
        typer.Option(
            metavar="A,B,...",
            help="Column names for a CSV/TSV without a header line (implies --header no). "
            "Default: the header line's, else column_1, column_2, ...",
            show_default=False,
        ),
    ] = None,
) -> int:
    """Send a data file's rows to a Kafka topic, one JSON event per row."""
    from streamfit.cli.progress import event_progress, stderr_console
    from streamfit.runtime.keys import payload_keys
    from streamfit.streams.base import OutRecord
    from streamfit.streams.kafka import KafkaSink
    from streamfit.streams.local_kafka import find_bootstrap
    from streamfit.streams.replay import ReadOptions, read_events

    options = ReadOptions(
        format=None if file_format is FileFormat.auto else file_format.value,
        header=None if header is Header.auto else header is Header.yes,
        names=[n.strip() for n in names.split(",")] if names else None,
    )
    table = read_events(file, options)
    console = stderr_console()
    console.print(table.describe(), highlight=False)
    broker = find_bootstrap(bootstrap)
    # librdkafka's warnings while a new broker settles ("retrying") are noise here; errors
    # still show, and a failed delivery fails the command
    sink = KafkaSink(broker.bootstrap, topic, config={"log_level": 3})
    started = time.monotonic()
    sent = 0
    keys = payload_keys(table.events, key) if key else [None] * len(table.events)
    step = 100 if rate else 1000
    try:
        with event_progress(f"-> {topic}", len(table.events), console) as bar:
            for i in range(0, len(table.events), step):
                part = [
                    OutRecord(k, v)
                    for k, v in zip(keys[i : i + step], table.events[i : i + step], strict=True)
                ]
                if rate:
                    ahead = (sent + len(part)) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                sink.write(part)
                sent += len(part)
                bar.advance(bar.task_ids[0], len(part))
        sink.flush()
    finally:
        sink.close()
    elapsed = time.monotonic() - started
    console.print(
        f"produced {sent:,} events to {topic} at {broker.describe()} in {elapsed:.1f} s",
        highlight=False,
    )
    return 0


# -------------------------------------------------------------------------------------- demo


@app.command()
def stats(
    spec: Annotated[
        str,
        typer.Argument(
            help="The pipeline spec (YAML), or a demo's name (shuttle, speed-dating).",
            show_default=False,
            metavar="SPEC",
        ),
    ],
    db: DatabaseOption = None,
    field: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Show this field whole. Default: every field, a line each.",
            show_default=False,
        ),
    ] = None,
) -> int:
    """The latest statistics of each field of a pipeline's stream: counts, missing values,
    mean, quantiles, top values and a small histogram."""
    from streamfit.cli.progress import stderr_console
    from streamfit.cli.stats import field_stats_rows, render_field, render_fields
    from streamfit.runtime.build import database_url
    from streamfit.spec.settings import Settings

    path = Path(spec)
    if not path.exists() and spec in {d.value for d in DemoName}:
        from streamfit.cli.demo import default_demo_db

        loaded = _demo_spec(DemoName(spec))
        db = db or default_demo_db()
    else:
        loaded = _load(path, None)
    if db:
        outputs = loaded.outputs.model_copy(update={"database": db})
        loaded = loaded.model_copy(update={"outputs": outputs})
    rows = field_stats_rows(loaded, database_url(loaded, Settings()), field)
    table = loaded.stats.table_name(loaded.name)
    if not rows:
        what = f"field {field!r}" if field else "any field"
        stderr_console().print(
            f"no statistics of {what} in {table} yet: run the pipeline first (stats are on "
            "unless its spec says 'stats: false')",
            highlight=False,
        )
        return 1
    console = Console(highlight=False)
    console.width = max(console.width, 140)  # a wide table reads better cut than wrapped
    if field:
        render_field(rows[0], loaded, console)
    else:
        render_fields(rows, loaded, console)
    return 0


def _demo_spec(name: DemoName) -> Any:
    if name is DemoName.flights:
        from streamfit.cli.demo_flights import DEFAULT_MODEL, flights_spec

        return flights_spec(DEFAULT_MODEL)
    if name is DemoName.clickstream:
        from streamfit.cli.demo_clickstream import clickstream_spec

        return clickstream_spec()
    if name is DemoName.shuttle:
        from streamfit.cli.shuttle import shuttle_spec

        return shuttle_spec()
    if name is DemoName.sentiment:
        from streamfit.cli.demo_sentiment import sentiment_spec

        return sentiment_spec()
    if name is DemoName.delayed:
        from streamfit.cli.demo_delayed import delayed_specs

        return delayed_specs()[1]
    from streamfit.cli.demo import demo_spec

    return demo_spec()


class DemoName(StrEnum):
    """The demos: the bundled streams."""

    speed_dating = "speed-dating"
    shuttle = "shuttle"
    flights = "flights"
    clickstream = "clickstream"
    sentiment = "sentiment"
    delayed = "delayed"


@app.command()
def demo(
    name: Annotated[
        DemoName,
        typer.Argument(
            help="speed-dating (default): learn from dates and classify others; shuttle: "
            "score a space shuttle's sensor readings for anomalies, two detectors side by side; "
            "flights: a gradient-boosting model trained offline (ONNX) A/B tested against one "
            "learning online; clickstream: continuous learning behind an update gate, with a "
            "PNG of its metrics; sentiment: learn the sentiment of movie-review sentences as "
            "they come; delayed: the speed dates with each outcome on a labels topic up to "
            "5,000 dates later, against the same run with labels at once.",
            show_default=False,
        ),
    ] = DemoName.speed_dating,
    kafka: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            help="Run through this Kafka broker ('local': the one of 'streamfit kafka "
            "start'). Default: the in-process stream, no broker.",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Database URL. Default: sqlite:///streamfit_demo.db in this directory.",
            show_default=False,
        ),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve",
            metavar="[HOST:]PORT",
            help="Serve the dashboard and the REST API while the demo runs, and keep them "
            "up when its stream ends, until Ctrl-C. Default: no serving.",
            show_default=False,
        ),
    ] = None,
) -> int:
    """A demo on bundled data: speed-dating (learn from dates, classify others), shuttle
    (anomalies in a sensor stream), flights, clickstream, sentiment (text) or delayed (labels
    that come late)."""
    from streamfit.cli.demo import default_demo_db, render_summary, run_demo
    from streamfit.cli.demos_common import summary_json
    from streamfit.streams.local_kafka import find_bootstrap

    broker = None
    if kafka:
        broker = find_bootstrap(None if kafka == "local" else kafka).bootstrap
    database = db or default_demo_db()
    if name is DemoName.sentiment:
        from streamfit.cli.demo_sentiment import render_sentiment_summary, run_sentiment_demo

        if serve is not None:
            raise typer.BadParameter(
                "the sentiment demo has no dashboard yet: run it without --serve",
                param_hint="--serve",
            )
        summary = run_sentiment_demo(kafka=broker, database=database, progress=not json)
        print(summary_json(summary) if json else render_sentiment_summary(summary))
        return 0
    if name in (DemoName.flights, DemoName.clickstream, DemoName.delayed):
        if kafka or serve is not None:
            raise typer.BadParameter(
                f"the {name.value} demo runs on the in-process stream, without a dashboard",
                param_hint="--kafka/--serve",
            )
        if name is DemoName.delayed:
            from streamfit.cli.demo_delayed import render_delayed_summary, run_delayed_demo

            summary = run_delayed_demo(database=database, progress=not json)
            print(summary_json(summary) if json else render_delayed_summary(summary))
            return 0
        if name is DemoName.flights:
            from streamfit.cli.demo_flights import render_flights_summary, run_flights_demo

            summary = run_flights_demo(database=database, progress=not json)
            print(summary_json(summary) if json else render_flights_summary(summary))
            return 0
        from streamfit.cli.demo_clickstream import (
            render_clickstream_summary,
            run_clickstream_demo,
        )

        summary = run_clickstream_demo(database=database, progress=not json)
        print(summary_json(summary) if json else render_clickstream_summary(summary))
        return 0
    if name is DemoName.shuttle:
        from streamfit.cli.shuttle import render_shuttle_summary, run_shuttle_demo

        run_shuttle_demo(
            kafka=broker,
            database=database,
            progress=not json,
            serve=serve,
            stop=_stop_on_signals() if serve is not None else None,
            show=lambda summary: print(
                summary_json(summary) if json else render_shuttle_summary(summary), flush=True
            ),
        )
        return 0
    stop = _stop_on_signals() if serve is not None else None

    def show(summary: dict[str, Any]) -> None:
        print(summary_json(summary) if json else render_summary(summary), flush=True)

    run_demo(
        kafka=broker,
        database=database,
        progress=not json,
        serve=serve,
        stop=stop,
        show=show,
    )
    return 0


# ------------------------------------------------------------------------------------ models


@models_app.command("list")
def models_list(
    spec: SpecPath,
    db: DatabaseOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> int:
    """Each model's saved versions with their metrics, which one serves, pending commands."""
    import orjson

    from streamfit.runtime.operator import model_report

    report = model_report(_load(spec, db))
    if json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"pipeline {report['pipeline']}: {report['champion']} is the champion")
    for model in report["models"]:
        role = "serves" if model["serves"] else "challenger"
        if model["share"]:
            role = f"serves {model['share']:.0%} (A/B)"
        versions = model["versions"]
        print(f"  {model['name']:<16} {role}; {len(versions)} saved version(s)")
        for version in versions[-5:]:
            metrics = version["metrics"]
            figures = ", ".join(
                f"{k} {metrics[k]:.4f}"
                for k in ("accuracy", "f1", "roc_auc", "log_loss", "rmse")
                if isinstance(metrics.get(k), float)
            )
            kept = "" if version["state_kept"] else " (state pruned)"
            print(f"    v{version['version']:<6} {version['saved_at'] or '':<32} {figures}{kept}")
    for command in report["pending"]:
        target = command["model"] or "the champion"
        print(f"  pending: {command['command']} {target} (asked {command['requested_at']})")
    for command in report["recent"]:
        print(f"  done: {command['command']} {command['model'] or ''}: {command['result']}")
    return 0


@models_app.command("promote")
def models_promote(
    spec: SpecPath,
    name: Annotated[str, typer.Argument(help="The model to serve.", show_default=False)],
    db: DatabaseOption = None,
) -> int:
    """Make a model the champion: at a running worker's next checkpoint, or when it starts."""
    from streamfit.runtime.operator import promote

    command = promote(_load(spec, db), name)
    print(f"command {command}: promote {name} (at the worker's next checkpoint or start)")
    return 0


@models_app.command("rollback")
def models_rollback(
    spec: SpecPath,
    name: Annotated[
        str | None,
        typer.Argument(
            help="A model to take back to a saved version. Default: reinstate the previous "
            "champion.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            metavar="VERSION",
            help="The saved version to go back to. Default: the one before the current.",
            show_default=False,
        ),
    ] = None,
    db: DatabaseOption = None,
) -> int:
    """Reinstate the previous champion, or a model's saved version (at the next checkpoint)."""
    from streamfit.runtime.operator import rollback

    command = rollback(_load(spec, db), name, to)
    what = "the previous champion" if name is None else f"{name} to v{to or 'the one before'}"
    print(f"command {command}: roll back {what} (at the worker's next checkpoint or start)")
    return 0


# ------------------------------------------------------------------------------------- kafka

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="The broker's directory (config, data, log). Default: STREAMFIT_KAFKA_DIR, else "
        "~/.local/state/streamfit/kafka.",
        show_default=False,
    ),
]


@kafka_app.command("start")
def kafka_start(
    port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535,
            metavar="PORT",
            help="Port to listen on; when another program holds it, a free port is taken "
            "instead (and said) unless --strict.",
        ),
    ] = 9092,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail rather than take another port.")
    ] = False,
    directory: DirOption = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start from empty storage (deletes every topic).")
    ] = False,
) -> int:
    """Start the local broker (the first start downloads its jars with Maven: a few minutes).

    Prints its address on standard output. Every streamfit command finds it by itself.
    """
    from streamfit.cli.progress import stderr_console
    from streamfit.streams.local_kafka import LocalBroker, jars_fetched

    console = stderr_console()
    if not jars_fetched():
        console.print("fetching the Kafka broker's jars with Maven (once; a few minutes)...")
    broker = LocalBroker.start(port, directory, strict=strict, fresh=fresh)
    if broker.already_running:
        console.print(f"the local Kafka broker already runs at {broker.bootstrap}")
    if broker.moved:
        console.print(
            f"[bold yellow]port {broker.wanted_port} is taken by another program: the broker "
            f"listens on {broker.bootstrap} instead.[/] streamfit commands find it by "
            f"themselves; give other Kafka clients {broker.bootstrap}."
        )
    elif not broker.already_running:
        console.print(f"the local Kafka broker runs at {broker.bootstrap} ({broker.directory})")
    print(broker.bootstrap)
    return 0


@kafka_app.command("stop")
def kafka_stop(directory: DirOption = None) -> int:
    """Stop the local broker (its topics stay for the next start)."""
    from streamfit.streams.local_kafka import LocalBroker

    stopped = LocalBroker.stop(directory)
    print("stopped" if stopped else "not running", file=sys.stderr)
    return 0


@kafka_app.command("status")
def kafka_status(directory: DirOption = None) -> int:
    """Print the local broker's address and exit 0 if it runs; exit 1 if not."""
    from streamfit.streams.local_kafka import broker_dir, running_bootstrap

    bootstrap = running_bootstrap(directory)
    if bootstrap is None:
        print(f"not running ({broker_dir(directory)})", file=sys.stderr)
        return 1
    print(bootstrap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

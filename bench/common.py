"""What every bench suite shares: where things are, the sizes of a run, the broker, topics,
running one scenario in its own process, what the run ran on, and the README sections the
suites write.

A suite (``bench.throughput``, ``bench.latency``, ``bench.memory``, ``bench.scale``,
``bench.delivery``) imports this module and ``bench.data``, never another suite or the entry
point ``bench.run``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.data import create_topic, events, produce

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUIX_PYTHON = ROOT / "bench" / ".venv-quix" / "bin" / "python"
SCENARIO_TIMEOUT = 1800


@dataclass
class Plan:
    """Sizes of one run."""

    events: int
    caps: dict[str, dict[str, int]]
    latency_rate: float
    latency_seconds: float
    repeat: int = 1
    latency_repeat: int = 1
    latency_warmup_seconds: float = 0
    quick: bool = False
    out: Path = RESULTS
    memory_events: tuple[int, int] = (1_000_000, 10_000_000)
    scale_events: int = 2_000_000


FULL = Plan(
    events=1_000_000,
    caps={
        "river": {"numeric10": 200_000, "mixed30": 50_000},
        "river_hst": {"numeric10": 100_000},
        "river_lr": {"numeric10": 200_000},
        "quix_river": {"numeric10": 100_000, "mixed30": 30_000},
        "kafka_python_sklearn": {"numeric10": 10_000, "mixed30": 5_000},
    },
    latency_rate=20_000,
    latency_seconds=20,
    latency_repeat=3,
    latency_warmup_seconds=30,
)
QUICK = Plan(
    events=50_000,
    caps={
        "river": {"numeric10": 10_000, "mixed30": 3_000},
        "river_hst": {"numeric10": 10_000},
        "river_lr": {"numeric10": 10_000},
        "quix_river": {"numeric10": 5_000, "mixed30": 2_000},
        "kafka_python_sklearn": {"numeric10": 500, "mixed30": 300},
    },
    latency_rate=20_000,
    latency_seconds=4,
    quick=True,
    out=RESULTS / "quick",
    memory_events=(100_000, 1_000_000),
    scale_events=200_000,
)


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ broker


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


def new_topic(bootstrap: str, prefix: str, partitions: int = 1) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, name, partitions)
    return name


def fill_topic(
    bootstrap: str, dataset: str, n: int, partitions: int = 1, unlabeled_every: int = 0
) -> str:
    suffix = f"_u{unlabeled_every}" if unlabeled_every else ""
    topic = new_topic(bootstrap, f"bench_{dataset}{suffix}", partitions)
    started = time.perf_counter()
    sent = produce(
        bootstrap, topic, events(dataset, n, unlabeled_every=unlabeled_every), partitions
    )
    elapsed = time.perf_counter() - started
    log(f"  {sent:,} events to {topic} in {elapsed:.1f}s ({sent / elapsed:,.0f}/s)")
    return topic


@contextmanager
def broker(prefix: str = "streamfit-bench-") -> Iterator[str]:
    """The bootstrap address of the broker named by ``STREAMFIT_BENCH_KAFKA``, or of a fresh
    one started with ``scripts/kafka`` in a temporary directory and stopped on exit."""
    bootstrap = os.environ.get("STREAMFIT_BENCH_KAFKA")
    if bootstrap is not None:
        yield bootstrap
        return
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    log("starting a local Kafka broker ...")
    try:
        yield start_broker(workdir)
    finally:
        stop_broker(workdir)


# --------------------------------------------------------------------------------- scenarios


def child_env() -> dict[str, str]:
    """The environment of the scenario processes: compiled bytecode is cached under
    ``bench/.cache/pycache`` (even where ``PYTHONDONTWRITEBYTECODE`` is set), so that the
    ~20 processes of a run do not each compile numpy, scipy, River and streamfit again.
    Only start-up time changes; every measurement starts after the imports."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "bench" / ".cache" / "pycache")
    return env


def python_for(scenario: str) -> Path | None:
    if scenario == "quix_river":
        return QUIX_PYTHON if QUIX_PYTHON.exists() else None
    return Path(sys.executable)


def scenario_command(
    scenario: str, bootstrap: str, topic: str, n: int, dataset: str, extra: list[str]
) -> list[str]:
    python = python_for(scenario)
    assert python is not None
    return [
        str(python),
        "-m",
        "bench.scenarios",
        scenario,
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--events",
        str(n),
        "--dataset",
        dataset,
        *extra,
    ]


def last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise ValueError("no result line")


def run_scenario(
    row: str,
    scenario: str,
    bootstrap: str,
    topic: str,
    n: int,
    dataset: str,
    extra: list[str],
    repeat: int,
) -> dict[str, Any]:
    """Best of ``repeat`` runs (by events/s), each in a fresh process; failures are recorded."""
    if python_for(scenario) is None:
        log(f"  {row}: skipped ({QUIX_PYTHON} missing; `make bench` creates it)")
        return {"row": row, "scenario": scenario, "dataset": dataset, "error": "not installed"}
    best: dict[str, Any] | None = None
    for attempt in range(repeat):
        log(f"  {row} on {dataset}, {n:,} events (run {attempt + 1}/{repeat}) ...")
        try:
            out = subprocess.run(
                scenario_command(scenario, bootstrap, topic, n, dataset, extra),
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=child_env(),
                timeout=SCENARIO_TIMEOUT,
            )
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "")
            result = last_json(out.stdout)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            log(f"    FAILED: {exc}")
            result = {"scenario": scenario, "dataset": dataset, "error": str(exc)[-300:]}
        else:
            log(
                f"    {result['events_per_second']:,.0f} events/s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB"
            )
        result = {"row": row, "requested": n, **result}
        if best is None or result.get("events_per_second", 0) > best.get("events_per_second", 0):
            best = result
    assert best is not None
    return best


def score_training_supported() -> bool:
    """Whether this streamfit can emit predictions for the training events it predicts."""
    from streamfit.spec.model import OutputsSpec

    return "score_training_events" in OutputsSpec.model_fields


# -------------------------------------------------------------------------- what it ran on


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gb = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("streamfit", "confluent-kafka", "river", "scikit-learn", "kafka-python", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if QUIX_PYTHON.exists():
        probe = subprocess.run(
            [
                str(QUIX_PYTHON),
                "-c",
                "import importlib.metadata as m; "
                "print(m.version('quixstreams'), m.version('confluent-kafka'))",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.split():
            quix, ck = probe.stdout.split()
            out["quixstreams"] = quix
            out["confluent-kafka (quix env)"] = ck
    kafka = (ROOT / "scripts" / "kafka").read_text()
    for line in kafka.splitlines():
        if line.startswith("KAFKA_VERSION="):
            out["kafka broker"] = line.split("=", 1)[1]
    return out


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()

    import streamfit

    where = Path(streamfit.__file__).resolve().parent
    in_tree = where == ROOT / "src" / "streamfit"
    return {
        "commit": os.environ.get("STREAMFIT_BENCH_COMMIT") or git("rev-parse", "--short", "HEAD"),
        "src_uncommitted_changes": in_tree and bool(git("status", "--porcelain", "--", "src")),
        "streamfit_from": "src/streamfit" if in_tree else str(where),
    }


# -------------------------------------------------------------------------------- the READMEs


def replace_between(path: Path, marker: str, text: str) -> None:
    """Put ``text`` between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in ``path``
    (left alone where the markers are missing)."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    content = path.read_text()
    if start in content and end in content:
        head, rest = content.split(start, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(f"{head}{start}\n{text}{end}{tail}")

"""The dashboard in a real browser (Debian's chromium, driven by Playwright): while
``streamfit run --serve`` learns from a real broker, the page's charts fill with data and
move, without a reload; a screenshot is saved (``STREAMFIT_TEST_SCREENSHOTS``: a directory to
keep it in as well)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import orjson

from streamfit.streams.kafka import create_topics, delete_topics
from tests.conftest import service_missing
from tests.integration.api_support import WRITE_KEY, rows, streamfit_serving
from tests.integration.support import produce, write_spec

CHROMIUM = "/usr/bin/chromium"
#: flags that work on a machine without a network or a display (a fresh profile is added)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: points in the model quality chart's traces, in the page
QUALITY_POINTS = (
    "(document.getElementById('quality').data || []).reduce((n, t) => n + t.x.length, 0)"
)


def _feed(bootstrap: str, train: str, score: str, stop: threading.Event) -> None:
    """Labeled and unlabeled events, a few hundred at a time, until told to stop (or 40
    rounds: the test never needs that many)."""
    for round_ in range(40):
        if stop.is_set():
            return
        produce(bootstrap, train, [orjson.dumps(r) for r in rows(400, seed=round_)])
        produce(
            bootstrap, score, [orjson.dumps(r) for r in rows(40, seed=1000 + round_, labeled=False)]
        )
        stop.wait(0.5)  # pacing the stream so that the page sees it move


def test_the_dashboard_shows_charts_that_move_while_a_pipeline_runs(
    kafka_bootstrap: str, tmp_path: Path, unique_name: str
) -> None:
    if not Path(CHROMIUM).exists():
        service_missing(f"no browser: install Debian's chromium ({CHROMIUM})")
    from playwright.sync_api import sync_playwright

    train, score = f"{unique_name}_train", f"{unique_name}_score"
    create_topics(kafka_bootstrap, [train, score], partitions=2)
    spec = {
        "name": unique_name[:30],
        "source": {
            "kind": "kafka",
            "bootstrap_servers": kafka_bootstrap,
            "group_id": unique_name,
        },
        "topics": {"train": train, "score": score},
        "target": "y",
        "classes": [0, 1],
        "models": [
            {"name": "lr", "builtin": "logistic_regression"},
            {"name": "binned", "builtin": "binned_logistic_regression"},
        ],
        "evaluation": {"window": 300, "interval_events": 300, "interval_seconds": 1},
        "checkpoint": {"interval_seconds": 1},
        "learning": {"block_events": 100},
        "outputs": {"database": f"sqlite:///{tmp_path / 'dash.db'}"},
    }
    path = write_spec(tmp_path / "pipeline.yaml", spec)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(kafka_bootstrap, train, score, stop))
    shot = tmp_path / "dashboard.png"
    try:
        with streamfit_serving(["run", str(path)], tmp_path / "worker.log") as server:
            feeder.start()
            with server.client(WRITE_KEY) as client:  # events through the API go in too
                sent = client.post(
                    f"/v1/pipelines/{spec['name']}/events",
                    json={"role": "train", "events": rows(50, seed=99)},
                )
                assert sent.status_code == 200 and sent.json()["accepted"] == 50
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch_persistent_context(
                    str(tmp_path / "profile"),
                    executable_path=CHROMIUM,
                    headless=True,
                    args=FLAGS,
                    viewport={"width": 1400, "height": 1500},
                )
                try:
                    page = browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda error: errors.append(str(error)))
                    page.goto(server.url + "/", wait_until="domcontentloaded")
                    # charts with data: quality over time, throughput, lag, a field's histogram
                    page.wait_for_function(f"{QUALITY_POINTS} >= 4", timeout=120_000)
                    page.wait_for_function(
                        "document.getElementById('throughput').data[0].x.length >= 2"
                        " && document.getElementById('lag').data[0].x.length >= 1"
                        " && document.getElementById('histogram').data.length >= 1"
                        " && document.getElementById('histogram').data[0].y.length >= 2",
                        timeout=120_000,
                    )
                    points = page.evaluate(QUALITY_POINTS)
                    updates = page.evaluate("window.streamfitDashboard.updates")
                    # ... and they move without a reload
                    page.wait_for_function(f"{QUALITY_POINTS} > {points}", timeout=120_000)
                    page.wait_for_function(
                        f"window.streamfitDashboard.updates > {updates}", timeout=120_000
                    )
                    legend = page.evaluate(
                        "document.getElementById('quality').data.map((t) => t.name)"
                    )
                    assert any(name.startswith("lr (serving") for name in legend), legend
                    assert page.evaluate("window.streamfitDashboard.errors") == 0
                    assert errors == []
                    page.screenshot(path=str(shot), full_page=True)
                finally:
                    browser.close()
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(timeout=120)
        delete_topics(kafka_bootstrap, [train, score])
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("STREAMFIT_TEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "dashboard.png")

"""The scale-out bench's arithmetic: the window once assigned, and where the time went in it."""

from __future__ import annotations

from typing import Any

import pytest

from bench.scale import steady_rate, steady_window, window_cpu


def _worker(rate: float, main_share: float, other_share: float, waiting: float) -> dict[str, Any]:
    """A worker sampled every 0.1 s for 10 s, assigned at t=1: ``rate`` events/s, its main
    thread running ``main_share`` of the time and waiting for a CPU ``waiting`` of it."""
    samples = []
    for i in range(101):
        t = i / 10
        main = main_share * t
        samples.append((1000 + t, int(rate * t), main, main + other_share * t, waiting * t))
    return {"timeline": samples, "assigned": [1001.0]}


def test_the_window_starts_half_a_second_after_the_last_assignment() -> None:
    workers = [_worker(50_000, 0.8, 0.1, 0.15), _worker(50_000, 0.8, 0.1, 0.15)]
    workers[1]["assigned"] = [1000.0, 1003.0]
    assert steady_window(workers) == (1003.5, 1010.0)
    assert steady_rate(workers) == pytest.approx(100_000, rel=1e-4)


def test_a_window_under_a_second_is_no_window() -> None:
    worker = _worker(50_000, 0.8, 0.1, 0.15)
    worker["assigned"] = [1009.2]
    assert steady_window([worker]) is None
    assert steady_rate([worker]) is None


def test_where_the_time_went_splits_the_rate_into_cpu_share_over_cost_per_event() -> None:
    workers = [_worker(100_000, 0.8, 0.1, 0.15), _worker(80_000, 0.6, 0.05, 0.3)]
    # machine: 2 cores, 1.8 of them busy, 0.1 stolen; broker 0.25 of a core
    machine = [
        (1000 + t / 10, 1.8 * t / 10, 2.0 * t / 10, 0.1 * t / 10, 0.25 * t / 10) for t in range(101)
    ]
    cpu = window_cpu(workers, machine, (1002.0, 1008.0), broker_known=True)
    assert cpu["machine_busy_percent"] == pytest.approx(90.0)
    assert cpu["steal_percent"] == pytest.approx(5.0)
    assert cpu["broker_core_percent"] == pytest.approx(25.0)
    assert cpu["main_core_percent"] == pytest.approx([80.0, 60.0])
    assert cpu["other_threads_core_percent"] == pytest.approx([10.0, 5.0])
    assert cpu["main_waiting_for_cpu_percent"] == pytest.approx([15.0, 30.0])
    # 1.4 s of main-thread CPU a second over 180,000 events a second
    assert cpu["main_us_per_event"] == pytest.approx(1e6 * 1.4 / 180_000, abs=0.01)


def test_without_the_broker_or_the_machine_samples_only_the_workers_are_told() -> None:
    workers = [_worker(100_000, 0.8, 0.1, 0.15)]
    cpu = window_cpu(workers, [], (1002.0, 1008.0), broker_known=False)
    assert "machine_busy_percent" not in cpu and "broker_core_percent" not in cpu
    assert cpu["main_core_percent"] == pytest.approx([80.0])


def test_each_series_keeps_each_counts_best_run_and_the_report_shows_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs go 1, 2, 2, 1 workers, first with a predictions topic, then without; each
    count's best run (once assigned) is its row, and each series has its own ratio."""
    from bench import common, report, scale

    rates = iter([100.0, 150.0, 180.0, 90.0, 120.0, 230.0, 200.0, 110.0])
    calls: list[tuple[int, bool]] = []

    def fake_run(
        bootstrap: str,
        topic: str,
        workers: int,
        plan: common.Plan,
        option: bool,
        broker: int | None,
        predictions: bool,
    ) -> dict[str, Any]:
        calls.append((workers, predictions))
        rate = next(rates)
        return {"steady_events_per_second": rate, "events_per_second": rate, "per_worker": []}

    monkeypatch.setattr(scale, "_scale_run", fake_run)
    monkeypatch.setattr(scale, "fill_topic", lambda *a, **k: "topic")
    monkeypatch.setattr(scale, "broker_pid", lambda bootstrap: None)
    out = scale.scale_suite("127.0.0.1:1", common.QUICK, option=True)

    order = [1, 2, 2, 1]
    assert calls == [(w, True) for w in order] + [(w, False) for w in order]
    assert out["workers_1"]["runs_steady_events_per_second"] == [100.0, 90.0]
    assert out["ratio"] == pytest.approx(180.0 / 100.0, abs=1e-3)
    assert out["no_predictions"]["ratio"] == pytest.approx(230.0 / 120.0, abs=1e-3)

    targets = "\n".join(report.targets({"scale": out}))
    assert "| 1.80x | yes |" in targets and "| 1.92x | yes |" in targets
    shown = "\n".join(report.scale_table({"scale": out}))
    assert "without a predictions topic" in shown and "| 2 | 230 |" in shown

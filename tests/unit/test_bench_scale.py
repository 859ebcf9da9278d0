"""The scale-out bench's arithmetic: the window once assigned, and where the time went in it."""

from __future__ import annotations

from typing import Any

import pytest
from bench.run import steady_rate, steady_window, window_cpu


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

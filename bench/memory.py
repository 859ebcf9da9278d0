"""The memory suite (``--memory``): streamfit's peak RSS over 1M and 10M events of
``numeric10``, each in its own process."""

from __future__ import annotations

import time
from typing import Any

from bench.common import Plan, fill_topic, log, new_topic, run_scenario


def memory_suite(bootstrap: str, plan: Plan, option: bool) -> dict[str, Any]:
    small, large = plan.memory_events
    log(f"memory: producing {large:,} numeric10 events ...")
    topic = fill_topic(bootstrap, "numeric10", large)
    runs = []
    for n in (small, large):
        extra = ["--predictions-topic", new_topic(bootstrap, "bench_predictions")]
        extra += ["--score-training"] if option else []
        runs.append(
            run_scenario("streamfit", "streamfit", bootstrap, topic, n, "numeric10", extra, 1)
        )
    ratio = (
        runs[1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
        if all("peak_rss_mb" in r for r in runs)
        else None
    )
    return {"runs": runs, "rss_ratio": ratio, "date": time.strftime("%Y-%m-%d %H:%M")}

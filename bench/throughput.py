"""The throughput suite: on each topic, (a) bare consume, the streamfit rows (b)/(b') and the
baselines (c1)-(c3), each scenario in its own process (``bench.scenarios``), so peak RSS is
per scenario; see ``bench/README.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.common import Plan, fill_topic, log, new_topic, run_scenario
from bench.data import DATASETS

#: Runs of (a), the best kept: it takes a few seconds and is the noisiest figure (it has
#: varied from 0.2M to 1.1M events/s between runs on a shared 2-core VM), and every ratio
#: divides by it.
CEILING_REPEAT = 3


@dataclass
class Topics:
    labeled: dict[str, str] = field(default_factory=dict)
    interleaved: dict[str, str] = field(default_factory=dict)


def stats_supported() -> bool:
    """Whether this streamfit has field statistics (``stats:``)."""
    from streamfit.spec.model import PipelineSpec

    return "stats" in PipelineSpec.model_fields


def drift_supported() -> bool:
    """Whether this streamfit has drift detection (``drift:``)."""
    from streamfit.spec.model import PipelineSpec

    return "drift" in PipelineSpec.model_fields


def anomaly_supported() -> bool:
    """Whether this streamfit has ``task: anomaly``."""
    from streamfit.spec.model import PipelineSpec

    return "anomaly" in PipelineSpec.model_fields


def streamfit_rows(
    bootstrap: str, dataset: str, topics: Topics, option: bool
) -> list[tuple[str, str, list[str]]]:
    """(row, topic, arguments) of the streamfit scenarios; see bench/README.md for why."""

    def preds() -> list[str]:
        return ["--predictions-topic", new_topic(bootstrap, "bench_predictions")]

    if option:
        base = [*preds(), "--score-training"]
        rows = [
            ("streamfit", topics.labeled[dataset], base),
            (
                "streamfit_results",
                topics.labeled[dataset],
                [*preds(), "--score-training", "--write-results"],
            ),
        ]
        if stats_supported():
            stats = [*preds(), "--score-training", "--stats"]
            rows.append(("streamfit_stats", topics.labeled[dataset], stats))
        if drift_supported():
            drift = [*preds(), "--score-training", "--drift"]
            rows.append(("streamfit_drift", topics.labeled[dataset], drift))
        if dataset == "numeric10" and anomaly_supported():
            rows.append(("streamfit_anomaly", topics.labeled[dataset], [*preds(), "--anomaly"]))
        return rows
    mixed = topics.interleaved[dataset]
    return [
        ("streamfit_tt", topics.labeled[dataset], preds()),
        ("streamfit_scored", mixed, [*preds(), "--roles", "both"]),
        ("streamfit_scored_results", mixed, [*preds(), "--roles", "both", "--write-results"]),
    ]


def throughput_suite(
    bootstrap: str, plan: Plan, option: bool
) -> tuple[list[dict[str, Any]], Topics]:
    topics = Topics()
    log(f"producing {len(DATASETS)} topics of {plan.events:,} events ...")
    for dataset in DATASETS:
        topics.labeled[dataset] = fill_topic(bootstrap, dataset, plan.events)
        if not option:
            topics.interleaved[dataset] = fill_topic(
                bootstrap, dataset, plan.events, unlabeled_every=2
            )
    results = []
    for dataset in DATASETS:
        log(f"{dataset}:")
        topic = topics.labeled[dataset]
        results.append(
            run_scenario(
                "bare_consume",
                "bare_consume",
                bootstrap,
                topic,
                plan.events,
                dataset,
                [],
                max(plan.repeat, CEILING_REPEAT),
            )
        )
        for row, row_topic, extra in streamfit_rows(bootstrap, dataset, topics, option):
            results.append(
                run_scenario(
                    row, "streamfit", bootstrap, row_topic, plan.events, dataset, extra, plan.repeat
                )
            )
        for scenario in ("river", "river_lr", "quix_river", "kafka_python_sklearn", "river_hst"):
            if dataset not in plan.caps[scenario]:
                continue
            n = min(plan.events, plan.caps[scenario][dataset])
            results.append(
                run_scenario(scenario, scenario, bootstrap, topic, n, dataset, [], plan.repeat)
            )
    return results, topics

"""``streamfit demo shuttle`` and ``streamfit stats``, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streamfit.cli.main import main


def test_the_shuttle_demo_meets_its_target_and_fills_its_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'X.db'}"
    assert main(["demo", "shuttle", "--json", "--db", db]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["events_scored"] == 49_097
    assert summary["database"] == db
    assert {"results", "training", "field_stats"} <= set(summary["tables"])
    models = {m["name"]: m["metrics"] for m in summary["models"]}
    assert list(models) == ["histogram", "half_space_trees"]
    assert models["histogram"]["roc_auc"] >= 0.95
    assert models["half_space_trees"]["roc_auc"] >= 0.9
    for metrics in models.values():
        assert 0.0 < metrics["average_precision"] <= 1.0 and metrics["alarms"] > 0
    sensors = [f"A{i}" for i in range(1, 10)]
    assert set(sensors) <= set(summary["field_stats_fields"])

    assert main(["stats", "shuttle", "--db", db]) == 0
    table = capsys.readouterr().out
    assert all(f"\u2502 {name} " in table for name in sensors)
    assert main(["stats", "shuttle", "--db", db, "--field", "A5"]) == 0
    one = capsys.readouterr().out
    assert "A5 (numeric)" in one and "p99" in one and "top values" in one
    assert main(["stats", "shuttle", "--db", db, "--field", "nope"]) == 1
    assert "no statistics of field 'nope'" in capsys.readouterr().err

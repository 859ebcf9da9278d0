"""``streamfit demo flights`` and ``streamfit demo clickstream``, as a user runs them: what
their ``--json`` summaries report, and that the tables they name are there to query."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from streamfit.cli.main import main


def tables_of(db: str) -> set[str]:
    engine = sa.create_engine(db)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_flights_demo_serves_both_arms_and_names_its_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'flights.db'}"
    assert main(["demo", "flights", "--json", "--db", db]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert (tmp_path / "flights_gbm.onnx").is_file() and summary["trained_now"]
    assert summary["events"] == 18_969
    models = {m["name"]: m for m in summary["models"]}
    assert list(models) == ["gbm", "online"]
    assert models["gbm"]["kind"].startswith("onnx:") and models["gbm"]["version"] == 0
    served = [m["served"]["events_served"] for m in models.values()]
    assert sum(served) == 18_969 and min(served) > 0.45 * 18_969  # 50/50 by flight
    for model in models.values():
        assert 0.6 < model["metrics"]["roc_auc"] < 0.8
        assert model["results_rows"] == model["served"]["events_served"]
    assert summary["champion"] in models
    assert isinstance(summary["promotions"], list)
    assert set(summary["tables"].values()) <= tables_of(db)


def test_the_clickstream_demo_counts_the_gate_and_draws_its_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'clicks.db'}"
    assert main(["demo", "clickstream", "--json", "--db", db]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["events"] == 40_000
    gate = summary["gate"]
    assert gate["kept"] + gate["rejected"] == 80  # 40,000 events in blocks of 500
    assert gate["rejected_in_the_mislabeled_burst"] == gate["blocks_in_the_mislabeled_burst"]
    models = {m["name"]: m for m in summary["models"]}
    assert list(models) == ["gated", "ungated"]
    assert models["gated"]["gate"] == {"kept": gate["kept"], "rejected": gate["rejected"]}
    assert models["ungated"]["events_learned"] == 40_000
    for model in models.values():
        assert {"accuracy", "f1", "log_loss"} <= set(model["metrics"])
    assert isinstance(summary["promotions"], int)
    png = tmp_path / summary["png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(summary["tables"].values()) <= tables_of(db)

"""The ONNX scoring bench: both heads score the same flights, and the table reports them."""

from __future__ import annotations

import pytest

from bench.onnx_scoring import onnx_scoring_suite
from bench.report import markdown, onnx_scoring_table, targets


def test_both_heads_are_timed_on_the_same_flights() -> None:
    result = onnx_scoring_suite(events=2500, repeat=1)
    assert result["events"] == 2500
    per = result["per_event"]
    for name in ("onnx", "logistic", "onnx_linear"):
        assert 0 < per[name]["model_us"] <= per[name]["step_us"]
    assert result["step_ratio"] == pytest.approx(
        per["onnx"]["step_us"] / per["logistic"]["step_us"], abs=0.01
    )
    assert result["target_met"] == (result["step_ratio"] <= result["target_ratio"])
    assert result["linear_step_ratio"] == pytest.approx(
        per["onnx_linear"]["step_us"] / per["logistic"]["step_us"], abs=0.01
    )


def test_the_table_and_the_target_row_show_the_ratio() -> None:
    result = {
        "events": 18969,
        "batch": 1000,
        "repeat": 7,
        "per_event": {
            "onnx": {"step_us": 4.35, "model_us": 3.42},
            "logistic": {"step_us": 0.89, "model_us": 0.12},
        },
        "step_ratio": 4.89,
        "model_ratio": 28.5,
        "target_ratio": 2.0,
        "target_met": False,
        "date": "2026-12-06 11:34",
    }
    table = "\n".join(onnx_scoring_table(result))
    assert "| ONNX: 100-tree gradient boosting (the flights demo's) | 4.35 | 3.42 |" in table
    assert "4.89x the scoring step" in table and "not met" in table
    row = [line for line in targets({"onnx_scoring": result}) if "ONNX" in line]
    assert row == [
        "| scoring through ONNX ≤ 2x the built-in logistic model's scoring step per event "
        "| 4.89x | no |"
    ]
    assert "Scoring through ONNX" in markdown({"onnx_scoring": result})
    assert onnx_scoring_table({}) == []

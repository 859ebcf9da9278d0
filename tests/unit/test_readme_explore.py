"""The anomaly walkthrough of docs/explore.md, run as printed: its specs over a CSV replay, its
commands and its SQL."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from streamfit.cli.main import main

README = Path(__file__).resolve().parents[2] / "docs" / "explore.md"


def readme_spec(name: str) -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if b.startswith(f"name: {name}\n"))


def write_sensors_csv(path: Path, n: int = 3000) -> None:
    """The file the README describes: a header line, then a reading per line."""
    rng = np.random.default_rng(11)
    lines = ["reading_id,temperature,pressure,vibration,valve,fault"]
    for i in range(n):
        fault = rng.random() < 0.03
        temperature = rng.normal(70, 2) + (15 if fault else 0)
        pressure = rng.normal(5, 0.2) - (1.5 if fault else 0)
        vibration = abs(rng.normal(0.3, 0.05)) * (4 if fault else 1)
        valve = "stuck" if fault and rng.random() < 0.5 else ["open", "shut"][i % 2]
        lines.append(f"r{i},{temperature:.2f},{pressure:.3f},{vibration:.3f},{valve},{int(fault)}")
    path.write_text("\n".join(lines) + "\n")


def test_the_readme_anomaly_walkthrough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_sensors_csv(tmp_path / "sensors.csv")
    (tmp_path / "sensors.yaml").write_text(readme_spec("sensors"))
    assert main(["run", "sensors.yaml", "--stop-when-idle", "3"]) == 0
    assert main(["stats", "sensors.yaml"]) == 0
    assert "pressure" in capsys.readouterr().out
    assert main(["stats", "sensors.yaml", "--field", "pressure"]) == 0
    text = README.read_text(encoding="utf-8")
    queries = re.findall(r'sqlite3 sensors\.db "(.*?)"', text)
    assert len(queries) >= 3
    with closing(sqlite3.connect(tmp_path / "sensors.db")) as conn:
        results = [conn.execute(q).fetchall() for q in queries]
        fields = {row[0] for row in results[0]}
        assert {"temperature", "pressure", "vibration", "valve", "fault"} <= fields
        assert len(results[1]) == 10  # the top anomalies
        training = results[2]
        histogram = [row for row in training if row[0] == "histogram"][-1]
        assert histogram[1] == 3000 and histogram[2] > 0.9  # ROC AUC against `fault`
        changes = conn.execute("SELECT field, new_type FROM sensors_schema_changes").fetchall()
        assert ("valve", "categorical") in changes

    (tmp_path / "plant.yaml").write_text(readme_spec("plant"))
    assert main(["run", "plant.yaml", "--stop-when-idle", "3"]) == 0
    with closing(sqlite3.connect(tmp_path / "sensors.db")) as conn:
        r2 = conn.execute(
            "SELECT window_r2 FROM plant_temperature_training ORDER BY events_seen DESC LIMIT 1"
        ).fetchone()
        accuracy = conn.execute(
            "SELECT window_accuracy FROM plant_valve_training ORDER BY events_seen DESC LIMIT 1"
        ).fetchone()
    assert r2 is not None and accuracy is not None

"""The streamfit command: plain help with every option described, bad values refused, and
`check` / `run` reject a bad spec with the key to change, before joining any group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from streamfit.cli.main import app, main

COMMANDS = [[], ["run"], ["check"], ["produce"], ["demo"], ["kafka"], ["kafka", "start"]]
COMMANDS += [["kafka", "stop"], ["kafka", "status"]]

GOOD = """
name: sms
source: {kind: memory}
topics: {train: sms}
target: label
models:
  - {name: lr, builtin: logistic_regression}
  - {name: nb, river: naive_bayes.MultinomialNB}
outputs: {database: "sqlite:///%s"}
"""


def help_text(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """The help of ``streamfit ARGS``, lines joined (the terminal's width wraps them)."""
    assert main([*args, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "streamfit")
def test_help_is_plain_text(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    text = help_text(capsys, args)
    assert "`" not in text and "**" not in text and "[bold" not in text and "\x1b" not in text


def commands(command: Any, path: str = "streamfit") -> list[tuple[str, Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += commands(sub, f"{path} {name}")
    return found


def test_every_option_is_described_with_its_default() -> None:
    for path, command in commands(typer.main.get_command(app)):
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            where = f"{path} {param.opts[0]}"
            assert param.help, f"{where}: no help"
            flag = getattr(param, "is_flag", False)
            stated = param.show_default is not False or "Default:" in param.help
            assert flag or stated or param.required, f"{where}: default not stated"


def test_defaults_are_stated(capsys: pytest.CaptureFixture[str]) -> None:
    produce = help_text(capsys, ["produce"])
    assert "[default: 0.0" in produce and "[default: auto]" in produce
    assert "Default: STREAMFIT_KAFKA_BOOTSTRAP" in produce  # computed defaults in words
    assert "[default: 9092" in help_text(capsys, ["kafka", "start"])
    assert "[default: warning]" in help_text(capsys, [])


def test_a_bad_option_value_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "bogus", "check", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--log-level': 'bogus' is not one of" in err
    assert "Value error" not in err
    assert main(["produce", "x.csv", "--topic", "t", "--rate", "-5"]) == 2


def test_check_says_what_the_pipeline_will_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "sms.yaml"
    spec.write_text(GOOD % (tmp_path / "sms.db"))
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline sms: ok")
    assert "every label is a class" in out
    assert "an event of sms without 'label': dead letter" in out
    assert "lr (builtin: logistic_regression) serves (the champion)" in out
    assert "nb (river: naive_bayes.MultinomialNB) runs alongside" in out
    assert "results to sms_results, metrics to sms_training, rejects to dead_letters" in out
    assert not (tmp_path / "sms.db").exists()  # checked, not created


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("naive_bayes.MultinomialNB", "naive_bayes.NoSuchNB"),
            "bad spec: models.1: model 'nb' (river: naive_bayes.NoSuchNB): "
            "river.naive_bayes has no 'NoSuchNB'",
        ),
        (
            (
                "{name: lr, builtin: logistic_regression}",
                "{name: lr, sklearn: linear_model.SGDClassifier, params: {loss: nope}}",
            ),
            "bad spec: models.0: model 'lr' (sklearn: linear_model.SGDClassifier): ",
        ),
        (
            ("outputs: {", "outputs: {results_table: models, "),
            "bad spec: outputs.results_table: streamfit keeps a table 'models' of its own",
        ),
        (
            ('"sqlite:///%s"', '"sqlite:////no/such/folder/x.db"'),
            "bad spec: outputs.database: sqlite:////no/such/folder/x.db: no folder",
        ),
        (
            ("source: {kind: memory}", "source: {kind: file, path: /no/such/file.csv}"),
            "bad spec: source.path: no such file: /no/such/file.csv",
        ),
    ],
)
def test_a_bad_spec_exits_2_with_the_key_to_change(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
    change: tuple[str, str],
    message: str,
) -> None:
    spec = tmp_path / "bad.yaml"
    text = GOOD.replace(*change)
    spec.write_text(text % (tmp_path / "x.db") if "%s" in text else text)
    assert main([command, str(spec)]) == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_database_is_a_bad_spec(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = tmp_path / "pg.yaml"
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    spec.write_text(GOOD.replace('"sqlite:///%s"', f'"{url}"'))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "bad spec: outputs.database: cannot connect to postgresql+psycopg://nobody:***@" in err
    assert "secret" not in err


def test_a_run_says_an_anomaly_pipeline_learned_from_what_it_scored() -> None:
    from streamfit.cli.main import _counts
    from streamfit.runtime.worker import RunStats
    from streamfit.spec import validate_spec

    stats = RunStats(events_in=20, events_trained=0, events_scored=19, dead_letters=1)
    anomaly = validate_spec({"name": "a", "topics": {"score": "t"}, "task": "anomaly"})
    assert _counts(anomaly, stats) == (
        "20 events in, 0 trained, 19 scored (the detectors learn from each event they score), "
        "1 dead letters"
    )
    labeled = validate_spec({"name": "c", "topics": {"train": "t"}, "target": "y"})
    assert _counts(labeled, stats) == "20 events in, 0 trained, 19 scored, 1 dead letters"


def test_stats_never_cut_a_figure_in_a_narrow_terminal() -> None:
    import io

    from rich.console import Console

    from streamfit.cli.stats import render_fields
    from streamfit.spec import validate_spec

    spec = validate_spec({"name": "plant", "topics": {"score": "t"}, "task": "anomaly"})
    row = {
        "field": "bearing_temperature",
        "kind": "numeric",
        "events": 1_234_567,
        "count": 1_234_560,
        "missing": 7,
        "invalid": 0,
        "mean": 71.123456,
        "p01": 65.04,
        "p50": 70.5,
        "p99": 1_234_567.25,
        "distinct_count": 98_765,
        "top_values": [{"value": "a long value " * 4, "count": 12_345}],
        "histogram": {"edges": [0, 1, 2], "counts": [3, 9]},
    }
    out = io.StringIO()
    render_fields([row], spec, Console(file=out, width=80, highlight=False))
    text = out.getvalue()
    for figure in ("bearing_temperature", "1,234,560", "71.1235", "1.23457e+06", "98,765"):
        assert figure in text, figure


def test_serve_takes_a_demos_name_for_its_spec(tmp_path: Path, monkeypatch: Any) -> None:
    from streamfit.cli.main import _load_or_demo

    monkeypatch.chdir(tmp_path)  # no file named like the demo here
    shuttle = _load_or_demo(Path("shuttle"), "sqlite:///x.db")
    assert (shuttle.name, shuttle.outputs.database) == ("shuttle", "sqlite:///x.db")
    dating = _load_or_demo(Path("speed-dating"), None)
    assert dating.name == "speed_dating"
    assert dating.outputs.database == f"sqlite:///{tmp_path / 'streamfit_demo.db'}"
    with pytest.raises(Exception, match="nope"):
        _load_or_demo(Path("nope"), None)

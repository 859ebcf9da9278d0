"""What every demo does before it runs: start from an empty slate in its database."""

from __future__ import annotations

from pathlib import Path

from streamfit.cli.demo import demo_spec
from streamfit.cli.demos_common import start_afresh
from streamfit.spec.settings import Settings
from streamfit.store import Store


def test_a_demo_run_forgets_the_commands_queued_for_the_last_one(tmp_path: Path) -> None:
    """A promotion asked of an earlier run, never carried out, would be taken by the next
    run's worker at its first checkpoint."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    spec = demo_spec(database=url)
    with Store(url, spec.name) as store:
        store.add_model_command("promote", spec.models[1].name)
        with Store(url, "another") as other:
            other.add_model_command("promote", "x")
    start_afresh(spec, Settings(), [])
    with Store(url, spec.name) as store, Store(url, "another") as other:
        assert store.model_commands() == []
        assert len(other.model_commands()) == 1

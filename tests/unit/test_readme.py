"""The README's Python example runs as printed, in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs").glob("*.md"))


def test_the_python_example_runs_as_printed(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        for expected in re.findall(r"print\(.*\)\s+# (.+)$", block, re.M):
            if re.fullmatch(r"[\w .,-]+", expected) and expected[0].isdigit():
                assert expected in done.stdout, (expected, done.stdout)


def test_every_spec_in_the_readme_is_valid_and_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec reference, the walkthrough's spec and every guide's specs load, and
    `streamfit check` (without reaching a broker or a database) passes on them (the files
    they replay exist)."""
    from streamfit.runtime.preflight import preflight
    from streamfit.spec import load_spec_text
    from streamfit.spec.model import FileSourceSpec

    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2, "the README has no spec"
    for guide in GUIDES:
        blocks += re.findall(r"```yaml\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    for block in blocks:
        spec = load_spec_text(block)
        if isinstance(spec.source, FileSourceSpec):
            Path(spec.source.path).write_text("a,b\n1,2\n")
        preflight(spec, connect=False)


def test_the_dead_letters_columns_the_readme_lists_are_the_tables() -> None:
    from streamfit.store.tables import fixed_metadata

    text = README.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `dead_letters` |"))
    listed = re.findall(r"`(\w+)`", row.split("|")[3])
    assert listed == [c.name for c in fixed_metadata().tables["dead_letters"].columns]

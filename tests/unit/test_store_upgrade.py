"""A database made by an older streamfit gets the columns added since."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from streamfit.store import Store


def test_missing_nullable_columns_are_added(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the checkpoints table as it was before emitted_offset
        conn.exec_driver_sql(
            "CREATE TABLE checkpoints (pipeline VARCHAR(64) NOT NULL, source_topic VARCHAR(255) "
            "NOT NULL, source_partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, "
            "written_at DATETIME NOT NULL, PRIMARY KEY (pipeline, source_topic, source_partition))"
        )
    engine.dispose()
    with Store(url, "p") as store:
        store.save_checkpoint({("t", 0): 5}, {}, emitted={("t", 0): 9})
        checkpoint = store.load_checkpoint()
    assert checkpoint is not None
    assert checkpoint.offsets == {("t", 0): 5} and checkpoint.emitted == {("t", 0): 9}

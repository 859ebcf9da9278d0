"""streamfit.store: the SQL tables streamfit writes, on SQLite, PostgreSQL and MariaDB/MySQL.

:class:`Store` is the whole API (SQLAlchemy Core underneath):

- ``write_results(table, batch, predictions, labels, task)``: one row per event, its fields
  as typed columns (new fields add columns), the champion's ``prediction``/``probability``/
  ``model``/``model_version``, ``prediction__<model>``/``probability__<model>`` for the
  others, ``label``, ``source_topic``/``source_partition``/``source_offset`` (the key: a
  replay upserts), ``event_key``, ``event_time``, ``processed_at``;
- ``write_training(table, rows)``: metrics per (model, events_seen);
- ``write_dead_letters(letters)``, ``save_model``/``load_model``,
  ``save_checkpoint``/``load_checkpoint`` (offsets and states in one transaction);
- ``count``, ``read_results``, ``read_training``, ``read_dead_letters``, ``field_columns``.

Classification predictions and labels are stored as text, whole numbers without a decimal
point and booleans as 1/0 (``1``, ``1.0`` and ``True`` all read ``"1"``); regression ones as
``DOUBLE``. Tables, types and column names: :mod:`streamfit.store.tables`.

>>> with Store("sqlite://", pipeline="demo") as store:
...     store.save_model("lr", 1, "logistic_regression", b"\\x01state")
...     store.load_model("lr")
(1, 'logistic_regression', b'\\x01state')
"""

from streamfit.store.sql import Checkpoint, ModelPredictions, Store
from streamfit.store.tables import (
    RESERVED_COLUMNS,
    TRAINING_METRICS,
    column_name,
    prediction_column,
    probability_column,
)

__all__ = [
    "RESERVED_COLUMNS",
    "TRAINING_METRICS",
    "Checkpoint",
    "ModelPredictions",
    "Store",
    "column_name",
    "prediction_column",
    "probability_column",
]

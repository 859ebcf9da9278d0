"""streamfit.store: the SQL tables streamfit writes (SQLAlchemy Core).

SQLite, PostgreSQL and MariaDB/MySQL, all tested against real servers. See
:mod:`streamfit.store.tables` for the tables and types and :class:`Store` for the API.

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

"""streamfit.explore: what a stream holds, and what in it is unusual.

Knows nothing of I/O: the runtime feeds it decoded batches and stores what it reports.

- ``StreamStatistics`` (``statistics``): live per-field statistics on Apache DataSketches,
  over all time and over a recent window, mergeable across workers; the schema changes it
  sees (``SchemaChange``);
- ``FieldSketch`` (``sketches``): one field's sketches over a span of events;
- ``CoMoments`` (``comoments``): mergeable pairwise covariances and correlations;
- field kinds and what is invalid for each (``kinds``).
"""

from streamfit.explore.comoments import CoMoments
from streamfit.explore.kinds import KINDS, Kind, infer_kind, read_column
from streamfit.explore.sketches import FieldSketch, SketchSizes, rank_error
from streamfit.explore.statistics import (
    DEFAULT_QUANTILES,
    SchemaChange,
    StreamStatistics,
    View,
    quantile_column,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "KINDS",
    "CoMoments",
    "FieldSketch",
    "Kind",
    "SchemaChange",
    "SketchSizes",
    "StreamStatistics",
    "View",
    "infer_kind",
    "quantile_column",
    "rank_error",
    "read_column",
]

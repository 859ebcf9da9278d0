"""streamfit: real-time machine learning on event streams.

Reads events from Apache Kafka (or the in-process stream, or a file replay), learns from the
labeled ones as they arrive, scores the unlabeled ones at the same time, and writes every
prediction and model-quality figure to Kafka and to a SQL database.

>>> import streamfit
>>> streamfit.__version__
'0.1.0'
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

"""streamfit: real-time machine learning on event streams.

Reads events from Apache Kafka (or the in-process stream, or a file replay), learns from the
labeled ones as they arrive, scores the unlabeled ones at the same time, and writes every
prediction and model-quality figure to Kafka and to a SQL database.

From Python, a ``Pipeline`` is built from a spec (a YAML file or a mapping), sent events,
run, and read back (``streamfit.pipeline`` has a whole example):

>>> import streamfit
>>> streamfit.__version__
'0.1.0'
>>> sorted(streamfit.__all__)  # doctest: +NORMALIZE_WHITESPACE
['Component', 'Pipeline', 'PipelineSpec', 'RunStats', 'StreamfitError', 'Worker',
 '__version__', 'idle_for', 'load_spec']
"""

from __future__ import annotations

__version__ = "0.1.0"  # first: the modules below read it

from streamfit.errors import StreamfitError
from streamfit.pipeline import Pipeline, idle_for
from streamfit.runtime.component import Component
from streamfit.runtime.worker import RunStats, Worker
from streamfit.spec import PipelineSpec, load_spec

__all__ = [
    "Component",
    "Pipeline",
    "PipelineSpec",
    "RunStats",
    "StreamfitError",
    "Worker",
    "__version__",
    "idle_for",
    "load_spec",
]

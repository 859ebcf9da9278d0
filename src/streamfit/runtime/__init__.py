"""The worker loop and how it is assembled from a spec.

Where each piece lives:

=======================  ==================================================================
``worker``               the loop: poll, decode, route, score, learn, record, checkpoint
``head``                 one target: its featurizer, models, evaluation, learning blocks
``models``               the models of a head side by side: predict, test-then-train, serve
``component``            the extension point: a piece with state and tables of its own that
                         plugs into the loop's steps (statistics, gates, label joins, ...)
``evaluators``           prequential evaluation, the first component
``blocks``               training rows waiting for their block; the order of learning
``routing``, ``labels``  which rows are learned, scored, rejected
``outputs``, ``records`` the results table, the predictions topic, the dead letters
``snapshot``             what a checkpoint holds besides the offsets
``isolation``            the events a step fails on, found and set aside
``retry``                outages: pause, retry, resume
``build``, ``preflight`` a worker from a spec, and the checks before it starts
=======================  ==================================================================

The packages below it hold the logic a component wraps (``evaluation``, ``explore``,
``lifecycle``): they know nothing of the loop or of I/O.
"""

from streamfit.runtime.build import build_worker
from streamfit.runtime.worker import RunStats, Worker

__all__ = ["RunStats", "Worker", "build_worker"]

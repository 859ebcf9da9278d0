"""Drift: River's detectors watching each model's errors and the stream's numeric fields.

``Watch`` runs one detector over one stream (``streamfit.drift.detectors``);
``error_stream`` turns how a model did on a block into the numbers its detector watches
(``streamfit.drift.signals``). The worker's side, alarms to the ``<name>_drift`` table and
the challenger ``on_drift: challenger`` starts, is ``streamfit.runtime.drift``.
"""

from streamfit.drift.detectors import Alarm, Watch
from streamfit.drift.signals import error_stream

__all__ = ["Alarm", "Watch", "error_stream"]

"""streamfit.delayed: labels that come after their events, joined to what was served.

A prediction is served now; the truth comes later, keyed by the event. ``LabelJoin`` keeps
each scored event's features (compact: ``features.KeptRows``, its values and hashed entries,
not the event) and each model's served prediction under the event's key (``KeptArena``),
until its label comes; it pairs labels with their events in the order it is handed blocks of
either, and keeps labels that come first until their event does. Everything here is pure
state, with no I/O: ``runtime.delayed`` plugs it into the worker, where the order it is
handed blocks in is the learning order of ``runtime.blocks`` (why replays are bit-exact).
"""

from streamfit.delayed.arena import KeptArena, Served
from streamfit.delayed.join import COUNTERS, LabelJoin, Matches

__all__ = ["COUNTERS", "KeptArena", "LabelJoin", "Matches", "Served"]

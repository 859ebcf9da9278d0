"""streamfit.features: decoded batches to hashed sparse feature matrices.

``Featurizer`` infers and evolves the schema, scales numbers online, hashes categories and
words into one index space (``feature_index``), and saves its state as versioned bytes.
"""

from __future__ import annotations

from streamfit.features.featurizer import STATE_VERSION, Featurizer
from streamfit.features.hashing import MISSING, HashedVocabulary, feature_index
from streamfit.features.moments import Moments

__all__ = ["MISSING", "STATE_VERSION", "Featurizer", "HashedVocabulary", "Moments", "feature_index"]

"""Feature hashing: every feature key to one column of a ``2**hash_bits`` index space.

A key is a string naming one feature:

=================================  =========================================
feature                            key
=================================  =========================================
numeric or boolean field ``f``     ``f``
its missing-value indicator        ``f=<missing>``
categorical field ``f``, value v   ``f=v``
text field ``f``, token t          ``f:t``
=================================  =========================================

Its column is MurmurHash3 (x86, 32-bit, seed 0, as unsigned) of the key's UTF-8 bytes, modulo
the number of columns (scikit-learn's ``murmurhash3_32``): the same in every process, on every
machine, release after release, unlike Python's ``hash()`` which is salted per process. Two
keys may share a column (a collision); their values then add up.

>>> feature_index("color=red", 2**18)
167982
>>> feature_index("color=red", 2**18) == feature_index("color=red", 2**18)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt
from sklearn.utils import murmurhash3_32

__all__ = ["MISSING", "HashedVocabulary", "feature_index"]

#: The value part of a missing-value indicator's key: ``f"{field}={MISSING}"``.
MISSING = "<missing>"


def feature_index(key: str, n_features: int) -> int:
    """The column of feature ``key`` among ``n_features`` columns.

    >>> feature_index("age", 16)
    1
    """
    return int(murmurhash3_32(key, seed=0, positive=True)) % n_features


class HashedVocabulary:
    """The columns of one field's values, with a bounded cache of those already hashed.

    Keys are ``prefix + value``; ``indices`` hashes only the values it has not seen since the
    cache was last cleared. The cache holds at most ``max_size`` values: it is emptied when the
    new values would not fit, and a batch with more new values than that is not cached at all.
    It only saves time; what it holds never changes a result.

    >>> vocab = HashedVocabulary("color=", 2**18)
    >>> vocab.indices(["red", "blue", "red"]).tolist()
    [167982, 58042, 167982]
    """

    __slots__ = ("_cache", "max_size", "n_features", "prefix")

    def __init__(self, prefix: str, n_features: int, max_size: int = 1 << 17) -> None:
        self.prefix = prefix
        self.n_features = n_features
        self.max_size = max_size
        self._cache: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def indices(self, values: Sequence[str]) -> npt.NDArray[np.int64]:
        """The column of each value (values are usually the unique ones of a batch)."""
        cache = self._cache
        found = np.fromiter(map(cache.get, values, repeat(-1)), dtype=np.int64, count=len(values))
        unknown = np.flatnonzero(found < 0)
        if unknown.size:
            if len(cache) + unknown.size > self.max_size:
                cache.clear()
            prefix, n = self.prefix, self.n_features
            fresh = [values[i] for i in unknown.tolist()]
            hashed = np.fromiter(
                (murmurhash3_32(prefix + value, seed=0, positive=True) for value in fresh),
                dtype=np.int64,
                count=len(fresh),
            )
            hashed %= n
            found[unknown] = hashed
            if unknown.size <= self.max_size:
                cache.update(zip(fresh, hashed.tolist(), strict=True))
        return found

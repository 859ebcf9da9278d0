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

from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt
from sklearn.utils import murmurhash3_32

__all__ = ["MISSING", "HashedVocabulary", "feature_index", "murmur3_32_many", "murmur3_32_words"]

#: The value part of a missing-value indicator's key: ``f"{field}={MISSING}"``.
MISSING = "<missing>"


def feature_index(key: str, n_features: int) -> int:
    """The column of feature ``key`` among ``n_features`` columns.

    >>> feature_index("age", 16)
    1
    """
    return int(murmurhash3_32(key, seed=0, positive=True)) % n_features


class HashedVocabulary:
    """The columns of one field's values: ``feature_index(prefix + value)`` for each.

    A large batch's values (usually its distinct ones) are hashed together by
    ``murmur3_32_many``, a few array passes over their bytes, rather than one call per value:
    a high-cardinality field brings thousands of values never seen before in every batch, and
    a cache of those already hashed cost more to keep up (a dictionary insertion per new value)
    than it saved. A small batch (fewer than ``_FEW`` values: the polls of a stream that is
    not saturated) looks its values up first among the last ones hashed (at most
    ``_REMEMBERED``), and hashes the new ones one call each: the array passes cost about the
    same whatever the count, up to about 1,000 values.

    >>> vocab = HashedVocabulary("color=", 2**18)
    >>> vocab.indices(["red", "blue", "red"]).tolist()
    [167982, 58042, 167982]
    """

    __slots__ = ("_known", "_prefix_bytes", "n_features", "prefix")

    def __init__(self, prefix: str, n_features: int) -> None:
        self.prefix = prefix
        self.n_features = n_features
        self._prefix_bytes = prefix.encode("utf-8")
        self._known: dict[str, int] = {}  # value -> column, for small batches

    def indices(self, values: Sequence[str]) -> npt.NDArray[np.int64]:
        """The column of each value."""
        n = len(values)
        if n >= _FEW:
            return self._hashed(values)
        known = self._known
        out = np.fromiter(map(known.get, values, repeat(-1, n)), dtype=np.int64, count=n)
        new = np.flatnonzero(out < 0)
        if new.size:
            fresh = [values[i] for i in new.tolist()]
            columns = self._hashed(fresh)
            out[new] = columns
            if len(known) + len(fresh) > _REMEMBERED:
                known.clear()
            remembered: Iterable[tuple[str, int]] = zip(fresh, columns.tolist(), strict=True)
            if max(map(len, fresh)) > _LONG:  # long values are not kept: memory stays small
                remembered = ((v, c) for v, c in remembered if len(v) <= _LONG)
            known.update(remembered)
        return out

    def _hashed(self, values: Sequence[str]) -> npt.NDArray[np.int64]:
        if len(values) < _FEW:
            prefix, n = self.prefix, self.n_features
            return np.fromiter(
                (murmurhash3_32(prefix + value, seed=0, positive=True) % n for value in values),
                dtype=np.int64,
                count=len(values),
            )
        hashed = murmur3_32_many(self._prefix_bytes, values).astype(np.int64)
        hashed %= self.n_features
        return hashed


#: Below this many values, one ``murmurhash3_32`` call each is quicker than the array passes
#: (measured: ``bench/README.md``), and a batch looks its values up among those hashed before:
#: its new ones are fewer still.
_FEW = 512
#: At most this many values are remembered per field (all are forgotten when it is full), and
#: none longer than ``_LONG`` characters: at most 4 Mi characters of values a field.
_REMEMBERED = 16_384
#: Keys longer than this (in bytes) are hashed one call each: the array passes work on a
#: matrix as wide as the longest key.
_LONG = 256

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
_F1, _F2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_FIVE, _ADD = np.uint32(5), np.uint32(0xE6546B64)


def murmur3_32_many(prefix: bytes, values: Sequence[str]) -> npt.NDArray[np.uint32]:
    """MurmurHash3 (x86, 32-bit, seed 0) of the UTF-8 bytes of ``prefix + value`` for each
    value, as unsigned: what ``murmurhash3_32(key, seed=0, positive=True)`` gives, for all the
    values at once.

    The keys are laid out as rows of a zero-padded byte matrix read as little-endian 32-bit
    words; each step of the hash is one array operation over all the rows (a row whose key has
    fewer whole words keeps its state), and the zero padding makes each key's last partial
    word exactly MurmurHash3's tail.

    >>> int(murmur3_32_many(b"color=", ["red"])[0]) % 2**18
    167982
    """
    n = len(values)
    joined = "".join(values)
    if joined.isascii():
        body = joined.encode("ascii")
        lengths = np.fromiter(map(len, values), dtype=np.intp, count=n)
    else:
        encoded = list(map(str.encode, values))  # UTF-8
        body = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), dtype=np.intp, count=n)
    total = lengths + len(prefix)
    longest = int(total.max(initial=0))
    if longest > _LONG:
        out = np.empty(n, dtype=np.uint32)
        short = np.flatnonzero(total <= _LONG)
        out[short] = murmur3_32_many(prefix, [values[i] for i in short.tolist()])
        for i in np.flatnonzero(total > _LONG).tolist():
            out[i] = murmurhash3_32(prefix + values[i].encode("utf-8"), seed=0, positive=True)
        return out
    width = max((longest + 3) // 4 * 4, 4)
    matrix = np.zeros((n, width), dtype=np.uint8)
    matrix[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    places = np.arange(len(body)) + np.repeat(np.arange(n) * width + len(prefix) - starts, lengths)
    matrix.ravel()[places] = np.frombuffer(body, dtype=np.uint8)
    words = matrix.view("<u4")
    whole = total // 4
    h = np.zeros(n, dtype=np.uint32)
    for j in range(int(whole.max(initial=0))):
        g = h ^ _scrambled(words[:, j])
        g = (g << np.uint32(13)) | (g >> np.uint32(19))
        h = np.where(whole > j, g * _FIVE + _ADD, h)
    tail = np.flatnonzero(total % 4)
    h[tail] ^= _scrambled(words[tail, whole[tail]])
    h ^= total.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= _F1
    h ^= h >> np.uint32(13)
    h *= _F2
    h ^= h >> np.uint32(16)
    return h


def murmur3_32_words(words: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """MurmurHash3 (x86, 32-bit, seed 0) of each row of ``words``, a ``(n, k)`` array of
    32-bit words read as ``4 * k`` little-endian bytes: keys made of numbers (a bigram's two
    word hashes), hashed without building a byte string.

    >>> import struct
    >>> from sklearn.utils import murmurhash3_32
    >>> key = np.array([[7, 2**32 - 1]], dtype=np.uint32)
    >>> int(murmur3_32_words(key)[0]) == murmurhash3_32(struct.pack("<II", 7, 2**32 - 1),
    ...                                                  positive=True)
    True
    """
    h = np.zeros(words.shape[0], dtype=np.uint32)
    for j in range(words.shape[1]):
        h ^= _scrambled(words[:, j])
        h = (h << np.uint32(13)) | (h >> np.uint32(19))
        h = h * _FIVE + _ADD
    h ^= np.uint32(4 * words.shape[1])
    h ^= h >> np.uint32(16)
    h *= _F1
    h ^= h >> np.uint32(13)
    h *= _F2
    h ^= h >> np.uint32(16)
    return h


def _scrambled(k: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    k = k * _C1
    k = (k << np.uint32(15)) | (k >> np.uint32(17))
    return k * _C2

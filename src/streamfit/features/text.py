"""Free text as features: tokens, hashed into the shared space, weighted by TF-IDF learned online.

**Tokens.** A text is lowercased and cut into words, the runs of letters, digits and ``_``
(the regular expression ``\\w+``: ``"Don't stop!"`` gives ``don``, ``t``, ``stop``). Its
tokens are its words and, with ``features.text.bigrams`` (the default), its word bigrams, two
consecutive words joined by a space (``"don t"``, ``"t stop"``). Only the first
``limits.MAX_TEXT_CHARS`` characters of a text are read; the rest is left out (counted in
``Featurizer.truncated_texts``; the results table keeps the whole text).

**Hashing.** Word ``w`` of field ``f`` is the feature of key ``f:w``: its column is the
MurmurHash3 of that key (``streamfit.features.hashing``), in the same ``2**hash_bits`` space as
every other feature. A bigram's column is the MurmurHash3 of its two words' hashes
(``pair_column``): no string is made for it.

**Weights.** A token that comes ``c`` times in a text weighs ``log(1 + c)`` (``tf``), times its
inverse document frequency with ``features.text.weighting: tfidf`` (the default)::

    idf = ln((1 + N) / (1 + df)) + 1

where ``N`` is the number of texts of that field learned so far and ``df`` the number of them
that held a token of that column. Each text's weights are then scaled to unit length, so that a
long text does not outweigh a short one. The frequencies are learned online, one event after
the other, as the numeric fields' moments are: a learned event is weighted with the
frequencies that include it, a scored one with those that stand. They are part of the
featurizer's state (checkpointed with it) and add up across workers (``merge``).

>>> import numpy as np
>>> rows, cols, counts = text_entries(np.array(["Good good film", None, "bad"], dtype=object),
...                                   "t:", 2**18)
>>> rows.tolist(), counts.tolist()  # good, film, "good good", "good film"; bad
([0, 0, 0, 0, 2], [1.0, 2.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamfit.features.hashing import murmur3_32_many, murmur3_32_words
from streamfit.limits import MAX_TEXT_CHARS

__all__ = ["DocumentFrequencies", "pair_column", "text_entries", "truncate", "words_of"]

# Texts are joined with _SEP, which tokenizes as the word _SEP_TOKEN: a control character that
# is neither a word character nor whitespace (and not NUL, which numpy strips from strings).
_SEP_TOKEN = "\x01"
_SEP = f" {_SEP_TOKEN} "
_TOKEN = re.compile(r"\w+|\x01")
# ASCII letters, digits and "_" lowercased, the separator kept, everything else a space; as
# a bytes table, bytes past ASCII (UTF-8 of other characters) stay as they are.
_ASCII_WORDS = str.maketrans(
    {i: chr(i).lower() if chr(i).isalnum() or chr(i) in "_\x01" else " " for i in range(128)}
)
_BYTE_WORDS = bytes(
    (ord(chr(i).lower()) if chr(i).isalnum() or chr(i) in "_\x01" else 32) if i < 128 else i
    for i in range(256)
)
_INT32_MAX = np.iinfo(np.int32).max

Floats = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]


def truncate(texts: list[str]) -> tuple[list[str], int]:
    """``texts`` cut to ``MAX_TEXT_CHARS`` characters each, and how many were cut.

    >>> truncate(["short", "x" * (MAX_TEXT_CHARS + 5)])[1]
    1
    """
    if max(map(len, texts), default=0) <= MAX_TEXT_CHARS:
        return texts, 0
    cut = [t[:MAX_TEXT_CHARS] if len(t) > MAX_TEXT_CHARS else t for t in texts]
    return cut, sum(len(t) > MAX_TEXT_CHARS for t in texts)


def words_of(texts: npt.NDArray[np.object_]) -> tuple[Index, list[str], Index]:
    """Every word of the texts, in order, as codes into a vocabulary, and the row of the text
    each comes from (missing texts give none).

    The texts are read together, in one pass over their concatenation: lowercased, ASCII
    punctuation turned into spaces (``bytes.translate`` over the UTF-8), split; then the
    regular expression ``\\w+`` over the few pieces that are not ASCII (a letter with an
    accent, a curly quote, ...): the words the regular expression gives over the whole text.

    >>> codes, vocabulary, rows = words_of(np.array(["Don't stop!", None, "Ça—va"], dtype=object))
    >>> [vocabulary[c] for c in codes], rows.tolist()
    (['don', 't', 'stop', 'ça', 'va'], [0, 0, 0, 2, 2])
    """
    present = np.flatnonzero(pd.notna(texts))
    strings: list[str] = texts[present].tolist()
    if not set(map(type, strings)) <= {str}:
        strings = [s if isinstance(s, str) else str(s) for s in strings]
    joined = _SEP.join(strings)
    if joined.count(_SEP_TOKEN) != max(len(strings) - 1, 0):  # a text holds it itself
        joined = _SEP.join(s.replace(_SEP_TOKEN, " ") for s in strings)
    if joined.isascii():
        words = joined.translate(_ASCII_WORDS).split()
    else:
        lowered = joined.lower().encode("utf-8", "surrogatepass")
        words = _split_unicode(lowered.translate(_BYTE_WORDS).decode("utf-8", "surrogatepass"))
    codes, uniques = pd.factorize(np.array(words, dtype=object))
    vocabulary: list[str] = uniques.tolist()
    if _SEP_TOKEN not in vocabulary:
        return codes, vocabulary, np.full(len(codes), present[0] if len(present) else 0)
    is_sep = codes == vocabulary.index(_SEP_TOKEN)
    return codes[~is_sep], vocabulary, present[np.cumsum(is_sep)[~is_sep]]


def text_entries(
    texts: npt.NDArray[np.object_], prefix: str, n_features: int, bigrams: bool = True
) -> tuple[Index, npt.NDArray[np.int64], Floats]:
    """The hashed tokens of each text: ``(rows, columns, counts)``, one entry per (row,
    column), sorted by row then column, ``counts`` how many of the row's tokens hash there.

    ``prefix`` is the field's, ``"review:"``: a word's column is the hash of the prefix and
    the word (``feature_index("review:good", n_features)``); a bigram's, the MurmurHash3 of
    the 8 bytes of its two words' 32-bit hashes (little-endian) modulo ``n_features``.

    >>> from streamfit.features.hashing import feature_index
    >>> rows, cols, counts = text_entries(np.array(["good good film"], dtype=object), "t:", 64)
    >>> sorted(zip(cols.tolist(), counts.tolist())) == sorted(
    ...     [(feature_index("t:good", 64), 2.0), (feature_index("t:film", 64), 1.0),
    ...      (pair_column("t:", "good", "good", 64), 1.0),
    ...      (pair_column("t:", "good", "film", 64), 1.0)])
    True
    """
    codes, vocabulary, text_of_word = words_of(texts)
    if not len(codes):
        return np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0)
    hashes = murmur3_32_many(prefix.encode("utf-8"), vocabulary)[codes]
    rows = text_of_word
    columns = hashes.astype(np.int64) % n_features
    if bigrams:
        follows = np.flatnonzero(text_of_word[1:] == text_of_word[:-1])
        if len(follows):
            pairs = _pair_hashes(hashes[follows], hashes[follows + 1])
            rows = np.concatenate([rows, text_of_word[follows]])
            columns = np.concatenate([columns, pairs.astype(np.int64) % n_features])
    keys, counts = np.unique(rows.astype(np.int64) * n_features + columns, return_counts=True)
    out_rows, out_cols = np.divmod(keys, n_features)
    return out_rows.astype(np.intp), out_cols, counts.astype(np.float64)


def pair_column(prefix: str, first: str, second: str, n_features: int) -> int:
    """The column of the bigram ``first second`` of the field of ``prefix``.

    >>> import struct
    >>> from sklearn.utils import murmurhash3_32
    >>> h = lambda w: murmurhash3_32("t:" + w, seed=0, positive=True)
    >>> key = struct.pack("<II", h("good"), h("film"))
    >>> pair_column("t:", "good", "film", 2**18) == murmurhash3_32(key, positive=True) % 2**18
    True
    """
    hashes = murmur3_32_many(prefix.encode("utf-8"), [first, second])
    return int(_pair_hashes(hashes[:1], hashes[1:])[0]) % n_features


def _pair_hashes(
    first: npt.NDArray[np.uint32], second: npt.NDArray[np.uint32]
) -> npt.NDArray[np.uint32]:
    """MurmurHash3 (x86, 32-bit, seed 0) of the 8 bytes ``first``, ``second`` (little-endian
    32-bit words), for all the pairs at once."""
    words = np.empty((len(first), 2), dtype=np.uint32)
    words[:, 0], words[:, 1] = first, second
    return murmur3_32_words(words)


class DocumentFrequencies:
    """How many learned texts of each text field held a token of each column (``df``), and
    how many texts of each field were learned (``N``): the state behind the ``idf`` weights.

    Kept as one count per column of the hashed space (int32, allocated with the first text),
    saturating at 2**31 - 1.

    Two texts learned, the first with tokens in columns 3 and 5, the second in column 3; then
    a text with both scored: column 5, in one text of two, weighs more than column 3, in both.

    >>> frequencies = DocumentFrequencies(8)
    >>> rows, cols = np.array([0, 0, 1]), np.array([3, 5, 3])
    >>> learned = frequencies.weigh(rows, cols, np.ones(3), np.zeros(3, np.intp), learn=True)
    >>> frequencies.documents, frequencies.frequency(3), frequencies.frequency(5)
    ([2], 2, 1)
    >>> scored = frequencies.weigh(np.array([0, 0]), np.array([3, 5]), np.ones(2),
    ...                            np.zeros(2, np.intp), learn=False)
    >>> scored.round(3).tolist()
    [0.58, 0.815]
    """

    def __init__(self, n_features: int, idf: bool = True) -> None:
        self.n_features = n_features
        self.idf = idf
        self._df: npt.NDArray[np.int32] | None = None
        self._docs: list[int] = []  # per text field, in the featurizer's order of text fields

    @property
    def documents(self) -> list[int]:
        """Texts learned, per text field (a copy)."""
        return list(self._docs)

    def frequency(self, column: int) -> int:
        """How many learned texts held a token of ``column``."""
        return 0 if self._df is None else int(self._df[column])

    def weigh(
        self,
        rows: Index,
        cols: npt.NDArray[np.int64],
        counts: Floats,
        groups: Index,
        *,
        learn: bool,
    ) -> Floats:
        """The weight of each text entry (row, column, count in the text, text field number).

        Each (row, field) must hold a column once (``Featurizer`` sums the counts of tokens
        that share a column first), the entries sorted by row, field and column; each row's
        weights are then summed in an order that depends on the row alone, so a text gets the
        same weights, bit for bit, in any batch. With ``learn``, the frequencies learn each
        row before it is weighted, one row after the other.
        """
        n = len(rows)
        if n == 0:
            return np.zeros(0)
        weights = np.log1p(counts)
        if self.idf:
            weights *= self._idf(rows, cols, groups, learn)
        # unit length per (row, field): entries are sorted by row and field, so each sum
        # runs over its entries in column order, whatever the batch
        starts = _segments(rows, groups)
        norms = np.sqrt(np.add.reduceat(weights * weights, starts))
        out: Floats = weights / np.repeat(norms, np.diff(np.append(starts, n)))
        return out

    def _idf(self, rows: Index, cols: npt.NDArray[np.int64], groups: Index, learn: bool) -> Floats:
        fields = int(groups.max()) + 1
        if len(self._docs) < fields:
            self._docs += [0] * (fields - len(self._docs))
        if self._df is None:
            self._df = np.zeros(self.n_features, dtype=np.int32)
        df = self._df[cols].astype(np.float64)
        docs = np.asarray(self._docs, dtype=np.float64)[groups]
        if learn:  # each row counts itself and the rows before it
            starts = _segments(rows, groups)
            sizes = np.diff(np.append(starts, len(rows)))
            seen, fields_seen, texts = _running_counts(groups[starts])
            docs += np.repeat(seen, sizes)
            for field, count in zip(fields_seen.tolist(), texts.tolist(), strict=True):
                self._docs[field] += count
            seen, columns, holding = _running_counts(cols)
            df += seen
            total = self._df[columns].astype(np.int64) + holding
            self._df[columns] = np.minimum(total, _INT32_MAX).astype(np.int32)
        return np.log((1.0 + docs) / (1.0 + df)) + 1.0

    # -- state

    def merge(self, other: DocumentFrequencies, fields: Mapping[int, int]) -> None:
        """Add ``other``'s counts to these (texts learned by another worker); ``fields``: the
        number here of each of ``other``'s text fields."""
        if other._df is not None:
            if self._df is None:
                self._df = np.zeros(self.n_features, dtype=np.int32)
            total = self._df.astype(np.int64) + other._df
            self._df = np.minimum(total, _INT32_MAX).astype(np.int32)
        for theirs, count in enumerate(other._docs):
            mine = fields[theirs]
            if mine >= len(self._docs):
                self._docs += [0] * (mine + 1 - len(self._docs))
            self._docs[mine] += count

    def arrays(self) -> dict[str, npt.NDArray[np.int32]]:
        """The counts as two arrays, the columns with a count and their counts."""
        if self._df is None:
            empty = np.zeros(0, dtype=np.int32)
            return {"df_columns": empty, "df_counts": empty}
        columns = np.flatnonzero(self._df).astype(np.int32)
        return {"df_columns": columns, "df_counts": self._df[columns]}

    def header(self) -> dict[str, list[int]]:
        return {"documents": list(self._docs)}

    def restore(
        self, header: Mapping[str, object], arrays: Mapping[str, npt.NDArray[np.int32]]
    ) -> None:
        """Take back what ``header()`` and ``arrays()`` gave (``ValueError`` if they do not fit)."""
        documents = header.get("documents", [])
        if not isinstance(documents, list) or not all(
            isinstance(d, int) and d >= 0 for d in documents
        ):
            raise ValueError("'documents' is not a list of counts")
        columns, counts = arrays["df_columns"], arrays["df_counts"]
        if len(columns) and (columns.min() < 0 or columns.max() >= self.n_features):
            raise ValueError("a document frequency's column is out of range")
        self._docs = list(documents)
        self._df = None
        if len(columns):
            self._df = np.zeros(self.n_features, dtype=np.int32)
            self._df[columns] = counts


def _split_unicode(text: str) -> list[str]:
    """The words of ``text`` once ASCII punctuation is spaces: its pieces, each piece that is
    not ASCII replaced by its ``\\w+`` runs (an em dash or a curly quote separates words)."""
    pieces = text.split()
    ascii_ = np.fromiter(map(str.isascii, pieces), dtype=bool, count=len(pieces))
    if ascii_.all():
        return pieces
    out: list[str] = []
    start = 0
    for i in np.flatnonzero(~ascii_).tolist():
        out += pieces[start:i]
        out += _TOKEN.findall(pieces[i])
        start = i + 1
    out += pieces[start:]
    return out


def _segments(rows: Index, groups: Index) -> Index:
    """Where each (row, field) run of entries starts."""
    change = (rows[1:] != rows[:-1]) | (groups[1:] != groups[:-1])
    return np.flatnonzero(np.concatenate([[True], change]))


def _running_counts(keys: npt.NDArray[np.integer]) -> tuple[Floats, npt.NDArray[np.intp], Index]:
    """For each key (in order), 1 + how many earlier ones are equal; the distinct keys, and
    how many times each comes.

    >>> seen, keys, totals = _running_counts(np.array([4, 2, 4, 4]))
    >>> seen.tolist(), keys.tolist(), totals.tolist()
    ([1.0, 1.0, 2.0, 3.0], [2, 4], [1, 3])
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    sizes = np.diff(np.append(starts, len(ordered)))
    seen = np.empty(len(keys), dtype=np.float64)
    seen[order] = np.arange(1, len(keys) + 1) - np.repeat(starts, sizes)
    return seen, ordered[starts].astype(np.intp), sizes

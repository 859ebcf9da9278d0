"""The online featurizer: decoded batches to one hashed sparse matrix.

Every field of a batch is one of four kinds, given in ``FeaturesSpec.types`` or inferred the
first time the field is seen (``learn_transform``), from the values it has in that block: it
is numeric when most of them are numbers, boolean when most are booleans, else categorical or
text. One value of another type cannot retype a field, however early it comes: it is invalid
for the field (see below).

* **numeric** (a number column): standardized with the running mean and standard deviation of
  the values learned so far, ``(x - mean) / std`` clipped to ``[-5, 5]`` (0 while the standard
  deviation is 0). Learning updates them one event at a time, each event scaled with the
  moments that include it, as River's ``StandardScaler`` does; scoring uses them as they
  stand. A missing value gives 0 and a missing-indicator feature of 1. Strings in a field
  typed numeric are parsed, thousands separators removed (``"69,487.00"``); what does not
  parse is missing.
* **boolean** (a decoded boolean column): 1 or 0; missing gives the missing indicator.
* **categorical** (a string column): one feature per value, 1 for the row's value. Values never
  seen before simply hash to their own column. Missing gives nothing.
* **text** (a string column whose values average at least ``text_fields_min_tokens`` words the
  first time it is seen, or typed text): lowercased words and word bigrams, weighted by TF-IDF
  with document frequencies learned online, and scaled to unit length per row (see
  ``streamfit.features.text``, and ``features.text`` in the spec). Missing gives nothing.

All features share one index space of ``n_features = 2**hash_bits`` columns, a feature's column
being the hash of its key (``streamfit.features.hashing``): ``f`` for a numeric or boolean
field's value, ``f=<missing>`` for its missing indicator, ``f=value`` for a category and
``f:token`` for a token. No bias column is added: models have their own intercepts.

The schema grows as fields appear; a field absent from a batch is missing in every row of it,
and a field not yet in the schema is ignored by ``transform``. A field keeps the kind it was
first given: a numeric field whose values later arrive as strings is parsed, a categorical field
whose values arrive as numbers uses their JSON spelling (``1.0`` as ``"1"``). A value that
does not fit its field's kind (a string that is not a number in a numeric field, a number
beyond ``limits.MAX_MAGNITUDE`` in magnitude, a word that is not yes or no in a boolean one)
is missing for the model and counted in ``invalid_values``. The schema holds at most
``limits.MAX_FEATURE_FIELDS`` fields: later new fields are not features (counted in
``untracked_fields``, the first one logged).

Rows can also be kept to be learned later, when their label comes (``keep``, then
``learn_kept``): what is kept does not depend on anything learned (numeric and boolean values
as they came, hashed entries unweighted), so the matrix ``learn_kept`` makes is the one
``learn_transform`` would have made of the event at that point of the stream.

The state (schema, running moments, document frequencies) is written by ``state()`` in a
versioned binary format that ``from_state`` reads back bit for bit; the same batches in the
same order always give the same state and the same matrices.

State format, version 2: the envelope of :mod:`streamfit._envelope` (little-endian)::

    magic           8 bytes   b"SFFEATS\\0"
    version         uint16    2
    header_length   uint32    H
    header          H bytes   UTF-8 JSON: {"spec": FeaturesSpec as JSON,
                                           "exclude": [sorted names],
                                           "schema": [[field, kind], ... in first-seen order],
                                           "documents": [texts learned, per text field],
                                           "frequencies": d,
                                           "first_values": W}
    counts          int64[k]  for the k numeric fields, in schema order
    means           float64[k]
    m2s             float64[k]  sums of squared deviations
    df_columns      int32[d]  the columns some learned text held a token of
    df_counts       int32[d]  in how many texts
    first_values    float64[k, W]  each numeric field's first W values, NaN until seen (absent
                                   from blobs without "first_values": all NaN then)
    crc32           uint32    of every byte before it

Version 1 (before text weighting) had neither the document frequencies nor ``spec.text``: it
loads as text without bigrams, weighted ``tf``, as it was then.
"""

from __future__ import annotations

import fnmatch
import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import scipy.sparse as sp

from streamfit._envelope import seal, unpack_arrays, unseal
from streamfit.batch import Batch
from streamfit.errors import FeatureError, StateFormatError
from streamfit.features.columns import (
    as_flags,
    as_numbers,
    as_texts,
    factorize_strings,
    mean_word_count,
)
from streamfit.features.hashing import MISSING, HashedVocabulary, feature_index
from streamfit.features.moments import WARM_UP, Moments, standardize_running
from streamfit.features.reuse import Entries, Kinds, ScoredEntries
from streamfit.features.text import DocumentFrequencies, text_entries, truncate
from streamfit.limits import MAX_FEATURE_FIELDS, MAX_MAGNITUDE, MAX_TEXT_CHARS
from streamfit.spec.model import FeaturesSpec, FieldType, TextSpec

__all__ = ["STATE_VERSION", "Featurizer", "KeptRows"]

STATE_VERSION = 2
#: what a version-1 blob's text settings were (it had no ``spec.text``)
_LEGACY_TEXT = TextSpec(bigrams=False, weighting="tf")
_MAGIC = b"SFFEATS\x00"
_WHAT = "featurizer state"
_KINDS = ("numeric", "categorical", "boolean", "text")
_CLIP = 5.0
_WANTED_KEPT = 10_000  # answers of ``_wanted`` kept (all forgotten when full)

log = logging.getLogger("streamfit.features")

Floats = npt.NDArray[np.float64]
_Codes = tuple[npt.NDArray[np.intp], list[str]]
#: Hashed entries before weighting: row, column, value (1 for a category, a token's count in
#: its text) and group (-1 for a category, else the text field's number).
Hashed = tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], Floats, npt.NDArray[np.intp]]


@dataclass(frozen=True, slots=True)
class KeptRows:
    """Rows as ``Featurizer.keep`` keeps them to be learned later: nothing in them depends on
    what the featurizer has learned.

    ``numbers``: ``(rows, k)``, the values of the first ``k`` numeric fields of the schema
    (NaN missing), unscaled; ``flags``: ``(rows, b)``, those of its first ``b`` boolean
    fields (1, 0, NaN); ``hashed``: the categorical and text entries, unweighted (``Hashed``).
    A field the schema gains after the rows were kept is missing in them.
    """

    numbers: Floats
    flags: Floats
    hashed: Hashed

    def __len__(self) -> int:
        return int(self.numbers.shape[0])


class Featurizer:
    """Turns batches into a ``scipy.sparse.csr_matrix``, learning scaling as it goes.

    Parameters
    ----------
    spec
        Which fields, which types, how many hash bits (``FeaturesSpec``).
    exclude
        Fields that are never features, on top of ``spec.exclude``: the target and the key.

    Examples
    --------
    >>> from streamfit.batch import Messages
    >>> from streamfit.codecs import decode_json
    >>> msgs = Messages.from_values([b'{"age": 30, "city": "Paris", "y": 1}',
    ...                              b'{"age": 50, "city": "Oslo", "y": 0}'])
    >>> batch = decode_json(msgs, target="y", task="classification").batch
    >>> f = Featurizer(FeaturesSpec(hash_bits=10), exclude=["y"])
    >>> X = f.learn_transform(batch)
    >>> X.shape, f.schema
    ((2, 1024), {'age': 'numeric', 'city': 'categorical'})
    >>> X[:, feature_index("age", 1024)].toarray().ravel().tolist()  # the first has no spread yet
    [0.0, 1.0]
    >>> X[0, feature_index("city=Paris", 1024)], X.nnz
    (np.float64(1.0), 3)
    >>> Featurizer.from_state(f.state()).state() == f.state()
    True
    """

    def __init__(self, spec: FeaturesSpec | None = None, exclude: Collection[str] = ()) -> None:
        self._spec = spec if spec is not None else FeaturesSpec()
        self._exclude = tuple(sorted(set(exclude)))
        self._skip = frozenset(self._exclude) | frozenset(self._spec.exclude)
        self._include = None if self._spec.include is None else frozenset(self._spec.include)
        self._wanted_cache: dict[str, bool] = {}
        self._skip_patterns = tuple(p for p in self._skip if _is_pattern(p))
        self._include_patterns = tuple(p for p in self._include or () if _is_pattern(p))
        self._n_features = 1 << self._spec.hash_bits
        self._schema: dict[str, FieldType] = {}
        self._vocab: dict[str, HashedVocabulary] = {}
        self._index: dict[str, tuple[int, int]] = {}  # numeric / boolean: value, missing
        # running moments of the numeric fields, in schema order (one entry per field)
        self._numeric: dict[str, int] = {}  # field -> position in the arrays below
        self._count: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._mean: Floats = np.zeros(0)
        self._m2: Floats = np.zeros(0)
        self._first: Floats = np.full((0, WARM_UP), np.nan)  # ``standardize_running``'s start
        self._scaling_of: tuple[Any, ...] | None = None  # ``_scaling``, and the moments it is of
        self._layout: _Layout | None = None  # numeric and boolean columns, rebuilt lazily
        self._hashed: list[str] = []  # the categorical and text fields, in schema order
        self._text_group: dict[str, int] = {}  # text field -> its number, in schema order
        self._frequencies = DocumentFrequencies(
            self._n_features, idf=self._spec.text.weighting == "tfidf"
        )
        self._truncated = 0  # texts read only up to MAX_TEXT_CHARS
        self._version = 0  # changes whenever the schema does
        self._scored = ScoredEntries()  # hashed entries of scored rows still to be learned
        self._invalid: Counter[str] = Counter()  # values read as missing, per field
        self._untracked = 0  # new fields left out because the schema was full

    # --- properties ---------------------------------------------------------------------------

    @property
    def spec(self) -> FeaturesSpec:
        return self._spec

    @property
    def exclude(self) -> tuple[str, ...]:
        """The ``exclude`` given at construction, sorted."""
        return self._exclude

    @property
    def n_features(self) -> int:
        """Number of columns of every matrix: ``2**spec.hash_bits``."""
        return self._n_features

    @property
    def schema(self) -> dict[str, FieldType]:
        """Each field learned so far and its kind, in first-seen order (a copy)."""
        return dict(self._schema)

    @property
    def invalid_values(self) -> dict[str, int]:
        """Per field, how many values were read as missing because they do not fit its kind
        (counted each time a value is read, by this process; not part of the state)."""
        return dict(self._invalid)

    @property
    def truncated_texts(self) -> int:
        """How many texts were read only up to ``limits.MAX_TEXT_CHARS`` characters (counted
        each time one is read, by this process; not part of the state)."""
        return self._truncated

    @property
    def frequencies(self) -> DocumentFrequencies:
        """The document frequencies behind the text weights (``streamfit.features.text``)."""
        return self._frequencies

    @property
    def untracked_fields(self) -> int:
        """How many times a new field was left out because the schema held
        ``limits.MAX_FEATURE_FIELDS`` fields already (once per batch it came in)."""
        return self._untracked

    def moments(self, field: str) -> Moments:
        """The running count, mean and variance of a numeric field (a copy)."""
        i = self._numeric[field]
        return Moments(int(self._count[i]), float(self._mean[i]), float(self._m2[i]))

    def __repr__(self) -> str:
        return f"Featurizer(n_features={self._n_features}, schema={self._schema})"

    # --- learning and transforming ------------------------------------------------------------

    def learn_transform(self, batch: Batch) -> sp.csr_matrix:
        """Learn from ``batch`` (new fields, running moments), then transform it."""
        prepared = self._prepare(batch, learn=True)
        numbers = self._numbers(prepared, len(batch))
        scaled = self._learn_standardized(numbers)
        return self._assemble(prepared, scaled, len(batch), learn=True)

    def learn_transform_blocks(self, batch: Batch, bounds: Sequence[int]) -> list[sp.csr_matrix]:
        """``learn_transform`` of each block ``batch[bounds[i]:bounds[i + 1]]`` in turn.

        The same matrices and the same state, bit for bit, as one ``learn_transform`` call
        per block, with the work that does not depend on the running moments (reading the
        columns, hashing, tokenizing, building the sparse rows) done once for all the
        blocks (the moments move one event at a time either way). ``bounds`` starts at 0,
        ends at ``len(batch)`` and never decreases.

        A batch that brings a new field is handled block by block, since when a field
        appears (and what kind it gets) depends on where the blocks start.
        """
        n = len(batch)
        if len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != n:
            raise ValueError(f"bounds must run from 0 to {n}, got {list(bounds)}")
        if self._brings_new_fields(batch):
            return [self.learn_transform(batch.rows(a, b)) for a, b in pairwise(bounds)]
        hashed = None
        if self._hashed:
            hashed = self._scored.recall(
                batch.meta, kinds=self._hashed_kinds(batch), version=self._version
            )
        prepared = self._prepare(batch, learn=True, hashed=hashed is None)
        scaled = self._learn_standardized(self._numbers(prepared, n))
        X = self._assemble(prepared, scaled, n, hashed, learn=True)
        return [_rows(X, a, b) for a, b in pairwise(bounds)]

    def keep(self, batch: Batch) -> KeptRows:
        """The rows of ``batch`` as they will be learned later (``KeptRows``), once their
        labels come; only the schema is learned (new fields, as ``learn_transform`` would).

        Rows scored with ``transform(remember=...)`` reuse the entries kept then. A batch is
        kept whole: when a field joins the schema depends on where batches start, so give it
        the rows of one learning block at a time.
        """
        n = len(batch)
        hashed = None
        if self._hashed and not self._brings_new_fields(batch):
            hashed = self._scored.recall(
                batch.meta, kinds=self._hashed_kinds(batch), version=self._version
            )
        prepared = self._prepare(batch, learn=True, hashed=hashed is None)
        numbers = self._numbers(prepared, n).T.copy()
        booleans = self._fixed_layout().booleans
        flags = np.full((n, len(booleans)), np.nan)
        for i, name in enumerate(booleans):
            found = prepared.flags.get(name)
            if found is not None:
                flags[:, i] = found
        if hashed is None:
            hashed = self._hashed_entries(prepared, n) if self._hashed else _no_hashed()
        return KeptRows(numbers, flags, hashed)

    def learn_kept(self, kept: KeptRows) -> sp.csr_matrix:
        """Learn from rows ``keep`` gave (their numeric fields' moments, their texts'
        document frequencies, one row after the other), then transform them: the matrix
        ``learn_transform`` gives the same events at this point."""
        n = len(kept)
        numbers = np.full((len(self._numeric), n), np.nan)
        numbers[: kept.numbers.shape[1]] = kept.numbers.T
        prepared = _Prepared()
        for i, name in enumerate(self._fixed_layout().booleans[: kept.flags.shape[1]]):
            prepared.flags[name] = kept.flags[:, i]
        scaled = self._learn_standardized(numbers)
        return self._assemble(
            prepared, scaled, n, kept.hashed if self._hashed else None, learn=True
        )

    def _brings_new_fields(self, batch: Batch) -> bool:
        if len(self._schema) >= MAX_FEATURE_FIELDS:
            return False
        for name, column in batch.columns.items():
            if name in self._schema or not self._wanted(name):
                continue
            if self._infer(name, column, name in batch.booleans) is not None:
                return True
        return False

    def transform(
        self, batch: Batch, *, remember: npt.NDArray[np.intp] | None = None
    ) -> sp.csr_matrix:
        """The features of ``batch`` as they stand; nothing is learned.

        ``remember``: rows (increasing) that will be learned later, by
        ``learn_transform_blocks``. Their categorical and text entries, which do not depend on
        the running moments, are kept until then and reused instead of hashed and tokenized
        again (see ``streamfit.features.reuse``); the matrices are the same either way.
        """
        n = len(batch)
        prepared = self._prepare(batch, learn=False)
        scaled = self._standardized(self._numbers(prepared, n))
        hashed = self._hashed_entries(prepared, n) if self._hashed else None
        if hashed is not None and remember is not None and len(remember):
            self._scored.keep(
                batch.meta,
                remember,
                hashed,
                kinds=self._hashed_kinds(batch),
                version=self._version,
            )
        return self._assemble(prepared, scaled, n, hashed, learn=False)

    def records(self, batch: Batch) -> list[dict[str, Any]]:
        """The rows of ``batch`` as the fields of the schema hold them, one dict per row:
        what adapted libraries learn from (River takes dicts), rather than the hashed matrix.

        A numeric field gives its value as a float (parsed as ``transform`` parses it, not
        scaled), a boolean field ``True``/``False``, a categorical or text field its string.
        Every field of the schema the row has a value for is there, zeros included, under
        its own name, in schema order; a missing value leaves its field out (River's
        convention). Nothing is learned.

        >>> from streamfit.batch import Messages
        >>> from streamfit.codecs import decode_json
        >>> msgs = Messages.from_values([b'{"n": 0, "c": "a", "t": "one two three four"}',
        ...                              b'{"n": 2.5, "c": null, "t": "five"}'])
        >>> batch = decode_json(msgs, target=None, task="classification").batch
        >>> f = Featurizer(FeaturesSpec(hash_bits=10))
        >>> _ = f.learn_transform(batch)
        >>> f.records(batch)
        [{'n': 0.0, 'c': 'a', 't': 'one two three four'}, {'n': 2.5, 't': 'five'}]
        """
        prepared = self._prepare(batch, learn=False)
        n = len(batch)
        rows: list[dict[str, Any]] = [{} for _ in range(n)]
        for name, kind in self._schema.items():
            values: list[Any]
            if kind == "numeric":
                found = prepared.numbers.get(name)
                if found is None:
                    continue
                numbers = np.asarray(found, dtype=np.float64)
                keep = np.isfinite(numbers)
                values = numbers.tolist()
            elif kind == "boolean":
                flags = prepared.flags.get(name)
                if flags is None:
                    continue
                keep = ~np.isnan(flags)
                values = (flags == 1.0).tolist()
            elif kind == "categorical":
                codes_values = prepared.categories.get(name)
                if codes_values is None:
                    continue
                codes, texts = codes_values
                keep = codes >= 0
                table = np.array([*texts, None], dtype=object)
                values = table[codes].tolist()
            else:
                column = prepared.texts.get(name)
                if column is None:
                    continue
                keep = np.array([isinstance(v, str) for v in column.tolist()], dtype=bool)
                values = column.tolist()
            for i in np.flatnonzero(keep).tolist():
                rows[i][name] = values[i]
        return rows

    def forget_scored(self, partitions: list[tuple[str, int]] | None = None) -> None:
        """Drop the entries kept by ``transform(remember=...)`` for these partitions (all
        by default): their rows will not be learned here."""
        self._scored.forget(partitions)

    def merge(self, other: Featurizer) -> None:
        """Add what ``other`` has learned: its new fields, and its moments to ours.

        Raises ``FeatureError`` if the two differ in spec or exclusions, or give a field
        different kinds (nothing is changed then).
        """
        if self._spec != other._spec or self._exclude != other._exclude:
            raise FeatureError("cannot merge featurizers built with different specs or excludes")
        for name, kind in other._schema.items():
            mine = self._schema.get(name)
            if mine is not None and mine != kind:
                raise FeatureError(f"cannot merge: field {name!r} is {mine} here, {kind} there")
        for name, kind in other._schema.items():
            if name not in self._schema:
                self._add_field(name, kind)
            if kind == "numeric":
                mine_m, theirs = self.moments(name), other.moments(name)
                mine_m.merge(theirs)
                i = self._numeric[name]
                self._count[i], self._mean[i], self._m2[i] = mine_m.count, mine_m.mean, mine_m.m2
                known = np.concatenate([self._first[i], other._first[other._numeric[name]]])
                known = known[~np.isnan(known)][:WARM_UP]
                self._first[i] = np.nan
                self._first[i, : len(known)] = known
                self._scaling_of = None  # the moments changed in place
        groups = {number: self._text_group[name] for name, number in other._text_group.items()}
        self._frequencies.merge(other._frequencies, groups)

    # --- state --------------------------------------------------------------------------------

    def state(self) -> bytes:
        """Everything learned, in the versioned format of this module's docstring."""
        frequencies = self._frequencies.arrays()
        header = orjson.dumps(
            {
                "spec": self._spec.model_dump(mode="json"),
                "exclude": list(self._exclude),
                "schema": [[name, kind] for name, kind in self._schema.items()],
                **self._frequencies.header(),
                "frequencies": len(frequencies["df_columns"]),
                "first_values": WARM_UP,
            }
        )
        return seal(
            _MAGIC,
            STATE_VERSION,
            header,
            self._count.astype("<i8").tobytes(),
            self._mean.astype("<f8").tobytes(),
            self._m2.astype("<f8").tobytes(),
            frequencies["df_columns"].astype("<i4").tobytes(),
            frequencies["df_counts"].astype("<i4").tobytes(),
            self._first.astype("<f8").tobytes(),
        )

    @classmethod
    def from_state(cls, data: bytes) -> Featurizer:
        """Rebuild a featurizer from ``state()`` bytes; ``StateFormatError`` if unreadable."""
        opened = unseal(data, _MAGIC, (1, STATE_VERSION), _WHAT)
        try:
            spec = FeaturesSpec.model_validate(opened.header["spec"])
            if opened.version == 1:
                spec = spec.model_copy(update={"text": _LEGACY_TEXT})
            exclude = opened.header["exclude"]
            if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
                raise ValueError("'exclude' is not a list of names")
            featurizer = cls(spec, exclude=exclude)
            for name, kind in opened.header["schema"]:
                if not isinstance(name, str) or kind not in _KINDS:
                    raise ValueError(f"bad schema entry {[name, kind]!r}")
                featurizer._add_field(name, kind)
        except (KeyError, TypeError, ValueError) as exc:  # incl. validation errors
            raise StateFormatError(f"{_WHAT}: header is invalid: {exc}") from exc
        k = sum(kind == "numeric" for kind in featurizer._schema.values())
        entries = [
            {"name": name, "dtype": dtype, "shape": [k]}
            for name, dtype in (("count", "<i8"), ("mean", "<f8"), ("m2", "<f8"))
        ]
        if opened.version > 1:
            d = opened.header.get("frequencies")
            if type(d) is not int or d < 0:
                raise StateFormatError(f"{_WHAT}: header is invalid: bad 'frequencies'")
            entries += [
                {"name": name, "dtype": "<i4", "shape": [d]} for name in ("df_columns", "df_counts")
            ]
        first_values = opened.header.get("first_values")
        if first_values is not None:
            if first_values != WARM_UP:
                raise StateFormatError(f"{_WHAT}: header is invalid: bad 'first_values'")
            entries.append({"name": "first", "dtype": "<f8", "shape": [k, WARM_UP]})
        arrays = unpack_arrays(opened.payload, entries, _WHAT)
        featurizer._count = arrays["count"].astype(np.int64)
        featurizer._mean = arrays["mean"].astype(np.float64)
        featurizer._m2 = arrays["m2"].astype(np.float64)
        if first_values is not None:
            featurizer._first = arrays["first"].astype(np.float64).reshape(k, WARM_UP)
        if opened.version > 1:
            try:
                featurizer._frequencies.restore(opened.header, arrays)
            except ValueError as exc:
                raise StateFormatError(f"{_WHAT}: {exc}") from exc
        return featurizer

    # --- internals ----------------------------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        """Is ``name`` a feature? ``include``/``exclude`` entries may be glob patterns."""
        known = self._wanted_cache.get(name)
        if known is None:
            if len(self._wanted_cache) >= _WANTED_KEPT:  # a stream of ever new names
                self._wanted_cache.clear()
            known = self._wanted_cache[name] = self._decide_wanted(name)
        return known

    def _decide_wanted(self, name: str) -> bool:
        if name in self._skip or _matches_any(name, self._skip_patterns):
            return False
        if self._include is None:
            return True
        return name in self._include or _matches_any(name, self._include_patterns)

    def _add_field(self, name: str, kind: FieldType) -> None:
        self._schema[name] = kind
        self._version += 1
        if kind in ("categorical", "text"):
            self._hashed.append(name)
        if kind == "text":
            self._text_group[name] = len(self._text_group)
        n = self._n_features
        if kind == "numeric":
            self._numeric[name] = len(self._numeric)
            self._count = np.append(self._count, np.int64(0))
            self._mean = np.append(self._mean, 0.0)
            self._m2 = np.append(self._m2, 0.0)
            self._first = np.vstack([self._first, np.full((1, WARM_UP), np.nan)])
        if kind in ("numeric", "boolean"):
            self._index[name] = (feature_index(name, n), feature_index(f"{name}={MISSING}", n))
            self._layout = None
        elif kind == "categorical":
            self._vocab[name] = HashedVocabulary(f"{name}=", n)

    def _infer(self, name: str, column: npt.NDArray[Any], boolean: bool) -> FieldType | None:
        """The kind of a field seen for the first time; ``None`` while it is all missing
        (whether a poll carried the field only as missing values must not matter: a field
        joins the schema with its first value, wherever polls cut the stream)."""
        if column.dtype.kind == "f":
            if np.isnan(column).all():
                return None
        elif column.dtype.kind not in "iub" and not pd.notna(column).any():
            return None
        typed = self._spec.types.get(name)
        if typed is not None:
            return typed
        if boolean or column.dtype.kind == "b":
            return "boolean"
        if column.dtype.kind in "iuf":
            return "numeric"
        if column.dtype == object:
            present: list[Any] = column[pd.notna(column)].tolist()
            kinds = Counter(map(type, present))
            if 2 * (kinds[int] + kinds[float]) > len(present):
                return "numeric"
            if 2 * kinds[bool] > len(present):
                return "boolean"
        texts = column if column.dtype == object else as_texts(column)
        if not pd.notna(texts).any():
            return None
        if mean_word_count(texts) >= self._spec.text_fields_min_tokens:
            return "text"
        return "categorical"

    def _prepare(self, batch: Batch, *, learn: bool, hashed: bool = True) -> _Prepared:
        """The batch's columns read as their fields' kinds; ``hashed=False`` leaves out the
        categorical and text fields (their entries are known already)."""
        prepared = _Prepared()
        room = self._room(batch) if learn else None
        for name, column in batch.columns.items():
            if not self._wanted(name):
                continue
            boolean = name in batch.booleans
            kind = self._schema.get(name)
            if kind is None:
                if not learn:
                    continue
                if len(self._schema) >= MAX_FEATURE_FIELDS or (
                    room is not None and name not in room
                ):
                    self._untrack(name)
                    continue
                kind = self._infer(name, column, boolean)
                if kind is None:
                    continue
                self._add_field(name, kind)
            if not hashed and kind in ("categorical", "text"):
                continue
            if kind == "numeric":
                # float columns go as they are: ``_numbers`` copies them and drops what does
                # not fit (non-finite, too large)
                if column.dtype.kind == "f":
                    prepared.numbers[name] = column
                else:
                    prepared.numbers[name] = self._checked(name, column, as_numbers(column))
            elif kind == "boolean":
                flags = as_flags(column, boolean=boolean)
                prepared.flags[name] = flags if boolean else self._checked(name, column, flags)
            elif kind == "categorical":
                prepared.categories[name] = factorize_strings(column, boolean=boolean)
            elif column.dtype == object:
                prepared.texts[name] = column
            else:
                prepared.texts[name] = as_texts(column, boolean=boolean)
        return prepared

    def _room(self, batch: Batch) -> set[str] | None:
        """The new fields of ``batch`` that may join the schema, when not all of them fit:
        those most of its rows have (the first of them on a tie); ``None`` when all fit."""
        new = [n for n in batch.columns if n not in self._schema and self._wanted(n)]
        room = MAX_FEATURE_FIELDS - len(self._schema)
        if len(new) <= room:
            return None
        if room <= 0:
            return set()
        present = {n: int(np.count_nonzero(pd.notna(batch.columns[n]))) for n in new}
        return set(sorted(new, key=lambda n: -present[n])[:room])

    def _numbers(self, prepared: _Prepared, n_rows: int) -> Floats:
        """Every numeric field of the schema as one ``(fields, rows)`` matrix, NaN missing."""
        values = np.empty((len(self._numeric), n_rows))
        for name, i in self._numeric.items():
            column = prepared.numbers.get(name)
            values[i] = np.nan if column is None else column
        if values.size:
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(values) <= MAX_MAGNITUDE)  # NaN too
            if bad.any():
                invalid = bad & ~np.isnan(values)
                if invalid.any():
                    fields = list(self._numeric)
                    for i, count in enumerate(invalid.sum(axis=1).tolist()):
                        if count:
                            self._count_invalid(fields[i], count)
                values[bad] = np.nan
        return values

    def _checked(self, name: str, column: npt.NDArray[Any], read: Floats) -> Floats:
        """``read``, the column read as numbers or flags (NaN where it fails), after counting
        the values it failed on."""
        failed = np.isnan(read)
        if failed.any():
            invalid = int(np.count_nonzero(failed & pd.notna(column)))
            if invalid:
                self._count_invalid(name, invalid)
        return read

    def _count_invalid(self, name: str, count: int) -> None:
        if name not in self._invalid:
            log.warning(
                "field %r is %s: values that do not fit are read as missing (counted in "
                "Featurizer.invalid_values)",
                name,
                self._schema.get(name),
            )
        self._invalid[name] += count

    def _untrack(self, name: str) -> None:
        if not self._untracked:
            log.warning(
                "the featurizer learns at most %d fields: new fields such as %r are not features",
                MAX_FEATURE_FIELDS,
                name[:100],
            )
        self._untracked += 1

    def _learn_standardized(self, values: Floats) -> Floats:
        """Learn the numeric fields' values (``(fields, rows)``, NaN missing) into the running
        moments one row after the other, each value scaled with the moments that include it
        (``moments.standardize_running``): the same whatever the blocks."""
        count, mean, m2 = self._count.copy(), self._mean.copy(), self._m2.copy()
        first = self._first if (self._count >= WARM_UP).all() else self._first.copy()
        scaled = standardize_running(values, count, mean, m2, _CLIP, first)
        # new arrays: ``_scaling`` is stale
        self._count, self._mean, self._m2, self._first = count, mean, m2, first
        return scaled

    def _standardized(self, values: Floats) -> Floats:
        """``(x - mean) / std`` clipped to [-5, 5] per field; 0 where std is 0; NaN stays."""
        mean, divisor, scaled, all_scaled = self._scaling()
        z = (values - mean) / divisor
        np.clip(z, -_CLIP, _CLIP, out=z)
        if not all_scaled:
            flat = ~scaled
            z[flat] = np.where(np.isnan(values[flat]), np.nan, 0.0)
        return z

    def _scaling(self) -> tuple[Floats, Floats, npt.NDArray[np.bool_], bool]:
        """Per numeric field, as columns: its mean and what ``_standardized`` divides by (its
        std, 1 where that is 0); which fields have a spread, and whether all do. Kept until
        the moments change (they are replaced, or ``merge`` marks them changed), so a run of
        small polls between two learning blocks computes it once."""
        found = self._scaling_of
        if (
            found is not None
            and found[0] is self._count
            and found[1] is self._mean
            and found[2] is self._m2
        ):
            return found[3]  # type: ignore[no-any-return]
        count = self._count
        variance = np.where(count > 1, self._m2 / np.maximum(count, 1), 0.0)
        std = np.sqrt(variance)
        scaled = std > 0
        scaling = (
            self._mean[:, None],
            np.where(scaled, std, 1.0)[:, None],
            scaled,
            bool(scaled.all()),
        )
        self._scaling_of = (count, self._mean, self._m2, scaling)
        return scaling

    def _fixed_layout(self) -> _Layout:
        if self._layout is None:
            names = list(self._numeric)
            names += [name for name, kind in self._schema.items() if kind == "boolean"]
            self._layout = _Layout(
                [self._index[name][0] for name in names],
                [self._index[name][1] for name in names],
                names[len(self._numeric) :],
            )
        return self._layout

    def _hashed_kinds(self, batch: Batch) -> Kinds:
        """How the batch holds each hashed field (see ``reuse.Kinds``)."""
        columns, booleans = batch.columns, batch.booleans
        return tuple(
            None if name not in columns else (columns[name].dtype == object, name in booleans)
            for name in self._hashed
        )

    def _hashed_entries(self, prepared: _Prepared, n_rows: int) -> Hashed:
        """The categorical and text entries, unweighted (``Hashed``): the categorical fields'
        in schema order, then the texts', sorted by row, field and column (one entry per
        (row, field, column): the counts of a text's tokens that share a column summed)."""
        parts = _Parts()
        texts = _Parts()
        groups: list[npt.NDArray[np.intp]] = []
        text = self._spec.text
        for name in self._hashed:
            if self._schema[name] == "categorical":
                found = prepared.categories.get(name)
                if found is None:
                    continue
                codes, values_text = found
                rows = np.flatnonzero(codes >= 0)
                parts.add(rows, self._vocab[name].indices(values_text)[codes[rows]], 1.0)
            else:
                column = prepared.texts.get(name)
                if column is None:
                    continue
                column = self._truncated_texts(column)
                rows, cols, counts = text_entries(
                    column, f"{name}:", self._n_features, bigrams=text.bigrams
                )
                texts.add(rows, cols, counts)
                groups.append(np.full(len(cols), self._text_group[name], dtype=np.intp))
        rows, cols, data = parts.joined()
        categorical = np.full(len(rows), -1, dtype=np.intp)
        if not groups:
            return rows, cols, data, categorical
        t_rows, t_cols, t_counts = texts.joined()
        t_groups = np.concatenate(groups)
        if len(groups) > 1:  # sorted by row, then field (each field's by row and column)
            order = np.lexsort((t_groups, t_rows))
            t_rows, t_cols, t_counts, t_groups = (
                t_rows[order],
                t_cols[order],
                t_counts[order],
                t_groups[order],
            )
        return (
            np.concatenate([rows, t_rows]),
            np.concatenate([cols, t_cols]),
            np.concatenate([data, t_counts]),
            np.concatenate([categorical, t_groups]),
        )

    def _truncated_texts(self, column: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``column`` with its texts past ``MAX_TEXT_CHARS`` cut there (counted)."""
        present = np.flatnonzero(pd.notna(column))
        strings = [v if isinstance(v, str) else str(v) for v in column[present].tolist()]
        cut, count = truncate(strings)
        if not count:
            return column
        if not self._truncated:
            log.warning(
                "a text of over %d characters: only its first %d are read as features "
                "(counted in Featurizer.truncated_texts; the results table keeps it whole)",
                MAX_TEXT_CHARS,
                MAX_TEXT_CHARS,
            )
        self._truncated += count
        out = column.copy()
        out[present] = np.array(cut, dtype=object)
        return out

    def _weighted(self, hashed: Hashed, learn: bool) -> Entries:
        """The entries' values as features: a category's as it is, a text's weighted
        (``streamfit.features.text``), learning the document frequencies with ``learn``."""
        rows, cols, data, groups = hashed
        text = np.flatnonzero(groups >= 0)
        if not len(text):
            return rows, cols, data
        data = data.copy()
        data[text] = self._frequencies.weigh(
            rows[text], cols[text], data[text], groups[text], learn=learn
        )
        return rows, cols, data

    def _assemble(
        self,
        prepared: _Prepared,
        scaled: Floats,
        n_rows: int,
        hashed: Hashed | None = None,
        *,
        learn: bool,
    ) -> sp.csr_matrix:
        """The matrix; ``scaled``: the numeric fields, standardized, ``(fields, rows)``;
        ``hashed``: the categorical and text entries, where they are known already; ``learn``:
        whether the texts' document frequencies learn these rows."""
        layout = self._fixed_layout()
        if prepared.flags or len(layout.booleans):
            fixed = np.empty((layout.size, n_rows))
            fixed[: scaled.shape[0]] = scaled
            for i, name in enumerate(layout.booleans, start=scaled.shape[0]):
                flags = prepared.flags.get(name)
                fixed[i] = np.nan if flags is None else flags
        else:
            fixed = scaled
        data, indices, counts = layout.entries(fixed)
        if not self._hashed and layout.distinct:  # sorted and free of duplicates by construction
            indptr = np.zeros(n_rows + 1, dtype=indices.dtype)
            np.cumsum(counts, out=indptr[1:])
            X = sp.csr_matrix((data, indices, indptr), shape=(n_rows, self._n_features))
            X.has_canonical_format = True
            return X
        parts = _Parts()
        if data.size:
            parts.add(np.repeat(np.arange(n_rows), counts), indices.astype(np.int64), data)
        if self._hashed:
            found = self._hashed_entries(prepared, n_rows) if hashed is None else hashed
            parts.add(*self._weighted(found, learn))
        return parts.matrix(n_rows, self._n_features)


class _Layout:
    """Where the numeric and boolean fields' features go, and how to emit them in order.

    Each such field has two candidate columns, its value and its missing indicator, and gives
    at most one entry per row. With the candidates sorted by column once, a row's entries come
    out sorted by taking the candidates in that order: no per-batch sort.
    """

    __slots__ = (
        "_dense_rows",
        "booleans",
        "distinct",
        "missing_slots",
        "size",
        "sorted_cols",
        "value_cols",
        "value_order",
        "value_slots",
    )

    def __init__(self, value_cols: list[int], missing_cols: list[int], booleans: list[str]):
        self.size = len(value_cols)
        self.booleans = booleans
        candidates = np.array([*value_cols, *missing_cols], dtype=np.int64)
        order = np.argsort(candidates, kind="stable")
        self.sorted_cols = candidates[order].astype(np.int32)
        slots = np.empty(len(order), dtype=np.intp)  # each candidate's place in column order
        slots[order] = np.arange(len(order))
        self.value_slots, self.missing_slots = slots[: self.size], slots[self.size :]
        self.distinct = bool(np.unique(candidates).size == candidates.size)
        values = np.array(value_cols, dtype=np.int64)
        self.value_order = np.argsort(values, kind="stable")
        self.value_cols = values[self.value_order].astype(np.int32)
        self._dense_rows: tuple[int, npt.NDArray[np.int32], npt.NDArray[np.intp]] | None = None

    def entries(self, fixed: Floats) -> tuple[Floats, npt.NDArray[np.int32], npt.NDArray[np.intp]]:
        """CSR pieces of ``fixed`` (``(fields, rows)``, NaN missing): data and column of each
        entry, row by row in candidate order, and the number of entries per row."""
        d, n = fixed.shape
        missing = np.isnan(fixed)
        nonzero = fixed != 0
        if not missing.any() and nonzero.all():  # the usual case: one value per field and row
            data = fixed[self.value_order].T.ravel()
            return data, *self._dense(n)
        # one row per event, the candidates in column order: the kept entries, read in memory
        # order, come out row by row and sorted
        keep = np.empty((n, 2 * d), dtype=bool)
        keep[:, self.value_slots] = (~missing & nonzero).T
        keep[:, self.missing_slots] = missing.T
        values = np.ones((n, 2 * d))
        values[:, self.value_slots] = fixed.T
        kept = np.flatnonzero(keep)
        columns = np.tile(self.sorted_cols, n)[kept]
        return values.ravel()[kept], columns, np.count_nonzero(keep, axis=1)

    def _dense(self, n: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.intp]]:
        """Columns and per-row counts of ``n`` rows that have every value: the same for every
        poll of that size, so the last size's are kept, and copied (a matrix owns its arrays)."""
        found = self._dense_rows
        if found is None or found[0] != n:
            found = self._dense_rows = (
                n,
                np.tile(self.value_cols, n),
                np.full(n, self.size, dtype=np.intp),
            )
        return found[1].copy(), found[2].copy()


class _Prepared:
    """A batch's columns read as their fields' kinds."""

    __slots__ = ("categories", "flags", "numbers", "texts")

    def __init__(self) -> None:
        self.numbers: dict[str, npt.NDArray[Any]] = {}
        self.flags: dict[str, Floats] = {}
        self.categories: dict[str, _Codes] = {}
        self.texts: dict[str, npt.NDArray[np.object_]] = {}


class _Parts:
    """Coordinate lists of the matrix, gathered field by field."""

    __slots__ = ("cols", "data", "rows")

    def __init__(self) -> None:
        self.rows: list[npt.NDArray[np.intp]] = []
        self.cols: list[npt.NDArray[np.int64]] = []
        self.data: list[Floats] = []

    def add(
        self,
        rows: npt.NDArray[np.intp],
        cols: npt.NDArray[np.int64] | int,
        data: Floats | float,
    ) -> None:
        if rows.size == 0:
            return
        self.rows.append(rows)
        self.cols.append(
            np.full(rows.size, cols, dtype=np.int64) if isinstance(cols, int) else cols
        )
        self.data.append(np.full(rows.size, data) if isinstance(data, float) else data)

    def joined(self) -> Entries:
        """Every part's coordinates, one after another."""
        if not self.rows:
            return np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(self.rows), np.concatenate(self.cols), np.concatenate(self.data)

    def matrix(self, n_rows: int, n_cols: int) -> sp.csr_matrix:
        if not self.rows:
            return sp.csr_matrix((n_rows, n_cols), dtype=np.float64)
        coords = (np.concatenate(self.rows), np.concatenate(self.cols))
        return sp.csr_matrix((np.concatenate(self.data), coords), shape=(n_rows, n_cols))


def _no_hashed() -> Hashed:
    return (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.intp))


def _rows(X: sp.csr_matrix, start: int, stop: int) -> sp.csr_matrix:
    """Rows ``start:stop`` of a canonical CSR matrix, sharing its arrays where it can."""
    if start == 0 and stop == X.shape[0]:
        return X
    lo, hi = int(X.indptr[start]), int(X.indptr[stop])
    part = sp.csr_matrix(
        (X.data[lo:hi], X.indices[lo:hi], X.indptr[start : stop + 1] - lo),
        shape=(stop - start, X.shape[1]),
    )
    part.has_canonical_format = True
    return part


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def _matches_any(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)

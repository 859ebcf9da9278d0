"""streamfit.features.Featurizer: schema, scaling, hashing, text, state, merge, determinism."""

from __future__ import annotations

import importlib
import itertools
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from streamfit.batch import Batch, Messages
from streamfit.codecs import decode_json
from streamfit.errors import FeatureError, StateFormatError
from streamfit.features import MISSING, Featurizer, Moments, feature_index
from streamfit.features.text import pair_column
from streamfit.spec.model import FeaturesSpec, TextSpec

BITS = 18
N = 2**BITS
#: text as it was read before bigrams and document frequencies
UNIGRAMS_TF = TextSpec(bigrams=False, weighting="tf")


def batch(*rows: dict[str, Any], target: str | None = None) -> Batch:
    msgs = Messages.from_values([orjson.dumps(r) for r in rows])
    result = decode_json(msgs, target, "classification")
    assert not result.dead_letters
    return result.batch


def featurizer(exclude: tuple[str, ...] = (), **spec: Any) -> Featurizer:
    return Featurizer(FeaturesSpec(**spec), exclude=exclude)


def at(X: sp.csr_matrix, key: str) -> list[float]:
    """The column of feature ``key``, one value per row."""
    return [float(v) for v in X[:, feature_index(key, X.shape[1])].toarray().ravel()]


def row_features(X: sp.csr_matrix, row: int) -> dict[int, float]:
    start, end = X.indptr[row], X.indptr[row + 1]
    return dict(zip(X.indices[start:end].tolist(), X.data[start:end].tolist(), strict=True))


def same_matrix(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


def rows_of(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """Events with every kind of field, some values missing."""
    cities = ["Paris", "Oslo", "Lima", "Pune", "Kyiv"]
    words = ["good", "bad", "film", "plot", "actor", "long", "boring", "great", "fun"]
    out = []
    for _ in range(n):
        row: dict[str, Any] = {
            "age": float(rng.normal(40, 12)) if rng.random() > 0.1 else None,
            "income": int(rng.integers(0, 10**6)),
            "city": str(rng.choice(cities)) if rng.random() > 0.1 else None,
            "member": bool(rng.random() > 0.5),
            "review": " ".join(rng.choice(words, size=int(rng.integers(4, 12)))),
            "y": int(rng.integers(0, 2)),
        }
        if rng.random() < 0.2:
            del row["income"]
        out.append(row)
    return out


def batches(seed: int, sizes: tuple[int, ...] = (50, 1, 200, 37)) -> list[Batch]:
    rng = np.random.default_rng(seed)
    return [batch(*rows_of(rng, n), target="y") for n in sizes]


# --- schema -----------------------------------------------------------------------------------


def test_schema_is_inferred_in_first_seen_order() -> None:
    f = featurizer(exclude=("y",))
    f.learn_transform(
        batch(
            {"b": True, "n": 1, "c": "red", "t": "a rather long free text", "y": 1},
            {"b": False, "n": 2, "c": "blue", "t": "another long piece of text", "y": 0},
            target="y",
        )
    )
    assert f.schema == {"b": "boolean", "n": "numeric", "c": "categorical", "t": "text"}
    assert f.n_features == N


def test_schema_evolves_and_absent_fields_are_missing() -> None:
    f = featurizer()
    f.learn_transform(batch({"x": 1.0}, {"x": 3.0}))
    X = f.learn_transform(batch({"color": "red"}, {"color": "blue", "x": None}))
    assert list(f.schema) == ["x", "color"]
    assert at(X, "x") == [0.0, 0.0]
    assert at(X, f"x={MISSING}") == [1.0, 1.0]
    assert at(X, "color=red") == [1.0, 0.0]


def test_a_field_that_is_null_everywhere_waits_for_a_value() -> None:
    f = featurizer()
    f.learn_transform(batch({"a": None, "x": 1}))
    assert f.schema == {"x": "numeric"}
    f.learn_transform(batch({"a": "z", "x": 1}))
    assert f.schema == {"x": "numeric", "a": "categorical"}


def test_transform_learns_nothing() -> None:
    f = featurizer()
    f.learn_transform(batch({"x": 1.0}, {"x": 3.0}))
    before = f.state()
    X = f.transform(batch({"x": 5.0, "new": "field"}))
    assert f.state() == before and f.schema == {"x": "numeric"}
    assert X.nnz == 1 and at(X, "x") == [3.0]


def test_text_needs_enough_words_in_the_first_batch() -> None:
    f = featurizer(text_fields_min_tokens=3)
    f.learn_transform(batch({"short": "one two", "long": "one two three"}, {"long": "x y z w"}))
    assert f.schema == {"short": "categorical", "long": "text"}
    f.learn_transform(batch({"short": "now a much longer value", "long": "x"}))
    assert f.schema == {"short": "categorical", "long": "text"}  # a kind never changes


def test_include_exclude_and_constructor_exclude() -> None:
    row = {"a": 1, "b": 2, "c": "x", "key": "k1", "y": 1}
    f = Featurizer(FeaturesSpec(exclude=["b"]), exclude=["key", "y"])
    f.learn_transform(batch(row))
    assert list(f.schema) == ["a", "c"]
    f = Featurizer(FeaturesSpec(include=["b", "c", "y"]), exclude=["y"])
    f.learn_transform(batch(row))
    assert list(f.schema) == ["b", "c"]


# --- numeric ----------------------------------------------------------------------------------


def test_numbers_are_standardized_with_running_moments() -> None:
    """Each learned value is scaled with the moments of the values up to and including it."""
    f = featurizer()
    values = [1.0, 2.0, 3.0, 4.0]
    X = f.learn_transform(batch(*({"x": v} for v in values)))
    expected = [0.0] + [
        (v - np.mean(values[: i + 1])) / np.std(values[: i + 1]) for i, v in enumerate(values) if i
    ]
    assert at(X, "x") == pytest.approx(expected)
    X = f.learn_transform(batch({"x": 10.0}))
    values.append(10.0)
    mean, std = float(np.mean(values)), float(np.std(values))
    assert at(X, "x") == pytest.approx([(10.0 - mean) / std])
    m = f.moments("x")
    assert m.count == 5
    assert (m.mean, m.variance) == pytest.approx((mean, std**2))
    scored = f.transform(batch({"x": 2.0}))  # scoring learns nothing
    assert at(scored, "x") == pytest.approx([(2.0 - mean) / std])
    assert f.moments("x").count == 5


def test_running_moments_do_not_depend_on_the_blocks() -> None:
    rng = np.random.default_rng(3)
    rows = [{"x": float(v), "z": float(w)} for v, w in rng.lognormal(3, 2, size=(300, 2))]
    whole = featurizer()
    X = whole.learn_transform(batch(*rows)).toarray()
    for size in (1, 7, 128):
        f = featurizer()
        parts = [f.learn_transform(batch(*rows[s : s + size])) for s in range(0, 300, size)]
        assert np.array_equal(sp.vstack(parts).toarray(), X)
        assert f.state() == whole.state()


def test_numbers_are_clipped() -> None:
    f = featurizer()
    f.learn_transform(batch(*({"x": float(v % 2)} for v in range(100))))
    X = f.transform(batch({"x": 1e9}, {"x": -1e9}))
    assert at(X, "x") == [5.0, -5.0]


def test_missing_numbers_get_an_indicator_and_no_value() -> None:
    f = featurizer()
    X = f.learn_transform(batch({"x": 1.0}, {"x": None}, {"x": 5.0}, {}))
    assert at(X, f"x={MISSING}") == [0.0, 1.0, 0.0, 1.0]
    assert at(X, "x") == [0.0, 0.0, 1.0, 0.0]
    assert f.moments("x").count == 2


def test_a_constant_field_scales_to_zero() -> None:
    f = featurizer()
    X = f.learn_transform(batch({"x": 7}, {"x": 7}))
    assert X.nnz == 0


def test_booleans_are_zero_one_with_missing_indicator() -> None:
    f = featurizer()
    X = f.learn_transform(batch({"ok": True}, {"ok": False}, {"ok": None}))
    assert f.schema == {"ok": "boolean"}
    assert at(X, "ok") == [1.0, 0.0, 0.0]
    assert at(X, f"ok={MISSING}") == [0.0, 0.0, 1.0]


# --- type overrides ---------------------------------------------------------------------------


def test_numeric_override_parses_strings_with_thousands_separators() -> None:
    f = featurizer(types={"income": "numeric"})
    X = f.learn_transform(
        batch({"income": "69,487.00"}, {"income": "1,000"}, {"income": "n/a"}, {"income": None})
    )
    assert f.schema == {"income": "numeric"}
    m = f.moments("income")
    assert (m.count, m.mean) == (2, (69487.0 + 1000.0) / 2)
    assert at(X, f"income={MISSING}") == [0.0, 0.0, 1.0, 1.0]
    assert at(X, "income") == [0.0, -1.0, 0.0, 0.0]  # the first value has no spread yet


def test_a_numeric_field_whose_values_turn_into_strings_is_parsed() -> None:
    f = featurizer()
    f.learn_transform(batch({"p": 1.0}, {"p": 3.0}))
    X = f.transform(batch({"p": "3"}, {"p": "1,001"}, {"p": "?"}))  # a mixed batch: strings
    assert at(X, "p")[:2] == [1.0, 5.0]
    assert at(X, f"p={MISSING}") == [0.0, 0.0, 1.0]


def test_categorical_override_of_numbers_uses_their_json_spelling() -> None:
    f = featurizer(types={"zip": "categorical"})
    X = f.learn_transform(batch({"zip": 10001}, {"zip": 2.5}, {"zip": None}))
    assert at(X, "zip=10001") == [1.0, 0.0, 0.0]
    assert at(X, "zip=2.5") == [0.0, 1.0, 0.0]
    assert X.nnz == 2


def test_boolean_override_reads_words() -> None:
    f = featurizer(types={"vip": "boolean", "n": "boolean"})
    X = f.learn_transform(
        batch({"vip": "Yes", "n": 2}, {"vip": "no", "n": 0}, {"vip": "maybe", "n": None})
    )
    assert at(X, "vip") == [1.0, 0.0, 0.0] and at(X, f"vip={MISSING}") == [0.0, 0.0, 1.0]
    assert at(X, "n") == [1.0, 0.0, 0.0] and at(X, f"n={MISSING}") == [0.0, 0.0, 1.0]


def test_text_override_and_boolean_categories() -> None:
    f = featurizer(types={"code": "text", "flag": "categorical"}, text=UNIGRAMS_TF)
    X = f.learn_transform(batch({"code": "A-1", "flag": True}, {"code": 42, "flag": False}))
    assert f.schema == {"code": "text", "flag": "categorical"}
    assert at(X, "flag=true") == [1.0, 0.0] and at(X, "flag=false") == [0.0, 1.0]
    assert at(X, "code:a") == pytest.approx([math.sqrt(0.5), 0.0])
    assert at(X, "code:42") == [0.0, 1.0]


# --- categorical and hashing ------------------------------------------------------------------


def test_hash_indices_are_fixed() -> None:
    # MurmurHash3_x86_32, seed 0, of the UTF-8 key, mod 2**18; computed once and kept here so a
    # change of hash function (or of key spelling) cannot go unnoticed: it would silently
    # scramble every saved model.
    assert feature_index("color=red", 2**18) == 167982
    assert feature_index("color=blue", 2**18) == 58042
    assert feature_index("age", 2**18) == 165201
    assert feature_index(f"age={MISSING}", 2**18) == 171927


HASHING_PROGRAM = """
import orjson
from streamfit.batch import Messages
from streamfit.codecs import decode_json
from streamfit.features import Featurizer
from streamfit.spec.model import FeaturesSpec
rows = [{"c": "x%d" % i, "t": "some words here %d" % i, "n": i} for i in range(50)]
msgs = Messages.from_values([orjson.dumps(r) for r in rows])
f = Featurizer(FeaturesSpec(text_fields_min_tokens=3))
X = f.learn_transform(decode_json(msgs, None, "classification").batch)
OUTPUT = orjson.dumps([X.indptr.tolist(), X.indices.tolist(), X.data.tolist()]).decode()
"""


def test_hashing_is_the_same_in_other_processes() -> None:
    namespace: dict[str, Any] = {}
    exec(HASHING_PROGRAM, namespace)  # here, with this process's hash seed
    outputs = {namespace["OUTPUT"]}
    for seed in ("1", "2"):  # Python's own hash() differs between these two processes
        run = subprocess.run(
            [sys.executable, "-c", HASHING_PROGRAM + "print(OUTPUT, end='')"],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=True,
            text=True,
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
    indptr, indices, _ = orjson.loads(outputs.pop())
    second_row = set(indices[indptr[1] : indptr[2]])  # (the first one's "n" is 0: no entry)
    keys = ["c=x1", "n", "t:some", "t:words", "t:here", "t:1"]
    bigrams = [("some", "words"), ("words", "here"), ("here", "1")]
    assert second_row == {feature_index(k, N) for k in keys} | {
        pair_column("t:", a, b, N) for a, b in bigrams
    }


def test_unseen_categories_hash_to_their_own_column() -> None:
    f = featurizer()
    f.learn_transform(batch({"city": "Paris"}, {"city": "Oslo"}))
    X = f.transform(batch({"city": "Rome"}, {"city": None}, {"city": "Paris"}))
    assert row_features(X, 0) == {feature_index("city=Rome", N): 1.0}
    assert row_features(X, 1) == {}
    assert row_features(X, 2) == {feature_index("city=Paris", N): 1.0}


def test_collisions_add_up() -> None:
    f = featurizer(hash_bits=4, types={f"c{i}": "categorical" for i in range(40)})
    X = f.learn_transform(batch({f"c{i}": "v" for i in range(40)}))
    assert X.shape == (1, 16) and X.has_canonical_format
    assert X.sum() == 40.0 and X.nnz <= 16


def test_values_hashed_together_get_the_columns_of_one_call_each() -> None:
    """``murmur3_32_many`` against scikit-learn's ``murmurhash3_32``: empty keys, every tail
    length, ASCII and other UTF-8, NUL bytes, keys too long for the byte matrix."""
    from sklearn.utils import murmurhash3_32

    from streamfit.features.hashing import HashedVocabulary, murmur3_32_many

    rng = np.random.default_rng(4)
    alphabet = [*"abcXYZ019_ -=:", "é", "日", "\x00", "😀"]
    values = ["", "a", "ab", "abc", "abcd", "x" * 300, "é" * 200]
    values += ["".join(rng.choice(alphabet, size=int(rng.integers(0, 40)))) for _ in range(3000)]
    ascii_only = [v for v in values if v.isascii()]
    for prefix in ("", "f=", "city=", "review:", "日="):
        for keys in (values, ascii_only):
            expected = [murmurhash3_32(prefix + v, seed=0, positive=True) for v in keys]
            assert murmur3_32_many(prefix.encode(), keys).tolist() == expected
            vocabulary = HashedVocabulary(prefix, N)
            assert vocabulary.indices(keys).tolist() == [e % N for e in expected]
            assert vocabulary.indices(keys[:5]).tolist() == [e % N for e in expected[:5]]


def test_small_batches_look_up_the_values_hashed_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamfit.features import hashing

    monkeypatch.setattr(hashing, "_REMEMBERED", 40)
    hashed: list[int] = []
    really = hashing.HashedVocabulary._hashed

    def counted(self: hashing.HashedVocabulary, values: list[str]) -> Any:
        hashed.append(len(values))
        return really(self, values)

    monkeypatch.setattr(hashing.HashedVocabulary, "_hashed", counted)
    vocabulary = hashing.HashedVocabulary("f=", N)
    rng = np.random.default_rng(5)
    requested = 0
    for _ in range(40):  # batches of known and new values, the memory filled and cleared
        values = [f"v{i}" for i in rng.choice(45, size=int(rng.integers(1, 30)), replace=False)]
        expected = [feature_index(f"f={v}", N) for v in values]
        assert vocabulary.indices(values).tolist() == expected
        requested += len(values)
    assert len(vocabulary._known) <= 40
    assert 0 < sum(hashed) < requested / 2  # most values were found, not hashed again
    big = [f"w{i}" for i in range(hashing._FEW)]  # a large batch hashes all its values
    assert vocabulary.indices(big).tolist() == [feature_index(f"f={v}", N) for v in big]
    assert hashed[-1] == len(big)


# --- text -------------------------------------------------------------------------------------


def test_text_tokens_are_lowercased_counted_and_normalized() -> None:
    f = featurizer(types={"t": "text"}, text=UNIGRAMS_TF)
    X = f.learn_transform(batch({"t": "Great film, GREAT cast!"}, {"t": None}, {"t": "Ça va"}))
    great, other = math.log1p(2), math.log1p(1)
    norm = math.sqrt(great**2 + 2 * other**2)
    assert row_features(X, 0) == pytest.approx(
        {
            feature_index("t:great", N): great / norm,
            feature_index("t:film", N): other / norm,
            feature_index("t:cast", N): other / norm,
        }
    )
    assert row_features(X, 1) == {}
    assert set(row_features(X, 2)) == {feature_index("t:ça", N), feature_index("t:va", N)}


def test_ascii_and_unicode_tokenizers_agree() -> None:
    f = featurizer(types={"t": "text"})
    f.learn_transform(batch({"t": "x"}))
    text = "Hello, w_1 x... 42!"
    ascii_batch = f.transform(batch({"t": text}))  # all ASCII: str.translate + split
    unicode_batch = f.transform(batch({"t": text}, {"t": "é"}))  # not ASCII: the regex
    assert same_matrix(ascii_batch, unicode_batch[0])
    words = {"hello", "w_1", "x", "42"}
    pairs = (("hello", "w_1"), ("w_1", "x"), ("x", "42"))
    expected = {feature_index(f"t:{w}", N) for w in words}
    expected |= {pair_column("t:", a, b, N) for a, b in pairs}
    assert set(row_features(ascii_batch, 0)) == expected
    assert set(row_features(unicode_batch, 1)) == {feature_index("t:é", N)}


# --- the matrix -------------------------------------------------------------------------------


def test_matrix_shape_dtype_and_rows() -> None:
    f = featurizer(exclude=("y",))
    b = batches(0)[0]
    X = f.learn_transform(b)
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float64
    assert X.shape == (len(b), N) and X.has_canonical_format
    g = featurizer(exclude=("y",))
    for i in range(len(b)):  # each row is the row of the batch at the same place
        alone = g.learn_transform(b.take(np.array([i])))  # (a text norm may round differently)
        assert np.array_equal(X[i].indices, alone.indices)
        assert np.allclose(X[i].data, alone.data, rtol=1e-15, atol=0)


def test_empty_batch() -> None:
    f = featurizer()
    f.learn_transform(batch({"x": 1}))
    empty = batch({"x": 1}).take(np.array([], dtype=np.intp))
    X = f.learn_transform(empty)
    assert X.shape == (0, N) and X.nnz == 0


def test_no_bias_column() -> None:
    f = featurizer()
    X = f.learn_transform(batch({"c": "a"}, {"c": "b"}))
    assert X.nnz == 2


# --- state, merge, determinism ----------------------------------------------------------------


def test_state_round_trip_is_bit_exact() -> None:
    f = featurizer(exclude=("y",), types={"income": "numeric"}, hash_bits=16)
    train, more, score = batches(1, (80, 40, 30))
    f.learn_transform(train)
    g = Featurizer.from_state(f.state())
    assert g.state() == f.state()
    assert g.schema == f.schema and g.spec == f.spec and g.exclude == ("y",)
    assert same_matrix(g.transform(score), f.transform(score))
    assert same_matrix(g.learn_transform(more), f.learn_transform(more))
    assert g.state() == f.state()


def test_state_format_header() -> None:
    state = featurizer().state()
    assert state[:8] == b"SFFEATS\x00" and int.from_bytes(state[8:10], "little") == 2


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda s: s[:10], "truncated"),
        (lambda s: b"X" + s[1:], "magic"),
        (lambda s: s[:8] + (9).to_bytes(2, "little") + s[10:], "version 9"),
        (lambda s: s[:-5] + bytes([s[-5] ^ 1]) + s[-4:], "checksum"),
    ],
)
def test_bad_state_is_a_state_format_error(corrupt: Any, message: str) -> None:
    f = featurizer()
    f.learn_transform(batch({"x": 1.5, "c": "a"}))
    with pytest.raises(StateFormatError, match=message):
        Featurizer.from_state(corrupt(f.state()))


def test_merge_equals_one_pass_over_everything() -> None:
    first, second = batches(2, (300, 200))
    whole = featurizer(exclude=("y",))
    for b in (first, second):
        whole.learn_transform(b)
    left, right = featurizer(exclude=("y",)), featurizer(exclude=("y",))
    left.learn_transform(first)
    right.learn_transform(second)
    left.merge(right)
    a = left
    assert a.schema == whole.schema
    for name, kind in whole.schema.items():
        if kind == "numeric":
            m, w = a.moments(name), whole.moments(name)
            assert m.count == w.count
            assert m.mean == pytest.approx(w.mean, rel=1e-9, abs=1e-9)
            assert m.variance == pytest.approx(w.variance, rel=1e-9, abs=1e-9)


def test_scaling_follows_the_moments_through_learning_and_merges() -> None:
    first, second, probe = batches(3, (300, 200, 40))
    mine, theirs = featurizer(exclude=("y",)), featurizer(exclude=("y",))
    mine.learn_transform(first)
    theirs.learn_transform(second)
    before = mine.transform(probe)  # the scaling of these moments is kept from here
    mine.merge(theirs)  # changes the moments in place

    def fresh() -> sp.csr_matrix:  # the same moments, nothing kept
        return Featurizer.from_state(mine.state()).transform(probe)

    after = mine.transform(probe)
    assert (after != fresh()).nnz == 0
    assert (after != before).nnz > 0
    mine.learn_transform(probe)
    assert (mine.transform(probe) != fresh()).nnz == 0


def test_merge_takes_new_fields_and_rejects_conflicts() -> None:
    a, b = featurizer(), featurizer()
    a.learn_transform(batch({"x": 1, "c": "u"}))
    b.learn_transform(batch({"x": 3, "z": True}))
    a.merge(b)
    assert a.schema == {"x": "numeric", "c": "categorical", "z": "boolean"}
    assert (a.moments("x").count, a.moments("x").mean) == (2, 2.0)
    c = featurizer()
    c.learn_transform(batch({"c": 1.0}))
    before = a.state()
    with pytest.raises(FeatureError, match="'c' is categorical here, numeric there"):
        a.merge(c)
    assert a.state() == before
    with pytest.raises(FeatureError, match="different specs"):
        a.merge(featurizer(hash_bits=10))


def test_moments_merge_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.normal(1e3, 5, size=n) for n in (1, 7, 500, 64)]
    total = Moments()
    for p in parts:
        m = Moments()
        m.update(p)
        total.merge(m)
    everything = np.concatenate(parts)
    assert total.count == everything.size
    assert total.mean == pytest.approx(everything.mean(), rel=1e-12)
    assert total.variance == pytest.approx(everything.var(), rel=1e-9)


def test_same_batches_same_order_same_bytes() -> None:
    outputs = []
    for _ in range(2):
        f = featurizer(exclude=("y",), hash_bits=12)
        matrices = [f.learn_transform(b) for b in batches(4)]
        outputs.append((f.state(), matrices))
    (state_a, xs_a), (state_b, xs_b) = outputs
    assert state_a == state_b
    assert all(same_matrix(a, b) for a, b in zip(xs_a, xs_b, strict=True))


def test_include_and_exclude_take_glob_patterns() -> None:
    spec = FeaturesSpec(hash_bits=10, exclude=["*_2", "secret"], include=["a*", "b_2", "secret"])
    featurizer = Featurizer(spec)
    batch = Batch(
        {name: np.array([1.0, 2.0]) for name in ["a1", "a_2", "b_2", "secret", "c"]},
        Messages.from_values([b"", b""]),
    )
    featurizer.learn_transform(batch)
    assert list(featurizer.schema) == ["a1"]


def test_learn_transform_blocks_equals_one_call_per_block() -> None:
    rng = np.random.default_rng(11)
    rows = rows_of(rng, 900)
    for row in rows[600:]:
        row["late"] = float(rng.normal())  # a field that appears in a later batch
    polls = [batch(*rows[a:b], target="y") for a, b in ((0, 300), (300, 600), (600, 900))]
    one, many = featurizer(exclude=("y",)), featurizer(exclude=("y",))
    for poll in polls:
        bounds = [0, 1, 64, 64, 200, len(poll)]
        got = many.learn_transform_blocks(poll, bounds)
        assert len(got) == len(bounds) - 1
        for X, a, b in zip(got, bounds[:-1], bounds[1:], strict=True):
            expected = one.learn_transform(poll.take(np.arange(a, b)))
            assert X.has_canonical_format and same_matrix(X, expected)
        assert many.state() == one.state()
    with pytest.raises(ValueError, match="bounds"):
        many.learn_transform_blocks(polls[0], [0, 10])


# --- scored rows' hashed entries, reused at learning -----------------------------------------


def test_scored_rows_reuse_their_hashed_entries_and_learn_the_same(monkeypatch: Any) -> None:
    """Rows scored with ``remember`` and learned later, in runs that join several polls: the
    learned matrices and state are those of a featurizer that hashes them again, bit for bit,
    and the kept entries serve every run whose rows were all scored under its schema."""
    from streamfit.features.reuse import ScoredEntries
    from streamfit.runtime.blocks import BlockBuffer

    fresh, reusing = featurizer(exclude=("y",)), featurizer(exclude=("y",))
    found: list[bool] = []
    recall = ScoredEntries.recall

    def spy(self: ScoredEntries, *args: Any, **kwargs: Any) -> Any:
        result = recall(self, *args, **kwargs)
        if self is reusing._scored:
            found.append(result is not None)
        return result

    monkeypatch.setattr(ScoredEntries, "recall", spy)
    rng = np.random.default_rng(12)
    data = rows_of(rng, 2600)
    for i, row in enumerate(data):
        if i % 5 == 3:
            row["y"] = None  # scored, never learned
        if i >= 1000:
            row["tag"] = f"t{i % 7}"  # a field that joins the schema late
    values = [orjson.dumps(r) for r in data]
    buffers = {fresh: BlockBuffer(128), reusing: BlockBuffer(128)}
    cuts = [0, 1, 70, 71, 300, 555, 900, 1000, 1003, 1200, 1500, 1501, 1777, 2100, 2600]
    for a, b in itertools.pairwise(cuts):
        msgs = Messages.from_values(values[a:b], topic="t", first_offset=a)
        poll = decode_json(msgs, "y", "classification").batch
        labeled = np.flatnonzero(poll.columns["y"] != None)  # noqa: E711 (elementwise)
        scored = [f.transform(poll, remember=labeled if f is reusing else None) for f in buffers]
        assert same_matrix(*scored)
        learned: list[list[sp.csr_matrix]] = []
        for f, buffer in buffers.items():
            buffer.add(poll.take(labeled))
            runs = buffer.take_complete_runs({("t", 0): b})
            learned.append([X for run in runs for X in f.learn_transform_blocks(*run)])
        assert len(learned[0]) == len(learned[1])
        assert all(map(same_matrix, *learned))
        assert fresh.state() == reusing.state()
    # runs that bring a field are learned block by block (no recall); of the others, those
    # with rows scored before the schema took its last field find them missing
    assert found == [False, True, False, True, True, True]


def test_kept_entries_are_refused_when_anything_differs() -> None:
    from streamfit.features.reuse import ScoredEntries

    meta = Messages.from_values([b"a", b"b", b"c"], topic="t", first_offset=5)
    entries = (np.array([0, 1, 1, 2]), np.array([4, 5, 6, 7], dtype=np.int64), np.ones(4))
    kinds = ((True, False), None)

    def kept(max_entries: int = 100) -> ScoredEntries:
        out = ScoredEntries(max_entries)
        out.keep(meta, np.arange(3), entries, kinds=kinds, version=2)
        return out

    rows, cols, _ = kept().recall(meta.rows(1, 3), kinds=kinds, version=2) or ((), (), ())
    assert list(rows) == [0, 0, 1] and list(cols) == [5, 6, 7]
    assert kept().recall(meta, kinds=((True, False), (False, False)), version=2) is not None
    assert kept().recall(meta, kinds=((False, False), None), version=2) is None  # dtype
    assert kept().recall(meta, kinds=kinds, version=3) is None  # the schema changed
    other = Messages.from_values([b"a", b"x", b"c"], topic="t", first_offset=5)
    assert kept().recall(other, kinds=kinds, version=2) is None  # another event, same offset
    moved = Messages.from_values([b"a", b"b", b"c"], topic="t", partition=1, first_offset=5)
    assert kept().recall(moved, kinds=kinds, version=2) is None  # another partition
    assert len(kept(max_entries=3)) == 0  # too many entries: nothing kept
    store = kept()
    assert store.recall(meta.rows(0, 1), kinds=kinds, version=2) is not None
    assert len(store) == 4  # the batch's last row is not learned yet: it is all kept
    store.recall(meta.rows(2, 3), kinds=kinds, version=2)
    assert len(store) == 0
    store = kept()
    store.forget([("t", 0)])
    assert len(store) == 0 and store.recall(meta, kinds=kinds, version=2) is None


def test_kept_entries_of_a_poll_of_several_partitions() -> None:
    from streamfit.features.reuse import ScoredEntries

    left = Messages.from_values([b"a", b"b"], topic="t", partition=0, first_offset=0)
    right = Messages.from_values([b"c", b"d"], topic="u", partition=1, first_offset=0)
    poll = Messages.concat([left.rows(0, 1), right.rows(0, 1), left.rows(1, 2), right.rows(1, 2)])
    entries = (np.arange(4), np.array([10, 11, 12, 13], dtype=np.int64), np.arange(4.0))
    store = ScoredEntries()
    store.keep(poll, np.array([0, 1, 2]), entries, kinds=(), version=0)
    rows, cols, data = store.recall(poll.take(np.array([0, 2])), kinds=(), version=0) or ((),) * 3
    assert list(rows) == [0, 1] and list(cols) == [10, 12] and list(data) == [0.0, 2.0]
    assert store.recall(poll.take(np.array([1, 3])), kinds=(), version=0) is None  # d not kept


# -- type inference that one event cannot poison; limits ----------------------------------------


def test_one_wrong_typed_value_early_cannot_retype_a_numeric_field() -> None:
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = [{"x0": float(v), "c": "a"} for v in rng.normal(size=100)]
    for row in rows[:3]:
        row["x0"] = "abc"
    f = featurizer()
    X = f.learn_transform(batch(*rows))
    assert f.schema == {"x0": "numeric", "c": "categorical"}
    assert f.invalid_values == {"x0": 3}
    assert at(X, f"x0={MISSING}")[:4] == [1.0, 1.0, 1.0, 0.0]  # missing for the model
    assert f.moments("x0").count == 97
    f.learn_transform(batch({"x0": "def"}, {"x0": "1,234.5"}, {"x0": 2}))
    assert f.schema["x0"] == "numeric" and f.invalid_values == {"x0": 4}


def test_a_field_is_of_the_type_most_of_its_first_values_have() -> None:
    f = featurizer()
    f.learn_transform(
        batch(
            *[{"s": f"v{i}", "b": i % 2 == 0, "n": i} for i in range(10)],
            {"s": 1, "b": "maybe", "n": "n/a"},
            {"s": 2.5, "b": 0, "n": True},
        )
    )
    assert f.schema == {"s": "categorical", "b": "boolean", "n": "numeric"}
    assert f.invalid_values == {"b": 1, "n": 1}  # "maybe" and "n/a"; true reads 1


def test_a_tie_is_not_a_majority_of_numbers() -> None:
    f = featurizer()
    f.learn_transform(batch({"z": 75001}, {"z": "SW1A"}))
    assert f.schema == {"z": "categorical"}


def test_types_in_the_spec_always_win() -> None:
    f = featurizer(types={"n": "categorical", "s": "numeric"})
    f.learn_transform(batch(*[{"n": i, "s": "x"} for i in range(10)], {"n": "a", "s": "2"}))
    assert f.schema == {"n": "categorical", "s": "numeric"}
    assert f.invalid_values == {"s": 10}


@pytest.mark.parametrize("value", [1e300, -1e101, "1e308", "NaN", "Infinity", "-inf", [1, 2]])
def test_numbers_that_would_poison_the_moments_are_missing(value: Any) -> None:
    f = featurizer()
    good = [{"x": float(v)} for v in np.random.default_rng(1).normal(size=50)]
    f.learn_transform(batch(*good))
    X = f.learn_transform(batch({"x": value}, {"x": 0.5}))
    m = f.moments("x")
    assert m.count == 51 and math.isfinite(m.mean) and math.isfinite(m.variance)
    assert abs(m.mean) < 1 and m.variance < 2
    assert at(X, f"x={MISSING}") == [1.0, 0.0] and np.isfinite(X.data).all()
    assert f.invalid_values == {"x": 1}


def test_the_schema_holds_at_most_the_limit_of_fields() -> None:
    from streamfit.limits import MAX_FEATURE_FIELDS

    f = featurizer()
    wide = {f"f{i}": float(i) for i in range(MAX_FEATURE_FIELDS + 500)}
    f.learn_transform(batch(wide, wide))
    assert list(f.schema) == [f"f{i}" for i in range(MAX_FEATURE_FIELDS)]
    assert f.untracked_fields == 500
    f.learn_transform(batch({"late": 1.0, "f0": 2.0}))
    assert "late" not in f.schema and f.untracked_fields == 501
    state = Featurizer.from_state(f.state())
    assert state.schema == f.schema


def test_memory_for_names_stays_bounded_with_ever_new_names() -> None:
    f = featurizer(include=["keep*"])
    for start in range(0, 30_000, 2_000):
        f.learn_transform(batch({f"n{i}": 1 for i in range(start, start + 2_000)}))
    assert len(f._wanted_cache) <= 10_000 and f.schema == {}


def test_long_values_are_hashed_but_not_remembered() -> None:
    from streamfit.features.hashing import HashedVocabulary

    vocab = HashedVocabulary("f=", N)
    long_value, short = "x" * 1_000_000, "short"
    columns = vocab.indices([long_value, short])
    assert columns.tolist() == [feature_index("f=" + long_value, N), feature_index("f=short", N)]
    assert list(vocab._known) == [short]


def test_past_the_limit_the_fields_most_rows_have_join_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    featurizer_module = importlib.import_module("streamfit.features.featurizer")
    monkeypatch.setattr(featurizer_module, "MAX_FEATURE_FIELDS", 5)
    junk = [{f"j{i}_{k}": 1.0 for k in range(3)} for i in range(4)]
    good = [{"a": float(i), "b": "x"} for i in range(50)]
    f = featurizer()
    f.learn_transform(batch(*junk, *good))
    assert list(f.schema)[:2] == ["j0_0", "j0_1"] and {"a", "b"} <= set(f.schema)
    assert len(f.schema) == 5 and f.untracked_fields == 9


@pytest.mark.parametrize("position", [1, 10, 500])
def test_one_wild_value_does_not_spoil_a_field_s_scaling(position: int) -> None:
    """A sensor's 1e6 among values near 0, among the first events or later: without a robust
    start and winsorized moments, every later value of the field scaled to about 0 and the
    ROC AUC fell from 0.999 to 0.83."""
    from streamfit.pipeline import Pipeline

    rng = np.random.default_rng(4)
    x = rng.normal(size=(6000, 2))
    y = (x[:, 0] + 2 * x[:, 1] > 0).astype(int)
    clean = [{"x0": a, "x1": b, "y": int(t)} for (a, b), t in zip(x.tolist(), y, strict=True)]
    wild = [dict(e) for e in clean]
    wild[position]["x1"] = 1e6

    def final_auc(events: list[dict[str, Any]]) -> float:
        spec = {
            "name": "wild",
            "topics": {"train": "t"},
            "target": "y",
            "classes": [0, 1],
            "outputs": {"database": "sqlite://"},
            "stats": {"enabled": False},
        }
        with Pipeline(spec) as pipeline:
            pipeline.send("t", events)
            pipeline.run()
            return float(pipeline.metrics()["window_roc_auc"].iloc[-1])

    assert final_auc(wild) > final_auc(clean) - 0.01


def test_the_first_values_survive_a_checkpoint_and_a_merge() -> None:
    """A featurizer restored in the middle of its fields' first values goes on as if never
    stopped; a merge keeps the first values of both sides up to the buffer's size."""
    rows = [{"x": v} for v in [0.1, 5e8, -0.3, 0.2, 0.4, -0.1, 0.0, 0.3] * 8]
    whole, stopped = featurizer(), featurizer()
    X_whole = [whole.learn_transform(batch(*rows[i : i + 8])) for i in range(0, 64, 8)]
    X_stopped = [stopped.learn_transform(batch(*rows[:8]))]
    stopped = Featurizer.from_state(stopped.state())
    X_stopped += [stopped.learn_transform(batch(*rows[i : i + 8])) for i in range(8, 64, 8)]
    assert all((a != b).nnz == 0 for a, b in zip(X_whole, X_stopped, strict=True))
    assert whole.state() == stopped.state()
    assert abs(whole.moments("x").mean) < 1e3  # the 5e8s came in the first values

    a, b = featurizer(), featurizer()
    a.learn_transform(batch(*rows[:10]))
    b.learn_transform(batch(*rows[10:20]))
    a.merge(b)
    assert np.array_equal(a._first[0, :20], [r["x"] for r in rows[:20]])

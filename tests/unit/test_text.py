"""Text features: tokens and bigrams, TF-IDF learned one event at a time, kept rows, limits."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from streamfit.batch import Batch, Messages
from streamfit.codecs import decode_json
from streamfit.features import Featurizer, feature_index
from streamfit.features.text import pair_column
from streamfit.limits import MAX_TEXT_CHARS
from streamfit.spec.model import FeaturesSpec, TextSpec

N = 2**18


def batch(*rows: dict[str, Any], first_offset: int = 0) -> Batch:
    msgs = Messages.from_values([orjson.dumps(r) for r in rows], first_offset=first_offset)
    return decode_json(msgs, "y", "classification").batch


def text_featurizer(**text: Any) -> Featurizer:
    return Featurizer(FeaturesSpec(types={"t": "text"}, text=TextSpec(**text)), exclude=["y"])


def same_matrix(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


def test_tfidf_weights_each_learned_text_with_the_frequencies_that_include_it() -> None:
    f = text_featurizer()
    X = f.learn_transform(batch({"t": "good film"}, {"t": "bad film"}))
    film, good, bad = (feature_index(f"t:{w}", N) for w in ("film", "good", "bad"))
    good_film, bad_film = pair_column("t:", "good", "film", N), pair_column("t:", "bad", "film", N)
    # row 0: one text so far, every token in it: all weigh the same
    assert X[0, film] == pytest.approx(X[0, good]) == pytest.approx(X[0, good_film])
    # row 1: "film" is in both texts (idf 1), "bad" and "bad film" in one of two
    rare = math.log(3 / 2) + 1
    norm = math.log1p(1) * math.sqrt(1 + 2 * rare**2)
    assert X[1, film] == pytest.approx(math.log1p(1) / norm)
    assert X[1, bad] == pytest.approx(math.log1p(1) * rare / norm) == pytest.approx(X[1, bad_film])
    assert f.frequencies.documents == [2]
    assert (f.frequencies.frequency(film), f.frequencies.frequency(bad)) == (2, 1)
    # a scored text is weighted with the frequencies as they stand, and teaches nothing
    before = f.state()
    scored = f.transform(batch({"t": "good film"}))
    assert f.state() == before
    assert scored[0, good] > scored[0, film]


def test_text_settings_of_the_spec() -> None:
    row = {"t": "good good film"}
    plain = text_featurizer(bigrams=False, weighting="tf").learn_transform(batch(row))
    good, film = feature_index("t:good", N), feature_index("t:film", N)
    assert set(plain.indices) == {good, film}
    assert plain[0, good] / plain[0, film] == pytest.approx(math.log1p(2) / math.log1p(1))
    with_pairs = text_featurizer(weighting="tf").learn_transform(batch(row))
    assert with_pairs.nnz == 4  # good, film, "good good", "good film"


def random_texts(seed: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "plot", "Ça", "va", "long", "boring", "great", "fun", "x"]
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=int(rng.integers(0, 14))))
        row: dict[str, Any] = {"t": text if rng.random() > 0.1 else None, "y": i % 3}
        if rng.random() < 0.5:
            row["u"] = " ".join(rng.choice(words, size=int(rng.integers(1, 6))))
        rows.append(row)
    return rows


def test_text_learning_is_the_same_however_the_stream_is_cut() -> None:
    rows = random_texts(1, 700)
    spec = FeaturesSpec(types={"t": "text", "u": "text"})
    whole = Featurizer(spec, exclude=["y"])
    X = whole.learn_transform(batch(*rows))
    for cuts in ([0, 1, 2, 300, 700], [0, 350, 351, 699, 700]):
        parts = Featurizer(spec, exclude=["y"])
        pieces = [parts.learn_transform(batch(*rows[a:b])) for a, b in itertools.pairwise(cuts)]
        assert same_matrix(sp.vstack(pieces, format="csr"), X)
        assert parts.state() == whole.state()
        blocks = Featurizer(spec, exclude=["y"])
        together = blocks.learn_transform_blocks(batch(*rows), cuts)
        assert same_matrix(sp.vstack(together, format="csr"), X)
        assert blocks.state() == whole.state()


def test_kept_rows_learned_later_give_the_matrix_of_learning_them_then() -> None:
    """Rows kept when scored and learned later, in another order, among other rows: the
    matrix and the state are those of learning those events at that point."""
    rows = random_texts(2, 300)
    for i, row in enumerate(rows):
        row["n"] = float(i % 17) if i % 5 else None
        row["flag"] = bool(i % 2) if i % 7 else None
        if i >= 150:
            row["late"] = i * 0.5  # a numeric field the schema gains after some were kept
    spec = FeaturesSpec(types={"t": "text", "u": "text"})
    direct, keeping = Featurizer(spec, exclude=["y"]), Featurizer(spec, exclude=["y"])
    kept = []
    for start in range(0, 300, 50):  # rows kept in blocks as they come
        kept.append(keeping.keep(batch(*rows[start : start + 50], first_offset=start)))
    assert "late" in keeping.schema
    order = [3, 0, 5, 1, 4, 2]  # learned in another order
    for block in order:
        learned = direct.learn_transform(batch(*rows[block * 50 : block * 50 + 50]))
        assert same_matrix(keeping.learn_kept(kept[block]), learned), block
    # the same learning; only the order the fields joined the schema in differs (here the
    # rows taught it as they were kept)
    assert keeping.schema == direct.schema
    for name, kind in direct.schema.items():
        if kind == "numeric":
            assert keeping.moments(name) == direct.moments(name)

    def per_field(f: Featurizer) -> dict[str, int]:
        texts = [name for name, kind in f.schema.items() if kind == "text"]
        return dict(zip(texts, f.frequencies.documents, strict=True))

    assert per_field(keeping) == per_field(direct)
    assert np.array_equal(
        keeping.frequencies.arrays()["df_counts"], direct.frequencies.arrays()["df_counts"]
    )


def test_a_one_megabyte_text_is_read_up_to_the_limit_and_counted() -> None:
    f = text_featurizer()
    huge = ("lorem ipsum " * 90_000)[:1_000_000]
    X = f.learn_transform(batch({"t": huge}, {"t": "short text"}))
    assert f.truncated_texts == 1
    assert X.shape[0] == 2 and X[1].nnz == 3
    limited = text_featurizer().learn_transform(batch({"t": huge[:MAX_TEXT_CHARS]}))
    assert same_matrix(X[0], limited)


def test_document_frequencies_survive_state_and_add_up_in_merges() -> None:
    rows = random_texts(3, 400)
    spec = FeaturesSpec(types={"t": "text", "u": "text"})
    a, b = Featurizer(spec, exclude=["y"]), Featurizer(spec, exclude=["y"])
    a.learn_transform(batch(*rows[:200]))
    b.learn_transform(batch(*rows[200:]))
    restored = Featurizer.from_state(a.state())
    assert restored.state() == a.state()
    probe = batch(*rows[:20])
    assert same_matrix(restored.transform(probe), a.transform(probe))
    both = Featurizer(spec, exclude=["y"])
    both.learn_transform(batch(*rows))
    a.merge(b)
    assert a.frequencies.documents == both.frequencies.documents
    assert a.frequencies.arrays()["df_counts"].tolist() == (
        both.frequencies.arrays()["df_counts"].tolist()
    )


def test_multiclass_text_learns_with_macro_f1() -> None:
    from streamfit.evaluation import ClassificationEvaluator
    from streamfit.models import LogisticRegression
    from streamfit.models.base import predict_learn_many

    rng = np.random.default_rng(5)
    topics = {
        "sport": ["goal", "match", "team", "score", "coach"],
        "food": ["pasta", "cheese", "bread", "wine", "salad"],
        "tech": ["code", "chip", "server", "cloud", "app"],
    }
    common = ["the", "a", "of", "and", "today", "new"]
    rows = []
    for _ in range(3000):
        label = str(rng.choice(list(topics)))
        words = list(rng.choice(topics[label], 3)) + list(rng.choice(common, 4))
        rows.append({"t": " ".join(rng.permutation(words)), "y": label})
    f = text_featurizer()
    model = LogisticRegression()
    evaluator = ClassificationEvaluator(window=500)
    b = batch(*rows)
    X, y = f.learn_transform(b), b.columns["y"]
    evaluator.update(y, predict_learn_many(model, X, y), list(model.classes))
    snapshot = evaluator.snapshot()
    assert sorted(model.classes) == ["food", "sport", "tech"]  # type: ignore[type-var]
    assert snapshot["window_accuracy"] > 0.95 and snapshot["window_f1"] > 0.95

"""State written by earlier releases still loads, and writes back to the same bytes.

``tests/unit/state_blobs/`` holds blobs of each kind of state (built-in models, both kinds of
evaluator, featurizers) written by ``write_blobs`` below at commit 2cea747, before the three
state formats shared one envelope. Every one must load and, since none of the formats changed,
``state()`` of what was loaded must give the committed bytes back.

``python tests/unit/test_state_blobs.py DIR`` writes the same blobs with the code at hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import scipy.sparse as sp

from streamfit.batch import Messages
from streamfit.codecs.json import decode_json
from streamfit.evaluation import ClassificationEvaluator, RegressionEvaluator
from streamfit.features.featurizer import Featurizer
from streamfit.models import LinearRegression, LogisticRegression, model_from_state
from streamfit.spec.model import FeaturesSpec

BLOBS = Path(__file__).parent / "state_blobs"

#: Each blob's file and the class whose ``from_state`` reads it.
READERS: dict[str, Any] = {
    "logistic_binary.sfst": LogisticRegression,
    "logistic_softmax.sfst": LogisticRegression,
    "logistic_unfitted.sfst": LogisticRegression,
    "linear_regression.sfst": LinearRegression,
    "evaluator_classification.sfev": ClassificationEvaluator,
    "evaluator_binary.sfev": ClassificationEvaluator,
    "evaluator_regression.sfev": RegressionEvaluator,
    "featurizer.sffeats": Featurizer,
    "featurizer_empty.sffeats": Featurizer,
}


def blob(name: str) -> bytes:
    return (BLOBS / name).read_bytes()


def test_every_committed_blob_has_a_reader() -> None:
    assert sorted(p.name for p in BLOBS.iterdir()) == sorted(READERS)


@pytest.mark.parametrize("name", sorted(READERS))
def test_an_earlier_blob_loads_and_writes_back_the_same_bytes(name: str) -> None:
    old = blob(name)
    loaded = READERS[name].from_state(old)
    assert loaded.state() == old


@pytest.mark.parametrize("name", [n for n in sorted(READERS) if n.endswith(".sfst")])
def test_an_earlier_model_blob_loads_by_the_name_in_its_header(name: str) -> None:
    model = model_from_state(blob(name))
    assert type(model) is READERS[name]
    assert model.state() == blob(name)


def test_what_the_earlier_blobs_hold() -> None:
    softmax = LogisticRegression.from_state(blob("logistic_softmax.sfst"))
    assert len(softmax.classes) == 4 and "café" in softmax.classes
    evaluator = ClassificationEvaluator.from_state(blob("evaluator_classification.sfev"))
    assert evaluator.snapshot()["events_seen"] == 400
    featurizer = Featurizer.from_state(blob("featurizer.sffeats"))
    assert featurizer.schema == {
        "age": "numeric",
        "zip": "categorical",
        "note": "text",
        "ok": "boolean",
        "city": "categorical",
    }


def write_blobs(out: Path) -> None:
    """The blobs of ``state_blobs/``, made from seeded data."""
    rng = np.random.default_rng(17)
    n_features = 2**8

    def rows(n: int) -> sp.csr_matrix:
        idx = rng.integers(0, n_features, size=(n, 4))
        data = rng.normal(size=(n, 4))
        r = np.repeat(np.arange(n), 4)
        return sp.csr_matrix((data.ravel(), (r, idx.ravel())), shape=(n, n_features))

    X = rows(300)
    binary = LogisticRegression(n_features=n_features, learning_rate=0.2)
    binary.learn_many(X, np.where(X[:, :128].sum(axis=1).A1 > 0, "yes", "no").astype(object))
    (out / "logistic_binary.sfst").write_bytes(binary.state())
    softmax = LogisticRegression(n_features=n_features)
    labels = np.array([0, 1, 2, True, "café"], dtype=object)
    softmax.learn_many(X, labels[rng.integers(0, 5, size=300)])
    (out / "logistic_softmax.sfst").write_bytes(softmax.state())
    linear = LinearRegression(n_features=n_features, l2=0.001)
    linear.learn_many(X, X[:, :40].sum(axis=1).A1 * 2.0 + 1.0)
    (out / "linear_regression.sfst").write_bytes(linear.state())
    unfitted = LogisticRegression(n_features=n_features)
    (out / "logistic_unfitted.sfst").write_bytes(unfitted.state())

    multiclass = ClassificationEvaluator(window=50, auc_bins=64)
    y = rng.choice(np.array(["a", "b", "c"], dtype=object), 400)
    proba = rng.dirichlet(np.ones(3), 400)
    for start in range(0, 400, 70):
        multiclass.update(y[start : start + 70], proba[start : start + 70], ["a", "b", "c"])
    (out / "evaluator_classification.sfev").write_bytes(multiclass.state())
    binary_evaluator = ClassificationEvaluator(window=20, positive_label=True, auc_bins=32)
    truth = rng.random(90) < 0.4
    p = rng.random(90)
    binary_evaluator.update(truth.astype(object), np.column_stack([1 - p, p]), [False, True])
    (out / "evaluator_binary.sfev").write_bytes(binary_evaluator.state())
    regression = RegressionEvaluator(window=30)
    target = rng.normal(size=200)
    regression.update(target, target + rng.normal(scale=0.3, size=200))
    (out / "evaluator_regression.sfev").write_bytes(regression.state())

    spec = FeaturesSpec(
        types={"zip": "categorical", "note": "text"}, hash_bits=12, exclude=["debug_*"]
    )
    featurizer = Featurizer(spec, exclude=["label"])
    columns = zip(
        rng.normal(40, 10, 60).tolist(),
        rng.integers(1000, 1010, 60).tolist(),
        ["good film", "bad", None] * 20,
        [True, False, None] * 20,
        ["Zürich", "Genève", None, "Bern"] * 15,
        strict=True,
    )
    events = [
        {"age": a, "zip": z, "note": t, "ok": b, "label": 1, "debug_x": 3, "city": c}
        for a, z, t, b, c in columns
    ]
    messages = Messages.from_values([orjson.dumps(e) for e in events])
    featurizer.learn_transform(decode_json(messages, "label", "classification").batch)
    (out / "featurizer.sffeats").write_bytes(featurizer.state())
    (out / "featurizer_empty.sffeats").write_bytes(Featurizer(FeaturesSpec()).state())


if __name__ == "__main__":
    write_blobs(Path(sys.argv[1]))

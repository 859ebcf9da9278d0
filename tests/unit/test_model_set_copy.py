"""``ModelSet.copy``: what a server scores with while the worker goes on learning."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from streamfit.runtime.models import ModelSet
from streamfit.spec.model import BuiltinModelSpec


def _models() -> ModelSet:
    specs = [
        BuiltinModelSpec(name="lr", builtin="logistic_regression"),
        BuiltinModelSpec(name="binned", builtin="binned_logistic_regression"),
    ]
    return ModelSet(specs, "classification", 2**8)


def test_a_copy_predicts_as_the_set_did_and_does_not_learn_with_it() -> None:
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.normal(size=(200, 2**8)) * (rng.random((200, 2**8)) < 0.05))
    y = (np.asarray(X.sum(axis=1)).ravel() > 0).astype(np.int64)
    models = _models()
    models.predict_then_learn(X[:100], y[:100])
    copy = models.copy()
    before = [p.probability.tolist() for p in models.predict(X[100:])]
    assert [p.probability.tolist() for p in copy.predict(X[100:])] == before
    assert [(s.name, s.version) for s in copy.slots] == [("lr", 1), ("binned", 1)]
    models.predict_then_learn(X[100:], y[100:])
    assert [p.probability.tolist() for p in copy.predict(X[100:])] == before
    assert [p.probability.tolist() for p in models.predict(X[100:])] != before


def test_predict_names_the_models_to_ask() -> None:
    models = _models()
    X = sp.csr_matrix((3, 2**8))
    assert [p.name for p in models.predict(X, names={"binned"})] == ["binned"]
    assert [p.name for p in models.predict(X)] == ["lr", "binned"]

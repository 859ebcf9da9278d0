"""streamfit.evaluation: prequential metrics checked against scikit-learn."""

from __future__ import annotations

import math
import struct
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn import metrics as skm

import streamfit.evaluation as evaluation
from streamfit.errors import StateFormatError
from streamfit.evaluation import (
    ClassificationEvaluator,
    Evaluator,
    RegressionEvaluator,
    make_evaluator,
)

EXACT = 1e-9
AUC_TOL = 2e-3
EPS = float(np.finfo(np.float64).eps)


def batches(n: int, rng: np.random.Generator, largest: int = 700) -> Iterator[slice]:
    """Random-size consecutive slices covering ``range(n)`` (some of size 1)."""
    start = 0
    while start < n:
        size = int(rng.integers(1, largest))
        yield slice(start, min(n, start + size))
        start += size


def close(got: float | None, want: float | None, tol: float = EXACT) -> bool:
    if got is None or want is None:
        return got is want
    return math.isclose(got, want, rel_tol=tol, abs_tol=tol)


def binary_stream(
    n: int, rng: np.random.Generator, labels: list[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """Labels from ``labels`` (negative, positive) and informative probabilities."""
    p1 = rng.beta(2.0, 2.0, n)
    positive = rng.random(n) < 0.15 + 0.7 * p1
    y = np.array([labels[1] if v else labels[0] for v in positive], dtype=object)
    return y, np.column_stack([1.0 - p1, p1])


def sk_classification(
    y: npt.NDArray[Any], proba: npt.NDArray[np.float64], classes: list[Any], positive: Any
) -> dict[str, float]:
    """The figures scikit-learn gives over all rows (binary: of ``positive``)."""
    y_pred = np.array(classes, dtype=object)[proba.argmax(axis=1)]
    y_list, pred_list = y.tolist(), y_pred.tolist()
    order = sorted(range(len(classes)), key=lambda j: classes[j])
    if len(classes) == 2:
        kw: dict[str, Any] = {"pos_label": positive, "zero_division": 0}
        scores = proba[:, classes.index(positive)]
        auc = skm.roc_auc_score([v == positive for v in y_list], scores)
    else:
        kw = {"average": "macro", "zero_division": 0}
        auc = macro_ovr_auc(y, proba, classes)
    return {
        "accuracy": skm.accuracy_score(y_list, pred_list),
        "precision": skm.precision_score(y_list, pred_list, **kw),
        "recall": skm.recall_score(y_list, pred_list, **kw),
        "f1": skm.f1_score(y_list, pred_list, **kw),
        # log_loss takes its columns in sorted label order
        "log_loss": skm.log_loss(y_list, proba[:, order], labels=[classes[j] for j in order]),
        "roc_auc": auc,
    }


def macro_ovr_auc(y: npt.NDArray[Any], proba: npt.NDArray[np.float64], classes: list[Any]) -> float:
    """One-vs-rest ROC AUC averaged over the classes with positive and negative rows."""
    aucs = []
    for j, label in enumerate(classes):
        truth = np.array([v == label for v in y.tolist()])
        if 0 < truth.sum() < len(truth):
            aucs.append(skm.roc_auc_score(truth, proba[:, j]))
    return float(np.mean(aucs))


def check_against(snap: dict[str, float | None], want: dict[str, float], prefix: str) -> None:
    for name, value in want.items():
        tol = AUC_TOL if name == "roc_auc" and not prefix else EXACT
        assert close(snap[prefix + name], value, tol), (prefix + name, snap[prefix + name], value)


# --------------------------------------------------------------------------- binary


@pytest.mark.parametrize(
    ("labels", "positive"),
    [
        ([False, True], True),
        ([0, 1], 1),
        (["no", "yes"], "yes"),
        (["spam", "ham"], "spam"),  # second in sorted order, whatever the class order
    ],
)
def test_binary_matches_sklearn(labels: list[Any], positive: Any) -> None:
    rng = np.random.default_rng(7)
    n, window = 20_000, 1000
    y, proba = binary_stream(n, rng, labels)
    if isinstance(labels[0], bool):
        y = y.astype(bool)
    elif isinstance(labels[0], int):
        y = y.astype(np.int64)
    ev = ClassificationEvaluator(window=window)
    for part in batches(n, rng, largest=3000):
        ev.update(y[part], proba[part], labels)
    assert ev.positive_label == positive
    snap = ev.snapshot()
    assert snap["events_seen"] == n
    check_against(snap, sk_classification(y, proba, labels, positive), "")
    tail = slice(n - window, n)
    check_against(snap, sk_classification(y[tail], proba[tail], labels, positive), "window_")


def test_cumulative_auc_histogram_is_accurate_on_random_scores() -> None:
    rng = np.random.default_rng(11)
    n = 50_000
    for _ in range(3):
        scores = rng.random(n)
        truth = rng.random(n) < 0.3 + 0.4 * scores * rng.random()
        ev = ClassificationEvaluator()
        for part in batches(n, rng, largest=5000):
            ev.update(truth[part], np.column_stack([1 - scores[part], scores[part]]), [False, True])
        got = ev.snapshot()["roc_auc"]
        assert got is not None
        assert abs(got - skm.roc_auc_score(truth, scores)) < 1e-3


def test_window_before_it_fills_and_after_big_batches() -> None:
    rng = np.random.default_rng(3)
    labels = ["a", "b"]
    y, proba = binary_stream(5000, rng, labels)
    ev = ClassificationEvaluator(window=300)
    seen = 0
    for size in [10, 50, 1000, 1, 299, 300, 301, 2000]:
        part = slice(seen, seen + size)
        ev.update(y[part], proba[part], labels)
        seen += size
        tail = slice(max(0, seen - 300), seen)
        want = sk_classification(y[tail], proba[tail], labels, "b")
        if len(set(y[tail].tolist())) < 2:
            del want["roc_auc"]
        check_against(ev.snapshot(), want, "window_")


def test_explicit_positive_label() -> None:
    rng = np.random.default_rng(5)
    y, proba = binary_stream(4000, rng, ["no", "yes"])
    ev = ClassificationEvaluator(positive_label="no")
    ev.update(y, proba, ["no", "yes"])
    assert ev.positive_label == "no"
    check_against(ev.snapshot(), sk_classification(y, proba, ["no", "yes"], "no"), "")


def test_positive_label_unknown_with_one_string_label() -> None:
    ev = ClassificationEvaluator()
    ev.update(np.array(["x", "x"], dtype=object), np.ones((2, 1)), ["x"])
    snap = ev.snapshot()
    assert ev.positive_label is None
    assert snap["accuracy"] == 1.0
    assert snap["precision"] is snap["recall"] is snap["f1"] is None
    assert snap["roc_auc"] is None and snap["window_roc_auc"] is None


def test_label_never_predicted() -> None:
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 2000)
    p1 = rng.random(2000) * 0.49  # never above 0.5: class 1 is never predicted
    proba = np.column_stack([1 - p1, p1])
    ev = ClassificationEvaluator(window=500)
    for part in batches(2000, rng):
        ev.update(y[part], proba[part], [0, 1])
    snap = ev.snapshot()
    assert snap["precision"] == snap["recall"] == snap["f1"] == 0.0
    assert snap["window_precision"] == snap["window_recall"] == snap["window_f1"] == 0.0
    check_against(snap, sk_classification(y, proba, [0, 1], 1), "")


def test_single_class_stream_has_no_auc() -> None:
    ev = ClassificationEvaluator(window=10)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p1 = rng.random(40)
        ev.update(np.ones(40, dtype=bool), np.column_stack([1 - p1, p1]), [False, True])
    snap = ev.snapshot()
    assert snap["roc_auc"] is None and snap["window_roc_auc"] is None
    assert snap["log_loss"] is not None and snap["accuracy"] is not None
    assert snap["recall"] is not None and 0.0 < snap["recall"] < 1.0


def test_only_negatives_so_far_has_zero_recall_and_no_auc() -> None:
    ev = ClassificationEvaluator()
    ev.update(np.zeros(3, dtype=np.int64), np.array([[0.9, 0.1]] * 3), [0, 1])
    snap = ev.snapshot()
    assert ev.positive_label == 1
    assert snap["recall"] == 0.0 and snap["roc_auc"] is None


# --------------------------------------------------------------------------- multiclass


def test_multiclass_matches_sklearn() -> None:
    rng = np.random.default_rng(21)
    n, window, classes = 20_000, 700, ["cat", "dog", "eel", "fox"]
    y = rng.choice(np.array(classes, dtype=object), n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), [classes.index(v) for v in y]] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ev = ClassificationEvaluator(window=window)
    for part in batches(n, rng):
        ev.update(y[part], proba[part], classes)
    snap = ev.snapshot()
    want = sk_classification(y, proba, classes, None)
    assert close(
        want["roc_auc"],
        skm.roc_auc_score(y.tolist(), proba, multi_class="ovr", average="macro", labels=classes),
    )
    check_against(snap, want, "")
    tail = slice(n - window, n)
    check_against(snap, sk_classification(y[tail], proba[tail], classes, None), "window_")


def test_classes_appear_later_and_labels_the_model_never_saw() -> None:
    """The model learns 'c' late and never learns 'd'; rows it could not score for a label
    are left out of that label's ranking (ROC AUC) and count as probability 0 elsewhere."""
    rng = np.random.default_rng(4)
    every = ["a", "b", "c", "d"]
    y_parts, p_parts, had_parts = [], [], []
    ev = ClassificationEvaluator(window=400)
    for step in range(40):
        n = int(rng.integers(1, 120))
        pool = every[:3] if step < 20 else every
        y = rng.choice(np.array(pool, dtype=object), n)
        classes = ["b", "a"] if step < 10 else ["a", "c", "b"]  # any column order
        proba = rng.dirichlet(np.ones(len(classes)), n)
        ev.update(y, proba, classes)
        full = np.zeros((n, len(every)))
        full[:, [every.index(c) for c in classes]] = proba
        y_parts.append(y)
        p_parts.append(full)
        had_parts.append(np.tile([c in classes for c in every], (n, 1)))
    y_all, p_all = np.concatenate(y_parts), np.vstack(p_parts)
    had = np.vstack(had_parts)
    assert ev.labels == ["b", "a", "c", "d"]
    snap = ev.snapshot()
    want = sk_classification(y_all, p_all, every, None)
    aucs = [
        skm.roc_auc_score(y_all[had[:, j]] == label, p_all[had[:, j], j])
        for j, label in enumerate(every)
        if had[:, j].any() and len(set((y_all[had[:, j]] == label).tolist())) == 2
    ]
    want["roc_auc"] = float(np.mean(aucs))
    # log loss: a label the model never had gets probability 0, clipped to eps
    check_against(snap, want, "")
    assert "d" in y_all.tolist()  # never predicted, never a class, yet counted
    tail = slice(len(y_all) - 400, len(y_all))
    check_against(snap, sk_classification(y_all[tail], p_all[tail], every, None), "window_")


def test_growing_from_binary_to_multiclass_switches_to_macro() -> None:
    ev = ClassificationEvaluator()
    ev.update(np.array([0, 1]), np.array([[0.7, 0.3], [0.2, 0.8]]), [0, 1])
    assert ev.snapshot()["f1"] == 1.0
    ev.update(np.array([2]), np.array([[0.5, 0.4, 0.1]]), [0, 1, 2])
    y, pred = [0, 1, 2], [0, 1, 0]
    assert close(ev.snapshot()["f1"], skm.f1_score(y, pred, average="macro", zero_division=0))


def test_no_classes_yet_counts_as_wrong() -> None:
    ev = ClassificationEvaluator()
    ev.update(np.array(["a", "b"], dtype=object), np.zeros((2, 0)), [])
    snap = ev.snapshot()
    assert snap["accuracy"] == 0.0 and snap["window_accuracy"] == 0.0
    assert close(snap["log_loss"], -math.log(EPS))
    assert snap["precision"] == 0.0  # no prediction of "b", the positive label


def test_empty_before_any_event_and_empty_batches() -> None:
    ev = ClassificationEvaluator()
    ev.update(np.array([], dtype=object), np.zeros((0, 2)), ["a", "b"])
    snap = ev.snapshot()
    assert snap["events_seen"] == 0
    assert all(v is None for k, v in snap.items() if k != "events_seen")
    assert set(snap) == {"events_seen"} | {
        prefix + name for prefix in ("", "window_") for name in evaluation.CLASSIFICATION_METRICS
    }


def test_bad_input_is_rejected() -> None:
    ev = ClassificationEvaluator()
    with pytest.raises(ValueError, match="shape"):
        ev.update(np.array([1, 0]), np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="twice"):
        ev.update(np.array([1]), np.zeros((1, 2)), [1, 1])
    with pytest.raises(ValueError, match="window"):
        ClassificationEvaluator(window=0)


# --------------------------------------------------------------------------- state and merge


def feed(ev: ClassificationEvaluator, seed: int, n: int, classes: list[Any]) -> None:
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(classes, dtype=object), n)
    proba = rng.dirichlet(np.ones(len(classes)), n)
    for part in batches(n, rng, largest=300):
        ev.update(y[part], proba[part], classes)


def test_classification_state_round_trip_is_bit_exact() -> None:
    ev = ClassificationEvaluator(window=250, positive_label=None)
    feed(ev, 1, 1234, ["x", "y"])
    blob = ev.state()
    back = ClassificationEvaluator.from_state(blob)
    assert back.state() == blob
    assert back.snapshot() == ev.snapshot()
    for e in (ev, back):
        feed(e, 2, 777, ["x", "y", 3, True])
    assert back.state() == ev.state()
    assert back.snapshot() == ev.snapshot()


@pytest.mark.parametrize("labels", [[False, True], [0, 1], [0.5, 2.5], ["a", None]])
def test_label_types_survive_the_state(labels: list[Any]) -> None:
    ev = ClassificationEvaluator(window=5)
    feed(ev, 3, 50, labels)
    back = ClassificationEvaluator.from_state(ev.state())
    assert back.labels == ev.labels
    assert [type(v) for v in back.labels] == [type(v) for v in ev.labels]


def test_corrupt_or_foreign_state_is_refused() -> None:
    ev = ClassificationEvaluator()
    feed(ev, 4, 100, ["a", "b"])
    blob = ev.state()
    with pytest.raises(StateFormatError, match="checksum"):
        ClassificationEvaluator.from_state(blob[:-5] + b"X" + blob[-4:])
    with pytest.raises(StateFormatError, match=r"truncated|checksum"):
        ClassificationEvaluator.from_state(blob[:8])
    with pytest.raises(StateFormatError, match="magic"):
        ClassificationEvaluator.from_state(b"PK" + blob[2:])
    with pytest.raises(StateFormatError, match="version"):
        ClassificationEvaluator.from_state(blob[:4] + struct.pack("<H", 99) + blob[6:])
    with pytest.raises(StateFormatError, match="regression"):
        ClassificationEvaluator.from_state(RegressionEvaluator().state())


def test_unsaveable_label_type_is_reported() -> None:
    ev = ClassificationEvaluator()
    y = np.empty(2, dtype=object)
    y[0] = y[1] = (1, 2)
    ev.update(y, np.ones((2, 1)), [(1, 2)])
    with pytest.raises(StateFormatError, match="tuple"):
        ev.state()


def test_merge_equals_one_evaluator_over_both_streams() -> None:
    left, right, both = (ClassificationEvaluator(window=300) for _ in range(3))
    rng = np.random.default_rng(8)
    classes = ["a", "b", "c"]
    y = rng.choice(np.array(classes, dtype=object), 3000)
    proba = rng.dirichlet(np.ones(3), 3000)
    first, second = slice(0, 1700), slice(1700, 3000)
    left.update(
        y[first], proba[first][:, :2] / proba[first][:, :2].sum(1, keepdims=True), ["a", "b"]
    )
    right.update(y[second], proba[second], classes)
    both.update(
        y[first], proba[first][:, :2] / proba[first][:, :2].sum(1, keepdims=True), ["a", "b"]
    )
    both.update(y[second], proba[second], classes)
    left.merge(right)
    merged, whole = left.snapshot(), both.snapshot()
    for name in evaluation.CLASSIFICATION_METRICS:
        assert close(merged[name], whole[name], 1e-12), name
    assert merged["events_seen"] == 3000
    # the window is the last rows of the concatenation: here, right's last 300
    for name in evaluation.CLASSIFICATION_METRICS:
        assert close(merged[f"window_{name}"], whole[f"window_{name}"], 1e-12), name


def test_merge_window_is_the_concatenation() -> None:
    left, right = ClassificationEvaluator(window=100), ClassificationEvaluator(window=100)
    feed(left, 1, 500, [0, 1])
    feed(right, 2, 60, [0, 1])
    ref = ClassificationEvaluator(window=100)
    rng = np.random.default_rng(1)
    y = rng.choice(np.array([0, 1], dtype=object), 500)
    proba = rng.dirichlet(np.ones(2), 500)
    ref.update(y[-40:], proba[-40:], [0, 1])
    rng = np.random.default_rng(2)
    ref.update(
        rng.choice(np.array([0, 1], dtype=object), 60), rng.dirichlet(np.ones(2), 60), [0, 1]
    )
    left.merge(right)
    got, want = left.snapshot(), ref.snapshot()
    for name in evaluation.CLASSIFICATION_METRICS:
        assert got[f"window_{name}"] == want[f"window_{name}"], name


def test_merge_refuses_different_positive_labels() -> None:
    with pytest.raises(ValueError, match="positive"):
        ClassificationEvaluator(positive_label="a").merge(
            ClassificationEvaluator(positive_label="b")
        )


# --------------------------------------------------------------------------- regression


def sk_regression(y: npt.NDArray[np.float64], pred: npt.NDArray[np.float64]) -> dict[str, float]:
    return {
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
        "r2": skm.r2_score(y, pred),
    }


@pytest.mark.parametrize("offset", [0.0, 1e9])
def test_regression_matches_sklearn(offset: float) -> None:
    rng = np.random.default_rng(12)
    n, window = 30_000, 1000
    y = offset + rng.normal(3.0, 2.0, n)
    pred = y + rng.normal(0.0, 1.0, n)
    ev = RegressionEvaluator(window=window)
    for part in batches(n, rng):
        ev.update(y[part], pred[part])
    snap = ev.snapshot()
    assert snap["events_seen"] == n
    check_against(snap, sk_regression(y, pred), "")
    check_against(snap, sk_regression(y[-window:], pred[-window:]), "window_")


def test_regression_constant_target_has_no_r2() -> None:
    ev = RegressionEvaluator(window=3)
    ev.update(np.full(5, 2.0), np.array([1.0, 2.0, 3.0, 2.0, 2.0]))
    snap = ev.snapshot()
    assert snap["r2"] is None and snap["window_r2"] is None
    assert close(snap["mae"], 0.4) and close(snap["window_rmse"], math.sqrt(1 / 3))


def test_regression_state_round_trip_and_merge() -> None:
    rng = np.random.default_rng(13)
    y, pred = rng.normal(size=4000), rng.normal(size=4000)
    ev = RegressionEvaluator(window=128)
    ev.update(y[:2500], pred[:2500])
    blob = ev.state()
    back = RegressionEvaluator.from_state(blob)
    assert back.state() == blob and back.snapshot() == ev.snapshot()
    for e in (ev, back):
        e.update(y[2500:3000], pred[2500:3000])
    assert back.state() == ev.state()

    other = RegressionEvaluator(window=128)
    other.update(y[3000:], pred[3000:])
    ev.merge(other)
    check_against(ev.snapshot(), sk_regression(y, pred), "")
    check_against(ev.snapshot(), sk_regression(y[-128:], pred[-128:]), "window_")
    with pytest.raises(StateFormatError):
        RegressionEvaluator.from_state(ClassificationEvaluator().state())


# --------------------------------------------------------------------------- factory, API


def test_make_evaluator() -> None:
    clf = make_evaluator("classification", 50, positive_label="yes")
    reg = make_evaluator("regression", 60)
    assert isinstance(clf, ClassificationEvaluator) and clf.window == 50
    assert isinstance(reg, RegressionEvaluator) and reg.window == 60
    assert isinstance(clf, Evaluator) and isinstance(reg, Evaluator)
    with pytest.raises(ValueError, match="task"):
        make_evaluator("ranking", 10)  # type: ignore[call-overload]


def test_public_names() -> None:
    public = {
        name
        for name, value in vars(evaluation).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - {"annotations"}
    assert sorted(evaluation.__all__) == sorted(public)


def test_nan_probabilities_count_as_zero() -> None:
    ev = ClassificationEvaluator()
    ev.update(np.array([0, 1, 1]), np.array([[np.nan, np.nan], [0.2, 0.8], [0.6, 0.4]]), [0, 1])
    snap = ev.snapshot()
    assert all(v is not None and math.isfinite(v) for v in snap.values())
    assert close(snap["log_loss"], (-math.log(EPS) - math.log(0.8) - math.log(0.4)) / 3)


def test_average_ranks_are_scipys() -> None:
    from scipy.stats import rankdata

    from streamfit.evaluation.metrics import _average_ranks

    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 1000):
        for values in (rng.random(n), np.round(rng.random(n), 1), np.zeros(n)):
            assert np.array_equal(_average_ranks(values), rankdata(values))

"""Compiled per-event inner loops of the built-in learners (numba).

Why our own loops: River's semantics (predict an event with the model as it was just before
it, learn it right after) are sequential by nature, and a Python loop over events runs at a
few thousand events a second. These loops walk a block's CSR rows one at a time, in row
order, at compiled speed: each row is scored, its prediction recorded, then the row is
learned (AdaGrad per coordinate), before the next row is scored. No parallelism and no
``fastmath``: the same rows in the same order give the same floats, bit for bit, which is
what makes replays exact.

Shapes: ``W`` and ``G`` are ``(n_features, n_cols)`` (one column for a sigmoid or a
regression, one per class for a softmax), ``b`` and ``Gb`` ``(n_cols,)``; ``out`` receives
one row per event: the probability of class 1 (sigmoid), every class (softmax) or the
regression's prediction, computed before the event is learned.

The AdaGrad step for a coordinate ``j`` touched by the event with value ``x`` and residual
``r`` (prediction minus target) is ``G += (r x)**2; w -= lr * (r x + l2 w) / (sqrt(G) + eps)``;
the intercept takes the same step with ``r`` and its own rate.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["linear_prequential", "softmax_prequential"]

_EPS = 1e-8


@numba.njit(nogil=True, cache=True, error_model="numpy")
def linear_prequential(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    target: np.ndarray,
    W: np.ndarray,
    G: np.ndarray,
    b: np.ndarray,
    Gb: np.ndarray,
    lr: float,
    blr: float,
    l2: float,
    logistic: bool,
    out: np.ndarray,
) -> None:
    """One weight column: a sigmoid (``logistic``, targets 0/1) or a linear regression."""
    n = indptr.shape[0] - 1
    for i in range(n):
        lo = indptr[i]
        hi = indptr[i + 1]
        z = b[0]
        for e in range(lo, hi):
            z += data[e] * W[indices[e], 0]
        if logistic:
            if z >= 0.0:
                p = 1.0 / (1.0 + math.exp(-z))
            else:
                ez = math.exp(z)
                p = ez / (1.0 + ez)
        else:
            p = z
        out[i] = p
        r = p - target[i]
        for e in range(lo, hi):
            j = indices[e]
            g = r * data[e]
            G[j, 0] += g * g
            w = W[j, 0]
            W[j, 0] = w - lr * (g + l2 * w) / (math.sqrt(G[j, 0]) + _EPS)
        if blr > 0.0:
            Gb[0] += r * r
            b[0] -= blr * r / (math.sqrt(Gb[0]) + _EPS)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def softmax_prequential(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    target: np.ndarray,
    W: np.ndarray,
    G: np.ndarray,
    b: np.ndarray,
    Gb: np.ndarray,
    lr: float,
    blr: float,
    l2: float,
    out: np.ndarray,
) -> None:
    """A softmax over ``W.shape[1]`` classes; ``target`` holds class positions."""
    n = indptr.shape[0] - 1
    k = W.shape[1]
    z = np.empty(k)
    for i in range(n):
        lo = indptr[i]
        hi = indptr[i + 1]
        for c in range(k):
            z[c] = b[c]
        for e in range(lo, hi):
            j = indices[e]
            x = data[e]
            for c in range(k):
                z[c] += x * W[j, c]
        top = z[0]
        for c in range(1, k):
            if z[c] > top:
                top = z[c]
        total = 0.0
        for c in range(k):
            z[c] = math.exp(z[c] - top)
            total += z[c]
        for c in range(k):
            z[c] /= total
            out[i, c] = z[c]
        z[target[i]] -= 1.0  # z now holds the residuals
        for e in range(lo, hi):
            j = indices[e]
            x = data[e]
            for c in range(k):
                g = z[c] * x
                G[j, c] += g * g
                w = W[j, c]
                W[j, c] = w - lr * (g + l2 * w) / (math.sqrt(G[j, c]) + _EPS)
        if blr > 0.0:
            for c in range(k):
                r = z[c]
                Gb[c] += r * r
                b[c] -= blr * r / (math.sqrt(Gb[c]) + _EPS)

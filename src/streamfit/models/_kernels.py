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
``r`` (prediction minus target) is ``g = r x + l2 w; G += g**2; w -= lr * g / (sqrt(G) + eps)``
(the L2 term is part of the accumulated gradient, so no step is larger than ``lr``); the
intercept takes the same step with ``r`` and its own rate.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["linear_prequential", "softmax_prequential", "target_scaling"]

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
        norm = 0.0
        for e in range(lo, hi):
            z += data[e] * W[indices[e], 0]
            norm += data[e] * data[e]
        rate = lr / math.sqrt(max(norm, 1.0))
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
            g = r * data[e] + l2 * W[j, 0]
            G[j, 0] += g * g
            W[j, 0] -= rate * g / (math.sqrt(G[j, 0]) + _EPS)
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
        norm = 0.0
        for e in range(lo, hi):
            j = indices[e]
            x = data[e]
            norm += x * x
            for c in range(k):
                z[c] += x * W[j, c]
        rate = lr / math.sqrt(max(norm, 1.0))
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
                g = z[c] * x + l2 * W[j, c]
                G[j, c] += g * g
                W[j, c] -= rate * g / (math.sqrt(G[j, c]) + _EPS)
        if blr > 0.0:
            for c in range(k):
                r = z[c]
                Gb[c] += r * r
                b[c] -= blr * r / (math.sqrt(Gb[c]) + _EPS)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def target_scaling(
    target: np.ndarray, moments: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event, in order: the target's mean and deviation before it (what the prediction
    made before learning it is scaled back with; 0 and 1 before any), then the target learned
    into ``moments`` (count, mean, m2; in place, Welford) and standardized with the moments
    that include it (as River's ``TargetStandardScaler``): ``(shift, scale, standardized)``."""
    n = target.shape[0]
    shift, scale, standardized = np.empty(n), np.empty(n), np.empty(n)
    c, mu, s = moments[0], moments[1], moments[2]
    for i in range(n):
        shift[i] = mu
        scale[i] = math.sqrt(s / c) if c > 1.0 and s > 0.0 else 1.0
        y = target[i]
        c += 1.0
        delta = y - mu
        mu += delta / c
        s += delta * (y - mu)
        sd = math.sqrt(s / c) if c > 1.0 and s > 0.0 else 1.0
        standardized[i] = (y - mu) / sd
    moments[0], moments[1], moments[2] = c, mu, s
    return shift, scale, standardized


@numba.njit(inline="always")
def _mix(key: np.uint64) -> np.uint64:
    """A 64-bit finalizer (splitmix64): spreads a key over all bits."""
    key ^= key >> np.uint64(30)
    key *= np.uint64(0xBF58476D1CE4E5B9)
    key ^= key >> np.uint64(27)
    key *= np.uint64(0x94D049BB133111EB)
    key ^= key >> np.uint64(31)
    return key


@numba.njit(nogil=True, cache=True, error_model="numpy")
def expand_binned(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    width: int,
    bins: int,
    low: float,
    high: float,
    cross_limit: int,
    cross_bins: int,
    tilings: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's entries, then one indicator per entry for the bin its value falls in, then
    (for rows of at most ``cross_limit`` entries) one indicator per pair of entries for the
    pair of their coarse bins; indicators hash into ``[0, width)``."""
    n = indptr.shape[0] - 1
    size = 0
    for i in range(n):
        m = indptr[i + 1] - indptr[i]
        size += (1 + tilings) * m
        if m <= cross_limit:
            size += m * (m - 1) // 2
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    out_idx = np.empty(size, dtype=np.int64)
    out_val = np.empty(size)
    span = (high - low) / bins
    coarse = (high - low) / cross_bins
    wide = np.uint64(width)
    at = 0
    for i in range(n):
        lo = indptr[i]
        hi = indptr[i + 1]
        for e in range(lo, hi):
            out_idx[at] = indices[e]
            out_val[at] = data[e]
            at += 1
        share = 1.0 / tilings
        for t in range(tilings):
            shift = t / tilings  # each tiling's grid is moved by a fraction of a bin
            for e in range(lo, hi):
                b = int((min(max(data[e], low), high) - low) / span + shift)
                key = np.uint64(indices[e]) * np.uint64(bins + 1) + np.uint64(min(b, bins))
                key = key * np.uint64(tilings) + np.uint64(t)
                out_idx[at] = np.int64(_mix(key ^ np.uint64(0x5BD1E995)) % wide)
                out_val[at] = share
                at += 1
        if hi - lo <= cross_limit:
            for e in range(lo, hi):
                be = min(int((min(max(data[e], low), high) - low) / coarse), cross_bins - 1)
                ke = np.uint64(indices[e]) * np.uint64(cross_bins) + np.uint64(be)
                for f in range(e + 1, hi):
                    bf = min(int((min(max(data[f], low), high) - low) / coarse), cross_bins - 1)
                    kf = np.uint64(indices[f]) * np.uint64(cross_bins) + np.uint64(bf)
                    key = _mix(_mix(ke) ^ kf)
                    out_idx[at] = np.int64(key % wide)
                    out_val[at] = 1.0
                    at += 1
        out_ptr[i + 1] = at
    return out_ptr, out_idx, out_val

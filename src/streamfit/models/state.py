"""The binary state format of streamfit models (``SFST``, version 1).

Every model's ``state()`` returns one blob in this format, and ``from_state`` reads it back.
It is not pickle: a built-in learner's state is a JSON header plus raw arrays, readable by any
release that knows the format version, and bit-exact (``state()`` of a restored model equals
the original's, byte for byte). Adapters of third-party libraries (River, scikit-learn) keep
their estimator as a pickle *inside* the same frame (``kind: "pickle"``), tied to the library
version that wrote it (see ``check_library``).

Layout: the envelope of :mod:`streamfit._envelope` (all integers little-endian)::

    offset  size  field
    0       4     magic            b"SFST"
    4       2     format version   u16, currently 1
    6       4     header length H  u32
    10      H     header           UTF-8 JSON object (keys sorted, no spaces)
    10+H    P     payload          arrays, one after another, or one pickle
    10+H+P  4     checksum         u32 CRC-32 of every byte before it

Header keys:

``model``
    which reader to use: ``"builtin.LogisticRegression"``, ``"builtin.LinearRegression"``,
    ``"river"``, ``"sklearn"``.
``kind``
    ``"arrays"`` (payload = the arrays listed in ``arrays``) or ``"pickle"`` (payload = one
    pickle, protocol 5).
``params``
    the model's constructor arguments (JSON values).
``classes``
    the labels a classifier has seen, in column order, each as ``[type, value]`` with type
    ``"str"``, ``"int"``, ``"bool"`` or ``"float"`` so that ``1``, ``True`` and ``"1"`` come
    back as they went in.
``counters``
    integers such as ``n_seen`` (events learned).
``arrays``
    ``[{"name", "dtype", "shape"}]`` in payload order; ``dtype`` is a little-endian numpy
    type string (``"<f8"``, ``"<i8"``), C order.
``library``
    for ``kind: "pickle"``: ``{"name": "river", "version": "0.26.1"}``.
``extra``
    any other JSON a model needs (an adapter's label mapping, ...).
``streamfit``
    the streamfit version that wrote the blob (informational).

Unknown magic, an unknown format version, a bad checksum, a truncated blob or a header that
does not describe the payload all raise ``StateFormatError``.

>>> import numpy as np
>>> blob = encode_state(
...     "builtin.Example", params={"l2": 0.0}, classes=["a", 1, True],
...     counters={"n_seen": 3}, arrays={"w": np.arange(3.0)},
... )
>>> blob[:4]
b'SFST'
>>> state = decode_state(blob)
>>> state.model, state.classes, state.arrays["w"].tolist()
('builtin.Example', ['a', 1, True], [0.0, 1.0, 2.0])
>>> decode_state(blob[:-1])
Traceback (most recent call last):
...
streamfit.errors.StateFormatError: model state: checksum mismatch (corrupt or truncated blob)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

from streamfit import __version__
from streamfit._envelope import pack_arrays, seal, unpack_arrays, unseal
from streamfit.errors import StateFormatError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "DecodedState",
    "check_library",
    "decode_labels",
    "decode_state",
    "encode_labels",
    "encode_state",
    "peek_model",
]

MAGIC = b"SFST"
FORMAT_VERSION = 1
_WHAT = "model state"


@dataclass(frozen=True, slots=True)
class DecodedState:
    """A state blob, read: its header fields and its arrays (or pickle payload)."""

    model: str
    kind: str
    params: dict[str, Any]
    classes: list[object]
    counters: dict[str, int]
    arrays: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    payload: bytes = b""
    library: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def encode_labels(labels: Sequence[object]) -> list[list[object]]:
    """Labels as ``[type, value]`` pairs that survive JSON with their type.

    >>> encode_labels(["a", 1, True, 2.5])
    [['str', 'a'], ['int', 1], ['bool', True], ['float', 2.5]]
    """
    out: list[list[object]] = []
    for label in labels:
        if isinstance(label, bool):
            out.append(["bool", label])
        elif isinstance(label, int):
            out.append(["int", label])
        elif isinstance(label, str):
            out.append(["str", label])
        elif isinstance(label, float):
            out.append(["float", label])
        else:
            raise StateFormatError(
                f"model state: a class label must be str, int, bool or float, got {label!r}"
            )
    return out


def decode_labels(pairs: object) -> list[object]:
    """The inverse of ``encode_labels``.

    >>> decode_labels([["bool", False], ["int", 0]])
    [False, 0]
    """
    if not isinstance(pairs, list):
        raise StateFormatError("model state: 'classes' is not a list")
    types: dict[str, type] = {"str": str, "int": int, "bool": bool, "float": float}
    out: list[object] = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and pair[0] in types):
            raise StateFormatError(f"model state: bad class entry {pair!r}")
        want = types[pair[0]]
        value = pair[1]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not want:
            raise StateFormatError(f"model state: class entry {pair!r} is not a {pair[0]}")
        out.append(value)
    return out


def encode_state(
    model: str,
    *,
    params: Mapping[str, Any],
    classes: Sequence[object] = (),
    counters: Mapping[str, int] | None = None,
    arrays: Mapping[str, npt.NDArray[Any]] | None = None,
    payload: bytes | None = None,
    library: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """One state blob. Give ``arrays`` (kind ``"arrays"``) or ``payload`` (kind ``"pickle"``)."""
    if arrays is not None and payload is not None:
        raise ValueError("give arrays or a pickle payload, not both")
    descr, chunks = pack_arrays(arrays or {}, _WHAT)
    header: dict[str, Any] = {
        "model": model,
        "kind": "pickle" if payload is not None else "arrays",
        "params": dict(params),
        "classes": encode_labels(classes),
        "counters": dict(counters or {}),
        "arrays": descr,
        "library": dict(library or {}),
        "extra": dict(extra or {}),
        "streamfit": __version__,
    }
    try:
        head = json.dumps(
            header, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StateFormatError(f"model state: header is not plain JSON: {exc}") from exc
    return seal(MAGIC, FORMAT_VERSION, head, payload or b"", *chunks)


def peek_model(blob: bytes) -> str:
    """The ``model`` named in a blob's header (to pick the class that reads it)."""
    model = unseal(blob, MAGIC, FORMAT_VERSION, _WHAT).header.get("model")
    if not isinstance(model, str):
        raise StateFormatError("model state: header has no 'model' name")
    return model


def decode_state(blob: bytes, expect_model: str | None = None) -> DecodedState:
    """Read a blob; with ``expect_model``, also check it holds that model."""
    opened = unseal(blob, MAGIC, FORMAT_VERSION, _WHAT)
    header = opened.header
    try:
        model = header["model"]
        kind = header["kind"]
        params = header["params"]
        counters = header["counters"]
        descr = header["arrays"]
        library = header["library"]
        extra = header["extra"]
    except KeyError as exc:
        raise StateFormatError(f"model state: header lacks {exc}") from exc
    if expect_model is not None and model != expect_model:
        raise StateFormatError(f"model state: holds a {model!r} model, not a {expect_model!r}")
    if not (
        isinstance(params, dict)
        and isinstance(counters, dict)
        and isinstance(library, dict)
        and isinstance(extra, dict)
    ):
        raise StateFormatError(
            "model state: params, counters, library and extra must be JSON objects"
        )
    if not all(isinstance(v, int) for v in counters.values()):
        raise StateFormatError("model state: counters must be integers")
    classes = decode_labels(header.get("classes", []))
    if kind == "pickle":
        return DecodedState(
            model, kind, params, classes, counters, {}, opened.payload, library, extra
        )
    if kind != "arrays":
        raise StateFormatError(f"model state: unknown payload kind {kind!r}")
    arrays = unpack_arrays(opened.payload, descr, _WHAT)
    return DecodedState(model, kind, params, classes, counters, arrays, b"", library, extra)


def check_library(state: DecodedState, name: str, installed: str) -> None:
    """Refuse a pickled estimator written by another major.minor of library ``name``.

    >>> old = {"name": "river", "version": "0.1.0"}
    >>> check_library(DecodedState("river", "pickle", {}, [], {}, library=old), "river", "0.26.1")
    Traceback (most recent call last):
    ...
    streamfit.errors.StateFormatError: model state: written with river 0.1.0, \
this is river 0.26.1; pickled river models load only in the same major.minor version \
(retrain, or use river 0.1)
    """
    written = state.library.get("version", "")
    if state.library.get("name") != name or not written:
        raise StateFormatError(f"model state: no {name} version recorded in the header")
    if written.split(".")[:2] != installed.split(".")[:2]:
        minor = ".".join(written.split(".")[:2])
        raise StateFormatError(
            f"model state: written with {name} {written}, this is {name} {installed}; "
            f"pickled {name} models load only in the same major.minor version "
            f"(retrain, or use {name} {minor})"
        )

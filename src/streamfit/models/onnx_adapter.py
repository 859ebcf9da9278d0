"""A model trained elsewhere and exported to ONNX, scored through onnxruntime.

``OnnxModel`` reads named fields of the events (``reads = "columns"``): each input of the
graph takes the field of its own name, or, with ``inputs=[...]``, the fields listed (one per
input of one column each, in the graph's order, or the columns of a single input of that
width). Each value is converted to the input's type, with the missing-value rule of
``streamfit.models._fields`` (NaN for a missing number unless ``fill_missing`` says
otherwise: a tree ensemble sends NaN down the branch it was trained to, a linear model
would give NaN, so fill those). One ``InferenceSession.run`` scores a whole batch.

A classifier's probabilities come from the graph's probability output (a ``(rows,
classes)`` tensor, or the list of maps of a ``ZipMap``); its classes from the graph's
class labels (``classlabels_*`` of its ML operators), else from ``classes=``. A regressor's
values come from its first tensor output. The model is frozen: ``learn_many`` learns
nothing (``learns`` is False) and its version never changes.

State: an ``SFST`` blob holding the graph's bytes as an array (no pickle), the input
mapping and the classes; a model rebuilt from it scores exactly as the original.

>>> import numpy as np
>>> from skl2onnx import to_onnx
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]], dtype=np.float32)
>>> graph = to_onnx(LogisticRegression().fit(X, [0, 1, 0, 1]), X[:1],
...                 options={"zipmap": False}).SerializeToString()
>>> model = OnnxModel(graph, inputs=["a", "b"])
>>> model.classes, model.input_fields
([0, 1], ['a', 'b'])
>>> model.predict_many({"a": np.array([0.0, 1.0]), "b": np.array([1.0, 0.0])}).tolist()
[0, 1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.errors import ModelError, StateFormatError
from streamfit.models import _fields
from streamfit.models.base import Task, most_probable
from streamfit.models.state import decode_state, encode_state

__all__ = ["OnnxModel"]

_STATE_NAME = "onnx"
_NUMBER_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_INTEGER_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


@dataclass(frozen=True, slots=True)
class _Input:
    name: str  # the graph's
    kind: str  # its ONNX type, tensor(float) ...
    fields: list[str]
    rank: int  # 1: (rows,), 2: (rows, len(fields))


def _width(shape: Sequence[Any]) -> int | None:
    if len(shape) == 2 and isinstance(shape[1], int):
        return int(shape[1])
    return 1 if len(shape) == 1 else None


class OnnxModel:
    """An ONNX graph as a frozen streamfit model (module docstring)."""

    reads = "columns"
    learns = False

    def __init__(
        self,
        graph: bytes,
        inputs: Sequence[str] | None = None,
        classes: Sequence[object] | None = None,
        fill_missing: Mapping[str, Any] | None = None,
        task: Task | None = None,
    ) -> None:
        try:
            import onnxruntime
        except ImportError as exc:  # pragma: no cover - a dependency of streamfit
            raise ModelError("ONNX models need onnxruntime: pip install onnxruntime") from exc
        self._graph = bytes(graph)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # the worker scores one batch at a time
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                self._graph, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(f"onnxruntime cannot load the graph: {exc}") from exc
        self.fill_missing = dict(fill_missing or {})
        self._given_inputs = None if inputs is None else list(inputs)
        self._inputs = self._plan_inputs(self._given_inputs)
        outputs = self._session.get_outputs()
        graph_classes = _class_labels(self._graph)
        self.task: Task = task or ("classification" if graph_classes or classes else "regression")
        self._classes: list[object] = []
        self._zipmap = False
        if self.task == "classification":
            found = [o for o in outputs if o.type.startswith("tensor(") and len(o.shape) == 2]
            found = [o for o in found if o.type in ("tensor(float)", "tensor(double)")]
            maps = [o for o in outputs if o.type.startswith("seq(map(")]
            if found:
                self._output = found[-1].name
            elif maps:
                self._output, self._zipmap = maps[0].name, True
            else:
                raise ModelError("the graph has no probability output (rows x classes)")
            labels = graph_classes or (list(classes) if classes else [])
            if not labels:
                raise ModelError(
                    "the graph does not name its classes: list them under 'classes' in the "
                    "order of its probability columns"
                )
            self._classes = [_plain(c) for c in labels]
        else:
            tensors = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
            if not tensors:
                raise ModelError("the graph has no numeric output to predict with")
            self._output = tensors[0].name
        self._state: bytes | None = None

    def _plan_inputs(self, given: list[str] | None) -> list[_Input]:
        graph = self._session.get_inputs()
        for inp in graph:
            if inp.type not in (*_NUMBER_TYPES, *_INTEGER_TYPES, "tensor(string)", "tensor(bool)"):
                raise ModelError(f"graph input {inp.name!r} is a {inp.type}: not an event field")
        if given is None:
            plan = []
            for inp in graph:
                width = _width(inp.shape)
                if width not in (1, None) or (width is None and len(inp.shape) != 2):
                    raise ModelError(
                        f"graph input {inp.name!r} takes {width or 'several'} columns: name the "
                        "event fields that fill them, in order, under 'inputs'"
                    )
                if width is None:
                    raise ModelError(
                        f"graph input {inp.name!r} takes a number of columns the graph does "
                        "not fix: name the event fields that fill them under 'inputs'"
                    )
                plan.append(_Input(inp.name, inp.type, [inp.name], len(inp.shape)))
            return plan
        if len(graph) == 1 and _width(graph[0].shape) in (len(given), None):
            inp = graph[0]
            return [_Input(inp.name, inp.type, list(given), 2 if len(inp.shape) != 1 else 1)]
        if len(graph) == len(given) and all(_width(i.shape) == 1 for i in graph):
            return [
                _Input(i.name, i.type, [field], len(i.shape))
                for i, field in zip(graph, given, strict=True)
            ]
        shapes = ", ".join(f"{i.name} {list(i.shape)}" for i in graph)
        raise ModelError(f"'inputs' names {len(given)} fields; the graph's inputs are {shapes}")

    @classmethod
    def from_file(
        cls,
        path: str,
        inputs: Sequence[str] | None = None,
        classes: Sequence[object] | None = None,
        fill_missing: Mapping[str, Any] | None = None,
    ) -> OnnxModel:
        """The model in the ONNX file at ``path``."""
        try:
            with open(path, "rb") as fh:
                graph = fh.read()
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            return cls(graph, inputs, classes, fill_missing)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from exc

    # -- the Model contract

    @property
    def classes(self) -> list[object]:
        return list(self._classes)

    @property
    def input_fields(self) -> list[str]:
        """Every event field the model reads."""
        return [field for inp in self._inputs for field in inp.fields]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self._graph).hexdigest()

    def _feeds(self, columns: Mapping[str, npt.NDArray[Any]]) -> tuple[dict[str, Any], int]:
        n = len(next(iter(columns.values()))) if columns else 0
        feeds: dict[str, Any] = {}
        for inp in self._inputs:
            parts = [self._column(inp.kind, columns.get(f), f, n) for f in inp.fields]
            value = parts[0] if len(parts) == 1 else np.column_stack(parts)
            if inp.rank == 2 and value.ndim == 1:
                value = value.reshape(-1, 1)
            feeds[inp.name] = value
        return feeds, n

    def _column(self, kind: str, column: npt.NDArray[Any] | None, field: str, n: int) -> Any:
        fill = self.fill_missing.get(field)
        if kind in _NUMBER_TYPES:
            return _fields.numbers(column, fill, n).astype(_NUMBER_TYPES[kind])
        if kind in _INTEGER_TYPES:
            return _fields.integers(column, fill, n).astype(_INTEGER_TYPES[kind])
        if kind == "tensor(bool)":
            return _fields.flags(column, fill, n)
        return _fields.texts(column, fill, n)

    def _run(self, columns: Mapping[str, npt.NDArray[Any]]) -> tuple[Any, int]:
        feeds, n = self._feeds(columns)
        if n == 0:
            return None, 0
        try:
            (out,) = self._session.run([self._output], feeds)
        except Exception as exc:
            raise ModelError(f"onnxruntime failed to score: {exc}") from exc
        return out, n

    def predict_proba_many(self, X: Any) -> npt.NDArray[np.float64]:
        """``(rows, len(classes))`` probabilities, columns in ``classes`` order."""
        if self.task != "classification":
            raise ModelError("an ONNX regressor gives no probabilities")
        out, n = self._run(X)
        if n == 0:
            return np.zeros((0, len(self._classes)))
        if self._zipmap:
            return np.array([[row[c] for c in self._classes] for row in out], dtype=np.float64)
        proba = np.asarray(out, dtype=np.float64)
        if proba.shape != (n, len(self._classes)):
            raise ModelError(f"the graph gave {proba.shape} probabilities for {n} rows")
        return proba

    def predict_many(self, X: Any) -> npt.NDArray[Any]:
        """The most probable class, or a regressor's value."""
        if self.task == "classification":
            return most_probable(self._classes, self.predict_proba_many(X))
        out, n = self._run(X)
        return np.zeros(0) if n == 0 else np.asarray(out, dtype=np.float64).reshape(n)

    def learn_many(self, X: Any, y: npt.NDArray[Any]) -> None:
        """Nothing: a pretrained ONNX model is frozen."""

    # -- state

    def state(self) -> bytes:
        if self._state is None:  # the model never changes: its blob is made once
            self._state = encode_state(
                _STATE_NAME,
                params={
                    "inputs": self._given_inputs,
                    "fill_missing": self.fill_missing,
                    "task": self.task,
                    "sha256": self.sha256,
                },
                classes=self._classes,
                arrays={"graph": np.frombuffer(self._graph, dtype=np.uint8)},
            )
        return self._state

    @classmethod
    def from_state(cls, blob: bytes) -> OnnxModel:
        state = decode_state(blob, expect_model=_STATE_NAME)
        graph = state.arrays.get("graph")
        if graph is None:
            raise StateFormatError("model state: the ONNX graph is missing")
        params = state.params
        try:
            return cls(
                graph.tobytes(),
                params.get("inputs"),
                state.classes or None,
                params.get("fill_missing") or {},
                params.get("task"),
            )
        except ModelError as exc:
            raise StateFormatError(f"model state: {exc}") from exc


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _class_labels(graph: bytes) -> list[object]:
    """The class labels the graph's ML operators name (``classlabels_*``), if any."""
    import onnx

    model = onnx.load_model_from_string(graph)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in ("classlabels_int64s", "classlabels_ints", "classlabels_strings"):
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return []

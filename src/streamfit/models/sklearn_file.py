"""A fitted scikit-learn estimator from a file, as a streamfit model.

Where it comes from (``load_estimator``):

* a ``.skops`` file loads through skops, which builds only the types it is told to trust:
  here every type of scikit-learn, NumPy and SciPy, and those named in ``trusted_types``; a
  file holding any other type is refused with their names;
* a joblib or pickle file (``.joblib``, ``.pkl``, ``.pickle``) runs whatever code it
  carries as it loads: it is refused unless ``trusted=True`` says the file comes from
  someone you trust. Convert it with ``skops.io.dump`` to need no such trust.

How it reads events: like an ONNX model (``reads = "columns"``), the fields named by
``inputs``, else by the estimator's ``feature_names_in_`` (an estimator fitted on a pandas
DataFrame), go to it as a DataFrame (as an array to one fitted on an array, which named
no columns): numbers as float64, anything else as text, with the
missing-value rule of ``streamfit.models._fields`` (NaN, unless ``fill_missing`` gives a
value; an estimator that cannot take NaN needs one).

It is frozen, unless ``learn=True`` and the estimator has ``partial_fit``: then each block's
labeled events go to ``partial_fit`` (labels outside its ``classes_`` are skipped). Its state
is an ``SFST`` blob holding the estimator in skops' format (not pickle) and the types to
trust when it is read back (the types it held when this worker wrote it: read back only
states from your own store). The archive is written with fixed times, so the same estimator
always has the same state bytes and a replay reaches the same bytes.

>>> import pandas as pd
>>> from sklearn.linear_model import SGDClassifier
>>> frame = pd.DataFrame({"x": [0.0, 1.0, 0.1, 0.9], "z": [1.0, 0.0, 0.8, 0.2]})
>>> fitted = SGDClassifier(loss="log_loss", random_state=0).fit(frame, ["a", "b", "a", "b"])
>>> model = SklearnFileModel(fitted, learn=True)
>>> model.input_fields, model.classes, model.learns
(['x', 'z'], ['a', 'b'], True)
>>> model.predict_many({"x": np.array([0.0, 1.0]), "z": np.array([1.0, 0.0])}).tolist()
['a', 'b']
>>> type(SklearnFileModel.from_state(model.state())).__name__
'SklearnFileModel'
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfit.errors import ModelError, StateFormatError
from streamfit.models import _fields
from streamfit.models.base import Task, most_probable
from streamfit.models.state import decode_state, encode_state

__all__ = ["SklearnFileModel", "load_estimator"]

_STATE_NAME = "sklearn_file"
_IDS = re.compile(r'("__id__": |"file": ")(\d+)')
_TRUSTED_PACKAGES = ("sklearn.", "numpy.", "scipy.", "builtins.")
_PICKLES = (".joblib", ".pkl", ".pickle")


def _allowed(types: list[str], trusted_types: Sequence[str]) -> tuple[list[str], list[str]]:
    ok = [t for t in types if t.startswith(_TRUSTED_PACKAGES) or t in trusted_types]
    return ok, [t for t in types if t not in ok]


def load_estimator(
    path: str, trusted: bool = False, trusted_types: Sequence[str] = ()
) -> tuple[Any, list[str]]:
    """The estimator in the file at ``path``, and the types skops was told to trust."""
    import skops.io as sio

    suffix = Path(path).suffix.lower()
    if suffix in _PICKLES:
        if not trusted:
            raise ModelError(
                f"{path} is a {suffix[1:]} file: loading it runs any code it holds. Set "
                "'trusted: true' if you trust where it came from, or save the estimator "
                "with skops (skops.io.dump) and give the .skops file"
            )
        import joblib

        try:
            return joblib.load(path), []
        except Exception as exc:
            raise ModelError(f"cannot load {path}: {exc}") from exc
    if suffix != ".skops":
        raise ModelError(f"{path}: a scikit-learn file is .skops, or .joblib/.pkl with trust")
    try:
        data = Path(path).read_bytes()
        types = sio.get_untrusted_types(data=data)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise ModelError(f"{path} is not a skops file: {exc}") from exc
    ok, refused = _allowed(types, trusted_types)
    if refused and not trusted:
        raise ModelError(
            f"{path} holds types skops does not trust: {', '.join(refused)}; list those you "
            "trust under 'trusted_types'"
        )
    try:
        return sio.loads(data, trusted=types if trusted else ok), types if trusted else ok
    except Exception as exc:
        raise ModelError(f"cannot load {path}: {exc}") from exc


class SklearnFileModel:
    """A fitted scikit-learn estimator behind the ``Model`` contract (module docstring)."""

    reads = "columns"

    def __init__(
        self,
        estimator: Any,
        inputs: Sequence[str] | None = None,
        fill_missing: Mapping[str, Any] | None = None,
        learn: bool = False,
        trusted_types: Sequence[str] = (),
    ) -> None:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator):
            self.task: Task = "classification"
        elif is_regressor(estimator):
            self.task = "regression"
        else:
            raise ModelError(f"{type(estimator).__name__} is not a classifier or a regressor")
        names = inputs if inputs is not None else getattr(estimator, "feature_names_in_", None)
        if names is None:
            raise ModelError(
                f"{type(estimator).__name__} was not fitted on named columns: name the event "
                "fields it takes, in order, under 'inputs'"
            )
        self._inputs = [str(n) for n in names]
        self._given_inputs = None if inputs is None else list(inputs)
        self._estimator = estimator
        self.fill_missing = dict(fill_missing or {})
        self.learns = bool(learn) and hasattr(estimator, "partial_fit")
        if learn and not self.learns:
            raise ModelError(f"learn: true, but {type(estimator).__name__} has no partial_fit")
        self._learn = bool(learn)
        self._trusted_types = list(trusted_types)
        classes = getattr(estimator, "classes_", None)
        self._classes = [] if classes is None else [_plain(c) for c in classes]
        if self.task == "classification" and not self._classes:
            raise ModelError(f"{type(estimator).__name__} is not fitted: no classes_")

    @property
    def estimator(self) -> Any:
        return self._estimator

    @property
    def classes(self) -> list[object]:
        return list(self._classes)

    @property
    def input_fields(self) -> list[str]:
        return list(self._inputs)

    def _frame(self, columns: Mapping[str, npt.NDArray[Any]]) -> Any:
        import pandas as pd

        n = len(next(iter(columns.values()))) if columns else 0
        data: dict[str, Any] = {}
        for field in self._inputs:
            column = columns.get(field)
            fill = self.fill_missing.get(field)
            if column is None or column.dtype.kind == "f" or isinstance(fill, int | float):
                data[field] = _fields.numbers(column, fill, n)
            else:
                values = np.empty(len(column), dtype=object)
                values[:] = [_fields.text_of(v) for v in column.tolist()]
                if fill is not None:
                    values[values == None] = str(fill)  # noqa: E711 (elementwise)
                data[field] = values
        frame = pd.DataFrame(data, columns=self._inputs)
        # fitted on an array (its columns named by ``inputs``): an array, which is what it
        # knows (a frame would make scikit-learn warn at every batch)
        return frame if hasattr(self._estimator, "feature_names_in_") else frame.to_numpy()

    def predict_proba_many(self, X: Any) -> npt.NDArray[np.float64]:
        if self.task != "classification":
            raise ModelError("a regressor gives no probabilities")
        frame = self._frame(X)
        if len(frame) == 0:
            return np.zeros((0, len(self._classes)))
        try:
            return np.asarray(self._estimator.predict_proba(frame), dtype=np.float64)
        except Exception as exc:
            raise ModelError(f"{type(self._estimator).__name__} failed to predict: {exc}") from exc

    def predict_many(self, X: Any) -> npt.NDArray[Any]:
        if self.task == "classification":
            return most_probable(self._classes, self.predict_proba_many(X))
        frame = self._frame(X)
        if len(frame) == 0:
            return np.zeros(0)
        try:
            return np.asarray(self._estimator.predict(frame), dtype=np.float64)
        except Exception as exc:
            raise ModelError(f"{type(self._estimator).__name__} failed to predict: {exc}") from exc

    def learn_many(self, X: Any, y: npt.NDArray[Any]) -> None:
        """``partial_fit`` on the rows whose label it knows, with ``learn``; else nothing."""
        if not self.learns or len(y) == 0:
            return
        frame = self._frame(X)
        if self.task == "classification":
            known = np.array([label in self._classes for label in y.tolist()], dtype=bool)
            frame, y = frame[known], y[known]
            if not len(y):
                return
            y = np.asarray([self._estimator.classes_[self._classes.index(v)] for v in y.tolist()])
        else:
            y = y.astype(np.float64)
        try:
            self._estimator.partial_fit(frame, y)
        except Exception as exc:
            raise ModelError(f"{type(self._estimator).__name__} failed to learn: {exc}") from exc

    def state(self) -> bytes:
        import skops.io as sio

        blob = _stable(sio.dumps(self._estimator))
        return encode_state(
            _STATE_NAME,
            params={
                "inputs": self._given_inputs,
                "fill_missing": self.fill_missing,
                "learn": self._learn,
                "trusted_types": sorted(
                    set(self._trusted_types) | set(sio.get_untrusted_types(data=blob))
                ),
            },
            classes=self._classes,
            arrays={"skops": np.frombuffer(blob, dtype=np.uint8)},
        )

    @classmethod
    def from_state(cls, blob: bytes) -> SklearnFileModel:
        """The model ``state()`` wrote (its types trusted as they were when it was made)."""
        import skops.io as sio

        state = decode_state(blob, expect_model=_STATE_NAME)
        data = state.arrays.get("skops")
        if data is None:
            raise StateFormatError("model state: the estimator is missing")
        params = state.params
        trusted = list(params.get("trusted_types") or [])
        try:
            estimator = sio.loads(data.tobytes(), trusted=trusted)
            return cls(
                estimator,
                params.get("inputs"),
                params.get("fill_missing") or {},
                bool(params.get("learn")),
                trusted,
            )
        except Exception as exc:
            raise StateFormatError(f"model state: cannot read the estimator: {exc}") from exc


def _stable(blob: bytes) -> bytes:
    """A skops archive written again so that the same estimator always gives the same bytes:
    skops names objects (``__id__``, the ``<id>.npy`` files) by their memory address and
    stamps each entry with the time; here ids are numbered in their order of appearance and
    every entry's time is 1980-01-01."""
    source = zipfile.ZipFile(io.BytesIO(blob))
    schema = source.read("schema.json").decode()
    numbers: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        found = numbers.setdefault(match.group(2), str(len(numbers) + 1))
        return f"{match.group(1)}{found}"

    schema = _IDS.sub(number, schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        entries = {"schema.json": schema.encode()}
        for info in source.infolist():
            name = info.filename
            if name == "schema.json":
                continue
            stem, dot, suffix = name.partition(".")
            entries[f"{numbers.get(stem, stem)}{dot}{suffix}"] = source.read(name)
        for name in sorted(entries):
            stable = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            target.writestr(stable, entries[name])
    return out.getvalue()


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value

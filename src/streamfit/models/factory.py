"""Models from their spec, and from their state.

``build_model`` turns one entry of a pipeline's ``models:`` list into a ``Model``:

* ``builtin: logistic_regression | linear_regression``: ``LogisticRegression`` /
  ``LinearRegression`` with ``params`` as constructor arguments (``n_features`` comes from the
  pipeline and may not be given);
* ``river: "<module>.<Class>"``: ``river.<module>.<Class>(**params)`` in a ``RiverModel``;
* ``sklearn: "<module>.<Class>"``: ``sklearn.<module>.<Class>(**params)`` in a
  ``SklearnModel``; the key ``classes`` (classifiers only) goes to the adapter, not to the
  estimator;
* ``onnx: <file>``: the ONNX graph of the file in an ``OnnxModel`` (pretrained, frozen);
* ``sklearn_file: <file>``: the fitted estimator of a skops (or, trusted, joblib/pickle)
  file in a ``SklearnFileModel`` (pretrained; frozen unless ``learn: true``).

For deterministic replays, an estimator that takes a random seed (River's ``seed``,
scikit-learn's ``random_state``) gets 0 unless ``params`` sets one.

Anything wrong (unknown name, a class that is not an estimator, a task that does not match,
a bad or unknown parameter) raises ``ModelError`` naming the model and the problem.

>>> from streamfit.spec.model import RiverModelSpec
>>> spec = RiverModelSpec(name="tree", river="tree.HoeffdingTreeClassifier",
...                       params={"grace_period": 50})
>>> model = build_model(spec, "classification", n_features=2**18)
>>> type(model).__name__, model.estimator.grace_period
('RiverModel', 50)
>>> type(model_from_state(model.state())).__name__
'RiverModel'
>>> build_model(RiverModelSpec(name="t", river="tree.NoSuchTree"), "classification", 16)
Traceback (most recent call last):
...
streamfit.errors.ModelError: model 't' (river: tree.NoSuchTree): river.tree has no 'NoSuchTree'
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from streamfit.errors import ModelError, StateFormatError
from streamfit.models.base import Detector, Model, Task
from streamfit.models.binned import BinnedLogisticRegression
from streamfit.models.linear import LinearRegression, LogisticRegression
from streamfit.models.onnx_adapter import OnnxModel
from streamfit.models.river_adapter import (
    RiverDetector,
    RiverModel,
    final_step,
    is_river_detector,
)
from streamfit.models.sklearn_adapter import SklearnModel
from streamfit.models.sklearn_file import SklearnFileModel, load_estimator
from streamfit.models.state import peek_model
from streamfit.spec.model import (
    BuiltinModelSpec,
    ModelSpec,
    OnnxModelSpec,
    PretrainedSklearnSpec,
    RiverModelSpec,
    SklearnModelSpec,
    default_models,
)

__all__ = ["BUILTINS", "build_detector", "build_model", "default_model_spec", "model_from_state"]

#: builtin name -> (class, the task it serves)
BUILTINS: dict[str, tuple[type[LogisticRegression] | type[LinearRegression], Task]] = {
    "logistic_regression": (LogisticRegression, "classification"),
    "binned_logistic_regression": (BinnedLogisticRegression, "classification"),
    "linear_regression": (LinearRegression, "regression"),
}

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def default_model_spec(task: Task) -> BuiltinModelSpec:
    """The model a pipeline without ``models:`` runs for ``task``.

    >>> default_model_spec("classification").builtin
    'binned_logistic_regression'
    """
    return BuiltinModelSpec.model_validate(default_models(task)[0])


def build_model(spec: ModelSpec, task: Task, n_features: int) -> Model:
    """The model ``spec`` describes, for ``task``, over ``n_features`` feature columns."""
    if isinstance(spec, BuiltinModelSpec):
        return _builtin(spec, task, n_features)
    if isinstance(spec, RiverModelSpec):
        return _river(spec, task)
    if isinstance(spec, SklearnModelSpec):
        return _sklearn(spec, task)
    if isinstance(spec, OnnxModelSpec | PretrainedSklearnSpec):
        return _pretrained(spec, task)
    raise ModelError(f"unknown model spec {type(spec).__name__}")


def build_detector(spec: ModelSpec) -> Detector:
    """The anomaly detector ``spec`` describes (a pipeline of ``task: anomaly``):
    ``builtin: histogram_detector`` (``streamfit.explore.detector.HistogramDetector``) or a
    River anomaly detector (``river: anomaly.HalfSpaceTrees``, or a ``compose.Pipeline``
    ending with one). Anything else raises ``ModelError``.

    >>> from streamfit.spec.model import BuiltinModelSpec
    >>> type(build_detector(BuiltinModelSpec(name="d", builtin="histogram_detector"))).__name__
    'HistogramDetector'
    """
    if isinstance(spec, BuiltinModelSpec):
        where = f"model {spec.name!r} (builtin: {spec.builtin})"
        if spec.builtin != "histogram_detector":
            task = BUILTINS[spec.builtin][1]
            raise ModelError(f"{where}: is a {task} model, the pipeline's task is anomaly")
        from streamfit.explore.detector import HistogramDetector

        _check_names(where, HistogramDetector, spec.params)
        try:
            return HistogramDetector(**spec.params)
        except (ModelError, TypeError) as exc:
            raise ModelError(f"{where}: {exc}") from exc
    if isinstance(spec, RiverModelSpec):
        where = f"model {spec.name!r} (river: {spec.river})"
        estimator = _river_estimator(where, spec.river, spec.params)
        if not is_river_detector(estimator):
            name = type(final_step(estimator)).__name__
            raise ModelError(f"{where}: {name} is not a River anomaly detector")
        return RiverDetector(estimator, reads=spec.reads)
    raise ModelError(
        f"model {spec.name!r}: an anomaly pipeline's models are 'builtin: histogram_detector' "
        "or River anomaly detectors"
    )


def model_from_state(blob: bytes) -> Model:
    """Any model (or detector) back from its ``state()`` bytes, by the name in the blob's
    header."""
    from streamfit.explore.detector import HistogramDetector

    name = peek_model(blob)
    readers: dict[str, Any] = {
        "builtin.LogisticRegression": LogisticRegression.from_state,
        "builtin.LinearRegression": LinearRegression.from_state,
        "builtin.BinnedLogisticRegression": BinnedLogisticRegression.from_state,
        "builtin.HistogramDetector": HistogramDetector.from_state,
        "river": RiverModel.from_state,
        "river_anomaly": RiverDetector.from_state,
        "sklearn": SklearnModel.from_state,
        "onnx": OnnxModel.from_state,
        "sklearn_file": SklearnFileModel.from_state,
    }
    reader = readers.get(name)
    if reader is None:
        raise StateFormatError(f"model state: unknown model kind {name!r}")
    model: Model = reader(blob)
    return model


def _builtin(spec: BuiltinModelSpec, task: Task, n_features: int) -> Model:
    where = f"model {spec.name!r} (builtin: {spec.builtin})"
    if spec.builtin not in BUILTINS:
        raise ModelError(f"{where}: is an anomaly detector, the pipeline's task is {task}")
    cls, serves = BUILTINS[spec.builtin]
    if serves != task:
        raise ModelError(f"{where}: is a {serves} model, the pipeline's task is {task}")
    if "n_features" in spec.params:
        raise ModelError(f"{where}: n_features is set by the pipeline (features.hash_bits)")
    _check_names(where, cls, spec.params)
    try:
        return cls(**spec.params, n_features=n_features)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from exc


def _pretrained(spec: OnnxModelSpec | PretrainedSklearnSpec, task: Task) -> Model:
    model: OnnxModel | SklearnFileModel
    if isinstance(spec, OnnxModelSpec):
        where = f"model {spec.name!r} (onnx: {spec.onnx})"
        try:
            model = OnnxModel.from_file(spec.onnx, spec.inputs, spec.classes, spec.fill_missing)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from exc
    else:
        where = f"model {spec.name!r} (sklearn_file: {spec.sklearn_file})"
        try:
            estimator, trusted = load_estimator(spec.sklearn_file, spec.trusted, spec.trusted_types)
            model = SklearnFileModel(estimator, spec.inputs, spec.fill_missing, spec.learn, trusted)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from exc
    if model.task != task:
        raise ModelError(f"{where}: is a {model.task} model, the pipeline's task is {task}")
    return model


def _river(spec: RiverModelSpec, task: Task) -> Model:
    where = f"model {spec.name!r} (river: {spec.river})"
    estimator = _river_estimator(where, spec.river, spec.params)
    import river.base

    final = final_step(estimator)
    if not isinstance(final, river.base.Classifier | river.base.Regressor):
        name = type(final).__name__
        raise ModelError(f"{where}: {name} is not a River classifier or regressor")
    serves: Task = "classification" if isinstance(final, river.base.Classifier) else "regression"
    if serves != task:
        raise ModelError(f"{where}: is a {serves} model, the pipeline's task is {task}")
    return RiverModel(estimator, reads=spec.reads)


def _river_estimator(where: str, path: str, given: dict[str, Any]) -> Any:
    """``river.<path>(**params)``, nested estimators built first (see ``RiverModelSpec``)."""
    cls = _import_class(where, "river", path)
    params = {name: _river_value(where, value) for name, value in given.items()}
    positional: list[Any] = []
    star = _var_positional(cls)
    if star is not None and star in params:
        values = params.pop(star)
        positional = values if isinstance(values, list) else [values]
    _check_names(where, cls, params)
    if "seed" in (_accepted(cls) or ()) and "seed" not in params:
        params["seed"] = 0
    try:
        return cls(*positional, **params)
    except Exception as exc:
        raise ModelError(f"{where}: {cls.__name__}({_short(given)}) failed: {exc}") from exc


def _river_value(where: str, value: Any) -> Any:
    if isinstance(value, dict) and "river" in value:
        unknown = sorted(set(value) - {"river", "params"})
        if unknown or not isinstance(value["river"], str):
            raise ModelError(
                f"{where}: a nested estimator is {{river: <path>, params: {{...}}}}, got {value!r}"
            )
        params = value.get("params") or {}
        if not isinstance(params, dict):
            raise ModelError(f"{where}: params of {value['river']} must be a mapping")
        return _river_estimator(f"{where} > {value['river']}", value["river"], params)
    if isinstance(value, list):
        return [_river_value(where, v) for v in value]
    return value


def _var_positional(cls: type) -> str | None:
    """The name of ``*args`` in ``cls``'s constructor, if it has one."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    for p in parameters:
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            return p.name
    return None


def _sklearn(spec: SklearnModelSpec, task: Task) -> Model:
    where = f"model {spec.name!r} (sklearn: {spec.sklearn})"
    cls = _import_class(where, "sklearn", spec.sklearn)
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if not issubclass(cls, BaseEstimator) or not hasattr(cls, "partial_fit"):
        raise ModelError(f"{where}: {cls.__name__} is not an estimator with partial_fit")
    params = dict(spec.params)
    classes = params.pop("classes", None)
    _check_names(where, cls, params)
    if "random_state" in (_accepted(cls) or ()) and "random_state" not in params:
        params["random_state"] = 0
    estimator = _construct(where, cls, params)
    serves: Task | None = (
        "classification"
        if is_classifier(estimator)
        else "regression"
        if is_regressor(estimator)
        else None
    )
    if serves is None:
        raise ModelError(f"{where}: {cls.__name__} is neither a classifier nor a regressor")
    if serves != task:
        raise ModelError(f"{where}: is a {serves} model, the pipeline's task is {task}")
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{where}: {exc}") from exc
    if classes is not None and (not isinstance(classes, list) or serves != "classification"):
        raise ModelError(f"{where}: 'classes' must be a list of labels, for a classifier")
    try:
        return SklearnModel(estimator, classes=classes)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from exc


def _import_class(where: str, package: str, path: str) -> type:
    if not _PATH.match(path):
        raise ModelError(f"{where}: expected '<module>.<Class>' below {package}, got {path!r}")
    module_name, _, attr = path.rpartition(".")
    full = f"{package}.{module_name}"
    try:
        module = importlib.import_module(full)
    except ImportError as exc:
        raise ModelError(f"{where}: cannot import {full}: {exc}") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise ModelError(f"{where}: {full} has no {attr!r}")
    if not inspect.isclass(cls):
        raise ModelError(f"{where}: {full}.{attr} is not a class")
    return cls


def _accepted(cls: type) -> set[str] | None:
    """Constructor parameter names, or None when it takes ``**kwargs``."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _check_names(where: str, cls: type, params: dict[str, Any]) -> None:
    accepted = _accepted(cls)
    if accepted is None:
        return
    unknown = sorted(set(params) - accepted - {"n_features"})
    if unknown:
        raise ModelError(
            f"{where}: unknown parameter(s) {', '.join(unknown)}; "
            f"{cls.__name__} takes {', '.join(sorted(accepted - {'n_features'}))}"
        )


def _construct(where: str, cls: type, params: dict[str, Any]) -> Any:
    try:
        return cls(**params)
    except Exception as exc:
        raise ModelError(f"{where}: {cls.__name__}({_short(params)}) failed: {exc}") from exc


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())

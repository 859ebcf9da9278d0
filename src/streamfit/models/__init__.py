"""Online learners behind one contract (``Model``), and adapters for River and scikit-learn.

* ``LogisticRegression``, ``LinearRegression``: built in, AdaGrad over sparse hashed features,
  one event at a time in a compiled loop (``Prequential``), mergeable, with a versioned
  non-pickle state format.
* ``BinnedLogisticRegression``: the built-in nonlinear classifier (the default model): the
  same learner over each row's features, their bins and, optionally, crosses of their bins.
* ``RiverModel``, ``SklearnModel``: wrap a River estimator (one event at a time, fed each
  event's fields whole) or a scikit-learn ``partial_fit`` estimator (a block at a time).
* ``OnnxModel``, ``SklearnFileModel``: pretrained models (an ONNX graph through onnxruntime,
  a fitted scikit-learn estimator from a skops file) reading named event fields.
* ``build_model`` makes one from a pipeline's model spec; ``model_from_state`` reads any
  model's ``state()`` back.
* ``streamfit.models.checks``: the check battery every model passes (``check_model``), for
  a model of your own too.

>>> from streamfit.spec.model import BuiltinModelSpec
>>> model = build_model(BuiltinModelSpec(name="lr", builtin="logistic_regression"),
...                     "classification", n_features=16)
>>> isinstance(model, Classifier), model.task
(True, 'classification')
"""

from streamfit.models.base import Classifier, Mergeable, Model, Prequential, Task
from streamfit.models.binned import BinnedLogisticRegression
from streamfit.models.factory import build_model, model_from_state
from streamfit.models.linear import LinearRegression, LogisticRegression
from streamfit.models.onnx_adapter import OnnxModel
from streamfit.models.river_adapter import RiverModel
from streamfit.models.sklearn_adapter import SklearnModel
from streamfit.models.sklearn_file import SklearnFileModel

__all__ = [
    "BinnedLogisticRegression",
    "Classifier",
    "LinearRegression",
    "LogisticRegression",
    "Mergeable",
    "Model",
    "OnnxModel",
    "Prequential",
    "RiverModel",
    "SklearnFileModel",
    "SklearnModel",
    "Task",
    "build_model",
    "model_from_state",
]

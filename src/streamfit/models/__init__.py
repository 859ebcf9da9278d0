"""Online learners behind one contract (``Model``), and adapters for River and scikit-learn.

* ``LogisticRegression``, ``LinearRegression``: built in, AdaGrad over sparse hashed features,
  one event at a time in a compiled loop (``Prequential``), mergeable, with a versioned
  non-pickle state format.
* ``RiverModel``, ``SklearnModel``: wrap a River estimator or a scikit-learn ``partial_fit``
  estimator.
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
from streamfit.models.factory import build_model, model_from_state
from streamfit.models.linear import LinearRegression, LogisticRegression
from streamfit.models.river_adapter import RiverModel
from streamfit.models.sklearn_adapter import SklearnModel

__all__ = [
    "Classifier",
    "LinearRegression",
    "LogisticRegression",
    "Mergeable",
    "Model",
    "Prequential",
    "RiverModel",
    "SklearnModel",
    "Task",
    "build_model",
    "model_from_state",
]

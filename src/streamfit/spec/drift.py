"""The ``drift:`` and ``on_drift:`` keys of a pipeline spec (``streamfit.drift`` runs them).

``drift:`` turns on one detector of River's ``drift`` module per model, watching its error
stream, and optionally one per numeric field of ``fields`` watching its values. ``detector``
names it (``adwin``, the default; ``page_hinkley``; ``kswin``) and ``params`` gives its River
parameters, checked here by name and range so that a typo stops the pipeline at start with
the key's path. ``drift: true`` is ``drift: {}``; ``drift: adwin`` is ``{detector: adwin}``.
``models``: which models are watched (all by default). ``table``: where alarms go (default
``<name>_drift``).

``on_drift: challenger`` adds, for each model that learns, a standby copy named
``<model>_drift`` that a drift of the champion starts, untrained, as a challenger under the
``promotion:`` rule (``streamfit.drift.challenger``); ``on_drift: log`` (the default) only
records the alarm.

>>> DriftSpec.model_validate("page_hinkley").detector
'page_hinkley'
>>> DriftSpec.model_validate({"params": {"delta": 0.01}}).params
{'delta': 0.01}
>>> DriftSpec.model_validate({"params": {"delt": 0.01}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for DriftSpec
params.delt
  Extra inputs are not permitted [type=extra_forbidden, input_value=0.01, input_type=float]
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["DETECTOR_PARAMS", "DriftSpec", "standby_name"]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdwinParams(_Params):
    """``river.drift.ADWIN``'s parameters."""

    delta: float = Field(default=0.002, gt=0, lt=1)
    clock: int = Field(default=32, ge=1)
    max_buckets: int = Field(default=5, ge=2)
    min_window_length: int = Field(default=5, ge=1)
    grace_period: int = Field(default=10, ge=1)


class PageHinkleyParams(_Params):
    """``river.drift.PageHinkley``'s parameters."""

    min_instances: int = Field(default=30, ge=1)
    delta: float = Field(default=0.005, ge=0)
    threshold: float = Field(default=50.0, gt=0)
    alpha: float = Field(default=0.9999, gt=0, le=1)
    mode: Literal["up", "down", "both"] = "both"


class KswinParams(_Params):
    """``river.drift.KSWIN``'s parameters (``seed`` is fixed by default: a replay after a
    restart must draw the same samples to reach the same alarms)."""

    alpha: float = Field(default=0.005, gt=0, lt=1)
    window_size: int = Field(default=100, ge=10)
    stat_size: int = Field(default=30, ge=2)
    seed: int = 0

    @model_validator(mode="after")
    def _fits(self) -> KswinParams:
        if self.stat_size >= self.window_size:
            raise ValueError("stat_size must be smaller than window_size")
        return self


#: The parameters each detector takes, by the name ``detector:`` gives it.
DETECTOR_PARAMS: dict[str, type[_Params]] = {
    "adwin": AdwinParams,
    "page_hinkley": PageHinkleyParams,
    "kswin": KswinParams,
}


class DriftSpec(BaseModel):
    """Drift detection (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Literal["adwin", "page_hinkley", "kswin"] = "adwin"
    params: dict[str, Any] = Field(default_factory=dict)
    models: list[str] | None = None
    fields: list[str] = Field(default_factory=list, max_length=100)
    table: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        """``drift: true`` and ``drift: adwin``."""
        if data is True:
            return {}
        if isinstance(data, str):
            return {"detector": data}
        return data

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,59}", value):
            raise ValueError("a table name is letters, digits and '_', at most 60 characters")
        return value

    @model_validator(mode="after")
    def _valid_params(self) -> DriftSpec:
        try:
            DETECTOR_PARAMS[self.detector].model_validate(self.params)
        except ValidationError as exc:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            error["type"], error["msg"].replace("{", "{{").replace("}", "}}")
                        ),
                        loc=("params", *error["loc"]),
                        input=error.get("input"),
                    )
                    for error in exc.errors(include_url=False)
                ],
            ) from None
        return self

    def detector_params(self) -> dict[str, Any]:
        """``params`` with the detector's defaults filled in (what River is given)."""
        return DETECTOR_PARAMS[self.detector].model_validate(self.params).model_dump()

    def table_name(self, pipeline: str) -> str:
        return self.table or f"{pipeline}_drift"

    def watches(self, model: str) -> bool:
        """Whether the error stream of ``model`` is watched."""
        return self.models is None or model in self.models


def standby_name(model: str) -> str:
    """The name of the standby copy ``on_drift: challenger`` keeps of ``model``.

    >>> standby_name("lr")
    'lr_drift'
    """
    return f"{model}_drift"


def expand_on_drift(data: dict[str, Any], models: list[Any]) -> dict[str, Any]:
    """The raw spec ``data`` (whose ``models`` are ``models``) as ``on_drift`` makes it:
    ``drift: false`` is no drift; with ``on_drift: challenger``, drift on (ADWIN unless
    ``drift:`` says otherwise) and a standby copy after each watched model that learns.

    >>> data = expand_on_drift({"on_drift": "challenger"}, [{"name": "lr", "builtin": "x"}])
    >>> data["drift"], [(m["name"], m.get("standby", False)) for m in data["models"]]
    ({}, [('lr', False), ('lr_drift', True)])
    """
    if data.get("drift") is False:
        data = {key: value for key, value in data.items() if key != "drift"}
    if data.get("on_drift") != "challenger":
        return data
    drift = data.get("drift")
    if drift is None:
        data = {**data, "drift": {}}
    watched = drift.get("models") if isinstance(drift, dict) else None
    expanded: list[Any] = []
    for model in models:
        expanded.append(model)
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            continue  # validation names the problem
        frozen = "onnx" in model or ("sklearn_file" in model and not model.get("learn"))
        if frozen or model.get("standby") or (watched is not None and model["name"] not in watched):
            continue
        expanded.append({**model, "name": standby_name(model["name"]), "standby": True})
    return {**data, "models": expanded}

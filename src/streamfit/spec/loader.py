"""Load and validate a pipeline spec, turning every problem into a ``SpecError``.

>>> try:
...     load_spec_text("name: x\\ntopics: {score: s}\\nmodels: [{name: m, builtin: nope}]")
... except SpecError as exc:
...     print(exc.path)
models.0.builtin
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from streamfit.errors import SpecError
from streamfit.spec.model import PipelineSpec

__all__ = ["load_spec", "load_spec_text", "validate_spec"]


def load_spec(path: str | Path) -> PipelineSpec:
    """Read a YAML spec file; raise ``SpecError`` with the bad key's path."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}") from exc
    return load_spec_text(text)


def load_spec_text(text: str) -> PipelineSpec:
    """Parse YAML text into a spec."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError("a spec is a YAML mapping (name, source, topics, models, ...)")
    return validate_spec(data)


def validate_spec(data: dict[str, Any]) -> PipelineSpec:
    """Validate a spec given as a mapping."""
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise _to_spec_error(exc) from None


def _to_spec_error(exc: ValidationError) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = ".".join(_without_union_tags(first["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(str(first["loc"][-1]))
    elif (
        "input" in first
        and first["type"] not in ("missing",)
        and not isinstance(first["input"], dict | list)
    ):
        message = f"{message} (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return SpecError(message + more, path=path)


_UNION_TAGS = {"builtin", "river", "sklearn", "kafka", "memory", "file"}


def _without_union_tags(loc: tuple[int | str, ...]) -> list[str]:
    """Drop the tag pydantic inserts after a discriminated union's position in ``loc``."""
    out: list[str] = []
    for i, part in enumerate(loc):
        previous = loc[i - 1] if i else None
        if part in _UNION_TAGS and (isinstance(previous, int) or previous == "source"):
            continue
        out.append(str(part))
    return out


def _did_you_mean(key: str) -> str:
    """`` (did you mean 'target'?)`` when ``key`` looks like a misspelt key of the spec.

    >>> _did_you_mean("taget"), _did_you_mean("zzz")
    (" (did you mean 'target'?)", '')
    """
    import difflib

    from streamfit.spec import model

    known: set[str] = set()
    for value in vars(model).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            known.update(value.model_fields)
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""

"""Pipeline spec (YAML, validated) and settings (environment)."""

from streamfit.spec.loader import load_spec, load_spec_text, validate_spec
from streamfit.spec.model import PipelineSpec
from streamfit.spec.settings import Settings

__all__ = ["PipelineSpec", "Settings", "load_spec", "load_spec_text", "validate_spec"]

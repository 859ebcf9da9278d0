"""streamfit.models."""

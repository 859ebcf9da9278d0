"""streamfit.features."""

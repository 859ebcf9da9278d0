"""streamfit.runtime."""

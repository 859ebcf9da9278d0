"""streamfit.explore."""

"""streamfit.store."""

"""streamfit.streams."""

"""streamfit.cli."""

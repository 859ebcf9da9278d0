"""streamfit.evaluation."""

"""streamfit.codecs."""

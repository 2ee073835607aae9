"""Operator declarations: importing this package registers every operator (one module each)."""
from pyops.operators import binning, boost, deconvolve, psf_estimate, twostop  # noqa: F401

"""Operator declarations: importing this package registers every operator (one module each)."""
from pyops.operators import binning, boost, twostop  # noqa: F401

"""pyops — image operators for photographers: binning, luminance boost, deconvolution.

    import pyops
    out = pyops.run("bin", image, factor=2)                  # float32 linear H×W×C in, array out
    out, info = pyops.run("boost", image, ev="auto", return_info=True)
"""
__version__ = "0.1.0"

from pyops.registry import Cancelled, ParamError, execute, operators, run  # noqa: E402

__all__ = ["run", "execute", "operators", "Cancelled", "ParamError", "__version__"]

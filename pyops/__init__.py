"""pyops — image operators for photographers: binning, luminance boost, deconvolution.

    import pyops
    out = pyops.run("bin", image, factor=2)                  # float32 linear H×W×C in, array out
    out, info = pyops.run("boost", image, ev="auto", return_info=True)
"""
import os

__version__ = "0.1.0"

# numba's OpenMP threads spin-wait after each parallel kernel (GNU OpenMP's default policy) and, on a few cores,
# take the CPU from the FFT library's threads: a transform right after a kernel ran 1.8× slower. They wait
# passively instead (read when numba starts its threads, after this import; a user's own setting is kept).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyops.registry import Cancelled, ParamError, execute, operators, run  # noqa: E402

__all__ = ["run", "execute", "operators", "Cancelled", "ParamError", "__version__"]

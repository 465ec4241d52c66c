"""Warm-cache first call (DESIGN.md §7: goal < 1 s once ``cache=True`` has filled the cache).

Each benchmark runs a fresh interpreter that imports mlverify and calls the operator once: with
the on-disk Numba cache filled this measures loading, not compiling.
"""

import subprocess
import sys

_SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np
from mlverify import MLCSC, ConvDictionary, ml_ista
D = ConvDictionary(np.ones((2, 1, 3, 3), dtype=np.{dtype}))
{call}
print(time.perf_counter() - t0)
"""

_CALLS = {
    "synthesize": "D.synthesize(np.ones((2, 16, 16), dtype=np.{dtype}), method='dense')",
    "synthesize_sparse": "D.synthesize(np.ones((2, 16, 16), dtype=np.{dtype}), method='sparse')",
    "analyze": "D.analyze(np.ones((1, 16, 16), dtype=np.{dtype}))",
    "analyze_fft": "D.analyze(np.ones((1, 16, 16), dtype=np.{dtype}), method='fft')",
    # a deepest layer with 16 x 8 x 4 x 4 multiply-adds per window: its step is screened
    "ml_ista_screened": (
        "ml_ista(MLCSC([ConvDictionary(np.ones((8, 1, 3, 3), dtype=np.{dtype})), "
        "ConvDictionary(np.ones((16, 8, 4, 4), dtype=np.{dtype}))]), "
        "np.ones((1, 16, 16), dtype=np.{dtype}), [0.1, 0.1], max_iter=3, nonneg=True)"),
}


def _first_call(call: str, dtype: str) -> float:
    code = _SNIPPET.format(dtype=dtype, call=_CALLS[call].format(dtype=dtype))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fill cache
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip())


class WarmCacheFirstCall:
    """Seconds from interpreter start to the first result, cache warm."""

    params = (list(_CALLS), ["float32", "float64"])
    param_names = ["kernel", "dtype"]
    unit = "seconds"
    timeout = 300

    def track_first_call(self, kernel, dtype):
        return _first_call(kernel, dtype)

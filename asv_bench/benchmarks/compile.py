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
from mlverify import ConvDictionary
D = ConvDictionary(np.ones((2, 1, 3, 3), dtype=np.{dtype}))
D.{call}
print(time.perf_counter() - t0)
"""

_CALLS = {
    "synthesize": "synthesize(np.ones((2, 16, 16), dtype=np.{dtype}), method='dense')",
    "synthesize_sparse": "synthesize(np.ones((2, 16, 16), dtype=np.{dtype}), method='sparse')",
    "analyze": "analyze(np.ones((1, 16, 16), dtype=np.{dtype}))",
    "analyze_fft": "analyze(np.ones((1, 16, 16), dtype=np.{dtype}), method='fft')",
}


_ML_ISTA = """
import time
t0 = time.perf_counter()
import numpy as np
from mlverify import MLCSC, ConvDictionary, ml_ista
rng = np.random.default_rng(0)
net = MLCSC([ConvDictionary(rng.standard_normal(shape).astype(np.{dtype}))
             for shape in ((8, 1, 3, 3), (16, 8, 4, 4))])
ml_ista(net, np.ones((1, 16, 16), dtype=np.{dtype}), [0.1, 0.1], max_iter=3, nonneg=True)
print(time.perf_counter() - t0)
"""


def _first_call(call: str, dtype: str) -> float:
    if call == "ml_ista_screened":  # the screened deepest step (16 x 8 x 4 x 4 per window)
        code = _ML_ISTA.format(dtype=dtype)
    else:
        code = _SNIPPET.format(dtype=dtype, call=_CALLS[call].format(dtype=dtype))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # fill cache
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip())


class WarmCacheFirstCall:
    """Seconds from interpreter start to the first result, cache warm."""

    params = ([*_CALLS, "ml_ista_screened"], ["float32", "float64"])
    param_names = ["kernel", "dtype"]
    unit = "seconds"
    timeout = 300

    def track_first_call(self, kernel, dtype):
        return _first_call(kernel, dtype)

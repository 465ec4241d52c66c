r"""Dense kernel throughput against this machine's BLAS peak, and warm-cache first calls.

**Throughput.** A periodic correlation with :math:`m` atoms, :math:`c` channels and :math:`n` taps
on :math:`N` samples does :math:`mcnN` multiply-adds, the same count as the GEMM
:math:`(N \times cn)\cdot(cn \times m)` of its im2col form. The machine's peak is measured as the
rate of a large BLAS GEMM (``numpy.dot`` on 2048×2048 matrices, float32 and float64, best of 3)
and each kernel is reported as a fraction of it: ``Metric.ratio = (MACs / peak) / time``.

**Warm-cache first call** (DESIGN.md §7, goal < 1 s). A fresh Python process imports mlverify
and times the first call of each kernel on a small problem; the process is run twice and the
second run is reported, so Numba's on-disk cache (``cache=True``) is filled and what is measured
is loading compiled code, not compiling it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from ..kernels import cpu
from ..model.dictionary import ConvDictionary
from ._record import best_time
from ._result import Comparison, Metric

#: (label, (m, c, *kernel), spatial) of the dense kernels reported.
CASES = (
    ("layer 1: 32 atoms 8×8, 256²", (32, 1, 8, 8), (256, 256)),
    ("layer 2: 64 atoms 32 ch 5×5, 128²", (64, 32, 5, 5), (128, 128)),
    ("CBPDN: 36 atoms 12×12, 256²", (36, 1, 12, 12), (256, 256)),
    ("1-D: 20 atoms 32 taps, 10×4096", (20, 1, 32), (4096,)),
)
#: Goal of DESIGN.md §7 for a warm-cache first call (seconds).
FIRST_CALL_BUDGET = 1.0

_FIRST_CALLS = r"""
import json, time
import numpy as np
timings = {}
start = time.perf_counter()
import mlverify
timings["import mlverify"] = time.perf_counter() - start
from mlverify import (MLCSC, ConvDictionary, basis_pursuit, layered_thresholding, ml_ista, omp,
                      threshold)
rng = np.random.default_rng(0)
for dtype in ("float32", "float64"):
    D = ConvDictionary(rng.standard_normal((4, 2, 3, 3)).astype(dtype))
    # a deepest layer with 16 x 8 x 4 x 4 multiply-adds per window: its step is screened
    net = MLCSC([ConvDictionary(rng.standard_normal(shape).astype(dtype))
                 for shape in ((8, 2, 3, 3), (16, 8, 4, 4))])
    x = rng.standard_normal((2, 16, 16)).astype(dtype)
    codes = rng.standard_normal((4, 16, 16)).astype(dtype)
    sparse = np.where(rng.random(codes.shape) < 0.02, codes, 0).astype(dtype)
    calls = {
        "analyze": lambda: D.analyze(x),
        "synthesize (dense)": lambda: D.synthesize(codes, method="dense"),
        "synthesize (sparse)": lambda: D.synthesize(sparse, method="sparse"),
        "threshold": lambda: threshold(codes, 0.5, kind="soft"),
        "basis_pursuit (FISTA)": lambda: basis_pursuit(D, x, 0.5, max_iter=5),
        "basis_pursuit (ADMM)": lambda: basis_pursuit(D, x, 0.5, solver="admm", max_iter=5),
        "omp": lambda: omp(D, x, n_nonzero=3),
        "layered_thresholding": lambda: layered_thresholding(MLCSC([D]), x, [0.5]),
        "ml_ista (screened)": lambda: ml_ista(net, x, [0.1, 0.1], max_iter=3, nonneg=True),
    }
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        timings[f"{name}, {dtype}"] = time.perf_counter() - start
print(json.dumps(timings))
"""


def machine_peak(dtype, size: int = 2048, repeat: int = 3) -> float:
    """Multiply-adds per second of a ``size``³ BLAS GEMM (best of ``repeat``)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    return size**3 / best_time(lambda: a @ b, repeat=repeat)


def first_calls() -> dict[str, float]:
    """Seconds of each kernel's first call in a fresh process with a warm Numba cache."""
    for _ in range(2):  # the first run fills the cache; the second is measured
        done = subprocess.run([sys.executable, "-c", _FIRST_CALLS], capture_output=True,
                              text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _throughput(quick: bool) -> tuple[list[Metric], list[str]]:
    metrics, notes = [], []
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        peak = machine_peak(dtype)
        notes.append(f"BLAS GEMM peak, {dtype}: {2 * peak / 1e9:.1f} GFLOP/s")
        for label, shape, spatial in CASES[:2] if quick else CASES:
            D = ConvDictionary(rng.standard_normal(shape).astype(dtype))
            batch = (10,) if len(spatial) == 1 else ()
            codes = rng.standard_normal((*batch, shape[0], *spatial)).astype(dtype)
            signal = rng.standard_normal((*batch, shape[1], *spatial)).astype(dtype)
            macs = codes.size * int(np.prod(shape[1:]))
            for op, call, arg in (("analyze", D.analyze, signal),
                                  ("synthesize", D.synthesize, codes)):
                seconds = best_time(lambda c=call, a=arg: c(a), repeat=3 if quick else 5)
                metrics.append(Metric(f"{op} {label}, {dtype} (fraction of peak)", seconds,
                                      macs / peak))
    return metrics, notes


def compare(quick: bool = False, threads: int | None = None) -> Comparison:
    """Throughput of the dense kernels as a fraction of the BLAS peak, and first-call times.

    ``Metric.ratio`` is the fraction of peak for the throughput rows and
    ``budget / seconds`` (goal 1: within the budget) for the first calls.
    """
    from threadpoolctl import threadpool_limits

    threads = threads or cpu.thread_count()
    cpu.set_thread_count(threads)
    with threadpool_limits(threads):
        metrics, notes = _throughput(quick)
    for name, seconds in first_calls().items():
        if name == "import mlverify":
            notes.append(f"import mlverify in a fresh process: {seconds:.2f} s")
            continue
        metrics.append(Metric(f"warm-cache first call: {name} (budget 1 s)", seconds,
                              FIRST_CALL_BUDGET, goal=1.0))
    return Comparison("kernels", "Dense kernels against the BLAS peak; warm-cache first calls",
                      f"numpy {np.__version__} BLAS GEMM", problem={"threads": threads},
                      metrics=metrics, notes=notes)

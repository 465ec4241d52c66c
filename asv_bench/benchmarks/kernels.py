"""asv benchmarks of the convolution kernels (DESIGN.md §7).

Run against the current environment: ``asv run --python=same`` (``--quick`` for one pass).
Every ``setup`` calls the operator once with the same dtypes so that the JIT (or its on-disk
cache) is warm before anything is timed.
"""

import numpy as np

from mlverify import ConvDictionary

DTYPES = ["float32", "float64"]


def _problem(dtype, atoms, channels, size, image, density, seed=0):
    rng = np.random.default_rng(seed)
    dictionary = ConvDictionary(rng.standard_normal((atoms, channels, size, size)).astype(dtype))
    codes = rng.standard_normal((atoms, image, image)).astype(dtype)
    if density < 1:
        codes *= rng.random(codes.shape) < density
    signal = rng.standard_normal((channels, image, image)).astype(dtype)
    return dictionary, codes, signal


class Conv2D:
    """32 atoms of 8×8 over one 256×256 channel (the first layer of the standard 2-layer net)."""

    params = (DTYPES, ["dense", "sparse"])
    param_names = ["dtype", "method"]

    def setup(self, dtype, method):
        density = 1.0 if method == "dense" else 0.02
        self.D, self.codes, self.signal = _problem(dtype, 32, 1, 8, 256, density)
        self.D.synthesize(self.codes, method=method)
        self.D.analyze(self.signal)
        self.method = method

    def time_synthesize(self, dtype, method):
        self.D.synthesize(self.codes, method=self.method)

    def time_analyze(self, dtype, method):
        self.D.analyze(self.signal)


class Conv2DSecondLayer:
    """64 atoms of 5×5 over 32 channels, 256×256 (the second layer)."""

    params = DTYPES
    param_names = ["dtype"]

    def setup(self, dtype):
        self.D, self.codes, self.signal = _problem(dtype, 64, 32, 5, 256, 1.0)
        self.D.synthesize(self.codes)
        self.D.analyze(self.signal)

    def time_synthesize(self, dtype):
        self.D.synthesize(self.codes, method="dense")

    def time_analyze(self, dtype):
        self.D.analyze(self.signal)


class SynthesizeDensity:
    """Dense vs sparse-aware synthesis across code densities (sets the automatic switch); into
    this one channel, the sparse-aware synthesis scatters whole atoms
    (:func:`mlverify.kernels.cpu_sparse.scatter_synthesis`)."""

    params = (["float32"], [0.005, 0.02, 0.05, 0.1, 0.2], ["dense", "sparse"])
    param_names = ["dtype", "density", "method"]

    def setup(self, dtype, density, method):
        self.D, self.codes, _ = _problem(dtype, 32, 1, 8, 256, density)
        self.D.synthesize(self.codes, method=method)

    def time_synthesize(self, dtype, density, method):
        self.D.synthesize(self.codes, method=method)


class Conv1D:
    """The alphacsc-sized 1-D problem: 10 signals × 4096 samples, 20 atoms of 32 taps."""

    params = DTYPES
    param_names = ["dtype"]

    def setup(self, dtype):
        rng = np.random.default_rng(0)
        self.D = ConvDictionary(rng.standard_normal((20, 1, 32)).astype(dtype))
        self.codes = rng.standard_normal((10, 20, 4096)).astype(dtype)
        self.codes *= rng.random(self.codes.shape) < 0.005
        self.signal = rng.standard_normal((10, 1, 4096)).astype(dtype)
        self.D.synthesize(self.codes)
        self.D.analyze(self.signal)

    def time_synthesize(self, dtype):
        self.D.synthesize(self.codes)

    def time_analyze(self, dtype):
        self.D.analyze(self.signal)


class Measures:
    """Exact spectral norm and coherence of the first-layer dictionary."""

    def setup(self):
        self.D, _, _ = _problem("float64", 32, 1, 8, 256, 1.0)

    def time_spectral_norm(self):
        self.D.spectral_norm((256, 256))

    def time_coherence(self):
        self.D.coherence()

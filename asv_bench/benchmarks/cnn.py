"""asv benchmarks of the 2-layer CNN model of DESIGN.md §7 (``mlverify.bench.cnn``).

The forward pass (ReLU layered thresholding) and one ML-ISTA iteration at the standard code
densities (with the fraction of positions the screened deepest step skips), the same in PyTorch
(CPU, same threads; skipped with asv's ``NotImplementedError`` when torch is missing), and the
sparse-input analysis of layer 2 at several input densities against the dense kernel (where the
crossover lies). ``setup`` warms the JIT with the same dtypes.
"""

import numpy as np

from mlverify import layered_thresholding, ml_ista
from mlverify.bench import cnn
from mlverify.kernels import cpu

DTYPES = ["float32", "float64"]


def _torch():
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed (pip install '.[compare]')") from None
    torch.set_num_threads(cpu.thread_count())
    return torch


def _prepared(dtype):
    """The model, image, thresholds, steps and settled ML-ISTA iterate at the standard densities
    (the expensive part: exact spectral norms at 256×256, thresholds, 5 ML-ISTA iterations)."""
    net = cnn.model(dtype)
    y, _ = cnn.image(dtype)
    betas = cnn.thresholds(net, y, cnn.STANDARD)
    mu, t = cnn._ml_ista_steps(net, y)
    start = ml_ista(net, y, betas, mu, t, max_iter=cnn.SETTLE, nonneg=True,
                    check_every=cnn.SETTLE).codes[-1]
    # the model travels with its cached exact spectral norms (ml_ista validates the steps
    # against them on every call)
    return {"net": net, "y": y, "betas": betas, "mu": mu, "t": t, "start": start}


class _Model:
    """The prepared problem of both dtypes, computed once per class (``setup_cache``)."""

    params = DTYPES
    param_names = ["dtype"]
    timeout = 300  # setup_cache (norms, thresholds, settled iterate) takes tens of seconds

    def setup_cache(self):
        return {dtype: _prepared(dtype) for dtype in DTYPES}

    def setup(self, prepared, dtype):
        for key, value in prepared[dtype].items():
            setattr(self, key, value)


class CNN(_Model):
    """mlverify: the forward pass and ML-ISTA iterations (1 and 5; the difference / 4 is one)."""

    def setup(self, prepared, dtype):
        super().setup(prepared, dtype)
        self.time_forward(prepared, dtype)
        self.time_ml_ista_1(prepared, dtype)

    def time_forward(self, prepared, dtype):
        layered_thresholding(self.net, self.y, self.betas, kind="relu")

    def _ml_ista(self, iterations):
        ml_ista(self.net, self.y, self.betas, self.mu, self.t, max_iter=iterations, nonneg=True,
                x0=self.start, check_every=1000)

    def time_ml_ista_1(self, prepared, dtype):
        self._ml_ista(1)

    def time_ml_ista_5(self, prepared, dtype):
        self._ml_ista(5)

    def track_density_layer1(self, prepared, dtype):
        return cnn.density(layered_thresholding(self.net, self.y, self.betas, kind="relu").codes[0])

    track_density_layer1.unit = "fraction"

    def track_screened_positions(self, prepared, dtype):
        """Fraction of the deepest layer's positions the screening skips (no atom can be
        non-zero there) at the fifth ML-ISTA iteration from the settled iterate."""
        return cnn.screening(self.net, self.y, self.betas, self.mu, self.t, self.start)[0]

    track_screened_positions.unit = "fraction"

    def track_needed_atoms(self, prepared, dtype):
        """Fraction of the other positions' atoms the screened step cannot rule out there (and
        computes, by dot products, when few)."""
        return cnn.screening(self.net, self.y, self.betas, self.mu, self.t, self.start)[1]

    track_needed_atoms.unit = "fraction"


class TorchCNN(_Model):
    """PyTorch: the same forward pass and one ML-ISTA iteration (conv2d, conv_transpose2d)."""

    def setup_cache(self):
        try:
            import torch  # noqa: F401
        except ImportError:  # setup() then skips (asv fails a raising setup_cache, and passes
            return {}  # no argument at all for a None cache)
        return super().setup_cache()

    def setup(self, prepared, dtype):
        torch = _torch()
        super().setup(prepared, dtype)
        self.peer = cnn.Torch(torch, self.net)
        self.y_torch = torch.from_numpy(self.y[None])
        self.gamma = torch.from_numpy(self.start[None])
        self.time_forward(prepared, dtype)

    def time_forward(self, prepared, dtype):
        self.peer.forward(self.y_torch, self.betas)

    def time_ml_ista_iteration(self, prepared, dtype):
        self.peer.ml_ista_step(self.y_torch, self.gamma, self.betas, self.mu, self.t)


class SparseAnalysis:
    """Layer-2 analysis (32 → 64 channels, 5×5, 256×256) of a ReLU-sparse input: direct sums,
    sparse-input kernel, tile DFTs."""

    params = (DTYPES, [0.05, 0.1, 0.2, 0.4], ["dense", "sparse", "fft"])
    param_names = ["dtype", "density", "method"]

    def setup(self, dtype, density, method):
        rng = np.random.default_rng(0)
        self.D = cnn.model(dtype).layers[1]
        shape = (32, 256, 256)
        self.signal = (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(dtype)
        self.time_analyze(dtype, density, method)

    def time_analyze(self, dtype, density, method):
        self.D.analyze(self.signal, method=method)

"""The same first-layer convolutions in PyTorch (CPU), for side-by-side ratios (DESIGN.md §7).

Skipped (asv's ``NotImplementedError`` convention) when torch is not installed; install it with
the ``compare`` extra. Same data, dtype and thread count as ``kernels.Conv2D``; periodic
boundary as in mlverify (circular padding for the analysis; the transposed convolution's
overhang is folded back for the synthesis, which the check in ``setup`` verifies).
"""

import numba
import numpy as np

from mlverify import ConvDictionary, basis_pursuit


def _torch():
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed (pip install '.[compare]')") from None
    torch.set_num_threads(numba.get_num_threads())
    return torch


class TorchConv2D:
    """PyTorch ``conv2d`` (analysis) and ``conv_transpose2d`` (synthesis), 32 atoms 8×8, 256²."""

    params = ["float32", "float64"]
    param_names = ["dtype"]

    def setup(self, dtype):
        torch = self.torch = _torch()
        rng = np.random.default_rng(0)
        filters = rng.standard_normal((32, 1, 8, 8)).astype(dtype)
        self.codes = torch.from_numpy(rng.standard_normal((1, 32, 256, 256)).astype(dtype))
        self.signal = torch.from_numpy(rng.standard_normal((1, 1, 256, 256)).astype(dtype))
        self.weight = torch.from_numpy(filters)
        D = ConvDictionary(filters)
        rtol = 1e-3 if dtype == "float32" else 1e-10
        ours = D.analyze(self.signal.numpy()[0])
        np.testing.assert_allclose(self.analyze().numpy()[0], ours, rtol=rtol, atol=rtol * 10)
        ours = D.synthesize(self.codes.numpy()[0])
        np.testing.assert_allclose(self.synthesize().numpy()[0], ours, rtol=rtol, atol=rtol * 10)

    def analyze(self):
        functional = self.torch.nn.functional
        with self.torch.no_grad():
            padded = functional.pad(self.signal, (0, 7, 0, 7), mode="circular")
            return functional.conv2d(padded, self.weight)

    def synthesize(self):
        with self.torch.no_grad():
            full = self.torch.nn.functional.conv_transpose2d(self.codes, self.weight)
            out = full[..., :256, :256].clone()
            out[..., :7, :] += full[..., 256:, :256]
            out[..., :, :7] += full[..., :256, 256:]
            out[..., :7, :7] += full[..., 256:, 256:]
            return out

    def time_analyze(self, dtype):
        self.analyze()

    def time_synthesize(self, dtype):
        self.synthesize()


class SporcoCBPDN:
    """10 ADMM iterations of SPORCO's ConvBPDN and of mlverify's on the same CBPDN problem
    (SPORCO's kodim23 example, float32, same threads); skipped without sporco."""

    timeout = 600
    number = 1
    repeat = (1, 3, 30.0)

    def setup(self):
        try:
            import sporco.fft
            from sporco.admm import cbpdn
        except ImportError:
            raise NotImplementedError("sporco is not installed (pip install '.[compare]')") \
                from None
        from mlverify.bench.cbpdn import load_problem

        sporco.fft.pyfftw_threads = numba.get_num_threads()
        self.cbpdn = cbpdn
        self.problem = load_problem()
        self.D = self.problem.dictionary
        self.time_sporco_10_iterations()
        self.time_mlverify_10_iterations()

    def time_sporco_10_iterations(self):
        options = self.cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": 10,
                                               "RelStopTol": 0.0, "FastSolve": True})
        problem = self.problem
        self.cbpdn.ConvBPDN(problem.filters_hwm, problem.signal, problem.lam, options,
                            dimK=0).solve()

    def time_mlverify_10_iterations(self):
        basis_pursuit(self.D, self.problem.y, self.problem.lam, solver="admm", tol=1e-12,
                      max_iter=10)

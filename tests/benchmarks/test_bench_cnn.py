"""pytest-benchmark tests of the 2-layer CNN model (forward pass, ML-ISTA iteration; DESIGN.md §7).

Disabled by default like ``test_bench_kernels.py`` (the bodies run once and their results are
checked against PyTorch when it is installed, else against the NumPy engine); a smaller image
than the standard 256×256 keeps the CI run short. Times are never asserted.
"""

import numpy as np
import pytest

from mlverify import layered_thresholding, ml_ista
from mlverify.bench import cnn

SIDE = 64


@pytest.fixture(scope="module", params=["float32", "float64"])
def problem(request):
    dtype = np.dtype(request.param)
    net = cnn.model(dtype)
    y = cnn.image(dtype)[0][:, :SIDE, :SIDE].copy()
    betas = cnn.thresholds(net, y, cnn.STANDARD)
    mu, t = cnn._ml_ista_steps(net, y)
    return net, y, betas, mu, t


def _rtol(dtype):
    return 1e-3 if dtype == np.float32 else 1e-9


def test_bench_forward(benchmark, problem):
    net, y, betas, _, _ = problem
    layered_thresholding(net, y, betas, kind="relu")  # warm the JIT outside the timing
    result = benchmark(layered_thresholding, net, y, betas, kind="relu")
    want = layered_thresholding(net, y, betas, kind="relu", engine="numpy")
    for got, expected in zip(result.codes, want.codes, strict=True):
        np.testing.assert_allclose(got, expected, rtol=_rtol(y.dtype), atol=_rtol(y.dtype))
    assert 0 < cnn.density(result.codes[-1]) < 0.2


def test_bench_ml_ista_iteration(benchmark, problem):
    net, y, betas, mu, t = problem
    start = ml_ista(net, y, betas, mu, t, max_iter=cnn.SETTLE, nonneg=True).codes[-1]
    kwargs = {"max_iter": 1, "nonneg": True, "x0": start}
    ml_ista(net, y, betas, mu, t, **kwargs)
    result = benchmark(ml_ista, net, y, betas, mu, t, **kwargs)
    want = ml_ista(net, y, betas, mu, t, engine="numpy", **kwargs)
    scale = float(np.abs(want.codes[-1]).max())
    np.testing.assert_allclose(result.codes[-1], want.codes[-1], rtol=_rtol(y.dtype),
                               atol=_rtol(y.dtype) * scale)
    torch = pytest.importorskip("torch")
    peer = cnn.Torch(torch, net)
    _, step = peer.ml_ista_step(torch.from_numpy(y[None]), torch.from_numpy(start[None]), betas,
                                mu, t)
    np.testing.assert_allclose(result.codes[-1], step.numpy()[0], rtol=_rtol(y.dtype),
                               atol=_rtol(y.dtype) * scale)

"""Side-by-side: a 2-layer CNN forward pass and an ML-ISTA iteration against PyTorch (CPU).

The model of DESIGN.md §7: a 256×256 grey image, layer 1 with 32 atoms 8×8, layer 2 with 64
atoms 5×5 over the 32 channels; periodic boundary, stride 1, unit-norm random atoms (seeded). The
image is SPORCO's kodim23 crop ``[160:416, 60:316]`` in grey (the CBPDN comparison's image), minus
its mean; without SPORCO a deterministic synthetic image (smooth random field plus edges) is used,
and the comparison says which.

**Forward pass** (layered thresholding, Papyan, Romano, Elad, JMLR 2017):
:math:`\\Gamma_1 = \\mathrm{ReLU}(D_1^Ty - \\beta_1)`,
:math:`\\Gamma_2 = \\mathrm{ReLU}(D_2^T\\Gamma_1 - \\beta_2)`: ours is
:func:`mlverify.layered_thresholding` (``kind="relu"``), PyTorch's is ``conv2d`` (circular padding)
with bias :math:`-\\beta_i` then ``relu``. The thresholds are the quantiles that give the target
code densities :math:`\\rho_i` (fraction of non-zero entries of :math:`\\Gamma_i`).

**ML-ISTA iteration** (Sulam, Aberdam, Beck, Elad, TPAMI 2019; non-negative codes, see
:mod:`mlverify.pursuits._ml_ista`):

.. math::

    \\hat\\gamma_1 = D_2\\gamma,\\quad
    \\gamma_1 = \\mathrm{ReLU}\\big(\\hat\\gamma_1 - \\mu D_1^T(D_1\\hat\\gamma_1 - y)
    - \\mu\\lambda_1\\big),
    \\quad \\gamma \\leftarrow \\mathrm{ReLU}\\big(\\gamma - \\tfrac{t}{\\mu}D_2^T(\\hat\\gamma_1 -
    \\gamma_1) - t\\lambda_2\\big)

with :math:`\\lambda_i = \\beta_i` (so the first iterate from zero is the forward pass) and
:math:`\\mu, t` mlverify's defaults. PyTorch computes it with ``conv2d`` / ``conv_transpose2d``
(the transposed convolution's overhang folded back: periodic synthesis), :math:`D_2\\gamma` once.
Ours is one iteration of :func:`mlverify.ml_ista`: the time of ``max_iter = 1 + k`` minus that of
``max_iter = 1`` (the same warm start, the iterate after :data:`SETTLE` iterations), over ``k``.

**Densities.** A trained ReLU CNN keeps roughly 20–50 % of its early-layer activations non-zero
(Rhu et al., HPCA 2018, measured on AlexNet/VGG/ResNet); convolutional sparse coding models of
natural images are much sparser (a few per cent). The standard point :data:`STANDARD` sits between
the two; :data:`SWEEP` gives the whole curve so the crossover with the dense convolutions shows.
"""

from __future__ import annotations

import numpy as np

from ..model.dictionary import ConvDictionary
from ..model.mlcsc import MLCSC
from ._record import best_times
from ._result import Comparison, Metric

#: DESIGN.md §7 goals (PyTorch time / ours).
FORWARD_GOAL = 2.0
ML_ISTA_GOAL = 3.0

#: (layer-1 density, layer-2 density) of the standard point, and the sweep of layer-1 densities
#: (layer 2 at half of layer 1).
STANDARD = (0.10, 0.05)
SWEEP = (0.05, 0.10, 0.20, 0.40)

#: ML-ISTA iterations run from the forward-pass iterate before timing (the densities settle).
SETTLE = 5

#: SPORCO's kodim23 crop (the CBPDN comparison's image).
CROP = np.s_[160:416, 60:316]


def image(dtype=np.float32) -> tuple[np.ndarray, str]:
    """The zero-mean 256×256 grey input ``(1, 256, 256)`` and a description of its source."""
    try:
        from sporco import util
    except ImportError:
        rng = np.random.default_rng(0)
        grid = np.fft.fftfreq(256)
        smooth = np.fft.ifft2(np.fft.fft2(rng.standard_normal((256, 256)))
                              / (1e-2 + np.hypot(*np.meshgrid(grid, grid)))).real
        picture = smooth / np.abs(smooth).max() + 0.5 * (np.add.outer(np.arange(256),
                                                                     np.arange(256)) % 64 < 32)
        source = "synthetic image (smooth 1/f random field plus a stripe pattern, seed 0)"
    else:
        picture = util.ExampleImages().image("kodim23.png", scaled=True, gray=True,
                                             idxexp=CROP).astype(np.float64)
        source = "sporco kodim23 crop [160:416, 60:316], grey"
    picture = picture - picture.mean()
    return picture[None].astype(dtype), source


def model(dtype=np.float32, seed: int = 0) -> MLCSC:
    """:math:`D_1` (32 atoms 1×8×8) and :math:`D_2` (64 atoms 32×5×5), unit-norm Gaussian atoms."""
    rng = np.random.default_rng(seed)
    layers = [ConvDictionary(rng.standard_normal(shape)).normalized()
              for shape in ((32, 1, 8, 8), (64, 32, 5, 5))]
    return MLCSC([ConvDictionary(layer.filters.astype(dtype)) for layer in layers])


def thresholds(net: MLCSC, y: np.ndarray, densities) -> list[float]:
    """Thresholds :math:`\\beta_i` giving the densities ``densities`` in the ReLU forward pass."""
    betas, current = [], y
    for layer, density in zip(net.layers, densities, strict=True):
        correlations = layer.analyze(current)
        beta = float(np.quantile(correlations, 1.0 - density))
        betas.append(max(beta, 0.0))
        current = np.maximum(correlations - np.asarray(beta, y.dtype), 0)
    return betas


def density(array) -> float:
    """Fraction of non-zero entries."""
    return float(np.count_nonzero(array)) / array.size


class Torch:
    """The same operators in PyTorch: periodic ``conv2d`` and ``conv_transpose2d`` plus fold,
    on ``device`` (``"cpu"`` here; ``scripts/gpu_check.py`` runs them on ``"cuda"``)."""

    def __init__(self, torch, net: MLCSC, device: str = "cpu") -> None:
        self.torch = torch
        self.functional = torch.nn.functional
        self.weights = [torch.from_numpy(np.array(layer.filters)).to(device)  # a writable copy
                        for layer in net.layers]

    def analyze(self, i: int, x, bias=None):
        """:math:`D_i^T x` (``x`` of shape ``(1, c, H, W)``), plus ``bias`` per atom."""
        n1, n2 = self.weights[i].shape[2:]
        padded = self.functional.pad(x, (0, n2 - 1, 0, n1 - 1), mode="circular")
        return self.functional.conv2d(padded, self.weights[i], bias)

    def synthesize(self, i: int, codes):
        """:math:`D_i\\Gamma` (the overhang of the transposed convolution folded back)."""
        full = self.functional.conv_transpose2d(codes, self.weights[i])
        height, width = codes.shape[2:]
        n1, n2 = full.shape[2] - height, full.shape[3] - width
        out = full[..., :height, :width].clone()
        out[..., :n1, :] += full[..., height:, :width]
        out[..., :, :n2] += full[..., :height, width:]
        out[..., :n1, :n2] += full[..., height:, width:]
        return out

    def forward(self, y, betas):
        """ReLU layered thresholding: ``relu(conv2d(x) - β)`` twice."""
        with self.torch.no_grad():
            current = y
            for i, beta in enumerate(betas):
                bias = self.torch.full((self.weights[i].shape[0],), -beta,
                                       dtype=self.weights[i].dtype,
                                       device=self.weights[i].device)
                current = self.functional.relu(self.analyze(i, current, bias))
            return current

    def ml_ista_step(self, y, gamma, lams, mu: float, t: float):
        """One non-negative ML-ISTA step from ``gamma``; returns ``(γ_1, γ_new)``."""
        relu = self.functional.relu
        with self.torch.no_grad():
            projected = self.synthesize(1, gamma)
            residual = self.synthesize(0, projected) - y
            gamma1 = relu(projected - mu * self.analyze(0, residual) - mu * lams[0])
            step = self.analyze(1, projected - gamma1)
            return gamma1, relu(gamma - (t / mu) * step - t * lams[1])


def _ml_ista_steps(net: MLCSC, y: np.ndarray) -> tuple[float, float]:
    """mlverify's default ``(μ, t)`` for the model (0.9 × the limits of THEORY.md §3)."""
    from ..pursuits._linear import layer_operators
    from ..pursuits._ml_ista import _steps

    ops, _ = layer_operators(net, y, engine="cpu")
    mu, t = _steps(ops, None, None)
    return mu, t


def screening(net: MLCSC, y: np.ndarray, betas, mu: float, t: float, start: np.ndarray,
              iterations: int = 5) -> tuple[float, float]:
    """What the screened step of :func:`mlverify.ml_ista` on the deepest layer
    (:class:`mlverify.model.screening.ScreenedStep`) computed at the ``iterations``-th
    non-negative iteration from ``start``: the fraction of the positions it skipped whole (no
    atom can be non-zero there) and the fraction of the other positions' atoms it needed (could
    not rule out: :attr:`ScreenedStep.needed`; the atoms it computes when few are). ``(0, 1)``
    when it took the plain step."""
    from ..pursuits import _linear, _ml_ista

    ops, y = _linear.layer_operators(net, y, engine="cpu")
    steps = _ml_ista._steps(ops, mu, t)
    screen = _ml_ista._screen(ops[-1])
    if screen is None:
        return 0.0, 1.0
    gamma = start
    for _ in range(iterations):
        gamma = _ml_ista._sweep(ops, y, gamma, steps, betas, True, screen)
    if screen.key is None:
        return 0.0, 1.0
    return 1.0 - float(screen.active.mean()), screen.needed


def _point(torch, peer: Torch, net: MLCSC, y: np.ndarray, densities, repeat: int) -> dict:
    """Time the forward pass and one ML-ISTA iteration at the given forward-pass densities."""
    from ..pursuits import layered_thresholding, ml_ista

    betas = thresholds(net, y, densities)
    y_torch = torch.from_numpy(y[None])
    rtol = 1e-3 if y.dtype == np.float32 else 1e-9

    ours = layered_thresholding(net, y, betas, kind="relu")
    theirs = peer.forward(y_torch, betas).numpy()[0]
    scale = float(np.abs(theirs).max()) or 1.0
    np.testing.assert_allclose(ours.codes[-1], theirs, rtol=rtol, atol=rtol * scale)
    forward = best_times((lambda: layered_thresholding(net, y, betas, kind="relu"),
                          lambda: peer.forward(y_torch, betas)), repeat)

    mu, t = _ml_ista_steps(net, y)
    settled = ml_ista(net, y, betas, mu, t, max_iter=SETTLE, nonneg=True, check_every=SETTLE)
    start = settled.codes[-1]
    gamma = torch.from_numpy(start[None])
    gamma1, step = peer.ml_ista_step(y_torch, gamma, betas, mu, t)
    one = ml_ista(net, y, betas, mu, t, max_iter=1, nonneg=True, x0=start)
    scale = float(np.abs(step.numpy()).max()) or 1.0
    np.testing.assert_allclose(one.codes[-1], step.numpy()[0], rtol=rtol, atol=rtol * scale)
    k = 4

    def run(iterations: int):
        return lambda: ml_ista(net, y, betas, mu, t, max_iter=iterations, nonneg=True, x0=start,
                               check_every=1000)

    longer, shorter, theirs_step = best_times(
        (run(1 + k), run(1), lambda: peer.ml_ista_step(y_torch, gamma, betas, mu, t)), repeat)
    iteration = ((longer - shorter) / k, theirs_step)
    return {
        "forward": forward, "iteration": iteration,
        "forward_densities": [density(code) for code in ours.codes],
        "ml_ista_densities": [density(gamma1.numpy()), density(start)],
        "screened": screening(net, y, betas, mu, t, start, k + 1),
        "betas": betas,
    }


def compare(quick: bool = False, threads: int | None = None) -> Comparison:
    """The forward pass and ML-ISTA iteration against PyTorch, float32 and float64.

    Parameters
    ----------
    quick : bool
        Fewer repeats and only the standard point (no density sweep).
    threads : int, optional
        Threads for both contenders (default: Numba's current count).
    """
    from ..kernels import cpu

    name = "cnn"
    title = "2-layer CNN (256×256, 1→32 atoms 8×8→64 atoms 5×5): forward pass and ML-ISTA"
    try:
        import torch
    except ImportError:
        return Comparison(name, title, "torch",
                          skipped="torch not installed (pip install 'mlverify[compare]')")
    threads = threads or cpu.thread_count()
    cpu.set_thread_count(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    repeat = 3 if quick else 7
    metrics: list[Metric] = []
    notes: list[str] = []
    source = ""
    try:
        for dtype in (np.float32, np.float64):
            net = model(dtype)
            y, source = image(dtype)
            peer = Torch(torch, net)
            label = np.dtype(dtype).name
            points = [STANDARD] + ([] if quick else [(r, r / 2) for r in SWEEP
                                                     if (r, r / 2) != STANDARD])
            for densities in points:
                result = _point(torch, peer, net, y, densities, repeat)
                standard = densities == STANDARD
                where = "" if standard else (f" (sweep: ρ1={densities[0]:.1%}, "
                                             f"ρ2={densities[1]:.1%})")
                metrics.append(Metric(f"forward pass, {label}{where}", *result["forward"],
                                      goal=FORWARD_GOAL if standard else None))
                metrics.append(Metric(f"ML-ISTA iteration, {label}{where}",
                                      *result["iteration"],
                                      goal=ML_ISTA_GOAL if standard else None))
                forward = ", ".join(f"{d:.1%}" for d in result["forward_densities"])
                inner = ", ".join(f"{d:.1%}" for d in result["ml_ista_densities"])
                notes.append(
                    f"{label}, target densities {densities[0]:.1%}/{densities[1]:.1%}: forward "
                    f"pass code densities {forward}; ML-ISTA iteration densities (γ1, γ) {inner} "
                    f"after {SETTLE} iterations from zero; the screened deepest step skipped "
                    f"{result['screened'][0]:.0%} of its positions at the last timed "
                    f"iteration and needed {result['screened'][1]:.0%} of the others' atoms; "
                    f"thresholds {', '.join(f'{b:.4g}' for b in result['betas'])}"
                )
    finally:
        torch.set_num_threads(previous)
    notes.append(
        "standard point: layer-1 density 10 %, layer-2 density 5 % (between the 20-50 % of a "
        "trained ReLU CNN and the few per cent of sparse-coding models; see the sweep for the "
        "whole curve)"
    )
    problem = {"source": source, "shape": [1, 256, 256], "layers": ["32x1x8x8", "64x32x5x5"],
               "threads": threads, "standard_densities": list(STANDARD),
               "sweep_densities": [] if quick else list(SWEEP), "settle_iterations": SETTLE,
               "atoms": "unit-norm Gaussian (seed 0)"}
    return Comparison(name, title, f"torch {torch.__version__} (conv2d, conv_transpose2d)",
                      problem=problem, metrics=metrics, notes=notes)


r"""Theorems of Papyan, Romano, Elad, "Convolutional neural networks analyzed via convolutional
sparse coding", JMLR 2017 (THEORY.md §4), on two-layer ML-CSC instances (three layers for SP).

Notation: :math:`Y = X + E`, :math:`X = D_1\Gamma_1`, :math:`\Gamma_1 = D_2\Gamma_2`;
:math:`k_i = \|\Gamma_i\|^s_{0,\infty}` (stripe side :math:`2n_i - 1`), :math:`\mu_i = \mu(D_i)`,
patches of :math:`\Gamma_i` have side :math:`w = n_{i+1}` (1 for the deepest layer), the noise
patch has side :math:`n_1`, :math:`\varepsilon_L^0 = \|E\|^p_{2,\infty}`.

- **J2** [D] DCP stability: :math:`\|E\|_2 \le E_0`, :math:`k_i < \tfrac12(1 + 1/\mu_i)`,
  :math:`E_i^2 = 4E_{i-1}^2/(1 - (2k_i - 1)\mu_i)` ⇒ every DCP\ :sup:`E` solution (a feasible
  point: :math:`\|Y - D_1\hat\Gamma_1\|_2 \le E_0`, :math:`\hat\Gamma_{i-1} = D_i\hat\Gamma_i`,
  :math:`\|\hat\Gamma_i\|^s_{0,\infty} \le k_i`) has :math:`\|\hat\Gamma_i - \Gamma_i\|_2^2 \le
  E_i^2`. Checked on the feasible points built by :func:`_dcp_candidates`.
- **LT-hard / LT-soft / LT-relu** [S+D] layered thresholding :math:`\hat\Gamma_i =
  T_{\beta_i}(D_i^T\hat\Gamma_{i-1})`: with :math:`C_i = (k_i - 1)\mu_i|\Gamma_i^{\max}| +
  \varepsilon_L^{i-1}`, :math:`K_i = k_i\mu_i|\Gamma_i^{\max}| + \varepsilon_L^{i-1}` and
  :math:`K_i < \beta_i < |\Gamma_i^{\min}| - C_i` at every layer (ReLU: also :math:`\Gamma_i \ge
  0`) ⇒ equal supports and signs, :math:`\|\hat\Gamma_i - \Gamma_i\|_\infty \le C_i\,[+\beta_i]`,
  :math:`\|\hat\Gamma_i - \Gamma_i\|^p_{2,\infty} \le \varepsilon_L^i = \sqrt{\|\Gamma_i\|^p_{0,
  \infty}}\,(C_i\,[+\beta_i])` (the bracket for soft/ReLU only). Hard thresholding returns the
  same output for every :math:`\beta_i` in the interval.
- **LBP** [S+D] layered BP: :math:`k_i < \tfrac13(1 + 1/\mu_i)`, :math:`\xi_i =
  4\varepsilon_L^{i-1}`, :math:`\varepsilon_L^i = 7.5\,\varepsilon_L^{i-1}\sqrt{\|\Gamma_i\|^p_{0,
  \infty}}` ⇒ :math:`\mathrm{supp}\,\hat\Gamma_i \subseteq \mathrm{supp}\,\Gamma_i`,
  :math:`\|\hat\Gamma_i - \Gamma_i\|^p_{2,\infty} \le \varepsilon_L^i`, entries with
  :math:`|\Gamma_{i,j}| > 7.5\varepsilon_L^{i-1}` are found.
- **LBP-noiseless** [S+D]: :math:`E = 0`, :math:`k_i < \tfrac12(1 + 1/\mu_i)` ⇒ layered
  equality-constrained BP (:math:`\min\|\Gamma\|_1` s.t. :math:`D_i\Gamma = \hat\Gamma_{i-1}`)
  recovers every layer exactly.
- **SP** [D] sparsity propagation: :math:`\|\Gamma_{i-1}\|_0 \le c_i\|\Gamma_i\|_0`, :math:`c_i`
  the largest number of non-zeros of a column of :math:`D_i` (an atom's non-zero taps over its
  channels).

Instances (THEORY.md §5): :math:`D_1` = Barker-13 (:math:`\mu_1 = 1/13`), :math:`D_2` sparse
Golomb-ruler filters, :math:`\Gamma_2` isolated spikes (one every ``spacing`` positions, random
atom, sign and magnitude) on :math:`N = 128`. With THEORY's :math:`D_2` (marks {0, 1, 4, 6},
:math:`\mu_2 = 1/4`) soft thresholding is infeasible: :math:`\varepsilon_L^1 \ge 2(C_1 + K_1) \ge
2 \cdot 7\mu_1|\Gamma_1^{\max}| = 7a/13 > 3a/8`, the most layer 2 tolerates; LT-soft and LT-relu
use two marks {0, 3} (:math:`\mu_2 = 1/2`, :math:`\|\Gamma_1\|^s_{0,\infty} = 2`), where
:math:`\varepsilon_0 \lesssim 0.007a` works with :math:`\beta_1` just above :math:`K_1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.linalg
from scipy.optimize import linprog

from ..model.constructions import barker13, golomb_filters, random_filters, sparse_filters
from ..model.dictionary import ConvDictionary
from ..model.measures import extreme_magnitudes, patch_l0_inf, patch_l2_inf, stripe_l0_inf
from ..model.mlcsc import MLCSC
from ..model.sampler import sample_instance
from ..pursuits._basis_pursuit import basis_pursuit
from ..pursuits._omp import omp
from ..pursuits._threshold import layered_thresholding
from ._base import Outcome, Theorem, register

#: Signal length of every instance (>= 2n - 1 for every layer; four spikes at spacing 32).
LENGTH = 128

#: Relative tolerance of the closed-form pursuits (thresholding, dense least squares).
CLOSED_FORM_TOL = 1e-12

#: Target relative duality gap of the BP solves before their support is polished and certified.
BP_TOL = 1e-10


@cache
def golomb_model(marks: tuple[int, ...], signs: tuple[tuple[int, ...], ...]) -> MLCSC:
    """Barker-13 over Golomb-ruler filters (cached: the instances share their dictionaries)."""
    return MLCSC([barker13(), golomb_filters(marks, signs)])


#: THEORY.md §5's D_2: marks {0, 1, 4, 6}, two atoms, μ_2 = 1/4.
GOLOMB4 = ((0, 1, 4, 6), ((1, 1, 1, 1), (1, -1, 1, -1)))
#: Two marks {0, 3}, two atoms of orthogonal signs, μ_2 = 1/2 (soft thresholding is feasible).
GOLOMB2 = ((0, 3), ((1, 1), (1, -1)))
#: Two marks {0, 3}, one non-negative atom (ReLU needs Γ_1 = D_2Γ_2 >= 0).
GOLOMB2_NONNEG = ((0, 3), ((1, 1),))


@cache
def _effective(model: MLCSC) -> ConvDictionary:
    """:math:`D^{(K)}` of a cached model."""
    return model.effective(model.n_layers)


@cache
def _dense(D: ConvDictionary, length: int) -> np.ndarray:
    """The global matrix of ``D`` on ``length`` samples (cached per dictionary)."""
    return D.to_dense((length,))


def planted_spikes(rng: np.random.Generator, m: int, spacing: int, amplitude: float,
                   contrast: float, nonneg: bool) -> np.ndarray:
    r"""Isolated spikes :math:`\Gamma_2` of shape ``(m, LENGTH)``: one every ``spacing``
    positions (the wrap-around gap is at least ``spacing`` too), random atom, magnitudes uniform in
    ``[contrast·a, a]``, random signs unless ``nonneg``."""
    count = LENGTH // spacing
    positions = (int(rng.integers(LENGTH)) + spacing * np.arange(count)) % LENGTH
    values = rng.uniform(contrast * amplitude, amplitude, count)
    if not nonneg:
        values *= rng.choice((-1.0, 1.0), count)
    gamma = np.zeros((m, LENGTH))
    gamma[rng.integers(m, size=count), positions] = values
    return gamma


def _noise_patch(rng: np.random.Generator, n1: int, level: float) -> np.ndarray:
    r"""Gaussian noise ``(1, LENGTH)`` rescaled so that :math:`\|E\|^p_{2,\infty} = ` ``level``
    (patches of side ``n1``)."""
    gaussian = rng.standard_normal((1, LENGTH))
    return gaussian * (level / float(patch_l2_inf(gaussian, n1)))


def _patch_width(model: MLCSC, i: int) -> int:
    """Patch side of Γ_i (i = 1..K): n_{i+1}, 1 for the deepest layer (THEORY.md §2)."""
    return model.layers[i].kernel_size[0] if i < model.n_layers else 1


def common_hypotheses(model: MLCSC) -> dict[str, float]:
    """Unit atoms and N >= 2n_i - 1 (the local coherence is the global one) for every layer."""
    margins = {}
    for i, layer in enumerate(model.layers, start=1):
        margins[f"unit atoms D{i} (1e-12 - max|‖a‖-1|)"] = (
            1e-12 - float(np.abs(layer.atom_norms() - 1).max()))
        margins[f"N - (2n_{i} - 1) + 1"] = float(LENGTH - (2 * layer.kernel_size[0] - 1) + 1)
    return margins


@dataclass(frozen=True)
class LayerMeasures:
    r"""What the bounds read from one layer :math:`\Gamma_i`."""

    k: int  # ‖Γ_i‖^s_{0,∞}, stripe side 2n_i - 1
    mu: float  # μ(D_i)
    low: float  # |Γ_i^min|
    high: float  # |Γ_i^max|
    patch: int  # ‖Γ_i‖^p_{0,∞}, patch side n_{i+1} (1 for the deepest layer)


def layer_measures(model: MLCSC, codes) -> tuple[LayerMeasures, ...]:
    out = []
    for i, (layer, gamma) in enumerate(zip(model.layers, codes, strict=True), start=1):
        low, high = extreme_magnitudes(gamma)
        out.append(LayerMeasures(int(stripe_l0_inf(gamma, layer.kernel_size[0])), layer.coherence(),
                             low, high, int(patch_l0_inf(gamma, _patch_width(model, i)))))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Layered thresholding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    r"""The LT quantities of one layer: :math:`K_i`, the top :math:`|\Gamma_i^{\min}| - C_i` of
    the threshold interval, :math:`\beta_i`, :math:`C_i`, the ∞-error bound
    :math:`C_i\,[+\beta_i]`, and :math:`\varepsilon_L^{i-1}`, :math:`\varepsilon_L^i`."""

    K: float
    top: float
    beta: float
    C: float
    inf_bound: float
    eps_in: float
    eps_out: float


def lt_chain(layers: tuple[LayerMeasures, ...], eps0: float, kind: str, *, betas=None,
              theta=None) -> list[_Step]:
    r"""Propagate :math:`\varepsilon_L^i` through the layers (THEORY.md LT).

    ``betas`` gives the thresholds; otherwise ``theta[i]`` in (0, 1) places :math:`\beta_i =
    K_i + \theta_i(|\Gamma_i^{\min}| - C_i - K_i)`. Soft and ReLU add :math:`\beta_i` to the error
    (their shrinkage); hard does not (THEORY.md §7.5).
    """
    steps, eps = [], eps0
    for i, layer in enumerate(layers):
        C = (layer.k - 1) * layer.mu * layer.high + eps
        K = layer.k * layer.mu * layer.high + eps
        top = layer.low - C
        beta = float(betas[i]) if betas is not None else K + theta[i] * (top - K)
        inf_bound = C if kind == "hard" else C + beta
        eps_out = math.sqrt(layer.patch) * inf_bound
        steps.append(_Step(K, top, beta, C, inf_bound, eps, eps_out))
        eps = eps_out
    return steps


@dataclass(frozen=True, eq=False)
class LTInstance:
    """A two-layer ML-CSC signal ``y = D_1Γ_1 + E`` and the thresholds of the forward pass."""

    model: MLCSC
    codes: tuple[np.ndarray, ...]  # (Γ_1, Γ_2)
    noise: np.ndarray
    y: np.ndarray
    thresholds: tuple[float, ...]
    kind: str


class _LayeredThresholding(Theorem):
    """Shared sampler, hypotheses and check of LT-hard, LT-soft and LT-relu."""

    paper = "JMLR"
    status = "S+D"
    kind: str
    #: ``(marks, signs)`` of D_2.
    golomb: tuple
    #: Range of the contrast of Γ_2.
    contrast_range: tuple[float, float]
    #: Range of the relative position θ_i of β_i in its interval, per layer.
    theta_ranges: tuple[tuple[float, float], ...]

    def sample(self, rng: np.random.Generator, knob: float) -> LTInstance:
        """Spikes of contrast in ``contrast_range``; β_i at a random relative position θ_i of its
        interval; :math:`\\varepsilon_0 = ` ``knob`` · (the largest noise for which every interval
        is non-empty with these θ_i: the margins are affine in :math:`\\varepsilon_0`)."""
        model = golomb_model(*self.golomb)
        gamma2 = planted_spikes(rng, model.layers[1].n_atoms, 32, float(rng.uniform(0.5, 2.0)),
                         float(rng.uniform(*self.contrast_range)), self.kind == "relu")
        codes = tuple(model.synthesize(gamma2)[1:])
        layers = layer_measures(model, codes)
        theta = [float(rng.uniform(*r)) for r in self.theta_ranges]
        at0 = [s.top - s.K for s in lt_chain(layers, 0.0, self.kind, theta=theta)]
        at1 = [s.top - s.K for s in lt_chain(layers, 1.0, self.kind, theta=theta)]
        if min(at0) <= 0:
            raise RuntimeError(f"{self.id}: the construction leaves an empty interval {at0}")
        eps_max = min(a / (a - b) for a, b in zip(at0, at1, strict=True) if a > b)
        eps0 = knob * eps_max
        noise = _noise_patch(rng, model.layers[0].kernel_size[0], eps0)
        betas = tuple(s.beta for s in lt_chain(layers, eps0, self.kind, theta=theta))
        y = model.layers[0].synthesize(codes[0]) + noise
        return LTInstance(model, codes, noise, y, betas, self.kind)

    def _steps(self, instance: LTInstance) -> tuple[tuple[LayerMeasures, ...], list[_Step]]:
        layers = layer_measures(instance.model, instance.codes)
        eps0 = float(patch_l2_inf(instance.noise, instance.model.layers[0].kernel_size[0]))
        return layers, lt_chain(layers, eps0, instance.kind, betas=instance.thresholds)

    def hypotheses(self, instance: LTInstance) -> dict[str, float]:
        margins = common_hypotheses(instance.model)
        _, steps = self._steps(instance)
        for i, step in enumerate(steps, start=1):
            margins[f"beta_{i} - K_{i}"] = step.beta - step.K
            margins[f"|Γ_{i}^min| - C_{i} - beta_{i}"] = step.top - step.beta
            if instance.kind == "relu":
                low = float(instance.codes[i - 1].min())
                margins[f"Γ_{i} >= 0 (1 or min Γ_{i})"] = 1.0 if low >= 0 else low
        return margins

    def check(self, instance: LTInstance, engine: str = "auto") -> Outcome:
        model = instance.model
        layers, steps = self._steps(instance)
        result = layered_thresholding(model, instance.y, list(instance.thresholds),
                                      instance.kind, engine=engine)
        details: dict[str, float] = {}
        holds, worst = True, (-1.0, 0.0, 0.0)
        for i, (gamma, estimate, layer, step) in enumerate(
                zip(instance.codes, result.codes, layers, steps, strict=True), start=1):
            slack = CLOSED_FORM_TOL * (layer.high + step.eps_in + step.beta)
            error = estimate - gamma
            signs = bool(np.array_equal(np.sign(estimate), np.sign(gamma)))
            inf_error = float(np.abs(error).max())
            patch_error = float(patch_l2_inf(error, _patch_width(model, i)))
            details[f"support and signs {i}"] = float(signs)
            details[f"inf error {i}"] = inf_error
            details[f"inf bound {i}"] = step.inf_bound
            details[f"patch error {i}"] = patch_error
            details[f"eps_L^{i}"] = step.eps_out
            holds &= (signs and inf_error <= step.inf_bound + slack
                      and patch_error <= step.eps_out + slack)
            ratio = patch_error / step.eps_out if step.eps_out > 0 else float(patch_error > 0)
            if ratio > worst[0]:
                worst = (ratio, patch_error, step.eps_out)
        if instance.kind == "hard":
            invariant = self._invariant(instance, steps, result.codes, engine)
            details["same output across the intervals"] = float(invariant)
            holds &= invariant
        return Outcome(worst[1], worst[2], bool(holds), details)

    @staticmethod
    def _invariant(instance: LTInstance, steps: list[_Step], codes, engine: str) -> bool:
        """Hard thresholding gives the same output with every β_i near either end of its interval
        (with hard thresholding ε_L^i, hence the intervals, do not depend on β)."""
        for theta in (1e-3, 1 - 1e-3):
            betas = [s.K + theta * (s.top - s.K) for s in steps]
            other = layered_thresholding(instance.model, instance.y, betas, "hard", engine=engine)
            if not all(np.array_equal(a, b) for a, b in zip(codes, other.codes, strict=True)):
                return False
        return True


@register
class LayeredHardThresholding(_LayeredThresholding):
    id = "LT-hard"
    kind = "hard"
    statement = ("K_i < β_i < |Γ_i^min| − C_i ∀i ⇒ hard forward pass: supp/signs exact, "
                 "‖Γ̂_i − Γ_i‖_∞ ≤ C_i, ‖·‖^p_{2,∞} ≤ ε_L^i, output invariant in β_i")
    golomb = GOLOMB4
    contrast_range = (0.8, 1.0)
    theta_ranges = ((0.02, 0.98), (0.02, 0.98))


@register
class LayeredSoftThresholding(_LayeredThresholding):
    id = "LT-soft"
    kind = "soft"
    statement = ("K_i < β_i < |Γ_i^min| − C_i ∀i ⇒ soft forward pass: supp/signs exact, "
                 "‖Γ̂_i − Γ_i‖_∞ ≤ C_i + β_i, ‖·‖^p_{2,∞} ≤ ε_L^i (β_i included)")
    golomb = GOLOMB2
    contrast_range = (0.995, 1.0)
    theta_ranges = ((0.002, 0.02), (0.02, 0.98))


@register
class LayeredReLUThresholding(_LayeredThresholding):
    id = "LT-relu"
    kind = "relu"
    statement = ("Γ_i ≥ 0, K_i < β_i < |Γ_i^min| − C_i ∀i ⇒ ReLU forward pass: supp exact, "
                 "‖Γ̂_i − Γ_i‖_∞ ≤ C_i + β_i, ‖·‖^p_{2,∞} ≤ ε_L^i (β_i included)")
    golomb = GOLOMB2_NONNEG
    contrast_range = (0.995, 1.0)
    theta_ranges = ((0.002, 0.02), (0.02, 0.98))


# --------------------------------------------------------------------------------------------
# Spike instances shared by J2, LBP and LBP-noiseless
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpikeInstance:
    r"""``y = D_1D_2\Gamma_2 + E`` with isolated spikes :math:`\Gamma_2` and THEORY's Golomb
    :math:`D_2`; ``radius`` is the :math:`E_0` of J2 (``None`` elsewhere)."""

    model: MLCSC
    codes: tuple[np.ndarray, ...]  # (Γ_1, Γ_2)
    noise: np.ndarray
    y: np.ndarray
    radius: float | None = None


def _spike_instance(rng: np.random.Generator, spacing: int, contrast: float,
                    noise: np.ndarray | None) -> SpikeInstance:
    """Spikes of largest magnitude at most 1 and the given ``contrast`` (spacing ``spacing``) on
    THEORY's two-layer model, plus ``noise`` (``None``: noiseless)."""
    model = golomb_model(*GOLOMB4)
    gamma2 = planted_spikes(rng, model.layers[1].n_atoms, spacing, 1.0, contrast, False)
    codes = tuple(model.synthesize(gamma2)[1:])
    noise = np.zeros((1, LENGTH)) if noise is None else noise
    return SpikeInstance(model, codes, noise, model.layers[0].synthesize(codes[0]) + noise)


def _sparsity_margins(instance: SpikeInstance, fraction: float) -> dict[str, float]:
    r"""Common margins and :math:`\text{fraction}\cdot(1 + 1/\mu_i) - k_i` for every layer."""
    margins = common_hypotheses(instance.model)
    for i, layer in enumerate(layer_measures(instance.model, instance.codes), start=1):
        margins[f"{fraction:.4g}(1 + 1/μ_{i}) - k_{i}"] = fraction * (1 + 1 / layer.mu) - layer.k
    return margins


# --------------------------------------------------------------------------------------------
# J2: stability of the deep coding problem
# --------------------------------------------------------------------------------------------


def _support_synthesis(instance: SpikeInstance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`A = D_1D_2[:, S_2]`, :math:`D_2[:, S_2]` and :math:`S_2 = \mathrm{supp}\,\Gamma_2`
    (flat indices)."""
    model = instance.model
    support = np.flatnonzero(instance.codes[1].ravel())
    second = _dense(model.layers[1], LENGTH)[:, support]
    return _dense(model.layers[0], LENGTH) @ second, second, support


def _dcp_candidates(instance: SpikeInstance, engine: str) -> list[tuple[str, np.ndarray]]:
    r"""Deepest codes :math:`\hat\Gamma_2` of DCP\ :sup:`E` candidates (feasibility is verified by
    the caller): the truth; the four points :math:`\delta_c \pm u` on the true support
    :math:`S_2` that push the layer-1 or the layer-2 error out to the noise ellipsoid
    :math:`\|E - A\delta\|_2 \le E_0`, :math:`A = D_1D_2[:, S_2]` (:math:`\delta_c` the
    least-squares fit of :math:`E`, :math:`u` along the top generalised eigenvector of
    :math:`(B^TB, A^TA)` with :math:`B = D_2[:, S_2]` or :math:`I`, scaled to the boundary); and
    OMP on :math:`D^{(2)} = D_1D_2` with :math:`\|\Gamma_2\|_0` steps and residual budget
    :math:`E_0` (the ℓ0 projection :math:`P_{\mathcal M}` of THEORY §3 without its stripe
    constraint, which on :math:`D^{(2)}`'s wider stripes excludes the true support here)."""
    model, gamma2 = instance.model, instance.codes[1]
    A, second, support = _support_synthesis(instance)
    centre = np.linalg.lstsq(A, instance.noise.ravel(), rcond=None)[0]
    rest = instance.noise.ravel() - A @ centre
    room = math.sqrt(max(instance.radius**2 - float(rest @ rest), 0.0)) * (1 - 1e-9)
    candidates = [("truth", gamma2)]
    for name, B in (("ellipsoid layer 1", second), ("ellipsoid layer 2", np.eye(support.size))):
        direction = scipy.linalg.eigh(B.T @ B, A.T @ A)[1][:, -1]
        step = room * direction / np.linalg.norm(A @ direction)
        for sign in (1.0, -1.0):
            estimate = np.zeros(gamma2.size)
            estimate[support] = gamma2.ravel()[support] + centre + sign * step
            candidates.append((f"{name} {sign:+.0f}", estimate.reshape(gamma2.shape)))
    omp_codes = omp(_effective(model), instance.y, n_nonzero=support.size, tol=instance.radius,
                    engine=engine).codes[0]
    candidates.append(("OMP on D1D2", omp_codes))
    return candidates


@register
class DCPStability(Theorem):
    id = "J2"
    paper = "JMLR"
    status = "D"
    statement = ("‖E‖₂ ≤ E_0, ‖Γ_i‖^s_{0,∞} < ½(1 + 1/μ_i) ⇒ every DCP^E solution has "
                 "‖Γ̂_i − Γ_i‖₂² ≤ E_i² = 4E_{i−1}²/(1 − (2‖Γ_i‖^s_{0,∞} − 1)μ_i)")

    def sample(self, rng: np.random.Generator, knob: float) -> SpikeInstance:
        """Spikes (spacing 32, contrast in [0.3, 1]); noise of ℓ2 norm in [0.01, 0.5] (relative
        to the largest spike) mixing a Gaussian draw (weight 1 − knob) with the direction
        :math:`Av` (weight knob), :math:`A = D_1D_2[:, S_2]`, :math:`v` its least singular
        vector: the worst case, where a feasible point can reach :math:`\\|A\\delta\\| = 2E_0`;
        :math:`E_0 = \\|E\\|_2(1 + 0.2(1 - \\text{knob}))`."""
        clean = _spike_instance(rng, 32, float(rng.uniform(0.3, 1.0)), None)
        A = _support_synthesis(clean)[0]
        worst = A @ np.linalg.svd(A)[2][-1]
        gaussian = rng.standard_normal(LENGTH)
        noise = (1 - knob) * gaussian / np.linalg.norm(gaussian) + knob * worst / np.linalg.norm(
            worst)
        noise *= float(rng.uniform(0.01, 0.5)) / np.linalg.norm(noise)
        radius = float(np.linalg.norm(noise)) * (1 + 0.2 * (1 - knob))
        noise = noise.reshape(1, LENGTH)
        return SpikeInstance(clean.model, clean.codes, noise, clean.y + noise, radius)

    def hypotheses(self, instance: SpikeInstance) -> dict[str, float]:
        margins = _sparsity_margins(instance, 0.5)
        margins["E_0 - ‖E‖₂"] = instance.radius - float(np.linalg.norm(instance.noise))
        return margins

    def _radii(self, instance: SpikeInstance) -> list[float]:
        """:math:`E_1^2, E_2^2`."""
        radii, energy = [], instance.radius**2
        for layer in layer_measures(instance.model, instance.codes):
            energy = 4 * energy / (1 - (2 * layer.k - 1) * layer.mu)
            radii.append(energy)
        return radii

    def check(self, instance: SpikeInstance, engine: str = "auto") -> Outcome:
        model = instance.model
        bounds = self._radii(instance)
        limits = [layer.k for layer in layer_measures(model, instance.codes)]
        details: dict[str, float] = {"E_1^2": bounds[0], "E_2^2": bounds[1]}
        holds, worst, feasible = True, (-1.0, 0.0, 1.0), 0
        for name, gamma2 in _dcp_candidates(instance, engine):
            gamma1 = model.layers[1].synthesize(gamma2)
            residual = float(np.linalg.norm(instance.y - model.layers[0].synthesize(gamma1)))
            sparsities = [stripe_l0_inf(g, layer.kernel_size[0])
                          for g, layer in zip((gamma1, gamma2), model.layers, strict=True)]
            if residual > instance.radius or any(
                    s > k for s, k in zip(sparsities, limits, strict=True)):
                details[f"{name}: infeasible"] = 1.0
                continue
            feasible += 1
            for i, (estimate, truth, bound) in enumerate(
                    zip((gamma1, gamma2), instance.codes, bounds, strict=True), start=1):
                error = float(np.sum((estimate - truth) ** 2))
                details[f"{name}: error^2 {i}"] = error
                holds &= error <= bound * (1 + CLOSED_FORM_TOL)
                if error / bound > worst[0]:
                    worst = (error / bound, error, bound)
        details["feasible candidates"] = float(feasible)
        return Outcome(worst[1], worst[2], bool(holds), details)


# --------------------------------------------------------------------------------------------
# Layered basis pursuit
# --------------------------------------------------------------------------------------------


def _polish(dense: np.ndarray, b: np.ndarray, xi: float, estimate: np.ndarray) -> np.ndarray | None:
    r"""The exact BP minimiser on the support of ``estimate`` if the KKT conditions certify it.

    With :math:`S` the support and :math:`s` the signs of ``estimate`` (a FISTA output), solves
    :math:`A^TA\,x_S = A^Tb - \xi s` (:math:`A = D[:, S]`) and accepts when
    :math:`\mathrm{sign}(x_S) = s` and :math:`\|D^T(b - Ax)\|_\infty \le \xi` (up to
    :data:`CLOSED_FORM_TOL` relative): then :math:`x` minimises
    :math:`\tfrac12\|b - D\Gamma\|^2 + \xi\|\Gamma\|_1` (unique under the LBP hypotheses,
    THEORY W7 (d)). Returns ``None`` when the certificate fails.
    """
    flat = estimate.ravel()
    support = np.flatnonzero(flat)
    signs = np.sign(flat[support])
    x = np.zeros(flat.size)
    if support.size:
        A = dense[:, support]
        try:
            x[support] = np.linalg.solve(A.T @ A, A.T @ b.ravel() - xi * signs)
        except np.linalg.LinAlgError:
            return None
        if not np.array_equal(np.sign(x[support]), signs):
            return None
    correlations = dense.T @ (b.ravel() - dense @ x)
    if np.abs(correlations).max() > xi * (1 + CLOSED_FORM_TOL) + CLOSED_FORM_TOL * np.abs(b).max():
        return None
    return x.reshape(estimate.shape)


def certified_bp(D: ConvDictionary, b: np.ndarray, xi: float, engine: str
                  ) -> tuple[np.ndarray, bool]:
    r"""BP by :func:`basis_pursuit` (relative gap :data:`BP_TOL`), then polished on its support
    (:func:`_polish`). Returns the codes and whether they are KKT-certified minimisers; when they
    are not, the FISTA output itself (certified only to the relative gap ``BP_TOL``) is
    returned."""
    result = basis_pursuit(D, b, xi, tol=BP_TOL, max_iter=200000, engine=engine)
    # The smallest entries of a FISTA iterate may be still on their way to zero: drop the ones
    # far below the rest before the support is polished.
    estimate = result.codes[0].copy()
    estimate[np.abs(estimate) <= 1e-6 * np.abs(estimate).max(initial=0.0)] = 0.0
    polished = _polish(_dense(D, LENGTH), b, xi, estimate)
    if polished is None:
        return result.codes[0], False
    return polished, True


def _lbp_bounds(instance: SpikeInstance) -> list[float]:
    r""":math:`\varepsilon_L^0, \varepsilon_L^1, \dots`: :math:`\varepsilon_L^i =
    7.5\,\varepsilon_L^{i-1}\sqrt{\|\Gamma_i\|^p_{0,\infty}}`."""
    eps = [float(patch_l2_inf(instance.noise, instance.model.layers[0].kernel_size[0]))]
    for layer in layer_measures(instance.model, instance.codes):
        eps.append(7.5 * eps[-1] * math.sqrt(layer.patch))
    return eps


@register
class LayeredBasisPursuit(Theorem):
    id = "LBP"
    paper = "JMLR"
    status = "S+D"
    statement = ("k_i < ⅓(1 + 1/μ_i), ξ_i = 4ε_L^{i−1} ⇒ supp(Γ̂_i) ⊆ supp(Γ_i), ‖Γ̂_i − Γ_i‖^p_{2,∞}"
                 " ≤ ε_L^i = 7.5ε_L^{i−1}sqrt(‖Γ_i‖^p_{0,∞}), |Γ_i,j| > 7.5ε_L^{i−1} found")

    def sample(self, rng: np.random.Generator, knob: float) -> SpikeInstance:
        """Spikes (spacing 25 to 32: :math:`k_1 = 4`, :math:`k_2 = 1`, contrast in [0.2, 1]);
        noise patch energy :math:`\\varepsilon_0 = (0.002 + 0.03\\,\\text{knob})` × the largest
        spike (at the top, layer 2 is all noise and BP returns zero there)."""
        spacing = int(rng.integers(25, 33))
        contrast = float(rng.uniform(0.2, 1.0))
        noise = _noise_patch(rng, 13, 0.002 + 0.03 * knob)
        return _spike_instance(rng, spacing, contrast, noise)

    def hypotheses(self, instance: SpikeInstance) -> dict[str, float]:
        margins = _sparsity_margins(instance, 1 / 3)
        margins["‖E‖^p_{2,∞} (> 0: a relative BP certificate exists)"] = _lbp_bounds(instance)[0]
        return margins

    def check(self, instance: SpikeInstance, engine: str = "auto") -> Outcome:
        model = instance.model
        eps = _lbp_bounds(instance)
        current = instance.y
        details: dict[str, float] = {}
        holds, worst, certified = True, (-1.0, 0.0, 1.0), True
        for i, (layer, truth) in enumerate(zip(model.layers, instance.codes, strict=True), start=1):
            estimate, exact = certified_bp(layer, current, 4 * eps[i - 1], engine)
            certified &= exact
            # Certified codes are exact minimisers up to rounding. Uncertified ones (never seen
            # on these instances) get no extra slack: a failure then flags the solve, not a bound.
            slack = CLOSED_FORM_TOL * (np.abs(truth).max() + eps[i - 1])
            error = estimate - truth
            patch_error = float(patch_l2_inf(error, _patch_width(model, i)))
            outside = int(np.count_nonzero(estimate[truth == 0]))
            large = np.abs(truth) > 7.5 * eps[i - 1]
            missed = int(np.count_nonzero(estimate[large] == 0))
            flipped = int(np.count_nonzero(np.sign(estimate[large]) != np.sign(truth[large])))
            details[f"patch error {i}"] = patch_error
            details[f"eps_L^{i}"] = eps[i]
            details[f"inf error {i}"] = float(np.abs(error).max())
            details[f"non-zeros outside supp(Γ_{i})"] = float(outside)
            details[f"entries above 7.5 eps_L^{i - 1} missed"] = float(missed)
            details[f"entries above 7.5 eps_L^{i - 1}"] = float(np.count_nonzero(large))
            details[f"of which with a flipped sign {i}"] = float(flipped)
            holds &= outside == 0 and missed == 0 and patch_error <= eps[i] + slack
            if patch_error / eps[i] > worst[0]:
                worst = (patch_error / eps[i], patch_error, eps[i])
            current = estimate
        details["KKT-certified"] = float(certified)
        return Outcome(worst[1], worst[2], bool(holds), details)


def _equality_bp(dense: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\min\|\Gamma\|_1` s.t. :math:`D\Gamma = b` as the linear program over
    :math:`\Gamma = u - v`, :math:`u, v \ge 0` (HiGHS simplex: a vertex, exact up to rounding)."""
    columns = dense.shape[1]
    result = linprog(np.ones(2 * columns), A_eq=np.hstack([dense, -dense]), b_eq=b.ravel(),
                     bounds=(0, None), method="highs-ds")
    if result.status != 0:
        raise RuntimeError(f"equality-constrained BP failed: {result.message}")
    return result.x[:columns] - result.x[columns:]


#: Spike spacings of LBP-noiseless by knob: k_1 = ‖Γ_1‖^s_{0,∞} = 4, 4, 5, 6 (the bound is 7).
NOISELESS_SPACINGS = (32, 28, 24, 21)


@register
class NoiselessLayeredBasisPursuit(Theorem):
    id = "LBP-noiseless"
    paper = "JMLR"
    status = "S+D"
    statement = ("E = 0, k_i < ½(1 + 1/μ_i) ⇒ layered min ‖Γ‖₁ s.t. D_iΓ = Γ̂_{i−1} recovers "
                 "every Γ_i exactly")

    def sample(self, rng: np.random.Generator, knob: float) -> SpikeInstance:
        """Spikes, denser as ``knob`` grows (``NOISELESS_SPACINGS``: :math:`k_1` from 4 to 6, the
        largest below :math:`\\tfrac12(1 + 13) = 7`), contrast in [0.1, 1], no noise."""
        spacing = NOISELESS_SPACINGS[min(int(knob * len(NOISELESS_SPACINGS)), 3)]
        return _spike_instance(rng, spacing, float(rng.uniform(0.1, 1.0)), None)

    def hypotheses(self, instance: SpikeInstance) -> dict[str, float]:
        margins = _sparsity_margins(instance, 0.5)
        margins["E = 0 (1 or -‖E‖_∞)"] = 1.0 if not np.any(instance.noise) else -float(
            np.abs(instance.noise).max())
        return margins

    def check(self, instance: SpikeInstance, engine: str = "auto") -> Outcome:
        current = instance.y
        details: dict[str, float] = {}
        worst = 0.0
        for i, (layer, truth) in enumerate(zip(instance.model.layers, instance.codes,
                                               strict=True), start=1):
            current = _equality_bp(_dense(layer, LENGTH), current).reshape(truth.shape)
            relative = float(np.abs(current - truth).max() / np.abs(truth).max())
            details[f"relative inf error {i}"] = relative
            worst = max(worst, relative)
        # The LP's feasibility tolerance (1e-7, HiGHS) limits how exact a vertex can be.
        tolerance = 1e-9
        return Outcome(worst, tolerance, worst <= tolerance, details)


# --------------------------------------------------------------------------------------------
# SP: sparsity propagation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PropagationInstance:
    """A three-layer model with sparse deeper filters and its codes ``(Γ_0 = X, Γ_1, Γ_2, Γ_3)``."""

    model: MLCSC
    codes: tuple[np.ndarray, ...]


def _column_nonzeros(D: ConvDictionary) -> int:
    """Most non-zeros of a column of the global D (an atom's non-zero taps over its channels,
    when N >= n)."""
    return int(np.count_nonzero(D.filters.reshape(D.n_atoms, -1), axis=1).max())


@register
class SparsityPropagation(Theorem):
    id = "SP"
    paper = "JMLR"
    status = "D"
    statement = "‖Γ_{i−1}‖₀ ≤ (max non-zeros of a column of D_i)·‖Γ_i‖₀"

    def sample(self, rng: np.random.Generator, knob: float) -> PropagationInstance:
        """Gaussian D_1 (2 atoms, length 5), sparse non-negative D_2, D_3 (1 to 4 non-zeros per
        atom) on N = 64; non-negative Γ_3 with stripe sparsity 1 and fewer non-zeros as ``knob``
        grows (isolated atoms make the bound an equality). Non-negative deeper filters and codes
        rule out cancellations (two random sparse atoms may be exact negatives of each other,
        which would make a layer vanish)."""
        deeper = [ConvDictionary(np.abs(sparse_filters(m, c, n, int(rng.integers(1, 5)), rng)
                                        .filters)) for m, c, n in ((3, 2, 4), (4, 3, 3))]
        model = MLCSC([random_filters(2, 1, 5, rng), *deeper])
        n_nonzero = 1 + round(15 * (1 - knob))
        planted = sample_instance(model, 64, rng, k=1, n_nonzero=n_nonzero, nonneg=True)
        return PropagationInstance(model, (planted.signal, *planted.codes))

    def hypotheses(self, instance: PropagationInstance) -> dict[str, float]:
        length = instance.codes[0].shape[-1]
        return {f"N - n_{i} + 1 (columns do not wrap)": float(length - layer.kernel_size[0] + 1)
                for i, layer in enumerate(instance.model.layers, start=1)}

    def check(self, instance: PropagationInstance, engine: str = "auto") -> Outcome:
        details: dict[str, float] = {}
        holds, worst = True, (-1.0, 0.0, 1.0)
        layers = instance.model.synthesize(instance.codes[-1], engine=engine)
        for i, layer in enumerate(instance.model.layers, start=1):
            count = int(np.count_nonzero(layers[i - 1]))
            bound = _column_nonzeros(layer) * int(np.count_nonzero(layers[i]))
            details[f"‖Γ_{i - 1}‖_0"] = float(count)
            details[f"bound {i - 1}"] = float(bound)
            holds &= count <= bound
            if count / bound > worst[0]:
                worst = (count / bound, float(count), float(bound))
        return Outcome(worst[1], worst[2], bool(holds), details)

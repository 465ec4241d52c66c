r"""Adversarial robustness of sparse-coding classifiers (THEORY.md §4, ADV; [ADV] Romano,
Aberdam, Sulam, Elad 2020, "Adversarial noise attacks of deep learning architectures:
stability analysis via sparse-modeled signals").

A linear classifier reads the deepest code, :math:`\mathrm{sign}(w^T\Gamma_K + \omega)`, with
margin :math:`O_B = |w^T\Gamma_K + \omega|`. If a pursuit returns :math:`\hat\Gamma_K` with
:math:`|w^T(\hat\Gamma_K - \Gamma_K)| < O_B` the label is kept. Each theorem bounds that shift:

- **ADV-LT** [D], layered hard thresholding under the LT hypotheses at every layer
  (:math:`K_i < \beta_i < |\Gamma_i^{\min}| - C_i`, with
  :math:`\varepsilon_L^0 = \|E\|^p_{2,\infty}` (:math:`w = n_1`),
  :math:`C_i = (k_i - 1)\mu_i|\Gamma_i^{\max}| + \varepsilon_L^{i-1}`,
  :math:`K_i = k_i\mu_i|\Gamma_i^{\max}| + \varepsilon_L^{i-1}`,
  :math:`\varepsilon_L^i = \sqrt{\|\Gamma_i\|^p_{0,\infty}}\,C_i`, stripes with :math:`n_i`,
  patches with :math:`n_{i+1}`, deepest :math:`w = 1`): LT gives
  :math:`\mathrm{supp}\,\hat\Gamma_K = \mathrm{supp}\,\Gamma_K` and
  :math:`\|\hat\Gamma_K - \Gamma_K\|_\infty \le C_K`, so :math:`|w^T(\hat\Gamma_K - \Gamma_K)|
  \le \|w\|_1 C_K`; hence :math:`\|w\|_1 C_K < O_B` keeps the label.
- **ADV-LBP** [D], layered BP with :math:`\xi_i = 4\varepsilon_L^{i-1}`,
  :math:`\varepsilon_L^i = 7.5\,\varepsilon_L^{i-1}\sqrt{\|\Gamma_i\|^p_{0,\infty}}`,
  :math:`k_i < \tfrac13(1 + 1/\mu_i)`: W7 on the last layer gives
  :math:`\mathrm{supp}\,\hat\Gamma_K \subseteq \mathrm{supp}\,\Gamma_K` and
  :math:`\|\hat\Gamma_K - \Gamma_K\|_\infty \le 7.5\varepsilon_L^{K-1}`, so
  :math:`7.5\,\varepsilon_L^{K-1}\|w\|_1 < O_B` keeps the label, whatever the contrast.
- **ADV-P0** [D], one layer, :math:`\|E\|_2 \le \varepsilon`, :math:`k = \|\Gamma\|^s_{0,\infty}
  < \tfrac12(1 + 1/\mu)`, unit atoms: **every** :math:`\hat\Gamma` with
  :math:`\|\hat\Gamma\|^s_{0,\infty} \le k` and :math:`\|Y - D\hat\Gamma\|_2 \le \varepsilon` (in
  particular the :math:`P_{0,\infty}` solution, for which the true :math:`\Gamma` is feasible)
  has :math:`\|\hat\Gamma - \Gamma\|_2 \le 2\varepsilon/\sqrt{1 - (2k-1)\mu}` (as in PM), so
  :math:`|w^T(\hat\Gamma - \Gamma)| \le \|w\|_2\,2\varepsilon/\sqrt{1 - (2k-1)\mu}` and
  :math:`\varepsilon < O_B\sqrt{1 - (2k-1)\mu}/(2\|w\|_2)` keeps the label. The
  :math:`P_{0,\infty}` solution itself is not computable here; the check covers the computable
  feasible points: the stripe-constrained OMP output (when feasible), the true Γ and a
  competitor built with the instance (as in :mod:`mlverify.theorems.pdl`).

**Measured vs bound.** ``measured`` is the realised shift :math:`|w^T(\hat\Gamma_K -
\Gamma_K)|` (the largest over the checked points) and ``bound`` the margin :math:`O_B`: the label
is kept when the ratio is below 1, and the ratio says how much of the margin the attack used.
The certified shift (:math:`\|w\|_1 C_K`, …) is below :math:`O_B` by construction (its ratio to
:math:`O_B` → 1 as the knob → 1) and is reported in the details with the realised/certified
ratio. ``holds`` requires both conclusions: the label is kept and the realised shift is within
the certified shift (the step of the proof the label rests on).

**Instances** (THEORY.md §5): :math:`D_1` = Barker-13 (:math:`\mu = 1/13`), :math:`D_2` = the
Golomb filters (:math:`\mu = 1/4`), isolated spikes in :math:`\Gamma_2` 32 positions apart on
:math:`N = 128` (so :math:`k_1 = 4`, :math:`\|\Gamma_1\|^p_{0,\infty} = 4`, :math:`k_2 = 1`). The
classifier lives on the support of :math:`\Gamma_K` (plus a small dense part) with signs that
make the pursuit's bias move toward the decision boundary, and the noise is an attack: the
gradient of :math:`w^T\hat\Gamma_K` through the pursuit on the true supports, pushed toward the
boundary, mixed with Gaussian noise and rescaled to the prescribed energy. The knob moves the
margin :math:`O_B` down to the certified shift (slack :math:`(1 - \text{knob})`) and, for
ADV-LT, the noise toward the largest level the LT hypotheses allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.constructions import barker13
from ..model.dictionary import ConvDictionary
from ..model.measures import extreme_magnitudes, patch_l0_inf, patch_l2_inf, stripe_l0_inf
from ..model.mlcsc import MLCSC
from ..pursuits.layered import layered_basis_pursuit
from ..pursuits.omp import omp
from ..pursuits.threshold import layered_thresholding
from ._base import Outcome, Theorem, register
from .pdl import LENGTH, barker_golomb, between, coherent_pairs, cyclic_distance, move_atom

#: Spacing of the spikes of :math:`\Gamma_2` (THEORY.md §5).
SPACING = 32
#: Relative duality gap of every layered-BP solve.
BP_TOL = 1e-10
#: Relative tolerance of the conclusions: closed-form pursuits, then certified BP solves.
RTOL_EXACT, RTOL_BP = 1e-12, 1e-9


@dataclass(frozen=True, eq=False)
class ClassifierInstance:
    r"""A noisy ML-CSC signal and a linear classifier of its deepest code.

    Attributes
    ----------
    model : MLCSC
    codes : tuple of ndarray
        True :math:`(\Gamma_1, \dots, \Gamma_K)`.
    signal, y : ndarray
        :math:`X` and :math:`Y = X + E`.
    w : ndarray, shape ``(m_K, N)``
    omega : float
        The bias :math:`\omega`.
    thresholds : tuple of float
        :math:`\beta_i` (layered thresholding only; empty otherwise).
    """

    model: MLCSC
    codes: tuple[np.ndarray, ...]
    signal: np.ndarray
    y: np.ndarray
    w: np.ndarray
    omega: float
    thresholds: tuple[float, ...] = ()


@dataclass(frozen=True)
class Layer:
    """The LT / LBP quantities of one layer (THEORY.md §4)."""

    k: int
    mu: float
    low: float
    high: float
    patch: int
    eps_in: float
    eps_out: float

    @property
    def C(self) -> float:
        return (self.k - 1) * self.mu * self.high + self.eps_in

    @property
    def K(self) -> float:
        return self.k * self.mu * self.high + self.eps_in


def chain(model: MLCSC, codes, eps0: float, kind: str) -> list[Layer]:
    r"""The layer-by-layer bounds from :math:`\varepsilon_L^0`: ``kind="lt"`` (hard thresholding,
    :math:`\varepsilon_L^i = \sqrt{p_i}C_i`) or ``"lbp"`` (:math:`\varepsilon_L^i =
    7.5\varepsilon_L^{i-1}\sqrt{p_i}`), :math:`p_i = \|\Gamma_i\|^p_{0,\infty}` with
    :math:`w = n_{i+1}` (1 for the deepest layer)."""
    layers = []
    eps = eps0
    sizes = [layer.kernel_size[0] for layer in model.layers] + [1]
    for i, (gamma, D) in enumerate(zip(codes, model.layers, strict=True)):
        low, high = extreme_magnitudes(gamma)
        patch = int(patch_l0_inf(gamma, sizes[i + 1]))
        layer = Layer(int(stripe_l0_inf(gamma, sizes[i])), D.coherence(), low, high, patch,
                      eps, 0.0)
        out = math.sqrt(patch) * (layer.C if kind == "lt" else 7.5 * eps)
        layer = Layer(layer.k, layer.mu, low, high, patch, eps, out)
        layers.append(layer)
        eps = out
    return layers


def unit_atoms_margin(model: MLCSC) -> float:
    """``1e-12 - max |‖a_f‖ - 1|`` over every layer's atoms."""
    return 1e-12 - max(float(np.abs(D.atom_norms() - 1).max()) for D in model.layers)


def spikes(rng: np.random.Generator, m: int, low: float) -> np.ndarray:
    r"""Isolated spikes, one every :data:`SPACING` positions (a random non-empty subset), random
    atoms and signs, magnitudes uniform in ``[low, 1]``."""
    gamma = np.zeros((m, LENGTH))
    start = int(rng.integers(SPACING))
    slots = np.flatnonzero(rng.random(LENGTH // SPACING) < 0.75)
    if slots.size == 0:
        slots = np.array([int(rng.integers(LENGTH // SPACING))])
    positions = start + SPACING * slots
    gamma[rng.integers(m, size=slots.size), positions] = (
        rng.uniform(low, 1.0, slots.size) * rng.choice((-1.0, 1.0), slots.size))
    return gamma


def classifier(rng: np.random.Generator, gamma: np.ndarray) -> np.ndarray:
    r"""Weights on :math:`\mathrm{supp}\,\Gamma_K` with the signs of :math:`\Gamma_K` (a pursuit
    that shrinks the codes moves :math:`w^T\hat\Gamma_K` toward the boundary when the label is
    +1), plus a small dense part."""
    w = np.sign(gamma) * rng.uniform(0.5, 1.0, gamma.shape)
    return w + rng.uniform(0.0, 0.005) * rng.standard_normal(gamma.shape)


def attack(model: MLCSC, codes, w: np.ndarray, rng: np.random.Generator, patch: float,
           label: float) -> np.ndarray:
    r"""Noise :math:`E` with :math:`\|E\|^p_{2,\infty} =` ``patch`` (:math:`w = n_1`): the
    gradient :math:`g = D_1 P_1 D_2 P_2 \cdots w` of :math:`w^T\hat\Gamma_K` through a forward
    pass that keeps the true supports :math:`P_i`, pointed against ``label``, plus Gaussian
    noise of random relative weight."""
    g = w * (codes[-1] != 0)
    for D, gamma in zip(model.layers[:0:-1], codes[-2::-1], strict=True):
        g = D.synthesize(g) * (gamma != 0)
    g = model.layers[0].synthesize(g)
    noise = rng.standard_normal(g.shape)
    direction = -label * g / np.linalg.norm(g) + rng.uniform(0, 1) * noise / np.linalg.norm(noise)
    return direction * (patch / float(patch_l2_inf(direction, model.layers[0].kernel_size[0])))


def bias_for(w: np.ndarray, gamma: np.ndarray, margin: float, label: float) -> float:
    r""":math:`\omega` with :math:`w^T\Gamma_K + \omega = \text{label}\cdot O_B`."""
    return label * margin - float(np.sum(w * gamma))


def shift_outcome(instance: ClassifierInstance, estimate: np.ndarray, certified: float,
                  rtol: float, name: str = "pursuit") -> tuple[float, bool, dict[str, float]]:
    r"""The realised shift :math:`|w^T(\hat\Gamma_K - \Gamma_K)|`, whether both conclusions hold
    (label kept, shift within ``certified``) and their values."""
    w, gamma = instance.w, instance.codes[-1]
    score = float(np.sum(w * gamma)) + instance.omega
    estimated = float(np.sum(w * np.asarray(estimate, dtype=np.float64))) + instance.omega
    shift = abs(estimated - score)
    kept = math.copysign(1.0, estimated) == math.copysign(1.0, score) and estimated != 0
    scale = float(np.abs(w).sum() * np.abs(gamma).max())
    within = shift <= certified * (1 + rtol) + rtol * scale
    return shift, kept and within, {f"{name}_shift": shift, f"{name}_label_kept": float(kept),
                                    f"{name}_shift/certified": shift / certified}


def classifier_hypotheses(instance: ClassifierInstance, certified: float) -> dict[str, float]:
    r"""Margins shared by the classifier theorems: unit atoms and :math:`O_B - \text{certified}`."""
    margin = abs(float(np.sum(instance.w * instance.codes[-1])) + instance.omega)
    return {"unit atoms (1e-12 - max|‖a_f‖-1|)": unit_atoms_margin(instance.model),
            "O_B - certified shift": margin - certified}


def noise_patch(instance: ClassifierInstance) -> float:
    r""":math:`\varepsilon_L^0 = \|Y - X\|^p_{2,\infty}` with :math:`w = n_1`."""
    return float(patch_l2_inf(instance.y - instance.signal,
                              instance.model.layers[0].kernel_size[0]))


def _lt_noise_limit(model: MLCSC, codes) -> float:
    r"""The largest :math:`\varepsilon_L^0` with :math:`K_i < |\Gamma_i^{\min}| - C_i` at every
    layer (every quantity is affine in :math:`\varepsilon_L^0` with a positive slope)."""
    at0, at1 = chain(model, codes, 0.0, "lt"), chain(model, codes, 1.0, "lt")
    limits = []
    for a, b in zip(at0, at1, strict=True):
        gap0 = a.low - a.C - a.K
        slope = (a.C + a.K) - (b.C + b.K)
        limits.append(gap0 / -slope)
    return min(limits)


def _classifier_margin(certified: float, knob: float) -> float:
    r""":math:`O_B` = the certified shift times :math:`1 + 2(1 - \text{knob}) + 10^{-3}`."""
    return certified * (1 + 2 * (1 - knob) + 1e-3)


@register
class LayeredThresholdingRobustness(Theorem):
    id = "ADV-LT"
    paper = "ADV"
    status = "D"
    statement = ("LT hypotheses at every layer (hard), ‖w‖₁·C_K < O_B ⇒ "
                 "sign(wᵀΓ̂_K + ω) = sign(wᵀΓ_K + ω)")

    def sample(self, rng: np.random.Generator, knob: float) -> ClassifierInstance:
        model = barker_golomb()
        gamma = spikes(rng, model.layers[-1].n_atoms, rng.uniform(0.85, 1.0))
        codes = model.synthesize(gamma)[1:]
        eps0 = _lt_noise_limit(model, codes) * (0.3 + 0.69 * knob)
        layers = chain(model, codes, eps0, "lt")
        w = classifier(rng, gamma)
        certified = float(np.abs(w).sum()) * layers[-1].C
        label = 1.0 if rng.random() < 0.75 else -1.0
        omega = bias_for(w, gamma, _classifier_margin(certified, knob), label)
        noise = attack(model, codes, w, rng, eps0, label)
        thresholds = tuple(layer.K + rng.uniform(0.1, 0.9) * (layer.low - layer.C - layer.K)
                           for layer in layers)
        x = model.synthesize(gamma)[0]
        return ClassifierInstance(model, tuple(codes), x, x + noise, w, omega, thresholds)

    def _certified(self, instance: ClassifierInstance) -> tuple[list[Layer], float]:
        layers = chain(instance.model, instance.codes, noise_patch(instance), "lt")
        return layers, float(np.abs(instance.w).sum()) * layers[-1].C

    def hypotheses(self, instance: ClassifierInstance) -> dict[str, float]:
        layers, certified = self._certified(instance)
        margins = classifier_hypotheses(instance, certified)
        for i, (layer, beta) in enumerate(zip(layers, instance.thresholds, strict=True), start=1):
            margins[f"β_{i} - K_{i}"] = beta - layer.K
            margins[f"|Γ_{i}^min| - C_{i} - β_{i}"] = layer.low - layer.C - beta
        return margins

    def check(self, instance: ClassifierInstance, engine: str = "auto") -> Outcome:
        layers, certified = self._certified(instance)
        result = layered_thresholding(instance.model, instance.y, list(instance.thresholds),
                                      kind="hard", engine=engine)
        shift, holds, details = shift_outcome(instance, result.codes[-1], certified, RTOL_EXACT)
        margin = certified + classifier_hypotheses(instance, certified)["O_B - certified shift"]
        details.update({"O_B": margin, "certified_shift": certified,
                        "certified/O_B": certified / margin, "C_K": layers[-1].C})
        for i, (estimate, gamma) in enumerate(zip(result.codes, instance.codes, strict=True), 1):
            details[f"layer{i}_support_errors"] = float(np.sum((estimate != 0) != (gamma != 0)))
        return Outcome(measured=shift, bound=margin, holds=holds, details=details)


@register
class LayeredBasisPursuitRobustness(Theorem):
    id = "ADV-LBP"
    paper = "ADV"
    status = "D"
    statement = ("k_i < ⅓(1 + 1/μ_i), ξ_i = 4ε_L^{i−1}, 7.5·ε_L^{K−1}·‖w‖₁ < O_B ⇒ "
                 "sign(wᵀΓ̂_K + ω) = sign(wᵀΓ_K + ω) (any contrast)")

    def sample(self, rng: np.random.Generator, knob: float) -> ClassifierInstance:
        model = barker_golomb()
        gamma = spikes(rng, model.layers[-1].n_atoms, rng.uniform(0.05, 1.0))
        codes = model.synthesize(gamma)[1:]
        eps0 = float(np.abs(gamma).max()) * rng.uniform(0.002, 0.05)
        layers = chain(model, codes, eps0, "lbp")
        w = classifier(rng, gamma)
        certified = float(np.abs(w).sum()) * 7.5 * layers[-1].eps_in
        label = 1.0 if rng.random() < 0.75 else -1.0
        omega = bias_for(w, gamma, _classifier_margin(certified, knob), label)
        noise = attack(model, codes, w, rng, eps0, label)
        x = model.synthesize(gamma)[0]
        return ClassifierInstance(model, tuple(codes), x, x + noise, w, omega)

    def _certified(self, instance: ClassifierInstance) -> tuple[list[Layer], float]:
        layers = chain(instance.model, instance.codes, noise_patch(instance), "lbp")
        return layers, float(np.abs(instance.w).sum()) * 7.5 * layers[-1].eps_in

    def hypotheses(self, instance: ClassifierInstance) -> dict[str, float]:
        layers, certified = self._certified(instance)
        margins = classifier_hypotheses(instance, certified)
        for i, layer in enumerate(layers, start=1):
            margins[f"⅓(1 + 1/μ_{i}) - k_{i}"] = (1 + 1 / layer.mu) / 3 - layer.k
        return margins

    def check(self, instance: ClassifierInstance, engine: str = "auto") -> Outcome:
        layers, certified = self._certified(instance)
        lams = [4 * layer.eps_in for layer in layers]
        result = layered_basis_pursuit(instance.model, instance.y, lams, tol=BP_TOL,
                                       max_iter=100000, engine=engine)
        shift, holds, details = shift_outcome(instance, result.codes[-1], certified, RTOL_BP)
        margin = certified + classifier_hypotheses(instance, certified)["O_B - certified shift"]
        details.update({"O_B": margin, "certified_shift": certified,
                        "certified/O_B": certified / margin,
                        "bp_relative_gap": result.certificate,
                        "bp_converged": float(result.converged)})
        for i, (estimate, gamma) in enumerate(zip(result.codes, instance.codes, strict=True), 1):
            details[f"layer{i}_outside_support"] = float(np.sum((estimate != 0) & (gamma == 0)))
        return Outcome(measured=shift, bound=margin, holds=holds and result.converged,
                       details=details)


@dataclass(frozen=True, eq=False)
class SingleLayerInstance(ClassifierInstance):
    r"""One layer (``model`` has one dictionary), the budget :math:`\varepsilon` and a feasible
    competitor :math:`\Gamma'` (the true Γ with one atom moved onto its most coherent
    neighbour)."""

    budget: float = 0.0
    competitor: np.ndarray | None = None


def _p0_certified(instance: SingleLayerInstance) -> tuple[int, float, float]:
    r""":math:`k`, :math:`\mu` and the certified shift
    :math:`\|w\|_2\,2\varepsilon/\sqrt{1 - (2k-1)\mu}` (``inf`` when :math:`(2k-1)\mu \ge 1`)."""
    D = instance.model.layers[0]
    k = int(stripe_l0_inf(instance.codes[0], D.kernel_size[0]))
    mu = D.coherence()
    floor = 1 - (2 * k - 1) * mu
    if floor <= 0:
        return k, mu, math.inf
    return k, mu, float(np.linalg.norm(instance.w)) * 2 * instance.budget / math.sqrt(floor)


@register
class SparsestRepresentationRobustness(Theorem):
    id = "ADV-P0"
    paper = "ADV"
    status = "D"
    statement = ("one layer, ‖E‖₂ ≤ ε, k < ½(1 + 1/μ), ε < O_B·sqrt(1−(2k−1)μ)/(2‖w‖₂) ⇒ every "
                 "Γ̂ with ‖Γ̂‖^s ≤ k, ‖Y−DΓ̂‖ ≤ ε (P_{0,∞}) keeps sign(wᵀΓ + ω)")

    def sample(self, rng: np.random.Generator, knob: float) -> SingleLayerInstance:
        D = barker13()
        n = D.kernel_size[0]
        side = 2 * n - 1
        pairs = coherent_pairs(D)
        pair = pairs[int(rng.integers(len(pairs)))]
        k = int(rng.integers(1, 4))
        first = int(rng.integers(LENGTH))
        moved = (first + pair[2]) % LENGTH
        gamma = np.zeros((1, LENGTH))
        gamma[0, first] = 1.0
        # A cluster of k atoms inside one stripe, a stripe side away from both placements.
        free = ((cyclic_distance(np.arange(LENGTH), first, LENGTH) >= side)
                & (cyclic_distance(np.arange(LENGTH), moved, LENGTH) >= side))
        window = (np.arange(LENGTH)[:, None] + np.arange(n)) % LENGTH
        start = int(rng.choice(np.flatnonzero(free[window].all(axis=1))))
        gamma[0, (start + rng.choice(n, size=k, replace=False)) % LENGTH] = 1.0
        support = gamma != 0
        gamma[support] = rng.uniform(0.5, 1.0, support.sum()) * rng.choice((-1.0, 1.0),
                                                                               support.sum())
        competitor = move_atom(D, gamma, first, pair)
        x, x_other = D.synthesize(gamma), D.synthesize(competitor)
        gaussian = rng.standard_normal(x.shape)
        level = (1 - knob) * float(np.linalg.norm(x - x_other))
        y, budget = between(x, x_other, gaussian * (level / np.linalg.norm(gaussian)))
        difference = gamma - competitor
        w = difference / np.linalg.norm(difference)
        w = w + rng.uniform(0.0, 0.5) * (1 - knob) * rng.standard_normal(w.shape) / math.sqrt(
            w.size)
        floor = 1 - (2 * k - 1) * D.coherence()
        certified = float(np.linalg.norm(w)) * 2 * budget / math.sqrt(floor)
        label = float(rng.choice((-1.0, 1.0)))
        omega = bias_for(w, gamma, _classifier_margin(certified, knob), label)
        return SingleLayerInstance(MLCSC([D]), (gamma,), x, y, w, omega, (), budget, competitor)

    def hypotheses(self, instance: SingleLayerInstance) -> dict[str, float]:
        k, mu, certified = _p0_certified(instance)
        margins = classifier_hypotheses(instance, certified)
        margins["ε - ‖Y - X‖_2"] = instance.budget - float(np.linalg.norm(instance.y
                                                                           - instance.signal))
        margins["½(1 + 1/μ) - k"] = 0.5 * (1 + 1 / mu) - k
        margins["N - (2n - 1) + 1"] = float(instance.y.shape[-1] - 2
                                            * instance.model.layers[0].kernel_size[0] + 2)
        return margins

    def check(self, instance: SingleLayerInstance, engine: str = "auto") -> Outcome:
        D: ConvDictionary = instance.model.layers[0]
        k, _, certified = _p0_certified(instance)
        result = omp(D, instance.y, tol=instance.budget, max_stripe=k, engine=engine)
        candidates = {"omp": result.codes[0], "true": instance.codes[0],
                      "competitor": instance.competitor}
        margin = certified + classifier_hypotheses(instance, certified)["O_B - certified shift"]
        details: dict[str, float] = {"O_B": margin, "certified_shift": certified,
                                     "certified/O_B": certified / margin}
        worst, holds = 0.0, True
        y = instance.y.astype(np.float64)
        for name, codes in candidates.items():
            codes = np.asarray(codes, dtype=np.float64)
            residual = float(np.linalg.norm(y - D.synthesize(codes)))
            feasible = (residual <= instance.budget
                        and stripe_l0_inf(codes, D.kernel_size[0]) <= k)
            details[f"{name}_residual"] = residual
            details[f"{name}_feasible"] = float(feasible)
            if feasible:
                shift, ok, values = shift_outcome(instance, codes, certified, RTOL_EXACT, name)
                details.update(values)
                holds &= ok
                worst = max(worst, shift)
        return Outcome(measured=worst, bound=margin, holds=bool(holds), details=details)

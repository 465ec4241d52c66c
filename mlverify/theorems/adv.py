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
  \le \|w\|_1 C_K`; hence :math:`\|w\|_1 C_K < O_B` keeps the label. **ADV-LT-soft** [D]: the
  same with soft thresholding, :math:`\|w\|_1(C_K + \beta_K) < O_B` (the shrinkage adds
  :math:`\beta_i` to the errors and to :math:`\varepsilon_L^i`; D_2 = the two-mark Golomb
  filters of theorem LT-soft, :math:`\mu_2 = 1/2`). The chain of bounds is theorem LT's
  (:func:`mlverify.theorems.jmlr.lt_chain`).
- **ADV-LBP** [D], layered BP with :math:`\xi_i = 4\varepsilon_L^{i-1}`,
  :math:`\varepsilon_L^i = 7.5\,\varepsilon_L^{i-1}\sqrt{\|\Gamma_i\|^p_{0,\infty}}`,
  :math:`k_i < \tfrac13(1 + 1/\mu_i)`: W7 on the last layer gives
  :math:`\mathrm{supp}\,\hat\Gamma_K \subseteq \mathrm{supp}\,\Gamma_K` and
  :math:`\|\hat\Gamma_K - \Gamma_K\|_\infty \le 7.5\varepsilon_L^{K-1}`, so
  :math:`7.5\,\varepsilon_L^{K-1}\|w\|_1 < O_B` keeps the label, whatever the contrast.
  Every layer is solved as in theorem LBP: certified BP, then the exact minimiser on its
  support when the KKT conditions certify it (tolerance 1e-12; 1e-6 relative otherwise).
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
Golomb filters (:math:`\mu = 1/4`; ADV-LT-soft: two marks, :math:`\mu = 1/2`), isolated spikes
in :math:`\Gamma_2` 32 positions apart on :math:`N = 128` (so :math:`k_1 = 4`,
:math:`\|\Gamma_1\|^p_{0,\infty} = 4`, :math:`k_2 = 1`). The classifier lives on the support of
:math:`\Gamma_K` (plus a small dense part) with the signs of :math:`\Gamma_K`, so that the
shrinkage of a pursuit moves the output toward the boundary, and the noise is an attack: the
gradient of :math:`w^T\hat\Gamma_K` through the pursuit on the true supports, pushed toward the
boundary, mixed with Gaussian noise and rescaled to the prescribed patch energy. ADV-LT(-soft):
:math:`\varepsilon_L^0` = (0.3 + 0.69 knob) × the largest level the LT hypotheses allow with the
drawn threshold positions; ADV-LBP: :math:`\varepsilon_L^0` uniform in [0.002, 0.05] ×
:math:`|\Gamma_2^{\max}|`, contrast in [0.05, 1]. ADV-P0: Barker-13 alone, a cluster of
:math:`k \le 3` atoms in one stripe and one isolated atom that the competitor moves (as in PM),
:math:`Y` between the two signals plus Gaussian noise of norm (1 − knob)·‖X − X'‖, and
:math:`w \propto \Gamma - \Gamma'` plus Gaussian noise. In every theorem
:math:`O_B` = the certified shift × (1 + 2(1 − knob) + 10⁻³): the knob → 1 brings the margin down
to the certified shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.constructions import barker13
from ..model.dictionary import ConvDictionary
from ..model.measures import patch_l2_inf, stripe_l0_inf
from ..model.mlcsc import MLCSC
from ..pursuits._omp import omp
from ..pursuits._threshold import layered_thresholding
from ._base import Outcome, Theorem, register
from .jmlr import (
    CLOSED_FORM_TOL,
    GOLOMB2,
    GOLOMB4,
    certified_bp,
    common_hypotheses,
    golomb_model,
    layer_measures,
    lt_chain,
    planted_spikes,
)
from .pdl import LENGTH, between, coherent_pairs, cyclic_distance, move_atom

#: Spacing of the spikes of :math:`\Gamma_2` (THEORY.md §5).
SPACING = 32
#: Slack of a BP layer that the KKT polish could not certify (only the relative gap is known);
#: the same as theorem LBP's.
UNCERTIFIED_BP_TOL = 1e-6


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


def margin_of(instance: ClassifierInstance) -> float:
    r""":math:`O_B = |w^T\Gamma_K + \omega|`."""
    return abs(float(np.sum(instance.w * instance.codes[-1])) + instance.omega)


def shift_outcome(instance: ClassifierInstance, estimate: np.ndarray, certified: float,
                  rtol: float, name: str = "pursuit") -> tuple[float, bool, dict[str, float]]:
    r"""The realised shift :math:`|w^T(\hat\Gamma_K - \Gamma_K)|`, whether both conclusions hold
    (label kept, shift within ``certified`` up to ``rtol`` relative) and their values."""
    w, gamma = instance.w, instance.codes[-1]
    score = float(np.sum(w * gamma)) + instance.omega
    estimated = float(np.sum(w * np.asarray(estimate, dtype=np.float64))) + instance.omega
    shift = abs(estimated - score)
    kept = math.copysign(1.0, estimated) == math.copysign(1.0, score) and estimated != 0
    scale = float(np.abs(w).sum() * np.abs(gamma).max())
    within = shift <= certified * (1 + rtol) + rtol * scale
    return shift, kept and within, {f"{name}_shift": shift, f"{name}_label_kept": float(kept),
                                    f"{name}_shift/certified": shift / certified}


def margin_hypothesis(instance: ClassifierInstance, certified: float) -> dict[str, float]:
    r"""The classifier's hypothesis: :math:`O_B` − the certified shift."""
    return {"O_B - certified shift": margin_of(instance) - certified}


def noise_patch(instance: ClassifierInstance) -> float:
    r""":math:`\varepsilon_L^0 = \|Y - X\|^p_{2,\infty}` with :math:`w = n_1`."""
    return float(patch_l2_inf(instance.y - instance.signal,
                              instance.model.layers[0].kernel_size[0]))


def lt_noise_limit(layers, kind: str, theta) -> float:
    r"""The largest :math:`\varepsilon_L^0` with :math:`K_i < |\Gamma_i^{\min}| - C_i` at every
    layer for thresholds at relative positions ``theta`` (the margins are affine in
    :math:`\varepsilon_L^0`, decreasing)."""
    at0 = [s.top - s.K for s in lt_chain(layers, 0.0, kind, theta=theta)]
    at1 = [s.top - s.K for s in lt_chain(layers, 1.0, kind, theta=theta)]
    return min(a / (a - b) for a, b in zip(at0, at1, strict=True))


def classifier_margin(certified: float, knob: float) -> float:
    r""":math:`O_B` = the certified shift times :math:`1 + 2(1 - \text{knob}) + 10^{-3}`."""
    return certified * (1 + 2 * (1 - knob) + 1e-3)


def _finish(details: dict[str, float], margin: float, certified: float) -> None:
    details.update({"O_B": margin, "certified_shift": certified,
                    "certified/O_B": certified / margin})


class _ThresholdingRobustness(Theorem):
    """Shared sampler, hypotheses and check of ADV-LT (hard) and ADV-LT-soft."""

    paper = "ADV"
    status = "D"
    kind: str
    #: ``(marks, signs)`` of D_2, contrast range of Γ_2 and ranges of θ_i (as theorem LT).
    golomb: tuple
    contrast_range: tuple[float, float]
    theta_ranges: tuple[tuple[float, float], ...]

    def sample(self, rng: np.random.Generator, knob: float) -> ClassifierInstance:
        model = golomb_model(*self.golomb)
        gamma = planted_spikes(rng, model.layers[-1].n_atoms, SPACING, 1.0,
                        float(rng.uniform(*self.contrast_range)), False)
        codes = tuple(model.synthesize(gamma)[1:])
        layers = layer_measures(model, codes)
        theta = [float(rng.uniform(*r)) for r in self.theta_ranges]
        eps0 = lt_noise_limit(layers, self.kind, theta) * (0.3 + 0.69 * knob)
        steps = lt_chain(layers, eps0, self.kind, theta=theta)
        w = classifier(rng, gamma)
        certified = float(np.abs(w).sum()) * steps[-1].inf_bound
        label = 1.0 if rng.random() < 0.75 else -1.0
        omega = bias_for(w, gamma, classifier_margin(certified, knob), label)
        noise = attack(model, codes, w, rng, eps0, label)
        x = model.synthesize(gamma)[0]
        return ClassifierInstance(model, codes, x, x + noise, w, omega,
                                  tuple(s.beta for s in steps))

    def _certified(self, instance: ClassifierInstance):
        layers = layer_measures(instance.model, instance.codes)
        steps = lt_chain(layers, noise_patch(instance), self.kind, betas=instance.thresholds)
        return steps, float(np.abs(instance.w).sum()) * steps[-1].inf_bound

    def hypotheses(self, instance: ClassifierInstance) -> dict[str, float]:
        steps, certified = self._certified(instance)
        margins = common_hypotheses(instance.model) | margin_hypothesis(instance, certified)
        for i, step in enumerate(steps, start=1):
            margins[f"β_{i} - K_{i}"] = step.beta - step.K
            margins[f"|Γ_{i}^min| - C_{i} - β_{i}"] = step.top - step.beta
        return margins

    def check(self, instance: ClassifierInstance, engine: str = "auto") -> Outcome:
        steps, certified = self._certified(instance)
        result = layered_thresholding(instance.model, instance.y, list(instance.thresholds),
                                      kind=self.kind, engine=engine)
        shift, holds, details = shift_outcome(instance, result.codes[-1], certified,
                                              CLOSED_FORM_TOL)
        margin = margin_of(instance)
        _finish(details, margin, certified)
        details["C_K [+ β_K]"] = steps[-1].inf_bound
        for i, (estimate, gamma) in enumerate(zip(result.codes, instance.codes, strict=True), 1):
            details[f"layer{i}_support_errors"] = float(np.sum((estimate != 0) != (gamma != 0)))
        return Outcome(measured=shift, bound=margin, holds=holds, details=details)


@register
class LayeredHardThresholdingRobustness(_ThresholdingRobustness):
    id = "ADV-LT"
    kind = "hard"
    statement = ("LT hypotheses at every layer (hard), ‖w‖₁·C_K < O_B ⇒ "
                 "sign(wᵀΓ̂_K + ω) = sign(wᵀΓ_K + ω)")
    golomb = GOLOMB4
    contrast_range = (0.85, 1.0)
    theta_ranges = ((0.02, 0.98), (0.02, 0.98))


@register
class LayeredSoftThresholdingRobustness(_ThresholdingRobustness):
    id = "ADV-LT-soft"
    kind = "soft"
    statement = ("LT hypotheses at every layer (soft), ‖w‖₁·(C_K + β_K) < O_B ⇒ "
                 "sign(wᵀΓ̂_K + ω) = sign(wᵀΓ_K + ω)")
    golomb = GOLOMB2
    contrast_range = (0.995, 1.0)
    theta_ranges = ((0.002, 0.02), (0.02, 0.98))


def lbp_noise(model: MLCSC, codes, eps0: float) -> list[float]:
    r""":math:`\varepsilon_L^0, \dots, \varepsilon_L^K` with :math:`\varepsilon_L^i =
    7.5\,\varepsilon_L^{i-1}\sqrt{\|\Gamma_i\|^p_{0,\infty}}` (THEORY.md LBP)."""
    eps = [eps0]
    for layer in layer_measures(model, codes):
        eps.append(7.5 * eps[-1] * math.sqrt(layer.patch))
    return eps


@register
class LayeredBasisPursuitRobustness(Theorem):
    id = "ADV-LBP"
    paper = "ADV"
    status = "D"
    statement = ("k_i < ⅓(1 + 1/μ_i), ξ_i = 4ε_L^{i−1}, 7.5·ε_L^{K−1}·‖w‖₁ < O_B ⇒ "
                 "sign(wᵀΓ̂_K + ω) = sign(wᵀΓ_K + ω) (any contrast)")

    def sample(self, rng: np.random.Generator, knob: float) -> ClassifierInstance:
        model = golomb_model(*GOLOMB4)
        gamma = planted_spikes(rng, model.layers[-1].n_atoms, SPACING, 1.0,
                               float(rng.uniform(0.05, 1)), False)
        codes = tuple(model.synthesize(gamma)[1:])
        eps0 = float(rng.uniform(0.002, 0.05))
        w = classifier(rng, gamma)
        certified = float(np.abs(w).sum()) * 7.5 * lbp_noise(model, codes, eps0)[-2]
        label = 1.0 if rng.random() < 0.75 else -1.0
        omega = bias_for(w, gamma, classifier_margin(certified, knob), label)
        noise = attack(model, codes, w, rng, eps0, label)
        x = model.synthesize(gamma)[0]
        return ClassifierInstance(model, codes, x, x + noise, w, omega)

    def _certified(self, instance: ClassifierInstance) -> tuple[list[float], float]:
        eps = lbp_noise(instance.model, instance.codes, noise_patch(instance))
        return eps, float(np.abs(instance.w).sum()) * 7.5 * eps[-2]

    def hypotheses(self, instance: ClassifierInstance) -> dict[str, float]:
        eps, certified = self._certified(instance)
        margins = common_hypotheses(instance.model) | margin_hypothesis(instance, certified)
        margins["‖E‖^p_{2,∞} (> 0: a relative BP certificate exists)"] = eps[0]
        for i, layer in enumerate(layer_measures(instance.model, instance.codes), start=1):
            margins[f"⅓(1 + 1/μ_{i}) - k_{i}"] = (1 + 1 / layer.mu) / 3 - layer.k
        return margins

    def check(self, instance: ClassifierInstance, engine: str = "auto") -> Outcome:
        eps, certified = self._certified(instance)
        current, exact = instance.y, True
        details: dict[str, float] = {}
        for i, (layer, truth) in enumerate(zip(instance.model.layers, instance.codes,
                                               strict=True), start=1):
            current, certified_layer = certified_bp(layer, current, 4 * eps[i - 1], engine)
            exact &= certified_layer
            details[f"layer{i}_outside_support"] = float(np.sum((current != 0) & (truth == 0)))
        rtol = CLOSED_FORM_TOL if exact else UNCERTIFIED_BP_TOL
        shift, holds, values = shift_outcome(instance, current, certified, rtol)
        details.update(values)
        margin = margin_of(instance)
        _finish(details, margin, certified)
        details["KKT-certified"] = float(exact)
        return Outcome(measured=shift, bound=margin, holds=holds, details=details)


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
        omega = bias_for(w, gamma, classifier_margin(certified, knob), label)
        return SingleLayerInstance(MLCSC([D]), (gamma,), x, y, w, omega, (), budget, competitor)

    def hypotheses(self, instance: SingleLayerInstance) -> dict[str, float]:
        k, mu, certified = _p0_certified(instance)
        margins = common_hypotheses(instance.model) | margin_hypothesis(instance, certified)
        margins["ε - ‖Y - X‖_2"] = instance.budget - float(np.linalg.norm(instance.y
                                                                           - instance.signal))
        margins["½(1 + 1/μ) - k"] = 0.5 * (1 + 1 / mu) - k
        return margins

    def check(self, instance: SingleLayerInstance, engine: str = "auto") -> Outcome:
        D: ConvDictionary = instance.model.layers[0]
        k, _, certified = _p0_certified(instance)
        result = omp(D, instance.y, tol=instance.budget, max_stripe=k, engine=engine)
        candidates = {"omp": result.codes[0], "true": instance.codes[0],
                      "competitor": instance.competitor}
        margin = margin_of(instance)
        details: dict[str, float] = {}
        _finish(details, margin, certified)
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
                shift, ok, values = shift_outcome(instance, codes, certified, CLOSED_FORM_TOL,
                                                  name)
                details.update(values)
                holds &= ok
                worst = max(worst, shift)
        return Outcome(measured=worst, bound=margin, holds=bool(holds), details=details)

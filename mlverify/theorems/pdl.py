r"""Stability of the ML-CSC projection :math:`P_{\mathcal M}` (THEORY.md §4, theorem PM).

**PM** [S+D] (Sulam, Papyan, Romano, Elad 2018, "Multilayer convolutional sparse modeling:
pursuit and dictionary learning"). Let :math:`Y = X + E` with :math:`\|Y - X\|_2 \le E_0` and
:math:`X = D^{(K)}\Gamma_K` in the model, :math:`\Gamma_{i-1} = D_i\Gamma_i`. Measure every layer
with the stripe of its **effective** dictionary :math:`D^{(i)} = D_1\cdots D_i` (side
:math:`2n^{(i)} - 1`, :math:`n^{(i)} = n_1 + \dots + n_i - (i - 1)`):
:math:`k_i := \|\Gamma_i\|^{s,(i)}_{0,\infty}`, and let :math:`\mu_i := \mu(\tilde D^{(i)})` be
the coherence of the normalised :math:`\tilde D^{(i)} = D^{(i)}W_i^{-1}` (:math:`W_i` the
diagonal of the atom norms of :math:`D^{(i)}`). If :math:`k_i < \tfrac12(1 + 1/\mu_i)` then
**every feasible point** :math:`\{\hat\Gamma_i\}` — :math:`\hat\Gamma_{i-1} = D_i\hat\Gamma_i`,
:math:`\|Y - D^{(K)}\hat\Gamma_K\|_2 \le E_0` and :math:`\|\hat\Gamma_j\|^{s,(j)}_{0,\infty} \le
k_j` for all :math:`j` — and in particular the :math:`P_{\mathcal M}` solution, satisfies

.. math:: \|W_i(\Gamma_i - \hat\Gamma_i)\|_2^2 \le \frac{4E_0^2}{1 - (2k_i - 1)\mu_i}.

Proof: :math:`D^{(i)}(\Gamma_i - \hat\Gamma_i) = X - \hat X` has norm at most :math:`2E_0`;
:math:`\Delta = W_i(\Gamma_i - \hat\Gamma_i)` has stripe sparsity at most :math:`2k_i`
(sub-additivity), and W4 on :math:`\tilde D^{(i)}` gives :math:`\|\tilde D^{(i)}\Delta\|_2^2
\ge (1 - (2k_i - 1)\mu_i)\|\Delta\|_2^2`. The norms are those of the **normalised** scaling
(:math:`W_i\Gamma_i` are the codes of :math:`\tilde D^{(i)}`); with unit atoms :math:`W_i = I`.
Not cumulative over layers (compare J2).

**Instances** (THEORY.md §5): :math:`D_1` = Barker-13, :math:`D_2` = the Golomb filters,
:math:`\mu(\tilde D^{(2)}) = 11/29 \approx 0.379`, so :math:`k_2 = 1`: isolated spikes in
:math:`\Gamma_2` at least :math:`2n^{(2)} - 1 = 37` apart on :math:`N = 128`. The signal sits
between :math:`X` and a **competitor** :math:`X' = D^{(K)}\Gamma'_K`, where :math:`\Gamma'_K`
moves one spike onto the most coherent neighbouring atom (:math:`|\langle\tilde d, \tilde
d'\rangle| = \mu_K`): :math:`Y = \tfrac12(X + X') + G`, :math:`\|G\|_2 = (1 - \text{knob})
\|X - X'\|_2`, :math:`E_0 = \max(\|Y - X\|, \|Y - X'\|)`. The competitor is feasible by
construction and makes the deepest bound tight as the knob → 1 (ratio about
:math:`1/(1 + 4(1 - \text{knob})^2)`).

**Check**: the OMP projection :func:`mlverify.project` (stripe constraint on :math:`D^{(K)}`, the
:math:`k_K` above; ``tol`` :math:`= E_0`) and the competitor; every candidate that is feasible is
checked at every layer. An infeasible OMP output is reported in the details (the theorem says
nothing about it), never counted as a violation; the competitor is always checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.dictionary import ConvDictionary
from ..model.measures import stripe_l0_inf
from ..model.mlcsc import MLCSC
from ..model.sampler import sample_instance
from ..pursuits._project import project
from ._base import Outcome, Theorem, register
from .jmlr import GOLOMB4, golomb_model

#: Signal length of the instances (THEORY.md §5).
LENGTH = 128
#: Relative slack of the residual budget over the construction (rounding of the syntheses).
BUDGET_SLACK = 1e-9
#: Relative tolerance of the conclusions (closed-form least squares, float64).
RTOL = 1e-12


def coherent_pairs(D: ConvDictionary) -> list[tuple[int, int, int, float]]:
    r"""Every ``(f, g, s, G)`` with :math:`|G| = |\langle\tilde d_{f,p}, \tilde d_{g,p+s}\rangle|
    = \mu(D)` (normalised atoms, 1-D, ``s`` signed, :math:`(f, 0) \ne (g, 0)`)."""
    gram = D.local_gram()
    side = gram.shape[-1]
    mu = D.coherence()
    pairs = []
    for f, g, index in zip(*np.nonzero(np.abs(gram) >= mu * (1 - 1e-12)), strict=True):
        shift = int(index) if index <= side // 2 else int(index) - side
        if (f, shift) != (g, 0):
            pairs.append((int(f), int(g), shift, float(gram[f, g, index])))
    return pairs


def move_atom(D: ConvDictionary, gamma: np.ndarray, position: int,
              pair: tuple[int, int, int, float]) -> np.ndarray:
    r"""The competitor :math:`\Gamma'`: the atom ``(f, position)`` of ``gamma`` moved to the
    coherent neighbour ``(g, position + s)`` of ``pair = (f, g, s, G)``, with the same normalised
    magnitude and the sign of :math:`G`, so that :math:`\|D(\Gamma - \Gamma')\|_2^2 =
    2(w_f a)^2(1 - \mu)` while :math:`\|W(\Gamma - \Gamma')\|_2^2 = 2(w_f a)^2`."""
    f, g, shift, correlation = pair
    norms = D.atom_norms()
    moved = gamma.copy()
    value = gamma[f, position]
    moved[f, position] = 0.0
    target = (position + shift) % gamma.shape[-1]
    moved[g, target] = math.copysign(1.0, correlation) * value * norms[f] / norms[g]
    return moved


def between(x: np.ndarray, x_other: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, float]:
    r""":math:`Y = \tfrac12(X + X') + G` and the budget
    :math:`E_0 = (1 + 10^{-9})\max(\|Y - X\|_2, \|Y - X'\|_2)` that makes both feasible."""
    y = 0.5 * (x + x_other) + noise
    budget = max(float(np.linalg.norm(y - x)), float(np.linalg.norm(y - x_other)))
    return y, budget * (1 + BUDGET_SLACK)


def cyclic_distance(a, b, length: int):
    """Periodic distance between positions."""
    gap = np.abs(np.asarray(a) - np.asarray(b)) % length
    return np.minimum(gap, length - gap)


@dataclass(frozen=True, eq=False)
class ProjectionInstance:
    r"""A noisy ML-CSC signal, its budget :math:`E_0` and a feasible competitor.

    Attributes
    ----------
    model : MLCSC
    codes : tuple of ndarray
        True :math:`(\Gamma_1, \dots, \Gamma_K)`.
    signal : ndarray
        :math:`X = D^{(K)}\Gamma_K`.
    y : ndarray
        :math:`Y`.
    budget : float
        :math:`E_0`.
    competitor : ndarray
        :math:`\Gamma'_K`, a feasible point built with the instance.
    """

    model: MLCSC
    codes: tuple[np.ndarray, ...]
    signal: np.ndarray
    y: np.ndarray
    budget: float
    competitor: np.ndarray


def effective_sparsities(model: MLCSC, codes) -> list[int]:
    r""":math:`\|\Gamma_i\|^{s,(i)}_{0,\infty}` with the stripe of :math:`D^{(i)}` (side
    :math:`2n^{(i)} - 1`), one per layer."""
    return [int(stripe_l0_inf(gamma, model.effective(i).kernel_size[0]))
            for i, gamma in enumerate(codes, start=1)]


@register
class ProjectionStability(Theorem):
    id = "PM"
    paper = "PDL"
    status = "S+D"
    statement = ("‖Y−X‖ ≤ E_0, k_i = ‖Γ_i‖^s (stripe of D^(i)) < ½(1+1/μ(D^(i))) ⇒ every feasible "
                 "point: ‖W_i(Γ_i−Γ̂_i)‖² ≤ 4E_0²/(1−(2k_i−1)μ(D^(i)))")

    def sample(self, rng: np.random.Generator, knob: float) -> ProjectionInstance:
        model = golomb_model(*GOLOMB4)
        deepest = model.effective(model.n_layers)
        side = 2 * deepest.kernel_size[0] - 1
        pairs = coherent_pairs(deepest)
        pair = pairs[int(rng.integers(len(pairs)))]
        first = int(rng.integers(LENGTH))
        moved = (first + pair[2]) % LENGTH
        gamma = np.zeros((deepest.n_atoms, LENGTH))
        gamma[pair[0], first] = 1.0
        # A second spike, when one fits, at least a stripe side away from both placements.
        free = np.flatnonzero((cyclic_distance(np.arange(LENGTH), first, LENGTH) >= side)
                              & (cyclic_distance(np.arange(LENGTH), moved, LENGTH) >= side))
        if free.size and rng.random() < 0.7:
            gamma[int(rng.integers(deepest.n_atoms)), int(rng.choice(free))] = 1.0
        support = gamma != 0
        gamma[support] = rng.uniform(0.5, 1.5, support.sum()) * rng.choice((-1.0, 1.0),
                                                                               support.sum())
        competitor = move_atom(deepest, gamma, first, pair)
        x_other = deepest.synthesize(competitor)
        gap = float(np.linalg.norm(deepest.synthesize(gamma) - x_other))
        planted = sample_instance(model, LENGTH, rng, deepest=gamma,
                                  noise_l2=(1 - knob) * gap)
        y, budget = between(planted.signal, x_other, planted.noise)
        return ProjectionInstance(model, planted.codes, planted.signal, y, budget, competitor)

    def hypotheses(self, instance: ProjectionInstance) -> dict[str, float]:
        model = instance.model
        deepest = model.effective(model.n_layers)
        margins = {
            "E_0 - ‖Y - X‖_2": instance.budget - float(np.linalg.norm(instance.y
                                                                      - instance.signal)),
            "N - (2n^(K) - 1) + 1": float(instance.y.shape[-1] - 2 * deepest.kernel_size[0] + 2),
        }
        for i, k in enumerate(effective_sparsities(model, instance.codes), start=1):
            mu = model.effective(i).normalized().coherence()
            margins[f"½(1 + 1/μ(D^({i}))) - k_{i}"] = 0.5 * (1 + 1 / mu) - k
        return margins

    def check(self, instance: ProjectionInstance, engine: str = "auto") -> Outcome:
        model = instance.model
        K = model.n_layers
        deepest = model.effective(K)
        limits = effective_sparsities(model, instance.codes)
        # P_M's own bounds: layer i's stripe for i < K, the D^(K) stripe (k_K) for the deepest
        # layer, which the OMP pursuit on D^(K) enforces (THEORY.md §3, PM).
        own = [int(stripe_l0_inf(g, layer.kernel_size[0]))
               for g, layer in zip(instance.codes[:-1], model.layers[:-1], strict=True)]
        result = project(model, instance.y, own + [limits[-1]], pursuit="omp",
                         tol=instance.budget, engine=engine)
        competitor = model.synthesize(instance.competitor, engine=engine)[1:]
        candidates = {"projection": result.codes, "competitor": competitor}
        y = instance.y.astype(np.float64)
        details: dict[str, float] = {"E_0": instance.budget,
                                     "projection_status_converged": float(result.converged)}
        worst = (-1.0, 0.0, 1.0)
        holds = True
        for name, codes in candidates.items():
            fit = deepest.synthesize(np.asarray(codes[-1], dtype=np.float64))
            residual = float(np.linalg.norm(y - fit))
            sparsities = effective_sparsities(model, codes)
            feasible = residual <= instance.budget and all(
                s <= k for s, k in zip(sparsities, limits, strict=True))
            details[f"{name}_residual"] = residual
            details[f"{name}_feasible"] = float(feasible)
            if not feasible:
                continue
            for i in range(1, K + 1):
                effective = model.effective(i)
                mu = effective.normalized().coherence()
                bound = 4 * instance.budget**2 / (1 - (2 * limits[i - 1] - 1) * mu)
                scale = effective.atom_norms().reshape(-1, 1)
                error = float(np.sum((scale * (instance.codes[i - 1] - codes[i - 1])) ** 2))
                details[f"{name}_layer{i}_error_sq"] = error
                details[f"{name}_layer{i}_bound"] = bound
                holds &= error <= bound * (1 + RTOL)
                if error / bound > worst[0]:
                    worst = (error / bound, error, bound)
        return Outcome(measured=worst[1], bound=worst[2], holds=bool(holds), details=details)

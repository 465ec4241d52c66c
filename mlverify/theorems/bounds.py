r"""Dictionary-level bounds: the coherence lower bounds and the stripe-RIP (THEORY.md §2, §4).

- **COH-1** [D]: single input channel, ``m`` atoms of length ``n`` (per axis in 2-D):
  :math:`\mu \ge \sqrt{(m-1)/(m P - 1)}`, :math:`P = \prod_a (2n_a - 1)`.
- **COH-c** [D]: ``c`` input channels: :math:`\mu \ge \sqrt{(m-c)/(c(Pm-1))}` (trivial when
  :math:`m \le c`; the single-channel formula is false for :math:`c > 1`).
- **W4** [D] (Papyan, Sulam, Elad 2017, "Working locally thinking globally"): the stripe-RIP
  constant satisfies :math:`\delta_k \le (k-1)\mu(D)` (Gershgorin on the stripe-local Gram).
  Checked exactly on a support: for every support :math:`S` with :math:`\|S\|^s_{0,\infty} \le k`
  the extreme eigenvalues of the normalised Gram :math:`G_S` lie in
  :math:`[1-(k-1)\mu, 1+(k-1)\mu]`, i.e. :math:`\max|\mathrm{eig}(G_S) - 1| \le (k-1)\mu`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.constructions import low_coherence_filters, random_filters
from ..model.dictionary import ConvDictionary
from ..model.measures import coherence_lower_bound, stripe_l0_inf
from ._base import Outcome, Theorem, register


@dataclass(frozen=True)
class DictionaryInstance:
    """A normalised dictionary and the sizes of the bound."""

    dictionary: ConvDictionary
    m: int
    c: int
    n: tuple[int, ...]


def _optimised_dictionary(rng: np.random.Generator, m: int, c: int, n, knob: float):
    """Random filters (knob 0) up to coherence-minimised ones (knob → 1): the bound gets tighter."""
    if knob < 0.2:
        return random_filters(m, c, n, rng)
    iterations = int(10 + 90 * knob)
    return low_coherence_filters(m, c, n, rng, restarts=1, max_iter=iterations).dictionary


class _CoherenceBound(Theorem):
    """Shared check of COH-1 and COH-c: the measured coherence against the lower bound."""

    paper = "Welch"
    status = "D"

    def hypotheses(self, instance: DictionaryInstance) -> dict[str, float]:
        norms = instance.dictionary.atom_norms()
        return {
            "unit atoms (1e-12 - max|‖a_f‖-1|)": 1e-12 - float(np.abs(norms - 1).max()),
            "m - c (non-trivial bound)": float(instance.m - instance.c),
        }

    def check(self, instance: DictionaryInstance, engine: str = "auto") -> Outcome:
        mu = instance.dictionary.coherence()
        bound = coherence_lower_bound(instance.m, instance.n, instance.c)
        # Conclusion mu >= bound, reported as measured = bound, "bound" = mu: ratio <= 1 holds.
        return Outcome(measured=bound, bound=mu, holds=mu >= bound, details={"mu": mu})


@register
class SingleChannelCoherenceBound(_CoherenceBound):
    id = "COH-1"
    statement = "c = 1, unit atoms ⇒ μ(D) ≥ sqrt((m−1)/(m(2n−1)−1))"

    def sample(self, rng: np.random.Generator, knob: float) -> DictionaryInstance:
        m = int(rng.integers(2, 5))
        n = (int(rng.integers(2, 7)),) if rng.random() < 0.7 else (2, int(rng.integers(2, 4)))
        dictionary = _optimised_dictionary(rng, m, 1, n if len(n) == 2 else n[0], knob)
        return DictionaryInstance(dictionary, m, 1, n)


@register
class MultiChannelCoherenceBound(_CoherenceBound):
    id = "COH-c"
    statement = "c channels, unit atoms ⇒ μ(D) ≥ sqrt((m−c)/(c((2n−1)m−1)))"

    def sample(self, rng: np.random.Generator, knob: float) -> DictionaryInstance:
        c = int(rng.integers(2, 4))
        m = c + int(rng.integers(1, 3))
        n = int(rng.integers(2, 6))
        return DictionaryInstance(_optimised_dictionary(rng, m, c, n, knob), m, c, (n,))


@dataclass(frozen=True)
class StripeRIPInstance:
    """A normalised 1-D dictionary, a signal length and a support of stripe sparsity ≤ k."""

    dictionary: ConvDictionary
    length: int
    k: int
    support: np.ndarray  # boolean (m, N)


def _clustered_support(rng, m: int, n: int, length: int, k: int, knob: float) -> np.ndarray:
    """A support with ‖S‖^s_{0,∞} ≤ k: ``k`` atoms packed into one stripe (the overlaps that make
    the Gram far from identity), the tighter the larger ``knob``, plus isolated extra atoms."""
    support = np.zeros((m, length), dtype=bool)
    # knob → 1: all k atoms within the smallest span that can hold them (ceil(k / m) <= n).
    span = max(-(-k // m), round((1 - knob) * (n - 1)) + 1)
    start = int(rng.integers(length))
    placed = 0
    while placed < k:
        f, p = int(rng.integers(m)), (start + int(rng.integers(span))) % length
        if not support[f, p]:
            support[f, p] = True
            placed += 1
    # Extra atoms far away only while no stripe exceeds k (construction, not filtering).
    for p in rng.permutation(length)[: length // (4 * n)]:
        f = int(rng.integers(m))
        support[f, p] = True
        if stripe_l0_inf(support.astype(float), n) > k:
            support[f, p] = False
    return support


@register
class StripeRIP(Theorem):
    id = "W4"
    paper = "WLTG"
    status = "D"
    statement = "unit atoms, N ≥ 2n−1, ‖S‖^s_{0,∞} ≤ k ⇒ max|eig(G_S) − 1| ≤ (k−1)μ(D)"

    def sample(self, rng: np.random.Generator, knob: float) -> StripeRIPInstance:
        m, n = int(rng.integers(1, 4)), int(rng.integers(3, 9))
        dictionary = _optimised_dictionary(rng, m, 1, n, 0.0 if m == 1 else knob)
        mu = dictionary.coherence()
        k_max = max(2, min(6, m * n, int(np.floor(1 + 0.999 / mu))))  # keep (k - 1)μ < 1
        k = int(rng.integers(2, k_max + 1))
        length = int(rng.integers(2 * n - 1, 6 * n))
        support = _clustered_support(rng, m, n, length, k, knob)
        return StripeRIPInstance(dictionary, length, k, support)

    def hypotheses(self, instance: StripeRIPInstance) -> dict[str, float]:
        n = instance.dictionary.kernel_size[0]
        norms = instance.dictionary.atom_norms()
        sparsity = stripe_l0_inf(instance.support.astype(float), n)
        return {
            "unit atoms (1e-12 - max|‖a_f‖-1|)": 1e-12 - float(np.abs(norms - 1).max()),
            "N - (2n - 1) + 1": float(instance.length - (2 * n - 1) + 1),
            "k - ‖S‖^s_{0,∞} + 1": float(instance.k - sparsity + 1),
        }

    def check(self, instance: StripeRIPInstance, engine: str = "auto") -> Outcome:
        D = instance.dictionary
        columns = D.to_dense((instance.length,))[:, instance.support.ravel()]
        gram = columns.T @ columns
        deviation = float(np.abs(np.linalg.eigvalsh(gram) - 1).max())
        bound = (instance.k - 1) * D.coherence()
        # Rounding: eigenvalues of a float64 Gram are exact to ~1e-15 · ‖G‖.
        holds = deviation <= bound + 1e-12 * max(1.0, float(np.abs(gram).sum(axis=1).max()))
        return Outcome(deviation, bound, holds, {"k": instance.k, "mu": D.coherence()})

r"""Theorems of Papyan, Sulam, Elad (2017), "Working locally thinking globally" [WLTG].

Convolutional sparse coding :math:`X = D\Gamma` (one periodic 1-D layer, unit atoms of length
:math:`n`, THEORY.md §1) with the stripe sparsity :math:`k = \|\Gamma\|^s_{0,\infty}` (stripes of
side :math:`2n - 1`, all atoms) and the noise patch energy :math:`\varepsilon_L =
\|E\|^p_{2,\infty}` (patches of side :math:`w = n`, all channels) of THEORY.md §2:

- **W2** [S], uniqueness: :math:`k < \tfrac12(1 + 1/\mu)` ⇒ Γ is the unique sparsest (ℓ0,∞)
  representation of :math:`X`; by the proof every :math:`\Delta \ne 0` with :math:`D\Delta = 0`
  has :math:`\|\Delta\|^s_{0,\infty} \ge 1 + 1/\mu`, so every other representation
  :math:`\Gamma'` has :math:`\|\Gamma'\|^s_{0,\infty} \ge 1 + 1/\mu - k > k`.
- **W3** [S], noiseless recovery: the same hypothesis ⇒ OMP (:math:`\|\Gamma\|_0` steps) and BP
  (:math:`\min \|\Gamma\|_1` s.t. :math:`D\Gamma = X`) both return Γ.
- **W6** [D], noisy OMP: :math:`k < \tfrac12(1 + 1/\mu) - \tfrac1\mu\,\varepsilon_L/|\Gamma^{\min}|`
  ⇒ OMP run for :math:`\|\Gamma\|_0` steps finds :math:`\mathrm{supp}(\Gamma)` and
  :math:`\|\Gamma_{OMP} - \Gamma\|_2^2 \le \|E\|_2^2/(1 - \mu(k - 1))`.
- **W7** [S+D], noisy BP: :math:`k < \tfrac13(1 + 1/\mu)`, :math:`\lambda = 4\varepsilon_L` (BP is
  :math:`\tfrac12\|y - D\Gamma\|^2 + \lambda\|\Gamma\|_1`) ⇒ (a) :math:`\mathrm{supp}(\Gamma_{BP})
  \subseteq \mathrm{supp}(\Gamma)`; (b) :math:`\|\Gamma_{BP} - \Gamma\|_\infty \le
  7.5\varepsilon_L`; (c) every entry with :math:`|\Gamma_j| > 7.5\varepsilon_L` is non-zero in
  :math:`\Gamma_{BP}` with the sign of :math:`\Gamma_j`; (d) the minimiser is unique.

Instances are built constructively (THEORY.md §5): the Barker-13 atom (:math:`\mu = 1/13`) and
two low-coherence multi-atom dictionaries (:math:`(m, n, c) = (2, 13, 1)`, :math:`\mu \approx
0.171` and :math:`(3, 8, 2)`, :math:`\mu \approx 0.123`, optimised once with a fixed seed), codes
planted with an exact stripe sparsity by :func:`mlverify.sample_instance`, and noise rescaled to a
prescribed patch energy, partly aligned with the worst directions of the proofs.

The exact quantities come from dense linear algebra on these small sizes (the global matrix
:meth:`ConvDictionary.to_dense`, C-order columns = flattened codes ``(m, N)``): least-squares
replays of OMP, a linear program for noiseless BP, and a KKT polish of the certified FISTA
solution of noisy BP, which turns its approximate solution into an exact minimiser (to rounding)
with a uniqueness certificate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..model.constructions import barker13, low_coherence_filters
from ..model.dictionary import ConvDictionary
from ..model.measures import extreme_magnitudes, patch_l2_inf, stripe_l0_inf
from ..model.mlcsc import MLCSC
from ..model.sampler import sample_instance
from ..pursuits import PursuitResult, basis_pursuit, omp
from ._base import Outcome, Theorem, register

#: Relative rounding slack of the closed-form (least-squares, KKT, LP-basis) computations.
ROUNDING = 1e-12
#: Relative accuracy to which a recovered code must match the planted one (exact recovery).
RECOVERY_TOL = 1e-9
#: Certified relative duality gap asked of FISTA before the KKT polish of noisy BP.
BP_TOL = 1e-10
#: Most active-set repairs of the KKT polish before it gives up.
MAX_REPAIRS = 50
#: HiGHS feasibility tolerances of the linear programs (its default 1e-7 left a competitor of W2
#: whose support could not represent X better than 1e-8, seed 22508263, knob 0.5).
LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}

#: Most rows ``c·N`` of the dense matrices of W2's linear programs: the least-squares systems of
#: their vertices stay below the sizes where the threaded BLAS starts (10x slower above, measured
#: on the busy 2-core machine: 0.06 ms at 80, 0.6 ms at 100 for a solve).
MAX_ROWS = 80

#: Low-coherence multi-atom dictionaries ``(m, n, c)`` (THEORY.md §5), optimised with seed 0.
LOW_COHERENCE_SIZES = ((2, 13, 1), (3, 8, 2))


@functools.cache
def dictionaries() -> tuple[ConvDictionary, ...]:
    """Barker-13 and the :data:`LOW_COHERENCE_SIZES` dictionaries (computed once, seed 0)."""
    optimised = tuple(
        low_coherence_filters(m, c, n, np.random.default_rng(0), restarts=2).dictionary
        for m, n, c in LOW_COHERENCE_SIZES
    )
    return (barker13(),) + optimised


@dataclass(frozen=True, eq=False)
class CodingInstance:
    r"""One layer of convolutional sparse coding: :math:`y = X + E`, :math:`X = D\Gamma`.

    Attributes
    ----------
    dictionary : ConvDictionary
        1-D, unit atoms, float64.
    gamma : ndarray, shape ``(m, N)``
        The planted code Γ.
    signal : ndarray, shape ``(c, N)``
        :math:`X = D\Gamma`.
    noise : ndarray, shape ``(c, N)``
        :math:`E` (zeros when noiseless).
    """

    dictionary: ConvDictionary
    gamma: np.ndarray
    signal: np.ndarray
    noise: np.ndarray

    @classmethod
    def from_codes(cls, dictionary: ConvDictionary, gamma, noise=None) -> CodingInstance:
        """The instance of code ``gamma`` (``(m, N)``) and optional noise (``(c, N)``)."""
        gamma = np.asarray(gamma, dtype=dictionary.dtype)
        signal = dictionary.synthesize(gamma)
        noise = np.zeros_like(signal) if noise is None else np.asarray(noise, signal.dtype)
        if noise.shape != signal.shape:
            raise ValueError(f"noise must have shape {signal.shape}, got {noise.shape}")
        return cls(dictionary, gamma, signal, noise)

    @property
    def y(self) -> np.ndarray:
        """The observation :math:`X + E`."""
        return self.signal + self.noise

    @property
    def n(self) -> int:
        """Filter length :math:`n` (stripe side :math:`2n-1`, noise patch side :math:`n`)."""
        return self.dictionary.kernel_size[0]

    @property
    def length(self) -> int:
        """Signal length :math:`N`."""
        return self.gamma.shape[-1]

    @property
    def mu(self) -> float:
        """Mutual coherence of the (normalised) dictionary."""
        return self.dictionary.coherence()

    @property
    def k(self) -> int:
        r""":math:`\|\Gamma\|^s_{0,\infty}`."""
        return int(stripe_l0_inf(self.gamma, self.n))

    @property
    def eps(self) -> float:
        r""":math:`\varepsilon_L = \|E\|^p_{2,\infty}` with patches of side :math:`n`."""
        return float(patch_l2_inf(self.noise, self.n))

    def dense(self) -> np.ndarray:
        """The global matrix ``(c·N, m·N)`` of the dictionary on signals of length N."""
        return self.dictionary.to_dense((self.length,))


def _base_margins(instance: CodingInstance) -> dict[str, float]:
    """Unit atoms and ``N >= 2n - 1`` (the local coherence is then the global one)."""
    norms = instance.dictionary.atom_norms()
    return {
        "unit atoms (1e-12 - max|‖a_f‖-1|)": 1e-12 - float(np.abs(norms - 1).max()),
        "N - (2n - 1) + 1": float(instance.length - (2 * instance.n - 1) + 1),
    }


def _largest_below(limit: float) -> int:
    """The largest integer strictly below ``limit``."""
    return math.ceil(limit) - 1


def _sparsity(knob: float, k_max: int) -> tuple[int, float]:
    """Stripe sparsity ``1..k_max`` growing with ``knob`` and the position within its step.

    ``t = knob·k_max``: ``k = 1 + floor(t)`` (capped at ``k_max``) and ``t - floor(t)`` in
    ``[0, 1)`` moves a continuous parameter (the noise) toward its limit inside each ``k``.
    """
    t = knob * k_max
    k = min(k_max, 1 + math.floor(t))
    return k, min(t - (k - 1), 1.0)


def _plant(rng: np.random.Generator, D: ConvDictionary, length: int, k: int,
           contrast: float) -> np.ndarray:
    """Γ with stripe sparsity exactly ``k`` (saturated), magnitudes in ``[contrast, 1]``."""
    planted = sample_instance(MLCSC([D]), length, rng, k=k, contrast=contrast)
    return np.array(planted.deepest)


def _support_gram(M: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``M`` on ``support`` and their Gram matrix."""
    columns = M[:, support]
    return columns, columns.T @ columns


def _noise(rng: np.random.Generator, instance: CodingInstance, eps: float,
           aligned: np.ndarray, weight: float) -> np.ndarray:
    r"""Gaussian noise mixed with the direction ``aligned`` (weight in [0, 1]), rescaled so that
    :math:`\|E\|^p_{2,\infty} = \varepsilon` exactly (to rounding)."""
    n = instance.n
    gaussian = rng.standard_normal(instance.signal.shape)
    mix = (1 - weight) * gaussian / patch_l2_inf(gaussian, n)
    if weight > 0:
        mix = mix + weight * aligned / patch_l2_inf(aligned, n)
    return mix * (eps / patch_l2_inf(mix, n))


def _least_squares(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\arg\min_z\|Az - b\|_2` for ``A`` of full column rank: normal equations and one
    step of iterative refinement.

    ``numpy.linalg.lstsq`` and QR were 100x slower here (about 100 ms for a 98 x 96 matrix on the
    busy 2-core machine: the threaded BLAS of the blocked LAPACK routines), while ``solve`` on the
    small Gram matrix takes 0.1 ms. The columns used here are well conditioned (supports of
    stripe sparsity ``k`` have :math:`\lambda_{\min}(G_S) \ge 1 - (k-1)\mu`) or the independent
    columns of a linear-program vertex.
    """
    gram = A.T @ A
    z = np.linalg.solve(gram, A.T @ b)
    return z + np.linalg.solve(gram, A.T @ (b - A @ z))


def _l1_vertex(M: np.ndarray, x: np.ndarray, scale: float,
               fixed: tuple[int, float] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    r"""A vertex solution of :math:`\min\|z\|_1` s.t. :math:`Mz = x` (and :math:`z_j = v` for
    ``fixed = (j, v)``), or ``None`` when that program is infeasible.

    Solved by HiGHS on :math:`z = u - v`, :math:`u, v \ge 0` (tolerances :data:`LP_OPTIONS`).
    Returns the support ``T`` (a boolean mask: the entries of the LP solution above
    ``1e-9·scale``, plus ``j``) and the vertex recomputed to rounding on it: a vertex is fixed by
    its support, whose free columns are independent, so :math:`z_F = M_F^+(x - v\,m_j)`,
    :math:`F = T \setminus \{j\}`, with :math:`z_j = v` (HiGHS itself is accurate only to its
    feasibility tolerance).
    """
    n = M.shape[1]
    bounds = [(0.0, None)] * (2 * n)
    target = x
    if fixed is not None:
        j, value = fixed
        bounds[j] = (max(value, 0.0), max(value, 0.0))
        bounds[n + j] = (max(-value, 0.0), max(-value, 0.0))
        target = x - value * M[:, j]
    result = scipy.optimize.linprog(np.ones(2 * n), A_eq=np.hstack([M, -M]), b_eq=x,
                                    bounds=bounds, method="highs", options=LP_OPTIONS)
    if result.status == 2:
        return None
    if result.status != 0:
        raise RuntimeError(f"linprog failed: {result.message}")
    free = np.abs(result.x[:n] - result.x[n:]) > RECOVERY_TOL * scale
    vertex = np.zeros(n)
    if fixed is not None:
        free[j] = False
        vertex[j] = value
    vertex[free] = _least_squares(M[:, free], target)
    return vertex != 0, vertex


# --------------------------------------------------------------------------------------------
# W2: uniqueness


@register
class Uniqueness(Theorem):
    r"""W2: :math:`\|\Gamma\|^s_{0,\infty} < \tfrac12(1 + 1/\mu)` ⇒ Γ is the unique sparsest
    representation of :math:`X = D\Gamma`.

    The conclusion concerns every other representation, so the check builds competitors that
    are as sparse as it can find: for up to :data:`PROBES` entries :math:`j` of the densest
    stripe of Γ, (i) :math:`\Gamma' = \arg\min \|z\|_1` s.t. :math:`Dz = X`, :math:`z_j = 0`
    and (ii) :math:`\Gamma' = \Gamma + \Delta` with :math:`\Delta = \arg\min\|\Delta\|_1` s.t.
    :math:`D\Delta = 0`, :math:`\Delta_j = -\Gamma_j` (a sparse null-space vector that removes
    atom :math:`j`); both are linear programs on the dense matrix (``c·N <= 80`` rows) whose
    vertices are recomputed to rounding on their supports (:func:`_l1_vertex`); entries below
    ``1e-9·max|Γ|`` are then zeroed (which can only lower the sparsity) and the competitor must
    still represent X to ``1e-8·max(‖X‖, max|Γ|)``. Conclusions checked on every
    competitor :math:`\Gamma' \ne \Gamma`: (1) :math:`\|\Gamma'\|^s_{0,\infty} > k`
    (uniqueness of the sparsest); (2) :math:`\|\Gamma'\|^s_{0,\infty} \ge 1 + 1/\mu - k` and
    (3) :math:`\|\Gamma' - \Gamma\|^s_{0,\infty} \ge 1 + 1/\mu` (the proof: :math:`\Delta` in the
    null space has :math:`0 = \|D\Delta\|^2 \ge (1 - (s - 1)\mu)\|\Delta\|^2`).

    ``measured = 1 + 1/μ − k`` (the guaranteed lower bound), ``bound`` = the smallest competitor
    stripe sparsity: ratio 1 means a competitor as sparse as the theorem allows. Only dictionaries
    with more atoms than channels are sampled (Barker's square circulant is invertible: no other
    representation exists at all).
    """

    id = "W2"
    paper = "WLTG"
    status = "S"
    statement = "‖Γ‖^s_{0,∞} < ½(1 + 1/μ) ⇒ Γ is the unique sparsest (ℓ0,∞) representation of DΓ"

    #: Entries of Γ probed by the competitor programs.
    PROBES = 3

    def sample(self, rng: np.random.Generator, knob: float) -> CodingInstance:
        D = dictionaries()[1 + int(rng.integers(len(LOW_COHERENCE_SIZES)))]
        n = D.kernel_size[0]
        k, _ = _sparsity(knob, _largest_below(0.5 * (1 + 1 / D.coherence())))
        length = int(rng.integers(2 * n - 1, MAX_ROWS // D.n_channels + 1))
        return CodingInstance.from_codes(D, _plant(rng, D, length, k, rng.uniform(0.2, 1.0)))

    def hypotheses(self, instance: CodingInstance) -> dict[str, float]:
        return _base_margins(instance) | {
            "½(1 + 1/μ) - ‖Γ‖^s_{0,∞}": 0.5 * (1 + 1 / instance.mu) - instance.k,
        }

    def _probes(self, instance: CodingInstance) -> np.ndarray:
        """Flat indices of up to :data:`PROBES` non-zeros of the densest stripe of Γ."""
        n, length = instance.n, instance.length
        counts = np.count_nonzero(instance.gamma, axis=0)
        stripes = [counts[(x + np.arange(-n + 1, n)) % length].sum() for x in range(length)]
        centre = int(np.argmax(stripes))
        positions = (centre + np.arange(-n + 1, n)) % length
        window = np.zeros_like(instance.gamma, dtype=bool)
        window[:, positions] = True
        return np.flatnonzero(window & (instance.gamma != 0))[: self.PROBES]

    def check(self, instance: CodingInstance, engine: str = "auto") -> Outcome:
        M = instance.dense()
        gamma, x = instance.gamma.ravel(), instance.signal.ravel()
        shape = instance.gamma.shape
        scale = float(np.abs(gamma).max())
        n, k, mu = instance.n, instance.k, instance.mu
        spark = 1 + 1 / mu
        competitors = []
        for j in self._probes(instance):
            direct = _l1_vertex(M, x, scale, fixed=(j, 0.0))
            null = _l1_vertex(M, np.zeros_like(x), scale, fixed=(j, -gamma[j]))
            if direct is not None:
                competitors.append(direct[1])
            if null is not None:
                competitors.append(gamma + null[1])
        sparsities, differences, misfits = [], [], []
        size = max(float(np.linalg.norm(x)), scale)  # X = 0 is possible outside the hypotheses
        for z in competitors:  # every competitor has z_j = 0 ≠ Γ_j: none is Γ itself
            z[np.abs(z) <= RECOVERY_TOL * scale] = 0.0  # fewer non-zeros: the strict direction
            misfits.append(float(np.linalg.norm(M @ z - x)) / size)
            sparsities.append(int(stripe_l0_inf(z.reshape(shape), n)))
            differences.append(int(stripe_l0_inf((z - gamma).reshape(shape), n)))
        if not sparsities:
            raise RuntimeError("no competitor representation was found (null space empty?)")
        if max(misfits) > 1e-8:
            raise RuntimeError(f"a competitor misrepresents X (relative misfit {max(misfits)})")
        sparsest = min(sparsities)
        unique = sparsest > k
        quantitative = sparsest >= spark - k - ROUNDING
        null_space = min(differences) >= spark - ROUNDING
        return Outcome(
            measured=spark - k,
            bound=float(sparsest),
            holds=unique and quantitative and null_space,
            details={
                "k": k, "mu": mu, "competitors": len(sparsities),
                "min competitor stripe sparsity": sparsest,
                "min null-space stripe sparsity": min(differences),
                "1 + 1/mu": spark, "max competitor misfit": max(misfits),
            },
        )


# --------------------------------------------------------------------------------------------
# W3: noiseless recovery


def _omp_margin(M: np.ndarray, x: np.ndarray, support: np.ndarray, order: np.ndarray) -> float:
    r"""Largest ratio, over the OMP steps, of the best off-support to the best on-support
    correlation :math:`|d_j^T r_t|`, replaying the residuals of the selections ``order`` by least
    squares (OMP picks an atom of the support at step t iff the ratio is < 1)."""
    outside = np.ones(M.shape[1], dtype=bool)
    outside[support] = False
    worst = 0.0
    for t in range(len(order)):
        active = M[:, order[:t]]
        residual = x - active @ _least_squares(active, x) if t else x
        corr = np.abs(M.T @ residual)
        worst = max(worst, float(corr[outside].max() / corr[support].max()))
    return worst


def _fuchs(M: np.ndarray, support: np.ndarray, signs: np.ndarray) -> tuple[float, float]:
    r"""Fuchs' dual certificate of :math:`\min\|z\|_1` s.t. :math:`Dz = X` on ``support``:
    :math:`\nu = D_S G_S^{-1}\mathrm{sign}(\Gamma_S)` and :math:`\max_{j\notin S}|d_j^T\nu|`
    (< 1 with :math:`D_S` of full rank: Γ is the unique BP solution), and
    :math:`\lambda_{\min}(G_S)`."""
    columns, gram = _support_gram(M, support)
    nu = columns @ np.linalg.solve(gram, signs)
    outside = np.ones(M.shape[1], dtype=bool)
    outside[support] = False
    return float(np.abs(M[:, outside].T @ nu).max()), float(np.linalg.eigvalsh(gram)[0])


@register
class NoiselessRecovery(Theorem):
    r"""W3: :math:`\|\Gamma\|^s_{0,\infty} = k < \tfrac12(1 + 1/\mu)` ⇒ OMP and BP recover Γ from
    :math:`X = D\Gamma`.

    OMP: :func:`mlverify.omp` with :math:`\|\Gamma\|_0` steps; recovered means the same support and
    values within ``1e-9·max|Γ|``. BP: :math:`\min\|z\|_1` s.t. :math:`Dz = X` solved as a
    **linear program** (``scipy.optimize.linprog``, HiGHS, on the dense matrix); its vertex
    solution is fixed by its support (its entries above ``1e-9·max|Γ|``), which must be
    supp(Γ), and its values, recomputed to rounding by least squares on that support, must
    match Γ within ``1e-9·max|Γ|``.

    Quantitative companion (derived here from the proofs): with :math:`r = D_S c`
    (:math:`S = \mathrm{supp}\,\Gamma`), an atom in the stripe of :math:`j` overlaps at most
    :math:`k` atoms of S, so :math:`\max_{j\notin S}|d_j^T r| \le k\mu\|c\|_\infty` and
    :math:`\max_{j\in S}|d_j^T r| \ge (1 - (k-1)\mu)\|c\|_\infty`; likewise the Fuchs certificate
    :math:`\nu = D_S G_S^{-1}\mathrm{sign}(\Gamma_S)` has :math:`\max_{j\notin S}|d_j^T\nu| \le
    \|G_S^{-1}\|_1\,\|D_S^Td_j\|_1 \le k\mu/(1 - (k-1)\mu)`. ``measured`` = the larger of the worst
    OMP step ratio (replayed by least squares) and the certificate, ``bound`` =
    :math:`k\mu/(1 - (k-1)\mu) < 1`; it is one of the checked conclusions.
    """

    id = "W3"
    paper = "WLTG"
    status = "S"
    statement = "‖Γ‖^s_{0,∞} < ½(1 + 1/μ), X = DΓ ⇒ OMP (‖Γ‖₀ steps) and BP both recover Γ exactly"

    def sample(self, rng: np.random.Generator, knob: float) -> CodingInstance:
        D = dictionaries()[int(rng.integers(len(dictionaries())))]
        n = D.kernel_size[0]
        k, _ = _sparsity(knob, _largest_below(0.5 * (1 + 1 / D.coherence())))
        length = int(rng.integers(max(2 * n - 1, 32), 65))
        return CodingInstance.from_codes(D, _plant(rng, D, length, k, rng.uniform(0.1, 1.0)))

    def hypotheses(self, instance: CodingInstance) -> dict[str, float]:
        return _base_margins(instance) | {
            "½(1 + 1/μ) - ‖Γ‖^s_{0,∞}": 0.5 * (1 + 1 / instance.mu) - instance.k,
        }

    def check(self, instance: CodingInstance, engine: str = "auto") -> Outcome:
        M = instance.dense()
        gamma, x = instance.gamma.ravel(), instance.signal.ravel()
        support = np.flatnonzero(gamma)
        scale = float(np.abs(gamma).max())
        k, mu = instance.k, instance.mu

        result = omp(instance.dictionary, instance.signal, n_nonzero=support.size, engine=engine)
        by_omp = result.codes[0].ravel()
        order = np.asarray(result.history["atom"], dtype=np.int64)
        omp_error = float(np.abs(by_omp - gamma).max())
        omp_ok = np.array_equal(by_omp != 0, gamma != 0) and omp_error <= RECOVERY_TOL * scale

        bp_support, by_bp = _l1_vertex(M, x, scale)
        bp_error = float(np.abs(by_bp - gamma).max())
        bp_ok = np.array_equal(bp_support, gamma != 0) and bp_error <= RECOVERY_TOL * scale

        step_ratio = _omp_margin(M, x, support, order) if omp_ok else math.inf
        certificate, gram_min = _fuchs(M, support, np.sign(gamma[support]))
        bound = k * mu / (1 - (k - 1) * mu)
        measured = max(step_ratio, certificate)
        return Outcome(
            measured=measured,
            bound=bound,
            holds=bool(omp_ok and bp_ok and measured <= bound + ROUNDING),
            details={
                "k": k, "mu": mu, "omp error": omp_error, "bp error": bp_error,
                "omp step ratio": step_ratio, "fuchs certificate": certificate,
                "lambda_min(G_S)": gram_min,
            },
        )


# --------------------------------------------------------------------------------------------
# W6: noisy OMP


@register
class NoisyOMP(Theorem):
    r"""W6: :math:`k < \tfrac12(1 + 1/\mu) - \tfrac1\mu\varepsilon_L/|\Gamma^{\min}|` ⇒ OMP with
    :math:`\|\Gamma\|_0` steps finds supp(Γ) and :math:`\|\Gamma_{OMP} - \Gamma\|_2^2 \le
    \|E\|_2^2/(1 - \mu(k - 1))`.

    Proof sketch [D]: the residual is :math:`D_S c + E` with :math:`\|c\|_\infty \ge
    |\Gamma^{\min}|` and :math:`|d_j^TE| \le \varepsilon_L` (a unit atom reads one patch), so the
    best atom of S beats every other one when :math:`(1 - (2k-1)\mu)|\Gamma^{\min}| >
    2\varepsilon_L`; then :math:`\Gamma_{OMP} - \Gamma = D_S^+E` and
    :math:`\sigma_{\min}^2(D_S) \ge 1 - (k-1)\mu` (W4).

    Instances: noise rescaled to :math:`\varepsilon_L` up to its limit
    :math:`\mu|\Gamma^{\min}|(\tfrac12(1 + 1/\mu) - k)`, either Gaussian or (half of the draws)
    mixed with :math:`D_S v`, :math:`v` the eigenvector of the smallest eigenvalue of
    :math:`G_S` (the direction that makes the error bound tight). ``measured`` = squared error,
    ``bound`` = :math:`\|E\|_2^2/(1 - \mu(k-1))`.
    """

    id = "W6"
    paper = "WLTG"
    status = "D"
    statement = ("k < ½(1 + 1/μ) − ε_L/(μ|Γ^min|) ⇒ OMP (‖Γ‖₀ steps) finds supp Γ and "
                 "‖Γ_OMP − Γ‖₂² ≤ ‖E‖₂²/(1 − μ(k − 1))")

    def sample(self, rng: np.random.Generator, knob: float) -> CodingInstance:
        D = dictionaries()[int(rng.integers(len(dictionaries())))]
        n, mu = D.kernel_size[0], D.coherence()
        limit = 0.5 * (1 + 1 / mu)
        k, position = _sparsity(knob, _largest_below(limit))
        length = int(rng.integers(max(2 * n - 1, 64), 97))
        gamma = _plant(rng, D, length, k, rng.uniform(0.3, 1.0))
        clean = CodingInstance.from_codes(D, gamma)
        eps = (0.02 + 0.98 * position) * mu * extreme_magnitudes(gamma)[0] * (limit - k)
        M = clean.dense()
        support = np.flatnonzero(gamma)
        columns, gram = _support_gram(M, support)
        weakest = columns @ np.linalg.eigh(gram)[1][:, 0]
        weight = float(rng.uniform(0.5, 1.0)) if rng.random() < 0.5 else 0.0
        noise = _noise(rng, clean, eps, weakest.reshape(clean.signal.shape), weight)
        return CodingInstance.from_codes(D, gamma, noise)

    def hypotheses(self, instance: CodingInstance) -> dict[str, float]:
        mu = instance.mu
        low = extreme_magnitudes(instance.gamma)[0]
        return _base_margins(instance) | {
            "½(1 + 1/μ) - ε_L/(μ|Γ^min|) - k":
                0.5 * (1 + 1 / mu) - instance.eps / (mu * low) - instance.k,
        }

    def check(self, instance: CodingInstance, engine: str = "auto") -> Outcome:
        gamma = instance.gamma
        k, mu = instance.k, instance.mu
        result = omp(instance.dictionary, instance.y, n_nonzero=int(np.count_nonzero(gamma)),
                     engine=engine)
        found = result.codes[0]
        wrong = int(np.count_nonzero((found != 0) != (gamma != 0)))
        error = float(np.sum((found - gamma) ** 2))
        bound = float(np.sum(instance.noise**2)) / (1 - mu * (k - 1))
        slack = ROUNDING * max(bound, float(np.sum(gamma**2)))
        return Outcome(
            measured=error,
            bound=bound,
            holds=wrong == 0 and error <= bound + slack,
            details={"k": k, "mu": mu, "eps_L": instance.eps, "support errors": wrong,
                     "|Γ^min|": extreme_magnitudes(gamma)[0]},
        )


# --------------------------------------------------------------------------------------------
# W7: noisy BP


@dataclass(frozen=True)
class LassoSolution:
    r"""An exact minimiser of :math:`\tfrac12\|y - Mz\|^2 + \lambda\|z\|_1` certified by KKT.

    Attributes
    ----------
    codes : ndarray
        The minimiser (exact zeros off its support).
    dual_margin : float
        :math:`\lambda - \max_{j \notin T}|m_j^T(y - Mz)|` (``T`` the support); positive with
        ``gram_min > 0`` proves the minimiser unique.
    gram_min : float
        :math:`\lambda_{\min}(M_T^TM_T)` (``inf`` for an empty support).
    repairs : int
        Active-set changes made to the support of the starting point.
    """

    codes: np.ndarray
    dual_margin: float
    gram_min: float
    repairs: int


def lasso_kkt(M: np.ndarray, y: np.ndarray, lam: float, start: np.ndarray) -> LassoSolution:
    r"""Polish an approximate Lasso solution into an exact one and certify it by the KKT
    conditions (dense, small sizes).

    On the support T and signs s of ``start``: :math:`z_T = G_T^{-1}(M_T^Ty - \lambda s)`. It is
    a minimiser iff :math:`\mathrm{sign}(z_T) = s` and :math:`|m_j^T(y - M_Tz_T)| \le \lambda`
    off T (to :data:`ROUNDING`); while not, entries whose sign flips leave T and otherwise the most
    violating entry joins it (active-set repair, at most :data:`MAX_REPAIRS`). Unique when
    :math:`M_T` has full column rank and the off-support inequality is strict (Tibshirani 2013,
    "The lasso problem and uniqueness").

    Raises
    ------
    RuntimeError
        When no certified minimiser is found within :data:`MAX_REPAIRS` repairs.
    """
    support = np.flatnonzero(start)
    signs = np.sign(start[support])
    for repairs in range(MAX_REPAIRS + 1):
        columns, gram = _support_gram(M, support)
        values = np.linalg.solve(gram, columns.T @ y - lam * signs) if support.size else signs
        flipped = np.sign(values) != signs
        if flipped.any():
            support, signs = support[~flipped], signs[~flipped]
            continue
        corr = M.T @ (y - columns @ values)
        corr[support] = 0.0
        j = int(np.argmax(np.abs(corr)))
        if abs(corr[j]) > lam * (1 + ROUNDING):
            support, signs = np.append(support, j), np.append(signs, np.sign(corr[j]))
            continue
        codes = np.zeros(M.shape[1])
        codes[support] = values
        gram_min = float(np.linalg.eigvalsh(gram)[0]) if support.size else math.inf
        return LassoSolution(codes, lam - float(abs(corr[j])), gram_min, repairs)
    raise RuntimeError(f"no KKT-certified Lasso minimiser after {MAX_REPAIRS} repairs")


@register
class NoisyBP(Theorem):
    r"""W7: :math:`k < \tfrac13(1 + 1/\mu)`, :math:`\lambda = 4\varepsilon_L` ⇒ the BP minimiser
    :math:`\Gamma_{BP}` of :math:`\tfrac12\|y - D\Gamma\|^2 + \lambda\|\Gamma\|_1` has (a)
    :math:`\mathrm{supp}(\Gamma_{BP}) \subseteq \mathrm{supp}(\Gamma)`, (b)
    :math:`\|\Gamma_{BP} - \Gamma\|_\infty \le 7.5\varepsilon_L`, (c) every :math:`|\Gamma_j| >
    7.5\varepsilon_L` non-zero in :math:`\Gamma_{BP}` with the sign of :math:`\Gamma_j`, (d)
    uniqueness.

    Solver: :func:`mlverify.basis_pursuit` (FISTA) to a certified relative duality gap
    :data:`BP_TOL`, then :func:`lasso_kkt` on the dense matrix turns it into an exact minimiser
    (the remaining suboptimality of FISTA is thereby removed, not estimated) and certifies (d).
    Instances: ``k`` up to its limit with the knob; :math:`\varepsilon_L` between
    :math:`|\Gamma|_{\max}/64` and :math:`|\Gamma|_{\max}/4` (log-uniform; above it BP returns 0,
    below it the bound is loosest), the noise Gaussian or
    mixed with :math:`-D_SG_S^{-1}\mathrm{sign}(\Gamma_S)` (it adds to the shrinkage bias of BP).
    ``measured`` = :math:`\|\Gamma_{BP} - \Gamma\|_\infty`, ``bound`` = :math:`7.5\varepsilon_L`.
    """

    id = "W7"
    paper = "WLTG"
    status = "S+D"
    statement = ("k < ⅓(1 + 1/μ), λ = 4ε_L ⇒ supp Γ_BP ⊆ supp Γ, ‖Γ_BP − Γ‖_∞ ≤ 7.5ε_L, "
                 "|Γ_j| > 7.5ε_L found with its sign, unique minimiser")

    def sample(self, rng: np.random.Generator, knob: float) -> CodingInstance:
        D = dictionaries()[int(rng.integers(len(dictionaries())))]
        n, mu = D.kernel_size[0], D.coherence()
        k, position = _sparsity(knob, _largest_below((1 + 1 / mu) / 3))
        length = int(rng.integers(max(2 * n - 1, 64), 97))
        gamma = _plant(rng, D, length, k, rng.uniform(0.1, 1.0))
        clean = CodingInstance.from_codes(D, gamma)
        eps = float(np.abs(gamma).max()) / 4.0 * 16.0 ** -rng.uniform(0.0, 1.0)
        M = clean.dense()
        support = np.flatnonzero(gamma)
        columns, gram = _support_gram(M, support)
        bias = -columns @ np.linalg.solve(gram, np.sign(gamma.ravel()[support]))
        weight = float(rng.uniform(0.5, 1.0)) * position if rng.random() < 0.5 else 0.0
        noise = _noise(rng, clean, eps, bias.reshape(clean.signal.shape), weight)
        return CodingInstance.from_codes(D, gamma, noise)

    def hypotheses(self, instance: CodingInstance) -> dict[str, float]:
        return _base_margins(instance) | {
            "⅓(1 + 1/μ) - ‖Γ‖^s_{0,∞}": (1 + 1 / instance.mu) / 3 - instance.k,
            "ε_L (> 0)": instance.eps,
        }

    def solve(self, instance: CodingInstance,
              engine: str = "auto") -> tuple[LassoSolution, PursuitResult]:
        r"""The exact BP minimiser for :math:`\lambda = 4\varepsilon_L` (KKT-certified) and the
        certified FISTA run it was polished from."""
        lam = 4 * instance.eps
        result = basis_pursuit(instance.dictionary, instance.y, lam, tol=BP_TOL,
                               max_iter=200_000, engine=engine)
        if not result.converged:
            raise RuntimeError(f"basis_pursuit did not certify its gap: {result.message}")
        solution = lasso_kkt(instance.dense(), instance.y.ravel(), lam, result.codes[0].ravel())
        return solution, result

    def check(self, instance: CodingInstance, engine: str = "auto") -> Outcome:
        solution, fista = self.solve(instance, engine)
        gamma = instance.gamma.ravel()
        found = solution.codes
        eps = instance.eps
        bound = 7.5 * eps
        error = float(np.abs(found - gamma).max())
        outside = int(np.count_nonzero((found != 0) & (gamma == 0)))
        large = np.abs(gamma) > bound
        missed = int(np.count_nonzero(np.sign(found[large]) != np.sign(gamma[large])))
        unique = solution.dual_margin > ROUNDING * 4 * eps and solution.gram_min > ROUNDING
        slack = ROUNDING * max(bound, float(np.abs(gamma).max()))
        return Outcome(
            measured=error,
            bound=bound,
            holds=outside == 0 and error <= bound + slack and missed == 0 and unique,
            details={
                "k": instance.k, "mu": instance.mu, "eps_L": eps,
                "(a) entries outside supp Γ": outside, "(c) large entries missed": missed,
                "(d) dual margin": solution.dual_margin, "(d) lambda_min(G_T)": solution.gram_min,
                "fista relative gap": fista.certificate, "kkt repairs": solution.repairs,
                "max|Γ_FISTA - Γ_BP|": float(np.abs(fista.codes[0].ravel() - found).max()),
            },
        )

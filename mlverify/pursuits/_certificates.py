r"""Optimality certificates of basis pursuit (THEORY.md §3, DESIGN.md §3).

Basis pursuit (the Lasso) is always

.. math::

    F(\Gamma) = \tfrac12\|y - D\Gamma\|_2^2 + \lambda\|\Gamma\|_1
    \quad\bigl(+\ \iota_{\Gamma \ge 0}\ \text{for the non-negative variant}\bigr),

whose Fenchel dual is

.. math::

    \max_\nu\ d(\nu) = \tfrac12\|y\|_2^2 - \tfrac12\|y - \nu\|_2^2
    \quad\text{s.t.}\quad \|D^T\nu\|_\infty \le \lambda
    \quad\bigl(\max_j (D^T\nu)_j \le \lambda \ \text{non-negative}\bigr).

For every feasible :math:`\nu`, :math:`d(\nu) \le F_{opt} \le F(\Gamma)` (weak duality), so

.. math::

    \mathrm{gap}_{rel} = \frac{F(\Gamma) - d(\nu)}{d(\nu)} \ \ge\
    \frac{F(\Gamma) - F_{opt}}{F_{opt}},

i.e. ``rel_gap <= tol`` proves :math:`F(\Gamma) \le F_{opt}(1 + tol)`. The dual point is the
residual :math:`r = y - D\Gamma` scaled by the best :math:`s \ge 0` that keeps it feasible
(:math:`d(sr)` is a concave parabola in :math:`s`, maximised in closed form on the feasible
interval); the ray through :math:`y` itself (the residual of :math:`\Gamma = 0`) is tried as well
and the larger dual value kept, which makes the certificate exact (zero) when :math:`\Gamma = 0` is
optimal, e.g. for :math:`y = 0` or :math:`\lambda \ge \lambda_{max} = \|D^Ty\|_\infty`.
Solvers that check the gap periodically (:meth:`DualityGap.stopping_test`) also try Celer's
**dual extrapolation** of their last residuals (:meth:`DualityGap._extrapolated`), a far better
dual point once the iterates converge linearly.

**Honesty.** All sums are accumulated in float64 on a float64 copy of the dictionary (float32
data is converted exactly), and the feasibility test of the dual point is inflated by a rigorous
bound on the rounding error of the float64 analysis (:math:`\gamma_k \max_f\|A_f\|_1
\|r\|_\infty`, :math:`k` = terms per output, Higham's :math:`\gamma_k = ku/(1-ku)`), so the
reported dual value is a true lower bound of :math:`F_{opt}` and the reported relative gap a true
upper bound of the relative suboptimality.

**Batches.** ``y`` of shape ``(..., c, *S)`` and codes ``(..., m, *S)`` with the same leading axes
are independent problems; the objective is their sum (a separable problem), the dual point is
scaled per batch element (each element's dual is feasible on its own), and the relative gap is
that of the sums.

**Restricted support.** With a boolean ``support`` of shape ``(m, *S)`` the codes are constrained
to vanish outside it (the problem over the columns :math:`D_\Omega`); the dual constraint then
only involves the correlations on the support, :math:`\|(D^T\nu)_\Omega\|_\infty \le \lambda`,
and codes that are non-zero outside it are infeasible (primal ``inf``). Zero-padding the last
:math:`n - 1` positions of every code turns the periodic model into the non-periodic ("valid")
one of alphacsc: :math:`D\Gamma` is then the full linear convolution, without wrap-around.

When the dual value is zero (``y = 0``, or :math:`\lambda = 0` with ``y`` in the range of
:math:`D`), :math:`F_{opt} = 0` and no relative certificate exists: the gap is ``0`` if the primal
is zero too and ``inf`` otherwise.

**Estimates.** ``certificates(codes, estimate=True)`` computes the same quantities through the
DFT (:class:`mlverify.kernels.fft.SpectralConvolution`, in the dictionary's precision with
float64 sums, no KKT residual) when the filters are large (:data:`SPECTRAL_TAPS`), more than
10× cheaper for 12×12 atoms but without a rigorous rounding bound;
solvers use estimates to decide *when* to certify and certify with the direct sums (see
:meth:`DualityGap.stopping_test`), so every reported certificate is rigorous.

References: Papyan, Sulam, Elad (2017), "Working locally thinking globally"; Massias, Gramfort,
Salmon (2018), "Celer: a fast solver for the Lasso with dual extrapolation" (dual point by
residual rescaling).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._validate import check_engine, check_nonnegative
from ..kernels import cpu
from ..kernels.fft import SpectralConvolution
from ..model.dictionary import ConvDictionary
from ._checks import check_codes, check_dictionary, check_signal

_UNIT_ROUNDOFF = 2.0**-53
#: Taps per atom (channels × kernel) from which estimates go through the DFT.
SPECTRAL_TAPS = 32
#: Residuals combined by the dual extrapolation (Celer's K).
EXTRAPOLATION = 5


def inner(a: np.ndarray, b: np.ndarray) -> float:
    r""":math:`\langle a, b\rangle` of two same-shape real arrays, without BLAS.

    ``np.vdot``/``np.dot`` call the threaded BLAS ``ddot``, whose thread start-up costs
    milliseconds per call on a busy 2-core machine (measured: 14 ms for 65 536 float64 values,
    against 0.1 ms here); ``einsum`` without ``optimize`` runs NumPy's own loop.
    """
    return float(np.einsum("i,i->", a.reshape(-1), b.reshape(-1)))


def relative_gap(primal: float, dual: float) -> float:
    """``(primal - dual) / dual`` for a primal value and a certified lower bound ``dual``.

    ``0`` when both are zero (:math:`F_{opt} = 0` attained), ``inf`` when ``dual <= 0 < primal``
    (no relative certificate exists); clipped at 0 against rounding.
    """
    if dual > 0:
        return max(primal - dual, 0.0) / dual
    return 0.0 if primal == 0 else math.inf


class DualityGap:
    r"""Duality-gap and KKT certificates of one (batched) basis-pursuit problem.

    Precomputes what does not depend on :math:`\Gamma` (the float64 dictionary, :math:`D^Ty`,
    the rounding-error constant) so that solvers can evaluate the certificate cheaply every few
    iterations. See the module docstring for the formulas.

    Parameters
    ----------
    D : ConvDictionary
        The dictionary (float32 or float64).
    y : ndarray, shape ``(..., c, *S)``
        Signal(s), the dictionary's dtype.
    lam : float
        :math:`\lambda \ge 0`.
    nonneg : bool
        Non-negative variant (:math:`\Gamma \ge 0`).
    engine : {"auto", "numpy", "cpu"}
        Engine of the operators.
    support : ndarray of bool, shape ``(m, *S)``, optional
        Coordinates the codes may use (the same for every batch element); ``None``: all.
    """

    def __init__(self, D: ConvDictionary, y, lam, *, nonneg: bool = False,
                 engine: str = "cpu", support=None) -> None:
        self.D = check_dictionary("D", D)
        self.y = check_signal(D, "y", y)
        self.lam = check_nonnegative("lam", lam)
        self.nonneg = bool(nonneg)
        self.engine = check_engine(engine)
        self._d64 = D if D.dtype == np.float64 else ConvDictionary(D.filters.astype(np.float64))
        self._y64 = self.y.astype(np.float64)
        self._batch = math.prod(self._y64.shape[: -D.spatial_ndim - 1])
        terms = D.n_channels * math.prod(D.kernel_size)
        gamma = terms * _UNIT_ROUNDOFF / (1.0 - terms * _UNIT_ROUNDOFF)
        atom_l1 = np.abs(self._d64.filters).reshape(D.n_atoms, -1).sum(axis=1).max()
        self._rounding = 1.01 * gamma * float(atom_l1)
        self._yflat = self._flat(self._y64)
        self.support = None if support is None else self._check_support(support)
        self._residuals: list[np.ndarray] = []  # of the last stopping tests (extrapolation)
        self._last_residual: np.ndarray | None = None

    def _check_support(self, support) -> np.ndarray:
        """``support`` (bool, shape ``(m, *S)``) checked and flattened to ``(1, m·∏S)``."""
        support = np.asarray(support)
        d = self.D.spatial_ndim
        expected = (self.D.n_atoms, *self.y.shape[self.y.ndim - d:])
        if support.dtype != np.bool_:
            raise TypeError(f"support must be a bool array, got dtype {support.dtype}")
        if support.shape != expected:
            raise ValueError(f"support must have shape {expected} (atoms, spatial of the "
                             f"signal), got {support.shape}")
        return support.reshape(1, -1)

    def _on_support(self, flat: np.ndarray) -> np.ndarray:
        """``flat`` (``(batch, m·∏S)``) with the coordinates off the support set to 0."""
        if self.support is None or flat.size == 0:
            return flat
        return np.where(self.support, flat, 0.0)

    def _infeasible(self, flat_codes: np.ndarray) -> np.ndarray:
        """Per batch element: do the flattened codes break the sign or support constraint?"""
        out = np.zeros(flat_codes.shape[0], dtype=bool)
        if self.nonneg:
            out |= (flat_codes < 0).any(axis=1)
        if self.support is not None and flat_codes.size:
            out |= (flat_codes[:, ~self.support[0]] != 0).any(axis=1)
        return out

    def _feasible(self, flat_codes: np.ndarray) -> bool:
        """Sign constraint and support constraint of flattened codes, the whole batch."""
        return not self._infeasible(flat_codes).any()

    @functools.cached_property
    def _dty(self) -> np.ndarray:
        """:math:`D^Ty` in float64, ``(batch, m·∏S)``, 0 off the support (computed on first use)."""
        return self._on_support(self._flat(self._d64.analyze(self._y64, engine=self.engine)))

    def _flat(self, array: np.ndarray) -> np.ndarray:
        """``(batch, everything else)``; an empty batch gives an empty ``(0, 0)`` array."""
        return array.reshape(self._batch, -1) if self._batch else array.reshape(0, 0)

    @property
    def lam_max(self) -> float:
        r""":math:`\lambda_{max}`: :math:`\Gamma = 0` is optimal iff :math:`\lambda \ge` it.

        :math:`\max_b \|D^Ty_b\|_\infty` (:math:`\max(0, \max_j (D^Ty)_j)` when non-negative),
        over the support when one is given.
        """
        if self._dty.size == 0:
            return 0.0
        if self.nonneg:
            return max(0.0, float(self._dty.max()))
        return float(np.abs(self._dty).max())

    def _codes64(self, codes) -> np.ndarray:
        return check_codes(self.D, "codes", codes, self.y).astype(np.float64)

    def _residual(self, codes64: np.ndarray) -> np.ndarray:
        return self._y64 - self._d64.synthesize(codes64, engine=self.engine)

    @functools.cached_property
    def _spectral(self) -> SpectralConvolution | None:
        """The DFT operators of the dictionary (its dtype), when they beat the direct sums."""
        taps = self.D.n_channels * math.prod(self.D.kernel_size)
        if taps < SPECTRAL_TAPS or self.engine == "numpy":
            return None
        spatial = self.y.shape[-self.D.spatial_ndim:]
        cdtype = np.result_type(self.D.dtype, np.complex64)
        return SpectralConvolution(self.D.filters, spatial, workers=cpu.thread_count(),
                                   spectra=self.D.spectra(spatial, cdtype))

    def _extremes(self, dtr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Largest and smallest entry per batch element of :math:`D^Tr` ``(batch, m·∏S)``, the
        entries off the support counted as 0."""
        dtr = self._on_support(dtr)
        return dtr.max(axis=1), dtr.min(axis=1)

    def _ray_dual(self, r: np.ndarray, extremes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Best dual value per batch element on the ray ``s·r``, ``s >= 0`` feasible, from the
        :meth:`_extremes` of :math:`D^Tr`."""
        high, low = extremes
        corr = high if self.nonneg else np.maximum(high, -low)  # max |.| = max(max, -min)
        bound = corr + self._rounding * np.abs(r).max(axis=1)
        norm2 = np.einsum("bi,bi->b", r, r)
        inner = np.einsum("bi,bi->b", self._yflat, r)
        with np.errstate(divide="ignore", invalid="ignore"):
            s_max = np.where(bound > 0, self.lam / bound, np.inf)
            s = np.clip(np.where(norm2 > 0, inner / norm2, 0.0), 0.0, s_max)
        return np.where(norm2 > 0, s * inner - 0.5 * s * s * norm2, 0.0)

    def certificates(self, codes, estimate: bool = False) -> dict[str, float]:
        r"""Primal, dual, relative gap and KKT residual of ``codes`` from one analysis.

        Returns a dict with keys ``"primal"``, ``"dual"``, ``"rel_gap"``, ``"kkt"`` (see
        :func:`relative_duality_gap` and :func:`kkt_residual`) and ``"certified"``. With
        ``estimate`` and large filters the values are estimates through the DFT, in the
        dictionary's precision with float64 sums (``"certified"`` false, ``"kkt"`` not computed:
        ``nan``); see the module docstring. ``codes=None`` stands for :math:`\Gamma = 0` (a
        solver's cold start): the residual is :math:`y` and its analysis the cached
        :math:`D^Ty`, so no synthesis or analysis runs.
        """
        if codes is not None:
            codes = check_codes(self.D, "codes", codes, self.y)
        if self._y64.size == 0:  # an empty batch: nothing to certify
            return {"primal": 0.0, "dual": 0.0, "rel_gap": 0.0, "kkt": 0.0, "certified": True}
        spectral = self._spectral if estimate else None
        if spectral is not None:
            return self._estimate(spectral, codes)
        if codes is None:
            d = self.D.spatial_ndim
            shape = (*self.y.shape[: -d - 1], self.D.n_atoms, *self.y.shape[-d:])
            codes64, r, g = np.zeros(shape), self._y64, self._dty.reshape(shape)
        else:
            codes64 = codes.astype(np.float64)
            r = self._residual(codes64)
            g = self._d64.analyze(r, engine=self.engine)
        values = self._gap(None if codes is None else self._flat(codes64), self._flat(r),
                           self._extremes(self._flat(g)),
                           extremes_of=lambda v: self._extremes(self._flat(
                               self._d64.analyze(v, engine=self.engine))))
        values["kkt"] = math.inf if values["primal"] == math.inf else self._kkt(codes64, g)
        return values

    def _estimate(self, spectral: SpectralConvolution, codes: np.ndarray | None) -> dict:
        def extremes_of(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            support = None if self.support is None else self.support[0]
            return spectral.analysis_extremes(signal.astype(self.D.dtype), support)

        if codes is None:
            r, extremes = self._y64, self._dty_extremes_estimate
        else:
            r = self._y64 - spectral.synthesize(codes)
            extremes = extremes_of(r)
        values = self._gap(None if codes is None else self._flat(codes), self._flat(r), extremes,
                           estimate=True, extremes_of=extremes_of)
        values.update(kkt=math.nan, certified=False)
        return values

    @functools.cached_property
    def _y_ray(self) -> np.ndarray:
        """Dual values on the ray of :math:`y` (certified; they depend on the problem only)."""
        return self._ray_dual(self._yflat, self._extremes(self._dty))

    @functools.cached_property
    def _dty_extremes_estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """The :meth:`_extremes` of :math:`D^Ty` through the DFT (estimates)."""
        support = None if self.support is None else self.support[0]
        return self._spectral.analysis_extremes(self.y, support)

    @functools.cached_property
    def _y_ray_estimate(self) -> np.ndarray:
        """Dual values on the ray of :math:`y` with :math:`D^Ty` through the DFT (estimates)."""
        return self._ray_dual(self._yflat, self._dty_extremes_estimate)

    def _gap(self, flat_codes: np.ndarray | None, rflat: np.ndarray, extremes,
             estimate: bool = False, extremes_of=None) -> dict:
        r"""Primal, dual and relative gap from the residual (flat per batch) and the
        :meth:`_extremes` of its analysis (``flat_codes=None``: :math:`\Gamma = 0`);
        ``estimate``: the ray of :math:`y` from the DFT :math:`D^Ty` (else the certified one);
        ``extremes_of`` (those of :math:`D^T` of a signal) evaluates the extrapolated dual
        candidate, when there is one."""
        self._last_residual = rflat
        y_ray = self._y_ray_estimate if estimate else self._y_ray
        if flat_codes is None:  # r = y: its ray is the ray of y
            primal, duals = 0.5 * float(np.einsum("bi,bi->", rflat, rflat)), [y_ray]
        else:
            primal = math.inf if not self._feasible(flat_codes) else (
                0.5 * float(np.einsum("bi,bi->", rflat, rflat))
                + self.lam * float(np.abs(flat_codes).sum(dtype=np.float64)))
            duals = [self._ray_dual(rflat, extremes), y_ray]
        extrapolated = self._extrapolated() if extremes_of is not None else None
        if extrapolated is not None:
            candidate = extremes_of(extrapolated.reshape(self._y64.shape))
            duals.append(self._ray_dual(extrapolated, candidate))
        dual = float(np.maximum(np.max(duals, axis=0), 0.0).sum())
        return {"primal": primal, "dual": dual, "rel_gap": relative_gap(primal, dual),
                "certified": True}

    def stopping_test(self, codes, tol: float) -> dict[str, float]:
        r""":meth:`certificates` for the stopping rule ``rel_gap <= tol``.

        An estimate first; the certified values only once the estimate is at or below ``tol``
        (or when no cheaper estimate exists), so a solver stops on a rigorous certificate while
        most checks cost a DFT evaluation. ``codes=None`` stands for :math:`\Gamma = 0`.
        """
        values = self.certificates(codes, estimate=True)
        self._residuals = [*self._residuals[-EXTRAPOLATION:], self._last_residual]
        if values["certified"] or values["rel_gap"] > tol:
            return values
        return self.certificates(codes)

    def _extrapolated(self) -> np.ndarray | None:
        r"""Dual extrapolation of the residuals of the last checks (Celer), or ``None``.

        With the residuals :math:`r_{t-K}, \dots, r_t` of the last :data:`EXTRAPOLATION` + 1
        calls of :meth:`stopping_test` and :math:`U = [r_{t-K+1} - r_{t-K}, \dots, r_t -
        r_{t-1}]`, solve :math:`U^TUz = \mathbf 1`, :math:`c = z/\mathbf 1^Tz` and return
        :math:`\sum_k c_k r_{t-K+k}` per batch element (Massias, Gramfort, Salmon, ICML 2018):
        for iterates that converge like a linear recursion this is much closer to the optimal
        residual than :math:`r_t`. It is only a candidate: its ray is scaled to feasibility
        like the others, so the certificate stays rigorous.
        """
        if len(self._residuals) <= EXTRAPOLATION:
            return None
        stack = np.stack(self._residuals[-EXTRAPOLATION - 1:], axis=1)  # (batch, K + 1, n)
        steps = np.diff(stack, axis=1)
        gram = np.einsum("bkn,bln->bkl", steps, steps)
        out = np.empty_like(stack[:, 0])
        for b in range(stack.shape[0]):
            try:
                z = np.linalg.solve(gram[b], np.ones(EXTRAPOLATION))
            except np.linalg.LinAlgError:
                return None
            if not np.isfinite(z).all() or z.sum() == 0:
                return None
            out[b] = (z / z.sum()) @ stack[b, 1:]
        return out

    def _kkt_distances(self, codes64: np.ndarray, g: np.ndarray) -> np.ndarray:
        lam = self.lam
        off_dist = np.maximum(g - lam, 0.0) if self.nonneg else np.maximum(np.abs(g) - lam, 0.0)
        dist = np.where(codes64 != 0, np.abs(g - lam * np.sign(codes64)), off_dist)
        return self._on_support(self._flat(dist)).reshape(codes64.shape)

    def _kkt(self, codes64: np.ndarray, g: np.ndarray) -> float:
        dist = self._kkt_distances(codes64, g)
        return float(dist.max()) if dist.size else 0.0

    def problem_certificates(self, codes) -> dict[str, np.ndarray]:
        """Per-problem ``"primal"``, ``"dual"`` and ``"kkt"``, arrays of shape ``(batch,)``.

        The same quantities as :meth:`certificates`, one value per independent problem of the
        batch (the solvers that stop every problem on its own gap use them); the batch's
        values are their sums (the maximum for ``"kkt"``).
        """
        codes64 = self._codes64(codes)
        if codes64.size == 0:
            return {key: np.zeros(self._batch) for key in ("primal", "dual", "kkt")}
        r = self._residual(codes64)
        g = self._d64.analyze(r, engine=self.engine)
        flat_codes, rflat, gflat = self._flat(codes64), self._flat(r), self._flat(g)
        primal = 0.5 * np.einsum("bi,bi->b", rflat, rflat) + self.lam * np.abs(flat_codes).sum(
            axis=1)
        kkt = self._flat(self._kkt_distances(codes64, g)).max(axis=1)
        infeasible = self._infeasible(flat_codes)
        primal[infeasible] = kkt[infeasible] = math.inf
        dual = np.maximum(np.maximum(self._ray_dual(rflat, self._extremes(gflat)), self._y_ray),
                          0.0)
        return {"primal": primal, "dual": dual, "kkt": kkt}

    def evaluate(self, codes) -> tuple[float, float, float]:
        """``(primal, dual, rel_gap)`` of ``codes``; see :func:`relative_duality_gap`."""
        c = self.certificates(codes)
        return c["primal"], c["dual"], c["rel_gap"]

    def objective(self, codes) -> float:
        r""":math:`F(\Gamma)` summed over the batch (``inf`` for infeasible codes: negative ones
        if non-negative, non-zero ones off the support)."""
        codes64 = self._codes64(codes)
        if not self._feasible(self._flat(codes64)):
            return math.inf
        r = self._residual(codes64)
        return 0.5 * inner(r, r) + self.lam * float(np.abs(codes64).sum())

    def kkt(self, codes) -> float:
        r""":math:`\|\mathrm{dist}(D^T(y - D\Gamma), \lambda\partial\|\Gamma\|_1)\|_\infty`.

        Per coordinate, with :math:`g = D^T(y - D\Gamma)`: :math:`|g_j - \lambda\,\mathrm{sign}
        (\Gamma_j)|` on the support and :math:`\max(|g_j| - \lambda, 0)` off it; non-negative:
        :math:`|g_j - \lambda|` on the support, :math:`\max(g_j - \lambda, 0)` at zero and
        ``inf`` if any :math:`\Gamma_j < 0` (infeasible). Coordinates outside a given
        ``support`` count 0 (``inf`` if non-zero there).
        """
        codes64 = self._codes64(codes)
        if not self._feasible(self._flat(codes64)):
            return math.inf
        return self._kkt(codes64, self._d64.analyze(self._residual(codes64), engine=self.engine))


def bp_objective(D: ConvDictionary, y, codes, lam, engine: str = "cpu") -> float:
    r"""Basis-pursuit objective :math:`\tfrac12\|y - D\Gamma\|_2^2 + \lambda\|\Gamma\|_1`.

    Accumulated in float64 and summed over any batch axes (THEORY.md §3: always with the ½).

    Parameters
    ----------
    D : ConvDictionary
    y : ndarray, shape ``(..., c, *S)``
    codes : ndarray, shape ``(..., m, *S)``
    lam : float
        :math:`\lambda \ge 0`.
    engine : {"auto", "numpy", "cpu"}
    """
    return DualityGap(D, y, lam, engine=engine).objective(codes)


def relative_duality_gap(D: ConvDictionary, y, codes, lam, nonneg: bool = False,
                         engine: str = "cpu") -> tuple[float, float, float]:
    r"""``(primal, dual, rel_gap)``: a certified upper bound of the relative suboptimality.

    ``rel_gap = (primal - dual) / dual`` with a feasible dual point built from the residual (see
    the module docstring), so ``rel_gap <= tol`` implies :math:`F(\Gamma) \le F_{opt}(1 + tol)`.
    ``primal`` includes the indicator of :math:`\Gamma \ge 0` when ``nonneg`` (``inf`` when
    violated). Batched inputs: sums over the batch.

    Parameters
    ----------
    D : ConvDictionary
    y : ndarray, shape ``(..., c, *S)``
    codes : ndarray, shape ``(..., m, *S)``
    lam : float
        :math:`\lambda \ge 0`.
    nonneg : bool
        Non-negative basis pursuit.
    engine : {"auto", "numpy", "cpu"}
    """
    return DualityGap(D, y, lam, nonneg=nonneg, engine=engine).evaluate(codes)


def kkt_residual(D: ConvDictionary, y, codes, lam, nonneg: bool = False,
                 engine: str = "cpu") -> float:
    r"""∞-norm distance of :math:`-D^T(D\Gamma - y)` to :math:`\lambda\partial\|\Gamma\|_1`.

    Zero exactly at the optimum (first-order optimality of basis pursuit); the non-negative
    analogue uses the subdifferential of :math:`\lambda\|\Gamma\|_1 + \iota_{\Gamma\ge0}`
    (``inf`` if a code is negative). Computed in float64; batched inputs: max over the batch.

    Parameters
    ----------
    D : ConvDictionary
    y : ndarray, shape ``(..., c, *S)``
    codes : ndarray, shape ``(..., m, *S)``
    lam : float
        :math:`\lambda \ge 0`.
    nonneg : bool
    engine : {"auto", "numpy", "cpu"}
    """
    return DualityGap(D, y, lam, nonneg=nonneg, engine=engine).kkt(codes)

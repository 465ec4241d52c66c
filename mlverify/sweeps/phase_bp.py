r"""Built-in sweep ``phase-bp``: support recovery of convolutional BP and OMP over k × μ.

Every trial plants a single-layer 1-D signal :math:`y = D\Gamma + E` (:math:`N =` :data:`N`)
with :func:`mlverify.sample_instance`: :math:`\Gamma` has stripe sparsity exactly :math:`k`
(saturated: non-zeros are added until no stripe can take another), magnitudes uniform in
:math:`[c, 1]` (:math:`c =` :data:`CONTRAST`) with random signs, and Gaussian noise rescaled to
:math:`\varepsilon_L = \|E\|^p_{2,\infty} =` :data:`EPS` (patches of side :math:`n`). It then runs

- BP, :math:`\min \tfrac12\|y - D\Gamma\|^2 + \lambda\|\Gamma\|_1` with :math:`\lambda =
  4\varepsilon_L` (:func:`mlverify.basis_pursuit`, relative duality gap :data:`BP_TOL`);
- OMP for :math:`\|\Gamma\|_0` steps (:func:`mlverify.omp`);

and records whether each found :math:`\mathrm{supp}(\Gamma)` exactly, next to the sufficient
conditions of THEORY.md §4 (Papyan, Sulam, Elad, "Working locally thinking globally", 2017):

- W7 (BP): :math:`k < \tfrac13(1 + 1/\mu)`; with :math:`|\Gamma^{\min}| > 7.5\varepsilon_L`
  every non-zero is found and nothing else, i.e. exact support recovery;
- W6 (OMP): :math:`k < \tfrac12(1 + 1/\mu) - \tfrac1\mu\,\varepsilon_L/|\Gamma^{\min}|`.

The dictionaries span the coherence axis: Barker-13 (:math:`\mu = 1/13`), low-coherence filters
(:func:`mlverify.low_coherence_filters`, fixed seeds, computed once per worker process) and
Gaussian random filters (fixed seeds). The conditions are sufficient, not necessary: success
outside them is expected; failure inside them would contradict a theorem (the summary counts it).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from ..model.constructions import barker13, low_coherence_filters, random_filters
from ..model.dictionary import ConvDictionary
from ..model.mlcsc import MLCSC
from ..model.sampler import sample_instance
from ..pursuits._basis_pursuit import basis_pursuit
from ..pursuits._omp import omp
from .grid import Grid
from .report import aggregate, write_figure_and_summary
from .store import Row
from .sweep import Sweep

#: Signal length.
N = 128
#: Patch noise level :math:`\varepsilon_L = \|E\|^p_{2,\infty}` of every instance.
EPS = 0.05
#: Magnitudes of the non-zeros are uniform in ``[CONTRAST, 1]``.
CONTRAST = 0.5
#: Target relative duality gap of BP.
BP_TOL = 1e-8
#: BP iteration cap.
BP_MAX_ITER = 20000

#: Dictionaries: name -> (construction, m atoms, c channels, n taps, seed).
DICTIONARIES = {
    "barker13": ("barker", 1, 1, 13, 0),
    "lowcoh-3x8x2": ("low-coherence", 3, 2, 8, 0),
    "lowcoh-2x13": ("low-coherence", 2, 1, 13, 0),
    "lowcoh-2x8": ("low-coherence", 2, 1, 8, 0),
    "random-1x13": ("random", 1, 1, 13, 0),
    "random-1x8": ("random", 1, 1, 8, 0),
    "random-2x13": ("random", 2, 1, 13, 0),
}


@cache
def dictionary(name: str) -> tuple[ConvDictionary, float]:
    """The named dictionary of :data:`DICTIONARIES` and its coherence (built once per process)."""
    if name not in DICTIONARIES:
        raise ValueError(f"unknown dictionary {name!r}; known: {', '.join(DICTIONARIES)}")
    kind, m, c, n, seed = DICTIONARIES[name]
    if kind == "barker":
        D = barker13()
    elif kind == "low-coherence":
        D = low_coherence_filters(m, c, n, seed, restarts=3).dictionary
    else:
        D = random_filters(m, c, n, seed)
    return D, D.coherence()


def bp_bound(mu):
    r"""W7: BP is stable for :math:`k < \tfrac13(1 + 1/\mu)`."""
    return (1.0 + 1.0 / np.asarray(mu)) / 3.0


def omp_bound(mu, eps: float, gamma_min: float):
    r"""W6: OMP finds the support for :math:`k < \tfrac12(1 + 1/\mu) -
    \tfrac1\mu\,\varepsilon_L/|\Gamma^{\min}|`."""
    mu = np.asarray(mu)
    return 0.5 * (1.0 + 1.0 / mu) - eps / (mu * gamma_min)


def trial(params: dict, seed: int) -> dict:
    """One planted instance, BP and OMP on it, and the W6/W7 conditions (see the module)."""
    D, mu = dictionary(params["dictionary"])
    k = params["k"]
    instance = sample_instance(MLCSC([D]), N, np.random.default_rng(seed), k=k,
                               contrast=CONTRAST, noise_patch=EPS)
    gamma = instance.deepest
    support = gamma != 0
    layer = instance.layers[0]
    eps_l, gamma_min = instance.noise_patch, layer.min_magnitude
    bp = basis_pursuit(D, instance.y, 4.0 * EPS, tol=BP_TOL, max_iter=BP_MAX_ITER)
    bp_codes = bp.codes[0]
    greedy = omp(D, instance.y, n_nonzero=layer.n_nonzero)
    omp_codes = greedy.codes[0]
    return {
        "mu": mu,
        "stripe_sparsity": layer.stripe_sparsity,
        "n_nonzero": layer.n_nonzero,
        "gamma_min": gamma_min,
        "eps_l": eps_l,
        "w7": bool(layer.stripe_sparsity < bp_bound(mu)),
        "w7_support": bool(layer.stripe_sparsity < bp_bound(mu) and gamma_min > 7.5 * eps_l),
        "w6": bool(layer.stripe_sparsity < omp_bound(mu, eps_l, gamma_min)),
        "bp_support": bool(np.array_equal(bp_codes != 0, support)),
        "bp_subset": bool(not np.any((bp_codes != 0) & ~support)),
        "bp_linf": float(np.max(np.abs(bp_codes - gamma))),
        "bp_gap": float(bp.certificate),
        "bp_status": bp.status,
        "omp_support": bool(np.array_equal(omp_codes != 0, support)),
        "omp_l2sq": float(np.sum((omp_codes - gamma) ** 2)),
    }


def warmup() -> None:
    """Load the compiled kernels (one tiny BP and OMP) in a fresh worker."""
    trial({"dictionary": "barker13", "k": 1}, 0)


def _panel_data(rows: list[Row], field: str):
    summaries = aggregate(rows)
    mu = np.array([s.means["mu"] for s in summaries])
    k = np.array([s.params["k"] for s in summaries])
    rate = np.array([s.means[field] for s in summaries])
    return mu, k, rate


def write_figure(rows: list[Row], path: Path) -> Path:
    """Success maps of BP and OMP over (μ, k) with the W7 and W6 curves; a PNG at ``path``."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mus = sorted({r.record["mu"] for r in rows})
    ks = sorted({r.params["k"] for r in rows})
    grid_mu = np.linspace(0.9 * min(mus), 1.05 * max(mus), 400)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharey=True, constrained_layout=True)
    for ax, (label, field) in zip(axes, (("BP (λ = 4ε)", "bp_support"),
                                         ("OMP (‖Γ‖₀ steps)", "omp_support")), strict=True):
        mu, k, rate = _panel_data(rows, field)
        points = ax.scatter(mu, k, c=rate, cmap="viridis", vmin=0, vmax=1, marker="s", s=160,
                            edgecolors="k", linewidths=0.3)
        ax.plot(grid_mu, bp_bound(grid_mu), "r-", lw=2, label="W7: k < ⅓(1 + 1/μ)")
        ax.plot(grid_mu, omp_bound(grid_mu, EPS, CONTRAST), "w--", lw=2,
                label=f"W6: k < ½(1 + 1/μ) − ε/(μ|Γmin|), |Γmin| = {CONTRAST}")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(mus))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_ylim(min(ks) - 0.7, max(ks) + 0.7)
        ax.set_xlabel("mutual coherence μ")
        ax.set_title(f"{label}: exact support recovery")
        ax.set_facecolor("0.55")
    axes[0].set_ylabel("stripe sparsity k")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.colorbar(points, ax=axes, label="success rate")
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8,
               facecolor="0.55")
    fig.suptitle(f"phase-bp: N = {N}, ε = ‖E‖ᵖ₂,∞ = {EPS}, magnitudes in [{CONTRAST}, 1]")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(sweep: Sweep, rows: list[Row], figure: Path) -> str:
    summaries = aggregate(rows)
    by_dictionary: dict[str, list] = {}
    for s in summaries:
        by_dictionary.setdefault(s.params["dictionary"], []).append(s)
    inside_bp = [s for s in summaries if s.means["w7_support"] == 1 and s.means["bp_support"] < 1]
    inside_omp = [s for s in summaries if s.means["w6"] == 1 and s.means["omp_support"] < 1]
    lines = [
        f"# Sweep `{sweep.name}`: convolutional BP and OMP support recovery over k × μ", "",
        f"Single layer, 1-D, N = {N}; Γ with stripe sparsity exactly k (saturated), magnitudes "
        f"uniform in [{CONTRAST}, 1] with random signs; noise with ‖E‖ᵖ₂,∞ = ε = {EPS} "
        f"(patch side n). BP: λ = 4ε, relative duality gap ≤ {BP_TOL:g}. OMP: ‖Γ‖₀ steps. "
        f"{len(sweep.grid)} cells × {sweep.trials} trials, {len(rows)} stored.", "",
        f"![phase map]({figure.name})", "",
        "Sufficient conditions (THEORY.md §4): W7, BP: k < ⅓(1 + 1/μ) (exact support when also "
        "|Γmin| > 7.5ε); W6, OMP: k < ½(1 + 1/μ) − ε/(μ|Γmin|).", "",
        f"Cells where W7 held in every trial but BP missed the support: {len(inside_bp)}; "
        f"where W6 held in every trial but OMP missed it: {len(inside_omp)}"
        + ("" if not inside_bp + inside_omp else " (a contradiction of a theorem: "
           "investigate the stored trials)") + ".", "",
    ]
    for name, group in by_dictionary.items():
        mu = group[0].means["mu"]
        lines += [f"## {name} (μ = {mu:.4f}; W7 bound {bp_bound(mu):.3f}, "
                  f"W6 bound at |Γmin| = {CONTRAST}: {omp_bound(mu, EPS, CONTRAST):.3f})", "",
                  "| k | trials | BP success | BP supp ⊆ | OMP success | W7 met | W6 met |",
                  "|---|---|---|---|---|---|---|"]
        for s in group:
            m = s.means
            lines.append(f"| {s.params['k']} | {s.trials} | {m['bp_support']:.2f} | "
                         f"{m['bp_subset']:.2f} | {m['omp_support']:.2f} | "
                         f"{m['w7_support']:.2f} | {m['w6']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def report(sweep: Sweep, rows: list[Row], out_dir: Path) -> list[Path]:
    """Write ``<sweep>.png`` (the phase map) and ``<sweep>.md`` (tables) under ``out_dir``."""
    return write_figure_and_summary(sweep, rows, out_dir, write_figure, _markdown)


SWEEP = Sweep(
    name="phase-bp",
    grid=Grid({"dictionary": list(DICTIONARIES), "k": list(range(1, 11))}),
    trial=trial,
    trials=25,
    description="single-layer convolutional BP and OMP support recovery over stripe sparsity "
    "k × coherence μ, with the W6/W7 bounds",
    quick=(Grid({"dictionary": ["barker13", "lowcoh-2x13", "random-2x13"],
                 "k": [1, 2, 3, 5, 8]}), 4),
    warmup=warmup,
    report=report,
)

__all__ = ["SWEEP", "bp_bound", "dictionary", "omp_bound", "trial"]


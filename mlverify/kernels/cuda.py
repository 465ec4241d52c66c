"""CUDA kernels (plain ``@cuda.jit``) and their host wrappers, the ``engine="cuda"`` paths.

Same canonical layout and formulas as :mod:`mlverify.kernels.cpu` (oracles in
:mod:`mlverify.kernels.reference`): codes ``(B, m, H, W)``, signals ``(B, c, H, W)``, filters
``(m, c, n1, n2)``, 1-D being ``H = n1 = 1``, periodic boundary, stride 1:

.. math::

    (D\\Gamma)[b, c, y, x] = \\sum_f \\sum_{t_y, t_x} A[f, c, t_y, t_x]\\,
        \\Gamma[b, f, (y - t_y) \\bmod H, (x - t_x) \\bmod W], \\qquad
    (D^T V)[b, f, y, x] = \\sum_c \\sum_{t_y, t_x} A[f, c, t_y, t_x]\\,
        V[b, c, (y + t_y) \\bmod H, (x + t_x) \\bmod W].

Kernels:

- :func:`analyze_threshold` (fused): ``out = T_β(base + coef · D^T V)`` in one pass, which is
  analysis (``coef = 1``, no base, no threshold), a CNN layer (layered thresholding) and the
  proximal-gradient step of FISTA/ML-ISTA (``base = z``, ``coef = -step``);
- :func:`synthesize`: ``out = DΓ - sub``, sparse-aware: a first pass flags the non-empty
  ``TILE``-column tiles of every code row and the synthesis skips the taps whose source window
  has no flagged tile (same sums, the all-zero terms left out);
- :func:`threshold` (entrywise), :func:`problem_sums` (per-problem shared-memory reductions),
  and the per-problem scalar steps of the device solvers (:func:`fista_momentum`,
  :func:`fixed_point_test`, :func:`momentum_step`, :func:`commit`, :func:`retire`).

**Batches.** Every kernel takes a batch of independent problems: the problem index runs over the
y axis of the grid and each problem's elements over its x axis (both as grid-stride loops), and
every problem kernel skips the problems whose ``active`` flag is 0 (the device solvers freeze
converged problems this way). A thread owns its output element: no races, no atomics except the
non-finite counter, and the sums are computed in the same order on every run. Only plain CUDA
features are used (shared memory and ``syncthreads`` for the reductions; no warp shuffles, no
cooperative groups), so the kernels also run in the Numba simulator. The scalar math
(:func:`mlverify.kernels._scalar.shrink`) is the CPU kernels' own.

**Device-resident filters.** :func:`device_filters` copies a read-only filter array (a
``ConvDictionary``'s) to the device once and keeps it while the host array lives.

The host wrappers take NumPy arrays or device arrays (see :mod:`mlverify._cuda`): a device input
is used in place and the result stays on the device; a NumPy input is copied to the device and
the result copied back. ``numba.cuda`` is imported only through :mod:`mlverify._cuda`.
"""

from __future__ import annotations

import math
import weakref
from functools import cache

import numpy as np
from numba import types

from .. import _cuda
from .._cuda import cuda, like
from .._validate import as_float_array as _host_float_array
from .._validate import check_finite, check_float_dtype
from ._scalar import KINDS, shrink

__all__ = [
    "TILE",
    "analyze",
    "analyze_threshold",
    "as_float_array",
    "commit",
    "device_filters",
    "fista_momentum",
    "fixed_point_test",
    "like",
    "momentum_step",
    "problem_sums",
    "retire",
    "synthesize",
    "threshold",
]

#: Threads per block and the most blocks of one launch on a GPU (grid-stride loops cover more).
THREADS, MAX_BLOCKS = 128, 8192
#: Most blocks along the grid's y axis (the problems of a batch; a grid-stride loop covers more).
MAX_BLOCKS_Y = 65535
#: Blocks of the per-problem reductions, over all problems of a launch.
REDUCE_BLOCKS = 512
#: In the simulator every thread is a Python thread (0.1–2 ms each): a few suffice to exercise
#: the block and grid-stride indexing.
SIM_THREADS, SIM_BLOCKS = 4, 2
#: Columns per occupancy flag of the sparse-aware synthesis.
TILE = 32

#: Per-problem reductions of :func:`problem_sums`.
OP_STEP_INNER = 0  # Σ (a - b)(b - c): the restart test ⟨z - x_new, x_new - x⟩ of FISTA
OP_DIFF_SQUARES = 1  # Σ (a - b)²: the fixed-point residual of ML-ISTA
OP_NONZEROS = 2  # #{a ≠ 0}

#: Problem states of the device solvers.
RUNNING, CONVERGED, NON_FINITE, DIVERGED = 0, 1, 2, 3


def _threads() -> tuple[int, int]:
    return (SIM_THREADS, SIM_BLOCKS) if _cuda.SIMULATED else (THREADS, MAX_BLOCKS)


def _grid(total: int) -> tuple[int, int]:
    """``(blocks, threads per block)`` of a flat launch over ``total`` elements."""
    threads, most = _threads()
    return max(1, min(most, -(-total // threads))), threads


def _grid2(per_problem: int, batch: int, most: int | None = None) -> tuple[tuple[int, int], int]:
    """``((x blocks, y blocks), threads)`` of a problem launch: problems on y, elements on x."""
    threads, default = _threads()
    most = default if most is None or _cuda.SIMULATED else most
    y_blocks = max(1, min(batch, SIM_BLOCKS if _cuda.SIMULATED else MAX_BLOCKS_Y))
    x_blocks = max(1, min(-(-per_problem // threads), most // y_blocks))
    return (x_blocks, y_blocks), threads


# ---------------------------------------------------------------------------------- kernels
@cuda.jit(device=True)
def _unravel(idx, height, width):  # pragma: no cover - compiled
    """``(plane, y, x)`` of a flat C-order index over ``(…, height, width)`` (the plane is the
    channel within one problem)."""
    return idx // (width * height), (idx // width) % height, idx % width


@cache
def _analysis_kernel(dtype: np.dtype):
    """The fused analysis kernel for ``dtype`` (the accumulator starts at ``dtype(0)``).

    .. math::

        v = coef \\sum_i \\sum_{t_y, u} A[o, i, t_y, u]\\,
            src[b, i, (y + t_y) \\bmod H, (x + u) \\bmod W]
            \\ (+\\ base[b, o, y, x]), \\qquad out[b, o, y, x] = T_{\\beta_o}(v)

    (no threshold when ``kind < 0``, no base when ``has_base == 0``).
    """
    zero = dtype.type(0)

    @cuda.jit
    def analysis(src, filters, base, has_base, coef, beta, kind, active,
                 out):  # pragma: no cover - compiled
        batch, n_out, height, width = out.shape
        n_in, n1, n2 = src.shape[1], filters.shape[2], filters.shape[3]
        first = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        stride = cuda.blockDim.x * cuda.gridDim.x
        for b in range(cuda.blockIdx.y, batch, cuda.gridDim.y):
            if active[b] == 0:
                continue
            for idx in range(first, n_out * height * width, stride):
                o, y, x = _unravel(idx, height, width)
                acc = zero
                for i in range(n_in):
                    for ty in range(n1):
                        row = y + ty
                        if row >= height:
                            row -= height
                        col = x  # (x + u) mod W, stepped without a division per tap
                        for u in range(n2):
                            acc += filters[o, i, ty, u] * src[b, i, row, col]
                            col += 1
                            if col == width:
                                col = 0
                value = coef * acc
                if has_base:
                    value = base[b, o, y, x] + value
                if kind >= 0:
                    value = shrink(value, beta[o], kind)
                out[b, o, y, x] = value

    return analysis


@cuda.jit(device=True)
def _window_occupied(tiles, b, f, row, last, n2, width):  # pragma: no cover - compiled
    """Whether a flagged tile of code row ``(b, f, row)`` meets the columns
    ``last - n2 + 1, …, last`` (mod ``width``)."""
    col = last - n2 + 1
    if col < 0:
        col += width
    remaining = n2
    while remaining > 0:
        k = col // TILE
        if tiles[b, f, row, k] != 0:
            return True
        take = min(remaining, min((k + 1) * TILE, width) - col)
        remaining -= take
        col += take
        if col == width:
            col = 0
    return False


@cache
def _synthesis_kernel(dtype: np.dtype):
    """The synthesis kernel for ``dtype``.

    .. math::

        out[b, c, y, x] = \\sum_f \\sum_{t_y, t_x} A[f, c, t_y, t_x]\\,
            src[b, f, (y - t_y) \\bmod H, (x - t_x) \\bmod W]\\ (-\\ sub[b, c, y, x])

    skipping the ``(f, t_y)`` terms whose source columns hold no flagged tile when
    ``use_tiles`` (``tiles`` from :func:`_occupancy`).
    """
    zero = dtype.type(0)

    @cuda.jit
    def synthesis(src, filters, tiles, use_tiles, sub, has_sub, active,
                  out):  # pragma: no cover - compiled
        batch, n_out, height, width = out.shape
        n_in, n1, n2 = src.shape[1], filters.shape[2], filters.shape[3]
        first = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        stride = cuda.blockDim.x * cuda.gridDim.x
        for b in range(cuda.blockIdx.y, batch, cuda.gridDim.y):
            if active[b] == 0:
                continue
            for idx in range(first, n_out * height * width, stride):
                c, y, x = _unravel(idx, height, width)
                acc = zero
                for f in range(n_in):
                    for ty in range(n1):
                        row = y - ty
                        if row < 0:
                            row += height
                        if use_tiles and not _window_occupied(tiles, b, f, row, x, n2, width):
                            continue
                        col = x  # (x - t_x) mod W
                        for tx in range(n2):
                            acc += filters[f, c, ty, tx] * src[b, f, row, col]
                            col -= 1
                            if col < 0:
                                col = width - 1
                if has_sub:
                    acc -= sub[b, c, y, x]
                out[b, c, y, x] = acc

    return synthesis


@cuda.jit
def _occupancy(src, active, tiles):  # pragma: no cover - compiled
    """``tiles[b, f, y, k] = 1`` iff ``src[b, f, y, kT:(k+1)T]`` has a non-zero (``T = TILE``)."""
    batch, atoms, height, n_tiles = tiles.shape
    width = src.shape[3]
    first = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for b in range(cuda.blockIdx.y, batch, cuda.gridDim.y):
        if active[b] == 0:
            continue
        for idx in range(first, atoms * height * n_tiles, stride):
            k = idx % n_tiles
            y = (idx // n_tiles) % height
            f = idx // (n_tiles * height)
            flag = 0
            for x in range(k * TILE, min((k + 1) * TILE, width)):
                if src[b, f, y, x] != 0:
                    flag = 1
                    break
            tiles[b, f, y, k] = flag


@cuda.jit
def _threshold_kernel(values, beta, kind, out):  # pragma: no cover - compiled
    """``out[b, f, y, x] = T_{beta[f]}(values[b, f, y, x])`` (``kind`` from ``KINDS``)."""
    batch, atoms, height, width = values.shape
    for idx in range(cuda.grid(1), batch * atoms * height * width, cuda.gridsize(1)):
        plane, y, x = _unravel(idx, height, width)  # plane = b * atoms + f
        f, b = plane % atoms, plane // atoms
        out[b, f, y, x] = shrink(values[b, f, y, x], beta[f], kind)


@cuda.jit
def _count_nonfinite(values, counter):  # pragma: no cover - compiled
    """``counter[0] += #{k : values[k] is NaN or ±inf}`` for a flat ``values``."""
    for idx in range(cuda.grid(1), values.shape[0], cuda.gridsize(1)):
        if not math.isfinite(values[idx]):
            cuda.atomic.add(counter, 0, 1)


@cuda.jit(device=True)
def _term(op, a, b, c):  # pragma: no cover - compiled
    """One term of the reduction ``op`` (differences in the data's dtype, products in float64)."""
    if op == OP_STEP_INNER:
        return float(a - b) * float(b - c)
    if op == OP_DIFF_SQUARES:
        d = float(a - b)
        return d * d
    return 1.0 if a != 0 else 0.0


@cuda.jit
def _problem_sums(a, b, c, op, active, partials):  # pragma: no cover - compiled
    """``partials[p, k]`` = the sum of ``_term(op, …)`` over the ``k``-th share of problem ``p``
    (rows of the ``(B, n)`` arrays), by a shared-memory tree in each block (power-of-two
    ``blockDim.x``); the problem's total is the sum over ``k`` (fixed order)."""
    shared = cuda.shared.array(THREADS, types.float64)
    tid = cuda.threadIdx.x
    n = a.shape[1]
    first = cuda.blockIdx.x * cuda.blockDim.x + tid
    stride = cuda.blockDim.x * cuda.gridDim.x
    for p in range(cuda.blockIdx.y, a.shape[0], cuda.gridDim.y):
        if active[p] == 0:  # the same for the whole block: the barriers stay uniform
            continue
        acc = 0.0
        for i in range(first, n, stride):
            acc += _term(op, a[p, i], b[p, i], c[p, i])
        shared[tid] = acc
        cuda.syncthreads()
        half = cuda.blockDim.x // 2
        while half > 0:
            if tid < half:
                shared[tid] += shared[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            partials[p, cuda.blockIdx.x] = shared[0]
        cuda.syncthreads()


@cuda.jit
def _fista_momentum(partials, t, coef, restarts, iterations, active,
                    state):  # pragma: no cover - compiled
    """FISTA's scalar step per problem, from the restart test ``Σ_k partials[p, k]``:
    non-finite stops the problem; ``> 0`` restarts (``t = 1``, ``coef = 0``); else
    ``t' = (1 + √(1 + 4t²))/2``, ``coef = (t - 1)/t'`` (rounded to ``coef``'s dtype)."""
    for p in range(cuda.grid(1), partials.shape[0], cuda.gridsize(1)):
        if active[p] == 0:
            continue
        progress = 0.0
        for k in range(partials.shape[1]):
            progress += partials[p, k]
        if not math.isfinite(progress):
            active[p] = 0
            state[p] = NON_FINITE
            continue
        iterations[p] += 1
        if progress > 0:
            restarts[p] += 1
            t[p] = 1.0
            coef[p] = 0.0
        else:
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t[p] * t[p]))
            coef[p] = (t[p] - 1.0) / t_next
            t[p] = t_next


@cuda.jit
def _fixed_point_test(partials, step, tol, residual, iterations, active,
                      state):  # pragma: no cover - compiled
    """ML-ISTA's stopping test per problem: ``residual[p] = √(Σ_k partials[p, k]) / step``;
    non-finite → ``NON_FINITE``, ``<= tol`` → ``CONVERGED`` (the caller commits, then retires)."""
    for p in range(cuda.grid(1), partials.shape[0], cuda.gridsize(1)):
        if active[p] == 0:
            continue
        total = 0.0
        for k in range(partials.shape[1]):
            total += partials[p, k]
        value = math.sqrt(total) / step
        residual[p] = value
        if not math.isfinite(value):
            state[p] = NON_FINITE
            continue
        iterations[p] += 1
        if value <= tol:
            state[p] = CONVERGED


@cuda.jit
def _momentum_step(new, old, point, coef, index, active):  # pragma: no cover - compiled
    """``point = new + c·(new - old)``, then ``old = new``, for active problems, with
    ``c = coef[p]`` (per problem) or ``coef[index]`` (shared) when ``index >= 0``."""
    first = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for p in range(cuda.blockIdx.y, new.shape[0], cuda.gridDim.y):
        if active[p] == 0:
            continue
        c = coef[index] if index >= 0 else coef[p]
        for i in range(first, new.shape[1], stride):
            value = new[p, i]
            point[p, i] = value + c * (value - old[p, i])
            old[p, i] = value


@cuda.jit
def _commit(new, current, active, state):  # pragma: no cover - compiled
    """``current = new`` for the active problems whose step was finite."""
    first = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for p in range(cuda.blockIdx.y, new.shape[0], cuda.gridDim.y):
        if active[p] == 0 or state[p] == NON_FINITE:
            continue
        for i in range(first, new.shape[1], stride):
            current[p, i] = new[p, i]


@cuda.jit
def _retire(active, state):  # pragma: no cover - compiled
    """``active[p] = 0`` for the problems that left the ``RUNNING`` state."""
    for p in range(cuda.grid(1), active.shape[0], cuda.gridsize(1)):
        if state[p] != RUNNING:
            active[p] = 0


# ---------------------------------------------------------------------------------- host side
def as_float_array(name: str, value, *, dtype: np.dtype | None = None):
    """Check an input of the CUDA engine; a device array stays on the device (no copy).

    A host input gets the checks of :func:`mlverify._validate.as_float_array` and
    :func:`mlverify._validate.check_finite` and comes back as a NumPy array. A device input
    (``__cuda_array_interface__``) comes back as a Numba device array viewing the same memory,
    after the same checks done on the device: float32/float64 (``dtype`` when given; no silent
    cast), C-contiguous, finite.

    Raises
    ------
    TypeError
        Wrong dtype. ``ValueError``: not C-contiguous, or NaN/inf entries.
    """
    if not _cuda.is_device_array(value):
        array = _host_float_array(name, value, dtype=dtype)
        check_finite(name, array)
        return array
    array = _cuda.as_device_array(value)
    check_float_dtype(name, array.dtype, dtype)
    if not array.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous on the device")
    if array.size:
        counter = _cuda.to_device(np.zeros(1, dtype=np.int64))
        _count_nonfinite[_grid(array.size)](array.reshape(array.size), counter)
        if counter.copy_to_host()[0]:
            raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _on_device(array):
    """``(device array, was it already on the device)``."""
    if _cuda.is_device_array(array):
        return _cuda.as_device_array(array), True
    return _cuda.to_device(array), False


#: id(host filters) -> (weak reference to them, their device copy); see :func:`device_filters`.
_FILTERS: dict[int, tuple[weakref.ref, object]] = {}


def _source_and_output(array4, channels: int, out):
    """``(source on the device, output, resident)``: ``out`` or a new ``(B, channels, H, W)``
    device array; the result stays on the device when the source was there or ``out`` given."""
    d_src, resident = _on_device(array4)
    if out is None:
        batch, _, height, width = d_src.shape
        out = _cuda.device_array((batch, channels, height, width), np.dtype(d_src.dtype))
    else:
        resident = True
    return d_src, out, resident


def device_filters(filters: np.ndarray):
    """The device copy of a host filter array, made once per (read-only) array.

    A read-only array (a :class:`~mlverify.ConvDictionary`'s filters never change) is copied to
    the device on first use and the copy is kept until the host array is garbage-collected, so
    the solvers' thousands of operator calls transfer no filters. A writable array is copied on
    every call (it could change between calls). A device array is used as it is.
    """
    if _cuda.is_device_array(filters):
        return _cuda.as_device_array(filters)
    if filters.flags.writeable:
        return _cuda.to_device(filters)
    key = id(filters)
    entry = _FILTERS.get(key)
    if entry is None or entry[0]() is not filters:
        entry = (weakref.ref(filters), _cuda.to_device(filters))
        _FILTERS[key] = entry
        weakref.finalize(filters, _FILTERS.pop, key, None)
    return entry[1]


def all_active(batch: int):
    """A device array of ``batch`` ones: every problem of a launch active."""
    return _cuda.to_device(np.ones(batch, dtype=np.int32))


def analyze_threshold(signal4, filters4: np.ndarray, beta=None, kind: str | None = None, *,
                      base=None, coef: float = 1.0, active=None, out=None):
    """Fused analysis and threshold: ``out = T_β(base + coef · D^T signal4)``.

    Parameters
    ----------
    signal4 : ndarray or device array, shape ``(B, c, H, W)``
        The filters' dtype.
    filters4 : ndarray or device array, shape ``(m, c, n1, n2)``
        Filters :math:`A` (kept on the device, see :func:`device_filters`).
    beta : ndarray, shape ``(m,)``, optional
        Per-channel thresholds, the filters' dtype (a host array or a device array).
    kind : {"hard", "soft", "relu"}, optional
        The threshold :math:`T` (see :mod:`._scalar`); ``None``: no threshold.
    base : device array, shape ``(B, m, H, W)``, optional
        Added before the threshold.
    coef : float
        Scale of the correlation, rounded to the filters' dtype (``1``: exact analysis).
    active : device array of int32, shape ``(B,)``, optional
        Problems to compute (others are left untouched); default all.
    out : device array, shape ``(B, m, H, W)``, optional
        Where to write (a new array by default).

    Returns
    -------
    ndarray or device array
        ``out``; on the device when ``signal4`` was (or ``out`` was given).
    """
    atoms = filters4.shape[0]
    d_src, out, resident = _source_and_output(signal4, atoms, out)
    dtype = np.dtype(d_src.dtype)
    batch, _, height, width = d_src.shape
    if out.size:
        if beta is None:
            beta = np.zeros(atoms, dtype)
        d_beta = beta if _cuda.is_device_array(beta) else _cuda.to_device(beta)
        grid, threads = _grid2(atoms * height * width, batch)
        _analysis_kernel(dtype)[grid, threads](
            d_src, device_filters(filters4), out if base is None else base, int(base is not None),
            dtype.type(coef), d_beta, -1 if kind is None else KINDS[kind],
            all_active(batch) if active is None else active, out)
    return out if resident else out.copy_to_host()


def analyze(signal4, filters4: np.ndarray):
    """Analysis :math:`D^T V`: ``signal4 (B, c, H, W)`` to codes ``(B, m, H, W)``.

    Parameters
    ----------
    signal4 : ndarray or device array
        Canonical signal, the filters' dtype.
    filters4 : ndarray, shape ``(m, c, n1, n2)``
        Filters :math:`A`.

    Returns
    -------
    ndarray or device array
        On the device when ``signal4`` was.
    """
    return analyze_threshold(signal4, filters4)


def synthesize(codes4, filters4: np.ndarray, *, sparse: bool = True, subtract=None, active=None,
               out=None):
    """Synthesis :math:`D\\Gamma` (minus ``subtract``): codes ``(B, m, H, W)`` to ``(B, c, H, W)``.

    Parameters
    ----------
    codes4 : ndarray or device array
        Canonical codes, the filters' dtype.
    filters4 : ndarray or device array, shape ``(m, c, n1, n2)``
        Filters :math:`A` (kept on the device, see :func:`device_filters`).
    sparse : bool
        Flag the non-empty ``TILE``-column tiles of every code row first and skip the taps that
        only meet empty tiles (the same sums without their all-zero terms; one extra pass over
        the codes, worth it for the sparse codes of the pursuits).
    subtract : device array, shape ``(B, c, H, W)``, optional
        Subtracted from the synthesis (a residual :math:`D\\Gamma - y` in one pass).
    active : device array of int32, shape ``(B,)``, optional
        Problems to compute (others are left untouched); default all.
    out : device array, shape ``(B, c, H, W)``, optional
        Where to write (a new array by default).

    Returns
    -------
    ndarray or device array
        ``out``; on the device when ``codes4`` was (or ``out`` was given).
    """
    channels = filters4.shape[1]
    d_src, out, resident = _source_and_output(codes4, channels, out)
    dtype = np.dtype(d_src.dtype)
    batch, atoms, height, width = d_src.shape
    if out.size:
        active = all_active(batch) if active is None else active
        if sparse:
            tiles = _cuda.device_array((batch, atoms, height, -(-width // TILE)), np.int32)
            grid, threads = _grid2(tiles.size // max(batch, 1), batch)
            _occupancy[grid, threads](d_src, active, tiles)
        else:
            tiles = _cuda.device_array((1, 1, 1, 1), np.int32)
        grid, threads = _grid2(channels * height * width, batch)
        _synthesis_kernel(dtype)[grid, threads](
            d_src, device_filters(filters4), tiles, int(sparse),
            out if subtract is None else subtract, int(subtract is not None), active, out)
    return out if resident else out.copy_to_host()


def threshold(values4, beta: np.ndarray, kind: str):
    """``T_{beta[f]}`` entrywise on ``values4 (B, m, H, W)``, ``beta (m,)`` of its dtype.

    Parameters
    ----------
    values4 : ndarray or device array
    beta : ndarray, shape ``(m,)``
        Per-channel thresholds :math:`\\beta_f \\ge 0`.
    kind : {"hard", "soft", "relu"}
        :math:`H_\\beta`, :math:`S_\\beta`, :math:`S^+_\\beta` (see :mod:`._scalar`).

    Returns
    -------
    ndarray or device array
        A new array (on the device when ``values4`` was).
    """
    d_values, resident = _on_device(values4)
    out = _cuda.device_array(d_values.shape, d_values.dtype)
    if out.size:
        _threshold_kernel[_grid(out.size)](d_values, _cuda.to_device(beta), KINDS[kind], out)
    return out if resident else out.copy_to_host()


def _rows(array):
    """A device array viewed as ``(B, n)`` (one row per problem)."""
    return array.reshape(array.shape[0], array.size // max(array.shape[0], 1))


def partial_sums_for(a):
    """The zeroed device array of partial sums ``(B, k)`` that :func:`problem_sums` writes for
    arrays shaped like ``a`` (allocate it once, before the loop, without reading ``a``)."""
    batch, n = _rows(a).shape
    grid, _ = _grid2(n, batch, REDUCE_BLOCKS)
    return _cuda.to_device(np.zeros((batch, grid[0]), np.float64))


def problem_sums(op: int, a, b=None, c=None, *, active=None, out=None):
    """Per-problem float64 sums of :data:`OP_STEP_INNER`, :data:`OP_DIFF_SQUARES` or
    :data:`OP_NONZEROS` terms over device arrays of shape ``(B, …)``.

    Returns the device array of partial sums ``(B, k)`` (``out``, from an earlier call with
    arrays of the same shape, when given; only the active problems' rows are written): a
    problem's total is the sum of its row (taken in a fixed order by :func:`fista_momentum` /
    :func:`fixed_point_test`, or on the host).
    """
    rows = _rows(a)
    batch, n = rows.shape
    grid, threads = _grid2(n, batch, REDUCE_BLOCKS)
    partials = partial_sums_for(a) if out is None else out
    if rows.size:
        _problem_sums[grid, threads](rows, rows if b is None else _rows(b),
                                     rows if c is None else _rows(c), op,
                                     all_active(batch) if active is None else active, partials)
    return partials


def fista_momentum(partials, t, coef, restarts, iterations, active, state) -> None:
    """Launch :func:`_fista_momentum` (one thread per problem)."""
    _fista_momentum[_grid(partials.shape[0])](partials, t, coef, restarts, iterations, active,
                                              state)


def fixed_point_test(partials, step: float, tol: float, residual, iterations, active,
                     state) -> None:
    """Launch :func:`_fixed_point_test` (one thread per problem)."""
    _fixed_point_test[_grid(partials.shape[0])](partials, float(step), float(tol), residual,
                                                iterations, active, state)


def momentum_step(new, old, point, coef, active, index: int = -1) -> None:
    """``point = new + c·(new - old)``; ``old = new`` (``c = coef[p]``, or ``coef[index]``)."""
    rows = _rows(new)
    grid, threads = _grid2(rows.shape[1], rows.shape[0])
    _momentum_step[grid, threads](rows, _rows(old), _rows(point), coef, index, active)


def commit(new, current, active, state) -> None:
    """``current = new`` for the active problems whose step was finite."""
    rows = _rows(new)
    grid, threads = _grid2(rows.shape[1], rows.shape[0])
    _commit[grid, threads](rows, _rows(current), active, state)


def retire(active, state) -> None:
    """Deactivate the problems that left the running state."""
    _retire[_grid(active.shape[0])](active, state)

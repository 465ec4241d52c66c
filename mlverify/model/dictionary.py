"""Periodic, stride-1 convolutional dictionaries (THEORY.md §1)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.fft

from .._validate import ENGINES, as_float_array, check_engine, check_finite, window_shape
from ..kernels import cpu, cpu_sparse, reference, tiled
from ..kernels._memory import aligned_copy
from ..kernels._scalar import KINDS

#: Input density (non-zeros / entries) at or below which ``method="auto"`` synthesises and
#: analyses through the sparse-input kernel (:mod:`mlverify.kernels.cpu_sparse`) into at least
#: :data:`SPARSE_FULL_OUT` output channels: about where it costs as much as the dense one, so a
#: sparse multiply-add costs ``1 / SPARSE_DENSITY`` dense ones (the cost model of
#: :meth:`ConvDictionary.normal` and :meth:`ConvDictionary.proximal_gradient_step`). Measured on
#: 2 cores of an Intel Xeon, 256², 64 atoms over 32 channels 5×5, both kernels in register
#: blocks of fused multiply-adds: the sparse analysis matches the dense one near density 0.3 in
#: float32 (43.0 against 44.0 ms; 37.3 against 49.2 at 0.2, 66.9 against 42.2 at 0.4) and 0.4
#: in float64 (88.5 against 90.6 ms; 74.3 against 84.0 at 0.3).
SPARSE_DENSITY = 0.3
#: The sparse kernels vectorise over the output channels: into fewer than this many their limit
#: density shrinks in proportion (``SPARSE_DENSITY · n_out / SPARSE_FULL_OUT``). Measured
#: crossovers (synthesis of 32 atoms 5×5, 256², the same machine; the atoms scattered, see
#: :data:`SCATTER_MAX_OUT`): float32 about 0.1 into 16 and 12 channels, 0.05 into 8, 0.02 into
#: 4; float64 0.15-0.2 into 16, 12 and 8, 0.08 into 4.
SPARSE_FULL_OUT = 32
#: Into fewer output channels than this the sparse kernel is never chosen: into 1 or 2 it is
#: slower than the dense kernel at any measured density (float32, 32 atoms into 2 channels at
#: density 0.05: 8.1 against 4.7 ms).
SPARSE_MIN_OUT = 3
#: Into fewer than :data:`SPARSE_MIN_OUT` channels, synthesis with atoms of at least this many
#: taps per channel scatters whole atoms instead (:func:`mlverify.kernels.cpu_sparse.
#: scatter_synthesis`), up to the density :data:`SCATTER_DENSITY`. Measured, compression
#: included, against the dense kernel (2 threads, densities 0.01 / 0.05 / 0.1): 36 atoms 12×12
#: into 1 channel, 256², float32 2.6 / 4.0 / 7.7 ms against 8.2 / 7.3 / 8.9, float64 2.8 / 5.3 /
#: 6.2 against 13.3 / 13.7 / 14.6; 32 atoms 8×8, float32 2.5 / 4.1 / 5.0 against 4.2 / 4.3 /
#: 4.1. With 32 taps (1-D, 10 × 4096) it never won (float32 0.85 against 0.67 ms at 0.01).
SCATTER_MIN_TAPS = 64
SCATTER_DENSITY = 0.05
#: Into :data:`SPARSE_MIN_OUT` up to fewer than this many channels, the sparse synthesis
#: scatters whole atoms (channels-last patches) instead of :func:`mlverify.kernels.cpu_sparse.
#: correlate_sparse`, within the same density limit: each pixel's non-zeros add their atoms in
#: registers (:func:`mlverify.kernels._vector.add_patches`) into a buffer the task keeps in L2.
#: Measured on random codes, 256², 2 threads of an Intel Xeon at 2.8 GHz, the scattered
#: synthesis's time over correlate_sparse's at densities 0.02 / 0.05 / 0.1 / 0.2: float32, 32
#: atoms 5×5 into 8 channels 0.19 / 0.21 / 0.29 / 0.23, into 16 0.23 / 0.26 / 0.29 / 0.43, 64
#: atoms into 32 0.44 / 0.45 / 0.80 / 0.79, into 48 0.39 / 0.39 / 0.52 / 0.55, into 64 0.72 /
#: 1.02 / 0.93 / 1.01; float64 0.23-0.32 into 8, 0.37-0.61 into 16, 0.70 / 0.89 / 0.88 / 1.15
#: into 32, 0.56 / 0.56 / 0.71 / 0.93 into 48, 1.09-1.48 into 64 (the atoms and the buffer's
#: rows outgrow L2). On the CNN benchmark's ML-ISTA iterate (64 into 32, float32, density
#: 0.048): 5.2-6.2 against 8.6-9.5 ms, and its iteration 37.5-38.0 against 41.6-42.3 ms.
SCATTER_MAX_OUT = 49
#: Spatial shapes whose filter spectra a dictionary keeps (:meth:`ConvDictionary.spectra`).
SPECTRA_KEPT = 2
#: Tile-DFT operators a dictionary keeps (plans and buffers, :class:`mlverify.kernels.tiled.
#: TiledCorrelation`), the most recently made.
TILED_KEPT = 4
#: The fused steps (:meth:`ConvDictionary.proximal_gradient_step`, the layered thresholding) take
#: the tile DFTs for a dense correlation when their modelled time is below this fraction of the
#: direct kernel's (:func:`mlverify.kernels.tiled.tile_grids`; the margin covers the model's
#: error). Measured for 64 atoms 32×5×5 on 256², 2 threads: float64 tiles 64-72 ms against
#: 132-138 (modelled 0.54: taken; ML-ISTA float64 per iteration 114 against 153 ms at densities
#: 10 %/5 %, 138 against 244 at 40 %/20 %); float32 40-60 against 72-76 (modelled 0.70: not
#: taken; a version that took them made ML-ISTA's float32 iteration ~25 % slower than the
#: sparse-input route of its layer step).
TILED_MARGIN = 0.6


class StepRoute(NamedTuple):
    """How :meth:`ConvDictionary.proximal_gradient_step` runs: the sparse-input route or the
    dense one (each dense correlation direct or through tile DFTs), and its modelled time in
    ns (:data:`mlverify.kernels.tiled.NS_DIRECT` per direct multiply-add)."""

    sparse: bool
    analysis_fft: bool
    synthesis_fft: bool
    ns: float


def sparse_limit(n_out: int, density: float = SPARSE_DENSITY) -> float:
    """The input density up to which ``"auto"`` uses the sparse kernel into ``n_out`` output
    channels (``density`` is the limit for :data:`SPARSE_FULL_OUT` or more)."""
    if n_out < SPARSE_MIN_OUT:
        return 0.0
    return density * min(1.0, n_out / SPARSE_FULL_OUT)


def _cuda_kernels():
    """:mod:`mlverify.kernels.cuda`, imported on first use (``numba.cuda`` costs ~0.3 s)."""
    from ..kernels import cuda

    return cuda


def _restore(out, original, engine: str):
    """A CUDA result in the array library of the input (CuPy, PyTorch, Numba; no copy)."""
    return _cuda_kernels().like(out, original) if engine == "cuda" else out


def _check_method(method) -> None:
    if method not in ("auto", "dense", "sparse", "fft"):
        raise ValueError(f"method must be 'auto', 'dense', 'sparse' or 'fft', got {method!r}")


def _gram(atoms: np.ndarray) -> np.ndarray:
    """``G[f, g, s] = Σ_{c,τ} A[f,c,τ] A[g,c,τ−s]`` for filters ``(m, c, n1, n2)``, shapes
    ``(m, m, 2n1-1, 2n2-1)``, shifts stored modulo ``2n - 1`` (by the DFT, in float64)."""
    size = tuple(2 * n - 1 for n in atoms.shape[2:])
    spectra = scipy.fft.rfftn(atoms, s=size, axes=(2, 3))
    cross = np.einsum("fc...,gc...->fg...", spectra, np.conj(spectra))
    return scipy.fft.irfftn(cross, s=size, axes=(2, 3))


class ConvDictionary:
    r"""A convolutional dictionary :math:`D` built from a filter array, periodic boundary, stride 1.

    Parameters
    ----------
    filters : array_like, shape ``(m, c, n)`` or ``(m, c, n1, n2)``, float32 or float64
        ``filters[f, ch]`` is channel ``ch`` of atom ``f``; ``m`` atoms over ``c`` input channels.

    Notes
    -----
    Synthesis (:math:`\Gamma_{i-1} = D_i \Gamma_i`) and analysis (the adjoint) follow
    THEORY.md §1 (Papyan, Romano, Elad, JMLR 2017):

    .. math::

        (D\Gamma)[c, x] = \sum_f \sum_\tau A[f, c, \tau]\,\Gamma[f, (x-\tau) \bmod N], \qquad
        (D^T V)[f, p] = \sum_c \sum_\tau A[f, c, \tau]\, V[c, (p+\tau) \bmod N].

    Codes have shape ``(..., m, *S)`` and signals ``(..., c, *S)``; leading axes are a batch.

    Examples
    --------
    >>> import numpy as np
    >>> from mlverify import ConvDictionary
    >>> D = ConvDictionary(np.ones((1, 1, 3)) / np.sqrt(3))
    >>> codes = np.zeros((1, 8)); codes[0, 2] = 1.0
    >>> np.round(D.synthesize(codes) * np.sqrt(3), 6)
    array([[0., 0., 1., 1., 1., 0., 0., 0.]])
    """

    def __init__(self, filters) -> None:
        array = as_float_array("filters", filters)
        if array.ndim not in (3, 4):
            raise ValueError(
                "filters must have shape (m, c, n) or (m, c, n1, n2), "
                f"got {array.ndim} dimensions {array.shape}"
            )
        if 0 in array.shape:
            raise ValueError(f"filters must not have an empty axis, got shape {array.shape}")
        check_finite("filters", array)
        array = array.copy()
        array.setflags(write=False)
        self._filters = array
        self._spectral_norms: dict[tuple[int, ...], float] = {}
        self._spectra: dict[tuple[int, ...], dict[np.dtype, np.ndarray]] = {}
        self._derive_layouts()

    def _derive_layouts(self) -> None:
        """The layouts of the filters that the kernels take, from :attr:`filters` (and the
        empty caches of those made on first use)."""
        array = self._filters
        self._f4 = array.reshape(array.shape[:2] + (1,) * (4 - array.ndim) + array.shape[2:])
        # Synthesis runs the analysis kernel with transposed, x-flipped taps (cpu.correlate).
        self._synthesis_taps = np.ascontiguousarray(self._f4.transpose(1, 0, 2, 3)[..., ::-1])
        # The sparse-input kernel takes taps (n_in, n1, n2, n_out), aligned, the output channels
        # padded to whole vectors (cpu_sparse.sparse_taps).
        self._analysis_taps_t = cpu_sparse.sparse_taps(self._f4.transpose(1, 2, 3, 0))
        self._synthesis_taps_t = cpu_sparse.sparse_taps(self._synthesis_taps.transpose(1, 2, 3, 0))
        # The scattered synthesis takes the atoms channels-last, aligned (scatter_synthesis).
        self._scatter_taps = aligned_copy(self._f4.transpose(0, 2, 3, 1))
        self._normal_taps_t: np.ndarray | None = None
        self._normal_taps_sparse: np.ndarray | None = None
        self._tiled: dict[tuple, tiled.TiledCorrelation] = {}

    def __getstate__(self) -> dict:
        """Pickled as the filters and the cached spectral norms and spectra, so dictionaries
        travel to worker processes and asv caches: the kernels' layouts are derived again when
        unpickled (:meth:`__setstate__`), and the tile-DFT operators (FFTW plans and buffers)
        made again on first use."""
        return {"_filters": self._filters, "_spectral_norms": self._spectral_norms,
                "_spectra": self._spectra}

    def __setstate__(self, state: dict) -> None:
        """Unpickled: the filters (read-only again) and caches, and the layouts derived from
        them, 64-byte aligned where the kernels need it (an unpickled array is aligned as the
        allocator happens to place it: the sparse kernels' taps of the CNN benchmark unpickled
        16 and 32 bytes off a line)."""
        self.__dict__.update(state)
        self._filters.setflags(write=False)
        self._derive_layouts()

    # ------------------------------------------------------------------ description
    @property
    def filters(self) -> np.ndarray:
        """The (read-only) filter array, ``(m, c, n)`` or ``(m, c, n1, n2)``."""
        return self._filters

    @property
    def n_atoms(self) -> int:
        """Number of atoms ``m`` (channels of the codes)."""
        return self._filters.shape[0]

    @property
    def n_channels(self) -> int:
        """Number of input channels ``c`` (channels of the signal)."""
        return self._filters.shape[1]

    @property
    def kernel_size(self) -> tuple[int, ...]:
        """Filter length per spatial axis, ``(n,)`` or ``(n1, n2)``."""
        return self._filters.shape[2:]

    @property
    def spatial_ndim(self) -> int:
        """1 for 1-D signals, 2 for images."""
        return self._filters.ndim - 2

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64."""
        return self._filters.dtype

    def __repr__(self) -> str:
        size = "x".join(map(str, self.kernel_size))
        return (
            f"ConvDictionary(m={self.n_atoms}, c={self.n_channels}, n={size}, "
            f"dtype={self.dtype.name})"
        )

    def atom_norms(self) -> np.ndarray:
        """ℓ2 norm of every atom over channels and taps, shape ``(m,)``."""
        return np.sqrt(np.sum(self._f4.astype(np.float64) ** 2, axis=(1, 2, 3)))

    def normalized(self) -> ConvDictionary:
        """The dictionary with unit ℓ2-norm atoms (THEORY.md §1: required by every theorem)."""
        norms = self.atom_norms()
        if np.any(norms == 0):
            raise ValueError(f"cannot normalise: atoms {np.flatnonzero(norms == 0)} are all zero")
        scale = (1.0 / norms).astype(self.dtype)
        shape = (-1,) + (1,) * (self._filters.ndim - 1)
        return ConvDictionary(self._filters * scale.reshape(shape))

    # ------------------------------------------------------------------ array plumbing
    def _canonical(self, name: str, array, n_lead: int, engine: str = "cpu",
                   finite: bool = True):
        """Check an array of shape ``(..., n_lead, *S)`` (and that it is finite, unless
        ``finite`` is false) and view it as ``(B, n_lead, H, W)``."""
        if engine == "cuda":  # a device array stays on the device (checked there, finite)
            array = _cuda_kernels().as_float_array(name, array, dtype=self.dtype)
        else:
            array = as_float_array(name, array, dtype=self.dtype)
            if finite:
                check_finite(name, array)
        d = self.spatial_ndim
        if array.ndim < d + 1:
            raise ValueError(
                f"{name} must have shape (..., {n_lead}, {', '.join('N' * d)}), got {array.shape}"
            )
        channels = array.shape[array.ndim - d - 1]  # (simulator device shapes: no index < 0)
        if channels != n_lead:
            raise ValueError(
                f"{name} has {channels} channels on axis {-d - 1}, the dictionary "
                f"needs {n_lead} (shape {array.shape})"
            )
        spatial = array.shape[-d:]
        self._check_spatial(name, spatial)
        batch = array.shape[: -d - 1]
        canonical = array.reshape((-1, n_lead) + (1,) * (2 - d) + spatial)
        return batch, spatial, canonical

    def _check_spatial(self, name: str, spatial: tuple[int, ...]) -> None:
        if any(s < n for s, n in zip(spatial, self.kernel_size, strict=True)):
            raise ValueError(
                f"{name}: the filters {self.kernel_size} are larger than the signal {spatial}; "
                "periodic convolution needs every spatial size >= the filter length"
            )

    # ------------------------------------------------------------------ operators
    def synthesize(self, codes, *, engine: str = "auto", method: str = "auto") -> np.ndarray:
        """Synthesis :math:`D\\Gamma`: codes ``(..., m, *S)`` to a signal ``(..., c, *S)``.

        Parameters
        ----------
        codes : ndarray
            Coefficients, same dtype as the filters.
        engine : {"auto", "numpy", "cpu", "cuda"}
            ``"numpy"`` runs the plain NumPy oracle; ``"cpu"`` (and ``"auto"``) the Numba kernels;
            ``"cuda"`` the CUDA kernel, which also takes a device array
            (``__cuda_array_interface__``) and returns one, without host copies.
        method : {"auto", "dense", "sparse", "fft"}
            CPU kernel: ``"sparse"`` touches only the non-zeros of ``codes``
            (:func:`mlverify.kernels.cpu_sparse.correlate_sparse` into :data:`SCATTER_MAX_OUT`
            channels or more; :func:`~mlverify.kernels.cpu_sparse.scatter_synthesis` into fewer,
            and into fewer than :data:`SPARSE_MIN_OUT` only with atoms of
            :data:`SCATTER_MIN_TAPS` taps or more); ``"auto"`` uses it when the
            density is at most :func:`sparse_limit` (:data:`SCATTER_DENSITY` for the scattered
            synthesis), else the direct sums (``"dense"``); ``"fft"`` goes through the DFTs of
            overlapping tiles (:mod:`mlverify.kernels.tiled`, faster for many channels and
            taps). All give the same result up to rounding. The CUDA engine skips the
            all-zero tiles of the codes unless ``method="dense"`` (it has no ``"fft"`` route: it
            runs the direct sums).
        """
        engine = check_engine(engine, ENGINES)
        _check_method(method)
        batch, spatial, codes4 = self._canonical("codes", codes, self.n_atoms, engine)
        if engine == "numpy":
            out = reference.synthesize(codes4, self._f4)
        elif engine == "cuda":
            out = _cuda_kernels().synthesize(codes4, self._f4,
                                             sparse=method not in ("dense", "fft"))
        else:
            out = self._synthesize_cpu(codes4, method)
        return _restore(out.reshape(batch + (self.n_channels,) + spatial), codes, engine)

    def _synthesize_cpu(self, codes4: np.ndarray, method: str,
                        compressed: tuple | None = None) -> np.ndarray:
        """:math:`D\\Gamma` on the canonical layout; ``compressed`` is
        :func:`cpu_sparse.pixel_nonzeros` of ``codes4``, when the caller has it."""
        if method == "fft":
            return self._dense_synthesize(codes4, fft=True)
        counts = None
        if compressed is not None:  # the non-zeros per problem
            counts = np.diff(compressed[0][::int(np.prod(codes4.shape[2:]))])
        few = self.n_channels < SPARSE_MIN_OUT
        scatter = (math.prod(self.kernel_size) >= SCATTER_MIN_TAPS if few
                   else self.n_channels < SCATTER_MAX_OUT)

        def sparse(codes):
            known = compressed if codes is codes4 else None
            if scatter:
                if known is None:
                    with cpu.threads_for(codes.size):
                        known = cpu_sparse.pixel_nonzeros(codes)
                return self._scatter_synthesize(known, codes.shape)
            return self._correlate_sparse(codes, self._synthesis_taps_t, 0,
                                          1 - self._f4.shape[3], row_sign=-1,
                                          compressed=known, synthesis=True)[0]

        limit = SCATTER_DENSITY if few and scatter else sparse_limit(self.n_channels)
        return self._choose(codes4, method, limit, sparse, self._dense_synthesize, counts)

    def _scatter_synthesize(self, compressed: tuple, shape4: tuple[int, ...]) -> np.ndarray:
        """:math:`D\\Gamma` of the codes of canonical shape ``shape4`` given only by their
        :func:`cpu_sparse.pixel_nonzeros` ``compressed``, scattering whole atoms
        (:func:`cpu_sparse.scatter_synthesis`)."""
        batch, _, height, width = shape4
        out = np.empty((batch, self.n_channels, height, width), self.dtype)
        with cpu.threads_for(compressed[2].size * self._f4[0].size):
            cpu_sparse.scatter_synthesis(*compressed, self._scatter_taps, out,
                                         cpu_sparse.scatter_band(height))
        return out

    def _dense_synthesize(self, codes4: np.ndarray, fft: bool = False) -> np.ndarray:
        """:math:`D\\Gamma` by the direct sums or (``fft``) the tile DFTs."""
        if fft:
            return self._tiled_correlate(codes4, False)[0]
        out = np.empty((codes4.shape[0], self.n_channels) + codes4.shape[2:], self.dtype)
        with cpu.threads_for(codes4.size * self._f4[0].size):
            offset = 1 - self._f4.shape[3]
            cpu.correlate(codes4, self._synthesis_taps, out, -1, offset, *cpu.tiling(out),
                          *cpu.epilogue(self.dtype))
        return out

    def _dense_analyze(self, signal4: np.ndarray, *finish,
                       fft: bool = False) -> tuple[np.ndarray, int, int]:
        """``(T(base + scale·D^TV), non-finite count, non-zero count)``, ``finish = (base,
        scale, beta, kind)`` as for :func:`mlverify.kernels.cpu.epilogue` (default: plain
        :math:`D^TV`), by the direct sums or (``fft``) the tile DFTs."""
        if fft:
            return self._tiled_correlate(signal4, True, *finish)
        out = np.empty((signal4.shape[0], self.n_atoms) + signal4.shape[2:], self.dtype)
        with cpu.threads_for(out.size * self._f4[0].size):
            bad, nonzero = cpu.correlate(signal4, self._f4, out, 1, 0, *cpu.tiling(out),
                                         *cpu.epilogue(self.dtype, *finish))
        return out, bad, nonzero

    def _tiled_correlate(self, src4: np.ndarray, adjoint: bool,
                         *finish) -> tuple[np.ndarray, int, int]:
        """:meth:`_dense_analyze` (``adjoint``) or the synthesis through the tile DFTs of
        :class:`mlverify.kernels.tiled.TiledCorrelation`, kept per (shape, batch, direction,
        threads) for the last :data:`TILED_KEPT` of them."""
        batch, spatial = src4.shape[0], src4.shape[2:]
        if batch == 0:
            n_out = self.n_atoms if adjoint else self.n_channels
            return np.empty((0, n_out) + spatial, self.dtype), 0, 0
        key = (spatial, batch, adjoint, cpu.thread_count())
        op = self._tiled.pop(key, None)
        if op is None:
            while len(self._tiled) >= TILED_KEPT:
                del self._tiled[next(iter(self._tiled))]  # the least recently used
            op = tiled.TiledCorrelation(self._f4, spatial, batch, adjoint, cpu.thread_count())
        self._tiled[key] = op
        out = np.empty((batch, op.n_out) + spatial, self.dtype)
        with cpu.threads_for(out.size * op.n_in):
            bad, nonzero = op(np.ascontiguousarray(src4), out, *cpu.epilogue(self.dtype, *finish))
        return out, bad, nonzero

    def _dense_work(self, spatial: tuple[int, int], batch: int,
                    adjoint: bool) -> tuple[float, bool]:
        """``(work, fft)``: the cost of a dense analysis (``adjoint``) or synthesis in direct
        multiply-adds, and whether the tile DFTs do it cheaper (their modelled time below
        :data:`TILED_MARGIN` of the direct kernel's, converted to multiply-adds)."""
        m, c, *kernel = self._f4.shape
        n_in, n_out = (c, m) if adjoint else (m, c)
        shape = (tuple(spatial), tuple(kernel), n_in, n_out, batch, self.dtype.itemsize)
        direct = batch * math.prod(spatial) * n_in * n_out * math.prod(kernel)
        ratio = tiled.tile_grids(*shape)[1] / tiled.direct_ns(*shape)
        return (direct * ratio, True) if ratio < TILED_MARGIN else (float(direct), False)

    @staticmethod
    def _choose(array4, method: str, density: float, sparse, dense,
                nonzeros: np.ndarray | None = None) -> np.ndarray:
        """``sparse(array4)`` or ``dense(array4)``; ``"auto"`` chooses per problem (batch
        element): sparse when its density is at most ``density`` (the caller's limit, such as
        :func:`sparse_limit`). ``nonzeros`` (per problem) saves counting them when the caller
        knows. A problem's result therefore never depends on the rest of the batch (each
        kernel sums in a fixed order)."""
        if method == "auto" and density == 0:
            method = "dense"
        if method != "auto" or array4.shape[0] == 0:
            return sparse(array4) if method == "sparse" else dense(array4)
        flat = array4.reshape(array4.shape[0], -1)
        if nonzeros is None:
            nonzeros = cpu.nonzeros(flat, flat.shape[0])
        chosen = nonzeros <= density * flat.shape[1]
        if chosen.all() or not chosen.any():
            return sparse(array4) if chosen.all() else dense(array4)
        parts = sparse(array4[chosen]), dense(array4[~chosen])
        out = np.empty((array4.shape[0],) + parts[0].shape[1:], parts[0].dtype)
        out[chosen], out[~chosen] = parts
        return out

    def analyze(self, signal, *, engine: str = "auto", method: str = "auto") -> np.ndarray:
        """Analysis (adjoint) :math:`D^T V`: a signal ``(..., c, *S)`` to codes ``(..., m, *S)``.

        Parameters
        ----------
        signal : ndarray
            Same dtype as the filters.
        engine : {"auto", "numpy", "cpu", "cuda"}
            ``"numpy"`` runs the plain NumPy oracle; ``"cpu"`` (and ``"auto"``) the Numba kernel;
            ``"cuda"`` the CUDA kernel (device arrays in and out, as in :meth:`synthesize`).
        method : {"auto", "dense", "sparse", "fft"}
            CPU kernel: ``"sparse"`` touches only the non-zeros of ``signal``
            (:func:`mlverify.kernels.cpu_sparse.correlate_sparse`, for the sparse output of a
            ReLU layer); ``"auto"`` uses it when the density is at most
            :data:`SPARSE_DENSITY`, else the direct sums (``"dense"``); ``"fft"`` goes through
            the DFTs of overlapping tiles (:mod:`mlverify.kernels.tiled`). All give the same
            result up to rounding. The CUDA engine always runs the dense kernel.
        """
        engine = check_engine(engine, ENGINES)
        _check_method(method)
        batch, spatial, signal4 = self._canonical("signal", signal, self.n_channels, engine)
        if engine == "numpy":
            out = reference.analyze(signal4, self._f4)
        elif engine == "cuda":
            out = _cuda_kernels().analyze(signal4, self._f4)
        elif method == "fft":
            out = self._dense_analyze(signal4, fft=True)[0]
        else:
            def sparse(signal):
                return self._correlate_sparse(signal, self._analysis_taps_t, 0, 0)[0]

            def dense(signal):
                return self._dense_analyze(signal)[0]

            out = self._choose(signal4, method, sparse_limit(self.n_atoms), sparse, dense)
        return _restore(out.reshape(batch + (self.n_atoms,) + spatial), signal, engine)

    def normal(self, codes, *, engine: str = "auto", method: str = "auto") -> np.ndarray:
        r"""The normal operator :math:`D^TD\Gamma`: codes ``(..., m, *S)`` to codes.

        .. math::

            (D^TD\Gamma)[f, p] = \sum_g \sum_{|s| \le n-1} G[f, g, s]\, \Gamma[g, p + s],
            \qquad G[f, g, s] = \sum_{c,\tau} A[f,c,\tau]\,A[g,c,\tau-s]

        (the atom-pair Gram of :meth:`local_gram`, without normalisation; periodic shifts).

        Parameters
        ----------
        codes : ndarray
            Same dtype as the filters.
        engine : {"auto", "numpy", "cpu"}
            ``"numpy"``: the NumPy oracles, ``D^T(DΓ)``; ``"cpu"``/``"auto"``: the Numba kernels.
        method : {"auto", "dense", "sparse", "fft"}
            ``"dense"``: synthesis then analysis (``"fft"``: both through tile DFTs, see
            :meth:`analyze`); ``"sparse"``: one correlation of the non-zeros
            of ``codes`` with the Gram taps (:func:`mlverify.kernels.cpu_sparse.correlate_sparse`,
            Gram rounded to the dtype); ``"auto"``: the cheaper by the cost model of
            :data:`SPARSE_DENSITY`.
        """
        engine = check_engine(engine)
        _check_method(method)
        batch, spatial, codes4 = self._canonical("codes", codes, self.n_atoms, engine)
        if engine == "numpy":
            out = reference.analyze(reference.synthesize(codes4, self._f4), self._f4)
        else:
            n1, n2 = self._f4.shape[2:]

            def sparse(codes):
                return self._correlate_sparse(codes, self._sparse_normal_taps(), 1 - n1,
                                              1 - n2)[0]

            def dense(codes):
                fft = method == "fft"
                return self._dense_analyze(self._dense_synthesize(codes, fft), fft=fft)[0]

            # normal_work(nnz) <= SPARSE_DENSITY x the multiply-adds of the two dense passes
            density = SPARSE_DENSITY * 2 * self._f4[0].size / self.normal_work(1)
            out = self._choose(codes4, method, sparse_limit(self.n_atoms, density), sparse,
                               dense)
        return out.reshape(batch + (self.n_atoms,) + spatial)

    def normal_work(self, nonzeros: int) -> int:
        """Multiply-adds of the sparse :meth:`normal` of codes with ``nonzeros`` non-zeros."""
        n1, n2 = self._f4.shape[2:]
        return nonzeros * (2 * n1 - 1) * (2 * n2 - 1) * self.n_atoms

    def normal_taps(self) -> np.ndarray:
        """Gram taps ``(m, 2n1-1, 2n2-1, m)`` of :meth:`normal`: ``[g, n1-1+sy, n2-1+sx, f] =
        G[f, g, (sy, sx)]`` (computed in float64, rounded to the dtype, cached)."""
        if self._normal_taps_t is None:
            gram = _gram(self._f4.astype(np.float64))  # (m, m, 2n1-1, 2n2-1), shifts mod 2n-1
            n1, n2 = self._f4.shape[2:]
            centred = np.roll(gram, (n1 - 1, n2 - 1), axis=(2, 3))
            self._normal_taps_t = np.ascontiguousarray(
                centred.transpose(1, 2, 3, 0).astype(self.dtype)
            )
        return self._normal_taps_t

    def _sparse_normal_taps(self) -> np.ndarray:
        """:meth:`normal_taps` in the sparse kernel's layout (cached)."""
        if self._normal_taps_sparse is None:
            self._normal_taps_sparse = cpu_sparse.sparse_taps(self.normal_taps())
        return self._normal_taps_sparse

    def _correlate_sparse(self, src4, taps, row_offset, col_offset, row_sign=1, *finish,
                          out=None, compressed=None,
                          synthesis=False) -> tuple[np.ndarray, int, int]:
        """:func:`cpu_sparse.correlate_sparse` of ``src4 (B, n_in, H, W)`` with ``taps``
        (:func:`cpu_sparse.sparse_taps`), the store finished by ``finish = (base, scale, beta,
        kind)`` as for :func:`mlverify.kernels.cpu.epilogue` (default: the plain correlation)
        into ``out`` (a new array by default, with a channel per atom or, for the
        ``synthesis``, per signal channel; it may be ``base``). ``compressed`` is
        :func:`cpu_sparse.pixel_nonzeros` of ``src4``, when the caller has it. Returns ``(out,
        non-finite count, non-zero count)``."""
        n_out = self.n_channels if synthesis else self.n_atoms
        if out is None:
            out = np.empty((src4.shape[0], n_out) + src4.shape[2:], self.dtype)
        if compressed is None:
            with cpu.threads_for(src4.size):
                compressed = cpu_sparse.pixel_nonzeros(src4)
        work = compressed[1].size * taps[0].size + out.size
        with cpu.threads_for(work):
            bad, nonzero = cpu_sparse.correlate_sparse(
                *compressed, taps, out, row_sign, row_offset, col_offset,
                cpu_sparse.block_width(out), *cpu.epilogue(self.dtype, *finish),
            )
        return out, bad, nonzero

    def _analyze_threshold(self, signal4: np.ndarray, beta: np.ndarray, kind: int,
                           nonzeros: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        r""":math:`T_\beta(D^TV)` on the canonical layout (CPU, checked inputs) and its number of
        non-zeros: the threshold ``kind`` (:data:`mlverify.kernels._scalar.KINDS`, per-channel
        ``beta (m,)``) is fused into the store of the sparse or dense kernel, which also counts
        the non-zeros. ``nonzeros`` are those of ``signal4`` per problem, when known. Used by
        the layered pursuits (the CNN forward pass)."""
        counts: list[int] = []

        def sparse(signal):
            out, _, nonzero = self._correlate_sparse(signal, self._analysis_taps_t, 0, 0, 1, None,
                                                     1.0, beta, kind)
            counts.append(nonzero)
            return out

        def dense(signal):
            fft = self._dense_work(signal.shape[2:], signal.shape[0], True)[1]
            out, _, nonzero = self._dense_analyze(signal, None, 1.0, beta, kind, fft=fft)
            counts.append(nonzero)
            return out

        out = self._choose(signal4, "auto", sparse_limit(self.n_atoms), sparse, dense, nonzeros)
        return out, sum(counts)

    def _step_route(self, codes4: np.ndarray, target4: np.ndarray, synthesized: bool,
                    nonzeros: tuple[int, int] | None = None) -> StepRoute:
        """The route of :meth:`proximal_gradient_step` on canonical arrays (``synthesized``:
        the caller passes :math:`D\\Gamma`) and its modelled time; ``nonzeros`` are those of
        the codes and of the target, when the caller has counted them. The codes are counted
        only when the target's share of the sparse route leaves it a chance."""
        # multiply-adds: D^T of one target entry, D of the codes per target entry
        taps = self.n_atoms * math.prod(self.kernel_size)
        grid, problems = codes4.shape[2:], codes4.shape[0]
        analysis, analysis_fft = self._dense_work(grid, problems, True)
        synthesis, synthesis_fft = ((0.0, False) if synthesized
                                    else self._dense_work(grid, problems, False))
        dense = analysis + synthesis
        limit = sparse_limit(self.n_atoms)
        if nonzeros is None:
            target = int(cpu.nonzeros(target4)[0])
            codes = int(cpu.nonzeros(codes4)[0]) if target * taps <= limit * dense else 0
            nonzeros = codes, target
        sparse = self.normal_work(nonzeros[0]) + nonzeros[1] * taps
        use_sparse = sparse <= limit * dense
        work = (sparse / limit if limit else 0.0) if use_sparse else dense
        return StepRoute(use_sparse, analysis_fft, synthesis_fft,
                         work * tiled.NS_DIRECT[self.dtype.itemsize])

    def proximal_gradient_step(self, codes, target, step: float, beta: float,
                               kind: str = "soft", *, synthesized=None) -> np.ndarray | None:
        r"""One proximal gradient step on :math:`\tfrac12\|D\Gamma - V\|_2^2`, fused (CPU):

        .. math::

            \Gamma^+ = T_\beta\big(\Gamma - \eta\,D^T(D\Gamma - V)\big),

        the step of ISTA and of every layer of ML-ISTA (Sulam, Aberdam, Beck, Elad, TPAMI 2019),
        with :math:`T` the threshold ``kind``. The route is the cheaper by the cost model of
        :func:`sparse_limit` (into the ``m`` atoms):

        - *sparse*: :math:`\Gamma - \eta D^TD\Gamma` through the Gram taps of :meth:`normal`,
          then :math:`+\eta D^TV` with the threshold in the store, both with the sparse-input
          kernel (no temporary array);
        - *dense*: :math:`R = D\Gamma - V` (``synthesized - V`` when the caller has
          :math:`D\Gamma`), then the dense analysis storing
          :math:`T_\beta(\Gamma - \eta D^TR)`; each of the two by the direct sums or by tile
          DFTs (:mod:`mlverify.kernels.tiled`), whichever :meth:`_dense_work` models cheaper.

        Parameters
        ----------
        codes : ndarray, shape ``(..., m, *S)``
            :math:`\Gamma`, the dictionary's dtype.
        target : ndarray, shape ``(..., c, *S)``
            :math:`V` (same batch shape).
        step : float
            :math:`\eta > 0`.
        beta : float
            Threshold :math:`\beta \ge 0`.
        kind : {"hard", "soft", "relu"}
            :math:`T` (``"relu"`` is the non-negative soft threshold).
        synthesized : ndarray, optional
            :math:`D\Gamma`, if already computed.

        Returns
        -------
        ndarray or None
            :math:`\Gamma^+` (shape of ``codes``), or ``None`` when
            :math:`\Gamma - \eta D^T(D\Gamma - V)` has a non-finite entry (a threshold would
            hide a NaN).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        batch, spatial, codes4 = self._canonical("codes", codes, self.n_atoms, finite=False)
        target4 = self._canonical("target", target, self.n_channels, finite=False)[2]
        if target4.shape[0] != codes4.shape[0]:
            raise ValueError(f"target has batch {target4.shape[0]}, codes {codes4.shape[0]}")
        betas = np.full(self.n_atoms, beta, dtype=self.dtype)
        route = self._step_route(codes4, target4, synthesized is not None)
        if route.sparse:
            n1, n2 = self._f4.shape[2:]
            moved = self._correlate_sparse(codes4, self._sparse_normal_taps(), 1 - n1, 1 - n2, 1,
                                           codes4, -step)[0]
            out, bad, _ = self._correlate_sparse(target4, self._analysis_taps_t, 0, 0, 1, moved,
                                              step, betas, KINDS[kind], out=moved)
        else:
            if synthesized is None:
                residual = self._dense_synthesize(codes4, route.synthesis_fft)
                residual -= target4
            else:
                residual = self._canonical("synthesized", synthesized, self.n_channels,
                                           finite=False)[2] - target4
            out, bad, _ = self._dense_analyze(residual, codes4, -step, betas, KINDS[kind],
                                              fft=route.analysis_fft)
        return None if bad else out.reshape(batch + (self.n_atoms,) + spatial)

    def _spatial_shape(self, spatial_shape) -> tuple[int, ...]:
        spatial = window_shape("spatial_shape", spatial_shape, self.spatial_ndim)
        self._check_spatial("spatial_shape", spatial)
        return spatial

    def to_dense(self, spatial_shape) -> np.ndarray:
        """The global matrix, shape ``(c·∏S, m·∏S)``, with C-order rows and columns.

        ``to_dense(S) @ codes.ravel() == synthesize(codes).ravel()`` for codes ``(m, *S)``.
        Meant for small sizes (tests, brute force): it allocates the full matrix.
        """
        spatial = self._spatial_shape(spatial_shape)
        height, width = (1, *spatial) if self.spatial_ndim == 1 else spatial
        return reference.dense_operator(self._f4, height, width)

    def spectral_norm(self, spatial_shape) -> float:
        r"""Exact :math:`\|D\|_2` on signals of shape ``spatial_shape``, from the DFT.

        The periodic operator is block-diagonalised by the DFT: at frequency :math:`k` it acts as
        the :math:`c \times m` matrix :math:`\hat A(k)` of filter responses, so
        :math:`\|D\|_2 = \max_k \sigma_{\max}(\hat A(k))` (no power iteration).
        """
        spatial = self._spatial_shape(spatial_shape)
        if spatial not in self._spectral_norms:
            self._spectral_norms[spatial] = self._exact_spectral_norm(spatial)
        return self._spectral_norms[spatial]

    def spectra(self, spatial_shape, dtype=np.complex128) -> np.ndarray:
        r"""The DFT of every filter zero-padded to ``spatial_shape`` (read-only).

        ``spectra(S)[f, c] = rfftn(filters[f, c], s=S)``, shape ``(m, c, *S[:-1], S[-1]//2 + 1)``:
        the half spectrum of real filters, :math:`\hat A[f, c, k]` of
        :mod:`mlverify.kernels.fft`, computed in float64; ``dtype=np.complex64`` gives them
        rounded to single precision (the float32 solvers' operand). Computed once per shape
        (and rounded once) and kept for the last :data:`SPECTRA_KEPT` shapes, so a solver and
        its certificate share one computation.
        """
        spatial = self._spatial_shape(spatial_shape)
        dtype = np.dtype(dtype)
        if dtype not in (np.complex64, np.complex128):
            raise ValueError(f"dtype must be complex64 or complex128, got {dtype}")
        if spatial not in self._spectra:
            # rfftn = rfft of the last axis, then fft of the others; done in that order on the
            # n-tap filters, the padded rows are never transformed (3× faster at 12×12 in 256²)
            workers = cpu.thread_count()
            spectra = scipy.fft.rfft(self._filters.astype(np.float64), n=spatial[-1], axis=-1,
                                     workers=workers)
            if self.spatial_ndim == 2:
                spectra = scipy.fft.fft(spectra, n=spatial[0], axis=2, workers=workers)
            spectra.setflags(write=False)
            while len(self._spectra) >= SPECTRA_KEPT:
                del self._spectra[next(iter(self._spectra))]  # the oldest shape
            self._spectra[spatial] = {spectra.dtype: spectra}
        kept = self._spectra[spatial]
        if dtype not in kept:
            rounded = kept[np.dtype(np.complex128)].astype(dtype)
            rounded.setflags(write=False)
            kept[dtype] = rounded
        return kept[dtype]

    def _exact_spectral_norm(self, spatial: tuple[int, ...]) -> float:
        # Real filters: frequency k and -k have conjugate responses, so the half spectrum suffices.
        response = self.spectra(spatial).reshape(self.n_atoms, self.n_channels, -1)
        # ‖Â(k)‖_F² bounds σ_max(Â(k))² from above: visit frequencies by decreasing Frobenius norm
        # and stop once no remaining one can beat the largest exact eigenvalue found so far.
        frobenius = np.sum(np.abs(response) ** 2, axis=(0, 1))
        if min(self.n_atoms, self.n_channels) == 1:
            return float(np.sqrt(frobenius.max()))
        order = np.argsort(-frobenius)
        largest = 0.0
        for start in range(0, order.size, 1024):
            chunk = order[start : start + 1024]
            if frobenius[chunk[0]] <= largest:
                break
            block = response[:, :, chunk]
            # einsum, not stacked matmul: the latter hands thousands of tiny complex products to a
            # threaded BLAS, which was 30x slower here.
            if self.n_channels <= self.n_atoms:  # Â(k) Â(k)^H, c x c
                gram = np.einsum("fak,fbk->kab", block, np.conj(block))
            else:  # Â(k)^H Â(k), m x m
                gram = np.einsum("ack,bck->kab", np.conj(block), block)
            largest = max(largest, float(np.linalg.eigvalsh(gram)[:, -1].max()))
        return float(np.sqrt(max(largest, 0.0)))

    def coherence(self, spatial_shape=None) -> float:
        r"""Mutual coherence :math:`\mu(D)` of the normalised atoms, local formula (THEORY.md §2).

        .. math::

            \mu(D) = \max_{(f, g, s) \ne (f, f, 0),\ |s| \le n-1}
                \Big|\sum_{c,\tau} \hat A[f,c,\tau]\, \hat A[g,c,\tau-s]\Big|

        It equals the largest off-diagonal entry of the global normalised Gram matrix only when
        every spatial size ``N >= 2n - 1``; when ``spatial_shape`` is given, smaller sizes are
        refused with a ``ValueError``.
        """
        if spatial_shape is not None:
            spatial = self._spatial_shape(spatial_shape)
            small = [
                (s, n) for s, n in zip(spatial, self.kernel_size, strict=True) if s < 2 * n - 1
            ]
            if small:
                raise ValueError(
                    f"spatial_shape {spatial}: the local coherence formula needs N >= 2n - 1 on "
                    f"every axis (got N, n = {small}); wrap-around adds overlaps below that, "
                    "use the global Gram of to_dense() instead"
                )
        gram = self.local_gram()
        d = self.spatial_ndim
        gram[(*np.diag_indices(self.n_atoms), *((0,) * d))] = 0.0
        return float(np.abs(gram).max())

    def local_gram(self) -> np.ndarray:
        r"""Correlations of the normalised atoms at every shift, shape ``(m, m, 2n1-1[, 2n2-1])``.

        ``G[f, g, s] = Σ_{c,τ} Â[f,c,τ] Â[g,c,τ−s] = ⟨d_{f,p}, d_{g,p+s}⟩`` (``d_{f,p}``: atom
        ``f`` placed at ``p``), with the shift ``s`` stored modulo ``2n - 1`` (so ``G[f, g, 0]`` is
        the zero shift and ``G[f, g, -1]`` the shift ``-1``). Computed in float64.
        """
        atoms = self.normalized()._f4.astype(np.float64)
        shape = (self.n_atoms,) * 2 + tuple(2 * n - 1 for n in self.kernel_size)
        return _gram(atoms).reshape(shape)

    def compose(self, other: ConvDictionary) -> ConvDictionary:
        r"""Filters of the effective dictionary ``self · other`` (THEORY.md §1).

        With ``self`` = :math:`D_1` (filters ``(m_1, c, n_1)``) and ``other`` = :math:`D_2`
        (filters ``(m_2, m_1, n_2)``), :math:`D_1 D_2` is the periodic dictionary with filters
        :math:`E[g, c, \tau] = \sum_f \sum_{\tau_1+\tau_2=\tau} A_1[f,c,\tau_1] A_2[g,f,\tau_2]`
        of length :math:`n_1 + n_2 - 1` (a full convolution). Its atoms are not unit-norm.
        """
        if not isinstance(other, ConvDictionary):
            raise TypeError(f"other must be a ConvDictionary, got {type(other).__name__}")
        if other.spatial_ndim != self.spatial_ndim:
            raise ValueError(
                f"other is {other.spatial_ndim}-D but this dictionary is {self.spatial_ndim}-D"
            )
        if other.n_channels != self.n_atoms:
            raise ValueError(
                f"other has {other.n_channels} input channels, this dictionary has "
                f"{self.n_atoms} atoms: channels must match to compose"
            )
        if other.dtype != self.dtype:
            raise TypeError(f"other has dtype {other.dtype}, this dictionary {self.dtype}")
        a1, a2 = self._f4, other._f4
        n1y, n1x = a1.shape[2:]
        n2y, n2x = a2.shape[2:]
        out = np.zeros((a2.shape[0], a1.shape[1], n1y + n2y - 1, n1x + n2x - 1), self.dtype)
        for ty in range(n2y):
            for tx in range(n2x):
                out[:, :, ty : ty + n1y, tx : tx + n1x] += np.einsum(
                    "gf,fcyx->gcyx", a2[:, :, ty, tx], a1
                )
        return ConvDictionary(out.reshape(out.shape[:2] + out.shape[4 - self.spatial_ndim :]))

"""Linear operators shared by the multi-layer solvers: dense matrices and convolutional layers.

One solver code serves both kinds of dictionary. An :class:`Operator` maps arrays of
``in_shape`` to arrays of ``out_shape`` (``forward``), has an exact adjoint (``adjoint``), an
exact spectral norm (``norm``) and a proximal map of the ℓ1 norm on its input space (``shrink``):

- :class:`MatrixOperator` wraps a 2-D array ``M`` (vectors in, vectors out);
- :class:`ConvChain` is a product :math:`D_a D_{a+1} \\cdots D_b` of periodic convolutional
  dictionaries on a fixed spatial grid (possibly empty: the identity on the codes), applied layer
  by layer through :meth:`ConvDictionary.synthesize` / :meth:`ConvDictionary.analyze` with the
  chosen engine (``"numpy"`` = the NumPy oracles, ``"cpu"`` = the Numba kernels).

:func:`normal_solver` solves :math:`(\\sum_k w_k C_k^T C_k)\\,x = b` exactly for a family of
operators sharing their input space: by a Cholesky factorisation for matrices, and per frequency in
the DFT domain for periodic convolutions (every :class:`ConvChain` is block-diagonalised by the DFT:
at frequency :math:`k` it acts as the product of the layers' filter-response matrices, so the
normal matrix is an ``m x m`` Hermitian matrix per frequency, ``m`` the input channels).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft
import scipy.linalg

from .._validate import as_float_array, check_engine, check_finite
from ..kernels import cpu
from ..kernels._scalar import KINDS
from ..model.dictionary import ConvDictionary
from ..model.mlcsc import MLCSC


def soft_threshold(values: np.ndarray, beta: float, nonneg: bool) -> np.ndarray:
    r"""NumPy :math:`S_\beta` (or :math:`S^+_\beta` when ``nonneg``), returning ``+0.0`` below.

    The oracle of the Numba ``threshold`` kernel (THEORY.md §3).
    """
    if nonneg:
        return np.where(values > beta, values - beta, 0.0).astype(values.dtype, copy=False)
    return np.where(np.abs(values) > beta, values - beta * np.sign(values), 0.0).astype(
        values.dtype, copy=False
    )


class Operator(ABC):
    """A real linear map with its adjoint; subclasses define the arrays' shapes and the maps."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    dtype: np.dtype

    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """``C x``."""

    @abstractmethod
    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """``C^T v``."""

    @abstractmethod
    def norm(self) -> float:
        """Exact spectral norm ``||C||_2``."""

    def gradient_step(self, x: np.ndarray, target: np.ndarray, cx: np.ndarray | None,
                      step: float, beta: float, nonneg: bool) -> np.ndarray | None:
        """``shrink(x - step·C^T(C x - target), beta)``, the proximal gradient step on
        ``½‖C x - target‖²`` (``cx`` is ``C x`` when the caller has it already); ``None`` when
        the point before the threshold is not finite (a threshold would hide a NaN)."""
        grad = self.adjoint((self.forward(x) if cx is None else cx) - target)
        point = x - np.asarray(step, dtype=x.dtype) * grad
        if not np.isfinite(point).all():
            return None
        return self.shrink(point, beta, nonneg)

    def shrink(self, values: np.ndarray, beta: float, nonneg: bool) -> np.ndarray:
        """Soft threshold of an array of the input space (NumPy unless a subclass knows better)."""
        return soft_threshold(values, beta, nonneg)


class MatrixOperator(Operator):
    """A dense matrix ``M`` of shape ``(p, q)``: vectors ``(q,)`` to ``(p,)``."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.in_shape = (matrix.shape[1],)
        self.out_shape = (matrix.shape[0],)
        self.dtype = matrix.dtype

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.matrix @ x

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        return self.matrix.T @ v

    def norm(self) -> float:
        return float(np.linalg.norm(self.matrix.astype(np.float64), 2))


class ConvChain(Operator):
    r"""The product :math:`D_a \cdots D_b` of periodic convolutional dictionaries on a grid.

    ``layers`` is ``(D_a, …, D_b)`` (outermost first); an empty tuple is the identity on codes
    with ``in_channels`` channels.
    """

    def __init__(
        self,
        layers: Sequence[ConvDictionary],
        spatial: tuple[int, ...],
        engine: str,
        in_channels: int,
        dtype: np.dtype,
    ) -> None:
        self.layers = tuple(layers)
        self.spatial = spatial
        self.engine = engine
        self.in_shape = (in_channels, *spatial)
        out_channels = self.layers[0].n_channels if self.layers else in_channels
        self.out_shape = (out_channels, *spatial)
        self.dtype = np.dtype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            x = layer.synthesize(x, engine=self.engine)
        return x

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            v = layer.analyze(v, engine=self.engine)
        return v

    def gradient_step(self, x: np.ndarray, target: np.ndarray, cx: np.ndarray | None,
                      step: float, beta: float, nonneg: bool) -> np.ndarray | None:
        """For one layer on the CPU engine, the fused kernels of
        :meth:`ConvDictionary.proximal_gradient_step` (sparse or dense by its cost model)."""
        if self.engine == "numpy" or len(self.layers) != 1:
            return super().gradient_step(x, target, cx, step, beta, nonneg)
        return self.layers[0].proximal_gradient_step(x, target, step, beta,
                                                     "relu" if nonneg else "soft",
                                                     synthesized=cx)

    def norm(self) -> float:
        if len(self.layers) == 1:
            return self.layers[0].spectral_norm(self.spatial)
        response = self.response()
        gram = np.conj(np.swapaxes(response, 1, 2)) @ response
        return float(np.sqrt(max(np.linalg.eigvalsh(gram)[:, -1].max(), 0.0)))

    def shrink(self, values: np.ndarray, beta: float, nonneg: bool) -> np.ndarray:
        if self.engine == "numpy":
            return soft_threshold(values, beta, nonneg)
        channels = values.shape[0]
        view = values.reshape((1, channels) + (1,) * (3 - values.ndim) + values.shape[1:])
        out = np.empty_like(view)
        kind = KINDS["relu" if nonneg else "soft"]
        with cpu.threads_for(values.size):
            cpu.threshold(view, np.full(channels, beta, dtype=values.dtype), kind, out)
        return out.reshape(values.shape)

    def response(self) -> np.ndarray:
        """Per-frequency matrices ``(F, out_channels, in_channels)`` over the real-FFT grid."""
        half = (*self.spatial[:-1], self.spatial[-1] // 2 + 1)
        n_freq = int(np.prod(half))
        total = np.broadcast_to(np.eye(self.in_shape[0]), (n_freq,) + (self.in_shape[0],) * 2)
        for layer in reversed(self.layers):
            spectrum = layer.spectra(self.spatial)
            per_freq = np.moveaxis(spectrum.reshape(layer.n_atoms, layer.n_channels, n_freq), -1, 0)
            total = np.swapaxes(per_freq, 1, 2) @ total
        return total


def normal_solver(
    operators: Sequence[Operator], weights: Sequence[float]
) -> Callable[[np.ndarray], np.ndarray]:
    r"""A function ``b -> x`` solving :math:`(\sum_k w_k C_k^T C_k)\,x = b` exactly.

    All operators must be of one kind (all :class:`MatrixOperator` or all :class:`ConvChain`)
    and share ``in_shape``; the weighted normal matrix must be positive definite. Computed in
    float64. Dense: Cholesky (``scipy.linalg.cho_factor``). Convolutional: the normal matrix is
    block-diagonal in the DFT basis; each ``m x m`` Hermitian block is inverted once.
    """
    if all(isinstance(op, MatrixOperator) for op in operators):
        normal = sum(
            w * (op.matrix.T.astype(np.float64) @ op.matrix.astype(np.float64))
            for op, w in zip(operators, weights, strict=True)
        )
        factor = scipy.linalg.cho_factor(normal)
        return lambda b: scipy.linalg.cho_solve(factor, b.astype(np.float64))
    if all(isinstance(op, ConvChain) for op in operators):
        spatial = operators[0].spatial
        normal = 0
        for op, w in zip(operators, weights, strict=True):
            response = op.response()
            normal = normal + w * (np.conj(np.swapaxes(response, 1, 2)) @ response)
        inverse = np.linalg.inv(normal)
        axes = tuple(range(-len(spatial), 0))

        def solve(b: np.ndarray) -> np.ndarray:
            spectrum = scipy.fft.rfftn(b.astype(np.float64), axes=axes)
            flat = spectrum.reshape(spectrum.shape[0], -1)
            solved = np.einsum("kfg,gk->fk", inverse, flat).reshape(spectrum.shape)
            return scipy.fft.irfftn(solved, s=spatial, axes=axes)

        return solve
    raise TypeError("normal_solver needs operators of one kind (all dense or all convolutional)")


def layer_operators(model, y, *, engine: str, dtype=None) -> tuple[list[Operator], np.ndarray]:
    """Per-layer operators ``[D_1, …, D_L]`` and the checked signal ``y``.

    Parameters
    ----------
    model : MLCSC, sequence of ConvDictionary, or sequence of 2-D arrays
        The layers ``D_1, …, D_L``. Dense matrices give the non-convolutional model (``y`` a
        vector); dictionaries give the periodic convolutional model (``y`` of shape
        ``(m_0, *S)``, one signal).
    y : ndarray
        The signal, same dtype as the model.
    engine : {"auto", "numpy", "cpu"}
        Engine of the convolutional operators (dense matrices use NumPy whatever the engine).
    dtype : numpy.dtype, optional
        Build the operators in this dtype instead of the model's (the high-accuracy solver of
        problem (P) works in float64); ``y`` must still have the model's dtype.
    """
    engine = check_engine(engine)
    if isinstance(model, MLCSC):
        layers = list(model.layers)
    else:
        if isinstance(model, (np.ndarray, str, bytes)) or not isinstance(model, Sequence):
            raise TypeError(
                "model must be an MLCSC or a sequence of ConvDictionary or of 2-D arrays, got "
                f"{type(model).__name__}"
            )
        layers = list(model)
        if not layers:
            raise ValueError("model must hold at least one layer")
    if all(isinstance(layer, ConvDictionary) for layer in layers):
        chain = MLCSC(layers)
        return _conv_layers(chain, y, engine, dtype)
    if any(isinstance(layer, ConvDictionary) for layer in layers):
        raise TypeError("model mixes ConvDictionary layers and dense matrices")
    return _dense_layers(layers, y, dtype)


def _dense_layers(layers, y, dtype) -> tuple[list[Operator], np.ndarray]:
    matrices = []
    for i, layer in enumerate(layers, start=1):
        matrix = as_float_array(f"model[{i - 1}] (D{i})", layer)
        if matrix.ndim != 2 or 0 in matrix.shape:
            raise ValueError(f"model[{i - 1}] (D{i}) must be a non-empty 2-D matrix, got shape "
                             f"{matrix.shape}")
        check_finite(f"model[{i - 1}] (D{i})", matrix)
        if matrices:
            if matrix.dtype != matrices[0].dtype:
                raise TypeError(f"D{i} has dtype {matrix.dtype} but D1 has {matrices[0].dtype}")
            if matrix.shape[0] != matrices[-1].shape[1]:
                raise ValueError(f"D{i} has {matrix.shape[0]} rows but D{i - 1} has "
                                 f"{matrices[-1].shape[1]} columns: they must match")
        matrices.append(matrix)
    model_dtype = matrices[0].dtype
    y = as_float_array("y", y, dtype=model_dtype)
    if y.shape != (matrices[0].shape[0],):
        raise ValueError(f"y must be a vector of length {matrices[0].shape[0]} (rows of D1), got "
                         f"shape {y.shape}")
    check_finite("y", y)
    target = model_dtype if dtype is None else np.dtype(dtype)
    return [MatrixOperator(m.astype(target, copy=False)) for m in matrices], y


def _conv_layers(chain: MLCSC, y, engine, dtype) -> tuple[list[Operator], np.ndarray]:
    first = chain.layers[0]
    y = as_float_array("y", y, dtype=chain.dtype)
    d = chain.spatial_ndim
    if y.ndim != d + 1 or y.shape[0] != first.n_channels:
        raise ValueError(
            f"y must have shape ({first.n_channels}, {', '.join('N' * d)}) (one signal with the "
            f"channels of D1), got {y.shape}"
        )
    check_finite("y", y)
    spatial = y.shape[1:]
    for i, layer in enumerate(chain.layers, start=1):
        if any(s < n for s, n in zip(spatial, layer.kernel_size, strict=True)):
            raise ValueError(f"y: the filters of D{i} {layer.kernel_size} are larger than the "
                             f"signal {spatial}")
    target = chain.dtype if dtype is None else np.dtype(dtype)
    layers = [
        layer if layer.dtype == target else ConvDictionary(layer.filters.astype(target))
        for layer in chain.layers
    ]
    ops: list[Operator] = [
        ConvChain([layer], spatial, engine, layer.n_atoms, target) for layer in layers
    ]
    return ops, y


def suffix_products(ops: Sequence[Operator]) -> list[Operator]:
    r"""``[D^(0,L), D^(1,L), …, D^(L,L)]`` with :math:`D^{(i,L)} = D_{i+1} \cdots D_L`.

    ``D^(0,L)`` is the effective dictionary :math:`D^{(L)}` and ``D^(L,L)`` the identity on the
    deepest codes. ``ops`` come from :func:`layer_operators` (all dense or all single-layer
    chains): dense products are multiplied out once, convolutional ones stay chains applied layer
    by layer.
    """
    deepest = ops[-1]
    if isinstance(deepest, MatrixOperator):
        matrices = [np.eye(deepest.in_shape[0], dtype=deepest.dtype)]
        for op in reversed(ops):
            matrices.append(op.matrix @ matrices[-1])
        return [MatrixOperator(m) for m in reversed(matrices)]
    layers = [layer for op in ops for layer in op.layers]
    return [
        ConvChain(layers[i:], deepest.spatial, deepest.engine, deepest.in_shape[0], deepest.dtype)
        for i in range(len(layers) + 1)
    ]

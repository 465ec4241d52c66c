"""Argument checks shared by the pursuits (DESIGN.md §8: clear errors naming the argument)."""

from __future__ import annotations

import numpy as np

from .._validate import as_float_array, check_finite, check_nonnegative
from ..model.dictionary import ConvDictionary


def check_dictionary(name: str, D) -> ConvDictionary:
    """Raise ``TypeError`` unless ``D`` is a :class:`~mlverify.ConvDictionary`."""
    if not isinstance(D, ConvDictionary):
        raise TypeError(f"{name} must be a ConvDictionary, got {type(D).__name__}")
    return D


def check_signal(D: ConvDictionary, name: str, y) -> np.ndarray:
    """``y`` as an array of shape ``(..., c, *S)`` with the dictionary's dtype, finite."""
    y = as_float_array(name, y, dtype=D.dtype)
    check_signal_shape(D, name, y.shape)
    check_finite(name, y)
    return y


def check_signal_shape(D: ConvDictionary, name: str, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``shape`` is ``(..., c, *S)`` with every ``S >= n``."""
    d = D.spatial_ndim
    if len(shape) < d + 1 or shape[len(shape) - d - 1] != D.n_channels:
        raise ValueError(
            f"{name} must have shape (..., {D.n_channels}, {', '.join('N' * d)}) for a "
            f"dictionary with {D.n_channels} input channels, got {tuple(shape)}"
        )
    spatial = tuple(shape[len(shape) - d:])  # (simulator device shapes: no index < 0)
    if any(s < n for s, n in zip(spatial, D.kernel_size, strict=True)):
        raise ValueError(f"{name}: spatial size {spatial} is smaller than the filters "
                         f"{D.kernel_size}")


def check_codes(D: ConvDictionary, name: str, codes, y: np.ndarray) -> np.ndarray:
    """``codes`` of shape ``(..., m, *S)`` matching the batch and spatial shape of ``y``."""
    codes = as_float_array(name, codes, dtype=D.dtype)
    d = D.spatial_ndim
    expected = (*y.shape[: -d - 1], D.n_atoms, *y.shape[-d:])
    if codes.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (batch, atoms, spatial of the "
                         f"signal), got {codes.shape}")
    check_finite(name, codes)
    return codes


def check_local_signal(D: ConvDictionary, name: str, y, *, dict_name: str = "D") -> np.ndarray:
    """:func:`check_signal`, and every spatial size ``N >= 2n - 1`` (local Gram updates)."""
    y = check_signal(D, name, y)
    spatial = y.shape[-D.spatial_ndim :]
    small = [(s, n) for s, n in zip(spatial, D.kernel_size, strict=True) if s < 2 * n - 1]
    if small:
        raise ValueError(
            f"{name}: spatial size {spatial} is too small for {dict_name} with filters "
            f"{D.kernel_size}: the local Gram updates need N >= 2n - 1 on every axis "
            f"(got N, n = {small})"
        )
    return y


def check_optional_tol(name: str, tol) -> float | None:
    """``None`` or a finite real ``>= 0`` (returned as float)."""
    return None if tol is None else check_nonnegative(name, tol)

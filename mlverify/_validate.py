"""Input checks shared by the public API (DESIGN.md §8).

Every check raises a ``TypeError`` (wrong type or dtype) or a ``ValueError`` (wrong shape or
value) whose message names the offending argument, so that a user sees at once which input is
wrong. No check casts silently: a float64 array is never turned into float32 behind the user's back.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
ENGINES = ("auto", "numpy", "cpu", "cuda")
#: What :func:`check_engine` accepts unless told otherwise: functions without a CUDA path yet.
HOST_ENGINES = ("auto", "numpy", "cpu")


def as_float_array(name: str, value, *, dtype: np.dtype | None = None) -> np.ndarray:
    """Return ``value`` as a C-contiguous float32/float64 ndarray, or raise.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    value : array_like
        The input.
    dtype : numpy.dtype, optional
        When given, the array must already have this dtype (mixed dtypes are refused).
    """
    if not isinstance(value, np.ndarray):
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(
                f"{name} must be a float32 or float64 array, got {type(value).__name__}"
            )
        value = np.asarray(value)
        if value.dtype.kind in "iub":
            value = value.astype(np.float64 if dtype is None else dtype)
    check_float_dtype(name, value.dtype, dtype)
    return np.require(value, requirements="C")  # keeps 0-d arrays 0-d (ascontiguousarray does not)


def check_float_dtype(name: str, actual, expected=None) -> None:
    """Raise ``TypeError`` unless ``actual`` is float32/float64 (and ``expected`` when given).

    Shared by host arrays and device arrays (whose dtype is checked without a copy).
    """
    actual = np.dtype(actual)
    if actual not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {actual}")
    if expected is not None and actual != np.dtype(expected):
        raise TypeError(
            f"{name} has dtype {actual} but the dictionary is {np.dtype(expected)}; "
            f"cast it explicitly (no silent conversion between float32 and float64)"
        )


def check_finite(name: str, array: np.ndarray) -> None:
    """Raise ``ValueError`` if ``array`` holds NaN or infinity."""
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def check_engine(engine: str, available: tuple[str, ...] = HOST_ENGINES) -> str:
    """Resolve ``engine`` to a concrete engine name (``"auto"`` picks the compiled CPU engine).

    Raises
    ------
    ValueError
        If ``engine`` is not one of ``available``. Engines never fall back silently.
    RuntimeError
        If ``engine="cuda"`` but neither a CUDA device nor the simulator is usable.
    """
    if not isinstance(engine, str) or engine not in available:
        hint = " (no CUDA path here yet)" if engine == "cuda" else ""
        raise ValueError(f"engine must be one of {available}, got {engine!r}{hint}")
    if engine == "cuda":
        from ._cuda import require_cuda  # numba.cuda is imported only when CUDA is asked for

        require_cuda()
    return "cpu" if engine == "auto" else engine


def _real_scalar(name: str, value) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real scalar, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value) -> float:
    """Return a finite real scalar ``>= 0`` (Python, NumPy or 0-d array) as float, or raise."""
    result = _real_scalar(name, value)
    if result < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return result


def check_positive(name: str, value) -> float:
    """Return a finite real scalar ``> 0`` as float, or raise."""
    result = _real_scalar(name, value)
    if result <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return result


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an int ``>= minimum`` or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def window_shape(name: str, value, ndim: int) -> tuple[int, ...]:
    """Normalise a window/filter size (int or per-axis tuple) to a tuple of ``ndim`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        sizes = (int(value),) * ndim
    else:
        try:
            sizes = tuple(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a tuple of {ndim} ints") from None
        if len(sizes) != ndim:
            raise ValueError(f"{name} must have {ndim} entries (one per spatial axis), got {sizes}")
    return tuple(check_positive_int(name, s) for s in sizes)


def spatial_size(name: str, value) -> tuple[int, ...]:
    """A filter or window size: an ``int`` means 1-D, a pair ``(n1, n2)`` means 2-D."""
    if isinstance(value, (int, np.integer)):
        ndim = 1
    elif isinstance(value, (tuple, list, np.ndarray)):
        ndim = len(value)
    else:
        raise TypeError(f"{name} must be an int (1-D) or a pair (n1, n2) (2-D), got {value!r}")
    if ndim not in (1, 2):
        raise ValueError(f"{name} must be an int (1-D) or a pair (n1, n2) (2-D), got {value!r}")
    return window_shape(name, value, ndim)


def as_generator(rng) -> np.random.Generator:
    """Return ``rng`` as a :class:`numpy.random.Generator` (an ``int`` is used as a seed)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"rng as a seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}"
    )


def float_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as float32 or float64, or raise ``TypeError`` naming ``dtype``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {resolved}")
    return resolved

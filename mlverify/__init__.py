"""mlverify: fast kernels, executable theorems and speed tracking for ML-CSC.

The public API is what ``__all__`` lists; everything in a module whose name starts with ``_`` and
everything not re-exported here is private.
"""

from .model.dictionary import ConvDictionary
from .model.measures import (
    coherence_lower_bound,
    contrast,
    extreme_magnitudes,
    patch_l0_inf,
    patch_l2_inf,
    stripe_l0_inf,
)
from .model.mlcsc import MLCSC

__version__ = "0.1.0"

__all__ = [
    "MLCSC",
    "ConvDictionary",
    "__version__",
    "coherence_lower_bound",
    "contrast",
    "extreme_magnitudes",
    "patch_l0_inf",
    "patch_l2_inf",
    "stripe_l0_inf",
]

"""mlverify: fast kernels, executable theorems and speed tracking for ML-CSC.

The public API is what ``__all__`` lists; everything in a module whose name starts with ``_`` and
everything not re-exported here is private.
"""

from .model.constructions import (
    LowCoherenceFilters,
    barker13,
    golomb_filters,
    low_coherence_filters,
    random_filters,
    sparse_filters,
)
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
from .model.sampler import LayerReport, PlantedInstance, sample_instance

__version__ = "0.1.0"

__all__ = [
    "MLCSC",
    "ConvDictionary",
    "LayerReport",
    "LowCoherenceFilters",
    "PlantedInstance",
    "__version__",
    "barker13",
    "coherence_lower_bound",
    "contrast",
    "extreme_magnitudes",
    "golomb_filters",
    "low_coherence_filters",
    "patch_l0_inf",
    "patch_l2_inf",
    "random_filters",
    "sample_instance",
    "sparse_filters",
    "stripe_l0_inf",
]

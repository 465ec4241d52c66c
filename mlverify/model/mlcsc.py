"""The multi-layer convolutional sparse coding model (THEORY.md §1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validate import as_float_array, check_finite
from .dictionary import ConvDictionary


class MLCSC:
    r"""A chain of convolutional dictionaries :math:`D_1, \dots, D_K`.

    :math:`X = \Gamma_0 = D_1\Gamma_1`, :math:`\Gamma_{i-1} = D_i\Gamma_i`: layer ``i`` has
    :math:`m_i` atoms over :math:`m_{i-1}` channels (Papyan, Romano, Elad, JMLR 2017).

    Parameters
    ----------
    dictionaries : sequence of ConvDictionary
        ``[D1, …, DK]``; ``D_{i+1}.n_channels`` must equal ``D_i.n_atoms``, and all must share
        the spatial dimension and the dtype.
    """

    def __init__(self, dictionaries: Sequence[ConvDictionary]) -> None:
        layers = list(dictionaries)
        if not layers:
            raise ValueError("dictionaries must hold at least one ConvDictionary")
        for i, layer in enumerate(layers, start=1):
            if not isinstance(layer, ConvDictionary):
                raise TypeError(f"dictionaries[{i - 1}] (D{i}) must be a ConvDictionary")
        for i in range(1, len(layers)):
            previous, layer = layers[i - 1], layers[i]
            if layer.spatial_ndim != previous.spatial_ndim:
                raise ValueError(f"D{i + 1} is {layer.spatial_ndim}-D but D{i} is "
                                 f"{previous.spatial_ndim}-D")
            if layer.dtype != previous.dtype:
                raise TypeError(f"D{i + 1} has dtype {layer.dtype} but D{i} has {previous.dtype}")
            if layer.n_channels != previous.n_atoms:
                raise ValueError(
                    f"D{i + 1} has {layer.n_channels} input channels but D{i} has "
                    f"{previous.n_atoms} atoms: they must match"
                )
        self._layers = tuple(layers)
        self._effective: dict[int, ConvDictionary] = {1: layers[0]}

    @property
    def layers(self) -> tuple[ConvDictionary, ...]:
        """``(D1, …, DK)``."""
        return self._layers

    @property
    def n_layers(self) -> int:
        """Depth ``K``."""
        return len(self._layers)

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64."""
        return self._layers[0].dtype

    @property
    def spatial_ndim(self) -> int:
        """1 or 2."""
        return self._layers[0].spatial_ndim

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i: int) -> ConvDictionary:
        """``model[i]`` is :math:`D_{i+1}` (0-based, like the list given)."""
        return self._layers[i]

    def __repr__(self) -> str:
        return "MLCSC([" + ", ".join(map(repr, self._layers)) + "])"

    def _check_layer(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 1 <= i <= len(self):
            raise ValueError(f"i must be a layer index in 1..{len(self)}, got {i!r}")
        return int(i)

    def effective(self, i: int) -> ConvDictionary:
        r"""The effective dictionary :math:`D^{(i)} = D_1 D_2 \cdots D_i` (not normalised).

        Its filters are full convolutions of the layer filters, of length
        :math:`n^{(i)} = n_1 + \dots + n_i - (i - 1)`; :math:`X = D^{(i)}\Gamma_i`.
        """
        i = self._check_layer(i)
        if i not in self._effective:
            self._effective[i] = self.effective(i - 1).compose(self._layers[i - 1])
        return self._effective[i]

    def synthesize(self, deepest, *, engine: str = "auto") -> list[np.ndarray]:
        r"""All layers from the deepest codes: ``[Γ_0 = X, Γ_1, …, Γ_K]``, ``Γ_{i-1} = D_iΓ_i``."""
        layers = [as_float_array("deepest", deepest, dtype=self.dtype)]
        check_finite("deepest", layers[0])
        for dictionary in reversed(self._layers):
            layers.append(dictionary.synthesize(layers[-1], engine=engine))
        return layers[::-1]

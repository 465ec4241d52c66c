"""DualityGap.problem_certificates: one certificate per independent problem of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import ConvDictionary
from mlverify.pursuits._certificates import DualityGap


@pytest.mark.parametrize("nonneg", [False, True])
def test_problem_certificates_are_the_single_problem_certificates(nonneg):
    rng = np.random.default_rng(2)
    D = ConvDictionary(rng.standard_normal((3, 2, 2, 3))).normalized()
    y = rng.standard_normal((2, 2, 2, 5, 6))
    codes = rng.standard_normal((2, 2, 3, 5, 6)) * (rng.random((2, 2, 3, 5, 6)) < 0.3)
    if nonneg:
        codes = np.abs(codes)
        codes[1, 0, 2, 1, 1] = -0.5  # one infeasible problem
    values = DualityGap(D, y, 0.4, nonneg=nonneg).problem_certificates(codes)
    flat_y, flat_codes = y.reshape(4, 2, 5, 6), codes.reshape(4, 3, 5, 6)
    for b in range(4):
        alone = DualityGap(D, flat_y[b], 0.4, nonneg=nonneg).certificates(flat_codes[b])
        for key in ("primal", "dual", "kkt"):
            np.testing.assert_allclose(values[key][b], alone[key], rtol=1e-12)
    assert np.isinf(values["primal"][2]) == nonneg
    empty = DualityGap(D, y[:0], 0.4).problem_certificates(codes[:0])
    assert all(v.shape == (0,) for v in empty.values())

"""DualityGap.problem_certificates: one certificate per independent problem of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from mlverify import ConvDictionary
from mlverify.pursuits._certificates import DualityGap


@pytest.mark.parametrize("restricted", [False, True])
@pytest.mark.parametrize("nonneg", [False, True])
def test_problem_certificates_are_the_single_problem_certificates(nonneg, restricted):
    """Per problem, the certificates of that problem alone; a problem that breaks the sign or
    the support constraint (and only that one) has an infinite primal."""
    rng = np.random.default_rng(2)
    D = ConvDictionary(rng.standard_normal((3, 2, 2, 3))).normalized()
    y = rng.standard_normal((2, 2, 2, 5, 6))
    support = rng.random((3, 5, 6)) < 0.6 if restricted else None
    codes = rng.standard_normal((2, 2, 3, 5, 6)) * (rng.random((2, 2, 3, 5, 6)) < 0.3)
    if nonneg:
        codes = np.abs(codes)
    if restricted:
        codes *= support
    bad = (1, 0) if nonneg else (0, 1)  # the flat problem 2 or 1 breaks a constraint
    if nonneg:
        codes[(*bad, 2, 1, 1)] = -0.5
    if restricted:
        codes[(*bad, *np.argwhere(~support)[0])] = 0.7
    kwargs = {"nonneg": nonneg, "support": support}
    values = DualityGap(D, y, 0.4, **kwargs).problem_certificates(codes)
    flat_y, flat_codes = y.reshape(4, 2, 5, 6), codes.reshape(4, 3, 5, 6)
    for b in range(4):
        alone = DualityGap(D, flat_y[b], 0.4, **kwargs).certificates(flat_codes[b])
        for key in ("primal", "dual", "kkt"):
            np.testing.assert_allclose(values[key][b], alone[key], rtol=1e-12)
    flat_bad = 2 * bad[0] + bad[1]
    assert list(np.isinf(values["primal"])) == [b == flat_bad and (nonneg or restricted)
                                                for b in range(4)]
    empty = DualityGap(D, y[:0], 0.4).problem_certificates(codes[:0])
    assert all(v.shape == (0,) for v in empty.values())

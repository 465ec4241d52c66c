"""Compute kernels: the only place with ``@njit`` (``cpu``) and the NumPy oracles (``reference``).

Kernels work on the canonical layout ``(B, channels, H, W)`` with filters ``(m, c, n1, n2)``
(1-D problems have ``H = n1 = 1``) and never import the pursuits.
"""

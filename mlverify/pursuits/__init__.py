"""Pursuits: one module per algorithm, one result type (:class:`PursuitResult`).

Pursuits call the model's operators and the kernels; they never import numba themselves.
"""

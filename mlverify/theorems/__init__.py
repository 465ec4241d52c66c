"""Executable theorems of THEORY.md §4: hypotheses + bound + check, and their registry."""

from ._base import Finding, Outcome, Theorem, get, register, registry

__all__ = ["Finding", "Outcome", "Theorem", "get", "register", "registry"]

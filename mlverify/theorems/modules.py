"""Imports every theorem module so that their theorems register (one module per paper)."""

from . import bounds  # noqa: F401

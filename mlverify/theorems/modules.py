"""The theorem modules, one per paper; importing them registers their theorems in this order."""

import importlib

#: Registration (and report) order: dictionary bounds, then the papers in THEORY.md §4 order.
MODULES = ("bounds", "wltg", "jmlr", "pdl", "mlbp", "hol", "adv")

for _name in MODULES:
    importlib.import_module(f"{__package__}.{_name}")

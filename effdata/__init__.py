"""effdata: efficient data use in deep learning.

Submodules load on first use (``effdata.data``, ``effdata.models``, ...), so ``import effdata`` stays fast.
"""
__version__ = "0.1.0"

import importlib as _importlib

_SUBMODULES = ("core", "data", "models", "train", "metrics", "features", "viz", "selection", "diffusion", "reweighting",
               "attacks", "at", "mpt", "red", "cli")

def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'effdata' has no attribute {name!r}")

def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))

"""Model registry: model name -> module and class, imported lazily.

A family plugs in by adding one line here; the harness, the CLI and the
analysis code never import a model module by name.
"""
from __future__ import annotations

import importlib

from ..model import Model

REGISTRY: dict[str, str] = {
    "locks": "mmbench.models.lockbench:LockBench",
    "pagealloc": "mmbench.models.pagealloc:PageAllocModel",
    "memmap": "mmbench.models.memmap:MemmapModel",
    "meminit": "mmbench.models.meminit:MemInitModel",
    "kernelpf": "mmbench.models.kernelpf:KernelPageFault",
    "hotplug": "mmbench.models.hotplug:HotplugModel",
    "cma": "mmbench.models.cma:CmaModel",
}


def get_model(name: str) -> Model:
    """An instance of the model registered as ``name`` (ValueError when unknown)."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (one of {', '.join(sorted(REGISTRY))})") from None
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)()

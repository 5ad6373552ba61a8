"""The contract between the harness and a model.

A model is one mechanism (a lock benchmark, the buddy allocator, LLFree, ...):
``@njit`` kernels over arrays plus a thin Python class that tells the harness
what arrays it needs and how to run a bounded batch.  The harness knows no model
by name; it is handed a :class:`Model` instance by the model registry
(:mod:`mmbench.models`).

Life of one sweep point (``workers`` = W)::

    parent:  arrays = arena(model.layout(p, W) + harness arrays)
             model.setup(arrays, p, W, seed)          # build the initial state
             model.compile(p)                         # compile / load cache, scratch arrays
             fork/spawn/thread W workers
    worker:  ctx = model.worker_init(arrays, p, w, W) # per-worker views, no spinning
             -- start barrier --
             while not stop: ops = model.step(ctx, n)  # bounded batch, returns ops done
             model.worker_finish(ctx)                 # e.g. give held pages back
    parent:  errors = model.check(arrays, p, W)       # invariants: [] when all hold
             extra = model.report(arrays, p, W)       # counters, histograms

``arrays`` is a dict name -> numpy array in shared memory.  Two harness arrays
are always present: ``ctl`` (see :mod:`mmbench.ctl`) and ``counters``, an int64
array of shape (W, model.counter_columns()) whose first columns are the lock
statistics of :mod:`mmbench.locks` and whose next columns are the model's own
``counter_names`` in order (column ``N_LOCK_COUNTERS + i``).

``step`` must return within milliseconds for any n the harness passes (it
calibrates n so that a batch takes ~2 ms) and must return early (any count) when
a lock or kernel barrier reports an abort.  ``step`` may return 0 while waiting
for a phase; a worker that returns 0 for longer than the watchdog timeout is
declared stuck.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ctl import LOCK_COUNTERS, N_LOCK_COUNTERS, counter_columns


class ModelNotRunnable(RuntimeError):
    """Raised by ``setup`` when this machine cannot run the point at all.

    The refusal is a result, not a crash (e.g. FLATMEM over a span whose memmap
    would not fit in memory): the harness records the point as not runnable,
    with this one-line reason, and the sweep goes on.
    """


@dataclass(frozen=True)
class Param:
    """One model parameter: its type, default and the range a workload file may use."""
    type: type                     # int, float, str or bool
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    help: str = ""

    def validate(self, name: str, value: Any) -> Any:
        """Return the value (ints accepted for floats) or raise ValueError naming the range."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is int and isinstance(value, bool) or not isinstance(value, self.type):
            raise ValueError(f"{name} must be {self.type.__name__}, got {type(value).__name__} {value!r}")
        if self.type is float and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.min is not None and value < self.min:
            raise ValueError(f"{name} must be >= {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise ValueError(f"{name} must be <= {self.max}, got {value!r}")
        return value

    def describe(self) -> str:
        if self.type is bool:
            return "boolean (true or false)"
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        lo = "-inf" if self.min is None else self.min
        hi = "inf" if self.max is None else self.max
        return f"{self.type.__name__} in [{lo}, {hi}]"


@dataclass(frozen=True)
class ArraySpec:
    name: str
    shape: tuple
    dtype: Any = np.int64


class Model:
    """Base class; subclasses set the class attributes and override the methods."""

    name: str = ""
    description: str = ""
    #: variant name -> parameter overrides (the variant is itself a parameter choice)
    variants: dict[str, dict[str, Any]] = {}
    #: parameter name -> Param
    params: dict[str, Param] = {}
    #: names of the model's own per-worker counters
    counter_names: tuple[str, ...] = ()
    #: "stream": ops are counted per batch; throughput is what the harness samples
    kind: str = "stream"

    # --- parameters -------------------------------------------------------
    def resolve(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults, then the variant's settings, then the workload's (validated)."""
        if variant not in self.variants:
            raise ValueError(f"unknown variant {variant!r} of model {self.name} "
                             f"(one of {', '.join(self.variants)})")
        p = {k: v.default for k, v in self.params.items()}
        p.update(self.variants[variant])
        for k, v in params.items():
            if k not in self.params:
                raise ValueError(f"unknown parameter {k!r} of model {self.name} "
                                 f"(one of {', '.join(self.params)})")
            p[k] = self.params[k].validate(k, v)
        self.validate(p)
        return p

    def validate(self, p: dict[str, Any]) -> None:
        """Cross-parameter checks; raise ValueError with one clear sentence."""

    def counter_columns(self) -> int:
        return counter_columns(len(self.counter_names))

    def counter_map(self) -> dict[str, int]:
        """Every reported counter name -> its column in the ``counters`` rows."""
        out = dict(LOCK_COUNTERS)
        out.update((n, N_LOCK_COUNTERS + i) for i, n in enumerate(self.counter_names))
        return out

    def counter_index(self, name: str) -> int:
        return N_LOCK_COUNTERS + self.counter_names.index(name)

    # --- life cycle -------------------------------------------------------
    def layout(self, p: dict, nworkers: int) -> list[ArraySpec]:
        raise NotImplementedError

    def setup(self, arrays: dict, p: dict, nworkers: int, seed: int) -> None:
        pass

    def compile(self, p: dict) -> None:
        """Compile (or load from cache) every kernel ``step`` will call, on scratch arrays."""

    def compile_key(self, p: dict) -> Any:
        """Points with equal keys compile the same kernels (the sweep compiles each key once,
        before its first point, in parallel processes).  Default: one set per model."""
        return None

    def worker_init(self, arrays: dict, p: dict, worker: int, nworkers: int) -> Any:
        return (arrays, p, worker, nworkers)

    def step(self, ctx: Any, n: int) -> int:
        raise NotImplementedError

    def worker_finish(self, ctx: Any) -> None:
        pass

    def check(self, arrays: dict, p: dict, nworkers: int) -> list[str]:
        return []

    def teardown(self, arrays: dict, p: dict) -> None:
        """Release whatever ``setup`` created outside the arena (private mappings, files).

        ``setup`` may put extra numpy arrays (e.g. views of its own mmap) into
        ``arrays``; process workers are forked, so they inherit such mappings.
        Called on every exit path of the point, after ``check`` and ``report``.
        """

    def report(self, arrays: dict, p: dict, nworkers: int) -> dict:
        """Extra per-point data: {"counters": {name: [per worker]}, "latency": {...}}.

        The harness already reports every column of ``counters`` by name; override
        to add derived figures or histograms.
        """
        return {}

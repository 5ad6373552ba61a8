"""How mmbench compiles kernels.

:data:`kernel` is the decorator for every compiled entry point that Python calls
(a model's ``step`` kernel, a probe): ``cache=True`` (compile once, load in
~ms afterwards), ``nogil=True`` (thread mode runs the same code) and no NRT.

Why no NRT: with Numba's reference-counting runtime on, every call from a
kernel to a helper that takes arrays (``spin_lock(lk, ...)``) is wrapped in
``NRT_incref``/``NRT_decref`` calls, which are themselves atomic read-modify-
writes.  Measured here (2-vCPU EPYC VM) an uncontended TTAS lock+unlock pair
cost 25 ns that way and 2.2 ns with the runtime off: the refcounts, not the
lock, were being measured.  The price: an entry kernel may not allocate arrays
(``np.empty`` inside); it is handed every array it uses.  Helpers keep plain
``njit(cache=True, nogil=True)`` and are compiled into their callers.
"""
import os

import numba
import numpy as np
from numba import njit

from . import SOURCE_HASH, _cache_base, jitcache

# Before any kernel is decorated (every module with kernels imports this one).
if not jitcache.install() and numba.config.CACHE_DIR == os.path.join(_cache_base(), "numba"):
    numba.config.CACHE_DIR = os.path.join(_cache_base(), f"numba-{SOURCE_HASH}")

kernel = njit(cache=True, nogil=True, _nrt=False)
#: a called function (its own machine code, shared by its callers)
helper = njit(cache=True, nogil=True, forceinline=False)
#: inlined by LLVM into every caller (``alwaysinline``), compiled and cached once
hot = njit(cache=True, nogil=True, forceinline=True)


@njit(nogil=True, inline="always")
def uidx(i):
    """An array index as unsigned: Numba then skips the negative-index wraparound (a
    compare, a mask and an add on the address of every access, on the critical path of a
    list walk).  Measured here: a pcp list del+add pair 5.9 ns with signed indices, 1.9 ns
    with unsigned ones.  Only for indices known to be >= 0 (pfns after the -1 checks)."""
    return np.uint64(i)

"""mmbench: a multiprocess scalability benchmark suite for Linux memory-management designs."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__version__ = "0.1.0"


def _source_hash() -> str:
    """Hash of every module of the package.

    Numba's on-disk cache is keyed on the decorated function's own file only, so an
    edit to an imported module (the atomics, the locks) would leave stale machine
    code in use.  Keying the cache directory on all sources makes any edit a miss.
    """
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


SOURCE_HASH = _source_hash()


def _cache_base() -> str:
    return os.environ.get("MMBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmbench")


os.environ.setdefault("NUMBA_NUM_THREADS", "1")
if "NUMBA_CACHE_DIR" not in os.environ:
    # One directory serves every version of the sources: mmbench.jit installs a cache locator
    # that stamps each kernel with its file and its import closure (mmbench.jitcache), and
    # falls back to a directory per package hash where Numba lacks the hook.
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(_cache_base(), "numba")
    if "numba" in sys.modules:  # imported before us: its config is already read
        sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

"""Numba's on-disk cache, keyed on what a kernel was compiled from.

Numba stamps a cached function with the hash of its own file only: an edit to a module it
imports (the atomics, the locks, the zone) leaves stale machine code in use.  mmbench used to
key the whole cache directory on every source of the package, so any edit, even to the
plotting code, recompiled every kernel (tens of seconds per family).

This installs a cache locator that stamps a function with the hash of its file *and of every
mmbench module that file imports*, transitively (:func:`mmbench.sources.closure`, read with
``ast``).  An edit to ``pcp.py`` therefore invalidates the kernels of the files that import it
(the pcp drivers, hotplug, cma), and nothing else; the buddy and LLFree drivers, the lock
family and the memmap kernels load from the cache as before.  Files outside mmbench and its
generated drivers (tests) keep Numba's own locators.

Numba's locator list is internal API; if it is missing, :func:`install` returns False and the
caller falls back to the old per-package-hash directory.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

_PKG_ROOT = Path(__file__).resolve().parent
_EXTRA_ROOTS: list[Path] = []      # generated driver directories (mmbench.drivers)


def add_root(path) -> None:
    """Files under ``path`` (generated drivers) are stamped like the package's own."""
    p = Path(path).resolve()
    if p not in _EXTRA_ROOTS:
        _EXTRA_ROOTS.append(p)


def _covered(py_file: str) -> bool:
    p = Path(py_file).resolve()
    return any(p.is_relative_to(r) for r in (_PKG_ROOT, *_EXTRA_ROOTS))


@functools.lru_cache(maxsize=None)
def _stamp(py_file: str, mtime: float, size: int) -> str:
    from . import sources
    path = Path(py_file).resolve()
    h = hashlib.sha256(path.read_bytes())
    if path.is_relative_to(_PKG_ROOT):
        rel = path.relative_to(_PKG_ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        roots = [".".join(["mmbench", *parts])]
    else:
        roots = sorted(sources.file_imports(path))
    for m in sources.closure(roots):
        f = sources.module_file(m)
        if f is not None and f.resolve() != path:
            h.update(m.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def source_stamp(py_file: str) -> str:
    """The hash a kernel defined in ``py_file`` is cached under (file + its import closure)."""
    st = os.stat(py_file)
    return _stamp(str(Path(py_file).resolve()), st.st_mtime, st.st_size)


def install() -> bool:
    try:
        from numba.core import caching
        base = caching.UserProvidedCacheLocator
        locators = caching.CacheImpl._locator_classes
    except (ImportError, AttributeError):
        return False

    class ClosureStampLocator(base):
        """NUMBA_CACHE_DIR, stamped with the file's import closure (see the module doc).

        The stamp is taken when the function is decorated (its module is being imported), so
        a source edited while a run compiles cannot stamp old machine code as new."""

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._stamp = source_stamp(py_file)

        def get_source_stamp(self):
            return self._stamp

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _covered(py_file):
                return None
            return super().from_function(py_func, py_file)

    if not any(c.__name__ == "ClosureStampLocator" for c in locators):
        locators.insert(0, ClosureStampLocator)
    return True

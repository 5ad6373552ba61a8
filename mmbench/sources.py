"""Which source files a measurement depends on, and their hash.

``mmbench run --resume`` must not glue points measured by one model onto points
measured by an edited one.  ``mmbench.SOURCE_HASH`` covers the whole package (a
README-only commit would change nothing, but an edit to the plotting code would
refuse a resume); this follows the imports instead: the model's module, every
``mmbench`` module it imports (transitively, read with ``ast``, nothing
imported), and the harness that measures it.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

_PKG_ROOT = Path(__file__).resolve().parent
_PKG = "mmbench"
# What measures every model, whatever it imports.
MEASUREMENT_MODULES = ("mmbench.harness", "mmbench.probes", "mmbench.shm", "mmbench.ctl")


def module_file(name: str) -> Path | None:
    """The file of mmbench module ``name`` (None outside the package)."""
    parts = name.split(".")
    if parts[0] != _PKG:
        return None
    base = _PKG_ROOT.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(name: str, path: Path) -> set[str]:
    """The mmbench modules ``path`` (module ``name``) imports, at any level of the file."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # "from . import x" names modules
    return {m for m in out if m.split(".")[0] == _PKG and module_file(m) is not None}


def file_imports(path: Path) -> set[str]:
    """The mmbench modules a file outside the package (a generated driver) imports."""
    return _imports("", Path(path))


def closure(roots) -> list[str]:
    """Every mmbench module reachable by imports from ``roots`` (sorted), roots included."""
    seen: set[str] = set()
    todo = [r for r in roots]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        path = module_file(m)
        if path is None:
            continue
        seen.add(m)
        todo.extend(_imports(m, path) - seen)
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def model_source_hash(model_name: str) -> str:
    """16 hex digits over the sources that define and measure model ``model_name``."""
    from .models import REGISTRY
    try:
        module = REGISTRY[model_name].split(":")[0]
    except KeyError:
        raise ValueError(f"unknown model {model_name!r}") from None
    h = hashlib.sha256()
    for m in closure([module, *MEASUREMENT_MODULES]):
        path = module_file(m)
        h.update(m.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]

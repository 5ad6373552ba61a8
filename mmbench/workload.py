"""Workload files (``workloads/*.toml``): load, validate, expand the grid into sweep points.

See workloads/README.md for the format.  Validation is strict because a typo in
a sweep silently measures the wrong thing: an unknown key, a wrong type or an
out-of-range value is a :class:`WorkloadError` whose one-line message names the
file, the key and what is allowed.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOP_KEYS = {"name", "description", "model", "version", "quick", "params", "grid", "run",
            "quick-overrides", "notes"}
RUN_KEYS = {"duration": (float, 0.01, 3600.0), "warmup": (float, 0.0, 600.0),
            "interval": (float, 0.001, 60.0), "repeat": (int, 1, 1000),
            "seed": (int, 0, 2**63 - 1), "watchdog": (float, 0.5, 3600.0)}
RUN_DEFAULTS = {"duration": 2.0, "warmup": 0.5, "interval": 0.1, "repeat": 1, "seed": 1,
                "watchdog": 10.0}


class WorkloadError(ValueError):
    """Bad workload file or command-line value; the message is one line."""


@dataclass
class Point:
    variant: str
    params: dict          # resolved: defaults + variant + workload values
    given: dict           # only what the workload set (for labels)
    workers: int


@dataclass
class Workload:
    name: str
    description: str
    model: str
    version: int
    quick: bool
    params: dict
    grid: dict
    run: dict
    quick_overrides: dict
    file: str | None = None
    source_hash: str = ""
    notes: list = field(default_factory=list)   # how to read the results (shown in reports)

    def meta(self) -> dict:
        out = {"name": self.name, "description": self.description, "model": self.model,
               "version": self.version, "file": self.file, "source_hash": self.source_hash}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def workloads_dir() -> Path:
    """The workloads folder: $MMBENCH_WORKLOADS, else the one beside the package."""
    env = os.environ.get("MMBENCH_WORKLOADS")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parent.parent / "workloads"
    return beside if beside.is_dir() else Path.cwd() / "workloads"


def _type_name(t) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list", dict: "a table"}.get(t, t.__name__)


def _need(where: str, key: str, value: Any, t) -> Any:
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (t is int and isinstance(value, bool)) or not isinstance(value, t):
        raise WorkloadError(f"{where}: {key} must be {_type_name(t)}, got {value!r}")
    return value


def parse_workers(values, where: str, cpus: int) -> list[int]:
    """Worker counts from ints and "max" (= CPUs this process may use); sorted, unique."""
    if not isinstance(values, list) or not values:
        raise WorkloadError(f"{where}: workers must be a non-empty list of integers or \"max\"")
    out = []
    for v in values:
        if v == "max":
            out.append(cpus)
        elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096:
            out.append(v)
        else:
            raise WorkloadError(f"{where}: workers entries must be integers in [1, 4096] or \"max\", got {v!r}")
    return sorted(set(out))


def load(path: str | os.PathLike) -> Workload:
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise WorkloadError(f"{where}: cannot read: {e.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise WorkloadError(f"{where}: not valid TOML: {e}") from None
    for k in doc:
        if k not in TOP_KEYS:
            raise WorkloadError(f"{where}: unknown key {k!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    for k in ("name", "description", "model"):
        if k not in doc:
            raise WorkloadError(f"{where}: missing key {k!r}")
        _need(where, k, doc[k], str)
    if doc["name"] != path.stem:
        raise WorkloadError(f"{where}: name {doc['name']!r} must equal the file name {path.stem!r}")
    version = _need(where, "version", doc.get("version", 1), int)
    quick = _need(where, "quick", doc.get("quick", False), bool)
    params = _need(where, "params", doc.get("params", {}), dict)
    grid = _need(where, "grid", doc.get("grid", {}), dict)
    run = _need(where, "run", doc.get("run", {}), dict)
    qo = _need(where, "quick-overrides", doc.get("quick-overrides", {}), dict)
    for k in qo:
        if k not in ("grid", "run", "params"):
            raise WorkloadError(f"{where}: unknown key quick-overrides.{k} (allowed: grid, params, run)")
        _need(where, f"quick-overrides.{k}", qo[k], dict)
    notes = _need(where, "notes", doc.get("notes", []), list)
    if not all(isinstance(n, str) for n in notes):
        raise WorkloadError(f"{where}: notes must be a list of strings")
    wl = Workload(doc["name"], doc["description"], doc["model"], version, quick, params, grid,
                  run, qo, file=str(path), source_hash=hashlib.sha256(raw).hexdigest()[:16],
                  notes=notes)
    validate(wl)
    return wl


def _check_run(where: str, run: dict) -> dict:
    out = {}
    for k, v in run.items():
        if k not in RUN_KEYS:
            raise WorkloadError(f"{where}: unknown key run.{k} (allowed: {', '.join(RUN_KEYS)})")
        t, lo, hi = RUN_KEYS[k]
        v = _need(where, f"run.{k}", v, t)
        if not lo <= v <= hi:
            raise WorkloadError(f"{where}: run.{k} must be in [{lo}, {hi}], got {v!r}")
        out[k] = v
    return out


def validate(wl: Workload) -> None:
    """Check every key against the model (imports the model module, not numba kernels)."""
    from .models import get_model
    where = wl.file or wl.name
    try:
        model = get_model(wl.model)
    except ValueError as e:
        raise WorkloadError(f"{where}: model: {e}") from None
    _check_run(where, wl.run)
    _check_run(where + " [quick-overrides]", wl.quick_overrides.get("run", {}))
    for section, grid in (("grid", wl.grid), ("quick-overrides.grid", wl.quick_overrides.get("grid", {}))):
        for k, vals in grid.items():
            if not isinstance(vals, list) or not vals:
                raise WorkloadError(f"{where}: {section}.{k} must be a non-empty list")
            if k == "workers":
                parse_workers(vals, where, 1)
            elif k == "variant":
                for v in vals:
                    if v not in model.variants:
                        raise WorkloadError(f"{where}: {section}.variant {v!r} is not a variant of model "
                                            f"{wl.model} (one of {', '.join(model.variants)})")
            elif k not in model.params:
                raise WorkloadError(f"{where}: {section}.{k} is not a parameter of model {wl.model} "
                                    f"(one of variant, workers, {', '.join(model.params)})")
            else:
                for v in vals:
                    _validate_param(where, f"{section}.{k}", model, k, v)
    for section, params in (("params", wl.params), ("quick-overrides.params", wl.quick_overrides.get("params", {}))):
        for k, v in params.items():
            if k not in model.params:
                raise WorkloadError(f"{where}: {section}.{k} is not a parameter of model {wl.model} "
                                    f"(one of {', '.join(model.params)})")
            _validate_param(where, f"{section}.{k}", model, k, v)


def _validate_param(where, key, model, k, v):
    try:
        model.params[k].validate(k, v)
    except ValueError as e:
        raise WorkloadError(f"{where}: {key}: {e} (allowed: {model.params[k].describe()})") from None


def find(name: str) -> Path:
    """Path of a workload by name or file path."""
    p = Path(name)
    if p.suffix == ".toml" and p.exists():
        return p
    cand = workloads_dir() / f"{name}.toml"
    if cand.exists():
        return cand
    known = ", ".join(sorted(q.stem for q in workloads_dir().glob("*.toml")))
    raise WorkloadError(f"unknown workload {name!r} (known: {known or 'none'})")


def all_workloads() -> list[Workload]:
    return [load(p) for p in sorted(workloads_dir().glob("*.toml"))]


def expand(wl: Workload, cpus: int, quick: bool = False, workers: list[int] | None = None,
           variants: list[str] | None = None, overrides: dict | None = None) -> list[Point]:
    """The sweep points of a workload: variants × grid parameters × worker counts.

    Points are ordered variant-major, then parameters, then workers, so that a
    series (one variant over worker counts) is contiguous.  The model sees the
    sweep's largest worker count as ``sweep_max_workers`` when it declares it
    (LLFree's per-worker share A = F / (T_max · 2 · 2^order)).
    """
    from .models import get_model
    model = get_model(wl.model)
    grid = dict(wl.grid)
    params = dict(wl.params)
    if quick:
        grid.update(wl.quick_overrides.get("grid", {}))
        params.update(wl.quick_overrides.get("params", {}))
    for k, vals in (overrides or {}).items():  # --set: sweep these values instead
        params.pop(k, None)
        grid[k] = vals
    vlist = variants or grid.pop("variant", None) or list(model.variants)
    grid.pop("variant", None)
    wlist = workers or parse_workers(grid.pop("workers", [1, "max"]), wl.file or wl.name, cpus)
    grid.pop("workers", None)
    keys = list(grid)
    points = []
    tmax = max(wlist)
    for v in vlist:
        for combo in itertools.product(*(grid[k] for k in keys)):
            given = dict(params)
            given.update(zip(keys, combo))
            full = dict(given)
            if "sweep_max_workers" in model.params and "sweep_max_workers" not in full:
                full["sweep_max_workers"] = tmax
            try:
                resolved = model.resolve(v, full)
            except ValueError as e:
                raise WorkloadError(f"{wl.file or wl.name}: {e}") from None
            for w in wlist:
                points.append(Point(v, resolved, given, w))
    return points


def run_settings(wl: Workload, quick: bool, overrides: dict) -> dict:
    out = dict(RUN_DEFAULTS)
    out.update(_check_run(wl.file or wl.name, wl.run))
    if quick:
        out.update(_check_run(wl.file or wl.name, wl.quick_overrides.get("run", {})))
    out.update({k: v for k, v in overrides.items() if v is not None})
    return out


def parse_set(items: list[str], model_name: str) -> dict:
    """``--set key=v1,v2`` options -> {key: [values]} typed and validated against the model."""
    from .models import get_model
    model = get_model(model_name)
    out: dict = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text:
            raise WorkloadError(f"--set {item!r}: expected KEY=VALUE[,VALUE...]")
        if key not in model.params:
            raise WorkloadError(f"--set {key}: not a parameter of model {model_name} "
                                f"(one of {', '.join(model.params)})")
        prm = model.params[key]
        vals = []
        for tok in text.split(","):
            tok = tok.strip()
            try:
                if prm.type is bool:
                    if tok.lower() not in ("true", "false", "1", "0"):
                        raise ValueError
                    v = tok.lower() in ("true", "1")
                else:
                    v = prm.type(tok)
            except ValueError:
                raise WorkloadError(f"--set {key}: {tok!r} is not {_type_name(prm.type)} "
                                    f"(allowed: {prm.describe()})") from None
            _validate_param("--set", key, model, key, v)
            vals.append(v)
        out[key] = vals
    return out

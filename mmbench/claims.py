"""Claims: published results the models must reproduce, checked by ``mmbench reproduce``.

A claim is a small TOML file (``workloads/claims/*.toml``): where the statement comes
from (paper, figure, kernel commit), the sweep that reproduces it, and one or more checks
on the result's points.  ``mmbench reproduce`` runs the sweep (or reads ``--from`` files)
and prints one line per claim: PASS, FAIL, or NEEDS N CPUS when the box cannot run it
(such a claim never passes by default).

Checks (each names a ``metric`` of a point, see :func:`metric`):

* ``value``   the metric of the selected points is ``expect`` within a relative
  ``tolerance``, or within [``min``, ``max``];
* ``ratio``   metric(``num``) / metric(``den``) within [``min``, ``max``];
* ``ranking`` the metrics of the ``order`` selections are strictly decreasing;
* ``flat``    over the selected points' worker counts from ``from_workers`` up, every value is
  within ``tolerance`` of the first (a curve that has stopped scaling);
* ``speedup`` the speedup (metric at ``workers`` over metric at 1 worker) of ``num`` divided
  by that of ``den``, within [``min``, ``max``]: two curves that scale alike.

A selection is a table of point fields: ``variant``, ``workers`` (an integer or "max"),
``mode``, ``result`` (the result's workload name, for claims with several sweeps), or any
parameter name.  Several matching points (repeats) give their median.  ``sweep`` is one
table, or an array of tables (``[[sweep]]``) whose results are checked together.
"""
from __future__ import annotations

import math
import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .checks import UsageError

TOP = {"name", "title", "source", "published", "needs_cpus", "sweep", "check"}
SWEEP = {"workload", "variant", "workers", "set", "duration", "warmup", "interval", "repeat",
         "seed", "mode"}
KINDS = {"value", "ratio", "ranking", "flat", "speedup"}
CHECK = {"kind", "what", "metric", "per", "select", "expect", "tolerance", "min", "max", "num",
         "den", "order", "from_workers", "published", "workers"}


def claims_dir() -> Path:
    from .workload import workloads_dir
    return workloads_dir() / "claims"


@dataclass
class Claim:
    name: str
    title: str
    source: str
    needs_cpus: int
    sweeps: list                      # one dict per sweep (workload + run options)
    checks: list
    file: str
    published: str = ""

    @property
    def workloads(self) -> list[str]:
        return [s["workload"] for s in self.sweeps]


@dataclass
class Verdict:
    claim: Claim
    status: str                       # PASS, FAIL, NEEDS
    lines: list = field(default_factory=list)
    missing: bool = False             # a check found no point to read (not covered)


def _err(where, msg):
    raise UsageError(f"{where}: {msg}")


def load(path) -> Claim:
    path = Path(path)
    where = str(path)
    try:
        doc = tomllib.loads(path.read_bytes().decode())
    except OSError as e:
        _err(where, f"cannot read: {e.strerror or e}")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        _err(where, f"not valid TOML: {' '.join(str(e).split())}")
    for k in doc:
        if k not in TOP:
            _err(where, f"unknown key {k!r} (allowed: {', '.join(sorted(TOP))})")
    for k in ("name", "title", "source", "sweep", "check"):
        if k not in doc:
            _err(where, f"missing key {k!r}")
    if doc["name"] != path.stem:
        _err(where, f"name {doc['name']!r} must equal the file name {path.stem!r}")
    sweeps = doc["sweep"] if isinstance(doc["sweep"], list) else [doc["sweep"]]
    for sw in sweeps:
        if not isinstance(sw, dict) or "workload" not in sw:
            _err(where, "sweep must be a table (or [[sweep]] tables) with a workload")
        for k in sw:
            if k not in SWEEP:
                _err(where, f"unknown key sweep.{k} (allowed: {', '.join(sorted(SWEEP))})")
    checks = doc["check"]
    if not isinstance(checks, list) or not checks:
        _err(where, "check must be a non-empty array of tables ([[check]])")
    for i, c in enumerate(checks):
        if not isinstance(c, dict):
            _err(where, f"check[{i}] is not a table")
        for k in c:
            if k not in CHECK:
                _err(where, f"unknown key check[{i}].{k} (allowed: {', '.join(sorted(CHECK))})")
        if c.get("kind") not in KINDS:
            _err(where, f"check[{i}].kind must be one of {', '.join(sorted(KINDS))}, "
                        f"got {c.get('kind')!r}")
        if "metric" not in c:
            _err(where, f"check[{i}] has no metric")
        need = {"value": ("select",), "ratio": ("num", "den"), "ranking": ("order",),
                "flat": ("select", "tolerance"), "speedup": ("num", "den", "workers")}[c["kind"]]
        for k in need:
            if k not in c:
                _err(where, f"check[{i}] ({c['kind']}) needs {k}")
        if c["kind"] == "value" and "expect" not in c and "min" not in c and "max" not in c:
            _err(where, f"check[{i}] (value) needs expect or min/max")
    needs = doc.get("needs_cpus", 1)
    if not isinstance(needs, int) or isinstance(needs, bool) or not 1 <= needs <= 4096:
        _err(where, f"needs_cpus must be an integer in [1, 4096], got {needs!r}")
    return Claim(doc["name"], doc["title"], doc["source"], needs, sweeps, checks, where,
                 doc.get("published", ""))


def find(names) -> list[Claim]:
    if not names:
        files = sorted(claims_dir().glob("*.toml"))
        if not files:
            raise UsageError(f"no claim files in {claims_dir()}")
        return [load(f) for f in files]
    out = []
    for n in names:
        p = Path(n)
        if p.suffix == ".toml":
            out.append(load(p))
            continue
        cand = claims_dir() / f"{n}.toml"
        if not cand.exists():
            known = ", ".join(sorted(q.stem for q in claims_dir().glob("*.toml")))
            raise UsageError(f"unknown claim {n!r} (known: {known or 'none'})")
        out.append(load(cand))
    return out


# --------------------------------------------------------------------------- evaluation

def metric(point: dict, name: str):
    """One number of a point: ``throughput`` (median ops/s), ``ops`` (total ops),
    ``jain``, ``counter:NAME`` (summed over workers), ``extra:KEY`` or ``extra:KEY[i]``."""
    s = point.get("summary")
    if name == "throughput":
        return None if s is None else s["ops_per_s"]["median"]
    if name == "ops":
        return None if s is None else s["total_ops"]
    if name == "jain":
        return None if s is None else s["jain"]
    kind, _, key = name.partition(":")
    if kind == "counter":
        v = point.get("counters", {}).get(key)
        return None if v is None else float(sum(v))
    if kind == "extra":
        idx = None
        if key.endswith("]") and "[" in key:
            key, _, i = key[:-1].partition("[")
            idx = int(i)
        v = (point.get("extra") or {}).get(key)
        if idx is not None:
            if not isinstance(v, list) or not v or not -len(v) <= idx < len(v):
                return None
            v = v[idx]
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    raise UsageError(f"unknown metric {name!r} (throughput, ops, jain, counter:NAME, extra:KEY)")


def _matches(point, sel: dict, maxw: int) -> bool:
    for k, want in sel.items():
        if k == "workers":
            got = point["workers"]
            want = maxw if want == "max" else want
        elif k in ("variant", "mode"):
            got = point[k]
        elif k == "result":
            got = point.get("_result")
        else:
            got = point.get("params", {}).get(k)
        if got != want:
            return False
    return True


def _value(points, sel, check, maxw):
    vals = []
    for p in points:
        if p.get("error") or not _matches(p, sel, maxw):
            continue
        v = metric(p, check["metric"])
        if v is not None and "per" in check:
            d = metric(p, check["per"])
            v = v / d if d else None
        if v is not None and math.isfinite(v):
            vals.append(v)
    return statistics.median(vals) if vals else None


def _sel_label(sel):
    return ",".join(f"{k}={v}" for k, v in sel.items())


def _g(x):
    return "-" if x is None else f"{x:.4g}"


def evaluate(claim: Claim, docs: list[dict]) -> Verdict:
    """Check ``claim`` against result documents (points of its sweep's workload)."""
    points = [dict(p, _result=d["workload"]["name"]) for d in docs
              if d["workload"]["name"] in claim.workloads for p in d["points"]]
    v = Verdict(claim, "PASS")
    absent = [w for w in claim.workloads if not any(p["_result"] == w for p in points)]
    if absent:
        v.status = "FAIL"
        v.missing = True
        v.lines.append(f"no points of workload {absent[0]} in the results")
        return v
    maxw = max(p["workers"] for p in points)
    for c in claim.checks:
        what = c.get("what", c["metric"])
        ok, text = _check(points, c, maxw)
        pub = f"; published: {c['published']}" if c.get("published") else ""
        v.lines.append(f"{'ok  ' if ok else 'FAIL'} {what}: {text}{pub}")
        if not ok:
            v.status = "FAIL"
            v.missing |= text.startswith("no value") or text.startswith("needs at least") \
                or text.startswith("a worker count has no value")
    return v


def _check(points, c, maxw):
    kind = c["kind"]
    if kind == "value":
        x = _value(points, c["select"], c, maxw)
        if x is None:
            return False, f"no value for {_sel_label(c['select'])}"
        if "expect" in c:
            tol = c.get("tolerance", 0.05)
            ok = abs(x - c["expect"]) <= tol * abs(c["expect"])
            return ok, f"{_g(x)} (expected {_g(c['expect'])} ± {tol:.0%})"
        lo, hi = c.get("min", -math.inf), c.get("max", math.inf)
        return lo <= x <= hi, f"{_g(x)} (allowed [{_g(lo)}, {_g(hi)}])"
    if kind == "ratio":
        a = _value(points, c["num"], c, maxw)
        b = _value(points, c["den"], c, maxw)
        if a is None or b is None or b == 0:
            return False, f"no value for {_sel_label(c['num'] if a is None else c['den'])}"
        r = a / b
        lo, hi = c.get("min", -math.inf), c.get("max", math.inf)
        return lo <= r <= hi, (f"{_sel_label(c['num'])} / {_sel_label(c['den'])} = {_g(r)} "
                               f"(allowed [{_g(lo)}, {_g(hi)}])")
    if kind == "ranking":
        vals = [(_sel_label(s), _value(points, s, c, maxw)) for s in c["order"]]
        missing = [l for l, x in vals if x is None]
        if missing:
            return False, f"no value for {missing[0]}"
        ok = all(vals[i][1] > vals[i + 1][1] for i in range(len(vals) - 1))
        return ok, " > ".join(f"{l} {_g(x)}" for l, x in vals) if ok else \
            "not in the published order: " + ", ".join(f"{l} {_g(x)}" for l, x in vals)
    if kind == "speedup":
        n = c["workers"]
        vals = {}
        for side in ("num", "den"):
            one = _value(points, dict(c[side], workers=1), c, maxw)
            many = _value(points, dict(c[side], workers=n), c, maxw)
            if one is None or many is None or one == 0:
                return False, f"no value for {_sel_label(c[side])} at 1 and {n} workers"
            vals[side] = many / one
        r = vals["num"] / vals["den"]
        lo, hi = c.get("min", -math.inf), c.get("max", math.inf)
        return lo <= r <= hi, (f"speedup at {n} workers {_sel_label(c['num'])} "
                               f"{_g(vals['num'])}x / {_sel_label(c['den'])} {_g(vals['den'])}x "
                               f"= {_g(r)} (allowed [{_g(lo)}, {_g(hi)}])")
    # flat
    ws = sorted({p["workers"] for p in points if _matches(p, c["select"], maxw)
                 and p["workers"] >= c.get("from_workers", 1)})
    if len(ws) < 2:
        return False, "needs at least two worker counts"
    series = [(w, _value(points, dict(c["select"], workers=w), c, maxw)) for w in ws]
    if any(x is None for _, x in series):
        return False, "a worker count has no value"
    first = series[0][1]
    tol = c["tolerance"]
    ok = all(abs(x - first) <= tol * abs(first) for _, x in series)
    return ok, (", ".join(f"{w}: {_g(x)}" for w, x in series)
                + f" (flat within {tol:.0%} of the first)")

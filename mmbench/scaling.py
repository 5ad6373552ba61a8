"""Scaling of one series over worker counts: speedup, efficiency and the USL fit.

A *point* is one sweep point, identified by (workload, variant, params, mode,
workers); its repeats and per-interval samples are its repeated samples.  A
*series* is the same identity without ``workers``.  Throughput X(N) of a point is
the harmonic mean of its per-interval rates (total ops of all workers in an
interval / interval length), pooled over repeats: rates are averaged
harmonically (mmtests).

Gunther's Universal Scalability Law, X(N) = lambda N / (1 + sigma (N-1) +
kappa N (N-1)), separates contention (sigma: the serial fraction, e.g. time
under ``zone->lock``) from coherency (kappa: cache-line ping-pong that grows with
pairs of CPUs).  Confidence intervals come from a seeded bootstrap that resamples
the per-interval rates of every worker count and refits.

This module reads result documents only; it never runs a benchmark.  scipy is
imported lazily.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

try:  # the shared error type; CLI maps it to exit code 2
    from .results import ResultError as AnalysisError
except ImportError:  # pragma: no cover - results.py not present yet
    class AnalysisError(ValueError):
        """Unusable input to an analysis (unreadable, invalid, nothing in common)."""

USL_MIN_WORKER_COUNTS = 3
USL_NEEDS = "the USL fit needs at least three worker counts"
# Fitted values below these are numerical zeros at the bound (kappa 1e-12: peak beyond 1e6 workers).
SIGMA_ZERO = 1e-9
KAPPA_ZERO = 1e-12


# --------------------------------------------------------------------------- loading

def load(src: Any) -> tuple[dict, str]:
    """Return (document, name) for a result path or an already-loaded document."""
    if isinstance(src, dict):
        try:
            from .results import upgrade, validate
        except ImportError:  # pragma: no cover
            validate = None
        if validate is not None:
            try:
                upgrade(src, "<document>")   # an in-memory document of an older version
                validate(src)
            except AnalysisError as e:
                raise AnalysisError(f"<document>: {e}") from None
        _check_doc(src, "<document>")
        return src, str(src.get("workload", {}).get("name", "<document>"))
    path = Path(src)
    try:
        from .results import read_result  # validates against the schema
    except ImportError:  # pragma: no cover - results.py not present yet
        read_result = None
    if read_result is not None:
        doc = read_result(path)
    else:  # pragma: no cover
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise AnalysisError(f"{path}: cannot read result: {e}") from None
    _check_doc(doc, str(path))
    return doc, path.stem


def load_all(srcs: Iterable[Any]) -> list[tuple[dict, str]]:
    out = [load(s) for s in srcs]
    if not out:
        raise AnalysisError("no result files given")
    return out


def _check_doc(doc: Any, where: str) -> None:
    """The fields the analyses use; results.validate checks the full schema."""
    if not isinstance(doc, dict) or doc.get("format") != "mmbench-result":
        raise AnalysisError(f"{where}: not an mmbench result document")
    if not isinstance(doc.get("workload"), dict) or "name" not in doc["workload"]:
        raise AnalysisError(f"{where}: result has no workload name")
    pts = doc.get("points")
    if not isinstance(pts, list):
        raise AnalysisError(f"{where}: result has no points list")
    for i, p in enumerate(pts):
        try:
            t = p["interval_times"]
            s = p["samples"]
            p["variant"], p["workers"]
        except (KeyError, TypeError):
            raise AnalysisError(f"{where}: point {i} lacks variant/workers/samples/interval_times") from None
        if len(t) != len(s):
            raise AnalysisError(f"{where}: point {i}: {len(s)} samples for {len(t)} intervals")
        if t and min(t) <= 0:
            raise AnalysisError(f"{where}: point {i}: non-positive interval time")


# --------------------------------------------------------------------------- points

class PointKey(NamedTuple):
    workload: str
    variant: str
    params: str          # canonical JSON of the params dict
    mode: str
    workers: int

    @property
    def series(self) -> "SeriesKey":
        return SeriesKey(self.workload, self.variant, self.params, self.mode)

    def label(self, vary: set[str] | None = None) -> str:
        return f"{self.series.label(vary=vary)} N={self.workers}"


class SeriesKey(NamedTuple):
    workload: str
    variant: str
    params: str
    mode: str

    def label(self, with_workload: bool = False, vary: set[str] | None = None) -> str:
        """variant, params (only those in ``vary`` when given), and a non-default mode."""
        parts = [self.variant]
        parts += [f"{k}={v}" for k, v in json.loads(self.params).items()
                  if vary is None or k in vary]
        if self.mode != "process":
            parts.append(f"({self.mode})")
        s = " ".join(parts)
        return f"{self.workload}: {s}" if with_workload else s


def varying_params(keys: Iterable[PointKey | SeriesKey]) -> set[str]:
    """Parameter names worth a place in a label: those whose value differs between points of
    the same workload and variant (a value fixed by the variant says nothing new)."""
    by: dict[tuple[str, str], list[dict]] = {}
    for k in keys:
        by.setdefault((k.workload, k.variant), []).append(json.loads(k.params))
    out: set[str] = set()
    for plist in by.values():
        names = {n for p in plist for n in p}
        out |= {n for n in names if len({json.dumps(p.get(n, None)) for p in plist}) > 1}
    return out


def point_key(doc: dict, p: dict) -> PointKey:
    return PointKey(doc["workload"]["name"], str(p["variant"]),
                    json.dumps(p.get("params", {}), sort_keys=True),
                    str(p.get("mode", "process")), int(p["workers"]))


def interval_rates(p: dict) -> np.ndarray:
    """Per-interval throughput of all workers together, ops/s."""
    t = np.asarray(p["interval_times"], dtype=float)
    ops = np.array([float(np.sum(s)) for s in p["samples"]])
    return ops / t


def per_worker_rates(p: dict) -> np.ndarray:
    s = np.asarray(p["samples"], dtype=float)
    if s.ndim != 2:
        return np.zeros(0)
    return s.sum(axis=0) / float(np.sum(p["interval_times"]))


def hmean(x: np.ndarray) -> float:
    """Harmonic mean of rates; 0 when any rate is 0 (a stalled interval)."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return math.nan
    if np.any(x <= 0):
        return 0.0
    return float(x.size / np.sum(1.0 / x))


@dataclass
class PointData:
    """One point pooled over its repeats (and over files holding repeats of it)."""
    key: PointKey
    model: str
    rates: list[np.ndarray] = field(default_factory=list)       # per repeat
    per_worker: list[np.ndarray] = field(default_factory=list)  # per repeat, ops/s
    oversubscribed: bool = False
    counters: dict[str, float] = field(default_factory=dict)    # summed over workers+repeats
    total_ops: float = 0.0
    latency: dict[str, np.ndarray] = field(default_factory=dict)   # op -> log2 bucket counts
    latency_base: dict[str, int] = field(default_factory=dict)     # op -> bucket_log2_base
    extra: list[dict] = field(default_factory=list)             # per repeat
    invariants_ok: bool = True

    @property
    def all_rates(self) -> np.ndarray:
        return np.concatenate(self.rates) if self.rates else np.zeros(0)

    @property
    def throughput(self) -> float:
        return hmean(self.all_rates)

    @property
    def rel_stddev(self) -> float:
        r = self.all_rates
        m = float(np.mean(r)) if r.size else math.nan
        return float(np.std(r, ddof=1) / m) if r.size > 1 and m > 0 else 0.0

    @property
    def median(self) -> float:
        return float(np.median(self.all_rates))

    @property
    def per_worker_all(self) -> np.ndarray:
        return np.concatenate(self.per_worker) if self.per_worker else np.zeros(0)


def collect(docs: Iterable[tuple[dict, str]]) -> dict[PointKey, PointData]:
    """Pool every point of every document by identity."""
    out: dict[PointKey, PointData] = {}
    for doc, _ in docs:
        model = str(doc["workload"].get("model", ""))
        for p in doc["points"]:
            if not p["interval_times"]:  # a failed point (see its "error"): nothing measured
                continue
            k = point_key(doc, p)
            d = out.setdefault(k, PointData(k, model))
            d.rates.append(interval_rates(p))
            d.per_worker.append(per_worker_rates(p))
            d.oversubscribed |= bool(p.get("oversubscribed", False))
            d.total_ops += float(np.sum(p["samples"]))
            for name, vals in (p.get("counters") or {}).items():
                d.counters[name] = d.counters.get(name, 0.0) + float(np.sum(vals))
            for op, h in (p.get("latency") or {}).items():
                c = np.asarray(h.get("counts", []), dtype=float)
                d.latency_base[op] = int(h.get("bucket_log2_base", 0))
                old = d.latency.get(op)
                if old is None:
                    d.latency[op] = c
                else:
                    n = max(old.size, c.size)
                    d.latency[op] = np.pad(old, (0, n - old.size)) + np.pad(c, (0, n - c.size))
            if p.get("extra"):
                d.extra.append(p["extra"])
            inv = p.get("invariants") or {}
            d.invariants_ok &= bool(inv.get("ok", True))
    return out


def series_of(points: dict[PointKey, PointData]) -> dict[SeriesKey, list[PointData]]:
    """Points grouped by series, sorted by worker count."""
    out: dict[SeriesKey, list[PointData]] = {}
    for k, d in points.items():
        out.setdefault(k.series, []).append(d)
    for v in out.values():
        v.sort(key=lambda d: d.key.workers)
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- USL

def usl(n, lam, sigma, kappa):
    n = np.asarray(n, dtype=float)
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def peak_workers(sigma: float, kappa: float) -> float:
    """N* = sqrt((1 - sigma) / kappa): where USL throughput peaks (inf without coherency)."""
    if sigma >= 1:  # no gain from a second worker: the peak is one worker
        return 1.0
    if kappa <= 0:
        return math.inf
    return max(1.0, math.sqrt((1.0 - sigma) / kappa))


def _fit_once(n: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Least squares in relative error (throughputs can span decades).

    The start comes from the linearised USL, N/X = (1 + sigma(N-1) + kappa N(N-1))/lambda,
    solved with non-negative least squares; curve_fit then refines it.
    """
    from scipy.optimize import curve_fit, nnls

    scale = x[0] / n[0] if x[0] > 0 else (np.max(x) or 1.0)
    y = x / scale
    p0 = [1.0, 0.01, 1e-4]
    if np.all(y > 0):
        a = np.c_[np.ones_like(n), n - 1, n * (n - 1)] * (y / n)[:, None]
        c, _ = nnls(a, np.ones_like(n))
        if c[0] > 0:
            p0 = [1 / c[0], c[1] / c[0], c[2] / c[0]]
    try:
        with warnings.catch_warnings():  # exactly-determined fits have no covariance
            warnings.simplefilter("ignore")
            popt, pcov = curve_fit(usl, n, y, p0=p0, sigma=np.maximum(y, 1e-12),
                                   bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
                                   method="trf", max_nfev=2000)
    except (RuntimeError, ValueError):
        return None
    popt = popt.copy()
    # a parameter pinned at its bound comes back as ~1e-20, not 0: call it 0
    popt[1] = 0.0 if popt[1] < SIGMA_ZERO else popt[1]
    popt[2] = 0.0 if popt[2] < KAPPA_ZERO else popt[2]
    popt[0] *= scale
    pcov = np.asarray(pcov, dtype=float).copy()
    pcov[0, :] *= scale
    pcov[:, 0] *= scale
    return popt, pcov


@dataclass
class USLFit:
    lam: float
    sigma: float
    kappa: float
    peak: float
    ci: dict[str, tuple[float, float]]     # name -> (lo, hi)
    ci_method: str                          # "bootstrap percentile (B=..)" or "covariance"
    level: float

    def describe(self) -> str:
        def f(name, v):
            lo, hi = self.ci.get(name, (math.nan, math.nan))
            return f"{name}={v:.4g} [{lo:.4g}, {hi:.4g}]"
        return (f"{f('lambda', self.lam)} ops/s/worker, {f('sigma', self.sigma)}, "
                f"{f('kappa', self.kappa)}, {f('peak', self.peak)} workers "
                f"({int(self.level * 100)}% CI, {self.ci_method})")


def _quantiles(v: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval that tolerates inf (a bootstrap fit with kappa = 0)."""
    v = np.sort(v[~np.isnan(v)])
    if v.size == 0:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    lo = v[int(math.floor(a * (v.size - 1)))]
    hi = v[int(math.ceil((1 - a) * (v.size - 1)))]
    return (float(lo), float(hi))


def fit_usl(workers, samples: list[np.ndarray], n_boot: int = 200, seed: int = 0,
            level: float = 0.95) -> USLFit | None:
    """Fit the USL to per-worker-count rate samples; None when the fit fails.

    Raises AnalysisError with fewer than three distinct worker counts: three
    parameters cannot be fitted from fewer, and a fake fit is worse than none.
    """
    n = np.asarray(workers, dtype=float)
    if len(set(n.tolist())) < USL_MIN_WORKER_COUNTS:
        raise AnalysisError(USL_NEEDS)
    x = np.array([hmean(s) for s in samples])
    if np.any(~np.isfinite(x)) or np.all(x <= 0):
        return None
    r = _fit_once(n, x)
    if r is None:
        return None
    (lam, sigma, kappa), pcov = r
    names = ("lambda", "sigma", "kappa", "peak")
    can_boot = n_boot > 0 and all(len(s) > 1 for s in samples)
    if can_boot:
        rng = np.random.default_rng(seed)
        boot = []
        for _ in range(n_boot):
            xb = np.array([hmean(rng.choice(s, size=len(s), replace=True)) for s in samples])
            rb = _fit_once(n, xb)
            if rb is not None:
                l, s_, k = rb[0]
                boot.append((l, s_, k, peak_workers(s_, k)))
        boot = np.array(boot) if boot else np.zeros((0, 4))
        ci = {nm: _quantiles(boot[:, i], level) for i, nm in enumerate(names)}
        method = f"bootstrap percentile, B={len(boot)}, seed={seed}"
    else:
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        err = np.sqrt(np.clip(np.diag(pcov), 0, np.inf))
        ci = {nm: (max(0.0, v - z * e), v + z * e)
              for nm, v, e in zip(names[:3], (lam, sigma, kappa), err)}
        ci["peak"] = (math.nan, math.nan)
        method = "covariance (one sample per worker count: no bootstrap)"
    return USLFit(float(lam), float(sigma), float(kappa), peak_workers(sigma, kappa),
                  ci, method, level)


# --------------------------------------------------------------------------- series scaling

@dataclass
class Scaling:
    series: SeriesKey
    workers: np.ndarray
    throughput: np.ndarray                 # X(N), ops/s (harmonic mean of interval rates)
    base_workers: int                      # N0: 1 when measured, else the smallest N
    speedup: np.ndarray                    # X(N)/X(N0) * N0
    speedup_ci: np.ndarray                 # shape (2, len(workers))
    efficiency: np.ndarray                 # speedup / N
    efficiency_ci: np.ndarray
    oversubscribed: np.ndarray
    usl: USLFit | None
    note: str                              # why there is no fit, or how speedup is based
    level: float = 0.95


def scale_series(points: list[PointData], n_boot: int = 500, seed: int = 0,
                 level: float = 0.95, usl_boot: int = 200) -> Scaling:
    """Speedup and efficiency with bootstrap bands, and the USL fit when possible."""
    points = sorted(points, key=lambda d: d.key.workers)
    n = np.array([d.key.workers for d in points], dtype=float)
    samples = [d.all_rates for d in points]
    x = np.array([hmean(s) for s in samples])
    n0 = int(n[0])
    notes = []
    if n0 != 1:
        notes.append(f"no 1-worker point: speedup is relative to N={n0} and assumes "
                     f"linear scaling up to it")
    base = x[0] / n0 if x[0] > 0 else math.nan
    speedup = x / base
    eff = speedup / n
    # bootstrap: resample the interval rates of every N (including N0) independently
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(points)))
    for j, s in enumerate(samples):
        idx = rng.integers(0, len(s), size=(n_boot, len(s)))
        draws = s[idx]
        with np.errstate(divide="ignore"):
            boot[:, j] = np.where(np.all(draws > 0, axis=1),
                                  len(s) / np.sum(1.0 / np.where(draws > 0, draws, 1.0), axis=1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sb = boot / (boot[:, :1] / n0)
    a = (1 - level) / 2
    s_ci = np.nanquantile(sb, [a, 1 - a], axis=0) if n_boot else np.vstack([speedup, speedup])
    e_ci = s_ci / n
    fit = None
    # time-sharing CPUs is outside the USL's model: fit only points with a CPU per worker
    fit_pts = [i for i, d in enumerate(points) if not d.oversubscribed]
    if len(fit_pts) < len(points):
        notes.append("oversubscribed points are left out of the USL fit")
    if len(fit_pts) < USL_MIN_WORKER_COUNTS:
        notes.append(USL_NEEDS + (" with a CPU each" if len(fit_pts) < len(points) else ""))
    else:
        fit = fit_usl(n[fit_pts], [samples[i] for i in fit_pts], n_boot=usl_boot, seed=seed,
                      level=level)
        if fit is None:
            notes.append("the USL fit did not converge")
    return Scaling(points[0].key.series, n, x, n0, speedup, s_ci, eff, e_ci,
                   np.array([d.oversubscribed for d in points]), fit, "; ".join(notes), level)


def scale_all(points: dict[PointKey, PointData], **kw) -> dict[SeriesKey, Scaling]:
    return {k: scale_series(v, **kw) for k, v in series_of(points).items()}


def format_scaling(sc: Scaling) -> str:
    lines = [f"{sc.series.label(with_workload=True)}"]
    lines.append(f"  {'N':>5} {'ops/s':>12} {'speedup':>18} {'efficiency':>18}")
    for i, n in enumerate(sc.workers):
        ov = " (oversubscribed)" if sc.oversubscribed[i] else ""
        lines.append(f"  {int(n):>5} {sc.throughput[i]:>12.4g} "
                     f"{sc.speedup[i]:>6.2f} [{sc.speedup_ci[0, i]:.2f},{sc.speedup_ci[1, i]:.2f}]"
                     f" {sc.efficiency[i]:>6.2f} [{sc.efficiency_ci[0, i]:.2f},"
                     f"{sc.efficiency_ci[1, i]:.2f}]{ov}")
    lines.append("  USL: " + (sc.usl.describe() if sc.usl else "no fit"))
    if sc.note:
        lines.append(f"  note: {sc.note}")
    return "\n".join(lines)

"""Compare two sets of results: per point %change, significance, scaling-law change.

Statistics (mmtests and LKP conventions):

* A point's throughput is the harmonic mean of its per-interval rates pooled over
  repeats; its spread is the relative sample stddev of those rates (LKP's
  ``±stddev%``).
* The samples given to the test are those per-interval rates (every interval of
  every repeat): Welch's t-test (unequal variances) or the Mann-Whitney U test.
* p-values are Holm-corrected across all compared points (family-wise error
  rate <= alpha) because a sweep compares many points at once.
* A change smaller than ``threshold_pct`` is never reported as a change, however
  small its p-value; a larger change that fails the test is said to be "not
  significant".
* Many points fold into one figure with the geometric mean of new/base ratios.

Checked metadata (machine facts, schema and workload versions) must agree;
mismatches become loud warnings, or an error with ``strict=True``.  This module
reads result documents only; scipy is imported lazily.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .scaling import (USL_MIN_WORKER_COUNTS, USL_NEEDS, AnalysisError, PointData, PointKey,
                      SeriesKey, USLFit, collect, fit_usl, load_all, series_of,
                      varying_params)

TESTS = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U test"}

try:
    from .metadata import CHECKED_KEYS
except ImportError:  # pragma: no cover
    CHECKED_KEYS = ("name", "cpu_model", "nproc", "kernel")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def p_value(base: np.ndarray, new: np.ndarray, test: str = "welch") -> float:
    """Two-sided p-value of the named test; NaN with fewer than two samples a side."""
    if base.size < 2 or new.size < 2:
        return math.nan
    if test == "welch":
        from scipy.stats import ttest_ind

        if np.ptp(base) == 0 and np.ptp(new) == 0:  # no spread: equal or certainly not
            return 1.0 if base[0] == new[0] else 0.0
        return float(ttest_ind(base, new, equal_var=False).pvalue)
    if test == "mannwhitney":
        from scipy.stats import mannwhitneyu

        return float(mannwhitneyu(base, new, alternative="two-sided").pvalue)
    raise AnalysisError(f"unknown test {test!r}: use one of {', '.join(TESTS)}")


@dataclass
class CompareRow:
    key: PointKey
    base: float            # ops/s, harmonic mean of interval rates
    base_rsd: float        # relative stddev of the interval rates (fraction)
    new: float
    new_rsd: float
    n_base: int
    n_new: int
    p: float               # raw p-value
    p_holm: float = math.nan
    # regression | improvement | not significant | within threshold | too few samples
    # | no base throughput
    verdict: str = ""

    @property
    def change_pct(self) -> float:
        return (self.new / self.base - 1.0) * 100.0 if self.base > 0 else math.nan

    @property
    def ratio(self) -> float:
        return self.new / self.base if self.base > 0 else math.nan


@dataclass
class USLChange:
    series: SeriesKey
    base: USLFit | None
    new: USLFit | None
    note: str = ""


@dataclass
class CompareResult:
    rows: list[CompareRow]
    test: str
    alpha: float
    threshold_pct: float
    warnings: list[str] = field(default_factory=list)
    usl: list[USLChange] = field(default_factory=list)
    only_base: list[PointKey] = field(default_factory=list)
    only_new: list[PointKey] = field(default_factory=list)

    @property
    def regressions(self) -> list[CompareRow]:
        return [r for r in self.rows if r.verdict == "regression"]

    @property
    def improvements(self) -> list[CompareRow]:
        return [r for r in self.rows if r.verdict == "improvement"]

    @property
    def gmean_ratio(self) -> float:
        r = np.array([x.ratio for x in self.rows if x.ratio > 0 and math.isfinite(x.ratio)])
        return float(np.exp(np.mean(np.log(r)))) if r.size else math.nan

    @property
    def exit_code(self) -> int:
        """0: no significant regression beyond the threshold; 1: at least one."""
        return 1 if self.regressions else 0


def _as_list(x: Any) -> list:
    return [x] if isinstance(x, (str, Path, dict)) else list(x)


def _metadata_warnings(base: list[tuple[dict, str]], new: list[tuple[dict, str]]) -> list[str]:
    ref, ref_name = base[0]
    out: list[str] = []
    wl_version = {}
    for doc, name in base + new:
        wl_version.setdefault(doc["workload"]["name"], (doc["workload"].get("version"), name))
    for doc, name in base[1:] + new:
        for k in CHECKED_KEYS:
            a, b = ref.get("machine", {}).get(k), doc.get("machine", {}).get(k)
            if a != b:
                out.append(f"WARNING: machine {k} differs: {a!r} ({ref_name}) != {b!r} ({name})")
        if doc.get("schema_version") != ref.get("schema_version"):
            out.append(f"WARNING: schema version differs: {ref.get('schema_version')!r} "
                       f"({ref_name}) != {doc.get('schema_version')!r} ({name})")
        v, vname = wl_version[doc["workload"]["name"]]
        if doc["workload"].get("version") != v:
            out.append(f"WARNING: workload {doc['workload']['name']} version differs: {v!r} "
                       f"({vname}) != {doc['workload'].get('version')!r} ({name})")
    return list(dict.fromkeys(out))


def _usl_changes(bp: dict[PointKey, PointData], np_: dict[PointKey, PointData],
                 common: set[SeriesKey], usl_boot: int, seed: int) -> list[USLChange]:
    out = []
    bs, ns = series_of(bp), series_of(np_)
    for sk in sorted(common):
        # as in scaling.scale_series: oversubscribed points are outside the USL's model
        b = [d for d in bs[sk] if not d.oversubscribed]
        n = [d for d in ns[sk] if not d.oversubscribed]
        if min(len(b), len(n)) < USL_MIN_WORKER_COUNTS:
            continue  # said once in the formatted output
        fits = []
        for pts in (b, n):
            fits.append(fit_usl([d.key.workers for d in pts], [d.all_rates for d in pts],
                                n_boot=usl_boot, seed=seed))
        note = "" if all(fits) else "the USL fit did not converge"
        out.append(USLChange(sk, fits[0], fits[1], note))
    return out


def compare(base_docs, new_docs, threshold_pct: float = 5.0, alpha: float = 0.05,
            test: str = "welch", strict: bool = False, usl_boot: int = 50,
            seed: int = 0) -> CompareResult:
    """Compare result files (paths or loaded documents) point by point.

    Raises AnalysisError (one line) for unreadable or invalid input, an unknown
    test, no point in common, or (``strict``) mismatched checked metadata.
    """
    if test not in TESTS:
        raise AnalysisError(f"unknown test {test!r}: use one of {', '.join(TESTS)}")
    if not threshold_pct >= 0 or not 0 < alpha < 1:
        raise AnalysisError(f"need threshold >= 0 and 0 < alpha < 1, got {threshold_pct}, {alpha}")
    base, new = load_all(_as_list(base_docs)), load_all(_as_list(new_docs))
    warnings = _metadata_warnings(base, new)
    if strict and warnings:
        raise AnalysisError("refusing to compare (strict): " + warnings[0].removeprefix("WARNING: ")
                            + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""))
    bp, np_ = collect(base), collect(new)
    common = sorted(set(bp) & set(np_))
    if not common:
        raise AnalysisError("nothing in common: no point (workload, variant, params, mode, "
                            "workers) is in both the base and the new results")
    rows = []
    for k in common:
        b, n = bp[k].all_rates, np_[k].all_rates
        rows.append(CompareRow(k, bp[k].throughput, bp[k].rel_stddev, np_[k].throughput,
                               np_[k].rel_stddev, b.size, n.size, p_value(b, n, test)))
    for r, ph in zip(rows, holm([r.p for r in rows])):
        r.p_holm = float(ph)
        if not r.base > 0:
            r.verdict = "no base throughput"
        elif not abs(r.change_pct) >= threshold_pct:
            r.verdict = "within threshold"
        elif math.isnan(ph):
            r.verdict = "too few samples"
        elif ph < alpha:
            r.verdict = "regression" if r.change_pct < 0 else "improvement"
        else:
            r.verdict = "not significant"
    usl = _usl_changes(bp, np_, {k.series for k in common}, usl_boot, seed)
    return CompareResult(rows, test, alpha, threshold_pct, warnings, usl,
                         sorted(set(bp) - set(np_)), sorted(set(np_) - set(bp)))


# --------------------------------------------------------------------------- format

def _fmt_rate(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "-"


def _fmt_p(p: float) -> str:
    return "-" if math.isnan(p) else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")


def _fmt_peak(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}"


def _usl_line(u: USLChange, vary: set[str] | None = None) -> str:
    if u.base is None or u.new is None:
        return f"{u.series.label(with_workload=True, vary=vary)}: {u.note}"
    b, n = u.base, u.new
    return (f"{u.series.label(with_workload=True, vary=vary)}: sigma {b.sigma:.3g} -> {n.sigma:.3g}"
            f" [{n.ci['sigma'][0]:.3g}, {n.ci['sigma'][1]:.3g}], kappa {b.kappa:.3g} -> "
            f"{n.kappa:.3g} [{n.ci['kappa'][0]:.3g}, {n.ci['kappa'][1]:.3g}], peak N* "
            f"{_fmt_peak(b.peak)} -> {_fmt_peak(n.peak)}")


def format_compare(result: CompareResult, fmt: str = "term") -> str:
    """Render a CompareResult as terminal text ("term") or Markdown ("md")."""
    if fmt not in ("term", "md"):
        raise AnalysisError(f"unknown format {fmt!r}: use term or md")
    r = result
    head = ["point", "base ops/s", "±stddev", "%change", "new ops/s", "±stddev", "p (Holm)",
            "verdict"]
    vary = varying_params([x.key for x in r.rows] + r.only_base + r.only_new)
    one_wl = len({x.key.workload for x in r.rows}) == 1
    lab = lambda k: k.label(vary) if one_wl else f"{k.workload}: {k.label(vary)}"  # noqa: E731
    table = [[lab(row.key),
              _fmt_rate(row.base), f"±{row.base_rsd * 100:.1f}%",
              f"{row.change_pct:+.1f}%" if math.isfinite(row.change_pct) else "-",
              _fmt_rate(row.new), f"±{row.new_rsd * 100:.1f}%", _fmt_p(row.p_holm), row.verdict]
             for row in r.rows]
    n_pts = len(r.rows)
    method = (f"{TESTS[r.test]} on per-interval rates (all repeats), Holm-corrected across "
              f"{n_pts} point{'s' * (n_pts != 1)}, alpha {r.alpha:g}; changes within "
              f"±{r.threshold_pct:g}% are not reported as changes; throughput = harmonic mean "
              f"of interval rates")
    g = r.gmean_ratio
    summary = [f"geometric mean of new/base over {n_pts} points: {g:.4f} ({(g - 1) * 100:+.1f}%)"]
    if r.regressions:
        summary.append(f"REGRESSION in {len(r.regressions)} point(s): "
                       + ", ".join(lab(x.key) for x in r.regressions))
    else:
        summary.append(f"no significant regression beyond ±{r.threshold_pct:g}%")
    if r.improvements:
        summary.append(f"improvement in {len(r.improvements)} point(s): "
                       + ", ".join(lab(x.key) for x in r.improvements))
    ns = [x for x in r.rows if x.verdict == "not significant"]
    if ns:
        summary.append(f"not significant: {len(ns)} point(s) changed beyond the threshold but "
                       f"failed the test")
    if r.only_base or r.only_new:
        summary.append(f"not compared: {len(r.only_base)} point(s) only in base, "
                       f"{len(r.only_new)} only in new")
    usl = [_usl_line(u, vary) for u in r.usl] or [f"none: {USL_NEEDS} in both base and new"]
    if fmt == "md":
        out = [*(f"> **{w}**" for w in r.warnings), "" if r.warnings else None,
               f"Test: {method}.", "",
               "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table]
        out += ["", *(f"- {s}" for s in summary), "", "USL (sigma, kappa) base -> new "
                "[new's CI]:", *(f"- {s}" for s in usl)]
        return "\n".join(x for x in out if x is not None) + "\n"
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) if i in (0, 7) else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [*r.warnings, f"test: {method}", line(head), line(["-" * w for w in widths])]
    out += [line(row) for row in table]
    out += ["", *summary, "", "USL sigma/kappa, base -> new [new's CI]:", *(f"  {s}" for s in usl)]
    return "\n".join(out) + "\n"

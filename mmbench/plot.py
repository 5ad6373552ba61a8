"""Plots of stored results (PNG and SVG); reads result files only, never runs a benchmark.

Per workload:

* ``<wl>-throughput``: total ops/s vs workers with the linear ideal X(N0)·N/N0 and
  the interval-rate range, beside the per-worker rates (the spread is fairness);
  oversubscribed points (more workers than allowed CPUs) are hollow and shaded.
* ``<wl>-scaling``: speedup and efficiency with bootstrap bands, and the USL fit.
* ``<wl>-latency``: log2 latency histograms per operation (log scales).
* ``<wl>-locks-per-op``: lock acquisitions per op (the pcp batch shows as 2/batch).
* family views keyed on the workload's model (:data:`FAMILY_VIEWS`), then
  ``<wl>-extra``: every ``extra`` key no family view claimed, drawn generically
  (numbers vs workers, number lists vs their index), so a new model needs no change.

Across workloads, :data:`CROSS_VIEWS` (e.g. ``model-vs-kernel``: the pagealloc model's
page-fault scaling beside the kernel's, :mod:`mmbench.kernelcmp`) when their inputs are present.

Computation lives in :mod:`mmbench.scaling`; this module only draws.  matplotlib
is imported lazily (Agg, no pyplot state).
"""
from __future__ import annotations

import json

import math
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .scaling import (PointData, SeriesKey, collect, load_all, scale_series, series_of,
                      varying_params)

FORMATS = ("png", "svg")
DECADES_FOR_LOG = 1.5        # a range wider than this many decades is drawn on a log axis


# --------------------------------------------------------------------------- grouping

class Group:
    """The points of one workload, from one or more result files."""

    def __init__(self, workload: str, docs: list[tuple[dict, str]]):
        self.workload = workload
        self.docs = docs
        self.model = str(docs[0][0]["workload"].get("model", ""))
        by_src: dict[str, list] = {}
        for d in docs:
            by_src.setdefault(_source(d, docs), []).append(d)
        self.sources = sorted(by_src)
        keys_per_src = [set(collect(ds)) for ds in by_src.values()]
        overlap = sum(len(k) for k in keys_per_src) != len(set().union(*keys_per_src))
        if len(by_src) == 1 or not overlap:
            # Repeats of one run, or runs of different points (another commit measured other
            # parameters): nothing to compare between sources, so pool them.
            self.points = collect(docs)
        else:  # different commits or machines: one series per source
            self.points = {}
            for src, ds in by_src.items():
                for k, d in collect(ds).items():
                    d.key = k._replace(variant=f"{src}: {k.variant}")
                    self.points[d.key] = d
        self.series = series_of(self.points)
        self.vary = varying_params(self.points)

    def label(self, sk: SeriesKey) -> str:
        return sk.label(vary=self.vary)

    def title(self, what: str) -> str:
        doc = self.docs[0][0]
        m = doc.get("machine", {})
        git = (m.get("git") or {}).get("short") if len(self.sources) == 1 else None
        srcs = f", {len(self.docs)} files" if len(self.docs) > 1 else ""
        return (f"{self.workload}: {what}\n{m.get('name', '?')} ({m.get('cpu_model') or '?'}, "
                f"{m.get('nproc', '?')} CPUs){f', commit {git}' if git else ''}{srcs}")


def groups(docs: list[tuple[dict, str]]) -> list[Group]:
    by: dict[str, list] = {}
    for d in docs:
        by.setdefault(d[0]["workload"]["name"], []).append(d)
    return [Group(k, v) for k, v in sorted(by.items())]


def _source(d: tuple[dict, str], docs: list[tuple[dict, str]]) -> str:
    """Which run a file belongs to: its commit (and machine, when machines differ)."""
    def git(doc):
        g = doc.get("machine", {}).get("git") or {}
        return (g.get("short") or "") + ("-dirty" if g.get("dirty") else "")
    machines = {x[0].get("machine", {}).get("name") for x in docs}
    commits = {git(x[0]) for x in docs}
    parts = []
    if len(machines) > 1:
        parts.append(str(d[0].get("machine", {}).get("name")))
    if len(commits) > 1 or "" in commits and len(docs) > 1 and len(machines) == 1:
        parts.append(git(d[0]) or d[1])
    return "@".join(parts) or "all"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# --------------------------------------------------------------------------- drawing helpers

def _figure(nplots: int = 1, width: float = 6.4, height: float = 4.6, legend_out: bool = False):
    from matplotlib.figure import Figure

    if legend_out and nplots == 1:
        width *= 1.5
    fig = Figure(figsize=(width * nplots if nplots <= 2 else width * 2,
                          height * (1 if nplots <= 2 else math.ceil(nplots / 2))),
                 layout="constrained")
    if nplots <= 2:
        axes = [fig.add_subplot(1, nplots, i + 1) for i in range(nplots)]
    else:
        axes = [fig.add_subplot(math.ceil(nplots / 2), 2, i + 1) for i in range(nplots)]
    return fig, axes


def _colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _spans_decades(values) -> bool:
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0])
    return v.size > 1 and math.log10(v.max() / v.min()) > DECADES_FOR_LOG


def _yscale(ax, values) -> None:
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x)])
    if v.size == 0:
        return
    if np.all(v > 0) and _spans_decades(v):
        ax.set_yscale("log")
    elif np.any(v == 0) and np.all(v >= 0) and _spans_decades(v):
        # zeros (a stalled point) on a log-like axis: linear below the smallest positive value
        ax.set_yscale("symlog", linthresh=float(v[v > 0].min()))
        ax.set_ylim(bottom=0)


def _workers_axis(ax, workers) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    w = sorted({int(x) for x in workers})
    if len(w) > 1 and w[-1] / max(w[0], 1) >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(w))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(w, [str(x) for x in w])
    ax.set_xlabel("workers")


MAX_LEGEND = 16   # beyond this a legend hides the plot; the panel views name the series


def _legend(ax, n: int) -> None:
    if not ax.get_legend_handles_labels()[0]:
        return
    if n > MAX_LEGEND:
        ax.text(0.99, 0.01, f"{n} series (legend omitted)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize="x-small", color="0.4")
        return
    if n > 6:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(fontsize="small")


def _legend_pair(left, right, n: int) -> None:
    """The left panel's legend: inside it when short, else outside the right panel."""
    if n <= 5:
        _legend(left, n)
        return
    h, lab = left.get_legend_handles_labels()
    right.legend(h, lab, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                 frameon=False)


def _shade_oversubscribed(ax, points: Iterable[PointData]) -> None:
    over = [d.key.workers for d in points if d.oversubscribed]
    if over:
        ax.axvspan(min(over) * 0.9, max(over) * 1.1, color="0.9", zorder=0,
                   label="oversubscribed (workers > allowed CPUs)")


_formats = list(FORMATS)   # what _save writes; plot_docs(formats=...) narrows it for one call


def _save(fig, outdir: Path, stem: str) -> list[Path]:
    out = []
    for ext in _formats:
        p = outdir / f"{stem}.{ext}"
        fig.savefig(p, dpi=100 if ext == "png" else None)
        out.append(p)
    return out


def _unit(key: str) -> str:
    for suffix, unit in (("_bytes", "bytes"), ("_ns", "ns"), ("_us", "µs"), ("_ms", "ms"),
                         ("_s", "s"), ("_pages", "pages"), ("_cycles", "cycles"),
                         ("_per_round", "per round"), ("_pct", "%")):
        if key.endswith(suffix):
            return unit
    return "value"


# --------------------------------------------------------------------------- views

def _facets(g: Group) -> dict[str, list]:
    """Series grouped by their parameters other than the variant (one panel each)."""
    out: dict[str, list] = {}
    for sk in g.series:
        params = {k: v for k, v in json.loads(sk.params).items() if k in g.vary}
        title = " ".join(f"{k}={v}" for k, v in sorted(params.items())) or "all"
        if sk.mode != "process":
            title += f" ({sk.mode})"
        out.setdefault(title, []).append(sk)
    return out


def _throughput_of(pts):
    return np.array([d.throughput for d in pts])


def _speedup_of(pts):
    x = _throughput_of(pts)
    return x / x[0] if x[0] > 0 else np.full(x.shape, np.nan)


def _lock_acq_of(pts):
    return np.array([d.counters["lock_acquisitions"] / d.total_ops
                     if d.total_ops > 0 and "lock_acquisitions" in d.counters else np.nan
                     for d in pts])


def plot_panels(g: Group, outdir: Path, facets: dict[str, list], metric, what: str,
                ylabel: str, stem: str, ideal: bool = True) -> list[Path]:
    """Small multiples: one panel per parameter combination, one line per variant.

    A workload that sweeps several parameters (pagealloc: workload × order) has too many
    series for one legend; each panel compares the variants at one setting.
    """
    from matplotlib.figure import Figure

    variants = sorted({sk.variant for sk in g.series})
    colors = dict(zip(variants, _colors(len(variants))))
    ncols = min(4, len(facets))
    nrows = math.ceil(len(facets) / ncols)
    fig = Figure(figsize=(3.6 * ncols + 1.8, 3.0 * nrows + 0.8), layout="constrained")
    workers = [k.workers for k in g.points]
    drawn = False
    for i, (title, sks) in enumerate(sorted(facets.items())):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        vals = []
        for sk in sks:
            pts = g.series[sk]
            n = np.array([d.key.workers for d in pts], float)
            y = metric(pts)
            if not np.any(np.isfinite(y)):
                continue
            drawn = True
            c = colors[sk.variant]
            ax.plot(n, y, color=c, marker="o", ms=3, label=sk.variant)
            if ideal and len(n) > 1 and np.isfinite(y[0]) and y[0] > 0:
                ax.plot(n, y[0] / n[0] * n, color=c, ls=":", lw=0.8)
            over = np.array([d.oversubscribed for d in pts])
            if over.any():
                ax.plot(n[over], y[over], ls="none", marker="o", ms=7, mfc="white", mec=c)
            vals += [v for v in y if np.isfinite(v)]
        _shade_oversubscribed(ax, [d for sk in sks for d in g.series[sk]])
        _workers_axis(ax, workers)
        _yscale(ax, vals)
        ax.set_title(title, fontsize="small")
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
    if not drawn:
        return []
    handles = [fig.axes[0].plot([], [], color=colors[v], marker="o", ms=3, label=v)[0]
               for v in variants]
    if ideal:
        handles.append(fig.axes[0].plot([], [], color="k", ls=":", lw=0.8,
                                        label="linear ideal")[0])
    fig.legend(handles=handles, loc="outside right center", fontsize="small")
    fig.suptitle(g.title(what))
    return _save(fig, outdir, f"{_safe(g.workload)}-{stem}")


def _many_series(g: Group):
    """The facets to draw as small multiples, or None when one plot stays readable."""
    facets = _facets(g)
    return facets if len(g.series) > 8 and len(facets) > 1 else None


def plot_throughput(g: Group, outdir: Path) -> list[Path]:
    facets = _many_series(g)
    if facets:
        return plot_panels(g, outdir, facets, _throughput_of,
                           "throughput vs workers, per setting (harmonic mean of interval rates)",
                           "ops/s (all workers)", "throughput")
    fig, (ax, axw) = _figure(2)
    colors = _colors(len(g.series))
    allx, allw = [], []
    for (sk, pts), c in zip(g.series.items(), colors):
        n = np.array([d.key.workers for d in pts], float)
        x = np.array([d.throughput for d in pts])
        lo = np.array([d.all_rates.min() for d in pts])
        hi = np.array([d.all_rates.max() for d in pts])
        allx += [*lo, *hi]
        ax.errorbar(n, x, yerr=[x - lo, hi - x], color=c, marker="o", ms=4, capsize=2,
                    label=g.label(sk))
        if len(n) > 1 and x[0] > 0:
            ax.plot(n, x[0] / n[0] * n, color=c, ls=":", lw=1)
        over = np.array([d.oversubscribed for d in pts])
        if over.any():
            ax.plot(n[over], x[over], ls="none", marker="o", ms=8, mfc="white", mec=c)
        for d in pts:
            pw = d.per_worker_all
            if pw.size:
                jitter = np.exp(np.linspace(-0.06, 0.06, pw.size)) if pw.size > 1 else 1.0
                axw.scatter(d.key.workers * jitter, pw, s=6, color=c, alpha=0.5, lw=0)
                allw.extend(pw)
        axw.plot(n, x / n, color=c, marker="_", ms=10, lw=1)
    workers = [k.workers for k in g.points]
    for a in (ax, axw):
        _shade_oversubscribed(a, g.points.values())
        _workers_axis(a, workers)
    ax.plot([], [], color="k", ls=":", lw=1, label="linear ideal")
    _yscale(ax, allx)
    _yscale(axw, allw)
    ax.set_ylabel("throughput, ops/s (all workers)")
    ax.set_title("harmonic mean of interval rates; bars: min–max interval", fontsize="small")
    axw.set_ylabel("per-worker throughput, ops/s")
    axw.set_title("dots: each worker; line: mean per worker", fontsize="small")
    _legend_pair(ax, axw, len(g.series))
    fig.suptitle(g.title("throughput vs workers"))
    return _save(fig, outdir, f"{_safe(g.workload)}-throughput")


def plot_scaling(g: Group, outdir: Path, n_boot: int = 300) -> list[Path]:
    series = {k: v for k, v in g.series.items() if len(v) >= 2}
    if not series:
        return []
    facets = _many_series(g)
    if facets:
        return plot_panels(g, outdir, facets, _speedup_of,
                           "speedup S(N) = X(N)/X(fewest workers), per setting",
                           "speedup", "scaling")
    fig, (axs, axe) = _figure(2)
    colors = _colors(len(g.series))
    maxn = max(k.workers for k in g.points)
    notes = set()
    for (sk, pts), c in zip(g.series.items(), colors):
        if sk not in series:
            continue
        sc = scale_series(pts, n_boot=n_boot)
        label = g.label(sk)
        if sc.usl:
            label += f" (USL σ={sc.usl.sigma:.2g}, κ={sc.usl.kappa:.2g})"
            nn = np.geomspace(sc.workers[0], sc.workers[-1], 100)
            from .scaling import usl as usl_curve

            axs.plot(nn, usl_curve(nn, sc.usl.lam, sc.usl.sigma, sc.usl.kappa) / (
                sc.throughput[0] / sc.base_workers), color=c, ls="--", lw=1)
        if sc.note:
            notes.update(sc.note.split("; "))
        axs.plot(sc.workers, sc.speedup, color=c, marker="o", ms=4, label=label)
        axs.fill_between(sc.workers, *sc.speedup_ci, color=c, alpha=0.2, lw=0)
        axe.plot(sc.workers, sc.efficiency, color=c, marker="o", ms=4, label=g.label(sk))
        axe.fill_between(sc.workers, *sc.efficiency_ci, color=c, alpha=0.2, lw=0)
    ideal = np.array(sorted({k.workers for k in g.points}), float)
    axs.plot(ideal, ideal, color="k", ls=":", lw=1, label="linear ideal")
    axs.plot([], [], color="0.4", ls="--", lw=1, label="USL fit")
    axe.axhline(1.0, color="k", ls=":", lw=1)
    for a in (axs, axe):
        _shade_oversubscribed(a, g.points.values())
        _workers_axis(a, ideal)
    if maxn >= 8:
        from matplotlib.ticker import ScalarFormatter

        axs.set_yscale("log", base=2)
        axs.yaxis.set_major_formatter(ScalarFormatter())
    axs.set_ylabel("speedup S(N) = X(N) / X(1)")
    axe.set_ylabel("efficiency E(N) = X(N) / (N·X(1))")
    axe.set_ylim(bottom=0)
    band = f"bands: {int(95)}% bootstrap CI of interval rates"
    axs.set_title(band, fontsize="small")
    axe.set_title("; ".join(sorted(notes)) or band, fontsize="small", wrap=True)
    _legend_pair(axs, axe, len(series))
    fig.suptitle(g.title("speedup and efficiency"))
    return _save(fig, outdir, f"{_safe(g.workload)}-scaling")


def _latency_pct(op: str, q: float):
    """Metric for plot_panels: the q-th percentile (log2 bucket upper bound) of op's latency."""
    from .stats import percentile_from_log2_hist

    def metric(pts):
        out = []
        for d in pts:
            cnt = d.latency.get(op)
            v = (percentile_from_log2_hist(list(cnt), q, d.latency_base.get(op, 0))
                 if cnt is not None and cnt.sum() > 0 else None)
            out.append(np.nan if v is None else float(v))
        return np.array(out)
    return metric


def plot_latency(g: Group, outdir: Path) -> list[Path]:
    ops = sorted({op for d in g.points.values() for op in d.latency})
    if not ops:
        return []
    facets = _many_series(g)
    if facets:  # too many histograms for one axis: p50 and p99 per setting instead
        out = []
        for op in ops:
            for q in (50, 99):
                out += plot_panels(g, outdir, facets, _latency_pct(op, q),
                                   f"{op} latency p{q} per setting (cycles, log2 bucket bound)",
                                   f"{op} p{q}, cycles", f"latency-{_safe(op)}-p{q}",
                                   ideal=False)
        return out
    fig, axes = _figure(len(ops), legend_out=len(g.series) > 3)
    colors = _colors(len(g.series))
    for ax, op in zip(axes, ops):
        for (sk, pts), c in zip(g.series.items(), colors):
            with_op = [d for d in pts if op in d.latency and d.latency[op].sum() > 0]
            if not with_op:
                continue
            shown = [with_op[-1]] if len(with_op) == 1 else [with_op[0], with_op[-1]]
            for d, ls in zip(shown, ("--", "-") if len(shown) == 2 else ("-",)):
                cnt = d.latency[op]
                base = d.latency_base.get(op, 0)
                edges = 2.0 ** (base + np.arange(cnt.size + 1))
                frac = cnt / cnt.sum()
                ax.stairs(np.where(frac > 0, frac, np.nan), edges, color=c, ls=ls,
                          label=f"{g.label(sk)} N={d.key.workers}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(f"{op} latency, cycles (log2 buckets)")
        ax.set_ylabel("fraction of operations")
        ax.set_title(f"{op}: fewest (dashed) and most (solid) workers", fontsize="small")
        _legend(ax, 2 * len(g.series))
    fig.suptitle(g.title("latency histograms"))
    return _save(fig, outdir, f"{_safe(g.workload)}-latency")


def plot_locks_per_op(g: Group, outdir: Path) -> list[Path]:
    facets = _many_series(g)
    if facets:
        return plot_panels(g, outdir, facets, _lock_acq_of,
                           "lock acquisitions per operation, per setting",
                           "lock acquisitions per op", "locks-per-op", ideal=False)
    rows = []
    for sk, pts in g.series.items():
        n = [d.key.workers for d in pts if d.total_ops > 0 and "lock_acquisitions" in d.counters]
        v = [d.counters["lock_acquisitions"] / d.total_ops for d in pts
             if d.total_ops > 0 and "lock_acquisitions" in d.counters]
        if n:
            rows.append((sk, np.array(n), np.array(v)))
    shown = [r for r in rows if np.any(r[2] > 0)]
    if not shown:
        return []
    fig, (ax,) = _figure(1, legend_out=len(shown) > 6)
    colors = dict(zip(g.series, _colors(len(g.series))))
    for sk, n, v in shown:
        ax.plot(n, np.where(v > 0, v, np.nan), marker="o", ms=4, color=colors[sk],
                label=g.label(sk))
    _shade_oversubscribed(ax, g.points.values())
    _workers_axis(ax, [k.workers for k in g.points])
    _yscale(ax, np.concatenate([r[2] for r in shown]))
    ax.set_ylabel("lock acquisitions per op")
    hidden = len(rows) - len(shown)
    ax.set_title("zone-lock style: 2/batch for a pcp alloc+free stream"
                 + (f"; {hidden} series took no lock" if hidden else ""), fontsize="small")
    _legend(ax, len(shown))
    fig.suptitle(g.title("lock acquisitions per operation"))
    return _save(fig, outdir, f"{_safe(g.workload)}-locks-per-op")


def _extra_values(d: PointData, key: str) -> list:
    return [e[key] for e in d.extra if key in e]


def _memmap_view(g: Group, outdir: Path) -> tuple[list[Path], set[str]]:
    """Resident memmap bytes and ns per lookup, per variant × layout parameters."""
    keys = {"memmap_resident_bytes", "present_bytes"}
    variants = sorted({k.variant for k in g.series})

    def group_of(sk):
        # Bars are grouped by the parameters that vary within a variant (the layout,
        # the walk); a parameter the variant fixes (memory_model) would split every
        # group into one bar per variant.
        return json.dumps({k: v for k, v in json.loads(sk.params).items() if k in g.vary},
                          sort_keys=True)

    layouts = sorted({group_of(k) for k in g.series})
    if not any(_extra_values(d, "memmap_resident_bytes") for d in g.points.values()):
        return [], set()
    fig, (axr, axl) = _figure(2)
    width = 0.8 / max(len(layouts), 1)
    colors = _colors(len(layouts))
    resident_all, ns_all, present = [], [], set()
    for j, (lay, c) in enumerate(zip(layouts, colors)):
        res, ns = [], []
        for v in variants:
            pts = [pts for sk, pts in g.series.items() if sk.variant == v and group_of(sk) == lay]
            if not pts:
                res.append(np.nan)
                ns.append(np.nan)
                continue
            d = pts[0][0]  # fewest workers: the uncontended lookup cost
            r = _extra_values(d, "memmap_resident_bytes")
            res.append(float(np.median(r)) if r else np.nan)
            present.update(_extra_values(d, "present_bytes"))
            ns.append(1e9 * d.key.workers / d.throughput if d.throughput > 0 else np.nan)
        xs = np.arange(len(variants)) + (j - (len(layouts) - 1) / 2) * width
        lab = " ".join(SeriesKey("", "", lay, "process").label(vary=g.vary).split()) or "all"
        axr.bar(xs, res, width, color=c, label=lab)
        axl.bar(xs, ns, width, color=c, label=lab)
        for ax, vals in ((axr, res), (axl, ns)):
            for x, val in zip(xs, vals):
                if not np.isfinite(val):  # refused (not runnable) or not measured
                    ax.annotate("n/a", (x, 0), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize="x-small", rotation=90)
        resident_all += res
        ns_all += ns
    for p in sorted(present)[:3]:
        axr.axhline(p / 4096 * 64, color="k", ls=":", lw=1,
                    label=f"64 B per present 4 KiB page ({p / 2**30:.3g} GiB present)")
    for ax, vals in ((axr, resident_all), (axl, ns_all)):
        ax.set_xticks(np.arange(len(variants)), variants)
        ax.set_xlabel("memory model (variant)")
        _yscale(ax, vals)
    axr.set_ylabel("resident memmap, bytes")
    axl.set_ylabel("ns per lookup per worker (fewest workers)")
    _legend(axr, len(layouts) + 1)
    fig.suptitle(g.title("memmap footprint and lookup cost"))
    return _save(fig, outdir, f"{_safe(g.workload)}-memmap"), keys


def _frag_view(g: Group, outdir: Path) -> tuple[list[Path], set[str]]:
    """Free 2 MiB (pageblock_order 9) blocks after each fragmentation round."""
    # pagealloc reports it as frag_free_huge_per_round
    keys = [k for k in ("free_huge_per_round", "frag_free_huge_per_round")
            if any(_extra_values(d, k) for d in g.points.values())]
    if not keys:
        return [], set()
    key = keys[0]
    curves = []
    for sk, pts in g.series.items():
        for d in pts:
            runs = [np.asarray(r, float) for r in _extra_values(d, key) if len(r)]
            if runs:
                m = min(len(r) for r in runs)
                curves.append((sk, d.key.workers, np.mean([r[:m] for r in runs], axis=0)))
    if not curves:
        return [], set()
    fig, (ax,) = _figure(1, legend_out=len(curves) > 6)
    colors = dict(zip(g.series, _colors(len(g.series))))
    multi_n = len({n for _, n, _ in curves}) > 1
    styles = ["-", "--", ":", "-."]
    nidx = {n: i for i, n in enumerate(sorted({n for _, n, _ in curves}))}
    for sk, n, y in curves:
        ax.plot(np.arange(1, y.size + 1), y, color=colors[sk],
                ls=styles[nidx[n] % 4] if multi_n else "-",
                label=g.label(sk) + (f" N={n}" if multi_n else ""))
    _yscale(ax, np.concatenate([c[2] for c in curves]))
    ax.set_xlabel("round (free and reallocate 10 % of memory)")
    ax.set_ylabel("free 2 MiB blocks")
    _legend(ax, len(curves))
    fig.suptitle(g.title("fragmentation: free huge blocks per round"))
    return _save(fig, outdir, f"{_safe(g.workload)}-frag"), {key}


def _cma_view(g: Group, outdir: Path) -> tuple[list[Path], set[str]]:
    """cma_alloc (or the buddy's high-order allocation) failure rate and mean latency
    against the zone's target occupancy, one line per variant and pinned share."""
    keys = {"failure_rate_run", "by_occupancy_run", "attempts_run", "pages_migrated_per_alloc"}
    rows: dict[str, list] = {}
    for d in g.points.values():
        e = d.extra[0] if d.extra else {}
        params = json.loads(d.key.params)
        if "failure_rate_run" not in e or "occupancy" not in params:
            continue
        bins = [b for b in e.get("by_occupancy_run", []) if b.get("attempts")]
        att = sum(b["attempts"] for b in bins)
        mean = (sum(b["attempts"] * b["mean_cycles"] for b in bins if b["mean_cycles"] is not None)
                / att) if att else np.nan
        label = d.key.variant + "".join(f" {k}={params[k]}" for k in ("pinned_share",)
                                         if k in params)
        rows.setdefault(label, []).append((float(params["occupancy"]),
                                           float(e["failure_rate_run"] or 0.0), mean,
                                           float(e.get("pages_migrated_per_alloc") or 0.0)))
    if not rows:
        return [], set()
    fig, axes = _figure(3)
    colors = dict(zip(sorted(rows), _colors(len(rows))))
    for label, pts in sorted(rows.items()):
        pts.sort()
        occ = [p[0] for p in pts]
        for ax, col in zip(axes, (1, 2, 3)):
            ax.plot(occ, [p[col] for p in pts], marker="o", ms=4, color=colors[label], label=label)
    axes[0].set_ylabel("allocation failure rate")
    axes[0].set_ylim(-0.05, 1.05)
    axes[1].set_ylabel("mean allocation latency, cycles")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("pages migrated per allocation")
    for ax in axes:
        ax.set_xlabel("target occupancy of the area (movable pages)")
    _legend(axes[0], len(rows))
    fig.suptitle(g.title("contiguous allocation vs occupancy"))
    return _save(fig, outdir, f"{_safe(g.workload)}-occupancy"), keys


# Extras every point carries from the harness itself: bookkeeping, not results to plot.
HARNESS_EXTRAS = {"harness_overhead", "final_batch"}


def _generic_extra(g: Group, outdir: Path, claimed: set[str]) -> list[Path]:
    """Every unclaimed numeric extra: scalars vs workers, number lists vs their index."""
    keys: dict[str, str] = {}
    for d in g.points.values():
        for e in d.extra:
            for k, v in e.items():
                if k in claimed or k in keys or k in HARNESS_EXTRAS:
                    continue
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys[k] = "scalar"
                elif (isinstance(v, list) and v
                      and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                    keys[k] = "list"
    if not keys:
        return []
    fig, axes = _figure(len(keys))
    colors = dict(zip(g.series, _colors(len(g.series))))
    for ax, (k, kind) in zip(axes, sorted(keys.items())):
        vals = []
        for sk, pts in g.series.items():
            if kind == "scalar":
                n, y = [], []
                for d in pts:
                    v = [x for x in _extra_values(d, k) if isinstance(x, (int, float))]
                    if v:
                        n.append(d.key.workers)
                        y.append(float(np.median(v)))
                if n:
                    ax.plot(n, y, marker="o", ms=4, color=colors[sk], label=g.label(sk))
                    vals += y
            else:
                d = pts[-1]  # the most workers
                runs = [np.asarray(r, float) for r in _extra_values(d, k)
                        if isinstance(r, list) and r]
                if runs:
                    m = min(len(r) for r in runs)
                    y = np.mean([r[:m] for r in runs], axis=0)
                    ax.plot(np.arange(m), y, color=colors[sk],
                            label=f"{g.label(sk)} N={d.key.workers}")
                    vals += list(y)
        if kind == "scalar":
            _workers_axis(ax, [p.workers for p in g.points])
            ax.set_title(f"extra: {k} (median over repeats)", fontsize="small")
        else:
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("index")
            ax.set_title(f"extra: {k} (mean over repeats, most workers)", fontsize="small")
        ax.set_ylabel(f"{k}, {_unit(k)}")
        _yscale(ax, vals)
        _legend(ax, len(g.series))
    fig.suptitle(g.title(f"model-specific results ({g.model or 'unknown model'})"))
    return _save(fig, outdir, f"{_safe(g.workload)}-extra")


# model name -> views; each returns (files, extra keys it drew) and may draw nothing
FAMILY_VIEWS: dict[str, list[Callable[[Group, Path], tuple[list[Path], set[str]]]]] = {
    "memmap": [_memmap_view],
    "pagealloc": [_frag_view],
    "cma": [_cma_view],
    "llfree": [_frag_view],
}


def _model_vs_kernel(docs: list[tuple[dict, str]], outdir: Path, n_boot: int) -> list[Path]:
    from .kernelcmp import plot_model_vs_kernel

    return plot_model_vs_kernel(docs, outdir, n_boot=n_boot)


# name -> a view across workloads (one family beside another), drawn from all the loaded
# documents together; it draws nothing unless the results it compares are among them
CROSS_VIEWS: dict[str, Callable[[list[tuple[dict, str]], Path, int], list[Path]]] = {
    "model-vs-kernel": _model_vs_kernel,
}


def plot_group(g: Group, outdir: Path, n_boot: int = 300) -> list[Path]:
    out = plot_throughput(g, outdir)
    out += plot_scaling(g, outdir, n_boot=n_boot)
    out += plot_latency(g, outdir)
    out += plot_locks_per_op(g, outdir)
    claimed: set[str] = set()
    for view in FAMILY_VIEWS.get(g.model, []):
        files, keys = view(g, outdir)
        out += files
        claimed |= keys
    out += _generic_extra(g, outdir, claimed)
    return out


def plot_docs(docs: list[tuple[dict, str]], outdir, n_boot: int = 300,
              formats=FORMATS) -> dict[str, list[Path]]:
    """Draw every view of loaded documents; workload name (or cross-view name, see
    :data:`CROSS_VIEWS`) -> files written (in each of ``formats``)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    saved = list(_formats)
    _formats[:] = list(formats)
    try:
        out = {g.workload: plot_group(g, outdir, n_boot=n_boot) for g in groups(docs) if g.points}
        for name, view in CROSS_VIEWS.items():
            files = view(docs, outdir, n_boot)
            if files:
                out[name] = files
    finally:
        _formats[:] = saved
    return out


def plot_files(paths, outdir, n_boot: int = 300) -> list[Path]:
    """Draw every view of the given result files into outdir; return the files written.

    Raises AnalysisError for unreadable or invalid files.  Nothing is run.
    """
    return [p for files in plot_docs(load_all(paths), outdir, n_boot).values() for p in files]

"""Model vs kernel: the running kernel's page-fault scaling beside the pagealloc model.

The kernel side is a ``kernelpf`` result (workload ``kernel-pagefault``: will-it-scale
page_fault1, variants ``4k`` and ``thp``, process and thread mode).  The model side is a
``pagealloc`` result of the ``pagefault`` workload (alloc an order-0 movable page, write
it, free it): a ``pcp-*`` variant, preferably run with ``pcp_from_box`` so that its
``batch`` / ``high`` are the box's (``high`` = ``high_max`` on 6.7+), and ``buddy``, the
same stream under ``zone->lock`` alone: the kernel without PCP.

Per series the speedup S(N) = X(N) / X(1) comes from :func:`mmbench.scaling.scale_series`
(harmonic mean of interval rates, seeded bootstrap band).  For every kernel series the
ratio S_model(N) / S_kernel(N) says how far the model's scaling is from the kernel's
(1: the same; > 1: the model scales better than the kernel); its interval is a seeded
bootstrap of the ratio (both sides' interval rates resampled independently).  Speedups
are unitless, so a THP series (ops = 2 MiB faults) compares as well as a 4 KiB one,
although the model allocates order 0 only.

Compute (:func:`compare`), format (:func:`table`, :func:`format_table`) and render
(:func:`plot_model_vs_kernel`) are separate; nothing here runs a benchmark, and
matplotlib is imported only to draw.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .scaling import PointData, Scaling, SeriesKey, collect, load, scale_series, series_of

KERNEL_MODEL = "kernelpf"
PAGEALLOC_MODEL = "pagealloc"
KERNEL_VARIANTS = ("4k", "thp")
MODEL_WORKLOAD = "pagefault"
STEM = "model-vs-kernel"
PCP_PREFERENCE = ("pcp-autotune", "pcp-5.18", "pcp-5.14", "pcp-classic")


@dataclass
class Curve:
    """One series' speedup over worker counts."""
    name: str                   # table column / legend label
    role: str                   # "kernel", "pcp" or "buddy"
    series: SeriesKey
    scaling: Scaling
    draws: np.ndarray           # (n_boot, len(workers)) bootstrap speedups, for the ratios

    def index(self, n: int) -> int | None:
        hit = np.flatnonzero(self.scaling.workers == n)
        return int(hit[0]) if hit.size else None


@dataclass
class Ratio:
    """S_model(N) / S_kernel(N) at the worker counts both measured."""
    name: str
    kernel: Curve
    model: Curve
    workers: np.ndarray
    ratio: np.ndarray
    ci: np.ndarray              # shape (2, len(workers))


@dataclass
class Comparison:
    kernel: list[Curve]
    model: list[Curve]
    ratios: list[Ratio]
    workers: list[int]
    oversubscribed: set[int]
    settings: dict              # "kernel" / "model" -> {"batch", "high"} where known
    machine: dict               # the kernel result's machine facts
    notes: list[str] = field(default_factory=list)
    level: float = 0.95


# --------------------------------------------------------------------------- compute

def _loaded(docs: Iterable[Any]) -> list[tuple[dict, str]]:
    """(document, name) pairs from paths, documents or already-loaded pairs."""
    out = []
    for d in docs:
        if isinstance(d, tuple) and len(d) == 2 and isinstance(d[0], dict):
            out.append(d)
        else:
            out.append(load(d))
    return out


def _model_of(doc: dict) -> str:
    return str(doc["workload"].get("model", ""))


def _params(sk: SeriesKey) -> dict:
    return json.loads(sk.params)


def _boot_speedups(points: list[PointData], n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap speedups X_b(N) / (X_b(N0) / N0), resampling each point's interval rates."""
    rng = np.random.default_rng(seed)
    n0 = points[0].key.workers
    boot = np.empty((n_boot, len(points)))
    for j, d in enumerate(points):
        s = d.all_rates
        draws = s[rng.integers(0, s.size, size=(n_boot, s.size))]
        with np.errstate(divide="ignore"):
            boot[:, j] = np.where(np.all(draws > 0, axis=1),
                                  s.size / np.sum(1.0 / np.where(draws > 0, draws, 1.0), axis=1),
                                  0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return boot / (boot[:, :1] / n0)


def _curve(name, role, sk, pts, n_boot, seed, level) -> Curve:
    sc = scale_series(pts, n_boot=n_boot, seed=seed, level=level, usl_boot=0)
    return Curve(name, role, sk, sc, _boot_speedups(pts, n_boot, seed + 1))


def _kernel_series(series: dict[SeriesKey, list[PointData]], notes: list[str]):
    """(variant, mode) -> series of the kernel's 4k / thp faults (the first parameter set)."""
    out: dict[tuple[str, str], SeriesKey] = {}
    for sk in sorted(series):
        if sk.variant not in KERNEL_VARIANTS:
            continue
        k = (sk.variant, sk.mode)
        if k in out:
            notes.append(f"kernel {sk.variant} ({sk.mode}): more than one parameter set; "
                         f"using {out[k].params}")
            continue
        out[k] = sk
    return dict(sorted(out.items(), key=lambda kv: (KERNEL_VARIANTS.index(kv[0][0]), kv[0][1])))


def _model_series(series: dict[SeriesKey, list[PointData]], notes: list[str]):
    """(role, mode) -> the pagefault series to show: the pcp variant configured from the box
    (else the newest pcp generation) and buddy."""
    cands: dict[tuple[str, str], list[SeriesKey]] = {}
    for sk in series:
        p = _params(sk)
        if p.get("workload") != MODEL_WORKLOAD:
            continue
        role = ("pcp" if sk.variant.startswith("pcp-")
                else "buddy" if sk.variant == "buddy" else None)
        if role:
            cands.setdefault((role, sk.mode), []).append(sk)

    def rank(sk):
        p = _params(sk)
        gen = (PCP_PREFERENCE.index(sk.variant) if sk.variant in PCP_PREFERENCE
               else len(PCP_PREFERENCE))
        return (not p.get("pcp_from_box", False), gen, p.get("order", 0) != 0, sk.params)

    out = {}
    for k, sks in sorted(cands.items(), key=lambda kv: (kv[0][0] != "pcp", kv[0][1] != "process",
                                                         kv[0][1])):
        sks.sort(key=rank)
        out[k] = sks[0]
        if len(sks) > 1:
            notes.append(f"model {k[0]} ({k[1]}): {len(sks) - 1} other pagefault series not shown")
    return out


def _kernel_settings(points: Iterable[PointData]) -> dict | None:
    """The box's pcp batch/high as the kernel result recorded them (high_max on 6.7+)."""
    for d in points:
        for e in d.extra:
            pcp = e.get("pcp")
            if isinstance(pcp, dict) and "batch" in pcp:
                high = pcp.get("high_max") if pcp.get("autotune") else pcp.get("high")
                return {"batch": pcp["batch"], "high": high}
    return None


def _model_settings(points: Iterable[PointData], sk: SeriesKey) -> dict:
    for d in points:
        for e in d.extra:
            if isinstance(e.get("pcp_from_box"), dict):
                b = e["pcp_from_box"]
                return {"batch": b.get("batch"), "high": b.get("high"),
                        "source": b.get("source", "/proc/zoneinfo")}
    p = _params(sk)
    return {"batch": p.get("batch"), "high": p.get("high"),
            "source": "params" + ("" if p.get("pcp_from_box") else " (not from the box)")}


def _ratio(model: Curve, kernel: Curve, level: float) -> Ratio:
    ws, r, lo, hi = [], [], [], []
    a = (1 - level) / 2
    for i, n in enumerate(kernel.scaling.workers):
        j = model.index(int(n))
        if j is None:
            continue
        ws.append(int(n))
        with np.errstate(divide="ignore", invalid="ignore"):
            r.append(model.scaling.speedup[j] / kernel.scaling.speedup[i])
            # independent bootstrap draws of both sides, paired by draw index
            m = min(len(model.draws), len(kernel.draws))
            rb = model.draws[:m, j] / kernel.draws[:m, i]
        rb = rb[np.isfinite(rb)]
        q = np.quantile(rb, [a, 1 - a]) if rb.size else (math.nan, math.nan)
        lo.append(float(q[0]))
        hi.append(float(q[1]))
    return Ratio(f"ratio model/{kernel.name}", kernel, model, np.array(ws, float),
                 np.array(r, float), np.array([lo, hi], float).reshape(2, len(ws)))


def compare(docs: Iterable[Any], n_boot: int = 500, seed: int = 0,
            level: float = 0.95) -> Comparison | None:
    """The model-vs-kernel comparison of the given results; None unless both a kernelpf
    4k/thp result and a pagealloc pagefault (pcp or buddy) result are among them."""
    docs = _loaded(docs)
    kdocs = [d for d in docs if _model_of(d[0]) == KERNEL_MODEL]
    mdocs = [d for d in docs if _model_of(d[0]) == PAGEALLOC_MODEL]
    if not kdocs or not mdocs:
        return None
    notes: list[str] = []
    kser = series_of(collect(kdocs))
    mser = series_of(collect(mdocs))
    ksel = _kernel_series(kser, notes)
    msel = _model_series(mser, notes)
    if not ksel or not msel:
        return None
    kernel = [_curve(f"kernel {v} ({mode})", "kernel", sk, kser[sk], n_boot, seed + 10 * i, level)
              for i, ((v, mode), sk) in enumerate(ksel.items())]
    multi_mode = len({mode for _, mode in msel}) > 1
    model = []
    for i, ((role, mode), sk) in enumerate(msel.items()):
        p = _params(sk)
        if role == "pcp":
            name = f"model {sk.variant}" + (" (box batch/high)" if p.get("pcp_from_box")
                                            else f" (batch {p.get('batch')}, high {p.get('high')})")
        else:
            name = "model buddy (kernel without PCP)"
        if multi_mode or mode != "process":
            name += f" [{mode}]"
        model.append(_curve(name, role, sk, mser[sk], n_boot, seed + 1000 + 10 * i, level))
    ratios = []
    pcp = {c.series.mode: c for c in model if c.role == "pcp"}
    if pcp:
        for kc in kernel:
            ref = pcp.get(kc.series.mode) or next(iter(pcp.values()))
            ratios.append(_ratio(ref, kc, level))
    else:
        notes.append("no pcp model series: no model/kernel ratio (buddy alone is shown)")
    for c in kernel + model:  # no USL is shown here: only the notes about the speedup base
        notes += [f"{c.name}: {n}" for n in c.scaling.note.split("; ") if n and "USL" not in n]
    workers = sorted({int(n) for c in kernel + model for n in c.scaling.workers})
    over = {int(n) for c in kernel + model
            for n, o in zip(c.scaling.workers, c.scaling.oversubscribed) if o}
    # configured like the box: the model's batch/high vs what the kernel result recorded
    settings = {}
    ks = _kernel_settings(p for sk in ksel.values() for p in kser[sk])
    if ks:
        settings["kernel"] = ks
    pref = next((c for c in model if c.role == "pcp"), None)
    if pref is not None:
        settings["model"] = _model_settings(mser[pref.series], pref.series)
        ms = settings["model"]
        if ks and (ms["batch"], ms["high"]) != (ks["batch"], ks["high"]):
            notes.append(f"the model's pcp batch/high ({settings['model']['batch']}/"
                         f"{settings['model']['high']}) differ from the kernel box's "
                         f"({ks['batch']}/{ks['high']})")
    kmach = {d[0].get("machine", {}).get("name") for d in kdocs}
    mmach = {d[0].get("machine", {}).get("name") for d in mdocs}
    if kmach != mmach:
        notes.append(f"kernel and model results come from different machines "
                     f"({', '.join(map(str, sorted(kmach, key=str)))} vs "
                     f"{', '.join(map(str, sorted(mmach, key=str)))})")
    return Comparison(kernel, model, ratios, workers, over, settings,
                      dict(kdocs[0][0].get("machine", {})), notes, level)


# --------------------------------------------------------------------------- format

def _cell(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def table(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    """(head, rows) of plain strings: one row per worker count (``*``: oversubscribed);
    speedup and ratio cells are ``value [lo, hi]``, ``–`` where not measured."""
    head = ["workers"] + [c.name for c in cmp.kernel + cmp.model] + [r.name for r in cmp.ratios]
    rows = []
    for n in cmp.workers:
        row = [f"{n}*" if n in cmp.oversubscribed else str(n)]
        for c in cmp.kernel + cmp.model:
            i = c.index(n)
            sc = c.scaling
            row.append("–" if i is None else _cell(sc.speedup[i], sc.speedup_ci[0, i],
                                                   sc.speedup_ci[1, i]))
        for r in cmp.ratios:
            hit = np.flatnonzero(r.workers == n)
            i = int(hit[0]) if hit.size else None
            row.append("–" if i is None else _cell(r.ratio[i], r.ci[0, i], r.ci[1, i]))
        rows.append(row)
    return head, rows


def caption(cmp: Comparison) -> str:
    """One paragraph: what the cells are and how the model was configured."""
    pct = int(round(cmp.level * 100))
    s = (f"Speedup S(N) = X(N)/X(1) per series (harmonic mean of interval rates; [{pct}% "
         f"bootstrap interval]); ratio = model speedup / kernel speedup (1: the model scales "
         f"like the kernel, > 1: better)")
    k, m = cmp.settings.get("kernel"), cmp.settings.get("model")
    if m:
        s += f"; model pcp batch {m['batch']}, high {m['high']} ({m['source']})"
    if k:
        s += f"; kernel box pcp batch {k['batch']}, high {k['high']}"
    if cmp.oversubscribed:
        s += "; * = oversubscribed (more workers than allowed CPUs)"
    return s + ". Kernel thp ops are 2 MiB faults; the model allocates order 0."


def format_table(cmp: Comparison, fmt: str = "term") -> str:
    """The table as aligned text (``term``) or a Markdown pipe table (``md``), with its
    caption and notes."""
    head, rows = table(cmp)
    if fmt == "md":
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + ["", caption(cmp)] + [f"- note: {n}" for n in cmp.notes]) + "\n"
    if fmt != "term":
        raise ValueError(f"fmt must be term or md, got {fmt!r}")
    # one column per series is too wide for a terminal: one block per series instead
    width = max(len(h) for h in head[1:])
    lines = ["model vs kernel: page-fault speedup S(N) = X(N)/X(1)",
             f"{'':<{width}}  " + "  ".join(f"{'N=' + r[0]:>22}" for r in rows)]
    for j, h in enumerate(head[1:], start=1):
        lines.append(f"{h:<{width}}  " + "  ".join(f"{r[j]:>22}" for r in rows))
    return "\n".join(lines + [caption(cmp)] + [f"note: {n}" for n in cmp.notes]) + "\n"


# --------------------------------------------------------------------------- render

KERNEL_STYLE = {"process": ("o", "-"), "thread": ("s", "-.")}


def plot_comparison(cmp: Comparison, outdir, stem: str = STEM) -> list[Path]:
    """Speedup vs workers of every curve, and the model/kernel ratios; PNG and SVG."""
    from .plot import _colors, _figure, _save, _workers_axis

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    fig, (ax, axr) = _figure(2, width=7.0, height=5.0)
    curves = cmp.kernel + cmp.model
    colors = dict(zip([c.name for c in curves], _colors(len(curves))))
    for c in curves:
        sc = c.scaling
        marker, ls = KERNEL_STYLE.get(c.series.mode, ("o", "-"))
        if c.role != "kernel":
            marker, ls = ("D" if c.role == "pcp" else "v"), "--"
        col = colors[c.name]
        ax.plot(sc.workers, sc.speedup, color=col, marker=marker, ls=ls, ms=5, label=c.name)
        ax.fill_between(sc.workers, *sc.speedup_ci, color=col, alpha=0.15, lw=0)
        if sc.oversubscribed.any():
            o = sc.oversubscribed
            ax.plot(sc.workers[o], sc.speedup[o], ls="none", marker=marker, ms=10, mfc="white",
                    mec=col, zorder=3)
    ideal = np.array(cmp.workers, float)
    ax.plot(ideal, ideal, color="k", ls=":", lw=1, label="linear ideal S(N) = N")
    for r in cmp.ratios:
        col = colors[r.kernel.name]
        marker, ls = KERNEL_STYLE.get(r.kernel.series.mode, ("o", "-"))
        axr.plot(r.workers, r.ratio, color=col, marker=marker, ls=ls, ms=5,
                 label=f"model / {r.kernel.name}")
        axr.fill_between(r.workers, *r.ci, color=col, alpha=0.15, lw=0)
        o = np.array([int(n) in cmp.oversubscribed for n in r.workers], bool)
        if o.any():
            axr.plot(r.workers[o], r.ratio[o], ls="none", marker=marker, ms=10, mfc="white",
                     mec=col, zorder=3)
    axr.axhline(1.0, color="k", ls=":", lw=1, label="model scales like the kernel")
    for a in (ax, axr):
        if cmp.oversubscribed:
            a.axvspan(min(cmp.oversubscribed) * 0.95, max(cmp.oversubscribed) * 1.05,
                      color="0.9", zorder=0, label="oversubscribed (hollow markers)")
        _workers_axis(a, cmp.workers)
    # very wide bands (a noisy series) would flatten every curve: they run off the top
    top = max([max(cmp.workers)] + [float(np.nanmax(c.scaling.speedup)) for c in curves])
    ax.set_ylim(0, 1.3 * top)
    ax.set_ylabel("speedup S(N) = X(N) / X(1)")
    pct = int(round(cmp.level * 100))
    ax.set_title(f"kernel: solid (processes, circles), dash-dot (threads, squares); "
                 f"model: dashed; bands: {pct}% bootstrap", fontsize="small", wrap=True)
    ax.legend(fontsize="x-small", loc="upper left")
    axr.set_ylabel("model speedup / kernel speedup")
    ref = {r.model.name.removeprefix("model ") for r in cmp.ratios}
    axr.set_title(f"model = {', '.join(sorted(ref)) or 'none'}; > 1: the model scales better",
                  fontsize="small", wrap=True)
    if cmp.ratios:
        rtop = max(float(np.nanmax(r.ratio)) if r.ratio.size else 1.0 for r in cmp.ratios)
        axr.set_ylim(0, max(2.0, 1.3 * rtop))
    if cmp.ratios:
        axr.legend(fontsize="x-small", loc="best")
    else:
        axr.text(0.5, 0.5, "no pcp model series: no ratio", ha="center",
                 transform=axr.transAxes)
    m = cmp.machine
    st = cmp.settings
    pcp = ""
    if "model" in st:
        pcp = f"; model pcp batch {st['model']['batch']}, high {st['model']['high']}"
    if "kernel" in st:
        pcp += f"; box pcp batch {st['kernel']['batch']}, high {st['kernel']['high']}"
    fig.suptitle(f"model vs kernel: page-fault speedup\n{m.get('name', '?')} "
                 f"({m.get('cpu_model') or '?'}, {m.get('nproc', '?')} CPUs, kernel "
                 f"{m.get('kernel', '?')}){pcp}", fontsize="medium")
    return _save(fig, outdir, stem)


def plot_model_vs_kernel(docs: Iterable[Any], outdir, n_boot: int = 300,
                         seed: int = 0) -> list[Path]:
    """Draw the model-vs-kernel view into outdir; [] unless both kinds of result are given."""
    cmp = compare(docs, n_boot=n_boot, seed=seed)
    return [] if cmp is None else plot_comparison(cmp, outdir)

"""Trends of one machine's stored results over commits and dates, with step changes flagged.

Each result file is one run (a commit on a date).  The key figure of a point
identity in a run is the median of its per-interval rates (all repeats).  A
*step* is a change between consecutive runs holding the same point that is at
least ``threshold_pct`` and significant by the same test as ``mmbench compare``
(Welch or Mann-Whitney on the interval rates, Holm-corrected across all steps of
the workload).  Reads result files only; matplotlib is imported lazily.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


from .compare import TESTS, holm, p_value
from .scaling import AnalysisError, PointKey, collect, load, varying_params


@dataclass
class Run:
    doc: dict
    name: str
    created: str
    commit: str                  # short hash, "-dirty" appended; "?" without git

    @property
    def label(self) -> str:
        return f"{self.commit}\n{self.created[:10]}"


@dataclass
class Step:
    key: PointKey
    before: Run
    after: Run
    change_pct: float            # of the median interval rate
    p: float
    p_holm: float = math.nan

    @property
    def kind(self) -> str:
        return "regression" if self.change_pct < 0 else "improvement"


def _is_result(path: Path) -> bool:
    """A file that claims to be an mmbench result (broken ones still fail loudly in load)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return True
    return b'"mmbench-result"' in head or not head.lstrip().startswith(b"{")


def load_runs(results_dir, workload: str | None = None, machine: str | None = None) -> dict[str, list[Run]]:
    """workload name -> runs of one machine, oldest first."""
    root = Path(results_dir)
    if not root.is_dir():
        raise AnalysisError(f"{root}: not a results directory")
    files = sorted(root.rglob("*.json"))
    runs = []
    for f in files:
        if not _is_result(f):  # exports (pyperf JSON) may sit beside the results
            continue
        doc, name = load(f)
        if workload is not None and doc["workload"]["name"] != workload:
            continue
        if machine is not None and doc.get("machine", {}).get("name") != machine:
            continue
        git = doc.get("machine", {}).get("git") or {}
        commit = (git.get("short") or "?") + ("-dirty" if git.get("dirty") else "")
        runs.append(Run(doc, name, str(doc.get("created", "")), commit))
    if not runs:
        what = " and ".join(x for x in (workload and f"workload {workload}",
                                        machine and f"machine {machine}") if x)
        raise AnalysisError(f"{root}: no results{' for ' + what if what else ''}")
    machines = sorted({str(r.doc.get("machine", {}).get("name")) for r in runs})
    if len(machines) > 1:
        raise AnalysisError(f"{root}: results of {len(machines)} machines ({', '.join(machines)});"
                            f" choose one")
    out: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: (r.created, r.name)):
        out.setdefault(r.doc["workload"]["name"], []).append(r)
    return out


def find_steps(runs: list[Run], threshold_pct: float = 5.0, alpha: float = 0.05,
               test: str = "welch") -> tuple[dict[PointKey, list[tuple[int, float]]], list[Step]]:
    """(identity -> [(run index, median ops/s)], significant steps) for one workload's runs."""
    if test not in TESTS:
        raise AnalysisError(f"unknown test {test!r}: use one of {', '.join(TESTS)}")
    per_run = [collect([(r.doc, r.name)]) for r in runs]
    trend: dict[PointKey, list[tuple[int, float]]] = {}
    cand: list[Step] = []
    last: dict[PointKey, int] = {}
    for i, pts in enumerate(per_run):
        for k, d in sorted(pts.items()):
            trend.setdefault(k, []).append((i, d.median))
            if k in last:
                j = last[k]
                prev = per_run[j][k]
                change = (d.median / prev.median - 1) * 100 if prev.median > 0 else math.nan
                cand.append(Step(k, runs[j], runs[i], change,
                                 p_value(prev.all_rates, d.all_rates, test)))
            last[k] = i
    for s, ph in zip(cand, holm([s.p for s in cand])):
        s.p_holm = float(ph)
    steps = [s for s in cand if abs(s.change_pct) >= threshold_pct and s.p_holm < alpha]
    return trend, steps


def format_steps(steps: list[Step], test: str = "welch", threshold_pct: float = 5.0,
                 alpha: float = 0.05) -> str:
    head = (f"step changes: median ops/s changed by at least ±{threshold_pct:g}% between "
            f"consecutive runs and significant by {TESTS[test]} (Holm, alpha {alpha:g})")
    if not steps:
        return head + "\n  none\n"
    lines = [head]
    vary = varying_params(s.key for s in steps)
    for s in steps:
        lines.append(f"  {s.kind:<11} {s.key.workload}: {s.key.label(vary)}  {s.change_pct:+.1f}%  "
                     f"{s.before.commit} -> {s.after.commit} ({s.after.created[:10]}), "
                     f"p={s.p_holm:.2g}")
    return "\n".join(lines) + "\n"


def _plot_workload(wl: str, runs: list[Run], trend, steps: list[Step], outdir: Path) -> list[Path]:
    from matplotlib.figure import Figure
    from matplotlib import colormaps

    from .plot import _safe, _spans_decades

    series = sorted({k.series for k in trend})
    vary = varying_params(trend)
    ncol = 1 if len(series) == 1 else 2
    nrow = math.ceil(len(series) / ncol)
    fig = Figure(figsize=(max(6.4, 0.7 * len(runs) + 2) * ncol, 3.4 * nrow + 0.8),
                 layout="constrained")
    step_at = {(s.key, s.after.name): s for s in steps}
    cmap = colormaps["viridis"]
    for idx, sk in enumerate(series):
        ax = fig.add_subplot(nrow, ncol, idx + 1)
        keys = sorted((k for k in trend if k.series == sk), key=lambda k: k.workers)
        vals = []
        for j, k in enumerate(keys):
            c = cmap(j / max(len(keys) - 1, 1) * 0.9)
            xi = [i for i, _ in trend[k]]
            y = [v for _, v in trend[k]]
            vals += y
            ax.plot(xi, y, marker="o", ms=3, color=c, label=f"N={k.workers}")
            for i, v in trend[k]:
                s = step_at.get((k, runs[i].name))
                if s is not None:
                    ax.plot([i], [v], ls="none", ms=11, mfc="none", mew=1.5,
                            marker="v" if s.kind == "regression" else "^",
                            mec="tab:red" if s.kind == "regression" else "tab:green")
        if _spans_decades(vals):
            ax.set_yscale("log")
        ax.set_title(sk.label(vary=vary), fontsize="small")
        ax.set_ylabel("median ops/s")
        ax.set_xticks(range(len(runs)), [r.label for r in runs], fontsize="x-small")
        ax.set_xlim(-0.5, len(runs) - 0.5)
        ax.plot([], [], ls="none", marker="v", mfc="none", mec="tab:red", label="step down")
        ax.plot([], [], ls="none", marker="^", mfc="none", mec="tab:green", label="step up")
        ax.legend(fontsize="x-small", ncol=2, loc="best")
    m = runs[0].doc.get("machine", {})
    fig.suptitle(f"{wl}: history on {m.get('name')} ({m.get('cpu_model') or '?'}), "
                 f"{len(runs)} runs; {len(steps)} step change(s) flagged")
    out = []
    for ext in ("png", "svg"):
        p = outdir / f"history-{_safe(wl)}.{ext}"
        fig.savefig(p, dpi=100 if ext == "png" else None)
        out.append(p)
    return out


def history(results_dir, workload: str | None = None, machine: str | None = None, *,
            outdir, threshold_pct: float = 5.0, alpha: float = 0.05,
            test: str = "welch") -> list[Path]:
    """Trend plots (PNG, SVG) and a steps.txt per workload of one machine; return the files.

    Raises AnalysisError when the directory holds no usable results, results of
    several machines without ``machine``, or an unreadable file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for wl, runs in load_runs(results_dir, workload, machine).items():
        trend, steps = find_steps(runs, threshold_pct, alpha, test)
        out += _plot_workload(wl, runs, trend, steps, outdir)
        txt = outdir / f"history-{wl}-steps.txt"
        txt.write_text(format_steps(steps, test, threshold_pct, alpha))
        out.append(txt)
    return out

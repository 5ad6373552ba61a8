"""One static HTML page of stored results: plots, summary tables, machine facts, limits.

``write_report(paths, outdir)`` writes ``outdir/index.html`` and its plots under
``outdir/plots/`` (relative links, so the folder can be copied or served as is).
Reads result files only; nothing is run.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path

from .plot import Group, groups, plot_docs
from .scaling import USL_NEEDS, load_all, scale_series

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.bad { color: #b00; font-weight: bold; } .ok { color: #070; font-weight: bold; } .note { color: #555; font-size: 0.9em; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        if math.isnan(x):
            return "–"
        return f"{x:.{digits}g}"
    return _e(x)


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Cells are already-escaped HTML; the first ``left`` columns are left-aligned."""
    th = "".join(f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>"
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _machine_section(docs) -> str:
    seen, out = set(), []
    for doc, name in docs:
        m = doc.get("machine", {})
        git = m.get("git") or {}
        key = (m.get("name"), git.get("commit"), m.get("kernel"))
        if key in seen:
            continue
        seen.add(key)
        topo = m.get("topology") or {}
        facts = [("name", m.get("name")), ("hostname", m.get("hostname")),
                 ("CPU model", m.get("cpu_model")), ("nproc", m.get("nproc")),
                 ("allowed CPUs", len(m.get("allowed_cpus") or [])),
                 ("topology", ", ".join(f"{k} {v}" for k, v in topo.items())),
                 ("kernel", m.get("kernel")),
                 ("git", f"{git.get('short')}{' (dirty)' if git.get('dirty') else ''}"
                  if git else "–")]
        facts += [(k, v) for k, v in m.items() if k not in
                  {"name", "hostname", "cpu_model", "nproc", "allowed_cpus", "topology",
                   "kernel", "git"} and isinstance(v, (str, int, float, bool))]
        lim = doc.get("limits", {})
        units = {"atomic_ns": "ns (uncontended atomic op)",
                 "pingpong_ns": "ns (cache-line transfer between CPUs)",
                 "memset_gbps": "GB/s (memset bandwidth, one CPU)"}
        out.append(f"<h3>machine {_e(m.get('name'))}</h3>")
        out.append(_table(["fact", "value"], [[_e(k), _e(v)] for k, v in facts], left=2))
        out.append("<h4>measured limits</h4>")
        out.append(_table(["limit", "value", "unit"],
                          [[_e(k), _num(v), _e(units.get(k, ""))] for k, v in lim.items()],
                          left=1))
    return "\n".join(out)


def _points_table(g: Group) -> str:
    rows = []
    for sk, pts in g.series.items():
        for d in pts:
            pw = d.per_worker_all
            jain = (pw.sum() ** 2 / (pw.size * (pw ** 2).sum())
                    if pw.size and (pw ** 2).sum() > 0 else float("nan"))
            inv = "ok" if d.invariants_ok else '<span class="bad">FAILED</span>'
            rows.append([_e(g.label(sk)), str(d.key.workers), _num(d.throughput),
                         f"±{d.rel_stddev * 100:.1f}%", _num(d.throughput / d.key.workers),
                         _num(float(jain), 3), str(len(d.rates)), str(d.all_rates.size),
                         "yes" if d.oversubscribed else "", inv])
    return _table(["series", "workers", "ops/s (hmean)", "±stddev", "ops/s per worker",
                   "Jain fairness", "repeats", "intervals", "oversubscribed", "invariants"], rows)


def _usl_table(g: Group, n_boot: int) -> str:
    rows = []
    for sk, pts in g.series.items():
        if len(pts) < 2:
            continue
        sc = scale_series(pts, n_boot=n_boot, usl_boot=n_boot // 3)
        f = sc.usl
        if f is None:
            rows.append([_e(g.label(sk)), "–", "–", "–", "–", _e(sc.note or USL_NEEDS)])
            continue

        def ci(name, v):
            lo, hi = f.ci[name]
            return f"{_num(v)} [{_num(lo, 3)}, {_num(hi, 3)}]"
        rows.append([_e(g.label(sk)), ci("lambda", f.lam), ci("sigma", f.sigma),
                     ci("kappa", f.kappa), ci("peak", f.peak),
                     _e(f"{int(f.level * 100)}% CI, {f.ci_method}"
                        + (f"; {sc.note}" if sc.note else ""))])
    if not rows:
        return f'<p class="note">No USL fit: {_e(USL_NEEDS)}.</p>'
    return _table(["series", "λ (ops/s at N=1)", "σ (contention)", "κ (coherency)",
                   "peak N*", "method"], rows)


def _model_vs_kernel_html(docs, n_boot: int) -> str | None:
    from .kernelcmp import caption, compare, table

    cmp = compare(docs, n_boot=n_boot)
    if cmp is None:
        return None
    head, rows = table(cmp)
    notes = "".join(f"<li>{_e(n)}</li>" for n in cmp.notes)
    return (f'<p class="note">{_e(caption(cmp))}</p>'
            + _table([_e(h) for h in head], [[_e(c) for c in r] for r in rows])
            + (f'<ul class="note">{notes}</ul>' if notes else ""))


def _fidelity_html(docs, n_boot):
    """The shipped claims (workloads/claims) these results cover: PASS / FAIL per claim,
    each check's measured and published figure; claims they do not cover are listed."""
    from . import claims as C
    try:
        todo = C.find([])
    except ValueError:
        return None
    plain = [d for d, _ in docs]
    rows, uncovered = [], []
    for c in todo:
        v = C.evaluate(c, plain)
        if v.missing:
            uncovered.append(c.name)
            continue
        rows.append([f'<span class="{"ok" if v.status == "PASS" else "bad"}">{v.status}</span>',
                     _e(c.name), _e(c.title), _e(c.source),
                     "<br>".join(_e(line) for line in v.lines)])
    if not rows:
        return None
    note = (f'<p class="note">claims these results do not cover (run <code>mmbench reproduce'
            f'</code>): {_e(", ".join(uncovered))}</p>' if uncovered else "")
    return (_table(["verdict", "claim", "statement", "source", "checks"], rows, left=5) + note)


# plot.CROSS_VIEWS name -> (section title, its tables as HTML, or None without its inputs)
CROSS_SECTIONS = {
    "model-vs-kernel": ("model vs kernel: page-fault speedup", _model_vs_kernel_html),
    "fidelity": ("fidelity: published results reproduced", _fidelity_html),
}


def _figures(paths, outdir: Path) -> list[str]:
    out = []
    for p in paths:
        if p.suffix == ".png":
            rel = p.relative_to(outdir).as_posix()
            img = f'<img src="{_e(rel)}" alt="{_e(p.stem)}">'
            if p.with_suffix(".svg").exists():  # the quick suite writes PNG only
                svg = p.with_suffix(".svg").relative_to(outdir).as_posix()
                img = f'<a href="{_e(svg)}">{img}</a>'
            out.append(f"<figure>{img}</figure>")
    return out


def write_report(paths, outdir, n_boot: int = 300, formats=("png", "svg")) -> Path:
    """Write outdir/index.html (and outdir/plots/) for the given result files; return its path.

    Raises AnalysisError for unreadable or invalid files.
    """
    docs = load_all(paths)
    outdir = Path(outdir)
    plotdir = outdir / "plots"
    files = plot_docs(docs, plotdir, n_boot=n_boot, formats=formats)
    body = [f"<h1>mmbench report</h1><p class=\"note\">generated "
            f"{_e(_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))} from "
            f"{len(docs)} result file(s): {_e(', '.join(n for _, n in docs))}. Throughput is "
            "the harmonic mean of per-interval rates (all workers), pooled over repeats; "
            "±stddev is the relative standard deviation of those rates.</p>"]
    toc = []
    sections = []
    for g in groups(docs):
        if not g.points:
            continue
        wl = g.docs[0][0]["workload"]
        anchor = "wl-" + "".join(c if c.isalnum() else "-" for c in g.workload)
        toc.append(f'<li><a href="#{anchor}">{_e(g.workload)}</a></li>')
        sec = [f'<h2 id="{anchor}">{_e(g.workload)}</h2>',
               f"<p>{_e(wl.get('description', ''))} <span class=\"note\">(model "
               f"{_e(wl.get('model'))}, workload version {_e(wl.get('version'))}, "
               f"{len(g.docs)} file(s){', sources: ' + _e(', '.join(g.sources)) if len(g.sources) > 1 else ''})"
               "</span></p>"]
        for note in wl.get("notes") or []:
            sec.append(f'<p class="note">{_e(note)}</p>')
        from .results import partial_note
        for d, name in g.docs:
            note = partial_note(d)
            if note:
                sec.append(f'<p class="bad">{_e(name)}: {_e(note)}</p>')
        bad = [d for d in g.points.values() if not d.invariants_ok]
        if bad:
            sec.append(f'<p class="bad">invariants failed at {len(bad)} point(s): '
                       + _e(", ".join(d.key.label(g.vary) for d in bad)) + "</p>")
        sec += _figures(files.get(g.workload, []), outdir)
        sec += ["<h3>points</h3>", _points_table(g),
                "<h3>Universal Scalability Law fit</h3>", _usl_table(g, n_boot)]
        sections.append("\n".join(sec))
    for name, (title, tables) in CROSS_SECTIONS.items():
        figs = _figures(files.get(name, []), outdir)
        html_tables = tables(docs, n_boot)
        if not figs and html_tables is None:
            continue
        anchor = "x-" + name
        toc.append(f'<li><a href="#{anchor}">{_e(title)}</a></li>')
        sections.append("\n".join([f'<h2 id="{anchor}">{_e(title)}</h2>', *figs,
                                   html_tables or ""]))
    body.append("<ul>" + "".join(toc) + '<li><a href="#machines">machines</a></li></ul>')
    body += sections
    body.append('<h2 id="machines">machines and measured limits</h2>')
    body.append(_machine_section(docs))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>mmbench report</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    outdir.mkdir(parents=True, exist_ok=True)
    index = outdir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index

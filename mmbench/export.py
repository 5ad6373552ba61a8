"""Exports of result documents to other tools' formats: pyperf JSON and will-it-scale CSV.

Exports are derived files: they read a result document and never run anything.
Like result files they are written atomically and never overwrite silently.
"""
from __future__ import annotations

import csv
import io
import re
import statistics
from pathlib import Path

from .results import ResultError, varying_params, write_atomic


def _param_label(params: dict, names) -> str:
    return ",".join(f"{k}={params.get(k, '-')}" for k in names)


def benchmark_name(doc: dict, point: dict, vary=None) -> str:
    """<workload>/<variant>[/<k=v,...>]/<mode>/w<workers>; params only those that vary."""
    vary = varying_params(doc["points"]) if vary is None else vary
    parts = [doc["workload"]["name"], point["variant"]]
    if vary:
        parts.append(_param_label(point["params"], vary))
    parts += [point["mode"], f"w{point['workers']}"]
    return "/".join(parts)


def _meta_str(value) -> str | None:
    # pyperf refuses empty strings and newlines in metadata values.
    s = " ".join(str(value).split()) if value is not None else ""
    return s or None


def to_pyperf(doc: dict, path, overwrite: bool = False) -> Path:
    """Write a pyperf BenchmarkSuite JSON: one Benchmark per (variant, params, mode, workers).

    pyperf's model is "values are times, lower is better", so each measured
    interval becomes one pyperf Run holding one value, the seconds per op over the
    interval (interval time / total ops of all workers = 1 / total rate), with
    ``loops`` = the ops of that interval and ``inner_loops`` = 1: pyperf's raw
    value (value x loops) is then exactly the measured interval time.  Repeats of
    a point add runs to the same Benchmark.  Intervals with no ops (the rate is 0
    and seconds-per-op infinite; pyperf needs values > 0) are left out, and a
    point with none left (e.g. a failed point) gives no Benchmark.
    ``python -m pyperf stats/compare_to`` then work on the file; compare_to matches
    benchmarks by name, so compare files whose names (varying params) agree.
    """
    import pyperf

    vary = varying_params(doc["points"])
    m = doc["machine"]
    common = {
        "unit": "second",
        "inner_loops": 1,
        "date": doc["created"],
        "hostname": _meta_str(m.get("hostname")),
        "cpu_model_name": _meta_str(m.get("cpu_model")),
        "cpu_count": m.get("nproc"),
        "platform": _meta_str(f"Linux-{m.get('kernel')}"),
        "python_version": _meta_str(m.get("python")),
        "mmbench_version": _meta_str(doc["mmbench_version"]),
        "mmbench_workload_version": doc["workload"]["version"],
        "description": _meta_str(doc["workload"].get("description")),
    }
    common = {k: v for k, v in common.items() if v is not None}
    benches: dict[str, object] = {}
    for p in doc["points"]:
        name = benchmark_name(doc, p, vary)
        meta = dict(common, name=name, mmbench_variant=p["variant"], mmbench_mode=p["mode"],
                    mmbench_workers=p["workers"])
        for k, v in p["params"].items():
            v = _meta_str(v) if isinstance(v, (str, bool)) else v
            if v is not None:
                meta[f"mmbench_param_{k}"] = v
        for row, t in zip(p["samples"], p["interval_times"]):
            ops = sum(row)
            if ops <= 0:
                continue
            run = pyperf.Run([t / ops], metadata=dict(meta, loops=ops, duration=t),
                             collect_metadata=False)
            if name in benches:
                benches[name].add_run(run)
            else:
                benches[name] = pyperf.Benchmark([run])
    if not benches:
        raise ResultError("nothing to export to pyperf: no point has an interval with ops")
    buf = io.StringIO()
    pyperf.BenchmarkSuite(list(benches.values())).dump(buf, compact=True)
    return write_atomic(path, buf.getvalue().encode(), overwrite=overwrite)


def _num(v: float) -> str:
    # will-it-scale prints whole ops/s; keep digits only for very slow operations.
    return f"{v:.0f}" if v >= 100 else f"{v:.6g}"


def _column(p, modes) -> str:
    return p["variant"] if len(modes) == 1 else f"{p['variant']}:{p['mode']}"


def csv_tables(doc: dict) -> dict[str, str]:
    """CSV texts keyed by parameter label ('' when no parameter varies).

    will-it-scale's layout: ``tasks,<col1>,<col2>,...,linear``, one row per worker
    count (ascending).  A column is a variant (``variant:mode`` when the document
    has both process and thread points), in order of first appearance.  A cell is
    the total ops/s of that point: summary.ops_per_s.median, the median over
    repeats if there are several; empty if not measured or failed.  ``linear`` =
    tasks x v0 / w0, where w0 is the smallest worker count at which the FIRST
    column has a value and v0 that value: the perfect-scaling line through the
    first column's first point (tasks x the 1-worker value when w0 = 1).
    """
    points = doc["points"]
    vary = varying_params(points)
    modes = {p["mode"] for p in points}
    groups: dict[str, list] = {}
    for p in points:
        groups.setdefault(_param_label(p["params"], vary), []).append(p)
    out = {}
    for label, pts in groups.items():
        cols = list(dict.fromkeys(_column(p, modes) for p in pts))
        cells: dict[tuple, list] = {}
        for p in pts:
            if p.get("summary") is not None:
                cells.setdefault((p["workers"], _column(p, modes)), []).append(
                    p["summary"]["ops_per_s"]["median"])
        tasks = sorted({p["workers"] for p in pts})
        value = {k: statistics.median(v) for k, v in cells.items()}
        first = [(w, value[(w, cols[0])]) for w in tasks if (w, cols[0]) in value]
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow(["tasks", *cols, "linear"])
        for w in tasks:
            row = [w] + [_num(value[(w, c)]) if (w, c) in value else "" for c in cols]
            row.append(_num(w * first[0][1] / first[0][0]) if first else "")
            wr.writerow(row)
        out[label] = buf.getvalue()
    return out


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", label)


def to_csv(doc: dict, path, overwrite: bool = False) -> list[Path]:
    """Write will-it-scale CSV(s) (see :func:`csv_tables`); return the paths written.

    One file per parameter combination, so each stays in will-it-scale's exact
    layout for its plotting scripts: ``path`` itself when no parameter varies,
    else ``<stem>.<k=v,k2=v2><suffix>`` next to it.
    """
    path = Path(path)
    if not doc["points"]:
        raise ResultError("nothing to export to CSV: the result has no points")
    tables = csv_tables(doc)
    targets = {label: (path if label == "" else
                       path.with_name(f"{path.stem}.{_safe(label)}{path.suffix}"))
               for label in tables}
    if not overwrite:
        for t in targets.values():
            if t.exists():
                raise ResultError(f"{t} exists; refusing to overwrite (use another name)")
    return [write_atomic(targets[label], text.encode(), overwrite=overwrite)
            for label, text in tables.items()]

"""The ``mmbench`` command: sub-commands over library functions; no logic of its own.

Exit codes: 0 success; 1 a run failed (a worker died or hung, an invariant did
not hold) or ``compare`` found a significant regression; 2 bad input (one line
on stderr).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


class UsageError(ValueError):
    """Bad command-line input: one line, exit code 2."""


def _workers_arg(text: str, cpus: int) -> list[int]:
    from .workload import WorkloadError, parse_workers
    vals = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok == "max":
            vals.append("max")
        else:
            try:
                vals.append(int(tok))
            except ValueError:
                raise UsageError(f"--workers: {tok!r} is not an integer or \"max\"") from None
    try:
        return parse_workers(vals, "--workers", cpus)
    except WorkloadError as e:
        raise UsageError(str(e)) from None


def cmd_list(args) -> int:
    from .workload import all_workloads
    wls = all_workloads()
    width = max((len(w.name) for w in wls), default=4)
    for wl in wls:
        tag = " [quick]" if wl.quick else ""
        print(f"{wl.name:<{width}}  {wl.description}{tag}")
    if args.verbose:
        from .models import get_model
        for wl in wls:
            m = get_model(wl.model)
            print(f"\n{wl.name}: model {wl.model}, variants: {', '.join(m.variants)}")
            for k, prm in m.params.items():
                print(f"  {k:<20} default {prm.default!r:<10} {prm.describe()}  {prm.help}")
    return 0


def _progress(msg: str, final: bool = False) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + msg + ("\n" if final else ""))
    elif final:
        sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def run_workloads(names, args) -> tuple[list[Path], int]:
    """Run each workload's sweep, write one result file per workload; returns (paths, status)."""
    from . import results as R
    from .harness import HarnessError, RunConfig, allowed_cpus, failed_point, run_point
    from .metadata import machine_metadata
    from .models import get_model
    from .probes import measure_limits
    from .workload import expand, find, load, parse_set, run_settings

    quick = args.quick
    cpus = len(allowed_cpus())
    workers = _workers_arg(args.workers, cpus) if args.workers else None
    variants = args.variant.split(",") if args.variant else None
    wls = [load(find(n)) for n in names]
    if args.output and len(wls) > 1:
        raise UsageError("--output names one file: give one workload, or use --results-dir")
    plans = []
    for wl in wls:
        settings = run_settings(wl, quick, {"duration": args.duration, "warmup": args.warmup,
                                            "repeat": args.repeat, "interval": args.interval,
                                            "seed": args.seed})
        if variants:
            m = get_model(wl.model)
            bad = [v for v in variants if v not in m.variants]
            if bad:
                raise UsageError(f"--variant: {bad[0]!r} is not a variant of {wl.name} "
                                 f"(one of {', '.join(m.variants)})")
        pts = expand(wl, cpus, quick=quick, workers=workers, variants=variants,
                     overrides=parse_set(args.set, wl.model))
        plans.append((wl, settings, pts))
    if args.mode not in ("process", "thread"):
        raise UsageError(f"--mode must be process or thread, got {args.mode!r}")

    machine = machine_metadata()
    _progress("measuring machine limits (atomic, cache-line transfer, memset)...")
    limits = measure_limits(quick=quick)
    total = sum(len(p) * s["repeat"] for _, s, p in plans)
    done = 0
    status = 0
    paths = []
    for wl, s, pts in plans:
        model = get_model(wl.model)
        doc = R.new_document(wl.meta(), machine, limits, ["mmbench"] + sys.argv[1:])
        for pt in pts:
            for rep in range(s["repeat"]):
                done += 1
                label = (f"[{done}/{total}] {wl.name} {pt.variant} "
                         + " ".join(f"{k}={v}" for k, v in pt.given.items())
                         + f" w={pt.workers}{'*' if pt.workers > cpus else ''} {args.mode}")
                _progress(label + " ...")
                cfg = RunConfig(workers=pt.workers, mode=args.mode, duration=s["duration"],
                                warmup=s["warmup"], interval=s["interval"],
                                seed=s["seed"] + rep, watchdog=s["watchdog"], repeat=rep)
                try:
                    rec = run_point(model, pt.variant, pt.params, cfg)
                except HarnessError as e:
                    # The point failed (a worker died, hung or raised): say so, keep it in
                    # the file as a failed point, and go on with the sweep.
                    _progress(f"{label}: FAILED", final=True)
                    print(f"mmbench: error: {wl.name} {pt.variant} w={pt.workers}: {e}", file=sys.stderr)
                    status = 1
                    rec = failed_point(pt.variant, pt.params, cfg, str(e))
                rec = R.add_point(doc, rec)
                if rec.get("error"):
                    _progress(f"{label}: {rec['error']}", final=True)
                    continue
                ok = rec["invariants"]["ok"]
                if not ok:
                    status = 1
                summ = rec["summary"]
                _progress(f"{label}: {summ['ops_per_s']['median'] / 1e6:.3f} Mops/s, "
                          f"Jain {summ['jain']:.3f}{'' if ok else ', INVARIANTS FAILED: ' + rec['invariants']['errors'][0]}",
                          final=True)
        path = R.write_result(doc, path=args.output, results_dir=args.results_dir)
        paths.append(path)
        print(R.summary_table(doc["points"]))
        print(f"results: {path}")
    return paths, status


def cmd_run(args) -> int:
    from .workload import all_workloads
    names = args.names
    if not names:
        args.quick = True
        names = [wl.name for wl in all_workloads() if wl.quick]
        if not names:
            raise UsageError("no workload is marked quick = true")
    t0 = time.time()
    paths, status = run_workloads(names, args)
    if paths and not args.no_report:
        # Plots and HTML stay out of results/: only small JSON files are evidence.
        outdir = Path(args.report_dir) if args.report_dir else Path("mmbench-out") / (
            "report-" + paths[0].stem.split("-")[0])
        try:
            from .report import write_report
        except ImportError:
            write_report = None
        if write_report is not None:
            # The quick suite keeps to its time budget: PNG only, fewer bootstrap draws.
            kw = {"n_boot": 100, "formats": ("png",)} if args.quick else {}
            index = write_report([str(p) for p in paths], str(outdir), **kw)
            print(f"report: {index}")
    print(f"done in {time.time() - t0:.1f} s")
    return status


def cmd_show(args) -> int:
    from .results import format_show, read_result
    for f in args.files:
        print(format_show(read_result(f)))
    return 0


def cmd_info(args) -> int:
    import json
    from .metadata import machine_metadata
    from .probes import measure_limits
    m = machine_metadata()
    lim = measure_limits(quick=args.quick)
    if args.json:
        print(json.dumps({"machine": m, "limits": lim}, indent=2))
        return 0
    for k in ("name", "cpu_model", "nproc", "allowed_cpus", "topology", "kernel", "memory_total_bytes",
              "python", "numpy", "numba", "aslr", "thp"):
        if k in m:
            print(f"{k:<20} {m[k]}")
    print(f"{'atomic_ns':<20} {lim['atomic_ns']:.2f}   (uncontended lock xadd)")
    pp = lim["pingpong_ns"]
    print(f"{'pingpong_ns':<20} {'n/a (one CPU)' if pp is None else f'{pp:.1f}'}   (one-way cache-line transfer, CPUs 0-1)")
    print(f"{'memset_gbps':<20} {lim['memset_gbps']:.1f}   (64-byte record stores)")
    return 0


def cmd_export(args) -> int:
    from . import export
    from .results import read_result
    doc = read_result(args.file)
    out = Path(args.output)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; refusing to overwrite (use --force)")
    if args.format == "pyperf":
        export.to_pyperf(doc, out)
    else:
        export.to_csv(doc, out)
    print(out)
    return 0


def cmd_compare(args) -> int:
    from .compare import compare, format_compare
    from .results import read_result
    base = [read_result(f) for f in args.base]
    new = [read_result(f) for f in args.new]
    res = compare(base, new, threshold_pct=args.threshold, alpha=args.alpha, test=args.test,
                  strict=args.strict)
    print(format_compare(res, fmt=args.format))
    return res.exit_code


def cmd_plot(args) -> int:
    from .plot import plot_files
    for p in plot_files(args.files, args.output):
        print(p)
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    print(write_report(args.files, args.output))
    return 0


def cmd_history(args) -> int:
    from .history import history
    for p in history(args.results_dir, workload=args.workload, machine=args.machine, outdir=args.output):
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmbench", description="Multiprocess scalability benchmarks "
                                 "for Linux memory-management designs.")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    p = sub.add_parser("list", help="list workloads")
    p.add_argument("-v", "--verbose", action="store_true", help="also list variants and parameters")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run workloads (no name: the quick suite, then plots and report)")
    p.add_argument("names", nargs="*", metavar="NAME", help="workload names or .toml files")
    p.add_argument("--workers", help="comma-separated worker counts, 'max' = allowed CPUs (e.g. 1,2,max)")
    p.add_argument("--variant", help="comma-separated variants to run (default: the workload's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1[,V2...]",
                   help="sweep these values of a model parameter instead of the file's (repeatable)")
    p.add_argument("--duration", type=float, help="measured seconds per point")
    p.add_argument("--warmup", type=float, help="seconds before measuring")
    p.add_argument("--interval", type=float, help="sampling interval in seconds")
    p.add_argument("--repeat", type=int, help="repetitions of each point")
    p.add_argument("--seed", type=int, help="base RNG seed")
    p.add_argument("--mode", default="process", help="process (default) or thread")
    p.add_argument("--quick", action="store_true", help="use the workloads' quick settings")
    p.add_argument("--output", "-o", help="result file (one workload only)")
    p.add_argument("--results-dir", default="results", help="where result files go (default: results)")
    p.add_argument("--report-dir", help="where the report goes (default: beside the results)")
    p.add_argument("--no-report", action="store_true", help="skip plots and the HTML report")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="print a result file")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("info", help="machine facts and measured limits")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export a result file (pyperf JSON or will-it-scale CSV)")
    p.add_argument("file")
    p.add_argument("--format", choices=("pyperf", "csv"), default="pyperf")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="compare two results (exit 1 on a significant regression)")
    p.add_argument("base", nargs=1, help="baseline result file")
    p.add_argument("new", nargs=1, help="new result file")
    p.add_argument("--threshold", type=float, default=5.0, help="percent change below which nothing is reported")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--test", choices=("welch", "mannwhitney"), default="welch")
    p.add_argument("--format", choices=("term", "md"), default="term")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit 2) when machine, schema or workload version differ")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="plot result files (PNG and SVG)")
    p.add_argument("files", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("report", help="HTML report of result files")
    p.add_argument("files", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("history", help="trend of stored results over commits")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--workload")
    p.add_argument("--machine")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_history)
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    from .workload import WorkloadError
    bad_input = (UsageError, WorkloadError)
    try:
        from .results import ResultError
        bad_input = bad_input + (ResultError,)
    except ImportError:
        pass
    try:
        from .compare import AnalysisError  # type: ignore[attr-defined]
        bad_input = bad_input + (AnalysisError,)
    except ImportError:
        pass
    try:
        return args.func(args)
    except bad_input as e:
        print(f"mmbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

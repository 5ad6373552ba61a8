"""The ``mmbench`` command: sub-commands over library functions; no logic of its own.

Exit codes: 0 success; 1 a run failed (a worker died or hung, an invariant did
not hold) or ``compare`` found a significant regression; 2 bad input (one line
on stderr, nothing run or written); 128 + N a stop signal N (SIGINT 130, SIGTERM
143, SIGHUP 129) interrupted a run, whose completed points are in its partial
result file.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .checks import UsageError, in_dir, new_file, number, out_dir


def cmd_list(args) -> int:
    from .workload import all_workloads
    wls = sorted(all_workloads(), key=lambda w: w.name)
    if not args.verbose:
        width = max((len(w.name) for w in wls), default=4)
        for wl in wls:
            tag = " [quick]" if wl.quick else ""
            print(f"{wl.name:<{width}}  {wl.description}{tag}")
        return 0
    from .models import get_model
    for i, wl in enumerate(wls):
        m = get_model(wl.model)
        print(("\n" if i else "") + f"{wl.name}{' [quick]' if wl.quick else ''}: {wl.description}")
        print(f"  model {wl.model}, variants: {', '.join(m.variants)}")
        for k, prm in m.params.items():
            default = str(prm.default).lower() if prm.type is bool else repr(prm.default)
            print(f"  {k:<20} default {default:<10} {prm.describe()}  {prm.help}")
    return 0


def cmd_run(args) -> int:
    from . import sweep
    from .harness import allowed_cpus
    from .workload import all_workloads
    t0 = time.time()
    cpus = len(allowed_cpus())
    if args.resume is not None:
        given = [f for f, v in (("NAME", args.names), ("--workers", args.workers),
                                ("--variant", args.variant), ("--set", args.set),
                                ("--duration", args.duration), ("--warmup", args.warmup),
                                ("--interval", args.interval), ("--repeat", args.repeat),
                                ("--seed", args.seed), ("--mode", args.mode),
                                ("--quick", args.quick), ("--output", args.output)) if v not in (None, False, [])]
        if given:
            raise UsageError(f"--resume takes the workload and its settings from the file; "
                             f"drop {given[0]}")
        if args.report_dir is not None:
            out_dir("--report-dir", args.report_dir)
        plan = sweep.plan_resume(args.resume, args.force)
        if plan is None:
            from .results import read_result
            n = len(read_result(args.resume)["points"])
            print(f"{args.resume} is complete ({n} points); nothing to run")
            return 0
        plans, quick = [plan], plan.quick
        mode = plan.mode
    else:
        if args.force:
            raise UsageError("--force only applies with --resume FILE")
        names = args.names
        if not names:
            args.quick = True
            names = [wl.name for wl in all_workloads() if wl.quick]
            if not names:
                raise UsageError("no workload is marked quick = true")
        args.mode = args.mode or "process"
        plans = sweep.plan_run(names, args, cpus)
        quick, mode = args.quick, args.mode
    paths, status = sweep.execute(plans, mode=mode, command=["mmbench"] + sys.argv[1:],
                                  limits_quick=quick)
    if paths and not args.no_report:
        # Plots and HTML stay out of results/: only small JSON files are evidence.
        outdir = Path(args.report_dir) if args.report_dir else Path("mmbench-out") / (
            "report-" + paths[0].stem.split("-")[0])
        from .report import write_report
        # The quick suite keeps to its time budget: PNG only, fewer bootstrap draws.
        kw = {"n_boot": 100, "formats": ("png",)} if quick else {}
        index = write_report([str(p) for p in paths], str(outdir), **kw)
        print(f"report: {index}")
    print(f"done in {time.time() - t0:.1f} s")
    return status


def _partial_warning(doc, path) -> None:
    from .results import partial_note
    note = partial_note(doc, path)
    if note:
        print(f"mmbench: note: {path}: {note}", file=sys.stderr)


def cmd_show(args) -> int:
    from .results import format_show, read_result
    docs = [(f, read_result(f)) for f in args.files]  # every file checked before printing
    for i, (f, doc) in enumerate(docs):
        if len(docs) > 1:
            print(("\n" if i else "") + f"== {f}")
        print(format_show(doc, f))
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
    out = new_file("-o/--output", args.output, overwrite=args.force)
    doc = read_result(args.file)
    _partial_warning(doc, args.file)
    if args.format == "pyperf":
        export.to_pyperf(doc, out)
    else:
        export.to_csv(doc, out)
    print(out)
    return 0


def cmd_compare(args) -> int:
    from .compare import compare, format_compare
    from .results import read_result
    threshold = number("--threshold", args.threshold, 0.0, 1000.0, unit=" %")
    alpha = number("--alpha", args.alpha, 0.0, 0.5, lo_open=True)
    base = [read_result(f) for f in args.base]
    new = [read_result(f) for f in args.new]
    for f, d in zip(args.base + args.new, base + new):
        _partial_warning(d, f)
    args.threshold, args.alpha = threshold, alpha
    res = compare(base, new, threshold_pct=args.threshold, alpha=args.alpha, test=args.test,
                  strict=args.strict)
    print(format_compare(res, fmt=args.format))
    return res.exit_code


def cmd_plot(args) -> int:
    from .plot import plot_files
    out_dir("-o/--output", args.output)
    _warn_partial_files(args.files)
    for p in plot_files(args.files, args.output):
        print(p)
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    out_dir("-o/--output", args.output)
    _warn_partial_files(args.files)
    print(write_report(args.files, args.output))
    return 0


def _warn_partial_files(files) -> None:
    from .results import read_result
    for f in files:
        _partial_warning(read_result(f), f)


def _claim_args(sw: dict, results_dir: str):
    """The ``mmbench run`` arguments of a claim's sweep."""
    import argparse

    def join(v):
        return ",".join(str(x).lower() if isinstance(x, bool) else str(x)
                        for x in (v if isinstance(v, list) else [v]))
    return argparse.Namespace(
        names=[sw["workload"]], workers=join(sw["workers"]) if "workers" in sw else None,
        variant=join(sw["variant"]) if "variant" in sw else None,
        set=[f"{k}={join(v)}" for k, v in sw.get("set", {}).items()],
        duration=sw.get("duration"), warmup=sw.get("warmup"), interval=sw.get("interval"),
        repeat=sw.get("repeat"), seed=sw.get("seed"), mode=sw.get("mode", "process"),
        quick=False, output=None, results_dir=results_dir, report_dir=None)


def cmd_reproduce(args) -> int:
    from . import claims as C
    from . import sweep
    from .harness import allowed_cpus
    from .results import read_result
    todo = C.find(args.claims)
    given = [read_result(f) for f in args.from_files] if args.from_files else None
    cpus = len(allowed_cpus())
    if given is None:
        out_dir("--results-dir", args.results_dir)
        # every claim's sweep is checked before the first one runs
        plans = {c.name: [pl for sw in c.sweeps
                          for pl in sweep.plan_run([sw["workload"]],
                                                   _claim_args(sw, args.results_dir), cpus)]
                 for c in todo if c.needs_cpus <= cpus}
    failed = False
    for c in todo:
        if given is None and c.needs_cpus > cpus:
            print(f"NEEDS {c.needs_cpus} CPUS  {c.name}: {c.title} (this box allows {cpus}; "
                  "not checked)")
            continue
        if given is not None:
            docs = given
        else:
            docs = []
            for pl in plans[c.name]:
                paths, _ = sweep.execute([pl], mode=pl.mode,
                                         command=["mmbench", "reproduce", c.name],
                                         limits_quick=True)
                docs += [read_result(p) for p in paths]
        v = C.evaluate(c, docs)
        failed |= v.status == "FAIL"
        print(f"{v.status}  {c.name}: {c.title}  [{c.source}]")
        for line in v.lines:
            print("      " + line)
    return 1 if failed else 0


def cmd_history(args) -> int:
    from .history import history
    in_dir("--results-dir", args.results_dir)
    out_dir("-o/--output", args.output)
    for p in history(args.results_dir, workload=args.workload, machine=args.machine, outdir=args.output):
        print(p)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is in --help)."""

    def error(self, message):
        self.exit(2, f"mmbench: error: {self.prog.removeprefix('mmbench ') + ': ' if self.prog != 'mmbench' else ''}"
                     f"{' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="mmbench", description="Multiprocess scalability benchmarks "
                                 "for Linux memory-management designs.")
    import mmbench
    ap.add_argument("--version", action="version", version=f"mmbench {mmbench.__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list workloads")
    p.add_argument("-v", "--verbose", action="store_true", help="also list variants and parameters")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run workloads (no name: the quick suite, then plots and report)")
    p.add_argument("names", nargs="*", metavar="NAME", help="workload names or .toml files")
    p.add_argument("--workers", help="comma-separated worker counts, 'max' = allowed CPUs (e.g. 1,2,max)")
    p.add_argument("--variant", help="comma-separated variants to run (default: the workload's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1[,V2...]",
                   help="sweep these values of a model parameter instead of the file's (repeatable)")
    p.add_argument("--duration", help="measured seconds per point (0.01..3600)")
    p.add_argument("--warmup", help="seconds before measuring (0..600)")
    p.add_argument("--interval", help="sampling interval in seconds (0.001..60, < duration)")
    p.add_argument("--repeat", help="repetitions of each point (1..1000)")
    p.add_argument("--seed", help="base RNG seed")
    p.add_argument("--mode", choices=("process", "thread"), help="process (default) or thread")
    p.add_argument("--quick", action="store_true", help="use the workloads' quick settings")
    p.add_argument("--output", "-o", help="result file (one workload only)")
    p.add_argument("--results-dir", default="results", help="where result files go (default: results)")
    p.add_argument("--report-dir", help="where the report goes (default: mmbench-out/report-<time>)")
    p.add_argument("--no-report", action="store_true", help="skip plots and the HTML report")
    p.add_argument("--resume", metavar="FILE",
                   help="continue the partial result FILE: run only its missing points")
    p.add_argument("--force", action="store_true",
                   help="with --resume: resume although the workload version, model source or "
                        "machine changed (recorded in the file)")
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
    p.add_argument("--threshold", default="5.0", help="percent change below which nothing is reported")
    p.add_argument("--alpha", default="0.05", help="significance level, in (0, 0.5]")
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

    p = sub.add_parser("reproduce", help="check published results (workloads/claims/*.toml): "
                       "PASS / FAIL / NEEDS N CPUS per claim (exit 1 on a FAIL)")
    p.add_argument("claims", nargs="*", metavar="CLAIM", help="claim names or .toml files "
                   "(default: every claim)")
    p.add_argument("--from", dest="from_files", nargs="+", metavar="FILE",
                   help="check these result files instead of running the claims' sweeps")
    p.add_argument("--results-dir", default="results", help="where the sweeps' results go")
    p.set_defaults(func=cmd_reproduce)

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
    from .results import ResultError   # the analysis' AnalysisError is this class
    from .sweep import Interrupted
    from .workload import WorkloadError
    try:
        return args.func(args)
    except (UsageError, WorkloadError, ResultError) as e:
        print(f"mmbench: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        # sweep.execute has said where the partial result is.
        return 128 + e.signum
    except KeyboardInterrupt:
        print("mmbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `mmbench list -v | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

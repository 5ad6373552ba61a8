"""A sweep: plan every point, check every input, run the points, journal each one.

``mmbench run`` is three steps, and nothing expensive happens before the first
is done:

1. :func:`plan_run` (or :func:`plan_resume`) turns the command line into one
   :class:`Plan` per workload: the settings, every planned point with its
   repeat, and the result path.  Every value is checked here (durations, repeat,
   workers, ``--set``, variants, the output path), so bad input costs
   milliseconds and nothing is compiled, started or written.
2. :func:`execute` runs the planned points that are not yet in the result and
   journals each one (:class:`mmbench.results.Journal`): the file on disk holds
   every completed point, ``complete`` false, until the sweep ends.
3. SIGINT, SIGTERM and SIGHUP stop the running point (its workers are killed,
   its arena released), keep what completed and raise :class:`Interrupted`; the
   CLI says where the partial file is and exits 128 + the signal number.
   ``mmbench run --resume FILE`` runs only the missing points.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .checks import UsageError, integer, new_file, number, out_dir

# Machine facts that must agree before a sweep measured on one box is continued
# on another: the comparison keys, plus what decides placement and sizing.
RESUME_MACHINE_KEYS = ("name", "cpu_model", "nproc", "topology", "kernel", "allowed_cpus",
                       "memory_total_bytes")
MAX_INTERVALS = 100_000


class Interrupted(BaseException):
    """A stop signal arrived: the running point was abandoned, completed ones are kept."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@dataclass
class Plan:
    """One workload's sweep: what runs, with which settings, into which file."""
    workload: object                  # mmbench.workload.Workload (None when resuming without it)
    model_name: str
    settings: dict
    mode: str
    quick: bool
    planned: list                     # [{variant, params, given, workers, repeat}]
    path: Path | None = None          # None: results_dir/<machine>/<default name>
    results_dir: str = "results"
    doc: dict | None = None           # the partial document, when resuming
    forced: list = field(default_factory=list)

    def sweep_record(self) -> dict:
        from .sources import model_source_hash
        return {"settings": dict(self.settings), "mode": self.mode, "quick": self.quick,
                "model_source_hash": model_source_hash(self.model_name),
                "planned": self.planned}


# --------------------------------------------------------------------------- signals

class _StopSignals:
    """Turn SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` in the main thread.

    Inside :meth:`critical` (a journal write) the signal is held and raised on
    leaving it, so a point is either in the file or not, never half-recorded.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.depth = 0
        self.pending: int | None = None
        self.saved: dict = {}

    def _handler(self, signum, frame):
        if self.depth:
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self.saved[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self.saved.items():
            signal.signal(s, h)
        self.saved = {}

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending is not None:
                signum, self.pending = self.pending, None
                raise Interrupted(signum)


# --------------------------------------------------------------------------- planning

def run_flags(args) -> dict:
    """The run settings given on the command line, checked (None = not given)."""
    from .workload import RUN_KEYS
    out = {}
    for key, flag in (("duration", "--duration"), ("warmup", "--warmup"),
                      ("interval", "--interval")):
        text = getattr(args, key, None)
        if text is None:
            out[key] = None
            continue
        _, lo, hi = RUN_KEYS[key]
        # Zero warm-up is allowed (measuring from a cold start); zero duration and
        # interval are not: they would measure nothing.
        out[key] = number(flag, text, 0.0 if key == "warmup" else lo, hi,
                          lo_open=False, unit=" s")
    for key, flag in (("repeat", "--repeat"), ("seed", "--seed")):
        text = getattr(args, key, None)
        _, lo, hi = RUN_KEYS[key]
        out[key] = None if text is None else integer(flag, text, lo, hi)
    return out


def _check_settings(s: dict, given: dict, where: str) -> None:
    def src(k):
        return f"--{k} {s[k]:g}" if given.get(k) is not None else f"{where} run.{k} = {s[k]:g}"
    if s["interval"] >= s["duration"]:
        raise UsageError(f"{src('interval')} must be shorter than {src('duration')}")
    if s["duration"] / s["interval"] > MAX_INTERVALS:
        raise UsageError(f"{src('duration')} / {src('interval')} makes more than "
                         f"{MAX_INTERVALS} sampling intervals per point")


def workers_flag(text: str, cpus: int) -> list[int]:
    from .workload import WorkloadError, parse_workers
    vals: list = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok == "max":
            vals.append("max")
            continue
        try:
            vals.append(int(tok, 10))
        except ValueError:
            raise UsageError(f"--workers: {tok!r} is not an integer or \"max\" "
                             "(allowed: comma-separated integers in [1, 4096] or max)") from None
    try:
        return parse_workers(vals, "--workers", cpus)
    except WorkloadError as e:
        raise UsageError(str(e)) from None


def plan_run(names, args, cpus: int) -> list[Plan]:
    """Plans for ``mmbench run NAME...``; every input checked, nothing run or written."""
    from .models import get_model
    from .workload import expand, find, load, parse_set, run_settings

    flags = run_flags(args)
    workers = workers_flag(args.workers, cpus) if args.workers is not None else None
    variants = None
    if args.variant is not None:
        variants = [v.strip() for v in args.variant.split(",")]
        if not all(variants):
            raise UsageError(f"--variant: {args.variant!r} has an empty name "
                             "(allowed: comma-separated variant names)")
    wls = [load(find(n)) for n in names]
    if args.output is not None and len(wls) > 1:
        raise UsageError("--output names one file: give one workload, or use --results-dir")
    if args.output is not None:
        new_file("--output", args.output)
    else:
        out_dir("--results-dir", args.results_dir)
    if getattr(args, "report_dir", None) is not None:
        out_dir("--report-dir", args.report_dir)
    plans = []
    for wl in wls:
        settings = run_settings(wl, args.quick, flags)
        _check_settings(settings, flags, wl.file or wl.name)
        model = get_model(wl.model)
        if variants:
            bad = [v for v in variants if v not in model.variants]
            if bad:
                raise UsageError(f"--variant: {bad[0]!r} is not a variant of {wl.name} "
                                 f"(one of {', '.join(model.variants)})")
        pts = expand(wl, cpus, quick=args.quick, workers=workers, variants=variants,
                     overrides=parse_set(args.set, wl.model))
        planned = [{"variant": pt.variant, "params": dict(pt.params), "given": dict(pt.given),
                    "workers": pt.workers, "repeat": rep}
                   for pt in pts for rep in range(settings["repeat"])]
        from .results import plain
        plans.append(Plan(wl, wl.model, settings, args.mode, bool(args.quick), plain(planned),
                          path=Path(args.output) if args.output is not None else None,
                          results_dir=args.results_dir))
    return plans


def resume_differences(doc: dict) -> list[str]:
    """What changed since the partial result was started (empty: safe to resume)."""
    from .metadata import machine_metadata
    from .sources import model_source_hash
    from .workload import WorkloadError, find, load
    out = []
    w = doc["workload"]
    wl = None
    for cand in ([w["file"]] if w.get("file") and Path(w["file"]).is_file() else []) + [w["name"]]:
        try:
            wl = load(find(cand))
            break
        except WorkloadError:
            continue
    if wl is None:
        out.append(f"workload {w['name']!r} is no longer found")
    else:
        if wl.version != w["version"]:
            out.append(f"workload version {w['version']} != {wl.version} now")
        if wl.model != w["model"]:
            out.append(f"workload model {w['model']!r} != {wl.model!r} now")
    try:
        now = model_source_hash(w["model"])
    except ValueError:
        now = None
    if now != doc["sweep"]["model_source_hash"]:
        out.append(f"model source changed (hash {doc['sweep']['model_source_hash']} != {now} now)")
    m = machine_metadata()
    for k in RESUME_MACHINE_KEYS:
        a, b = doc["machine"].get(k), m.get(k)
        if a != b:
            out.append(f"machine {k} {a!r} != {b!r} now")
    return out


def plan_resume(path, force: bool) -> Plan | None:
    """The plan that completes a partial result; None when it is already complete."""
    from . import results as R
    doc = R.read_result(path)
    if not R.is_partial(doc):
        return None
    if not doc.get("sweep"):
        raise UsageError(f"--resume: {path} has no sweep plan (not written by mmbench run "
                         "with journalling); it cannot be resumed")
    diffs = resume_differences(doc)
    if diffs and not force:
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise UsageError(f"--resume: {path}: {diffs[0]}{more}; refusing to mix measurements "
                         "(use --force to resume anyway, recorded in the file)")
    sw = doc["sweep"]
    return Plan(None, doc["workload"]["model"], dict(sw["settings"]), sw["mode"], sw["quick"],
                sw["planned"], path=Path(path), doc=doc, forced=diffs)


# --------------------------------------------------------------------------- running

def _say(msg: str, final: bool = True) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + msg + ("\n" if final else ""))
    elif final:
        sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _failed(doc: dict) -> bool:
    return any(str(p.get("error") or "").startswith("failed") or not p["invariants"]["ok"]
               for p in doc["points"])


def compile_units(todo) -> dict:
    """(model, compile key) -> (model name, label, params) for the points still to run."""
    from .models import get_model
    units = {}
    for pl, missing in todo:
        model = get_model(pl.model_name)
        for j in (missing if pl.doc else range(len(pl.planned))):
            q = pl.planned[j]
            ck = model.compile_key(q["params"])
            key = (pl.model_name, repr(ck))
            if key not in units:
                parts = ck if isinstance(ck, tuple) else () if ck is None else (ck,)
                label = " ".join([pl.model_name, " x ".join(map(str, parts))]).strip()
                units[key] = (pl.model_name, label, q["params"])
    return units


def _precompile(todo, cpus: int, say) -> dict:
    """Compile every kernel the points need before the first one, in up to ``cpus`` forked
    processes (each writes the Numba cache the points then load).  Returns model name ->
    [{"label", "seconds", "compiled", "ok", "error"}] for the result files."""
    from .drivers import Unit, precompile
    from .models import get_model
    units = compile_units(todo)
    if not units:
        return {}
    work = [Unit(label, (lambda m=m, p=p: get_model(m).compile(p)))
            for m, label, p in units.values()]
    names = {label: m for m, label, _ in units.values()}
    jobs = min(cpus, len(work))
    t0 = time.perf_counter()
    say(f"kernels: loading or compiling {len(work)} set(s) in {jobs} process(es)...",
        final=False)

    def done(rec, i, n):
        what = (f"compiled ({rec['compiled']} functions)" if rec["compiled"]
                else "from the cache") if rec["ok"] else f"FAILED: {rec['error']}"
        say(f"kernels [{i}/{n}] {rec['label']}: {rec['seconds']:.1f} s, {what}",
            final=bool(rec["compiled"]) or not rec["ok"])

    recs = precompile(work, jobs, done)
    n_comp = sum(1 for r in recs if r["compiled"])
    say(f"kernels: {len(recs)} set(s) ready in {time.perf_counter() - t0:.1f} s "
        f"({n_comp} compiled, {len(recs) - n_comp} from the cache)")
    out: dict = {}
    for r in recs:
        out.setdefault(names[r["label"]], []).append(r)
    return out


def execute(plans: list[Plan], *, mode: str, command: list[str], limits_quick: bool,
            say=_say) -> tuple[list[Path], int]:
    """Run every plan's missing points; return (result paths, exit status 0 or 1).

    Raises :class:`Interrupted` on a stop signal after saying where the partial
    result is; completed points are on disk in every case.
    """
    from . import results as R
    from .harness import HarnessError, RunConfig, allowed_cpus, failed_point, run_point
    from .metadata import machine_metadata
    from .models import get_model

    cpus = len(allowed_cpus())
    todo = [(pl, pl.doc and R.missing_points(pl.doc)) for pl in plans]
    total = sum(len(m) if pl.doc else len(pl.planned) for pl, m in todo)
    paths: list[Path] = []
    docs: list[dict] = []
    done = 0
    with _StopSignals() as sig:
        machine = limits = None
        if any(pl.doc is None for pl in plans):
            machine = machine_metadata()
            say("measuring machine limits (atomic, cache-line transfer, memset)...", final=False)
            from .probes import measure_limits
            limits = measure_limits(quick=limits_quick)
        compiled = _precompile(todo, cpus, say)
        for i, (pl, missing) in enumerate(todo):
            model = get_model(pl.model_name)
            if pl.doc is None:
                doc = R.new_document(pl.workload.meta(), machine, limits, command,
                                     sweep=pl.sweep_record())
                path = pl.path or R.default_path(doc, pl.results_dir)
                journal = R.Journal(doc, path)
                with sig.critical():
                    journal.start()
                missing = list(range(len(pl.planned)))
            else:
                doc = pl.doc
                journal = R.Journal(doc, pl.path, resume=True)
                doc["resumes"].append({"at": R._now_iso(), "points_before": len(doc["points"]),
                                       "command": [str(a) for a in command],
                                       "commit": ((machine_metadata().get("git") or {})
                                                  .get("short")),
                                       "forced": list(pl.forced)})
                with sig.critical():
                    journal.save()          # the resume record
            doc["sweep"].setdefault("compile", []).extend(compiled.get(pl.model_name, []))
            s = pl.settings
            name = doc["workload"]["name"]
            say(f"{name}: {len(missing)} point(s) to run"
                + (f" of {len(pl.planned)} planned" if pl.doc is not None else "")
                + f", ~{len(missing) * (s['duration'] + s['warmup']):.0f} s measured; "
                f"journal: {journal.path}")
            try:
                for j in missing:
                    q = pl.planned[j]
                    done += 1
                    w = q["workers"]
                    label = (f"[{done}/{total}] {name} {q['variant']} "
                             + " ".join(f"{k}={v}" for k, v in q["given"].items())
                             + f" w={w}{'*' if w > cpus else ''} {pl.mode}"
                             + (f" rep {q['repeat']}" if s["repeat"] > 1 else ""))
                    say(label + " ...", final=False)
                    cfg = RunConfig(workers=w, mode=pl.mode, duration=s["duration"],
                                    warmup=s["warmup"], interval=s["interval"],
                                    seed=s["seed"] + q["repeat"], watchdog=s["watchdog"],
                                    repeat=q["repeat"])
                    try:
                        rec = run_point(model, q["variant"], q["params"], cfg)
                    except HarnessError as e:
                        # A failed point (a worker died, hung or raised) is a result:
                        # keep it in the file and go on with the sweep.
                        say(f"{label}: FAILED")
                        say(f"mmbench: error: {name} {q['variant']} w={w}: {e}")
                        rec = failed_point(q["variant"], q["params"], cfg, str(e))
                    with sig.critical():
                        rec = journal.add(rec)
                    if rec.get("error"):
                        say(f"{label}: {rec['error']}")
                        continue
                    inv = rec["invariants"]
                    summ = rec["summary"]
                    say(f"{label}: {summ['ops_per_s']['median'] / 1e6:.3f} Mops/s, "
                        f"Jain {summ['jain']:.3f}"
                        + ("" if inv["ok"] else ", INVARIANTS FAILED: " + inv["errors"][0]))
                with sig.critical():
                    journal.finish()
            except Interrupted as e:
                n = len(doc["points"])
                if pl.doc is None and journal.discard_if_empty():
                    where = "no point had completed; nothing was written"
                else:
                    where = (f"{journal.path} holds {n} of {len(pl.planned)} planned points "
                             f"(partial); continue with: mmbench run --resume {journal.path}")
                rest = [p.workload.name for p, _ in todo[i + 1:] if p.workload is not None]
                say(f"mmbench: interrupted by {e.name}: {where}"
                    + (f"; not started: {', '.join(rest)}" if rest else ""))
                raise
            paths.append(journal.path)
            docs.append(doc)
            print(R.summary_table(doc["points"]))
            print(f"results: {journal.path}")
    status = 1 if any(_failed(d) for d in docs) else 0
    return paths, status

"""Result documents: a versioned JSON format, validation, atomic writes, display.

A result file is data, never scraped text: every layer after the harness
(show, compare, plot, export) reads it through :func:`read_result`.  Like pyperf's
format, it carries a version number, and old versions stay readable forever:
:func:`read_result` upgrades them in memory, one version at a time, and
``tests/fixtures/result-v1.json`` is a frozen file of each old version.

Format versions (``schema_version``; bump on any change of meaning, add an
upgrade function to ``_UPGRADES`` and freeze a fixture of the old version):

* 1 (mmbench 0.1): first version.  See mmbench/schema/result-v1.json.
* 2: ``complete`` (false while a sweep is journalled point by point, and after an
  interruption), ``sweep`` (settings and the planned points, which ``mmbench run
  --resume`` continues; null for documents not made by a sweep) and ``resumes``
  (one record per resume).  A v1 file reads as complete, with no plan.

A partial result (``complete`` false) is a valid result with fewer points than
planned: every reader accepts it and says that it is partial (:func:`partial_note`).
"""
from __future__ import annotations

import errno
import functools
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 2
FORMAT = "mmbench-result"


def _upgrade_v1(doc: dict) -> None:
    # v1 files were written once, at the end of a sweep: complete, with no plan.
    doc.setdefault("complete", True)
    doc.setdefault("sweep", None)
    doc.setdefault("resumes", [])


# _UPGRADES[v] turns a version-v document into a version-(v+1) one, in place.
_UPGRADES: dict = {1: _upgrade_v1}


class ResultError(ValueError):
    """A result file or document is unusable; the message is one line (the CLI exits 2)."""


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------
# Schema and validation

@functools.lru_cache(maxsize=None)
def _schema_text(version: int) -> str:
    from importlib import resources
    try:
        return resources.files("mmbench").joinpath("schema", f"result-v{version}.json").read_text()
    except FileNotFoundError:
        raise ResultError(f"no schema for result version {version}") from None


def load_schema(version: int = SCHEMA_VERSION) -> dict:
    """The JSON Schema (draft 2020-12) of result format ``version``, from package data."""
    return json.loads(_schema_text(version))


@functools.lru_cache(maxsize=None)
def _validator(version: int, definition: str | None = None):
    import jsonschema
    schema = load_schema(version)
    if definition is not None:
        # Validate one part (a point) against its definition, keeping $defs resolvable.
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"],
                  "$ref": f"#/$defs/{definition}"}
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema)


def _path_str(parts, root: str = "") -> str:
    out = root
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def _schema_errors(obj, definition: str | None = None, root: str = "") -> None:
    import jsonschema.exceptions
    err = jsonschema.exceptions.best_match(_validator(SCHEMA_VERSION, definition).iter_errors(obj))
    if err is not None:
        raise ResultError(f"{_path_str(err.absolute_path, root)}: {_one_line(err.message, 160)}")


def _non_finite(obj, path):
    """Path of the first NaN/inf float, which JSON cannot carry; None if all finite."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else path
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, path + [k])
        if found is not None:
            return found
    return None


def _check_point_shapes(p: dict, root: str) -> None:
    """Cross-field lengths the schema language cannot express."""
    w = p["workers"]
    if len(p["cpu_map"]) != w:
        raise ResultError(f"{root}.cpu_map: {len(p['cpu_map'])} entries for {w} workers")
    if len(p["samples"]) != len(p["interval_times"]):
        raise ResultError(f"{root}.samples: {len(p['samples'])} intervals but "
                          f"{len(p['interval_times'])} interval_times")
    for i, row in enumerate(p["samples"]):
        if len(row) != w:
            raise ResultError(f"{root}.samples[{i}]: {len(row)} entries for {w} workers")
    for name, values in p["counters"].items():
        if len(values) != w:
            raise ResultError(f"{root}.counters.{name}: {len(values)} entries for {w} workers")
    s = p["summary"]
    if s is None and p["samples"]:
        raise ResultError(f"{root}.summary: null although the point has samples")
    if s is not None and len(s["per_worker_ops_per_s"]) != w:
        raise ResultError(f"{root}.summary.per_worker_ops_per_s: "
                          f"{len(s['per_worker_ops_per_s'])} entries for {w} workers")


def _check_finite(obj, root: str) -> None:
    bad = _non_finite(obj, [])
    if bad is not None:
        raise ResultError(f"{_path_str(bad, root)}: non-finite number (JSON has no NaN/inf)")


def validate(doc) -> None:
    """Raise ResultError naming the first failing path if ``doc`` is not a valid current result."""
    _schema_errors(doc)
    _check_finite(doc, "")
    for i, p in enumerate(doc["points"]):
        _check_point_shapes(p, f"points[{i}]")


def validate_header(doc) -> None:
    """Validate everything but the points (each was validated when it was added):
    the journal rewrites the file after every point without re-checking them all."""
    if not isinstance(doc, dict):
        raise ResultError("(document): not an object")
    head = dict(doc)
    head["points"] = []
    _schema_errors(head)
    _check_finite(head, "")


def validate_point(point, root: str = "point") -> None:
    """Validate one point on its own, so the harness hears of a bad point at once."""
    _schema_errors(point, "point", root)
    _check_finite(point, root)
    _check_point_shapes(point, root)


# ---------------------------------------------------------------------------
# Building documents

def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_document(workload: dict, machine: dict, limits: dict, command: list[str],
                 sweep: dict | None = None) -> dict:
    """An empty current-version result: the harness then calls add_point per point.

    ``limits`` keys atomic_ns/pingpong_ns/memset_gbps default to None (not measured).
    With a ``sweep`` plan the document is partial (``complete`` false) until
    :meth:`Journal.finish`; without one it is complete with whatever points it holds.
    """
    import mmbench
    lim = {"atomic_ns": None, "pingpong_ns": None, "memset_gbps": None}
    lim.update(limits or {})
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "mmbench_version": mmbench.__version__,
        "created": _now_iso(),
        "command": [str(a) for a in command],
        "machine": plain(machine),
        "limits": plain(lim),
        "workload": plain(workload),
        "points": [],
        "complete": sweep is None,
        "sweep": plain(sweep),
        "resumes": [],
    }


def is_partial(doc: dict) -> bool:
    return not doc.get("complete", True)


def planned_count(doc: dict) -> int | None:
    sweep = doc.get("sweep")
    return len(sweep["planned"]) if sweep else None


def partial_note(doc: dict, path=None) -> str | None:
    """One line saying a result is partial (None when it is complete)."""
    if not is_partial(doc):
        return None
    planned = planned_count(doc)
    of = f" of {planned} planned" if planned is not None else ""
    how = f"; mmbench run --resume {path} continues it" if path is not None else ""
    return f"PARTIAL result: {len(doc['points'])}{of} points (the sweep did not finish{how})"


def point_key(variant, params, workers, repeat, mode) -> str:
    """Identity of a sweep point, to match planned points with completed ones."""
    return json.dumps([variant, plain(params), int(workers), int(repeat), mode], sort_keys=True)


def _done_key(p: dict) -> str:
    return point_key(p["variant"], p["params"], p["workers"], p.get("repeat", 0), p["mode"])


def _planned_keys(sweep: dict) -> list[str]:
    return [point_key(q["variant"], q["params"], q["workers"], q["repeat"], sweep["mode"])
            for q in sweep["planned"]]


def missing_points(doc: dict) -> list[int]:
    """Indices into ``doc["sweep"]["planned"]`` of the points not yet in ``doc["points"]``."""
    from collections import Counter
    sweep = doc.get("sweep")
    if not sweep:
        return []
    done = Counter(_done_key(p) for p in doc["points"])
    out = []
    for i, k in enumerate(_planned_keys(sweep)):
        if done[k] > 0:
            done[k] -= 1
        else:
            out.append(i)
    return out


def sort_as_planned(doc: dict) -> None:
    """Put the points in plan order (what an uninterrupted sweep writes)."""
    sweep = doc.get("sweep")
    if not sweep:
        return
    slots: dict = {}
    for i, k in enumerate(_planned_keys(sweep)):
        slots.setdefault(k, []).append(i)
    order = []
    for j, p in enumerate(doc["points"]):
        idx = slots.get(_done_key(p))
        order.append((idx.pop(0) if idx else len(sweep["planned"]) + j, j))
    doc["points"] = [doc["points"][j] for _, j in sorted(order)]


def plain(obj):
    """A copy of ``obj`` with numpy arrays/scalars and tuples turned into JSON types.

    The harness reads counters straight out of shared numpy arrays; JSON (and the
    schema's "integer") know only Python ints, floats and lists.
    """
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "tolist"):      # numpy array or scalar, without importing numpy
        return plain(obj.tolist())
    return obj


def add_point(doc: dict, point: dict) -> dict:
    """Fill ``point["summary"]`` from its raw samples, validate it, append it; return it.

    The point is stored as a plain-JSON copy (numpy values converted), and that
    copy is returned.  A point without intervals (a run that failed before
    measuring, see ``error``) gets summary None rather than invented numbers.
    """
    from . import stats
    point = plain(point)
    root = f"points[{len(doc['points'])}]"
    if point.get("samples"):
        try:
            point["summary"] = stats.summarize(point["samples"], point.get("interval_times", []))
        except (ValueError, TypeError) as exc:
            raise ResultError(f"{root}: cannot summarise samples: {_one_line(exc)}") from None
    else:
        point["summary"] = None
    validate_point(point, root)
    doc["points"].append(point)
    return point


# ---------------------------------------------------------------------------
# Files

def _timestamp(created: str) -> str:
    try:
        dt = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ResultError(f"created: not an ISO-8601 time: {created!r}") from None
    return dt.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def default_path(doc: dict, results_dir="results") -> Path:
    """<results_dir>/<machine>/<YYYYmmddTHHMMSSZ>-<short commit|nogit>-<workload>.json.

    One directory per machine, as asv does, so results of different boxes never mix;
    the timestamp is the document's creation time, so the name is reproducible.
    """
    from .metadata import sanitize_name
    machine = sanitize_name(str(doc["machine"].get("name") or "unknown"))
    git = doc["machine"].get("git") or {}
    short = sanitize_name(git.get("short") or "nogit")
    name = sanitize_name(doc["workload"]["name"])
    return Path(results_dir) / machine / f"{_timestamp(doc['created'])}-{short}-{name}.json"


def _umask() -> int:
    """The process umask, read without changing it where /proc says it (Linux >= 4.7)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def write_atomic(path, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same directory and are fsynced; then
    ``os.link`` publishes them, which fails if ``path`` exists (no silent
    overwrite, no check-then-write race), or ``os.replace`` when ``overwrite``.
    On filesystems without hard links the name is claimed with O_EXCL first.
    The temporary file is removed on every path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ResultError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file 0600; a result is for everyone to read (0644 under
        # the usual umask), like any file the user creates.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ResultError(f"{path} exists; refusing to overwrite "
                                  "(use --output with another name)") from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                try:  # no hard links here (e.g. vfat, some FUSE): claim the name, then replace
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                except FileExistsError:
                    raise ResultError(f"{path} exists; refusing to overwrite "
                                      "(use --output with another name)") from None
                os.replace(tmp, path)
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # directory fsync is best effort (not supported everywhere)
    except OSError as exc:
        raise ResultError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return path


def dumps(doc: dict) -> bytes:
    """The canonical bytes of a result file: compact JSON, no NaN, trailing newline."""
    try:
        return (json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise ResultError(f"result is not serialisable as JSON: {_one_line(exc)}") from None


def write_result(doc: dict, path=None, results_dir="results", overwrite: bool = False) -> Path:
    """Validate and atomically write ``doc``; return the path written.

    ``path`` None means :func:`default_path`.  Never overwrites unless asked.
    """
    validate(doc)
    if path is None:
        path = default_path(doc, results_dir)
    return write_atomic(path, dumps(doc), overwrite=overwrite)


class Journal:
    """A result file that holds every completed point as soon as it completes.

    :meth:`start` claims the path (never overwriting an existing file) with the
    document's plan and no points, ``complete`` false; :meth:`add` appends one
    point and rewrites the file atomically, so a reader (or a ``kill -9``) sees
    the file before or after that point, never half of it; :meth:`finish` puts the
    points in plan order and marks the file complete.  A resumed sweep opens
    the partial file with ``resume=True`` and goes on rewriting it in place.
    """

    def __init__(self, doc: dict, path, resume: bool = False):
        self.doc = doc
        self.path = Path(path)
        self._claimed = resume

    def save(self) -> None:
        """Rewrite the claimed file with the document as it is now (e.g. a resume record)."""
        validate_header(self.doc)
        write_atomic(self.path, dumps(self.doc), overwrite=self._claimed)

    def start(self) -> Path:
        if not self._claimed:
            self.save()
            self._claimed = True
        return self.path

    def add(self, point: dict) -> dict:
        rec = add_point(self.doc, point)
        self.save()
        return rec

    def finish(self) -> Path:
        sort_as_planned(self.doc)
        self.doc["complete"] = True
        validate(self.doc)
        write_atomic(self.path, dumps(self.doc), overwrite=True)
        return self.path

    def discard_if_empty(self) -> bool:
        """Remove a fresh file that never got a point (interrupted before the first)."""
        if self.doc["points"] or self.doc.get("resumes"):
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        return True


def upgrade(doc: dict, where: str = "document") -> dict:
    """Bring an older-version document to SCHEMA_VERSION in memory (the file is untouched)."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultError(f"{where}: schema_version is {version!r}, not an integer")
    if version > SCHEMA_VERSION:
        raise ResultError(f"{where}: result schema version {version} is newer than this "
                          f"mmbench supports ({SCHEMA_VERSION}); upgrade mmbench")
    if version < 1:
        raise ResultError(f"{where}: unknown result schema version {version}")
    while version < SCHEMA_VERSION:
        _UPGRADES[version](doc)
        version += 1
        doc["schema_version"] = version
    return doc


def read_result(path) -> dict:
    """Load, upgrade and validate a result file; any problem is one-line ResultError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg})") from None
    except UnicodeDecodeError:
        raise ResultError(f"{path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ResultError(f"{path}: not an mmbench result file (format {got!r}, "
                          f"expected {FORMAT!r})")
    upgrade(doc, str(path))
    try:
        validate(doc)
    except ResultError as exc:
        raise ResultError(f"{path}: {exc}") from None
    return doc


# ---------------------------------------------------------------------------
# Display

def _g(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x != 0 and abs(x) >= 10 ** digits:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def varying_params(points) -> list[str]:
    """Parameter names whose value differs between points (the others are fixed)."""
    names = sorted({k for p in points for k in p.get("params", {})})
    missing = object()
    return [k for k in names
            if len({repr(p.get("params", {}).get(k, missing)) for p in points}) > 1]


def _counter_sum(p, name):
    values = p.get("counters", {}).get(name)
    return sum(values) if values else None


def _row(p, vary, show_repeat, show_locks):
    s = p.get("summary")
    cells = [p["variant"]] + [str(p["params"].get(k, "-")) for k in vary]
    cells += [p["mode"], f"{p['workers']}{'*' if p.get('oversubscribed') else ''}"]
    if show_repeat:
        cells.append(str(p.get("repeat", 0)))
    if s is None:
        cells += ["-", "-", "-", "-"]
    else:
        r = s["ops_per_s"]
        pw = s["per_worker_ops_per_s"]
        cells += [f"{_g(r['median'] / 1e6)} ± {_g(r['stddev'] / 1e6, 2)}",
                  _g(r["hmean"] / 1e6),
                  f"{_g(min(pw) / 1e6)}..{_g(max(pw) / 1e6)}",
                  f"{s['jain']:.3f}"]
    if p.get("error"):
        cells.append("n/a" if str(p["error"]).startswith("not runnable") else "ERROR")
    else:
        cells.append("OK" if p["invariants"]["ok"] else "FAIL")
    if show_locks:
        acq = _counter_sum(p, "lock_acquisitions")
        ops = s["total_ops"] if s else 0
        cont = _counter_sum(p, "lock_contended")
        hold = _counter_sum(p, "lock_hold_cycles_sampled")
        nhold = _counter_sum(p, "lock_hold_samples")
        hand = _counter_sum(p, "lock_handovers")
        cells += [_g(acq / ops) if acq is not None and ops else "-",
                  f"{100 * cont / acq:.1f}%" if cont is not None and acq else "-",
                  f"{100 * hand / acq:.1f}%" if hand is not None and acq else "-",
                  _g(hold / nhold) if hold is not None and nhold else "-"]
    return cells


def _table(headers, rows) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [headers, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def summary_table(points) -> str:
    """One row per point: the columns kernel engineers read first.

    Mops/s is the median per-interval total rate ± its stddev; hmean is the
    harmonic mean of those rates; 'worker Mops/s' is the slowest..fastest worker
    over the window; '*' marks more workers than allowed CPUs.  Lock columns
    (acquisitions per op, % of acquisitions contended, % that handed the lock to
    another worker (a monopolised lock shows few), mean sampled hold cycles)
    appear when a model reports lock counters; counters and ops both cover the
    measured window.
    """
    points = list(points)
    if not points:
        return "(no points)"
    vary = varying_params(points)
    show_repeat = any(p.get("repeat", 0) for p in points)
    show_locks = any(_counter_sum(p, "lock_acquisitions") for p in points)
    headers = ["variant", *vary, "mode", "workers"]
    if show_repeat:
        headers.append("rep")
    headers += ["Mops/s", "hmean", "worker Mops/s", "jain", "inv"]
    if show_locks:
        headers += ["acq/op", "contended", "handover", "hold cyc"]
    return _table(headers, [_row(p, vary, show_repeat, show_locks) for p in points])


def _machine_line(m: dict) -> str:
    t = m.get("topology") or {}
    topo = ""
    if t.get("sockets"):
        topo = (f" ({t['sockets']} socket x {t['cores_per_socket']} core x "
                f"{t['threads_per_core']} thread, {t.get('numa_nodes') or '?'} NUMA node)")
    bits = [f"{m.get('name')}: {m.get('cpu_model') or '?'}, {m.get('nproc')} CPUs{topo}",
            f"{len(m.get('allowed_cpus') or [])} allowed",
            f"kernel {m.get('kernel')}"]
    if m.get("thp"):
        bits.append(f"THP {m['thp']}")
    if m.get("cpufreq_governor"):
        bits.append(f"governor {m['cpufreq_governor']}")
    if m.get("virtualized"):
        bits.append("virtualized")
    return ", ".join(bits)


def latency_table(points, tsc_per_ns=None) -> str:
    """p50 / p99 / max of each sampled latency histogram, in cycles (and ns when the
    cycle-counter rate was measured).  Values are log2 bucket upper bounds."""
    from .stats import hist_summary
    vary = varying_params(points)
    rows = []
    for p in points:
        for op, h in sorted((p.get("latency") or {}).items()):
            s = hist_summary(h["counts"], h.get("bucket_log2_base", 0))
            if not s.get("count"):
                continue
            cells = [p["variant"]] + [str(p["params"].get(k, "-")) for k in vary]
            cells += [p["mode"], str(p["workers"]), op]
            for q in ("p50", "p99", "max"):
                v = s[q]
                cells.append(_g(v) if not tsc_per_ns else f"{_g(v)} ({_g(v / tsc_per_ns)} ns)")
            rows.append(cells)
    if not rows:
        return ""
    headers = ["variant", *vary, "mode", "workers", "op", "p50 cyc", "p99 cyc", "max cyc"]
    return "latency (sampled, log2 bucket upper bounds):\n" + _table(headers, rows)


def format_show(doc: dict, path=None) -> str:
    """Human-readable view of a result document (what ``mmbench show`` prints)."""
    w = doc["workload"]
    m = doc["machine"]
    lim = doc["limits"]
    git = m.get("git") or {}
    rev = (git.get("short") or "nogit") + ("+dirty" if git.get("dirty") else "")
    out = [f"workload: {w['name']} v{w['version']} (model {w['model']}): {w['description']}",
           f"created:  {doc['created']}, mmbench {doc['mmbench_version']} ({rev})",
           f"machine:  {_machine_line(m)}",
           "limits:   atomic RMW {} ns, cache-line ping-pong {} ns, memset {} GB/s".format(
               _g(lim.get("atomic_ns")), _g(lim.get("pingpong_ns")), _g(lim.get("memset_gbps")))]
    if doc.get("command"):
        out.append("command:  " + " ".join(doc["command"]))
    for r in doc.get("resumes") or []:
        forced = f", forced over: {'; '.join(r['forced'])}" if r.get("forced") else ""
        out.append(f"resumed:  {r['at']} with {r['points_before']} point(s) done{forced}")
    note = partial_note(doc, path)
    if note:
        out.append(note)
    points = doc["points"]
    fixed = {k: v for k, v in (points[0]["params"].items() if points else [])
             if k not in varying_params(points)}
    if fixed:
        out.append("params:   " + ", ".join(f"{k}={v}" for k, v in sorted(fixed.items())))
    out += ["", summary_table(points)]
    lat = latency_table(points, lim.get("tsc_per_ns"))
    if lat:
        out += ["", lat]
    for i, p in enumerate(points):
        problems = ([f"error: {p['error']}"] if p.get("error") else []) + \
            [f"invariant: {e}" for e in p["invariants"]["errors"]]
        for line in problems:
            out.append(f"  point {i} ({p['variant']}, {p['mode']}, w{p['workers']}): "
                       + _one_line(line))
    return "\n".join(out)

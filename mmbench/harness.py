"""Run one sweep point: W workers running a model's kernel, sampled like will-it-scale.

The harness owns everything but the mechanism: the arena, pinning, the start
barrier, warm-up, per-interval sampling of per-worker op counts, the stop flag,
the watchdog and cleanup.  It is handed a :class:`mmbench.model.Model` and knows
no model by name.

Process mode forks the workers after the parent has compiled (or loaded from the
cache) every kernel, so a worker pays no compile time and inherits the arena's
mapping; the arena's name is unlinked as soon as it is mapped.  Thread
mode runs the same nogil kernels in threads of the parent.

Per-worker progress words (``prog``, one 128-byte row per worker) are written
only by their worker, after each bounded batch, and read by the parent at each
sampling tick.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait as mp_wait

import numpy as np

from .ctl import CTL_ABORT, CTL_CLOCK_MS, CTL_GO, CTL_STOP, CTL_WORDS, ROW_WORDS
from .model import Model, ModelNotRunnable
from .shm import Arena, Layout

# prog[w, i]
P_OPS = 0          # ops done since the start barrier
P_BATCHES = 1      # batches returned (heartbeat)
P_STATE = 2        # S_* below
P_BATCH = 3        # current batch size (ops per step call)
P_STEP_NS = 4      # total ns spent inside step() (for the overhead figure)
P_WALL_NS = 5      # total ns of the worker's loop
S_INIT, S_READY, S_RUNNING, S_DONE, S_FAILED = 0, 1, 2, 3, 4

TARGET_BATCH_NS = 2_000_000


class HarnessError(RuntimeError):
    """A run that could not complete: a worker died, hung or raised."""


@dataclass
class RunConfig:
    workers: int
    mode: str = "process"
    duration: float = 2.0
    warmup: float = 0.5
    interval: float = 0.1
    seed: int = 1
    watchdog: float = 10.0
    repeat: int = 0


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def cpu_map(workers: int, cpus: list[int] | None = None) -> list[int]:
    """Round-robin placement of workers over the CPUs this process may use."""
    cpus = cpus or allowed_cpus()
    return [cpus[i % len(cpus)] for i in range(workers)]


def _set_pdeathsig(parent: int) -> None:
    """Have the kernel SIGKILL this worker if the parent dies (PR_SET_PDEATHSIG).

    A worker must never run on without its parent (nobody would stop it, and
    a ``kill -9`` of ``mmbench`` would leave W spinning processes).  The parent
    may have died between fork and prctl: then it is already gone, so exit.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(4)


def _worker_body(model: Model, arrays: dict, p: dict, w: int, nworkers: int, cpu: int,
                 tid_affinity: bool) -> None:
    """The loop every worker runs; raises on a model error (the caller reports it)."""
    try:
        os.sched_setaffinity(threading.get_native_id() if tid_affinity else 0, {cpu})
    except OSError:
        pass
    prog = arrays["prog"]
    ctl = arrays["ctl"]
    ctx = model.worker_init(arrays, p, w, nworkers)
    prog[w, P_STATE] = S_READY
    while ctl[CTL_GO] == 0:
        if ctl[CTL_STOP] or ctl[CTL_ABORT]:
            return
        time.sleep(0.0002)
    prog[w, P_STATE] = S_RUNNING
    n = 1
    step = model.step
    clock = time.perf_counter_ns
    loop_start = clock()
    in_step = 0
    while ctl[CTL_STOP] == 0 and ctl[CTL_ABORT] == 0:
        t = clock()
        ops = step(ctx, n)
        dt = clock() - t
        in_step += dt
        prog[w, P_OPS] += ops
        prog[w, P_BATCHES] += 1
        # Keep a batch near TARGET_BATCH_NS so stop and sampling stay responsive
        # while the per-batch Python overhead stays far below 1 %.
        if dt < TARGET_BATCH_NS // 2 and n < (1 << 40):
            n *= 2
        elif dt > TARGET_BATCH_NS * 2 and n > 1:
            n //= 2
        prog[w, P_BATCH] = n
    prog[w, P_STEP_NS] = in_step
    prog[w, P_WALL_NS] = clock() - loop_start
    if ctl[CTL_ABORT] == 0:
        model.worker_finish(ctx)
    prog[w, P_STATE] = S_DONE


def _process_main(model, arrays, p, w, nworkers, cpu, errq, parent) -> None:
    _set_pdeathsig(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        _worker_body(model, arrays, p, w, nworkers, cpu, tid_affinity=False)
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        arrays["prog"][w, P_STATE] = S_FAILED
        errq.put((w, f"{type(e).__name__}: {e}", traceback.format_exc()))
        os._exit(3)
    os._exit(0)


@dataclass
class _Workers:
    mode: str
    procs: list = field(default_factory=list)
    threads: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    errq: object = None

    def sentinels(self):
        return [p.sentinel for p in self.procs]

    def dead(self) -> list[tuple[int, str]]:
        """Workers that ended abnormally, with how."""
        out = [(w, f"raised {msg}") for w, msg, _tb in self.drain_errors()]
        raised = {w for w, _ in out}
        for w, pr in enumerate(self.procs):
            code = pr.exitcode
            if code is not None and code != 0 and w not in raised:
                how = (f"killed by signal {-code} ({signal.Signals(-code).name})"
                       if code < 0 else f"exited with status {code}")
                out.append((w, how))
        return out

    def drain_errors(self):
        if self.errq is not None:
            while not self.errq.empty():
                self.errors.append(self.errq.get())
        errs, self.errors = self.errors, []
        return errs

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.procs) or any(t.is_alive() for t in self.threads)

    def kill(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join(timeout=5)


def _start_workers(model, arrays, p, cfg: RunConfig, cmap) -> _Workers:
    ws = _Workers(cfg.mode)
    if cfg.mode == "process":
        ctx = multiprocessing.get_context("fork")
        ws.errq = ctx.SimpleQueue()
        for w in range(cfg.workers):
            pr = ctx.Process(target=_process_main, name=f"mmbench-worker-{w}",
                             args=(model, arrays, p, w, cfg.workers, cmap[w], ws.errq,
                                   os.getpid()),
                             daemon=True)
            pr.start()
            ws.procs.append(pr)
    else:
        def run(w):
            try:
                _worker_body(model, arrays, p, w, cfg.workers, cmap[w], tid_affinity=True)
            except BaseException as e:  # noqa: BLE001
                arrays["prog"][w, P_STATE] = S_FAILED
                ws.errors.append((w, f"{type(e).__name__}: {e}", traceback.format_exc()))
        for w in range(cfg.workers):
            t = threading.Thread(target=run, args=(w,), name=f"mmbench-worker-{w}", daemon=True)
            t.start()
            ws.threads.append(t)
    return ws


class _Watch:
    """Watchdog: a worker must return from a batch at least every ``timeout`` s."""

    def __init__(self, prog, ws: _Workers, timeout: float, cmap):
        self.prog, self.ws, self.timeout, self.cmap = prog, ws, timeout, cmap
        self.last = prog[:, P_BATCHES].copy()
        self.since = np.full(len(self.last), time.monotonic())
        self.ctl = None          # set at the start barrier: the clock word is kept current
        self.t0 = 0.0

    def start_clock(self, ctl) -> None:
        self.ctl, self.t0 = ctl, time.monotonic()
        ctl[CTL_CLOCK_MS] = 0

    def _tick(self) -> None:
        if self.ctl is not None:
            self.ctl[CTL_CLOCK_MS] = int((time.monotonic() - self.t0) * 1000)

    def check(self, phase: str) -> None:
        dead = self.ws.dead()
        if dead:
            w, how = dead[0]
            raise HarnessError(f"worker {w} (cpu {self.cmap[w]}) {how} during {phase}")
        now = time.monotonic()
        cur = self.prog[:, P_BATCHES]
        moved = cur != self.last
        self.since[moved] = now
        self.last = cur.copy()
        running = self.prog[:, P_STATE] == S_RUNNING
        stuck = np.nonzero(running & (now - self.since > self.timeout))[0]
        if len(stuck):
            w = int(stuck[0])
            raise HarnessError(
                f"worker {w} (cpu {self.cmap[w]}) made no progress for {self.timeout:g} s during "
                f"{phase} (a batch never returned: a lock whose holder died, or a livelock)")

    def sleep(self, seconds: float, phase: str) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.ws.procs:
                mp_wait(self.ws.sentinels(), timeout=min(left, 0.05))
            else:
                time.sleep(min(left, 0.05))
            self._tick()
            self.check(phase)


def failed_point(variant, p, cfg: RunConfig, why: str) -> dict:
    """The record of a point whose run failed (HarnessError): no samples, the reason."""
    cpus = allowed_cpus()
    rec = not_runnable_point(variant, p, cfg, cpus, cpu_map(cfg.workers, cpus), why)
    rec["error"] = f"failed: {why}"
    rec["invariants"] = {"ok": False, "errors": [f"run failed: {why}"]}
    return rec


def not_runnable_point(variant, p, cfg: RunConfig, cpus, cmap, why: str) -> dict:
    """The record of a point the model refused to run on this machine."""
    return {
        "variant": variant, "params": dict(p), "mode": cfg.mode, "workers": cfg.workers,
        "allowed_cpus": len(cpus), "oversubscribed": cfg.workers > len(cpus), "cpu_map": cmap,
        "repeat": cfg.repeat, "warmup_s": cfg.warmup, "interval_s": cfg.interval,
        "interval_times": [], "samples": [], "counters": {},
        "invariants": {"ok": True, "errors": []}, "compile_s": 0.0, "pingpong_ns": None,
        "error": f"not runnable: {why}",
    }


def run_point(model: Model, variant: str, p: dict, cfg: RunConfig,
              on_progress=None) -> dict:
    """Run one sweep point and return its result record (without the summary).

    Raises HarnessError when a worker dies, raises or stops making progress; the
    arena is unlinked and every worker is gone on every exit path.
    """
    if cfg.mode not in ("process", "thread"):
        raise ValueError(f"mode must be process or thread, got {cfg.mode!r}")
    cpus = allowed_cpus()
    cmap = cpu_map(cfg.workers, cpus)
    W = cfg.workers
    specs = [(s.name, s.shape, s.dtype) for s in model.layout(p, W)]
    specs += [("ctl", (CTL_WORDS,), np.int64),
              ("counters", (W, model.counter_columns()), np.int64),
              ("prog", (W, ROW_WORDS), np.int64)]
    # Workers are forked (they inherit the mapping) or threads: nobody needs the
    # name, so it goes at once and no crash, not even kill -9 of this process
    # during a long setup or compile, can leave a segment in /dev/shm.
    arena = Arena.create(Layout(specs), unlinked=True)
    arrays = dict(arena.arrays)
    ws = None
    set_up = False
    try:
        try:
            model.setup(arrays, p, W, cfg.seed)
        except ModelNotRunnable as e:
            return not_runnable_point(variant, p, cfg, cpus, cmap, str(e))
        set_up = True
        t0 = time.perf_counter()
        model.compile(p)
        compile_s = time.perf_counter() - t0
        from .probes import pingpong_ns
        pp = pingpong_ns(cmap[0], cmap[1] if W > 1 else (cpus[1] if len(cpus) > 1 else cpus[0]))

        ws = _start_workers(model, arrays, p, cfg, cmap)
        prog, ctl = arrays["prog"], arrays["ctl"]
        watch = _Watch(prog, ws, cfg.watchdog, cmap)
        deadline = time.monotonic() + max(cfg.watchdog, 30.0)
        while not np.all(prog[:, P_STATE] >= S_READY):
            watch.sleep(0.002, "start-up")
            if np.any(prog[:, P_STATE] == S_FAILED) or time.monotonic() > deadline:
                watch.check("start-up")
                raise HarnessError("workers did not reach the start barrier in time")
        watch.start_clock(ctl)
        ctl[CTL_GO] = 1
        watch.sleep(cfg.warmup, "warm-up")

        nint = max(1, int(round(cfg.duration / cfg.interval)))
        samples = []
        times = []
        cnt = arrays["counters"]
        cnt_start = cnt.copy()
        last = prog[:, P_OPS].copy()
        t_last = time.perf_counter()
        start = t_last
        for i in range(nint):
            target = start + (i + 1) * cfg.interval
            watch.sleep(max(0.0, target - time.perf_counter()), "the measured window")
            now_ops = prog[:, P_OPS].copy()
            t_now = time.perf_counter()
            samples.append((now_ops - last).tolist())
            times.append(t_now - t_last)
            last, t_last = now_ops, t_now
            if on_progress:
                on_progress(i + 1, nint)
        # Counters cover the measured window, like the samples (each word is
        # written by one worker; an aligned 8-byte read is never torn).
        cnt_window = cnt.copy() - cnt_start
        ctl[CTL_STOP] = 1
        end = time.monotonic() + cfg.watchdog
        while ws.alive() and time.monotonic() < end:
            if ws.procs:
                mp_wait(ws.sentinels(), timeout=0.05)
            else:
                for t in ws.threads:
                    t.join(timeout=0.05)
            dead = ws.dead()
            if dead:
                w, how = dead[0]
                raise HarnessError(f"worker {w} (cpu {cmap[w]}) {how} while stopping")
        if ws.alive():
            stuck = [w for w in range(W) if prog[w, P_STATE] != S_DONE]
            raise HarnessError(f"worker {stuck[0]} (cpu {cmap[stuck[0]]}) did not stop within "
                               f"{cfg.watchdog:g} s of the stop flag")
        dead = ws.dead()
        if dead:
            w, how = dead[0]
            raise HarnessError(f"worker {w} (cpu {cmap[w]}) {how} while stopping")

        errors = list(model.check(arrays, p, W))
        rep = model.report(arrays, p, W) or {}
        counters = {name: cnt_window[:, col].tolist() for name, col in model.counter_map().items()}
        counters.update(rep.get("counters", {}))
        step_ns = prog[:, P_STEP_NS].astype(float)
        wall_ns = prog[:, P_WALL_NS].astype(float)
        point = {
            "variant": variant,
            "params": {k: v for k, v in p.items()},
            "mode": cfg.mode,
            "workers": W,
            "allowed_cpus": len(cpus),
            "oversubscribed": W > len(cpus),
            "cpu_map": cmap,
            "repeat": cfg.repeat,
            "warmup_s": cfg.warmup,
            "interval_s": cfg.interval,
            "interval_times": times,
            "samples": samples,
            "counters": counters,
            "invariants": {"ok": not errors, "errors": errors[:20]},
            "compile_s": compile_s,
            "pingpong_ns": pp,
            "extra": dict(rep.get("extra", {}),
                          harness_overhead=float(1.0 - step_ns.sum() / wall_ns.sum())
                          if wall_ns.sum() > 0 else None,
                          final_batch=prog[:, P_BATCH].tolist()),
        }
        if "latency" in rep:
            point["latency"] = rep["latency"]
        return point
    except BaseException:
        if ws is not None:
            arrays["ctl"][CTL_ABORT] = 1
            arrays["ctl"][CTL_STOP] = 1
            ws.kill()
            for t in ws.threads:
                t.join(timeout=cfg.watchdog)
        raise
    finally:
        if ws is not None:
            ws.kill()
        try:
            if set_up:
                model.teardown(arrays, p)
        finally:
            arrays.clear()
            arena.close()

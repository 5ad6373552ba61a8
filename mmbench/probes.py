"""Measured machine limits: what one atomic, one cache-line transfer and memset cost here.

These explain the curves (DOMAIN.md §6) and are recorded with every result:
an uncontended ``lock xadd``, the one-way cross-core cache-line transfer
(ping-pong between two pinned threads; bimodal on some VMs, so it is measured
in the same run as the numbers it explains), and memset bandwidth over a buffer
far larger than the caches, written the way the memmap init kernels write
(64-byte records through an (N, 8) int64 view).
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from numba import njit

from .jit import helper, kernel
from .atomics import cpu_relax, fetch_add, load_acquire, rdtsc, store_release

SPIN_LIMIT = 50_000_000


@kernel
def _xadd_loop(a, n):
    for _ in range(n):
        fetch_add(a, 0, 1)
    return a[0]


@kernel
def _ping(a, n, side):
    """One side of a ping-pong on a[0]; returns -1 if the other side never answered."""
    for i in range(n):
        if side == 0:
            store_release(a, 0, 2 * i + 1)
            want = 2 * i + 2
        else:
            want = 2 * i + 1
        spins = 0
        while load_acquire(a, 0) != want:
            cpu_relax()
            spins += 1
            if spins > SPIN_LIMIT:
                return -1
        if side == 1:
            store_release(a, 0, 2 * i + 2)
    return n


@kernel
def _fill_records(m, v):
    """Write every word of an (N, 8) int64 array: the store pattern of memmap init."""
    for i in range(m.shape[0]):
        for j in range(8):
            m[i, j] = v + j
    return m.shape[0]


def atomic_ns(n: int = 2_000_000) -> float:
    """ns per uncontended ``lock xadd`` on a private line (median of 5)."""
    a = np.zeros(8, np.int64)
    _xadd_loop(a, 10)
    runs = []
    for _ in range(5):
        t = time.perf_counter_ns()
        _xadd_loop(a, n)
        runs.append((time.perf_counter_ns() - t) / n)
    return float(np.median(runs))


def pingpong_ns(cpu_a: int, cpu_b: int, rounds: int = 20_000) -> float | None:
    """One-way cache-line transfer latency between two CPUs, in ns (None if unmeasurable)."""
    if cpu_a == cpu_b:
        return None
    buf = np.zeros(32, np.int64)
    a = buf[8:16]  # alone in its line
    _ping(np.zeros(8, np.int64), 0, 0)
    result = {}

    def side(s, cpu):
        try:
            os.sched_setaffinity(threading.get_native_id(), {cpu})
        except OSError:
            pass
        result[s] = _ping(a, rounds, s)

    # Both sides run in threads of their own: pinning the calling thread would
    # shrink the affinity every later sched_getaffinity(0) reports.
    def timed_side0():
        t = time.perf_counter_ns()
        side(0, cpu_a)
        result["ns"] = time.perf_counter_ns() - t

    tb = threading.Thread(target=side, args=(1, cpu_b), daemon=True)
    ta = threading.Thread(target=timed_side0, daemon=True)
    tb.start()
    ta.start()
    ta.join(timeout=10)
    tb.join(timeout=10)
    if result.get(0, -1) < 0 or result.get(1, -1) < 0 or "ns" not in result:
        return None
    return result["ns"] / rounds / 2


def memset_gbps(mib: int = 256) -> float:
    """Bytes/s writing 64-byte records over ``mib`` MiB (best of 3 warm passes), in GB/s."""
    m = np.empty((mib * 1024 * 1024 // 64, 8), np.int64)
    _fill_records(m, 0)  # fault in and compile
    best = 0.0
    for r in range(3):
        t = time.perf_counter_ns()
        _fill_records(m, r + 1)
        el = time.perf_counter_ns() - t
        best = max(best, m.nbytes / el)
    return best


def cycles_per_ns(seconds: float = 0.05) -> float:
    """Cycle-counter ticks per ns, to turn rdtsc histograms into time."""
    _rdtsc()  # compile (or load) first: not between the two timestamps
    t0, c0 = time.perf_counter_ns(), _rdtsc()
    time.sleep(seconds)
    t1, c1 = time.perf_counter_ns(), _rdtsc()
    return (c1 - c0) / (t1 - t0)


@helper
def _rdtsc():
    return rdtsc()


def measure_limits(quick: bool = False) -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    pp = pingpong_ns(cpus[0], cpus[1]) if len(cpus) > 1 else None
    return {
        "atomic_ns": atomic_ns(),
        "pingpong_ns": pp,
        "memset_gbps": memset_gbps(64 if quick else 256),
        "tsc_per_ns": cycles_per_ns(),
    }

"""Kernel micro-benchmarks (pytest-benchmark), single process, small sizes.

    python -m pytest tests/benchmarks --benchmark-only [--benchmark-autosave]
    python -m pytest tests/benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:10%

Each benchmark times one call of a compiled kernel doing N operations.  Every one stores
in ``extra_info``: ``ns_per_op`` (median time / N), ``ns_per_pair`` where an op is half of
an alloc+free pair, and ``xadd_ratio``: its per-op (or per-pair) time over an uncontended
``lock xadd`` measured in the same process just before, so that the figure carries from one
machine to another.  The allocator benchmarks run the same generated drivers a sweep runs
(mmbench.models.pagealloc_driver), through the model's ``step``.
"""
import functools

import numpy as np
import pytest

from mmbench.atomics import fetch_add
from mmbench.ctl import CTL_WORDS, counter_columns
from mmbench.jit import kernel
from mmbench.probes import atomic_ns
from mmbench.locks import (LOCK_KINDS, init_lockset, lockset_words, spin_lock, spin_lock_inline,
                           spin_unlock, spin_unlock_inline)

N = 100_000


@kernel
def _atomic_add(a, n):
    for _ in range(n):
        fetch_add(a, 0, 1)
    return n


@kernel
def _lock_pair(lk, cnt, ctl, n):
    for _ in range(n):
        if not spin_lock(lk, 0, 0, cnt, ctl):
            return -1
        spin_unlock(lk, 0, 0, cnt)
    return n


@kernel
def _lock_pair_inline(lk, cnt, ctl, n):
    for _ in range(n):
        if not spin_lock_inline(lk, 0, 0, cnt, ctl):
            return -1
        spin_unlock_inline(lk, 0, 0, cnt)
    return n


@functools.lru_cache(maxsize=None)
def xadd_ns() -> float:
    """Median ns of one uncontended ``lock xadd`` in this process (the limits probe's)."""
    return atomic_ns()


def _record(benchmark, n, per=1):
    ns = benchmark.stats.stats.median * 1e9 / n
    benchmark.extra_info["ns_per_op"] = ns
    benchmark.extra_info["xadd_ns"] = xadd_ns()
    if per == 2:
        benchmark.extra_info["ns_per_pair"] = 2 * ns
    benchmark.extra_info["xadd_ratio"] = per * ns / xadd_ns()


def _per_op(benchmark, fn, *args, per=1):
    xadd_ns()
    fn(*args[:-1], 10)
    benchmark(fn, *args)
    _record(benchmark, args[-1], per)


def test_atomic_fetch_add(benchmark):
    _per_op(benchmark, _atomic_add, np.zeros(8, np.int64), N)


@pytest.mark.parametrize("kind", list(LOCK_KINDS))
@pytest.mark.parametrize("call", ["inlined", "called"])
def test_uncontended_lock_pair(benchmark, kind, call):
    """lock + unlock, no contention: the inlined copy (the lock family's) and the called one
    (what a model's slow path pays, arrays passed as structs)."""
    lk = np.zeros(lockset_words(1, 1), np.int64)
    init_lockset(lk, 1, 1, LOCK_KINDS[kind])
    cnt = np.zeros((1, counter_columns(0)), np.int64)
    fn = _lock_pair_inline if call == "inlined" else _lock_pair
    _per_op(benchmark, fn, lk, cnt, np.zeros(CTL_WORDS, np.int64), N)


# --- model kernels through their step(): one worker, no harness ---------------------------
def _single_worker(model_name, variant, params):
    from mmbench.models import get_model
    m = get_model(model_name)
    p = m.resolve(variant, params)
    arrays = {s.name: np.zeros(s.shape, s.dtype) for s in m.layout(p, 1)}
    arrays["ctl"] = np.zeros(CTL_WORDS, np.int64)
    arrays["counters"] = np.zeros((1, m.counter_columns()), np.int64)
    m.setup(arrays, p, 1, 1)
    m.compile(p)
    return m, p, arrays, m.worker_init(arrays, p, 0, 1)


def _bench_step(benchmark, model_name, variant, params, n=20_000, per=1, warm=None):
    m, p, arrays, ctx = _single_worker(model_name, variant, params)
    try:
        xadd_ns()
        m.step(ctx, n)
        while warm is not None and not warm(arrays):     # past any pre-fill phase
            m.step(ctx, n)
        benchmark(m.step, ctx, n)
        _record(benchmark, n, per)
        assert m.check(arrays, p, 1) == []
    finally:
        m.teardown(arrays, p)


def _repeat_steady(arrays):
    from mmbench.models.pagealloc_driver import S_PHASE
    return arrays["pa_wst"][0, S_PHASE] == 1


# A = 2^16 / (32 * 2) = 1024 pre-filled blocks, then the pair loop: on a pristine zone the
# pre-fill takes one whole order-10 block, so each pair splits and merges the next one.
REPEAT = {"workload": "repeat", "order": 0, "nframes": 1 << 16, "sweep_max_workers": 1,
          "max_workers": 32}


@pytest.mark.parametrize("variant", ["pcp-classic", "pcp-5.14", "pcp-5.18", "pcp-autotune",
                                     "buddy", "llfree"])
def test_alloc_free_repeat(benchmark, variant):
    """repeat: alloc+free of one order-0 block: a PCP hit pair (pcp-*), a buddy pair on an
    aged zone (an order-0 hole), an LLFree pair (reservation hit)."""
    _bench_step(benchmark, "pagealloc", variant, REPEAT, per=2, warm=_repeat_steady)


def test_buddy_split_merge_pair(benchmark):
    """repeat on a pristine zone: every alloc splits an order-10 block down to order 0
    (10 expand steps), every free merges it back up (10 buddy merges)."""
    _bench_step(benchmark, "pagealloc", "buddy", dict(REPEAT, aged_blocks=0.0), per=2,
                warm=_repeat_steady)


@pytest.mark.parametrize("variant", ["flat", "sparse", "sparse-extreme", "vmemmap", "hvo"])
def test_pfn_to_page(benchmark, variant):
    _bench_step(benchmark, "memmap", variant,
                {"layout": "fragmented", "mem_mib": 256, "walk": "random", "thp": False})

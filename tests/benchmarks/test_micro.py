"""Kernel micro-benchmarks (pytest-benchmark), single process, small sizes.

    python -m pytest tests/benchmarks --benchmark-only [--benchmark-autosave]
    python -m pytest tests/benchmarks --benchmark-only --benchmark-compare --benchmark-compare-fail=median:10%

Each benchmark times one call of a compiled kernel doing N operations; the
per-operation cost is the reported time / N (also stored as extra_info ns_per_op).
"""
import numpy as np
import pytest

from mmbench.atomics import fetch_add
from mmbench.ctl import CTL_WORDS, counter_columns
from mmbench.jit import kernel
from mmbench.locks import LOCK_KINDS, init_lockset, lockset_words, spin_lock, spin_unlock

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


def _per_op(benchmark, fn, *args):
    fn(*args[:-1], 10)
    benchmark(fn, *args)
    benchmark.extra_info["ns_per_op"] = benchmark.stats.stats.median * 1e9 / args[-1]


def test_atomic_fetch_add(benchmark):
    _per_op(benchmark, _atomic_add, np.zeros(8, np.int64), N)


@pytest.mark.parametrize("kind", list(LOCK_KINDS))
def test_uncontended_lock_pair(benchmark, kind):
    lk = np.zeros(lockset_words(1, 1), np.int64)
    init_lockset(lk, 1, 1, LOCK_KINDS[kind])
    cnt = np.zeros((1, counter_columns(0)), np.int64)
    _per_op(benchmark, _lock_pair, lk, cnt, np.zeros(CTL_WORDS, np.int64), N)


# --- model kernels through their step(): one worker, no harness ---------------------------
def _single_worker(model_name, variant, params):
    from mmbench.ctl import CTL_WORDS
    from mmbench.models import get_model
    m = get_model(model_name)
    p = m.resolve(variant, params)
    arrays = {s.name: np.zeros(s.shape, s.dtype) for s in m.layout(p, 1)}
    arrays["ctl"] = np.zeros(CTL_WORDS, np.int64)
    arrays["counters"] = np.zeros((1, m.counter_columns()), np.int64)
    m.setup(arrays, p, 1, 1)
    m.compile(p)
    return m, p, arrays, m.worker_init(arrays, p, 0, 1)


def _bench_step(benchmark, model_name, variant, params, n=20_000):
    m, p, arrays, ctx = _single_worker(model_name, variant, params)
    try:
        m.step(ctx, n)  # warm: past any pre-fill phase
        benchmark(m.step, ctx, n)
        benchmark.extra_info["ns_per_op"] = benchmark.stats.stats.median * 1e9 / n
        assert m.check(arrays, p, 1) == []
    finally:
        m.teardown(arrays, p)


@pytest.mark.parametrize("variant", ["pcp-classic", "pcp-5.14", "pcp-5.18", "pcp-autotune", "buddy", "llfree"])
def test_alloc_free_repeat(benchmark, variant):
    """repeat: alloc+free of one order-0 block (2 ops): a PCP hit pair, or a buddy split+merge."""
    _bench_step(benchmark, "pagealloc", variant,
                {"workload": "repeat", "order": 0, "nframes": 1 << 16, "sweep_max_workers": 1})


@pytest.mark.parametrize("variant", ["flat", "sparse", "sparse-extreme", "vmemmap", "hvo"])
def test_pfn_to_page(benchmark, variant):
    _bench_step(benchmark, "memmap", variant,
                {"layout": "fragmented", "mem_mib": 256, "walk": "random", "thp": False})

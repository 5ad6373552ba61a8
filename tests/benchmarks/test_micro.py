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

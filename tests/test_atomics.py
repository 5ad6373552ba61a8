"""The atomics: exact across processes, and each one the single instruction it names."""
import multiprocessing
import platform
import re

import numpy as np
import pytest
from numba import njit

from mmbench.atomics import (cas, cas_bool, fetch_add, fetch_and, fetch_or, fetch_sub,
                             load_acquire, store_release, xchg)
from mmbench.jit import kernel
from mmbench.shm import Arena, Layout, leaked_segments


@kernel
def _add_loop(a, n):
    for _ in range(n):
        fetch_add(a, 0, 1)
    return n


@kernel
def _cas_loop(a, n):
    # Increment through a CAS retry loop: lost updates would show as a short total.
    retries = 0
    for _ in range(n):
        while True:
            old = load_acquire(a, 8)
            if cas(a, 8, old, old + 1) == old:
                break
            retries += 1
    return retries


@kernel
def _xchg_or_and(a, w, n):
    # Each worker owns one bit of a[16] and toggles it with fetch_or/fetch_and;
    # xchg on a[24] counts ownership hand-overs.
    bit = np.int64(1) << w
    for _ in range(n):
        fetch_or(a, 16, bit)
        fetch_and(a, 16, ~bit)
        xchg(a, 24, w)
    return n


def _worker(arrays, w, n, q):
    a = arrays["a"]
    _add_loop(a, n)
    _cas_loop(a, n)
    _xchg_or_and(a, w, n)
    q.put(w)


def test_single_process_semantics():
    a = np.zeros(32, np.int64)
    assert fetch_add_py(a, 5) == 0 and a[0] == 5
    assert cas_py(a, 5, 9) == 5 and a[0] == 9
    assert cas_py(a, 5, 1) == 9 and a[0] == 9          # failed CAS leaves the value
    assert cas_bool_py(a, 9, 2) and a[0] == 2
    assert not cas_bool_py(a, 9, 3) and a[0] == 2
    assert xchg_py(a, 7) == 2 and a[0] == 7
    assert fetch_or_py(a, 8) == 7 and a[0] == 15
    assert fetch_and_py(a, 6) == 15 and a[0] == 6
    assert fetch_sub_py(a, 10) == 6 and a[0] == -4
    store_rel_py(a, 11)
    assert load_acq_py(a) == 11


@njit
def fetch_add_py(a, v):
    return fetch_add(a, 0, v)


@njit
def cas_py(a, e, n):
    return cas(a, 0, e, n)


@njit
def cas_bool_py(a, e, n):
    return cas_bool(a, 0, e, n)


@njit
def xchg_py(a, v):
    return xchg(a, 0, v)


@njit
def fetch_or_py(a, v):
    return fetch_or(a, 0, v)


@njit
def fetch_and_py(a, v):
    return fetch_and(a, 0, v)


@njit
def fetch_sub_py(a, v):
    return fetch_sub(a, 0, v)


@njit
def store_rel_py(a, v):
    store_release(a, 0, v)


@njit
def load_acq_py(a):
    return load_acquire(a, 0)


def test_other_dtypes():
    for dt in (np.uint16, np.int32, np.uint32, np.uint64):
        a = np.zeros(4, dt)
        assert fetch_add_py(a, 3) == 0 and a[0] == 3
        assert cas_py(a, 3, 7) == 3 and a[0] == 7


def test_exact_under_two_process_contention():
    n = 1_000_000
    _add_loop(np.zeros(8, np.int64), 1)
    _cas_loop(np.zeros(16, np.int64), 1)
    _xchg_or_and(np.zeros(32, np.int64), 0, 1)
    before = set(leaked_segments())
    with Arena.create(Layout([("a", (32,), np.int64)])) as arena:
        ctx = multiprocessing.get_context("fork")
        q = ctx.SimpleQueue()
        procs = [ctx.Process(target=_worker, args=(arena.arrays, w, n, q)) for w in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert all(p.exitcode == 0 for p in procs)
        a = arena.arrays["a"]
        assert a[0] == 2 * n          # lock xadd
        assert a[8] == 2 * n          # cmpxchg retry loop
        assert a[16] == 0             # every bit set was cleared again
        assert a[24] in (0, 1)
        del a
    assert set(leaked_segments()) == before


def _main_function_asm(asm: str) -> str:
    """The body of the first (native) function in Numba's assembly dump."""
    end = asm.find(".Lfunc_end0")
    return asm[:end if end > 0 else len(asm)]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="checks x86-64 instructions")
@pytest.mark.parametrize("fn,args,pattern", [
    (lambda a, v: fetch_add(a, 0, v), (np.int64(3),), r"lock\s+xadd"),
    (lambda a, v: cas(a, 0, v, v + 1), (np.int64(3),), r"lock\s+cmpxchg"),
    (lambda a, v: xchg(a, 0, v), (np.int64(3),), r"xchg"),
    (lambda a, v: fetch_or(a, 0, v), (np.int64(3),), r"lock\s+(or|cmpxchg)"),
    (lambda a, v: load_acquire(a, 0) + v, (np.int64(3),), r"mov"),
])
def test_each_atomic_is_one_instruction_without_calls(fn, args, pattern):
    f = njit(nogil=True, _nrt=False)(fn)
    a = np.zeros(8, np.int64)
    f(a, *args)
    body = _main_function_asm(f.inspect_asm(f.signatures[0]))
    assert re.search(pattern, body), body
    assert not re.search(r"\bcall", body), "the atomic must not call out"


def test_lock_fast_path_has_no_runtime_calls():
    """An entry kernel compiled by mmbench.jit.kernel carries no NRT refcount calls."""
    from mmbench.locks import init_lockset, lockset_words, spin_lock, spin_unlock

    def f(lk, cnt, ctl, n):
        for _ in range(n):
            if not spin_lock(lk, 0, 0, cnt, ctl):
                return -1
            spin_unlock(lk, 0, 0, cnt)
        return n

    k = njit(nogil=True, _nrt=False)(f)
    lk = np.zeros(lockset_words(1, 1), np.int64)
    init_lockset(lk, 1, 1, 0)
    assert k(lk, np.zeros((1, 16), np.int64), np.zeros(48, np.int64), 10) == 10
    body = _main_function_asm(k.inspect_asm(k.signatures[0]))
    assert "NRT_" not in body
    assert re.search(r"lock\s+cmpxchg", body)

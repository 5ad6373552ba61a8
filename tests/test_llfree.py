"""LLFree kernels against a naive allocator, in one process and across two.

Guarantee checked by the sequential tests (one or more workers, one at a time):
a get fails only when no free block of 2^order frames aligned to 2^order exists
anywhere.  That holds for LLFree run sequentially because its search is
exhaustive: the reserved tree's 32 children, its global counter (synced), every
unreserved tree, and finally every other worker's tree after draining them.
"""
from __future__ import annotations

import multiprocessing as mp
from multiprocessing import shared_memory

import numpy as np
from hypothesis import given, settings, strategies as st
from numba import njit

from mmbench.atomics import cas_bool, fetch_add, load_acquire, xchg
from mmbench.models.llfree import (
    CHILD_HUGE, LLF_C_ALLOC_FAIL, LLF_C_REMOTE_FREES, LLF_C_RESERVATIONS, LLF_CHILD_FRAMES,
    LLF_MAX_ORDER, LLF_N_COUNTERS, LLF_TREE_FRAMES, TREE_RESERVED,
    llfree_arrays, llfree_check, llfree_decode_reservation, llfree_drain, llfree_free_frames,
    llfree_free_huge, llfree_get, llfree_init, llfree_put)
from naive_llfree import NaiveFrames

CB = 3          # counters start at an arbitrary base column, as in the harness
NCOLS = 16
assert CB + LLF_N_COUNTERS <= NCOLS


@njit(cache=True, nogil=True)
def _get_many(bits, children, trees, local, w, order, count, cnt, cb, out):
    for k in range(count):
        pfn = llfree_get(bits, children, trees, local, w, order, cnt, cb)
        if pfn < 0:
            return k
        out[k] = pfn
    return count


class Alloc:
    """Arrays of one allocator, with the naive model that shadows it."""

    def __init__(self, ntrees: int, nworkers: int):
        self.nframes = ntrees * LLF_TREE_FRAMES
        self.nworkers = nworkers
        spec = llfree_arrays(self.nframes, nworkers)
        self.a = {k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}
        self.args = (self.a["llf_bits"], self.a["llf_children"], self.a["llf_trees"],
                     self.a["llf_local"])
        llfree_init(*self.args, self.nframes, nworkers)
        self.cnt = np.zeros((nworkers, NCOLS), dtype=np.int64)
        self.naive = NaiveFrames(self.nframes)

    def get(self, w: int, order: int) -> int:
        pfn = llfree_get(*self.args, w, order, self.cnt, CB)
        if pfn < 0:
            assert not self.naive.has_free_block(order), f"order {order} failed with a free block"
        else:
            assert pfn % (1 << order) == 0, (pfn, order)
            assert self.naive.is_free_block(pfn, order), f"{pfn} order {order} overlaps"
            self.naive.get(pfn, order)
        return pfn

    def fill(self, w: int, order: int, count: int) -> int:
        """Up to `count` gets in one compiled loop, stopping at the first failure."""
        out = np.empty(count, dtype=np.int64)
        k = _get_many(*self.args, w, order, count, self.cnt, CB, out)
        got, n = out[:k], 1 << order
        assert (got % n == 0).all()
        frames = (got[:, None] + np.arange(n)).ravel()
        assert np.unique(frames).size == frames.size, "a frame was handed out twice"
        assert not self.naive.used[frames].any(), "a get overlaps a live allocation"
        for p in got.tolist():
            self.naive.get(p, order)
        if k < count:
            assert not self.naive.has_free_block(order), f"order {order} failed with a free block"
        return k

    def put(self, w: int, pfn: int, order: int) -> int:
        """A put the naive model can predict; returns LLFree's answer."""
        expect = self.naive.put_would_succeed(pfn, order)
        before = None if expect else [x.copy() for x in self.args]
        r = llfree_put(*self.args, w, pfn, order, self.cnt, CB)
        assert r == (0 if expect else -1), (pfn, order, r)
        if expect:
            self.naive.put(pfn, order)
        else:                                   # a rejected put changes nothing
            for x, y in zip(before, self.args):
                assert np.array_equal(x, y)
        return r

    def verify(self) -> None:
        assert llfree_check(*self.args, self.nframes, self.nworkers) == []
        assert llfree_free_frames(*self.args) == self.naive.free_frames()
        assert llfree_free_huge(*self.args) == self.naive.free_huge()

    def drain_all(self) -> None:
        for w in range(self.nworkers):
            llfree_drain(*self.args, w)

    def c(self, w: int, col: int) -> int:
        return int(self.cnt[w, CB + col])


# --------------------------------------------------------------------------
# sequential property tests against the naive reference
# --------------------------------------------------------------------------

ORDERS = (0, 1, 3, 9)
_op = st.one_of(
    st.tuples(st.just("get"), st.integers(0, 7), st.sampled_from(ORDERS)),
    st.tuples(st.just("fill"), st.integers(0, 7), st.sampled_from(ORDERS), st.integers(1, 6000)),
    st.tuples(st.just("put"), st.integers(0, 7), st.integers(0, 10**6)),
    st.tuples(st.just("putmany"), st.integers(0, 7), st.integers(0, 10**6), st.integers(1, 2000)),
    st.tuples(st.just("bad"), st.integers(0, 7), st.integers(0, 10**6), st.integers(0, 4)),
    st.tuples(st.just("drain"), st.integers(0, 7)),
)


def _run_ops(al: Alloc, ops) -> None:
    freed: list[tuple[int, int]] = []
    for op in ops:
        kind, w = op[0], op[1] % al.nworkers
        if kind == "get":
            al.get(w, op[2])
        elif kind == "fill":
            al.fill(w, op[2], op[3])
        elif kind in ("put", "putmany"):
            live = sorted(al.naive.live.items())
            for k in range(op[3] if kind == "putmany" else 1):
                if not live:
                    break
                pfn, order = live.pop((op[2] + 7919 * k) % len(live))
                al.put(w, pfn, order)
                freed.append((pfn, order))
        elif kind == "bad":
            sel, how = op[2], op[3]
            live = sorted(al.naive.live.items())
            if how == 0 and freed:                      # double free (if still free in part)
                pfn, order = freed[sel % len(freed)]
                if not al.naive.used[pfn:pfn + (1 << order)].all():
                    al.put(w, pfn, order)
            elif how == 1 and live:                     # misaligned
                pfn, order = live[sel % len(live)]
                al.put(w, pfn | 1, max(order, 1))        # an odd pfn, order >= 1
            elif how == 2 and live:                     # part of a huge frame, or wrong order
                pfn, order = live[sel % len(live)]
                al.put(w, pfn, 0 if order == 9 else 9)
            elif how == 3:                              # out of range / bad order
                al.put(w, al.nframes, 0)
                assert llfree_put(*al.args, w, 0, LLF_MAX_ORDER + 1, al.cnt, CB) == -1
                assert llfree_put(*al.args, w, -512, 9, al.cnt, CB) == -1
            elif how == 4:
                assert llfree_get(*al.args, w, LLF_MAX_ORDER + 1, al.cnt, CB) == -1
        elif kind == "drain":
            llfree_drain(*al.args, w)
        al.verify()
    # give everything back: the allocator must be pristine again
    for pfn, order in sorted(al.naive.live.items()):
        al.put(0, pfn, order)
    al.drain_all()
    al.verify()
    assert llfree_free_frames(*al.args) == al.nframes
    assert np.all(al.a["llf_trees"] == LLF_TREE_FRAMES)
    assert np.all(al.a["llf_children"] == LLF_CHILD_FRAMES)
    assert not al.a["llf_bits"].any()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(_op, min_size=1, max_size=40))
def test_single_worker_matches_naive(ops):
    _run_ops(Alloc(ntrees=2, nworkers=1), ops)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(_op, min_size=1, max_size=40))
def test_interleaved_workers_match_naive(ops):
    _run_ops(Alloc(ntrees=2, nworkers=3), ops)


# --------------------------------------------------------------------------
# multi-worker semantics, one process
# --------------------------------------------------------------------------

def test_workers_reserve_distinct_trees_and_remote_frees_go_global():
    al = Alloc(ntrees=4, nworkers=4)
    got = {w: [al.get(w, 0) for _ in range(10)] for w in range(4)}
    trees = set()
    for w in range(4):
        present, tree, free, locked = llfree_decode_reservation(al.a["llf_local"], w)
        assert present and not locked and free == LLF_TREE_FRAMES - 10
        assert all(p // LLF_TREE_FRAMES == tree for p in got[w])
        assert al.a["llf_trees"][tree] == TREE_RESERVED          # {0, reserved}
        trees.add(tree)
        assert al.c(w, LLF_C_RESERVATIONS) == 1
    assert len(trees) == 4
    al.verify()

    # worker 1 frees worker 0's frames: the global entry of worker 0's tree counts them
    t0 = llfree_decode_reservation(al.a["llf_local"], 0)[1]
    for p in got[0][:6]:
        al.put(1, p, 0)
    assert al.c(1, LLF_C_REMOTE_FREES) == 6
    assert al.a["llf_trees"][t0] == TREE_RESERVED | 6           # still reserved by worker 0
    assert llfree_decode_reservation(al.a["llf_local"], 0)[2] == LLF_TREE_FRAMES - 10
    assert llfree_decode_reservation(al.a["llf_local"], 1)[1] != t0   # tree 0 not taken over
    # worker 0's own frees go to its local counter
    for p in got[0][6:]:
        al.put(0, p, 0)
    assert al.c(0, LLF_C_REMOTE_FREES) == 0
    assert llfree_decode_reservation(al.a["llf_local"], 0)[2] == LLF_TREE_FRAMES - 6
    al.verify()
    al.drain_all()
    assert (al.a["llf_trees"] & TREE_RESERVED).sum() == 0
    assert al.a["llf_trees"][t0] == LLF_TREE_FRAMES
    al.verify()


def test_sync_with_global_steals_remote_frees():
    al = Alloc(ntrees=2, nworkers=2)
    huge = [al.get(0, 9) for _ in range(32)]                     # all of worker 0's tree
    t0 = huge[0] // LLF_TREE_FRAMES
    assert {p // LLF_TREE_FRAMES for p in huge} == {t0}
    assert llfree_decode_reservation(al.a["llf_local"], 0)[2] == 0
    al.put(1, huge[5], 9)                                        # remote free: global counter
    assert al.a["llf_trees"][t0] == TREE_RESERVED | LLF_CHILD_FRAMES
    assert al.get(0, 9) == huge[5]                               # stolen back, same tree
    assert llfree_decode_reservation(al.a["llf_local"], 0)[:3] == (True, t0, 0)
    assert al.c(0, LLF_C_RESERVATIONS) == 1
    al.verify()


def test_free_reserve_heuristic_takes_over_a_tree_freed_into():
    al = Alloc(ntrees=2, nworkers=2)
    blocks = [al.get(0, 9) for _ in range(16)]                   # half of worker 0's tree
    t0 = blocks[0] // LLF_TREE_FRAMES
    llfree_drain(*al.args, 0)
    assert al.a["llf_trees"][t0] == LLF_TREE_FRAMES // 2
    for k in range(3):                                           # 3 remote frees: counted
        al.put(1, blocks[k], 9)
        assert not llfree_decode_reservation(al.a["llf_local"], 1)[0]
    al.put(1, blocks[3], 9)                                      # 4th in a row: reserve it
    present, tree, free, _ = llfree_decode_reservation(al.a["llf_local"], 1)
    assert present and tree == t0 and free == LLF_TREE_FRAMES // 2 + 4 * LLF_CHILD_FRAMES
    assert al.c(1, LLF_C_RESERVATIONS) == 1 and al.c(1, LLF_C_REMOTE_FREES) == 4
    al.put(1, blocks[4], 9)                                      # now a local free
    assert al.c(1, LLF_C_REMOTE_FREES) == 4
    al.verify()


def test_exhaustion_drains_other_workers_then_fails():
    al = Alloc(ntrees=2, nworkers=2)
    a0 = al.get(0, 0)
    t0 = a0 // LLF_TREE_FRAMES
    # worker 1 takes the other tree, then needs worker 0's (reserved) one
    got = [al.get(1, 9) for _ in range(33)]
    assert all(p >= 0 for p in got)
    assert {p // LLF_TREE_FRAMES for p in got[:32]} == {1 - t0}
    assert got[32] // LLF_TREE_FRAMES == t0
    assert not llfree_decode_reservation(al.a["llf_local"], 0)[0]    # drained by worker 1
    assert llfree_decode_reservation(al.a["llf_local"], 1)[1] == t0
    al.verify()
    # fill to the last frame, then ENOMEM (counted), with the naive model agreeing
    n = 0
    while al.get(n % 2, 0) >= 0:
        n += 1
    assert al.naive.free_frames() == 0
    assert al.c(0, LLF_C_ALLOC_FAIL) + al.c(1, LLF_C_ALLOC_FAIL) == 1
    assert al.get(1, 9) == -1 and al.get(0, 3) == -1
    al.drain_all()
    al.verify()


def test_fragmented_tree_moves_on_and_orders_7_8_use_whole_rows():
    al = Alloc(ntrees=2, nworkers=1)
    # every other frame of the whole allocator: no order >= 1 block anywhere
    assert al.fill(0, 0, al.nframes + 1) == al.nframes
    for p in range(al.nframes):
        if p % 2:
            al.put(0, p, 0)
    al.verify()
    assert al.get(0, 1) == -1
    p = al.get(0, 0)
    assert p % 2 == 1
    al.put(0, p, 0)
    # free one row-aligned 256-frame block: only order <= 8 fits there
    base = LLF_TREE_FRAMES + 3 * LLF_CHILD_FRAMES + 256
    for p in range(base, base + 256, 2):
        al.put(0, p, 0)
    assert al.get(0, 9) == -1
    assert al.get(0, 8) == base
    al.put(0, base, 8)
    assert al.get(0, 7) in (base, base + 128)
    al.verify()


def test_rejected_puts_change_nothing():
    al = Alloc(ntrees=1, nworkers=1)
    h = al.get(0, 9)
    b = al.get(0, 3)
    al.put(0, h + 8, 3)            # inside a huge frame: split_huge is not modelled
    al.put(0, h, 0)
    al.put(0, b, 4)                # larger order than allocated: part is free
    al.put(0, b, 3)
    al.put(0, b, 3)                # double free
    al.put(0, h, 9)
    al.put(0, h, 9)                # double free of a huge frame
    al.verify()


# --------------------------------------------------------------------------
# two processes on shared memory
# --------------------------------------------------------------------------

HAND = 64               # handoff slots for cross-worker frees
MAXHELD = 1024


@njit(cache=True, nogil=True)
def _stress(bits, children, trees, local, cnt, w, iters, seed, hand, held, nheld, errs, sync):
    fetch_add(sync, 0, 1)                      # start barrier: both workers in compiled code
    while load_acquire(sync, 0) < 2:
        pass
    x = np.uint64(seed * 2 + 1)
    n = 0
    for _ in range(iters):
        x ^= x << np.uint64(13)
        x ^= x >> np.uint64(7)
        x ^= x << np.uint64(17)
        r = np.int64(x >> np.uint64(8))
        op = r % 8
        if op < 4 and n < MAXHELD:
            o = (0, 0, 1, 3, 0, 9, 1, 0)[(r >> 3) % 8]
            pfn = llfree_get(bits, children, trees, local, w, o, cnt, 0)
            if pfn >= 0:
                held[w, n] = pfn * 16 + o
                n += 1
        elif op < 7 and n > 0:
            k = (r >> 3) % n
            v = held[w, k]
            n -= 1
            held[w, k] = held[w, n]
            held[w, n] = -1
            if op == 6 and cas_bool(hand, (r >> 12) % HAND, -1, v):
                continue                       # handed to the other worker
            if llfree_put(bits, children, trees, local, w, v // 16, v % 16, cnt, 0) != 0:
                errs[w] += 1
        else:
            v = xchg(hand, (r >> 3) % HAND, -1)
            if v >= 0:                         # a block the other worker allocated
                if llfree_put(bits, children, trees, local, w, v // 16, v % 16, cnt, 0) != 0:
                    errs[w] += 1
                cnt[w, 8] += 1
    nheld[w] = n
    llfree_drain(bits, children, trees, local, w)


def _worker(names, shapes, w, iters):
    shms = [shared_memory.SharedMemory(name=nm) for nm in names]
    try:
        views = [np.ndarray(s, dtype=d, buffer=m.buf) for m, (s, d) in zip(shms, shapes)]
        bits, children, trees, local, cnt, hand, held, nheld, errs, sync = views
        _stress(bits, children, trees, local, cnt, w, iters, 12345 + 777 * w,
                hand, held, nheld, errs, sync)
        del views, bits, children, trees, local, cnt, hand, held, nheld, errs, sync
    finally:
        for m in shms:
            m.close()


def test_two_processes_stress():
    nframes, W = 2 * LLF_TREE_FRAMES, 2
    spec = llfree_arrays(nframes, W)
    shapes = [spec[k] for k in ("llf_bits", "llf_children", "llf_trees", "llf_local")]
    shapes += [((W, NCOLS), np.int64), ((HAND,), np.int64), ((W, MAXHELD), np.int64),
               ((W,), np.int64), ((W,), np.int64), ((8,), np.int64)]
    shms = []
    try:
        for s, d in shapes:
            shms.append(shared_memory.SharedMemory(
                create=True, size=max(1, int(np.prod(s)) * np.dtype(d).itemsize)))
        views = [np.ndarray(s, dtype=d, buffer=m.buf) for m, (s, d) in zip(shms, shapes)]
        bits, children, trees, local, cnt, hand, held, nheld, errs, sync = views
        llfree_init(bits, children, trees, local, nframes, W)
        cnt[:] = 0; hand[:] = -1; held[:] = -1; nheld[:] = 0; errs[:] = 0; sync[:] = 0
        # compile in the parent so that forked workers start at once (zero iterations)
        s1 = np.full(8, 2, dtype=np.int64)
        _stress(bits, children, trees, local, cnt, 0, 0, 1, hand, held, nheld, errs, s1)

        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=_worker, args=([m.name for m in shms], shapes, w, 1_000_000))
                 for w in range(W)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]

        assert errs.tolist() == [0, 0], "a put of a held block failed"
        assert llfree_check(bits, children, trees, local, nframes, W) == []
        assert not (trees & TREE_RESERVED).any()                 # both drained
        # rebuild the allocation state from what is held: it must be exactly the bitmap
        blocks = [int(v) for w in range(W) for v in held[w, :nheld[w]]]
        blocks += [int(v) for v in hand if v >= 0]
        assert all(v >= 0 for v in blocks)
        used = np.zeros(nframes, dtype=np.int64)
        huge = np.zeros(nframes // LLF_CHILD_FRAMES, dtype=bool)
        for v in blocks:
            pfn, o = v // 16, v % 16
            assert pfn % (1 << o) == 0
            used[pfn:pfn + (1 << o)] += 1
            if o == 9:
                huge[pfn // LLF_CHILD_FRAMES] = True
        assert used.max() <= 1, "a frame is held twice"
        held_frames = int(used.sum())
        assert llfree_free_frames(bits, children, trees, local) + held_frames == nframes
        expect_bits = used.astype(bool)
        expect_bits[np.repeat(huge, LLF_CHILD_FRAMES)] = False   # huge frames leave rows clear
        assert np.array_equal(np.unpackbits(bits.view(np.uint8), bitorder="little").astype(bool),
                              expect_bits)
        assert np.array_equal((children & CHILD_HUGE) != 0, huge)
        # the run did what it was meant to: allocations, cross frees, pressure
        c = cnt.sum(axis=0)
        assert (cnt[:, 8] > 100).all(), "too few cross-worker frees"
        assert c[LLF_C_REMOTE_FREES] > 0 and c[LLF_C_RESERVATIONS] > 2
        assert c[LLF_C_ALLOC_FAIL] > 0, "memory never ran out: the ENOMEM path went untested"
        del views, bits, children, trees, local, cnt, hand, held, nheld, errs, sync, s1
    finally:
        for m in shms:
            try:
                m.close()
            except BufferError:     # views still alive after a failed assertion
                pass
            m.unlink()


def test_check_reports_each_broken_invariant():
    al = Alloc(ntrees=2, nworkers=2)
    al.get(0, 0)
    al.get(1, 9)
    assert llfree_check(*al.args, al.nframes, 2) == []
    bits, children, trees, local = al.args
    t0 = llfree_decode_reservation(local, 0)[1]

    def broken(arr, idx, value, needle):
        old = arr[idx]
        arr[idx] = value
        errs = llfree_check(*al.args, al.nframes, 2)
        arr[idx] = old
        assert any(needle in e for e in errs), (needle, errs)

    broken(bits, 1, 1, "zero bits")                          # a frame set behind the counter
    broken(children, 3, LLF_CHILD_FRAMES - 1, "zero bits")   # counter off by one
    broken(children, 5, CHILD_HUGE | 1, "huge but")          # huge with a counter
    broken(trees, t0, TREE_RESERVED | 1, "children")         # global + local != children
    broken(trees, 1 - t0, LLF_TREE_FRAMES, "not reserved but")
    broken(local, (0, 0), local[0, 0] | (1 << 16), "locked")
    broken(local, (1, 0), 5, "without a reserved tree")

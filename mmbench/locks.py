"""Spinlocks for ``@njit`` kernels, built on :mod:`mmbench.atomics`.

A *lockset* is one int64 array holding ``nlocks`` locks, each alone in its own
64-byte line, followed by the MCS queue nodes (one line per lock and worker)::

    lk[l*8 + 0]  lock word: TTAS owner (worker+1, 0 = free) / ticket "next" / MCS tail
    lk[l*8 + 1]  ticket "now serving"
    lk[l*8 + 2]  last holder (worker+1): the owner while held (post-mortems of killed
                 workers); an acquisition by another worker is a hand-over
    lk[l*8 + 3]  kind: TTAS, TICKET or MCS
    lk[l*8 + 4]  number of workers
    lk[l*8 + 5]  index of the first MCS node of this lockset
    lk[l*8 + 6]  hold-time sampling mask (sample acquisitions with n & mask == 0; -1 = off)
    node(l, w) = lk[5] + (l*W + w)*8:  [0] next (worker+1), [1] locked flag

Kinds:

* ``TTAS``   test-and-test-and-set: spins on a load, then one ``lock cmpxchg``.
  Unfair: the releasing CPU usually wins the line back (see the fairness figure).
* ``TICKET`` ticket lock (the kernel's pre-4.2 spinlock): ``lock xadd`` on "next",
  spin until "now serving" reaches the ticket.  FIFO.
* ``MCS``    queue lock (the core of qspinlock): each waiter spins on its own
  node's line; the holder hands over directly.  FIFO, no global spinning.

Every acquisition counts into the caller's counter row (see :mod:`mmbench.ctl`):
acquisitions, contended acquisitions, spin iterations, hand-overs (the lock
went to a different worker than its previous holder: a TTAS lock that lets one
worker monopolise it shows few), and, when the lockset
enables it, the hold time of one acquisition in 64 (cycle counter).  Sampling is
off unless the lockset asks for it (a few ns per acquisition).

Callers must be compiled with :func:`mmbench.jit.kernel` (no NRT): see there why.  Waiting loops poll ``ctl[CTL_ABORT]`` every
1024 spins: when the harness aborts a run (a worker died holding the lock) the
waiter gives up and ``spin_lock`` returns False; the caller must then return.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from .jit import helper, hot, uidx

from .atomics import (cas, cpu_relax, fetch_add, load_acquire, load_relaxed, rdtsc,
                      store_relaxed, store_release, xchg)
from .ctl import (C_LOCK_ABORTED, C_LOCK_ACQ, C_LOCK_HANDOVER, C_LOCK_CONTENDED, C_LOCK_HOLD_CYC,
                  C_LOCK_HOLD_N, C_LOCK_SPINS, C_LOCK_T0, CTL_ABORT, CTL_KBAR_COUNT,
                  CTL_KBAR_GEN, CTL_STOP, HOLD_SAMPLE_MASK, LINE_WORDS)

TTAS = 0
TICKET = 1
MCS = 2
LOCK_KINDS = {"ttas": TTAS, "ticket": TICKET, "mcs": MCS}

ABORT_POLL_MASK = 1023


def lockset_words(nlocks: int, nworkers: int) -> int:
    """Length of the int64 array that holds ``nlocks`` locks for ``nworkers``."""
    return nlocks * LINE_WORDS + nlocks * nworkers * LINE_WORDS


def init_lockset(lk: np.ndarray, nlocks: int, nworkers: int, kind: int,
                 sample_hold: bool = False) -> None:
    """Make every lock of ``lk`` free and of ``kind`` (done once, before workers start)."""
    if kind not in (TTAS, TICKET, MCS):
        raise ValueError(f"unknown lock kind {kind}")
    if lk.shape[0] < lockset_words(nlocks, nworkers):
        raise ValueError("lockset array too small")
    lk[:] = 0
    for l in range(nlocks):
        lk[l * LINE_WORDS + 3] = kind
        lk[l * LINE_WORDS + 4] = nworkers
        lk[l * LINE_WORDS + 5] = nlocks * LINE_WORDS
        lk[l * LINE_WORDS + 6] = HOLD_SAMPLE_MASK if sample_hold else -1


@njit(cache=True, nogil=True, inline="always")
def _node(lk, l, w):
    return lk[uidx(l * LINE_WORDS + 5)] + (l * lk[uidx(l * LINE_WORDS + 4)] + w) * LINE_WORDS


@hot
def _aborted(ctl, spins):
    return (spins & ABORT_POLL_MASK) == 0 and load_relaxed(ctl, CTL_ABORT) != 0


@hot
def spin_lock(lk, l, w, cnt, ctl):
    """Acquire lock ``l`` as worker ``w``; False if the run was aborted while waiting."""
    base = l * LINE_WORDS
    kind = lk[uidx(base + 3)]
    spins = 0
    contended = False
    if kind == TTAS:
        while True:
            if load_relaxed(lk, base) == 0 and cas(lk, base, 0, w + 1) == 0:
                break
            contended = True
            while load_relaxed(lk, base) != 0:
                cpu_relax()
                spins += 1
                if _aborted(ctl, spins):
                    cnt[uidx(w), C_LOCK_ABORTED] += 1
                    return False
    elif kind == TICKET:
        ticket = fetch_add(lk, base, 1)
        while load_acquire(lk, base + 1) != ticket:
            contended = True
            cpu_relax()
            spins += 1
            if _aborted(ctl, spins):
                cnt[uidx(w), C_LOCK_ABORTED] += 1
                return False
    else:
        node = _node(lk, l, w)
        store_relaxed(lk, node, 0)
        store_relaxed(lk, node + 1, 1)
        prev = xchg(lk, base, w + 1)
        if prev != 0:
            contended = True
            store_release(lk, _node(lk, l, prev - 1), w + 1)
            while load_acquire(lk, node + 1) != 0:
                cpu_relax()
                spins += 1
                if _aborted(ctl, spins):
                    cnt[uidx(w), C_LOCK_ABORTED] += 1
                    return False
    # The holder word changes only on a hand-over: the common re-acquisition by the same
    # worker writes nothing more to the lock's line.
    if lk[uidx(base + 2)] != w + 1:
        store_relaxed(lk, base + 2, w + 1)
        cnt[uidx(w), C_LOCK_HANDOVER] += 1
    n = cnt[uidx(w), C_LOCK_ACQ] + 1
    cnt[uidx(w), C_LOCK_ACQ] = n
    if contended:
        cnt[uidx(w), C_LOCK_CONTENDED] += 1
        cnt[uidx(w), C_LOCK_SPINS] += spins
    mask = lk[uidx(base + 6)]
    if mask >= 0 and (n & mask) == 0:
        cnt[uidx(w), C_LOCK_T0] = rdtsc()
    return True


@hot
def spin_unlock(lk, l, w, cnt):
    """Release lock ``l`` held by worker ``w``."""
    base = l * LINE_WORDS
    if lk[uidx(base + 6)] >= 0:
        t0 = cnt[uidx(w), C_LOCK_T0]
        if t0 != 0:
            cnt[uidx(w), C_LOCK_HOLD_CYC] += rdtsc() - t0
            cnt[uidx(w), C_LOCK_HOLD_N] += 1
            cnt[uidx(w), C_LOCK_T0] = 0
    kind = lk[uidx(base + 3)]
    if kind == TTAS:
        store_release(lk, base, 0)
    elif kind == TICKET:
        store_release(lk, base + 1, load_relaxed(lk, base + 1) + 1)
    else:
        node = _node(lk, l, w)
        nxt = load_acquire(lk, node)
        if nxt == 0:
            if cas(lk, base, w + 1, 0) == w + 1:
                return
            # A successor swapped itself in but has not linked yet: wait for it.
            while True:
                nxt = load_acquire(lk, node)
                if nxt != 0:
                    break
                cpu_relax()
        store_release(lk, _node(lk, l, nxt - 1) + 1, 0)


@helper
def lock_owner(lk, l):
    """Worker holding lock ``l``, or -1 when it is free."""
    base = l * LINE_WORDS
    kind = lk[uidx(base + 3)]
    if kind == TICKET:
        held = load_acquire(lk, base) != load_acquire(lk, base + 1)
    else:
        held = load_acquire(lk, base) != 0
    return load_acquire(lk, base + 2) - 1 if held else -1


@helper
def kernel_barrier(ctl, nworkers):
    """Barrier among the workers inside a kernel (phased workloads).

    Returns False, without waiting further, once the harness sets stop or abort:
    a worker that has left the run must never leave the others spinning.
    """
    gen = load_acquire(ctl, CTL_KBAR_GEN)
    if fetch_add(ctl, CTL_KBAR_COUNT, 1) == nworkers - 1:
        store_relaxed(ctl, CTL_KBAR_COUNT, 0)
        store_release(ctl, CTL_KBAR_GEN, gen + 1)
        return True
    spins = 0
    while load_acquire(ctl, CTL_KBAR_GEN) == gen:
        cpu_relax()
        spins += 1
        if (spins & ABORT_POLL_MASK) == 0:
            if load_relaxed(ctl, CTL_STOP) != 0 or load_relaxed(ctl, CTL_ABORT) != 0:
                return False
    return True


# Inlined copies for kernels whose whole op is a lock pair (the lock family): a Numba call
# passing three arrays costs more than the uncontended pair itself (9 ns vs 3.6 ns here).
# Models that take a lock once per batch or per list operation keep the call: inlining at
# every site of the allocator models multiplied their compile time by four.
spin_lock_inline = njit(nogil=True, inline="always")(spin_lock.py_func)
spin_unlock_inline = njit(nogil=True, inline="always")(spin_unlock.py_func)

"""LLFree: the lock-free page-frame allocator of Wrenger et al. (USENIX ATC 2023).

The data structures and code paths are those of LLFree's C implementation
(luhsra/llfree-c: ``llfree.c``, ``lower.c``, ``bitfield.c``, ``tree.c``,
``local.c``), re-expressed as ``@njit`` kernels over numpy arrays in shared
memory.  Nothing here takes a lock: every shared word changes by CAS (or by an
unconditional ``lock xadd`` where the update cannot fail).

Levels and encodings
--------------------
``llf_bits`` (uint64, nframes/64)
    The *lower* allocator's bitfield: one bit per 4 KiB frame, **1 = allocated**.
    Row r holds frames 64r .. 64r+63 (frame 64r+b is bit b).  The 8 rows of a
    child (512 frames) are one 64-byte cache line.
``llf_children`` (uint16, nframes/512)
    Child entry = {free counter: bits 0..13 (0..512), huge flag: bit 14}.
    A huge (order-9) allocation is one CAS {512, 0} -> {0, huge}; its 8 rows stay
    all zero (LLFree does not touch the bitfield for huge frames).  So, at rest:
    ``huge  => free == 0 and all 8 rows == 0``;
    ``!huge => free == 512 - popcount(rows)``.
    While operations are in flight ``free <= zero bits`` (a get decrements the
    counter before it sets bits, a put clears bits before it increments).
``llf_trees`` (uint16, nframes/16384)
    Tree entry = {free counter: bits 0..14 (0..16384), reserved flag: bit 15}.
    When a worker reserves a tree, the entry becomes {0, reserved} and the
    counter moves into the worker's reservation; frees by other workers into a
    reserved tree increment the entry's counter (flag kept), and the owner
    steals them back (``sync_with_global``) when its local counter runs dry.
    32 entries share one cache line, which the vicinity search exploits.
``llf_local`` (int64, (nworkers, 16): 128 bytes, so two lines, per worker)
    ``local[w, LLF_L_RESERVED]`` is LLFree's ``reserved_t``, one word changed only
    by CAS because other workers may drain it:
    {free: bits 0..14, present: bit 15, lock ("reserving"): bit 16,
    start_row: bits 17..} -- start_row is the bitfield row where the next
    search starts, so its tree (start_row >> 8) is the reserved tree.
    ``local[w, LLF_L_LAST_FREE]`` is the free-reserve heuristic's ``last_free``
    {count: bits 0..1, tree+1: bits 2..} (0 = none); private to w.

Orders: 0..6 set an aligned run of 2^order bits in one row with one CAS; 7 and
8 set 2 or 4 whole rows of one child (CAS 0 -> ~0 each, undone on conflict: LLFree's
``field_set_next``); 9 is one CAS on a child entry.  Order 10 (LLFree's pair of
children) is not modelled: ``LLF_MAX_ORDER`` = 9.

Limits of the model (documented, deliberate):

* A put must name a block exactly as it was allocated (pfn, order).  LLFree's
  ``split_huge`` (freeing part of a huge frame with a smaller order) waits on
  another worker's split in progress, a spin this model does not take: such a
  put returns -1 and changes nothing.
* A double free is detected when the named frames are (partly) free.  A double
  free of a block that has since been reallocated is undetectable in a bitmap
  allocator (and in the kernel's).  Two workers racing to free the same order-7/8
  block may leave it half freed (as in LLFree, which returns ERR_ADDRESS).
* A worker's reservation word is only locked by the worker itself (one local
  per worker, where LLFree shares a local between cores when cores > trees), so
  the C code's "wait while another core reserves" spins cannot occur.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from ..jit import helper, hot, uidx
from numba.cpython.unsafe.numbers import trailing_zeros

from ..atomics import cas_bool, fetch_add, load_acquire, load_relaxed

# --- geometry -----------------------------------------------------------------
LLF_ROW_FRAMES = 64
LLF_CHILD_ROWS = 8
LLF_CHILD_FRAMES = 512
LLF_TREE_CHILDREN = 32
LLF_TREE_ROWS = 256
LLF_TREE_FRAMES = 16384
LLF_HUGE_ORDER = 9
LLF_MAX_ORDER = 9
LLF_LOCAL_WORDS = 16            # int64 words per worker: 128 bytes

# --- counter columns (relative to the caller's base column cb) ---------------
LLF_C_CAS_RETRIES = 0           # CAS that lost a race and was retried
LLF_C_RESERVATIONS = 1          # trees reserved (by a get or the free-reserve heuristic)
LLF_C_ALLOC_FAIL = 2            # gets that returned -1 (ENOMEM)
LLF_C_REMOTE_FREES = 3          # puts that went to a global tree counter
LLF_N_COUNTERS = 4
LLF_COUNTER_NAMES = ("llf_cas_retries", "llf_reservations", "llf_alloc_fail",
                     "llf_remote_frees")

# --- child entry (uint16) -----------------------------------------------------
CHILD_FREE_MASK = 0x3FFF
CHILD_HUGE = 0x4000
# --- tree entry (uint16) ------------------------------------------------------
TREE_FREE_MASK = 0x7FFF
TREE_RESERVED = 0x8000
# Reservation ranges of tree.h: "partial" trees are fuller than free ones but
# not nearly full; LLFree prefers them so that free trees stay free (for huge
# frames) and nearly full trees are not fought over.
TREE_LOWER_LIM = 2 * LLF_CHILD_FRAMES
TREE_UPPER_LIM = LLF_TREE_FRAMES - 8 * LLF_CHILD_FRAMES
# --- local words --------------------------------------------------------------
LLF_L_RESERVED = 0
LLF_L_LAST_FREE = 1
RSV_FREE_MASK = 0x7FFF
RSV_PRESENT = 1 << 15
RSV_LOCK = 1 << 16
RSV_ROW_SHIFT = 17
LAST_FREE_MAX = 3               # the 4th consecutive remote free in a tree reserves it

GET_RETRIES = 4                 # get_inner attempts (llfree_get's RETRIES)
_RETRY = -2                     # internal: try again

_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_ZERO = np.uint64(0)
# bit p set iff p is a multiple of 2^order, for orders 0..6
_ALIGNED = np.array([0xFFFFFFFFFFFFFFFF, 0x5555555555555555, 0x1111111111111111,
                     0x0101010101010101, 0x0001000100010001, 0x0000000100000001,
                     0x0000000000000001], dtype=np.uint64)


# ============================================================================
# lower allocator: bitfield rows and child entries (lower.c, bitfield.c)
# ============================================================================

@hot
def _block_mask(order):
    """2^order ones in the low bits (order <= 6)."""
    return _ONES >> np.uint64(64 - (1 << order))


@hot
def _first_zeros_aligned(v, order):
    """Bit offset of the first 2^order-aligned run of 2^order zero bits in v, or -1."""
    f = v
    for j in range(order):
        # after step j, bit p of f = OR of bits p .. p + 2^(j+1) - 1 of v
        f = f | (f >> np.uint64(1 << j))
    cand = ~f & _ALIGNED[order]
    if cand == _ZERO:
        return -1
    return np.int64(trailing_zeros(cand))


@hot
def _child_dec(children, c, n, cnt, w, cb):
    """child_dec: take n from the child's free counter if it has n (not huge)."""
    while True:
        old = np.int64(load_relaxed(children, c))
        if (old & CHILD_FREE_MASK) < n or (old & CHILD_HUGE) != 0:
            return False
        if cas_bool(children, c, old, old - n):
            return True
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1


@hot
def _field_set_next(bits, c, start_row, order, cnt, w, cb):
    """field_set_next: claim 2^order aligned free frames in child c; offset in child or -1."""
    base = c * LLF_CHILD_ROWS
    if order <= 6:
        block = _block_mask(order)
        for i in range(LLF_CHILD_ROWS):
            r = base + (start_row + i) % LLF_CHILD_ROWS
            while True:
                old = load_relaxed(bits, r)
                p = _first_zeros_aligned(old, order)
                if p < 0:
                    break
                if cas_bool(bits, r, old, old | (block << np.uint64(p))):
                    return (r - base) * LLF_ROW_FRAMES + p
                cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1
        return -1
    entries = 1 << (order - 6)                  # whole rows: 2 (order 7) or 4 (order 8)
    groups = LLF_CHILD_ROWS // entries
    g0 = (start_row % LLF_CHILD_ROWS) // entries
    for gi in range(groups):
        g = (g0 + gi) % groups
        first = base + g * entries
        done = 0
        while done < entries:
            if not cas_bool(bits, first + done, _ZERO, _ONES):
                break
            done += 1
        if done == entries:
            return g * entries * LLF_ROW_FRAMES
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1
        for j in range(done):                   # undo: these rows are ours, nobody else changes them
            cas_bool(bits, first + j, _ONES, _ZERO)
    return -1


@njit(cache=True, nogil=True, inline="always")
def _lower_get(bits, children, start_pfn, order, cnt, w, cb):
    """lower_get: allocate 2^order frames in the tree of start_pfn, searching its 32
    children from start_pfn's child on; pfn or -1."""
    start_child = start_pfn >> 9
    tree_base = start_child - start_child % LLF_TREE_CHILDREN
    off = start_child % LLF_TREE_CHILDREN
    if order == LLF_HUGE_ORDER:
        for i in range(LLF_TREE_CHILDREN):
            c = tree_base + (off + i) % LLF_TREE_CHILDREN
            # child_reserve_huge: a fully free, not huge child becomes {0, huge}
            if cas_bool(children, c, LLF_CHILD_FRAMES, CHILD_HUGE):
                return c * LLF_CHILD_FRAMES
            # a failed CAS here means the child was not entirely free: no retry
        return -1
    n = 1 << order
    start_row = (start_pfn >> 6) % LLF_CHILD_ROWS
    for i in range(LLF_TREE_CHILDREN):
        c = tree_base + (off + i) % LLF_TREE_CHILDREN
        if _child_dec(children, c, n, cnt, w, cb):
            pos = _field_set_next(bits, c, start_row, order, cnt, w, cb)
            if pos >= 0:
                return c * LLF_CHILD_FRAMES + pos
            fetch_add(children, c, n)           # child_inc: counter said yes, bits said no
    return -1


@njit(cache=True, nogil=True, inline="always")
def _lower_put(bits, children, pfn, order, cnt, w, cb):
    """lower_put: free an allocated, aligned block; 0, or -1 if it is not allocated as such."""
    c = pfn >> 9
    if order == LLF_HUGE_ORDER:
        return 0 if cas_bool(children, c, CHILD_HUGE, LLF_CHILD_FRAMES) else -1
    n = 1 << order
    if order <= 6:
        r = pfn >> 6
        mask = _block_mask(order) << np.uint64(pfn % LLF_ROW_FRAMES)
        while True:
            old = load_relaxed(bits, r)
            if (old & mask) != mask:
                return -1                       # (partly) free, or inside a huge frame
            if cas_bool(bits, r, old, old & ~mask):
                break
            cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1
    else:
        r0 = pfn >> 6
        entries = 1 << (order - 6)
        for j in range(entries):
            if load_relaxed(bits, r0 + j) != _ONES:
                return -1
        for j in range(entries):
            if not cas_bool(bits, r0 + j, _ONES, _ZERO):
                return -1                       # only a racing double free gets here
    fetch_add(children, c, n)                   # child_inc, after the bits are clear
    return 0


# ============================================================================
# tree entries (tree.c)
# ============================================================================

@helper
def _tree_reserve(trees, t, lo, hi, cnt, w, cb):
    """tree_reserve: {free in [lo, hi], !reserved} -> {0, reserved}; the old free, or -1."""
    while True:
        old = np.int64(load_relaxed(trees, t))
        free = old & TREE_FREE_MASK
        if (old & TREE_RESERVED) != 0 or free < lo or free > hi:
            return -1
        if cas_bool(trees, t, old, TREE_RESERVED):
            return free
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1


@helper
def _tree_writeback(trees, t, free):
    """tree_writeback: add a reservation's local counter back and clear the reserved flag."""
    while True:
        old = np.int64(load_relaxed(trees, t))
        if cas_bool(trees, t, old, (old & TREE_FREE_MASK) + free):
            return


@helper
def _tree_steal(trees, t, need, cnt, w, cb):
    """tree_steal_counter: a reserved tree's global counter (frees by others) if >= need."""
    while True:
        old = np.int64(load_relaxed(trees, t))
        free = old & TREE_FREE_MASK
        if (old & TREE_RESERVED) == 0 or free < need:
            return -1
        if cas_bool(trees, t, old, TREE_RESERVED):
            return free
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1


@helper
def _tree_inc_or_reserve(trees, t, n, lo, hi, cnt, w, cb):
    """tree_inc_or_reserve: add n; if the result is unreserved and in [lo, hi], reserve it.

    Returns the free count moved into the new reservation, or -1 (only incremented).
    """
    while True:
        old = np.int64(load_relaxed(trees, t))
        free = (old & TREE_FREE_MASK) + n
        if (old & TREE_RESERVED) == 0 and lo <= free <= hi:
            if cas_bool(trees, t, old, TREE_RESERVED):
                return free
        elif cas_bool(trees, t, old, old + n):
            return -1
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1


# ============================================================================
# per-worker reservation word (local.c) and the upper allocator (llfree.c)
# ============================================================================

@helper
def _rsv(free, row, present):
    return free | (RSV_PRESENT if present else 0) | (row << RSV_ROW_SHIFT)


@helper
def _rsv_tree(v):
    return (v >> RSV_ROW_SHIFT) // LLF_TREE_ROWS


@helper
def _swap_reserved(trees, lf, w, new, expect_lock):
    """swap_reserved: install `new` if the lock bit is as expected, then write the old
    reservation's counter back to its tree.  False (nothing done) otherwise."""
    i = w * LLF_LOCAL_WORDS + LLF_L_RESERVED
    while True:
        old = load_acquire(lf, i)
        if ((old & RSV_LOCK) != 0) != expect_lock:
            return False
        if cas_bool(lf, i, old, new):
            break
    if (old & RSV_PRESENT) != 0:
        _tree_writeback(trees, _rsv_tree(old), old & RSV_FREE_MASK)
    return True


@helper
def _unlock_reserved(lf, w):
    i = w * LLF_LOCAL_WORDS + LLF_L_RESERVED
    while True:
        old = load_acquire(lf, i)
        if cas_bool(lf, i, old, old & ~RSV_LOCK):
            return


@helper
def _reserve_tree_and_get(bits, children, trees, lf, w, t, order, lo, hi, cnt, cb):
    """Reserve tree t if its counter is in [lo, hi] and allocate in it; keep the
    reservation only if the allocation succeeds.  pfn or -1."""
    free = _tree_reserve(trees, t, lo, hi, cnt, w, cb)
    if free < 0:
        return -1
    pfn = _lower_get(bits, children, t * LLF_TREE_FRAMES, order, cnt, w, cb)
    if pfn >= 0:
        _swap_reserved(trees, lf, w, _rsv(free - (1 << order), pfn >> 6, True), True)
        cnt[uidx(w), cb + LLF_C_RESERVATIONS] += 1
    else:
        _tree_writeback(trees, t, free)
    return pfn


@helper
def _search_global(bits, children, trees, lf, w, base, order, lo, hi, cnt, cb):
    """Try every tree, alternating left and right of base."""
    ntrees = children.shape[0] // LLF_TREE_CHILDREN
    for i in range(1, ntrees + 1):
        toggle = i // 2 if i & 1 else -(i // 2)
        t = (base + toggle) % ntrees
        pfn = _reserve_tree_and_get(bits, children, trees, lf, w, t, order, lo, hi, cnt, cb)
        if pfn >= 0:
            return pfn
    return -1


@helper
def _drain(trees, lf, w):
    """Give w's reservation back unless w is reserving (then do nothing)."""
    _swap_reserved(trees, lf, w, 0, False)


@helper
def _reserve_and_get(bits, children, trees, lf, w, order, old, cnt, cb):
    """reserve_and_get (the caller holds w's lock bit): find, reserve, allocate.

    First the vicinity of the previous tree (at most the 32 entries of one cache
    line of tree entries), partially filled trees only; then all trees, partial
    ones first, then free ones; then drain the other workers' reservations and
    take any tree with enough free frames.  Every search alternates left and
    right of the previous tree (or of w's share of the trees when w has none).
    LLFree-C starts from the previous tree's cache-line boundary instead, which
    sends every core of a machine with <= 32 trees to tree 0 first.
    """
    n = 1 << order
    ntrees = children.shape[0] // LLF_TREE_CHILDREN
    nworkers = lf.shape[0] // LLF_LOCAL_WORDS
    cores = min(nworkers, ntrees)
    if (old & RSV_PRESENT) != 0:
        start = _rsv_tree(old)
    else:
        start = ntrees // cores * (w % cores)
    vicinity = min(((ntrees + cores - 1) // cores + 3) // 4, LLF_TREE_CHILDREN)
    pfn = -1
    for i in range(1, vicinity + 1):
        toggle = i // 2 if i & 1 else -(i // 2)
        t = (start + toggle) % ntrees
        pfn = _reserve_tree_and_get(bits, children, trees, lf, w, t, order,
                                    TREE_LOWER_LIM, TREE_UPPER_LIM, cnt, cb)
        if pfn >= 0:
            return pfn
    pfn = _search_global(bits, children, trees, lf, w, start, order,
                         TREE_LOWER_LIM, TREE_UPPER_LIM, cnt, cb)
    if pfn >= 0:
        return pfn
    pfn = _search_global(bits, children, trees, lf, w, start, order,
                         TREE_UPPER_LIM, LLF_TREE_FRAMES, cnt, cb)
    if pfn >= 0:
        return pfn
    for k in range(1, nworkers):
        _drain(trees, lf, (w + k) % nworkers)
    pfn = _search_global(bits, children, trees, lf, w, start, order, n, LLF_TREE_FRAMES, cnt, cb)
    if pfn < 0:
        _unlock_reserved(lf, w)
    return pfn


@helper
def _sync_with_global(trees, lf, w, order, rsv, cnt, cb):
    """sync_with_global (w's lock bit held): steal the frees other workers made into
    w's reserved tree.  True when the local counter now has 2^order."""
    t = _rsv_tree(rsv)
    stolen = _tree_steal(trees, t, (1 << order) - (rsv & RSV_FREE_MASK), cnt, w, cb)
    if stolen < 0:
        return False
    i = w * LLF_LOCAL_WORDS + LLF_L_RESERVED
    if cas_bool(lf, i, rsv | RSV_LOCK, rsv + stolen):
        return True
    fetch_add(trees, t, stolen)                 # undo
    return False


@njit(cache=True, nogil=True, inline="always")
def _get_inner(bits, children, trees, lf, w, order, cnt, cb):
    n = 1 << order
    i = w * LLF_LOCAL_WORDS + LLF_L_RESERVED
    while True:                                 # reserved_dec_or_lock
        old = load_acquire(lf, i)
        if (old & RSV_LOCK) != 0:
            return _RETRY                       # unreachable: only w locks its word
        locked = not ((old & RSV_PRESENT) != 0 and (old & RSV_FREE_MASK) >= n)
        new = old | RSV_LOCK if locked else old - n
        if cas_bool(lf, i, old, new):
            break
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1    # a remote drain got in between
    if not locked:
        row = old >> RSV_ROW_SHIFT
        pfn = _lower_get(bits, children, row * LLF_ROW_FRAMES, order, cnt, w, cb)
        if pfn >= 0:
            if order <= 6 and (pfn >> 6) != row:
                while True:                     # reserved_set_start: a search hint only
                    v = load_acquire(lf, i)
                    if (v & RSV_LOCK) != 0 or cas_bool(
                            lf, i, v, (v & ((1 << RSV_ROW_SHIFT) - 1)) | ((pfn >> 6) << RSV_ROW_SHIFT)):
                        break
            return pfn
        # The tree is too fragmented for this order: hand the counter back to the
        # global entry (a concurrent drain may already have unreserved the tree).
        fetch_add(trees, row // LLF_TREE_ROWS, n)
        while True:                             # reserve_or_wait: take the lock bit
            old = load_acquire(lf, i)
            if (old & RSV_LOCK) != 0:
                return _RETRY
            if cas_bool(lf, i, old, old | RSV_LOCK):
                break
        return _reserve_and_get(bits, children, trees, lf, w, order, old, cnt, cb)
    if (old & RSV_PRESENT) != 0 and _sync_with_global(trees, lf, w, order, old, cnt, cb):
        return _RETRY
    return _reserve_and_get(bits, children, trees, lf, w, order, old, cnt, cb)


@hot
def llfree_get(bits, children, trees, local, w, order, cnt, cb):
    """llfree_get: allocate 2^order frames (order 0..9) for worker w.

    Returns the first pfn (aligned to 2^order) or -1 (ENOMEM, or a bad order).
    """
    if order < 0 or order > LLF_MAX_ORDER:
        cnt[uidx(w), cb + LLF_C_ALLOC_FAIL] += 1
        return -1
    lf = local.reshape(-1)
    pfn = _RETRY
    for _ in range(GET_RETRIES):
        pfn = _get_inner(bits, children, trees, lf, w, order, cnt, cb)
        if pfn != _RETRY:
            break
    if pfn < 0:
        cnt[uidx(w), cb + LLF_C_ALLOC_FAIL] += 1
        return -1
    return pfn


@hot
def llfree_put(bits, children, trees, local, w, pfn, order, cnt, cb):
    """llfree_put: free the block (pfn, order) that some worker allocated.

    The counter goes to w's reservation if pfn lies in w's reserved tree, else to
    the tree's global entry; the 4th consecutive such remote free into one tree
    (a tree w has not reserved) makes w reserve that tree if its counter is in
    the partial range (LLFree's free-reserve heuristic).
    Returns 0, or -1 (nothing changed) for a bad order, a misaligned or out of
    range pfn, or a block that is not allocated as (pfn, order).
    """
    nframes = bits.shape[0] * LLF_ROW_FRAMES
    if order < 0 or order > LLF_MAX_ORDER:
        return -1
    n = 1 << order
    if pfn < 0 or (pfn & (n - 1)) != 0 or pfn + n > nframes:   # n: a power of two
        return -1
    if _lower_put(bits, children, pfn, order, cnt, w, cb) < 0:
        return -1
    lf = local.reshape(-1)
    t = pfn // LLF_TREE_FRAMES

    # last_free: private to w
    li = w * LLF_LOCAL_WORDS + LLF_L_LAST_FREE
    last = lf[uidx(li)]
    reserve = False
    if (last >> 2) == t + 1:
        if (last & 3) < LAST_FREE_MAX:
            last += 1
            lf[uidx(li)] = last
        reserve = (last & 3) == LAST_FREE_MAX
    else:
        lf[uidx(li)] = (t + 1) << 2

    i = w * LLF_LOCAL_WORDS + LLF_L_RESERVED
    while True:                                 # reserved_inc
        old = load_acquire(lf, i)
        if (old & RSV_PRESENT) == 0 or _rsv_tree(old) != t:
            break
        if cas_bool(lf, i, old, old + n):
            return 0
        cnt[uidx(w), cb + LLF_C_CAS_RETRIES] += 1
    cnt[uidx(w), cb + LLF_C_REMOTE_FREES] += 1
    if (old & RSV_LOCK) != 0:
        reserve = False
    if not reserve:
        fetch_add(trees, t, n)                  # tree_inc
        return 0
    free = _tree_inc_or_reserve(trees, t, n, TREE_LOWER_LIM, TREE_UPPER_LIM, cnt, w, cb)
    if free >= 0:
        lf[uidx(li)] = 0
        if _swap_reserved(trees, lf, w, _rsv(free, t * LLF_TREE_ROWS, True), False):
            cnt[uidx(w), cb + LLF_C_RESERVATIONS] += 1
        else:
            _tree_writeback(trees, t, free)
    return 0


@helper
def llfree_drain(bits, children, trees, local, w):
    """llfree_drain: return w's reservation and local counter to the global tree."""
    _drain(trees, local.reshape(-1), w)


# ============================================================================
# Python side: layout, init, statistics, invariants
# ============================================================================

def llfree_arrays(nframes: int, nworkers: int) -> dict:
    """Array name -> (shape, dtype) for an allocator of nframes frames and nworkers workers."""
    if nframes <= 0 or nframes % LLF_TREE_FRAMES != 0:
        raise ValueError(f"nframes must be a positive multiple of {LLF_TREE_FRAMES}, got {nframes}")
    if nworkers < 1:
        raise ValueError(f"nworkers must be >= 1, got {nworkers}")
    if nframes // LLF_ROW_FRAMES >= 1 << (63 - RSV_ROW_SHIFT):
        raise ValueError(f"nframes {nframes} too large for the reservation word")
    return {
        "llf_bits": ((nframes // LLF_ROW_FRAMES,), np.uint64),
        "llf_children": ((nframes // LLF_CHILD_FRAMES,), np.uint16),
        "llf_trees": ((nframes // LLF_TREE_FRAMES,), np.uint16),
        "llf_local": ((nworkers, LLF_LOCAL_WORDS), np.int64),
    }


def _check_shapes(bits, children, trees, local, nframes, nworkers):
    spec = llfree_arrays(nframes, nworkers)
    for name, a in (("llf_bits", bits), ("llf_children", children), ("llf_trees", trees),
                    ("llf_local", local)):
        shape, dtype = spec[name]
        if a.shape != shape or a.dtype != dtype:
            raise ValueError(f"{name}: expected {shape} {np.dtype(dtype)}, got {a.shape} {a.dtype}")


def llfree_init(bits, children, trees, local, nframes, nworkers) -> None:
    """All frames free, no reservations (done before workers start)."""
    _check_shapes(bits, children, trees, local, nframes, nworkers)
    bits[:] = 0
    children[:] = LLF_CHILD_FRAMES
    trees[:] = LLF_TREE_FRAMES
    local[:] = 0


def llfree_free_frames(bits, children, trees, local) -> int:
    """Free frames by the counters: global tree entries plus local reservations."""
    rsv = local[:, LLF_L_RESERVED]
    present = (rsv & RSV_PRESENT) != 0
    return int((trees.astype(np.int64) & TREE_FREE_MASK).sum()
               + (rsv[present] & RSV_FREE_MASK).sum())


def llfree_free_huge(bits, children, trees, local) -> int:
    """Entirely free 2 MiB children (what LLFree's frag benchmark counts)."""
    return int(np.count_nonzero(children == LLF_CHILD_FRAMES))


def llfree_check(bits, children, trees, local, nframes, nworkers) -> list[str]:
    """Invariants of a quiescent allocator; [] when all hold.

    Children: huge => free 0 and rows all zero; else free == zero bits of its rows.
    Trees: global counter + the counter of the reservation holding it == the sum of
    its children's counters; a tree is reserved iff exactly one worker's reservation
    names it; no reservation word is locked or holds a counter without a tree.
    """
    _check_shapes(bits, children, trees, local, nframes, nworkers)
    errs: list[str] = []
    ch = children.astype(np.int64)
    free = ch & CHILD_FREE_MASK
    huge = (ch & CHILD_HUGE) != 0
    rows = bits.reshape(-1, LLF_CHILD_ROWS)
    ones = np.bitwise_count(rows).astype(np.int64).sum(axis=1)
    for c in np.nonzero(ch & ~(CHILD_FREE_MASK | CHILD_HUGE))[0][:10]:
        errs.append(f"child {c}: unknown bits set in entry {ch[c]:#x}")
    for c in np.nonzero(huge & ((free != 0) | (ones != 0)))[0][:10]:
        errs.append(f"child {c}: huge but free={free[c]} and {ones[c]} bits set (want 0, 0)")
    for c in np.nonzero(~huge & (free != LLF_CHILD_FRAMES - ones))[0][:10]:
        errs.append(f"child {c}: free counter {free[c]} != {LLF_CHILD_FRAMES - ones[c]} zero bits")

    tr = trees.astype(np.int64)
    tfree = tr & TREE_FREE_MASK
    tres = (tr & TREE_RESERVED) != 0
    local_free = np.zeros(len(tr), dtype=np.int64)
    holders = np.zeros(len(tr), dtype=np.int64)
    for w in range(nworkers):
        v = int(local[w, LLF_L_RESERVED])
        if v < 0:
            errs.append(f"worker {w}: corrupt reservation word {v:#x}")
            continue
        if v & RSV_LOCK:
            errs.append(f"worker {w}: reservation word still locked (reserving)")
        if v & RSV_PRESENT:
            t = (v >> RSV_ROW_SHIFT) // LLF_TREE_ROWS
            if t >= len(tr):
                errs.append(f"worker {w}: reserved tree {t} out of range")
                continue
            holders[t] += 1
            local_free[t] += v & RSV_FREE_MASK
        elif v & RSV_FREE_MASK:
            errs.append(f"worker {w}: local counter {v & RSV_FREE_MASK} without a reserved tree")
    child_sum = free.reshape(-1, LLF_TREE_CHILDREN).sum(axis=1)
    for t in range(len(tr)):
        if tres[t] and holders[t] != 1:
            errs.append(f"tree {t}: reserved flag set but {holders[t]} workers hold it")
        if not tres[t] and holders[t] != 0:
            errs.append(f"tree {t}: not reserved but {holders[t]} workers hold it")
        if tfree[t] + local_free[t] != child_sum[t]:
            errs.append(f"tree {t}: global {tfree[t]} + local {local_free[t]} != "
                        f"{child_sum[t]} free in its children")
        if len(errs) > 40:
            errs.append("...")
            break
    return errs


def llfree_decode_reservation(local, w) -> tuple[bool, int, int, bool]:
    """(present, tree, local free counter, locked) of worker w's reservation."""
    v = int(local[w, LLF_L_RESERVED])
    return (bool(v & RSV_PRESENT), (v >> RSV_ROW_SHIFT) // LLF_TREE_ROWS,
            v & RSV_FREE_MASK, bool(v & RSV_LOCK))

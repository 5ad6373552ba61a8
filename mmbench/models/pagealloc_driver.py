"""The pagealloc driver template: one op pattern over one allocator, written once.

:mod:`mmbench.drivers` generates one module per (allocator, pattern) from this file, with the
constants block below naming the case; Numba drops every branch on those constants before
typing, so each driver holds only its allocator's alloc and free paths, inlined, and its
pattern's loop.  The rules the drivers keep (see :mod:`mmbench.models.pagealloc` for the
workloads themselves):

* the stop flag is polled once per ``POLL`` ops (or loop iterations), never per op;
* the op counts, PCP hits, the RNG and the pattern's position stay in locals and are written
  to the worker's counter row and state words once, when the batch returns;
* one op in ``LAT_SAMPLE`` is timed (cycle counter, log2 bucket by count-leading-zeros);
* ``repeat`` is a loop of ``p = alloc(); free(p)``: the block goes through ``pa_held`` only
  when a batch ends between the two (or a run is aborted), so the check still finds it.

The module imports as itself too (the constants block holds a buddy/bulk default), which is
how :mod:`mmbench.models.pagealloc` reads the shared constants.  A generated driver keeps
only the imports its allocator needs (the imports block), so its Numba cache stamp, which
covers the modules it imports, changes with its own allocator's sources only: an edit to
``llfree.py`` recompiles the LLFree drivers and no other.
"""
from __future__ import annotations

import numpy as np
from numba import njit


from mmbench.atomics import clz64, load_relaxed, rdtsc, xchg
from mmbench.ctl import CTL_CLOCK_MS, CTL_STOP, N_LOCK_COUNTERS
from mmbench.jit import helper, kernel, uidx
from mmbench.locks import kernel_barrier
from mmbench.models import zone as Z
# >>> driver imports
from mmbench.models import llfree as L
from mmbench.models import pcp as P
# <<< driver imports

AK_BUDDY, AK_PCP, AK_LLFREE = 0, 1, 2
WL_BULK, WL_REPEAT, WL_RAND, WL_FRAG, WL_PAGEFAULT, WL_MIXED, WL_MIXED_NOTHP = range(7)

# >>> driver constants
AK = AK_BUDDY
PCPK = 0
WL = WL_BULK
# <<< driver constants

MIXED_ORDERS = np.array([0, 0, 0, 1, 2, 3, 9], dtype=np.int64)
FRAG_ROUNDS = 100              # linux-alloc-bench's iterations (the paper's x axis)
FRAG_LOGS = 3                  # fraglog rows: free huge (held-based), free huge (the
                               # allocator's own count), held blocks; one column per round
LAT_BUCKETS = 64
LAT_SAMPLE_MASK = 1023         # time one op in 1024
POLL = 256                     # ops (or loop iterations) between two looks at the stop flag

# model counters: column N_LOCK_COUNTERS + index (pagealloc.COUNTER_NAMES)
CB = N_LOCK_COUNTERS
C_OPS_ALLOC = CB + 0
C_OPS_FREE = CB + 1
C_ALLOC_FAIL = CB + 2
C_PCP = CB + 3                 # pcp_hits, pcp_refills, pcp_drains, pcp_free_high (PCPC_*)
C_STOLEN = CB + 7
C_STRANDED = CB + 8
C_LLF = CB + 9                 # LLF_C_* order
C_DECAYS = CB + 13             # decay_pcp_high calls (the vmstat timer)

# per-worker state words
S_PHASE, S_POS, S_NHELD, S_ROUND, S_RNG, S_OPS, S_DECAY = 0, 1, 2, 3, 4, 5, 6
S_RNG_SAVED, S_RNG_REPLAY, S_FRAG_N, S_SHUF = 7, 8, 9, 10   # frag
WST_WORDS = 16

ABORTED = -2          # nothing done: the block is still the caller's
ABORTED_FREED = -3    # the block went onto a pcp list, then a drain was aborted


@njit(cache=True, nogil=True, inline="always")
def xorshift(x):
    """One step of the per-worker xorshift64 (owned.xorshift_next's, on a local)."""
    x ^= x << 13
    x ^= (x >> 7) & 0x01FFFFFFFFFFFFFF
    x ^= x << 17
    return x


@njit(cache=True, nogil=True, inline="always")
def lat_bucket(dt):
    """floor(log2(dt)) for dt >= 1, 0 below (owned.bucket's buckets, by one lzcnt)."""
    if dt <= 1:
        return 0
    return 63 - clz64(dt)


# --- the allocator: its alloc and free, inlined at each site -------------------------------
@njit(nogil=True, inline="always")
def _alloc(mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt, cnt, ctl):
    """(pfn, hit): pfn, -1 out of memory, ABORTED; hit = a PCP list served it."""
    if AK == AK_BUDDY:
        return Z.buddy_alloc(mm, pb, fl, zn, lk, w, order, mt, cnt, ctl, C_STOLEN), False
    if AK == AK_PCP:
        pfn, src = P.pcp_alloc_k(PCPK, mm, pb, fl, zn, lk, pcp, w, order, mt, cnt, ctl, C_PCP,
                                 C_STOLEN)
        return pfn, src == P.SRC_HIT and pfn >= 0
    pfn = L.llfree_get(bits, children, trees, local, w, order, cnt, C_LLF)
    if pfn >= 0:
        Z.prep_new_page(mm, pfn, order, mt)
    return pfn, False


@njit(nogil=True, inline="always")
def _free(mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, pfn, order, cnt, ctl):
    """0 freed, ABORTED (still the caller's), ABORTED_FREED (on a pcp list, drain aborted)."""
    if AK == AK_BUDDY:
        return Z.buddy_free(mm, pb, fl, zn, lk, w, pfn, order, cnt, ctl)
    if AK == AK_PCP:
        r = P.pcp_free_k(PCPK, mm, pb, fl, zn, lk, pcp, w, pfn, order, cnt, ctl, C_PCP)
        if r == -2 and mm[uidx(pfn), Z.PG_REFCOUNT] == 0:
            return ABORTED_FREED
        return r
    Z.free_pages_prepare(mm, pfn)
    return L.llfree_put(bits, children, trees, local, w, pfn, order, cnt, C_LLF)


@njit(nogil=True, inline="always")
def _alloc_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt, cnt, ctl,
             lat):
    """_alloc, timed when ``k`` (the worker's op index) is a multiple of LAT_SAMPLE_MASK + 1."""
    timed = (k & LAT_SAMPLE_MASK) == 0
    t0 = rdtsc() if timed else 0
    pfn, hit = _alloc(mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt, cnt,
                      ctl)
    if timed:
        lat[uidx(w), 0, lat_bucket(rdtsc() - t0)] += 1
    return pfn, hit


@njit(nogil=True, inline="always")
def _free_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, e, cnt, ctl, lat):
    """_free of the held entry ``e`` (pfn << 4 | order), timed as _alloc_t."""
    timed = (k & LAT_SAMPLE_MASK) == 0
    t0 = rdtsc() if timed else 0
    r = _free(mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, e >> 4, e & 15, cnt, ctl)
    if timed:
        lat[uidx(w), 1, lat_bucket(rdtsc() - t0)] += 1
    return r


@helper
def free_huge(zn, children):
    """Free 2 MiB blocks: buddy blocks of order >= 9, or entirely free LLFree children."""
    if AK == AK_LLFREE:
        c = 0
        for i in range(children.shape[0]):
            if children[uidx(i)] == L.LLF_CHILD_FRAMES:
                c += 1
        return c
    c = 0
    for o in range(Z.PAGEBLOCK_ORDER, Z.NR_PAGE_ORDERS):
        c += zn[uidx(Z.Z_NR_FREE + o)] << (o - Z.PAGEBLOCK_ORDER)
    return c


@helper
def frag_shuffle(held, nw, N, cap, wst):
    """linux-alloc-bench's shuffle of all N*T held slots (slot k is worker k % T's index
    k / T): for every slot i, swap it with a uniformly random slot j (a plain swap shuffle,
    not Fisher-Yates, as the benchmark does), worker 0's RNG word S_SHUF."""
    M = nw * N
    x = wst[0, S_SHUF]
    for i in range(M):
        x = xorshift(x)
        j = (x & 0x7FFFFFFFFFFFFFFF) % M
        a = (i % nw) * cap + i // nw
        b = (j % nw) * cap + j // nw
        t = held[uidx(a)]
        held[uidx(a)] = held[uidx(b)]
        held[uidx(b)] = t
    wst[0, S_SHUF] = x


@helper
def frag_measure(held, nw, N, cap, per_huge, fraglog, rnd, zn, children):
    """After a round: huge frames holding no held frame (free in the allocator or on a
    pcp list), the allocator's own free-huge count, and the held blocks."""
    per_huge[:] = 0
    nheld = 0
    for w in range(nw):
        for i in range(N):
            e = held[uidx(w * cap + i)]
            if e >= 0:
                nheld += 1
                pfn = e >> 4
                last = pfn + (1 << (e & 15)) - 1
                for h in range(pfn >> Z.PAGEBLOCK_ORDER, (last >> Z.PAGEBLOCK_ORDER) + 1):
                    per_huge[uidx(h)] += 1
    free = 0
    for h in range(per_huge.shape[0]):
        if per_huge[uidx(h)] == 0:
            free += 1
    fraglog[0, rnd] = free
    fraglog[1, rnd] = free_huge(zn, children)
    fraglog[2, rnd] = nheld


@kernel
def drive(mm, pb, fl, zn, lk, pcp, bits, children, trees, local, held, wst, lat, perm,
          frag_huge, fraglog, data, cnt, ctl, w, nw, n, order, mt, A, cap, page_words,
          data_pages, decay_interval):
    """Run about ``n`` ops of pattern WL on allocator AK; returns the ops done.

    Returns early (any count) when a kernel barrier or a lock reports stop/abort; a block is
    then always either in ``held`` or given to the allocator.
    """
    hb = w * cap
    ph = wst[uidx(w), S_PHASE]
    pos = wst[uidx(w), S_POS]
    nh = wst[uidx(w), S_NHELD]
    rng = wst[uidx(w), S_RNG]
    k = wst[uidx(w), S_OPS]              # ops so far: one in LAT_SAMPLE_MASK + 1 is timed
    rnd = wst[uidx(w), S_ROUND]
    fragn = wst[uidx(w), S_FRAG_N]
    saved = wst[uidx(w), S_RNG_SAVED]
    replay = wst[uidx(w), S_RNG_REPLAY]
    n_alloc = 0
    n_free = 0
    n_fail = 0
    n_hit = 0
    done = 0
    quit = False
    while done < n and not quit:
        if load_relaxed(ctl, CTL_STOP) != 0:   # see lockbench: oversubscribed convoys
            break
        if AK == AK_PCP and PCPK == P.PCP_MODERN:
            if decay_interval > 0 and \
                    load_relaxed(ctl, CTL_CLOCK_MS) >= decay_interval * (wst[uidx(w), S_DECAY] + 1):
                # vmstat_update's decay_pcp_high: once per interval of the harness clock,
                # whatever the op rate; a late timer runs once, as a deferrable timer does.
                wst[uidx(w), S_DECAY] = load_relaxed(ctl, CTL_CLOCK_MS) // decay_interval
                cnt[uidx(w), C_DECAYS] += 1
                if P.decay_pcp_high(mm, pb, fl, zn, lk, pcp, w, cnt, ctl, C_PCP) == -2:
                    break
        lim = min(n, done + POLL)
        it = 0                         # loop iterations, ops or not (phases, skipped slots)
        # ---- fill: bulk and rand start each cycle with A blocks --------------------------------
        if (WL == WL_BULK or WL == WL_RAND) and ph == 0:
            while pos < A and done < lim:
                pfn, hit = _alloc_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                                    local, w, order, mt, cnt, ctl, lat)
                k += 1
                if pfn == ABORTED:
                    quit = True
                    break
                n_hit += hit
                if pfn >= 0:
                    n_alloc += 1
                    held[uidx(hb + pos)] = (pfn << 4) | order
                else:
                    n_fail += 1
                    held[uidx(hb + pos)] = -1
                pos += 1
                done += 1
            if quit or pos < A:
                continue
            ph = 1
        # ---- bulk / rand: barrier, free all (rand: a slice of a global shuffle), barrier --------
        if WL == WL_BULK or WL == WL_RAND:
            if ph == 1 or ph == 3:
                if not kernel_barrier(ctl, nw):
                    break
                ph = 2 if ph == 1 else 0
                pos = 0
                continue
            while pos < A and done < lim and it < POLL:
                it += 1
                if WL == WL_BULK:
                    idx = hb + pos
                    e = held[uidx(idx)]
                    held[uidx(idx)] = -1
                else:
                    g = perm[uidx(w * A + pos)]
                    idx = (g // A) * cap + g % A
                    # rand frees other workers' blocks: claim the slot atomically.
                    e = xchg(held, idx, -1)
                if e < 0:
                    pos += 1
                    continue
                r = _free_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                            local, w, e, cnt, ctl, lat)
                k += 1
                if r == ABORTED:
                    held[uidx(idx)] = e       # still ours: put it back where check() will see it
                    quit = True
                    break
                n_free += 1
                if r == ABORTED_FREED:
                    quit = True
                    break
                pos += 1
                done += 1
            if not quit and pos >= A:
                ph = 3
        # ---- repeat / pagefault: p = alloc(); free(p) ----------------------------------------
        elif WL == WL_REPEAT or WL == WL_PAGEFAULT:
            # One alloc site and one free site: repeat's pre-fill of A blocks (phase 0) and
            # the pair loop share them.  ``cur`` is the block between its alloc and its free;
            # it waits in the slot after the worker's A when a batch ends between the two.
            a_order = order
            a_mt = mt
            if WL == WL_PAGEFAULT:
                a_order, a_mt = 0, Z.MIGRATE_MOVABLE
                ph = 1
            slot = hb + A
            cur = held[uidx(slot)]
            held[uidx(slot)] = -1
            while done < lim:
                if WL == WL_REPEAT and ph == 0 and pos >= A:
                    ph = 1
                if cur < 0:
                    pfn, hit = _alloc_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                                        local, w, a_order, a_mt, cnt, ctl, lat)
                    k += 1
                    if pfn == ABORTED:
                        quit = True
                        break
                    n_hit += hit
                    done += 1
                    if pfn < 0:
                        n_fail += 1
                        if WL == WL_REPEAT and ph == 0:
                            held[uidx(hb + pos)] = -1
                            pos += 1
                        continue
                    n_alloc += 1
                    if WL == WL_REPEAT and ph == 0:
                        held[uidx(hb + pos)] = (pfn << 4) | a_order
                        pos += 1
                        continue
                    if WL == WL_PAGEFAULT:
                        # The fault handler zeroes / writes the new page: real stores to real
                        # memory, in the worker's own part of the data area (page contents are
                        # private to the faulting CPU).
                        row = (w * data_pages + pfn % data_pages) * page_words
                        for i in range(page_words):
                            data[uidx(row + i)] = pfn + i
                    cur = (pfn << 4) | a_order
                else:
                    r = _free_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                                local, w, cur, cnt, ctl, lat)
                    k += 1
                    if r == ABORTED:
                        quit = True     # still ours: back to the slot below
                        break
                    cur = -1
                    n_free += 1
                    if r == ABORTED_FREED:
                        quit = True
                        break
                    done += 1
            held[uidx(slot)] = cur
        # ---- mixed: orders {0,0,0,1,2,3,9} (no-thp: without 9), a half to full pool ----------
        elif WL == WL_MIXED or WL == WL_MIXED_NOTHP:
            ph = 1
            while done < lim:
                rng = xorshift(rng)
                r = rng & 0x7FFFFFFFFFFFFFFF
                if nh < A and (nh < A // 2 or (r & 1) != 0):
                    a_order = MIXED_ORDERS[uidx((r >> 1) % (7 if WL == WL_MIXED else 6))]
                    a_mt = Z.MIGRATE_MOVABLE
                    sel = (r >> 8) & 7
                    if a_order != 9 and sel == 0:
                        a_mt = Z.MIGRATE_UNMOVABLE
                    elif a_order != 9 and sel == 1:
                        a_mt = Z.MIGRATE_RECLAIMABLE
                    pfn, hit = _alloc_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                                        local, w, a_order, a_mt, cnt, ctl, lat)
                    k += 1
                    if pfn == ABORTED:
                        quit = True
                        break
                    n_hit += hit
                    done += 1
                    if pfn >= 0:
                        n_alloc += 1
                        held[uidx(hb + nh)] = (pfn << 4) | a_order
                        nh += 1
                    else:
                        n_fail += 1
                elif nh > 0:
                    j = (r >> 1) % nh
                    e = held[uidx(hb + j)]
                    held[uidx(hb + j)] = held[uidx(hb + nh - 1)]
                    held[uidx(hb + nh - 1)] = -1
                    nh -= 1
                    rr = _free_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                                 local, w, e, cnt, ctl, lat)
                    k += 1
                    if rr == ABORTED:
                        held[uidx(hb + nh)] = e
                        nh += 1
                        quit = True
                        break
                    n_free += 1
                    if rr == ABORTED_FREED:
                        quit = True
                        break
                    done += 1
                else:
                    done += 1
        # ---- frag: linux-alloc-bench's rounds (phases: see pagealloc's docstring) -------------
        elif WL == WL_FRAG:
            H = A // 2
            R = max(H // 10, 1)
            while done < lim and it < POLL and not quit:
                it += 1
                if ph == 1 or ph == 2 or ph == 4 or ph == 6 or ph == 8 or ph == 9:
                    if not kernel_barrier(ctl, nw):
                        quit = True
                        break
                    if ph == 1:
                        if w == 0:      # the others wait at the next barrier meanwhile
                            frag_shuffle(held, nw, A, cap, wst)
                        ph = 2
                    elif ph == 2:
                        ph = 3
                        pos = H
                    elif ph == 6:
                        ph = 7
                        fragn = 0
                        replay = saved
                    elif ph == 8:
                        if w == 0 and rnd < FRAG_ROUNDS:
                            frag_measure(held, nw, A, cap, frag_huge, fraglog, rnd, zn, children)
                        ph = 9
                    else:   # ph 4 (after the initial free) or 9 (after a measurement)
                        if ph == 9:
                            rnd += 1
                        ph = 5
                        fragn = 0
                        saved = rng
                    continue
                # which slot this step fills (ph 0, 7) or frees (ph 3, 5)
                j = -1
                if ph == 0:
                    if pos >= A:
                        ph = 1
                        continue
                    j = pos
                elif ph == 3:
                    # the initial free: the second half of the worker's own slots
                    if pos >= A:
                        ph = 4
                        continue
                    j = pos
                    if held[uidx(hb + j)] < 0:
                        pos += 1
                        continue
                elif ph == 5:
                    # phase 1: free R random held slots (a slot already freed is skipped)
                    if fragn >= R:
                        ph = 6
                        continue
                    rng = xorshift(rng)
                    j = (rng & 0x7FFFFFFFFFFFFFFF) % H
                    if held[uidx(hb + j)] < 0:
                        continue
                else:
                    # phase 2: replay the round's random sequence, refilling each empty slot
                    if fragn >= R:
                        ph = 8
                        continue
                    replay = xorshift(replay)
                    j = (replay & 0x7FFFFFFFFFFFFFFF) % H
                    if held[uidx(hb + j)] >= 0:
                        continue
                if ph == 0 or ph == 7:
                    pfn, hit = _alloc_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                                        local, w, order, mt, cnt, ctl, lat)
                    k += 1
                    if pfn == ABORTED:
                        quit = True
                        break
                    n_hit += hit
                    done += 1
                    if pfn >= 0:
                        n_alloc += 1
                        held[uidx(hb + j)] = (pfn << 4) | order
                    else:
                        n_fail += 1
                        held[uidx(hb + j)] = -1
                    if ph == 0:
                        pos += 1
                    else:
                        fragn += 1   # a failed refill is not retried (no livelock)
                    continue
                e = held[uidx(hb + j)]
                held[uidx(hb + j)] = -1
                rr = _free_t(k, mm, pb, fl, zn, lk, pcp, bits, children, trees,
                             local, w, e, cnt, ctl, lat)
                k += 1
                if rr == ABORTED:
                    held[uidx(hb + j)] = e
                    quit = True
                    break
                n_free += 1
                if rr == ABORTED_FREED:
                    quit = True
                    break
                done += 1
                if ph == 3:
                    pos += 1
                else:
                    fragn += 1
    # ---- once per batch: the state words and the counter row ---------------------------------
    wst[uidx(w), S_PHASE] = ph
    wst[uidx(w), S_POS] = pos
    wst[uidx(w), S_NHELD] = nh
    wst[uidx(w), S_RNG] = rng
    wst[uidx(w), S_OPS] = k
    wst[uidx(w), S_ROUND] = rnd
    wst[uidx(w), S_FRAG_N] = fragn
    wst[uidx(w), S_RNG_SAVED] = saved
    wst[uidx(w), S_RNG_REPLAY] = replay
    cnt[uidx(w), C_OPS_ALLOC] += n_alloc
    cnt[uidx(w), C_OPS_FREE] += n_free
    cnt[uidx(w), C_ALLOC_FAIL] += n_fail
    if AK == AK_PCP:
        cnt[uidx(w), C_PCP + P.PCPC_HITS] += n_hit
    return done

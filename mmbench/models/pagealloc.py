"""Page-allocator scalability: buddy, PCP (classic / high-order / auto-tuned) and LLFree.

One compiled workload kernel, :func:`pagealloc_step`, runs a bounded batch of a worker's
workload state machine and dispatches each allocation on an allocator kind:

* ``buddy``          rmqueue_buddy / free_one_page: every op takes zone->lock.
* ``pcp-disabled``   the kernel's own PCP-off state (zone_pcp_disable: high 0, batch 1),
                     every page still through the pageset and free_pcppages_bulk.
* ``pcp-classic``    <= 5.13 per_cpu_pages (order 0, batch 63, high 6*batch).
* ``pcp-5.14``       5.14-5.17 pcp (orders 0..3 + THP, high = low watermark / node CPUs,
                     fixed; refill batch >> order; drains scaled by free_factor).
* ``pcp-5.18``       5.18-6.6: 5.14 plus free_high (a high-order free while free_factor > 0
                     drains the whole pageset) and the one-pass bulk free.
* ``pcp-autotune``   6.7+ pcp auto-tuning of high between high_min and high_max, refills
                     scaled by alloc_factor, PCPF_FREE_HIGH_BATCH from the LLC slice, and
                     decay_pcp_high once per ``decay_interval_ms`` of the harness clock
                     (the kernel's vmstat_update runs it every second).

The pageset's high divides by ``node_cpus``, the CPUs of the simulated node (0: the sweep's
largest worker count), as zone_highsize divides by the node's CPUs.

The zone-backed variants (buddy and every pcp-*) start from an aged zone
(``aged_blocks``, default 0.25: that share of the pageblocks, chosen at random, holds a random
half of its frames for the whole run; the rest was freed page by page and merged), so an
order-0 request finds order-0 holes instead of splitting an order-10 block every time, as
in a zone that has been in use.  ``aged_blocks = 0`` gives the pristine zone after boot.
LLFree starts pristine, as in LLFree's own benchmarks; ``frag`` ignores the setting (it
fills the whole zone itself).
* ``llfree``         the lock-free LLFree allocator (mmbench.models.llfree).

Workloads (LLFree's benchmarks, A = nframes / (T_max * 2 * 2^order) blocks per worker):
``bulk`` alloc A, barrier, free all, barrier; ``repeat`` pre-fill A, then alloc+free one
block; ``rand`` alloc A, barrier, free a slice of a seeded global shuffle (cross-CPU frees),
barrier; ``frag`` is the fragmentation benchmark behind the LLFree paper's figure
(linux-alloc-bench's kernel module, run by llfree-bench): each of T workers allocates
N = ((F - T*10*2^order) >> order) / T * 90 % blocks, worker 0 swap-shuffles all N*T held
slots, each worker frees the second half of its slots (keeping H = N/2), then every round
frees R = H/10 random held slots (phase 1), and after a barrier refills the same slots by
replaying the same random sequence (phase 2); after each round worker 0 counts the huge
(2 MiB) frames with no held frame (frames cached on PCP lists count as free); ``pagefault`` alloc an order-0 movable page, write its bytes in a
shared data area, free it; ``mixed`` orders drawn from {0,0,0,1,2,3,9} and mostly movable
migratetypes, a pool half to fully occupied.

State that must survive between batches (phase, position, RNG) lives in ``pa_wst``; the
blocks a worker holds live in ``pa_held`` as (pfn << 4 | order), -1 = empty, so that
``check`` can account for every frame: on a buddy list, a pcp list, free in LLFree, or held.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..atomics import load_relaxed, rdtsc, xchg
from ..ctl import CTL_CLOCK_MS, CTL_STOP, N_LOCK_COUNTERS
from ..jit import kernel
from ..locks import LOCK_KINDS, init_lockset, kernel_barrier, lockset_words
from .. import procfs
from ..model import ArraySpec, Model, ModelNotRunnable, Param
from . import llfree as L
from . import owned as O
from . import pcp as P
from . import zone as Z

AK_BUDDY, AK_PCP, AK_LLFREE = 0, 1, 2
WL_BULK, WL_REPEAT, WL_RAND, WL_FRAG, WL_PAGEFAULT, WL_MIXED, WL_MIXED_NOTHP = range(7)
WORKLOADS = ("bulk", "repeat", "rand", "frag", "pagefault", "mixed", "mixed-no-thp")
ALLOCATORS = ("buddy", "pcp-disabled", "pcp-classic", "pcp-5.14", "pcp-5.18", "pcp-autotune",
              "llfree")
# allocator -> pcp.pcp_sizes kind
PCP_KIND = {"pcp-disabled": "disabled", "pcp-classic": "classic", "pcp-5.14": "5.14",
            "pcp-5.18": "5.18", "pcp-autotune": "autotune"}
MIGRATETYPES = {"unmovable": Z.MIGRATE_UNMOVABLE, "movable": Z.MIGRATE_MOVABLE,
                "reclaimable": Z.MIGRATE_RECLAIMABLE}
MIXED_ORDERS = np.array([0, 0, 0, 1, 2, 3, 9], dtype=np.int64)
MIXED_MEAN_PAGES = 76          # mean block size of MIXED_ORDERS, for sizing A
MIXED_NOTHP_MEAN_PAGES = 3     # mixed-no-thp draws the first 6 (orders 0,0,0,1,2,3): 17/6
FRAG_ROUNDS = 100              # linux-alloc-bench's iterations (the paper's x axis)
FRAG_LOGS = 3                  # fraglog rows: free huge (held-based), free huge (the
                               # allocator's own count), held blocks; one column per round
LAT_BUCKETS = O.LAT_BUCKETS
LAT_SAMPLE_MASK = 15           # time one op in 16

# model counters: column N_LOCK_COUNTERS + index
COUNTER_NAMES = ("ops_alloc", "ops_free", "alloc_fail", "pcp_hits", "pcp_refills", "pcp_drains",
                 "pcp_free_high", "pages_stolen_fallback", "pcp_stranded", "llfree_cas_retries",
                 "llfree_reservations", "llfree_alloc_fail", "llfree_remote_frees",
                 "pcp_decays")
CB = N_LOCK_COUNTERS
C_OPS_ALLOC = CB + 0
C_OPS_FREE = CB + 1
C_ALLOC_FAIL = CB + 2
C_PCP = CB + 3                 # pcp_hits, pcp_refills, pcp_drains, pcp_free_high (PCPC_*)
C_STOLEN = CB + 7
C_STRANDED = CB + 8
C_LLF = CB + 9                 # LLF_C_* order
C_DECAYS = CB + 13             # decay_pcp_high calls (the vmstat timer, see pagealloc_step)
assert (P.PCPC_HITS, P.PCPC_REFILLS, P.PCPC_DRAINS, P.PCPC_FREE_HIGH,
        P.N_PCP_COUNTERS) == (0, 1, 2, 3, 4)
assert (L.LLF_C_CAS_RETRIES, L.LLF_C_RESERVATIONS, L.LLF_C_ALLOC_FAIL,
        L.LLF_C_REMOTE_FREES, L.LLF_N_COUNTERS) == (0, 1, 2, 3, 4)

# per-worker state words
S_PHASE, S_POS, S_NHELD, S_ROUND, S_RNG, S_OPS, S_DECAY = 0, 1, 2, 3, 4, 5, 6
S_RNG_SAVED, S_RNG_REPLAY, S_FRAG_N, S_SHUF = 7, 8, 9, 10   # frag
WST_WORDS = 16

ABORTED = -2          # nothing done: the block is still the caller's
ABORTED_FREED = -3    # the block went onto a pcp list, then a drain was aborted


# --- allocator dispatch ------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _alloc(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt, cnt, ctl):
    if ak == AK_BUDDY:
        return Z.buddy_alloc(mm, pb, fl, zn, lk, w, order, mt, cnt, ctl, C_STOLEN)
    if ak == AK_PCP:
        return P.pcp_alloc(mm, pb, fl, zn, lk, pcp, w, order, mt, cnt, ctl, C_PCP, C_STOLEN)
    pfn = L.llfree_get(bits, children, trees, local, w, order, cnt, C_LLF)
    if pfn >= 0:
        Z.prep_new_page(mm, pfn, order, mt)
    return pfn


@njit(cache=True, nogil=True, inline="always")
def _free(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, pfn, order, cnt, ctl):
    if ak == AK_BUDDY:
        return Z.buddy_free(mm, pb, fl, zn, lk, w, pfn, order, cnt, ctl)
    if ak == AK_PCP:
        r = P.pcp_free(mm, pb, fl, zn, lk, pcp, w, pfn, order, cnt, ctl, C_PCP)
        if r == -2 and mm[pfn, Z.PG_REFCOUNT] == 0:
            return ABORTED_FREED
        return r
    Z.free_pages_prepare(mm, pfn)
    return L.llfree_put(bits, children, trees, local, w, pfn, order, cnt, C_LLF)


@njit(cache=True, nogil=True, inline="always")
def _timed_alloc(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt, cnt,
                 ctl, wst, lat):
    ops = wst[w, S_OPS]
    wst[w, S_OPS] = ops + 1
    if (ops & LAT_SAMPLE_MASK) == 0:
        t0 = rdtsc()
        pfn = _alloc(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt,
                     cnt, ctl)
        lat[w, 0, O.bucket(rdtsc() - t0)] += 1
    else:
        pfn = _alloc(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, order, mt,
                     cnt, ctl)
    if pfn >= 0:
        cnt[w, C_OPS_ALLOC] += 1
    elif pfn == -1:
        cnt[w, C_ALLOC_FAIL] += 1
    return pfn


@njit(cache=True, nogil=True, inline="always")
def _timed_free(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, e, cnt, ctl,
                wst, lat):
    ops = wst[w, S_OPS]
    wst[w, S_OPS] = ops + 1
    pfn = e >> 4
    order = e & 15
    if (ops & LAT_SAMPLE_MASK) == 0:
        t0 = rdtsc()
        r = _free(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, pfn, order, cnt,
                  ctl)
        lat[w, 1, O.bucket(rdtsc() - t0)] += 1
    else:
        r = _free(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, pfn, order, cnt,
                  ctl)
    if r >= 0 or r == ABORTED_FREED:
        cnt[w, C_OPS_FREE] += 1
    return r


@njit(cache=True, nogil=True)
def _free_huge(ak, zn, children):
    """Free 2 MiB blocks: buddy blocks of order >= 9, or entirely free LLFree children."""
    if ak == AK_LLFREE:
        c = 0
        for i in range(children.shape[0]):
            if children[i] == L.LLF_CHILD_FRAMES:
                c += 1
        return c
    c = 0
    for o in range(Z.PAGEBLOCK_ORDER, Z.NR_PAGE_ORDERS):
        c += zn[Z.Z_NR_FREE + o] << (o - Z.PAGEBLOCK_ORDER)
    return c


@njit(cache=True, nogil=True)
def _frag_shuffle(held, nw, N, cap, wst):
    """linux-alloc-bench's shuffle of all N*T held slots (slot k is worker k % T's index
    k / T): for every slot i, swap it with a uniformly random slot j (a plain swap shuffle,
    not Fisher-Yates, as the benchmark does), worker 0's RNG word S_SHUF."""
    M = nw * N
    for i in range(M):
        j = O.xorshift_next(wst, 0, S_SHUF) % M
        a = (i % nw) * cap + i // nw
        b = (j % nw) * cap + j // nw
        t = held[a]
        held[a] = held[b]
        held[b] = t


@njit(cache=True, nogil=True)
def _frag_measure(held, nw, N, cap, per_huge, fraglog, rnd, ak, zn, children):
    """After a round: huge frames holding no held frame (free in the allocator or on a
    pcp list), the allocator's own free-huge count, and the held blocks."""
    per_huge[:] = 0
    nheld = 0
    for w in range(nw):
        for i in range(N):
            e = held[w * cap + i]
            if e >= 0:
                nheld += 1
                pfn = e >> 4
                last = pfn + (1 << (e & 15)) - 1
                for h in range(pfn >> Z.PAGEBLOCK_ORDER, (last >> Z.PAGEBLOCK_ORDER) + 1):
                    per_huge[h] += 1
    free = 0
    for h in range(per_huge.shape[0]):
        if per_huge[h] == 0:
            free += 1
    fraglog[0, rnd] = free
    fraglog[1, rnd] = _free_huge(ak, zn, children)
    fraglog[2, rnd] = nheld


# What a planned op does once the allocator has answered (see pagealloc_step).
POST_FILL, POST_FREE_POS, POST_TRANSIENT, POST_MIXED, POST_FRAG_FREE, POST_FRAG_ALLOC = range(6)
ACT_NONE, ACT_ALLOC, ACT_FREE = 0, 1, 2


@kernel
def pagealloc_step(ak, wl, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, held, wst, lat,
                   perm, frag_huge, fraglog, data, cnt, ctl, w, nw, n, order, mt, A, cap,
                   page_words, data_pages, decay_interval):
    """Run about ``n`` alloc/free ops of workload ``wl``; returns the ops done.

    Each iteration first *plans* one step of the worker's state machine (which block to
    allocate or free, or a barrier), then performs it at the one allocation site or the one
    free site below, then commits the outcome.  One site each lets the allocator fast paths
    be compiled inline: a Numba call passing a dozen arrays costs ~30 ns of argument
    marshalling per op, more than a whole PCP hit.

    Returns early when a kernel barrier or a lock reports stop/abort (the state stays
    consistent: a block is always either held or given to the allocator).
    """
    done = 0
    hb = w * cap
    while done < n:
        if load_relaxed(ctl, CTL_STOP) != 0:   # see lockbench: oversubscribed convoys
            return done
        if decay_interval > 0 and \
                load_relaxed(ctl, CTL_CLOCK_MS) >= decay_interval * (wst[w, S_DECAY] + 1):
            # vmstat_update's decay_pcp_high: once per interval of the harness clock, whatever
            # the op rate; a late timer runs once, as a deferrable timer does.
            wst[w, S_DECAY] = load_relaxed(ctl, CTL_CLOCK_MS) // decay_interval
            cnt[w, C_DECAYS] += 1
            if P.decay_pcp_high(mm, pb, fl, zn, lk, pcp, w, cnt, ctl, C_PCP) == -2:
                return done
        ph = wst[w, S_PHASE]
        act = ACT_NONE
        post = POST_FILL
        a_order = order
        a_mt = mt
        slot = -1            # held[] index the block comes from / goes to
        e = np.int64(-1)     # the held entry being freed
        aux = 0              # position / round step to advance after the op
        # ---- plan ------------------------------------------------------------------------
        if ph == 0 and (wl == WL_BULK or wl == WL_RAND or wl == WL_FRAG):
            # bulk, rand and frag all start by filling A slots (frag: its N)
            pos = wst[w, S_POS]
            if pos < A:
                act, post, slot = ACT_ALLOC, POST_FILL, hb + pos
            else:
                wst[w, S_PHASE] = 1
        elif wl == WL_BULK or wl == WL_RAND:
            if ph == 1 or ph == 3:
                if not kernel_barrier(ctl, nw):
                    return done
                wst[w, S_PHASE] = 2 if ph == 1 else 0
                wst[w, S_POS] = 0
            else:
                pos = wst[w, S_POS]
                if pos < A:
                    if wl == WL_BULK:
                        idx = hb + pos
                    else:
                        g = perm[w * A + pos]
                        idx = (g // A) * cap + g % A
                    # rand frees other workers' blocks: claim the slot atomically.
                    e = xchg(held, idx, -1)
                    if e >= 0:
                        act, post, slot, aux = ACT_FREE, POST_FREE_POS, idx, pos + 1
                    else:
                        wst[w, S_POS] = pos + 1
                else:
                    wst[w, S_PHASE] = 3
        elif wl == WL_REPEAT or wl == WL_PAGEFAULT or wl == WL_MIXED or wl == WL_MIXED_NOTHP:
            if ph == 0 and wl == WL_REPEAT and wst[w, S_POS] < A:
                act, post, slot = ACT_ALLOC, POST_FILL, hb + wst[w, S_POS]
            else:
                wst[w, S_PHASE] = 1
                if wl == WL_MIXED or wl == WL_MIXED_NOTHP:
                    nh = wst[w, S_NHELD]
                    r = O.xorshift_next(wst, w, S_RNG)
                    if nh < A and (nh < A // 2 or (r & 1) != 0):
                        a_order = MIXED_ORDERS[(r >> 1) % (7 if wl == WL_MIXED else 6)]
                        a_mt = Z.MIGRATE_MOVABLE
                        sel = (r >> 8) & 7
                        if a_order != 9 and sel == 0:
                            a_mt = Z.MIGRATE_UNMOVABLE
                        elif a_order != 9 and sel == 1:
                            a_mt = Z.MIGRATE_RECLAIMABLE
                        act, post, slot = ACT_ALLOC, POST_MIXED, hb + nh
                    elif nh > 0:
                        j = (r >> 1) % nh
                        e = held[hb + j]
                        held[hb + j] = held[hb + nh - 1]
                        held[hb + nh - 1] = -1
                        wst[w, S_NHELD] = nh - 1
                        act, post, slot = ACT_FREE, POST_MIXED, hb + nh - 1
                    else:
                        done += 1
                else:
                    # The transient block's slot: allocated in one step, freed in the next.
                    slot = hb + A
                    if held[slot] >= 0:
                        e = held[slot]
                        held[slot] = -1
                        act, post = ACT_FREE, POST_TRANSIENT
                    else:
                        act, post = ACT_ALLOC, POST_TRANSIENT
                        if wl == WL_PAGEFAULT:
                            a_order, a_mt = 0, Z.MIGRATE_MOVABLE
        else:  # WL_FRAG, past its fill phase (phases: see the module docstring)
            H = A // 2
            R = max(H // 10, 1)
            if ph == 1 or ph == 2 or ph == 4 or ph == 6 or ph == 8 or ph == 9:
                if not kernel_barrier(ctl, nw):
                    return done
                if ph == 1:
                    if w == 0:      # the others wait at the next barrier meanwhile
                        _frag_shuffle(held, nw, A, cap, wst)
                    wst[w, S_PHASE] = 2
                elif ph == 2:
                    wst[w, S_PHASE] = 3
                    wst[w, S_POS] = H
                elif ph == 6:
                    wst[w, S_PHASE] = 7
                    wst[w, S_FRAG_N] = 0
                    wst[w, S_RNG_REPLAY] = wst[w, S_RNG_SAVED]
                elif ph == 8:
                    rnd = wst[w, S_ROUND]
                    if w == 0 and rnd < FRAG_ROUNDS:
                        _frag_measure(held, nw, A, cap, frag_huge, fraglog, rnd, ak, zn,
                                      children)
                    wst[w, S_PHASE] = 9
                else:   # ph 4 (after the initial free) or 9 (after a measurement)
                    if ph == 9:
                        wst[w, S_ROUND] += 1
                    wst[w, S_PHASE] = 5
                    wst[w, S_FRAG_N] = 0
                    wst[w, S_RNG_SAVED] = wst[w, S_RNG]
            elif ph == 3:
                # the initial free: the second half of the worker's own slots
                pos = wst[w, S_POS]
                if pos < A:
                    e = held[hb + pos]
                    if e >= 0:
                        held[hb + pos] = -1
                        act, post, slot, aux = ACT_FREE, POST_FREE_POS, hb + pos, pos + 1
                    else:
                        wst[w, S_POS] = pos + 1
                else:
                    wst[w, S_PHASE] = 4
            elif ph == 5:
                # phase 1: free R random held slots (a slot already freed is skipped)
                if wst[w, S_FRAG_N] < R:
                    j = O.xorshift_next(wst, w, S_RNG) % H
                    e = held[hb + j]
                    if e >= 0:
                        held[hb + j] = -1
                        act, post, slot = ACT_FREE, POST_FRAG_FREE, hb + j
                else:
                    wst[w, S_PHASE] = 6
            else:
                # phase 2: replay the round's random sequence, refilling each empty slot
                if wst[w, S_FRAG_N] < R:
                    j = O.xorshift_next(wst, w, S_RNG_REPLAY) % H
                    if held[hb + j] < 0:
                        act, post, slot = ACT_ALLOC, POST_FRAG_ALLOC, hb + j
                else:
                    wst[w, S_PHASE] = 8
        # ---- perform: the one allocation site and the one free site ------------------------
        if act == ACT_ALLOC:
            pfn = _timed_alloc(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local,
                               w, a_order, a_mt, cnt, ctl, wst, lat)
            if pfn == ABORTED:
                return done
            done += 1
            if post == POST_FILL:
                held[slot] = (pfn << 4) | a_order if pfn >= 0 else -1
                wst[w, S_POS] += 1
            elif post == POST_FRAG_ALLOC:
                if pfn >= 0:
                    held[slot] = (pfn << 4) | a_order
                wst[w, S_FRAG_N] += 1    # a failed refill is not retried (no livelock)
            elif pfn >= 0:
                held[slot] = (pfn << 4) | a_order
                if post == POST_MIXED:
                    wst[w, S_NHELD] += 1
                elif post == POST_TRANSIENT and wl == WL_PAGEFAULT:
                    # The fault handler zeroes / writes the new page: real stores to real memory.
                    # Each worker writes its own part of the data area: page contents are
                    # private to the faulting CPU; sharing rows between workers (same
                    # pfn % data_pages) would add cache-line traffic no real fault has.
                    row = (w * data_pages + pfn % data_pages) * page_words
                    for i in range(page_words):
                        data[row + i] = pfn + i
        elif act == ACT_FREE:
            r = _timed_free(ak, mm, pb, fl, zn, lk, pcp, bits, children, trees, local, w, e,
                            cnt, ctl, wst, lat)
            if r == ABORTED:
                held[slot] = e          # still ours: put it back where check() will see it
                if post == POST_MIXED:
                    wst[w, S_NHELD] += 1
            if r == ABORTED or r == ABORTED_FREED:
                return done
            done += 1
            if post == POST_FREE_POS:
                wst[w, S_POS] = aux
            elif post == POST_FRAG_FREE:
                wst[w, S_FRAG_N] += 1
    return done


@njit(cache=True, nogil=True)
def _mark_held(mm, held, mark, errs):
    """Mark every held block's frames; errors: [1, pfn] bad refcount, [2, pfn] in two places."""
    n = 0
    for i in range(held.shape[0]):
        e = held[i]
        if e < 0:
            continue
        pfn = e >> 4
        order = e & 15
        if mm[pfn, Z.PG_REFCOUNT] != 1:
            if n < errs.shape[0]:
                errs[n, 0], errs[n, 1] = 1, pfn
            n += 1
        for p in range(pfn, pfn + (1 << order)):
            mark[p] += 1
            if mark[p] > 1:
                if n < errs.shape[0]:
                    errs[n, 0], errs[n, 1] = 2, p
                n += 1
                break
    return n


class PageAllocModel(Model):
    name = "pagealloc"
    description = "page allocator scalability: buddy, per-CPU lists (3 generations), LLFree"
    variants = {a: {"allocator": a} for a in ALLOCATORS}
    params = {
        "allocator": Param(str, "buddy", choices=ALLOCATORS, help="set by the variant"),
        "nframes": Param(int, 1 << 20, 1 << 14, 1 << 26,
                         help="frames in the zone (a multiple of 16384; 2^20 = 4 GiB)"),
        "lock": Param(str, "ttas", choices=tuple(LOCK_KINDS), help="zone->lock kind"),
        "workload": Param(str, "bulk", choices=WORKLOADS, help="per-worker op pattern"),
        "order": Param(int, 0, 0, 10, help="allocation order (mixed draws its own)"),
        "migratetype": Param(str, "movable", choices=tuple(MIGRATETYPES),
                             help="migratetype of the allocations (mixed draws its own)"),
        "batch": Param(int, 0, 0, 4096, help="pcp batch (0 = zone_batchsize: 63)"),
        "high": Param(int, 0, 0, 1 << 24,
                      help="pcp high (0 = kernel formula; autotune: high_max)"),
        "max_workers": Param(int, 0, 0, 4096,
                             help="T_max of A = F/(T_max*2*2^order) (0 = sweep_max_workers)"),
        "sweep_max_workers": Param(int, 0, 0, 4096, help="set by the harness: largest sweep point"),
        "decay_interval_ms": Param(int, 1000, 0, 3_600_000,
                                   help="pcp-autotune: ms of the harness clock between "
                                        "decay_pcp_high calls (vmstat interval; 0 = never)"),
        "node_cpus": Param(int, 0, 0, 4096,
                           help="CPUs of the simulated node, which pcp high divides by "
                                "(0 = the sweep's largest worker count)"),
        "llc_slice_kib": Param(int, -1, -1, 1 << 20,
                               help="pcp-autotune: per-CPU LLC slice in KiB; PCPF_FREE_HIGH_BATCH"
                                    " when it exceeds 3 x batch pages (-1 = this box's sysfs)"),
        "aged_blocks": Param(float, 0.25, 0.0, 0.9,
                             help="buddy and pcp-*: share of pageblocks with a random half of "
                                  "their frames resident for the whole run (0 = pristine zone)"),
        "data_pages": Param(int, 1024, 1, 1 << 20,
                            help="pagefault: pages in each worker's part of the data area"),
        "page_bytes": Param(int, 4096, 8, 4096, help="pagefault: bytes written per page"),
        "pcp_from_box": Param(bool, False, help="take pcp batch/high from this box's "
                              "/proc/zoneinfo (mmbench.procfs.pcp_settings_for_model)"),
    }
    counter_names = COUNTER_NAMES

    # --- sizing --------------------------------------------------------------------------
    def validate(self, p):
        if p["allocator"] == "pcp-autotune" and p["llc_slice_kib"] < 0:
            # Resolved in the parent, so the recorded params name the slice that ran.
            p["llc_slice_kib"] = P.llc_slice_kib()
        if p["nframes"] % L.LLF_TREE_FRAMES:
            raise ValueError(f"nframes must be a multiple of {L.LLF_TREE_FRAMES}")
        if p["allocator"] == "llfree" and p["order"] > L.LLF_MAX_ORDER:
            raise ValueError(f"llfree allocates orders up to {L.LLF_MAX_ORDER}")
        if p["page_bytes"] % 8:
            raise ValueError("page_bytes must be a multiple of 8")
        if self._from_box(p):
            # Resolved in the parent, so the recorded params name the batch/high that ran.
            # A box without pagesets keeps 0/0 here and setup() refuses the point.
            box = self._box_pcp()
            if box:
                for k in ("batch", "high"):
                    if p[k] not in (0, box[k]):
                        raise ValueError(f"pcp_from_box sets {k} from /proc/zoneinfo ({box[k]}):"
                                         f" leave {k} at 0, not {p[k]}")
                    p[k] = self.params[k].validate(f"{k} (from /proc/zoneinfo)", box[k])

    @staticmethod
    def _from_box(p):
        """pcp_from_box matters only for the pcp variants (buddy and llfree have no pageset)."""
        return p["pcp_from_box"] and p["allocator"].startswith("pcp-")

    @staticmethod
    def _box_pcp():
        """{"batch", "high"} of this box's main zone, or None where it shows no usable pageset."""
        box = procfs.pcp_settings_for_model()
        return box if box.get("batch", 0) > 0 and box.get("high", 0) > 0 else None

    @staticmethod
    def node_cpus(p, nworkers):
        """The simulated node's CPU count (zone_highsize's divisor)."""
        return max(p["node_cpus"] or p["sweep_max_workers"] or nworkers, nworkers)

    @staticmethod
    def _tmax(p, nworkers):
        return max(p["max_workers"] or p["sweep_max_workers"] or nworkers, nworkers)

    def sizes(self, p, nworkers):
        """(A, cap): blocks a worker cycles through and its held-array capacity."""
        F = p["nframes"]
        wl = p["workload"]
        if wl == "pagefault":
            A = 0
        elif wl == "frag":
            # linux-alloc-bench: N = ((present - T*10*2^order) / 2^order / T) * 90 / 100
            A = max(20, ((F - nworkers * 10 * (1 << p["order"])) >> p["order"])
                    // nworkers * 90 // 100)
        elif wl in ("mixed", "mixed-no-thp"):
            mean = MIXED_MEAN_PAGES if wl == "mixed" else MIXED_NOTHP_MEAN_PAGES
            A = max(2, F // (self._tmax(p, nworkers) * 2 * mean))
        else:
            A = max(1, F // (self._tmax(p, nworkers) * 2 << p["order"]))
        return A, A + 1

    @staticmethod
    def _aged(p):
        return p["allocator"] != "llfree" and p["workload"] != "frag" and p["aged_blocks"] > 0

    def _ak(self, p):
        a = p["allocator"]
        return AK_BUDDY if a == "buddy" else AK_LLFREE if a == "llfree" else AK_PCP

    def layout(self, p, nworkers):
        F = p["nframes"]
        A, cap = self.sizes(p, nworkers)
        wl = p["workload"]
        specs = [ArraySpec(k, shape, dt) for k, (shape, dt) in Z.zone_arrays(F).items()]
        llf = L.llfree_arrays(F if p["allocator"] == "llfree" else L.LLF_TREE_FRAMES,
                              nworkers if p["allocator"] == "llfree" else 1)
        specs += [ArraySpec(k, shape, dt) for k, (shape, dt) in llf.items()]
        specs += [
            ArraySpec("zone_lock", (lockset_words(1, nworkers),)),
            ArraySpec("pcp", (nworkers * P.PCP_WORDS,)),
            ArraySpec("pa_held", (nworkers * cap,)),
            ArraySpec("pa_wst", (nworkers, WST_WORDS)),
            ArraySpec("pa_lat", (nworkers, 2, LAT_BUCKETS)),
            ArraySpec("pa_perm", (nworkers * A if wl == "rand" else 1,)),
            ArraySpec("pa_frag_huge", (F >> Z.PAGEBLOCK_ORDER if wl == "frag" else 1,)),
            ArraySpec("pa_fraglog", (FRAG_LOGS, FRAG_ROUNDS)),
            ArraySpec("pa_data", (nworkers * p["data_pages"] * p["page_bytes"] // 8
                                  if wl == "pagefault" else 1,)),
            ArraySpec("pa_resident", (F if self._aged(p) else 1,), np.int8),
        ]
        return specs

    def setup(self, arrays, p, nworkers, seed):
        if self._from_box(p) and self._box_pcp() is None:
            raise ModelNotRunnable("pcp_from_box: /proc/zoneinfo shows no populated zone with "
                                   "per-CPU pagesets on this box")
        F = p["nframes"]
        mm, pb, fl, zn = (arrays[k] for k in ("zone_mm", "zone_pb", "zone_fl", "zone_zn"))
        init_lockset(arrays["zone_lock"], 1, nworkers, LOCK_KINDS[p["lock"]], sample_hold=True)
        if p["allocator"] == "llfree":
            Z.zone_reset(mm, pb, fl, zn, 0, F)
            Z.zone_init_range(mm, pb, zn, 0, F)
            mm[:, Z.PG_FLAGS] &= ~Z.PGF_RESERVED
            mm[:, Z.PG_REFCOUNT] = 0
            zn[Z.Z_MANAGED] = F
            Z.zone_set_watermarks(zn)
            L.llfree_init(arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                          arrays["llf_local"], F, nworkers)
        elif self._aged(p):
            res = Z.zone_build_aged(mm, pb, fl, zn, F, p["aged_blocks"],
                                    np.random.default_rng([seed, 0xA6ED]))
            arrays["pa_resident"][:] = res
            L.llfree_init(arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                          arrays["llf_local"], L.LLF_TREE_FRAMES, 1)
        else:
            Z.zone_build(mm, pb, fl, zn, 0, F)
            L.llfree_init(arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                          arrays["llf_local"], L.LLF_TREE_FRAMES, 1)
        pcp = arrays["pcp"]
        pcp[:] = 0
        if p["allocator"].startswith("pcp-"):
            kind = PCP_KIND[p["allocator"]]
            b, hmin, hmax = P.pcp_sizes(kind, int(zn[Z.Z_MANAGED]), int(zn[Z.Z_WMARK_LOW]),
                                        self.node_cpus(p, nworkers), p["batch"], p["high"])
            flags = (P.PCPF_FREE_HIGH_BATCH if kind == "autotune"
                     and P.free_high_batch(max(p["llc_slice_kib"], 0), b) else 0)
            for w in range(nworkers):
                P.pcp_init(pcp, w, P.PCP_KINDS[kind], b, hmin, hmax, flags)
        arrays["pa_held"][:] = -1
        wst = arrays["pa_wst"]
        wst[:] = 0
        rng = np.random.default_rng(seed)
        wst[:, S_RNG] = rng.integers(1, 1 << 62, nworkers)
        wst[0, S_SHUF] = rng.integers(1, 1 << 62)
        arrays["pa_lat"][:] = 0
        arrays["pa_fraglog"][:] = -1
        arrays["pa_frag_huge"][:] = 0
        arrays["pa_data"][:] = 0
        A, _ = self.sizes(p, nworkers)
        if p["workload"] == "rand":
            arrays["pa_perm"][:] = rng.permutation(nworkers * A)

    def compile(self, p):
        a = {k: np.zeros(s.shape, s.dtype) for k, s in
             ((s.name, s) for s in self.layout(dict(p, nframes=L.LLF_TREE_FRAMES,
                                                     workload="bulk", data_pages=1), 1))}
        a["counters"] = np.zeros((1, self.counter_columns()), np.int64)
        a["ctl"] = np.zeros(64, np.int64)
        self._call(a, p, 0, 1, 0, AK_BUDDY)

    def _call(self, a, p, w, nw, n, ak=None):
        A, cap = self.sizes(p, nw)
        return pagealloc_step(
            self._ak(p) if ak is None else ak, WORKLOADS.index(p["workload"]),
            a["zone_mm"], a["zone_pb"], a["zone_fl"], a["zone_zn"], a["zone_lock"], a["pcp"],
            a["llf_bits"], a["llf_children"], a["llf_trees"], a["llf_local"], a["pa_held"],
            a["pa_wst"], a["pa_lat"], a["pa_perm"], a["pa_frag_huge"], a["pa_fraglog"],
            a["pa_data"], a["counters"], a["ctl"], w, nw, n, p["order"],
            MIGRATETYPES[p["migratetype"]], A, cap, p["page_bytes"] // 8, p["data_pages"],
            p["decay_interval_ms"] if p["allocator"] == "pcp-autotune" else 0)

    def worker_init(self, arrays, p, worker, nworkers):
        return (arrays, p, worker, nworkers)

    def step(self, ctx, n):
        arrays, p, w, nw = ctx
        return self._call(arrays, p, w, nw, n)

    def worker_finish(self, ctx):
        arrays, p, w, nw = ctx
        arrays["counters"][w, C_STRANDED] = arrays["pcp"][w * P.PCP_WORDS + P.P_COUNT]

    def check(self, arrays, p, nworkers):
        F = p["nframes"]
        mm, pb, fl, zn = (arrays[k] for k in ("zone_mm", "zone_pb", "zone_fl", "zone_zn"))
        mark = np.zeros(F, np.int32)
        errors = Z.zone_check(mm, pb, fl, zn, mark)
        if p["allocator"].startswith("pcp-"):
            errors += P.pcp_check(mm, arrays["pcp"], nworkers, mark)
            for w in range(nworkers):
                arrays["counters"][w, C_STRANDED] = arrays["pcp"][w * P.PCP_WORDS + P.P_COUNT]
        if p["allocator"] == "llfree":
            args = (arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                    arrays["llf_local"])
            errors += L.llfree_check(*args, F, nworkers)
            bits = np.unpackbits(arrays["llf_bits"].view(np.uint8), bitorder="little")[:F]
            huge = np.repeat((arrays["llf_children"] & L.CHILD_HUGE) != 0, L.LLF_CHILD_FRAMES)
            mark += ((bits == 0) & ~huge).astype(np.int32)
        if self._aged(p):
            res = arrays["pa_resident"].astype(bool)
            bad = np.flatnonzero(res & (mm[:, Z.PG_REFCOUNT] != 1))
            if len(bad):
                errors.append(f"resident frame {int(bad[0])} has refcount "
                              f"{int(mm[bad[0], Z.PG_REFCOUNT])} ({len(bad)} such)")
            mark += res.astype(np.int32)
        errs = np.zeros((16, 2), np.int64)
        n = _mark_held(mm, arrays["pa_held"], mark, errs)
        for code, pfn in errs[:min(n, 16)]:
            errors.append(f"held block at pfn {pfn} has refcount {mm[pfn, Z.PG_REFCOUNT]}"
                          if code == 1 else f"held frame {pfn} is also free or held twice")
        errors += Z.placement_errors(mark)
        return errors

    def report(self, arrays, p, nworkers):
        lat = arrays["pa_lat"]
        hist = {k: {"unit": "cycles", "bucket_log2_base": 0,
                    "counts": [int(x) for x in lat[:, i, :].sum(axis=0)]}
                for i, k in enumerate(("alloc", "free"))}
        A, _ = self.sizes(p, nworkers)
        extra = {"blocks_per_worker": A}
        if self._aged(p):
            extra["resident_frames"] = int(arrays["pa_resident"].sum())
        if p["workload"] == "frag":
            log = arrays["pa_fraglog"]
            done = log[2] >= 0
            extra["frag_free_huge_per_round"] = [int(x) for x in log[0][done]]
            extra["frag_free_huge_allocator_per_round"] = [int(x) for x in log[1][done]]
            extra["frag_held_per_round"] = [int(x) for x in log[2][done]]
            extra["frag_huge_total"] = p["nframes"] >> Z.PAGEBLOCK_ORDER
            # the most huge frames the free memory could form (the paper's 50 % line)
            H = A // 2
            extra["frag_free_huge_max"] = (p["nframes"] - ((nworkers * H) << p["order"])) \
                >> Z.PAGEBLOCK_ORDER
            extra["frag_blocks_per_worker"] = A
            # linux-alloc-bench's normalisation: the share of the memory freed since the
            # first measurement that now forms free huge frames (the paper's 0..50 % axis
            # is this times 50: half of memory was freed)
            r = extra["frag_free_huge_per_round"]
            top = extra["frag_free_huge_max"]
            extra["frag_freed_huge_share_per_round"] = (
                [(x - r[0]) / (top - r[0]) for x in r] if r and top > r[0] else [])
        if p["allocator"].startswith("pcp-"):
            pcp = arrays["pcp"]
            extra["pcp_high_final"] = [int(pcp[w * P.PCP_WORDS + P.P_HIGH]) for w in range(nworkers)]
            extra["pcp_batch"] = int(pcp[P.P_BATCH])
            extra["pcp_high_min_max"] = [int(pcp[P.P_HIGH_MIN]), int(pcp[P.P_HIGH_MAX])]
            extra["pcp_free_high_batch"] = bool(pcp[P.P_FLAGS] & P.PCPF_FREE_HIGH_BATCH)
            extra["node_cpus"] = self.node_cpus(p, nworkers)
        if self._from_box(p):
            extra["pcp_from_box"] = {"batch": p["batch"], "high": p["high"],
                                     "source": procfs.ZONEINFO}
        # Filled by worker_finish, after the measured window the harness's deltas cover.
        stranded = arrays["counters"][:, C_STRANDED].tolist()
        return {"latency": hist, "extra": extra, "counters": {"pcp_stranded": stranded}}

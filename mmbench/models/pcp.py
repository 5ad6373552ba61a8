"""Per-CPU page lists (``struct per_cpu_pages``) in front of the zone's buddy allocator.

Each worker (a simulated CPU) owns one ``per_cpu_pages`` record in the 1-D int64 array
``pcp`` at ``w * PCP_WORDS`` (48 words = 384 bytes, six whole cache lines, so no two
workers share a line).  Its lists are threaded through the memmap's ``lru`` words like the
buddy free lists; [first, last] pfns sit at ``P_LISTS + 2 * pindex``.

Four code paths, one per kernel version range (each follows that range's page_alloc.c):

* ``PCP_CLASSIC`` (<= 5.13): order-0 pages only, one list per pcp migratetype; refill
  ``batch`` pages with ``rmqueue_bulk`` when the list is empty; when ``count >= high`` free
  ``batch`` pages with ``free_pcppages_bulk`` (5.13: pick pages round robin off the lists'
  tails with the ``batch_free`` rule, then free them under one zone->lock acquisition).
* ``PCP_V514`` (5.14-5.17, Mel Gorman's high-order PCP, 44042b449872, and the free_factor
  scaling, 3b12e7e97938): lists for orders 0..3 x 3 migratetypes plus two THP lists; a refill
  takes ``max(batch >> order, 2)`` blocks (no alloc_factor); a free scales the drained count
  by ``batch << free_factor`` (free_factor grows per drain without an allocation, halves on
  every allocation); ``high`` is fixed; the bulk free is the two-pass ``batch_free`` round robin
  over all 14 lists.
* ``PCP_V518`` (5.18-6.6): as 5.14, plus ``free_high`` (f26b3fa04611, tested on 5.17-rc3 and
  merged for 5.18): a high-order (1..3) free while free_factor is non-zero drains the whole
  pageset; the bulk free is one pass under the lock starting at the freeing list (same series).
  The pcp spinlock taken by trylock (6.0) changes nothing the model can see: only the owner
  takes its pageset's lock here.
* ``PCP_MODERN`` (6.7-6.13): Huang Ying's auto-tuning: ``nr_pcp_alloc`` / ``nr_pcp_high`` /
  ``nr_pcp_free`` / ``decay_pcp_high`` exactly as KERNEL_ALGORITHMS.md paraphrases them,
  ``PCPF_FREE_HIGH_BATCH`` (set by ``zone_pcp_update_cacheinfo`` when the per-CPU LLC slice
  exceeds 3 x batch pages).  With ``high_min == high_max`` the auto-tuning is off (what the
  percpu_pagelist_high_fraction sysctl gives on 6.7+).

Counters go to cnt[w, cc + PCPC_*]; pages stolen by fallback to cnt[w, cs].
"""
from __future__ import annotations

import numpy as np
from numba import njit
from ..jit import helper, hot, uidx

from ..atomics import cas, load_relaxed, store_relaxed, store_release
from ..locks import spin_lock, spin_unlock
from .zone import (MIGRATE_ISOLATE, MIGRATE_MOVABLE, MIGRATE_PCPTYPES, PAGE_ALLOC_COSTLY_ORDER,
                   PAGEBLOCK_ORDER, PG_FLAGS, PG_LRU_NEXT, PG_LRU_PREV, PG_REFCOUNT, PGF_BUDDY,
                   Z_FLAGS, Z_FREE_PAGES, Z_WMARK_HIGH, ZONE_BELOW_HIGH, ZONE_RECLAIM_ACTIVE,
                   buddy_alloc, buddy_free, free_one_page_locked, free_pages_prepare,
                   get_pageblock_migratetype, list_add, list_del, prep_new_page, rmqueue_locked)

PCP_CLASSIC = 0
PCP_MODERN = 1           # 6.7+
PCP_V514 = 2             # 5.14-5.17
PCP_V518 = 3             # 5.18-6.6

PCP_BATCH_SCALE_MAX = 5                      # CONFIG_PCP_BATCH_SCALE_MAX
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)   # 12
NR_PCP_THP = 2
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + NR_PCP_THP                          # 14
HPAGE_PMD_ORDER = PAGEBLOCK_ORDER

# per_cpu_pages words
P_COUNT = 0
P_HIGH = 1
P_HIGH_MIN = 2
P_HIGH_MAX = 3
P_BATCH = 4
P_FLAGS = 5
P_ALLOC_FACTOR = 6
P_FREE_COUNT = 7
P_KIND = 8
P_LOCK = 9               # pcp->lock (6.0+): taken by trylock
P_FREE_FACTOR = 11       # 5.14-6.6 pcp->free_factor
P_LISTS = 16             # lists[pindex] = [first, last] at P_LISTS + 2*pindex
PCP_WORDS = 48
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0
PCPF_FREE_HIGH_BATCH = 1 << 1

# counter offsets from the caller's column cc
PCPC_HITS = 0            # allocations served from a non-empty pcp list
PCPC_REFILLS = 1         # rmqueue_bulk calls
PCPC_DRAINS = 2          # free_pcppages_bulk calls
PCPC_FREE_HIGH = 3       # drains forced by free_high (5.18+)
N_PCP_COUNTERS = 4


@njit(cache=True, nogil=True, inline="always")
def order_to_pindex(mt, order):
    if order > PAGE_ALLOC_COSTLY_ORDER:
        if mt == MIGRATE_MOVABLE:
            return NR_LOWORDER_PCP_LISTS + 1
        return NR_LOWORDER_PCP_LISTS
    return MIGRATE_PCPTYPES * order + mt


@njit(cache=True, nogil=True, inline="always")
def pindex_to_order(pindex):
    if pindex >= NR_LOWORDER_PCP_LISTS:
        return HPAGE_PMD_ORDER
    return pindex // MIGRATE_PCPTYPES


@njit(cache=True, nogil=True, inline="always")
def pcp_allowed_order(order):
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER


@njit(cache=True, nogil=True, inline="always")
def _clamp(v, lo, hi):
    return min(max(v, lo), hi)


# --- zone side: one zone->lock acquisition per batch -----------------------------------
@helper
def rmqueue_bulk(mm, pb, fl, zn, lk, w, order, count, mt, pcp, h, cnt, ctl, cs):
    """Take ``count`` blocks of ``order`` under ONE zone->lock acquisition onto the list tail.

    Returns the number of blocks taken, or -1 if the run was aborted.
    """
    if not spin_lock(lk, 0, w, cnt, ctl):
        return -1
    i = 0
    while i < count:
        pfn = rmqueue_locked(mm, pb, fl, zn, order, mt, cnt, w, cs)
        if pfn < 0:
            break
        list_add(mm, pcp, h, pfn, True)
        i += 1
    spin_unlock(lk, 0, w, cnt)
    return i


@helper
def free_pcppages_bulk(mm, pb, fl, zn, lk, w, pcp, count, pindex, cnt, ctl):
    """6.7 free_pcppages_bulk: under one zone->lock, round robin over the non-empty lists
    starting at ``pindex``, each list drained from its tail (coldest) until ``count`` pages
    are gone.  False if the run was aborted."""
    base = w * PCP_WORDS
    count = min(pcp[uidx(base + P_COUNT)], count)
    if count <= 0:
        return True
    pindex = pindex - 1
    if not spin_lock(lk, 0, w, cnt, ctl):
        return False
    while count > 0:
        while True:
            pindex += 1
            if pindex > NR_PCP_LISTS - 1:
                pindex = 0
            if pcp[uidx(base + P_LISTS + 2 * pindex)] != -1:
                break
        h = base + P_LISTS + 2 * pindex
        order = pindex_to_order(pindex)
        nr_pages = 1 << order
        while True:
            pfn = pcp[uidx(h + 1)]
            mt = get_pageblock_migratetype(pb, pfn)
            list_del(mm, pcp, h, pfn)
            count -= nr_pages
            pcp[uidx(base + P_COUNT)] -= nr_pages
            free_one_page_locked(mm, pb, fl, zn, pfn, order, mt, False)
            if count <= 0 or pcp[uidx(h)] == -1:
                break
    spin_unlock(lk, 0, w, cnt)
    return True


@helper
def free_pcppages_bulk_classic(mm, pb, fl, zn, lk, w, pcp, count, cnt, ctl):
    """5.13 free_pcppages_bulk: pick ``count`` order-0 pages off the list tails (round robin,
    ``batch_free`` grows past empty lists), then free them under one zone->lock."""
    base = w * PCP_WORDS
    count = min(pcp[uidx(base + P_COUNT)], count)
    if count <= 0:
        return True
    mt = 0
    batch_free = 0
    chain = -1                       # the local LIST_HEAD(head), linked through lru.next
    while count > 0:
        while True:
            batch_free += 1
            mt += 1
            if mt == MIGRATE_PCPTYPES:
                mt = 0
            if pcp[uidx(base + P_LISTS + 2 * mt)] != -1:
                break
        if batch_free == MIGRATE_PCPTYPES:
            batch_free = count
        h = base + P_LISTS + 2 * mt
        while True:
            pfn = pcp[uidx(h + 1)]
            list_del(mm, pcp, h, pfn)
            pcp[uidx(base + P_COUNT)] -= 1
            mm[uidx(pfn), PG_LRU_NEXT] = chain
            chain = pfn
            count -= 1
            batch_free -= 1
            if count == 0 or batch_free == 0 or pcp[uidx(h)] == -1:
                break
    if not spin_lock(lk, 0, w, cnt, ctl):
        # Put the picked pages back so that nothing is lost for the post-mortem check.
        while chain != -1:
            nxt = mm[uidx(chain), PG_LRU_NEXT]
            cmt = get_pageblock_migratetype(pb, chain)
            if cmt >= MIGRATE_PCPTYPES:
                cmt = MIGRATE_MOVABLE
            list_add(mm, pcp, base + P_LISTS + 2 * cmt, chain, True)
            pcp[uidx(base + P_COUNT)] += 1
            chain = nxt
        return False
    while chain != -1:
        nxt = mm[uidx(chain), PG_LRU_NEXT]
        mm[uidx(chain), PG_LRU_NEXT] = -1
        free_one_page_locked(mm, pb, fl, zn, chain, 0, get_pageblock_migratetype(pb, chain), False)
        chain = nxt
    spin_unlock(lk, 0, w, cnt)
    return True


@helper
def free_pcppages_bulk_v514(mm, pb, fl, zn, lk, w, pcp, count, cnt, ctl):
    """5.14-5.17 free_pcppages_bulk: pick pages off the tails of all 14 lists round robin
    (``batch_free`` grows past empty lists; the only non-empty list is emptied), in pick
    order onto a local list, then free them under one zone->lock acquisition.

    Kept apart from :func:`free_pcppages_bulk_classic` as the kernel kept its versions: 14
    lists of four orders instead of three order-0 lists, and each page's list remembered so
    that an aborted run can put it back where it came from."""
    base = w * PCP_WORDS
    count = min(pcp[uidx(base + P_COUNT)], count)
    if count <= 0:
        return True
    pindex = 0
    batch_free = 0
    head = -1                        # LIST_HEAD(head): FIFO through lru.next,
    tail = -1                        # each page's list index parked in lru.prev
    while count > 0:
        while True:
            batch_free += 1
            pindex += 1
            if pindex == NR_PCP_LISTS:
                pindex = 0
            if pcp[uidx(base + P_LISTS + 2 * pindex)] != -1:
                break
        if batch_free == NR_PCP_LISTS:
            batch_free = count
        h = base + P_LISTS + 2 * pindex
        nr_pages = 1 << pindex_to_order(pindex)
        while True:
            pfn = pcp[uidx(h + 1)]
            list_del(mm, pcp, h, pfn)
            count -= nr_pages
            pcp[uidx(base + P_COUNT)] -= nr_pages
            mm[uidx(pfn), PG_LRU_NEXT] = -1
            mm[uidx(pfn), PG_LRU_PREV] = pindex
            if tail == -1:
                head = pfn
            else:
                mm[uidx(tail), PG_LRU_NEXT] = pfn
            tail = pfn
            batch_free -= 1
            if count <= 0 or batch_free == 0 or pcp[uidx(h)] == -1:
                break
    if not spin_lock(lk, 0, w, cnt, ctl):
        # Put the picked pages back so that nothing is lost for the post-mortem check.
        while head != -1:
            nxt = mm[uidx(head), PG_LRU_NEXT]
            pi = mm[uidx(head), PG_LRU_PREV]
            list_add(mm, pcp, base + P_LISTS + 2 * pi, head, True)
            pcp[uidx(base + P_COUNT)] += 1 << pindex_to_order(pi)
            head = nxt
        return False
    while head != -1:
        nxt = mm[uidx(head), PG_LRU_NEXT]
        order = pindex_to_order(mm[uidx(head), PG_LRU_PREV])
        mm[uidx(head), PG_LRU_NEXT] = -1
        mm[uidx(head), PG_LRU_PREV] = -1
        free_one_page_locked(mm, pb, fl, zn, head, order, get_pageblock_migratetype(pb, head),
                             False)
        head = nxt
    spin_unlock(lk, 0, w, cnt)
    return True


# --- the 5.14-6.6 sizing rules ----------------------------------------------------------
@hot
def nr_pcp_high_v514(pcp, base, zn, free_high):
    """5.14-6.6 nr_pcp_high: high, 0 for free_high (5.18+), batch << 2 under reclaim."""
    high = pcp[uidx(base + P_HIGH)]
    if high == 0 or free_high:
        return 0
    if (load_relaxed(zn, Z_FLAGS) & ZONE_RECLAIM_ACTIVE) == 0:
        return high
    return min(pcp[uidx(base + P_BATCH)] << 2, high)


@hot
def nr_pcp_free_v514(pcp, base, high, batch, free_high):
    """5.14-6.6 nr_pcp_free: everything for free_high (5.18+); else batch << free_factor
    clamped to [batch, high - batch], free_factor growing while that stays below the max."""
    if free_high:
        return pcp[uidx(base + P_COUNT)]
    if high < batch:
        return 1
    min_nr_free = batch
    max_nr_free = high - batch
    batch = batch << pcp[uidx(base + P_FREE_FACTOR)]
    if batch < max_nr_free:
        pcp[uidx(base + P_FREE_FACTOR)] += 1
    return _clamp(batch, min_nr_free, max_nr_free)


# --- the 6.7 sizing rules --------------------------------------------------------------
@helper
def nr_pcp_alloc(pcp, base, zn, order):
    base_batch = pcp[uidx(base + P_BATCH)]
    high_min = pcp[uidx(base + P_HIGH_MIN)]
    high_max = pcp[uidx(base + P_HIGH_MAX)]
    high = _clamp(pcp[uidx(base + P_HIGH)], high_min, high_max)
    pcp[uidx(base + P_HIGH)] = high
    if high < base_batch:
        return 1
    if order:
        batch = base_batch
    else:
        batch = base_batch << pcp[uidx(base + P_ALLOC_FACTOR)]
    if high_min != high_max and (load_relaxed(zn, Z_FLAGS) & ZONE_BELOW_HIGH) == 0:
        high = min(high + batch, high_max)
        pcp[uidx(base + P_HIGH)] = high
    if not order:
        max_nr_alloc = max(high - pcp[uidx(base + P_COUNT)] - base_batch, base_batch)
        if batch <= max_nr_alloc and pcp[uidx(base + P_ALLOC_FACTOR)] < PCP_BATCH_SCALE_MAX:
            pcp[uidx(base + P_ALLOC_FACTOR)] += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@hot
def nr_pcp_high(pcp, base, zn, batch, free_high):
    high_min = pcp[uidx(base + P_HIGH_MIN)]
    high_max = pcp[uidx(base + P_HIGH_MAX)]
    high = _clamp(pcp[uidx(base + P_HIGH)], high_min, high_max)
    pcp[uidx(base + P_HIGH)] = high
    if high == 0:
        return 0
    if free_high:
        pcp[uidx(base + P_HIGH)] = max(high - (batch << PCP_BATCH_SCALE_MAX), high_min)
        return 0
    zflags = load_relaxed(zn, Z_FLAGS)
    if (zflags & ZONE_RECLAIM_ACTIVE) != 0:
        free_count = max(pcp[uidx(base + P_FREE_COUNT)], batch)
        pcp[uidx(base + P_HIGH)] = max(high - free_count, high_min)
        return min(batch << 2, pcp[uidx(base + P_HIGH)])
    if high_min == high_max:
        return high
    if (zflags & ZONE_BELOW_HIGH) != 0:
        free_count = max(pcp[uidx(base + P_FREE_COUNT)], batch)
        pcp[uidx(base + P_HIGH)] = max(high - free_count, high_min)
        high = max(pcp[uidx(base + P_COUNT)], high_min)
    elif pcp[uidx(base + P_COUNT)] >= high:
        need_high = pcp[uidx(base + P_FREE_COUNT)] + batch
        if pcp[uidx(base + P_HIGH)] < need_high:
            pcp[uidx(base + P_HIGH)] = _clamp(need_high, high_min, high_max)
    return high


@hot
def nr_pcp_free(pcp, base, batch, high, free_high):
    if free_high:
        return min(pcp[uidx(base + P_COUNT)], batch << PCP_BATCH_SCALE_MAX)
    if high < batch:
        return 1
    return _clamp(pcp[uidx(base + P_FREE_COUNT)], batch, high - batch)


@njit(cache=True, nogil=True, inline="always")
def _pcp_trylock(pcp, base):
    return cas(pcp, base + P_LOCK, 0, 1) == 0


@njit(cache=True, nogil=True, inline="always")
def _pcp_unlock(pcp, base):
    store_release(pcp, base + P_LOCK, 0)


@hot
def _note_watermark(zn, order):
    # get_page_from_freelist's ZONE_BELOW_HIGH detection (6.7), done on every allocation.
    if (load_relaxed(zn, Z_FLAGS) & ZONE_BELOW_HIGH) == 0:
        if load_relaxed(zn, Z_FREE_PAGES) - (1 << order) <= zn[Z_WMARK_HIGH]:
            store_relaxed(zn, Z_FLAGS, load_relaxed(zn, Z_FLAGS) | ZONE_BELOW_HIGH)


# --- alloc / free ------------------------------------------------------------------------
# Where an allocation was served (the second value pcp_alloc_k returns).
SRC_HIT = 0              # off a non-empty pcp list
SRC_REFILL = 1           # the list was empty: rmqueue_bulk ran (an empty refill falls back
                         # to the buddy and still counts here)
SRC_BYPASS = 2           # never looked at the list: not a pcp order, or the trylock failed


@hot
def pcp_alloc_k(kind, mm, pb, fl, zn, lk, pcp, w, order, mt, cnt, ctl, cc, cs):
    """rmqueue for pcp flavour ``kind``: pcp list first (refilled by rmqueue_bulk), the buddy
    for other orders.

    Returns (pfn, src): pfn, -1 when out of memory, -2 when the run was aborted; src is
    SRC_HIT, SRC_REFILL or SRC_BYPASS.  Refills count into cnt[w, cc + PCPC_REFILLS]; hits
    are the caller's to count (a driver keeps them in a register).  ``kind`` is a
    compile-time constant in the drivers, so only its flavour's code is left.
    """
    base = w * PCP_WORDS
    if kind == PCP_CLASSIC:
        if order != 0:
            return buddy_alloc(mm, pb, fl, zn, lk, w, order, mt, cnt, ctl, cs), SRC_BYPASS
        h = base + P_LISTS + 2 * mt
        src = SRC_HIT
        if pcp[uidx(h)] == -1:
            src = SRC_REFILL
            got = rmqueue_bulk(mm, pb, fl, zn, lk, w, 0, pcp[uidx(base + P_BATCH)], mt, pcp, h, cnt,
                               ctl, cs)
            if got < 0:
                return -2, src
            cnt[uidx(w), cc + PCPC_REFILLS] += 1
            pcp[uidx(base + P_COUNT)] += got
            if got == 0:
                return -1, src
        pfn = pcp[uidx(h)]
        list_del(mm, pcp, h, pfn)
        pcp[uidx(base + P_COUNT)] -= 1
        prep_new_page(mm, pfn, 0, mt)
        return pfn, src
    modern = kind == PCP_MODERN
    if modern:
        _note_watermark(zn, order)
    if not pcp_allowed_order(order) or not _pcp_trylock(pcp, base):
        return buddy_alloc(mm, pb, fl, zn, lk, w, order, mt, cnt, ctl, cs), SRC_BYPASS
    if modern:
        pcp[uidx(base + P_FREE_COUNT)] >>= 1
    else:
        pcp[uidx(base + P_FREE_FACTOR)] >>= 1
    h = base + P_LISTS + 2 * order_to_pindex(mt, order)
    src = SRC_HIT
    if pcp[uidx(h)] == -1:
        src = SRC_REFILL
        if modern:
            batch = nr_pcp_alloc(pcp, base, zn, order)
        else:
            batch = pcp[uidx(base + P_BATCH)]
            if batch > 1:
                batch = max(batch >> order, 2)
        got = rmqueue_bulk(mm, pb, fl, zn, lk, w, order, batch, mt, pcp, h, cnt, ctl, cs)
        if got < 0:
            _pcp_unlock(pcp, base)
            return -2, src
        cnt[uidx(w), cc + PCPC_REFILLS] += 1
        pcp[uidx(base + P_COUNT)] += got << order
        if got == 0:
            _pcp_unlock(pcp, base)
            return buddy_alloc(mm, pb, fl, zn, lk, w, order, mt, cnt, ctl, cs), src
    pfn = pcp[uidx(h)]
    list_del(mm, pcp, h, pfn)
    pcp[uidx(base + P_COUNT)] -= 1 << order
    _pcp_unlock(pcp, base)
    prep_new_page(mm, pfn, order, mt)
    return pfn, src


@njit(cache=True, nogil=True, inline="always")
def pcp_alloc(mm, pb, fl, zn, lk, pcp, w, order, mt, cnt, ctl, cc, cs):
    """pcp_alloc_k for the flavour the pageset was set up with; counts hits into
    cnt[w, cc + PCPC_HITS].  Returns the pfn, -1 when out of memory, -2 when aborted."""
    pfn, src = pcp_alloc_k(pcp[uidx(w * PCP_WORDS + P_KIND)], mm, pb, fl, zn, lk, pcp, w, order, mt,
                           cnt, ctl, cc, cs)
    if src == SRC_HIT and pfn >= 0:
        cnt[uidx(w), cc + PCPC_HITS] += 1
    return pfn


@hot
def pcp_free_k(kind, mm, pb, fl, zn, lk, pcp, w, pfn, order, cnt, ctl, cc):
    """free_unref_page for pcp flavour ``kind``: onto the local list; drain when count
    reaches high.  0, or -2 aborted."""
    base = w * PCP_WORDS
    mt = get_pageblock_migratetype(pb, pfn)
    if (kind == PCP_CLASSIC and order != 0) or not pcp_allowed_order(order) \
            or mt == MIGRATE_ISOLATE:
        return buddy_free(mm, pb, fl, zn, lk, w, pfn, order, cnt, ctl)
    if mt >= MIGRATE_PCPTYPES:
        mt = MIGRATE_MOVABLE            # CMA and HIGHATOMIC are filed on the movable list
    if kind == PCP_CLASSIC:
        free_pages_prepare(mm, pfn)
        list_add(mm, pcp, base + P_LISTS + 2 * mt, pfn, False)
        pcp[uidx(base + P_COUNT)] += 1
        if pcp[uidx(base + P_COUNT)] >= pcp[uidx(base + P_HIGH)]:
            cnt[uidx(w), cc + PCPC_DRAINS] += 1
            if not free_pcppages_bulk_classic(mm, pb, fl, zn, lk, w, pcp, pcp[uidx(base + P_BATCH)],
                                              cnt, ctl):
                return -2
        return 0
    if not _pcp_trylock(pcp, base):
        return buddy_free(mm, pb, fl, zn, lk, w, pfn, order, cnt, ctl)
    free_pages_prepare(mm, pfn)
    if kind != PCP_MODERN:
        # 5.14-6.6 free_unref_page_commit
        pindex = order_to_pindex(mt, order)
        list_add(mm, pcp, base + P_LISTS + 2 * pindex, pfn, False)
        pcp[uidx(base + P_COUNT)] += 1 << order
        free_high = (kind == PCP_V518 and pcp[uidx(base + P_FREE_FACTOR)] != 0
                     and order != 0 and order <= PAGE_ALLOC_COSTLY_ORDER)
        high = nr_pcp_high_v514(pcp, base, zn, free_high)
        ok = True
        if pcp[uidx(base + P_COUNT)] >= high:
            cnt[uidx(w), cc + PCPC_DRAINS] += 1
            if free_high:
                cnt[uidx(w), cc + PCPC_FREE_HIGH] += 1
            n = nr_pcp_free_v514(pcp, base, high, pcp[uidx(base + P_BATCH)], free_high)
            if kind == PCP_V514:
                ok = free_pcppages_bulk_v514(mm, pb, fl, zn, lk, w, pcp, n, cnt, ctl)
            else:
                ok = free_pcppages_bulk(mm, pb, fl, zn, lk, w, pcp, n, pindex, cnt, ctl)
        _pcp_unlock(pcp, base)
        return 0 if ok else -2
    # 6.7+ free_unref_page_commit
    pcp[uidx(base + P_ALLOC_FACTOR)] >>= 1
    pindex = order_to_pindex(mt, order)
    list_add(mm, pcp, base + P_LISTS + 2 * pindex, pfn, False)
    pcp[uidx(base + P_COUNT)] += 1 << order
    batch = pcp[uidx(base + P_BATCH)]
    free_high = False
    flags = pcp[uidx(base + P_FLAGS)]
    if order != 0 and order <= PAGE_ALLOC_COSTLY_ORDER:
        free_high = (pcp[uidx(base + P_FREE_COUNT)] >= batch
                     and (flags & PCPF_PREV_FREE_HIGH_ORDER) != 0
                     and ((flags & PCPF_FREE_HIGH_BATCH) == 0 or pcp[uidx(base + P_COUNT)] >= batch))
        pcp[uidx(base + P_FLAGS)] = flags | PCPF_PREV_FREE_HIGH_ORDER
    elif (flags & PCPF_PREV_FREE_HIGH_ORDER) != 0:
        pcp[uidx(base + P_FLAGS)] = flags & ~PCPF_PREV_FREE_HIGH_ORDER
    if pcp[uidx(base + P_FREE_COUNT)] < (batch << PCP_BATCH_SCALE_MAX):
        pcp[uidx(base + P_FREE_COUNT)] += 1 << order
    high = nr_pcp_high(pcp, base, zn, batch, free_high)
    ok = True
    if pcp[uidx(base + P_COUNT)] >= high:
        cnt[uidx(w), cc + PCPC_DRAINS] += 1
        if free_high:
            cnt[uidx(w), cc + PCPC_FREE_HIGH] += 1
        ok = free_pcppages_bulk(mm, pb, fl, zn, lk, w, pcp,
                                nr_pcp_free(pcp, base, batch, high, free_high), pindex, cnt, ctl)
        if (load_relaxed(zn, Z_FLAGS) & ZONE_BELOW_HIGH) != 0 and \
                load_relaxed(zn, Z_FREE_PAGES) > zn[Z_WMARK_HIGH]:
            store_relaxed(zn, Z_FLAGS, load_relaxed(zn, Z_FLAGS) & ~ZONE_BELOW_HIGH)
    _pcp_unlock(pcp, base)
    return 0 if ok else -2


@njit(cache=True, nogil=True, inline="always")
def pcp_free(mm, pb, fl, zn, lk, pcp, w, pfn, order, cnt, ctl, cc):
    """pcp_free_k for the flavour the pageset was set up with.  0, or -2 aborted."""
    return pcp_free_k(pcp[uidx(w * PCP_WORDS + P_KIND)], mm, pb, fl, zn, lk, pcp, w, pfn, order, cnt,
                      ctl, cc)


@helper
def decay_pcp_high(mm, pb, fl, zn, lk, pcp, w, cnt, ctl, cc):
    """decay_pcp_high (vmstat_update's periodic work): shrink high by 1/8, free the excess."""
    base = w * PCP_WORDS
    high_min = pcp[uidx(base + P_HIGH_MIN)]
    batch = pcp[uidx(base + P_BATCH)]
    todo = 0
    if pcp[uidx(base + P_HIGH)] > high_min:
        pcp[uidx(base + P_HIGH)] = max(pcp[uidx(base + P_COUNT)] - (batch << PCP_BATCH_SCALE_MAX),
                                 pcp[uidx(base + P_HIGH)] - (pcp[uidx(base + P_HIGH)] >> 3), high_min)
        if pcp[uidx(base + P_HIGH)] > high_min:
            todo += 1
    to_drain = pcp[uidx(base + P_COUNT)] - pcp[uidx(base + P_HIGH)]
    if to_drain > 0:
        if not _pcp_trylock(pcp, base):
            return todo
        cnt[uidx(w), cc + PCPC_DRAINS] += 1
        ok = free_pcppages_bulk(mm, pb, fl, zn, lk, w, pcp, to_drain, 0, cnt, ctl)
        _pcp_unlock(pcp, base)
        if not ok:
            return -2
        todo += 1
    return todo


@helper
def drain_pages_zone(mm, pb, fl, zn, lk, pcp, w, cnt, ctl):
    """drain_pages_zone: return every page on worker w's lists to the buddy allocator."""
    base = w * PCP_WORDS
    if pcp[uidx(base + P_KIND)] == PCP_CLASSIC:
        return free_pcppages_bulk_classic(mm, pb, fl, zn, lk, w, pcp, pcp[uidx(base + P_COUNT)], cnt, ctl)
    if pcp[uidx(base + P_KIND)] == PCP_V514:
        return free_pcppages_bulk_v514(mm, pb, fl, zn, lk, w, pcp, pcp[uidx(base + P_COUNT)], cnt, ctl)
    return free_pcppages_bulk(mm, pb, fl, zn, lk, w, pcp, pcp[uidx(base + P_COUNT)], 0, cnt, ctl)


# --- Python side -----------------------------------------------------------------------
def rounddown_pow_of_two(x: int) -> int:
    return 1 << (x.bit_length() - 1)


def zone_batchsize(managed: int) -> int:
    """zone_batchsize: 63 for zones of 1 GiB and more."""
    b = max(min(managed >> 10, 256) // 4, 1)
    return rounddown_pow_of_two(b + b // 2) - 1


def zone_highsize(managed: int, low_wmark: int, batch: int, ncpus: int, fraction: int) -> int:
    total = managed // fraction if fraction else low_wmark
    return max(total // max(ncpus, 1), batch << 2)


#: kind code -> the version range it models (6.7+ for PCP_MODERN)
PCP_KIND_NAMES = {PCP_CLASSIC: "classic", PCP_V514: "5.14", PCP_V518: "5.18",
                  PCP_MODERN: "autotune"}
PCP_KINDS = {"classic": PCP_CLASSIC, "5.14": PCP_V514, "5.18": PCP_V518,
             "highorder": PCP_MODERN, "autotune": PCP_MODERN, "disabled": PCP_MODERN}


def pcp_sizes(kind: str, managed: int, low_wmark: int, ncpus: int, batch: int = 0,
              high: int = 0) -> tuple[int, int, int]:
    """(batch, high_min, high_max) of a pageset of ``kind``: "classic" (<= 5.13), "5.14",
    "5.18" (fixed high = low watermark / node CPUs), "highorder" (6.7+ code with tuning off)
    or "autotune" (6.7+).  ``ncpus`` is the CPU count of the zone's node."""
    if kind == "disabled":
        # zone_pcp_disable: high 0, batch 1; every page still goes through the pageset
        # and free_pcppages_bulk, one zone->lock acquisition per page.
        return 1, 0, 0
    b = batch or zone_batchsize(managed)
    if kind == "classic":
        h = high or 6 * b
        return b, h, h
    hmin = zone_highsize(managed, low_wmark, b, ncpus, 0)
    if kind in ("highorder", "5.14", "5.18"):
        h = high or hmin
        return b, h, h
    hmax = high or zone_highsize(managed, low_wmark, b, ncpus, 8)
    return b, min(hmin, hmax), hmax


def llc_slice_kib() -> int:
    """This box's per-CPU share of its last-level cache in KiB (the kernel's
    per_cpu_data_slice_size: LLC size / CPUs sharing it), 0 where sysfs does not say."""
    from pathlib import Path
    best = None
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index[0-9]*")):
        try:
            if (d / "type").read_text().strip() == "Instruction":
                continue
            level = int((d / "level").read_text())
            size = (d / "size").read_text().strip()
            kib = int(size[:-1]) * (1024 if size.endswith("M") else 1) if size[-1] in "KM" \
                else int(size) // 1024
            shared = _count_cpulist((d / "shared_cpu_list").read_text())
        except (OSError, ValueError):
            continue
        if best is None or level > best[0]:
            best = (level, kib // max(shared, 1))
    return best[1] if best else 0


def _count_cpulist(text: str) -> int:
    n = 0
    for part in text.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part:
            n += 1
    return n


def free_high_batch(slice_kib: int, batch: int) -> bool:
    """zone_pcp_update_cacheinfo (6.7+): PCPF_FREE_HIGH_BATCH when the per-CPU LLC slice
    holds more than 3 x batch pages."""
    return (slice_kib * 1024) >> 12 > 3 * batch


def pcp_init(pcp, w: int, kind: int, batch: int, high_min: int, high_max: int,
             flags: int = 0) -> None:
    base = w * PCP_WORDS
    pcp[base:base + PCP_WORDS] = 0
    pcp[base + P_LISTS:base + P_LISTS + 2 * NR_PCP_LISTS] = -1
    pcp[base + P_KIND] = kind
    pcp[base + P_BATCH] = batch
    pcp[base + P_HIGH_MIN] = high_min
    pcp[base + P_HIGH_MAX] = high_max
    pcp[base + P_HIGH] = high_min
    pcp[base + P_FLAGS] = flags


@helper
def _pcp_check_kernel(mm, pcp, nworkers, mark, errs):
    """Walk every pcp list; mark its frames; errors: 1 link, 2 count, 3 buddy/refcount, 4 dup."""
    n = 0
    for w in range(nworkers):
        base = w * PCP_WORDS
        total = 0
        for i in range(NR_PCP_LISTS):
            h = base + P_LISTS + 2 * i
            order = pindex_to_order(i)
            pfn = pcp[uidx(h)]
            prev = -1
            steps = 0
            while pfn != -1 and steps <= mm.shape[0]:
                steps += 1
                if mm[uidx(pfn), PG_LRU_PREV] != prev:
                    if n < errs.shape[0]:
                        errs[n, 0], errs[n, 1], errs[n, 2], errs[n, 3] = 1, w, i, pfn
                    n += 1
                if (mm[uidx(pfn), PG_FLAGS] & PGF_BUDDY) != 0 or mm[uidx(pfn), PG_REFCOUNT] != 0:
                    if n < errs.shape[0]:
                        errs[n, 0], errs[n, 1], errs[n, 2], errs[n, 3] = 3, w, i, pfn
                    n += 1
                for p in range(pfn, pfn + (1 << order)):
                    mark[p] += 1
                    if mark[p] > 1:
                        if n < errs.shape[0]:
                            errs[n, 0], errs[n, 1], errs[n, 2], errs[n, 3] = 4, w, i, p
                        n += 1
                        break
                total += 1 << order
                prev = pfn
                pfn = mm[uidx(pfn), PG_LRU_NEXT]
            if pcp[uidx(h + 1)] != prev:
                if n < errs.shape[0]:
                    errs[n, 0], errs[n, 1], errs[n, 2], errs[n, 3] = 1, w, i, prev
                n += 1
        if total != pcp[uidx(base + P_COUNT)]:
            if n < errs.shape[0]:
                errs[n, 0], errs[n, 1], errs[n, 2], errs[n, 3] = 2, w, pcp[uidx(base + P_COUNT)], total
            n += 1
    return n


_PCP_ERR = {1: "pcp {0} list {1}: broken link at pfn {2}",
            2: "pcp {0}: count {1} but the lists hold {2} pages",
            3: "pcp {0} list {1}: pfn {2} is PageBuddy or has a reference",
            4: "pcp {0} list {1}: frame {2} is in two places"}


def pcp_check(mm, pcp, nworkers: int, mark) -> list[str]:
    errs = np.zeros((32, 4), np.int64)
    n = _pcp_check_kernel(mm, pcp, nworkers, mark, errs)
    out = [_PCP_ERR[int(e[0])].format(*(int(x) for x in e[1:])) for e in errs[:min(n, 32)]]
    if n > 32:
        out.append(f"... and {n - 32} more pcp errors")
    return out


def pcp_pages(pcp, nworkers: int) -> list[int]:
    """Pages on each worker's lists (what is stranded when the run ends)."""
    return [int(pcp[w * PCP_WORDS + P_COUNT]) for w in range(nworkers)]

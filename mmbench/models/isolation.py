"""Emptying a pfn range: page isolation, draining every CPU's lists, migration of owned pages.

The common core of memory offline (``offline_pages``) and CMA (``alloc_contig_range``),
mm/page_isolation.c and mm/migrate.c in the kernel's terms:

* :func:`zone_pcp_disable` / :func:`zone_pcp_enable`: every worker's pageset of the zone is set
  to high 0, batch 1 (``__zone_set_pageset_high_and_batch(zone, 0, 0, 1)``) under that
  pageset's lock, then all are drained; the owners see the new values in shared memory and
  from then on free every page straight through to the buddy lists.
* :func:`drain_all_pages`: ``__drain_all_pages`` as in 6.0+, which drains remote CPUs' lists
  directly under their pcp->lock (no work queue).  Lock order: pcp->lock, then zone->lock,
  as on the allocation path.
* :func:`start_isolate_page_range` / :func:`undo_isolate_page_range`: per pageblock under
  zone->lock, ``has_unmovable_pages`` then ``set_migratetype_isolate`` (free blocks larger than
  a pageblock that straddle the range's ends are split first); a failure undoes the blocks
  already isolated.
* :func:`migrate_range`: one pass of ``scan_movable_pages`` + ``do_migrate_range`` over owned
  pages (:mod:`mmbench.models.owned`): claim the owner's slot (isolate_lru_page), refuse pinned
  pages, allocate a target (``alloc_migration_target``: ZONE_MOVABLE first), copy the 64 bytes,
  move the reverse map and the owner's reference, free the old page (it lands on the
  MIGRATE_ISOLATE list).
* :func:`test_pages_isolated`, :func:`take_free_range_locked`: every page of the range free and
  isolated; pull the free blocks off the lists (``__offline_isolated_pages`` /
  ``isolate_freepages_range``).

Zone arrays come as 2-D stacks (row z = zone ``ZONE_NORMAL + z``): ``fl2``, ``zn2``, ``lk2`` (one
lockset per zone, lock 0 = zone->lock) and ``pcp2`` (one pageset per worker and zone).
"""
from __future__ import annotations

from numba import njit
from ..jit import helper

from ..atomics import cas, cpu_relax, load_acquire, load_relaxed, store_release
from ..ctl import CTL_ABORT
from ..locks import spin_lock, spin_unlock
from . import pcp as P
from . import zone as Z
from .owned import (BUSY, CO_DATA_CORRUPT, CO_MIG_BUSY, CO_MIG_NOMEM, CO_MIG_PINNED, CO_MIGRATED, DATA_WORDS,
                    page_checksum, zone_of)

EBUSY = -16
ENOMEM = -12
ABORTED = -2

ISOL_CMA = 0          # alloc_contig_range of a CMA area: CMA pageblocks count as movable
ISOL_OFFLINE = 1      # MEMORY_OFFLINE: CMA pageblocks and unmovable pages refuse isolation

# pageset values saved across zone_pcp_disable (array ``saved`` (W, 4))
SV_HIGH, SV_HIGH_MIN, SV_HIGH_MAX, SV_BATCH = 0, 1, 2, 3


# --- per-CPU lists -------------------------------------------------------------------
@helper
def pcp_lock(pcp, base, ctl):
    """spin_lock(&pcp->lock) from another CPU; False if the run was aborted."""
    spins = 0
    while True:
        if load_relaxed(pcp, base + P.P_LOCK) == 0 and cas(pcp, base + P.P_LOCK, 0, 1) == 0:
            return True
        cpu_relax()
        spins += 1
        if (spins & 1023) == 0 and load_relaxed(ctl, CTL_ABORT) != 0:
            return False


@helper
def pcp_unlock(pcp, base):
    store_release(pcp, base + P.P_LOCK, 0)


@helper
def drain_pages_remote(mm, pb, fl, zn, lk, pcp, t, w, cnt, ctl):
    """drain_pages_zone(cpu t): every page on t's lists back to the buddy, under one zone->lock.

    The caller (worker w) holds t's pcp->lock.  Returns pages drained, or -2 if aborted.
    """
    base = t * P.PCP_WORDS
    if pcp[base + P.P_COUNT] == 0:
        return 0
    if not spin_lock(lk, 0, w, cnt, ctl):
        return ABORTED
    n = 0
    for i in range(P.NR_PCP_LISTS):
        h = base + P.P_LISTS + 2 * i
        order = P.pindex_to_order(i)
        while pcp[h] != -1:
            pfn = pcp[h + 1]
            Z.list_del(mm, pcp, h, pfn)
            pcp[base + P.P_COUNT] -= 1 << order
            Z.free_one_page_locked(mm, pb, fl, zn, pfn, order,
                                   Z.get_pageblock_migratetype(pb, pfn), False)
            n += 1 << order
    spin_unlock(lk, 0, w, cnt)
    return n


@helper
def drain_all_pages(mm, pb, fl, zn, lk, pcp, nw, w, cnt, ctl):
    """__drain_all_pages(zone): drain every worker's pageset of the zone.  Pages, or -2."""
    total = 0
    for t in range(nw):
        base = t * P.PCP_WORDS
        if load_relaxed(pcp, base + P.P_COUNT) == 0:
            continue
        if not pcp_lock(pcp, base, ctl):
            return ABORTED
        r = drain_pages_remote(mm, pb, fl, zn, lk, pcp, t, w, cnt, ctl)
        pcp_unlock(pcp, base)
        if r < 0:
            return ABORTED
        total += r
    return total


@helper
def zone_pcp_disable(mm, pb, fl, zn, lk, pcp, nw, w, saved, cnt, ctl):
    """zone_pcp_disable: high 0, batch 1 on every pageset (saved for enable), then drain."""
    for t in range(nw):
        base = t * P.PCP_WORDS
        if not pcp_lock(pcp, base, ctl):
            return ABORTED
        saved[t, SV_HIGH] = pcp[base + P.P_HIGH]
        saved[t, SV_HIGH_MIN] = pcp[base + P.P_HIGH_MIN]
        saved[t, SV_HIGH_MAX] = pcp[base + P.P_HIGH_MAX]
        saved[t, SV_BATCH] = pcp[base + P.P_BATCH]
        pcp[base + P.P_HIGH] = 0
        pcp[base + P.P_HIGH_MIN] = 0
        pcp[base + P.P_HIGH_MAX] = 0
        pcp[base + P.P_BATCH] = 1
        pcp_unlock(pcp, base)
    return drain_all_pages(mm, pb, fl, zn, lk, pcp, nw, w, cnt, ctl)


@helper
def zone_pcp_enable(pcp, nw, saved, ctl):
    """zone_pcp_enable: restore every pageset's high and batch."""
    for t in range(nw):
        base = t * P.PCP_WORDS
        if not pcp_lock(pcp, base, ctl):
            return ABORTED
        pcp[base + P.P_HIGH] = saved[t, SV_HIGH]
        pcp[base + P.P_HIGH_MIN] = saved[t, SV_HIGH_MIN]
        pcp[base + P.P_HIGH_MAX] = saved[t, SV_HIGH_MAX]
        pcp[base + P.P_BATCH] = saved[t, SV_BATCH]
        pcp_unlock(pcp, base)
    return 0


# --- isolation ----------------------------------------------------------------------------
@helper
def has_unmovable_pages(mm, pb, start, end, mode):
    """First unmovable page in [start, end) (one pageblock), or -1.

    Racy by design, as in the kernel: it reads other CPUs' pages without their locks; the
    real guarantee is test_pages_isolated after migration.
    """
    if Z.get_pageblock_migratetype(pb, start) == Z.MIGRATE_CMA:
        return -1 if mode == ISOL_CMA else start
    pfn = start
    while pfn < end:
        f = load_relaxed(mm[pfn], Z.PG_FLAGS)
        if (f & Z.PGF_RESERVED) != 0:
            return pfn
        if load_relaxed(mm[pfn], Z.PG_REFCOUNT) == 0:
            if (f & Z.PGF_BUDDY) != 0:
                o = mm[pfn, Z.PG_PRIVATE]
                if 0 <= o <= Z.MAX_PAGE_ORDER:
                    pfn = (pfn | ((1 << o) - 1)) + 1
                    continue
            pfn += 1
            continue
        if (f & Z.PGF_LRU) != 0:
            pfn += 1
            continue
        return pfn
    return -1


@helper
def undo_isolate_page_range(mm, pb, fl, zn, lk, w, start, end, mt, cnt, ctl):
    """undo_isolate_page_range: relabel every isolated pageblock of [start, end) ``mt``.

    One zone->lock hold per max-order chunk so that a free max-order block never sits on a
    list whose migratetype disagrees with one of its pageblocks while the lock is free.
    """
    s = start & ~(Z.PAGEBLOCK_NR_PAGES - 1)
    chunk = 1 << Z.MAX_PAGE_ORDER
    while s < end:
        ce = min((s | (chunk - 1)) + 1, end)
        if not spin_lock(lk, 0, w, cnt, ctl):
            return ABORTED
        p = s
        while p < ce:
            if Z.get_pageblock_migratetype(pb, p) == Z.MIGRATE_ISOLATE:
                Z.unset_migratetype_isolate_locked(mm, pb, fl, zn, p, mt)
            p += Z.PAGEBLOCK_NR_PAGES
        spin_unlock(lk, 0, w, cnt)
        s = ce
    return 0


@helper
def start_isolate_page_range(mm, pb, fl, zn, lk, w, start, end, mt, mode, cnt, ctl):
    """start_isolate_page_range: isolate every pageblock of [start, end) or none.

    Returns 0, or -(first unmovable pfn) - 100 on failure (the blocks isolated so far are put
    back to ``mt``), or -2 if the run was aborted.
    """
    s = start & ~(Z.PAGEBLOCK_NR_PAGES - 1)
    p = s
    while p < end:
        if not spin_lock(lk, 0, w, cnt, ctl):
            return ABORTED
        bad = -1
        if Z.get_pageblock_migratetype(pb, p) == Z.MIGRATE_ISOLATE:
            bad = p                                  # isolated by someone else: -EBUSY
        else:
            bad = has_unmovable_pages(mm, pb, p, p + Z.PAGEBLOCK_NR_PAGES, mode)
        if bad < 0:
            Z.set_migratetype_isolate_locked(mm, pb, fl, zn, p)
        spin_unlock(lk, 0, w, cnt)
        if bad >= 0:
            if undo_isolate_page_range(mm, pb, fl, zn, lk, w, s, p, mt, cnt, ctl) < 0:
                return ABORTED
            return -bad - 100
        p += Z.PAGEBLOCK_NR_PAGES
    return 0


@helper
def test_pages_isolated_locked(mm, pb, start, end):
    """test_pages_isolated under zone->lock: -1 if every page of [start, end) is a free page of
    an isolated pageblock, else the first pfn that is not."""
    pfn = start
    while pfn < end:
        if Z.get_pageblock_migratetype(pb, pfn) != Z.MIGRATE_ISOLATE:
            return pfn
        if (mm[pfn, Z.PG_FLAGS] & Z.PGF_BUDDY) != 0:
            pfn += 1 << mm[pfn, Z.PG_PRIVATE]
            continue
        return pfn
    return -1


@helper
def take_free_range_locked(mm, pb, fl, zn, start, end):
    """Pull the free (isolated) blocks whose heads lie in [start, end) off the lists.

    Every page of them becomes an allocated page (refcount 1, like split_page); returns the
    pfn just past the last block (outer_end), or -1 if a page was not free.
    """
    pfn = start
    while pfn < end:
        f = mm[pfn, Z.PG_FLAGS]
        if (f & Z.PGF_BUDDY) == 0:
            return -1
        order = mm[pfn, Z.PG_PRIVATE]
        Z.del_page_from_free_list(mm, fl, zn, pfn, order, Z.get_pageblock_migratetype(pb, pfn))
        for p in range(pfn, pfn + (1 << order)):
            mm[p, Z.PG_FLAGS] &= ~(Z.PGF_LRU | Z.PGF_HEAD)
            mm[p, Z.PG_REFCOUNT] = 1
            mm[p, Z.PG_MAPCOUNT] = -1
            mm[p, Z.PG_PRIVATE] = 0
        pfn += 1 << order
    return pfn


# --- migration ----------------------------------------------------------------------------
@helper
def alloc_migration_target(mm, pb, fl2, zn2, lk2, nz, w, cnt, ctl):
    """alloc_migration_target: a movable order-0 page, ZONE_MOVABLE first.  pfn, -1, -2."""
    for i in range(nz):
        z = nz - 1 - i
        pfn = Z.buddy_alloc(mm, pb, fl2[z], zn2[z], lk2[z], w, 0, Z.MIGRATE_MOVABLE, cnt, ctl, -1)
        if pfn != -1:
            return pfn
    return -1


@helper
def migrate_page(mm, pb, fl2, zn2, lk2, nz, held, chk, owner, data, w, pfn, cnt, ctl, co):
    """Migrate one owned page.  1 migrated; 0 not isolatable now (retry); -1 pinned;
    -12 no target page; -2 aborted."""
    s = load_acquire(owner, pfn) - 1
    if s < 0:
        return 0
    if cas(held, s, pfn, BUSY) != pfn:
        return 0                                  # freed or claimed meanwhile
    if mm[pfn, Z.PG_REFCOUNT] != 1:               # pinned: expected refcount mismatch
        store_release(held, s, pfn)
        cnt[w, co + CO_MIG_PINNED] += 1
        return -1
    new = alloc_migration_target(mm, pb, fl2, zn2, lk2, nz, w, cnt, ctl)
    if new < 0:
        store_release(held, s, pfn)
        if new == -1:
            cnt[w, co + CO_MIG_NOMEM] += 1
            return ENOMEM
        return ABORTED
    for i in range(DATA_WORDS):                   # folio_copy
        data[new, i] = data[pfn, i]
    if page_checksum(data, new) != chk[s]:
        cnt[w, co + CO_DATA_CORRUPT] += 1
    owner[new] = s + 1                            # remove_migration_ptes: the rmap moves
    owner[pfn] = 0
    z = zone_of(mm, pfn)
    r = Z.buddy_free(mm, pb, fl2[z], zn2[z], lk2[z], w, pfn, 0, cnt, ctl)
    store_release(held, s, new)
    if r < 0:
        return ABORTED
    cnt[w, co + CO_MIGRATED] += 1
    return 1


@helper
def migrate_range(mm, pb, fl2, zn2, lk2, nz, held, chk, owner, data, w, start, end, cnt, ctl,
                  co):
    """One pass of scan_movable_pages + do_migrate_range over [start, end).

    Returns the number of in-use pages still in the range (0 = empty), or -2 if aborted.
    """
    left = 0
    pfn = start
    while pfn < end:
        f = load_relaxed(mm[pfn], Z.PG_FLAGS)
        if (f & Z.PGF_BUDDY) != 0:
            o = mm[pfn, Z.PG_PRIVATE]
            if 0 <= o <= Z.MAX_PAGE_ORDER:
                pfn = (pfn | ((1 << o) - 1)) + 1
                continue
        if load_relaxed(mm[pfn], Z.PG_REFCOUNT) == 0:
            pfn += 1
            continue
        if (f & Z.PGF_LRU) != 0:
            r = migrate_page(mm, pb, fl2, zn2, lk2, nz, held, chk, owner, data, w, pfn, cnt,
                             ctl, co)
            if r == ABORTED:
                return ABORTED
            if r != 1:
                left += 1
                if r == 0:
                    cnt[w, co + CO_MIG_BUSY] += 1
        else:
            left += 1
        pfn += 1
    return left

"""The zone substrate: memmap of ``struct page``, pageblock flags, ``free_area`` and the buddy allocator.

Every page-allocator family (pagealloc, boot init, hotplug, CMA) builds on these
arrays; they are plain int64 numpy arrays (shared memory in a run):

``mm``  (nframes, 8) the memmap: one 64-byte ``struct page`` per frame, indexed by pfn
        (``page = vmemmap + pfn``).  Word layout ``PG_*`` below; ``lru`` links are pfns
        (-1 = none), so every free list is threaded through the memmap as in the kernel.
``pb``  (nframes >> pageblock_order,) pageblock flags: migratetype in bits 0-2 (MIGRATE_ISOLATE
        is a migratetype value, as in 6.8-6.13), PB_migrate_skip in bit 3.
``fl``  (NR_PAGE_ORDERS * MIGRATE_TYPES * 2,) ``free_area[order].free_list[mt]`` heads:
        [first pfn, last pfn] at ``fl_index(order, mt)``, -1 when empty.
``zn``  (ZONE_WORDS,) the zone: nr_free per order (words 0..10), span, counters, watermarks.

The zone lock (``zone->lock``) is lock 0 of a :mod:`mmbench.locks` lockset.  Functions
named after kernel functions that run under ``zone->lock`` in the kernel (``rmqueue_smallest``,
``free_one_page_locked``, ...) expect the caller to hold it; ``buddy_alloc`` / ``buddy_free``
take it themselves.

Invariants (``zone_check``): each free block is on exactly one list, aligned to its order,
PG_buddy set with ``private`` = order, its pageblocks' migratetype = the list's; nr_free and
NR_FREE_PAGES agree with the lists; links are consistent; no two free buddies of one order are
left unmerged unless the migratetype rule forbids it (orders >= pageblock_order).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit
from ..jit import helper, hot, uidx

from ..atomics import load_relaxed, store_relaxed
from ..locks import spin_lock, spin_unlock

# --- geometry ---------------------------------------------------------------
NR_PAGE_ORDERS = 11
MAX_PAGE_ORDER = NR_PAGE_ORDERS - 1
PAGEBLOCK_ORDER = 9
PAGEBLOCK_NR_PAGES = 1 << PAGEBLOCK_ORDER
SECTION_SIZE_BITS = 27
PAGE_SHIFT = 12
PFN_SECTION_SHIFT = SECTION_SIZE_BITS - PAGE_SHIFT      # 15: 32768 pages per section
PAGE_ALLOC_COSTLY_ORDER = 3

# --- migratetypes (the kernel's numbering) ----------------------------------
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = 3
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
PB_MIGRATETYPE_MASK = 0x7
PB_MIGRATE_SKIP = 1 << 3

# fallbacks[] of mm/page_alloc.c: the other pcp types, in order of preference.
FALLBACKS = np.array([[MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE],     # UNMOVABLE
                      [MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE],   # MOVABLE
                      [MIGRATE_UNMOVABLE, MIGRATE_MOVABLE]],      # RECLAIMABLE
                     dtype=np.int64)

# --- struct page: 8 int64 words ----------------------------------------------
PG_FLAGS = 0          # page->flags: flag bits low, zone/node/section fields high
PG_REFCOUNT = 1       # page->_refcount
PG_MAPCOUNT = 2       # page->_mapcount (-1 = unmapped)
PG_PRIVATE = 3        # page->private: the buddy order of a free block head
PG_LRU_NEXT = 4       # page->lru.next as a pfn (-1 = end of list)
PG_LRU_PREV = 5       # page->lru.prev as a pfn (-1 = list head)
PG_MAPPING = 6        # page->mapping (unused by the allocator)
PG_INDEX = 7          # page->index (pcp pages: the migratetype they were filed under)
STRUCT_PAGE_WORDS = 8

# page->flags bits (kernel bit numbers where they exist)
PGF_LOCKED = 1 << 0
PGF_LRU = 1 << 4          # on an LRU list: counted as movable by the steal heuristic
PGF_HEAD = 1 << 6
PGF_RESERVED = 1 << 10    # memblock-reserved / not handed to the buddy allocator
PGF_BUDDY = 1 << 20       # PageBuddy (a page_type in the kernel; a flag bit here)
PGF_FLAGS_MASK = (1 << 32) - 1
ZONES_PGSHIFT = 32
ZONES_MASK = 0x7
NODES_PGSHIFT = 35
NODES_MASK = 0x3F
SECTIONS_PGSHIFT = 41
SECTIONS_MASK = (1 << 22) - 1

# --- struct zone words ---------------------------------------------------------
Z_NR_FREE = 0             # 0..10: free_area[order].nr_free
Z_START_PFN = 16          # zone_start_pfn
Z_SPANNED = 17            # spanned_pages
Z_PRESENT = 18            # present_pages (struct pages initialised)
Z_MANAGED = 19            # managed_pages (handed to the buddy allocator)
Z_FREE_PAGES = 20         # vmstat NR_FREE_PAGES (buddy lists, isolate excluded)
Z_FREE_CMA = 21           # vmstat NR_FREE_CMA_PAGES
Z_WMARK_MIN = 22
Z_WMARK_LOW = 23
Z_WMARK_HIGH = 24
Z_ID = 25                 # zone index (ZONE_NORMAL = 2 ...)
Z_NODE = 26
Z_FLAGS = 32              # zone->flags, its own cache line: read without the lock
ZONE_WORDS = 40
ZONE_BELOW_HIGH = 1 << 0
ZONE_RECLAIM_ACTIVE = 1 << 1
ZONE_NORMAL = 2


def fl_words() -> int:
    return NR_PAGE_ORDERS * MIGRATE_TYPES * 2


def pageblocks(nframes: int) -> int:
    return (nframes + PAGEBLOCK_NR_PAGES - 1) >> PAGEBLOCK_ORDER


@njit(cache=True, nogil=True, inline="always")
def fl_index(order, mt):
    return (order * MIGRATE_TYPES + mt) * 2


# --- lists threaded through the memmap (also used by the pcp lists) --------------
@njit(cache=True, nogil=True, inline="always")
def list_add(mm, heads, h, pfn, tail):
    """Link ``pfn`` at the head (or tail) of the list whose [first, last] is heads[h:h+2]."""
    if tail:
        last = heads[uidx(h + 1)]
        mm[uidx(pfn), PG_LRU_NEXT] = -1
        mm[uidx(pfn), PG_LRU_PREV] = last
        if last == -1:
            heads[uidx(h)] = pfn
        else:
            mm[uidx(last), PG_LRU_NEXT] = pfn
        heads[uidx(h + 1)] = pfn
    else:
        first = heads[uidx(h)]
        mm[uidx(pfn), PG_LRU_PREV] = -1
        mm[uidx(pfn), PG_LRU_NEXT] = first
        if first == -1:
            heads[uidx(h + 1)] = pfn
        else:
            mm[uidx(first), PG_LRU_PREV] = pfn
        heads[uidx(h)] = pfn


@njit(cache=True, nogil=True, inline="always")
def list_del(mm, heads, h, pfn):
    nx = mm[uidx(pfn), PG_LRU_NEXT]
    pv = mm[uidx(pfn), PG_LRU_PREV]
    if pv == -1:
        heads[uidx(h)] = nx
    else:
        mm[uidx(pv), PG_LRU_NEXT] = nx
    if nx == -1:
        heads[uidx(h + 1)] = pv
    else:
        mm[uidx(nx), PG_LRU_PREV] = pv
    mm[uidx(pfn), PG_LRU_NEXT] = -1
    mm[uidx(pfn), PG_LRU_PREV] = -1


# --- pageblock flags -------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def get_pageblock_migratetype(pb, pfn):
    return pb[uidx(pfn >> PAGEBLOCK_ORDER)] & PB_MIGRATETYPE_MASK


@njit(cache=True, nogil=True, inline="always")
def set_pageblock_migratetype(pb, pfn, mt):
    i = pfn >> PAGEBLOCK_ORDER
    pb[uidx(i)] = (pb[uidx(i)] & ~PB_MIGRATETYPE_MASK) | mt


@helper
def change_pageblock_range(pb, pfn, order, mt):
    n = 1
    if order > PAGEBLOCK_ORDER:
        n = 1 << (order - PAGEBLOCK_ORDER)
    for i in range(n):
        set_pageblock_migratetype(pb, pfn + i * PAGEBLOCK_NR_PAGES, mt)


@njit(cache=True, nogil=True, inline="always")
def migratetype_is_mergeable(mt):
    return mt < MIGRATE_PCPTYPES


@njit(cache=True, nogil=True, inline="always")
def page_zone_id(mm, pfn):
    return (mm[uidx(pfn), PG_FLAGS] >> ZONES_PGSHIFT) & ZONES_MASK


# --- free_area bookkeeping ----------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _account_freepages(zn, nr, mt):
    if mt == MIGRATE_ISOLATE:
        return
    zn[Z_FREE_PAGES] += nr
    if mt == MIGRATE_CMA:
        zn[Z_FREE_CMA] += nr


@hot
def add_to_free_list(mm, fl, zn, pfn, order, mt, tail):
    """Mark ``pfn`` a free block of ``order`` (PG_buddy, private) and link it into free_list[mt]."""
    mm[uidx(pfn), PG_FLAGS] |= PGF_BUDDY
    mm[uidx(pfn), PG_PRIVATE] = order
    list_add(mm, fl, fl_index(order, mt), pfn, tail)
    zn[uidx(Z_NR_FREE + order)] += 1
    _account_freepages(zn, 1 << order, mt)


@hot
def del_page_from_free_list(mm, fl, zn, pfn, order, mt):
    list_del(mm, fl, fl_index(order, mt), pfn)
    mm[uidx(pfn), PG_FLAGS] &= ~PGF_BUDDY
    mm[uidx(pfn), PG_PRIVATE] = 0
    zn[uidx(Z_NR_FREE + order)] -= 1
    _account_freepages(zn, -(1 << order), mt)


@helper
def move_to_free_list(mm, fl, zn, pfn, order, old_mt, new_mt):
    """list_move_tail to free_list[new_mt] (the kernel's move_to_free_list)."""
    list_del(mm, fl, fl_index(order, old_mt), pfn)
    list_add(mm, fl, fl_index(order, new_mt), pfn, True)
    _account_freepages(zn, -(1 << order), old_mt)
    _account_freepages(zn, 1 << order, new_mt)


@njit(cache=True, nogil=True, inline="always")
def page_is_buddy(mm, zn, pfn, order):
    """The block at ``pfn`` is a free buddy of exactly ``order`` in this zone."""
    zs = zn[Z_START_PFN]
    if pfn < zs or pfn + (1 << order) > zs + zn[Z_SPANNED]:
        return False
    f = mm[uidx(pfn), PG_FLAGS]
    return ((f & PGF_BUDDY) != 0 and mm[uidx(pfn), PG_PRIVATE] == order
            and ((f >> ZONES_PGSHIFT) & ZONES_MASK) == zn[Z_ID])


@hot
def expand(mm, fl, zn, pfn, low, high, mt):
    """Split a block of order ``high`` down to ``low``: upper halves go to the list heads."""
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        add_to_free_list(mm, fl, zn, pfn + size, high, mt, False)


@hot
def rmqueue_smallest(mm, fl, zn, order, mt):
    """__rmqueue_smallest: the first block of the smallest order >= ``order`` on free_list[mt]."""
    for o in range(order, NR_PAGE_ORDERS):
        pfn = fl[uidx(fl_index(o, mt))]
        if pfn == -1:
            continue
        del_page_from_free_list(mm, fl, zn, pfn, o, mt)
        expand(mm, fl, zn, pfn, order, o, mt)
        return pfn
    return -1


@njit(cache=True, nogil=True, inline="always")
def can_steal_fallback(order, start_mt):
    if order >= PAGEBLOCK_ORDER:
        return True
    return (order >= PAGEBLOCK_ORDER // 2 or start_mt == MIGRATE_RECLAIMABLE
            or start_mt == MIGRATE_UNMOVABLE)


@helper
def find_suitable_fallback(fl, order, start_mt):
    """First fallback migratetype with a block of ``order`` (-1 when none)."""
    for i in range(2):
        fmt = FALLBACKS[uidx(start_mt), i]
        if fl[uidx(fl_index(order, fmt))] != -1:
            return fmt
    return -1


@helper
def move_freepages(mm, pb, fl, zn, start, end, old_mt, new_mt):
    """Move the free blocks whose head lies in [start, end] to free_list[new_mt]; pages moved."""
    moved = 0
    pfn = start
    while pfn <= end:
        if (mm[uidx(pfn), PG_FLAGS] & PGF_BUDDY) == 0:
            pfn += 1
            continue
        order = mm[uidx(pfn), PG_PRIVATE]
        move_to_free_list(mm, fl, zn, pfn, order, old_mt, new_mt)
        pfn += 1 << order
        moved += 1 << order
    return moved


@helper
def _steal_suitable_fallback(mm, pb, fl, zn, pfn, current_order, order, start_mt, whole_block,
                             block_mt):
    """steal_suitable_fallback / try_to_claim_block (6.10 rules, ALLOC_NOFRAGMENT not modelled)."""
    if current_order >= PAGEBLOCK_ORDER:
        # Take ownership of the whole (multi-)pageblock.
        del_page_from_free_list(mm, fl, zn, pfn, current_order, block_mt)
        change_pageblock_range(pb, pfn, current_order, start_mt)
        expand(mm, fl, zn, pfn, order, current_order, start_mt)
        return pfn
    if whole_block:
        start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
        end = start + PAGEBLOCK_NR_PAGES - 1
        zs = zn[Z_START_PFN]
        if start >= zs and end < zs + zn[Z_SPANNED]:   # prep_move_freepages_block
            free_pages = 0
            movable_pages = 0
            p = start
            while p <= end:
                f = mm[uidx(p), PG_FLAGS]
                if (f & PGF_BUDDY) != 0:
                    free_pages += 1 << mm[uidx(p), PG_PRIVATE]
                    p += 1 << mm[uidx(p), PG_PRIVATE]
                    continue
                if (f & PGF_LRU) != 0:
                    movable_pages += 1
                p += 1
            if start_mt == MIGRATE_MOVABLE:
                alike = movable_pages
            elif block_mt == MIGRATE_MOVABLE:
                alike = PAGEBLOCK_NR_PAGES - (free_pages + movable_pages)
            else:
                alike = 0
            if free_pages + alike >= (1 << (PAGEBLOCK_ORDER - 1)):
                move_freepages(mm, pb, fl, zn, start, end, block_mt, start_mt)
                set_pageblock_migratetype(pb, start, start_mt)
                return rmqueue_smallest(mm, fl, zn, order, start_mt)
    # single page: split off what was asked for, the rest stays with the block's type
    del_page_from_free_list(mm, fl, zn, pfn, current_order, block_mt)
    expand(mm, fl, zn, pfn, order, current_order, block_mt)
    return pfn


@helper
def rmqueue_fallback(mm, pb, fl, zn, order, start_mt):
    """__rmqueue_fallback: steal from another migratetype, largest order first."""
    current = -1
    fmt = -1
    can_steal = False
    for co in range(MAX_PAGE_ORDER, order - 1, -1):
        fmt = find_suitable_fallback(fl, co, start_mt)
        if fmt == -1:
            continue
        can_steal = can_steal_fallback(co, start_mt)
        current = co
        if not can_steal and start_mt == MIGRATE_MOVABLE and co > order:
            # find_smallest: splitting the smallest block fragments least.
            for co2 in range(order, NR_PAGE_ORDERS):
                fmt = find_suitable_fallback(fl, co2, start_mt)
                if fmt != -1:
                    can_steal = can_steal_fallback(co2, start_mt)
                    current = co2
                    break
        break
    if current == -1:
        return -1
    pfn = fl[uidx(fl_index(current, fmt))]
    return _steal_suitable_fallback(mm, pb, fl, zn, pfn, current, order, start_mt, can_steal, fmt)


@hot
def rmqueue_locked(mm, pb, fl, zn, order, mt, cnt, w, c_stolen):
    """__rmqueue under zone->lock: own list, CMA for movable requests, then fallback stealing.

    Counts pages that came through fallback into cnt[w, c_stolen] (c_stolen < 0: not counted).
    """
    if mt == MIGRATE_MOVABLE and zn[Z_FREE_CMA] > zn[Z_FREE_PAGES] // 2:
        pfn = rmqueue_smallest(mm, fl, zn, order, MIGRATE_CMA)
        if pfn >= 0:
            return pfn
    pfn = rmqueue_smallest(mm, fl, zn, order, mt)
    if pfn >= 0:
        return pfn
    if mt == MIGRATE_MOVABLE:
        pfn = rmqueue_smallest(mm, fl, zn, order, MIGRATE_CMA)
        if pfn >= 0:
            return pfn
    if mt >= MIGRATE_PCPTYPES:
        return -1
    pfn = rmqueue_fallback(mm, pb, fl, zn, order, mt)
    if pfn >= 0 and c_stolen >= 0:
        cnt[uidx(w), c_stolen] += 1 << order
    return pfn


@hot
def prep_new_page(mm, pfn, order, mt):
    """The page leaves the allocator: refcount 1, unmapped, LRU-able if movable."""
    f = mm[uidx(pfn), PG_FLAGS] & ~(PGF_LRU | PGF_HEAD)
    if mt == MIGRATE_MOVABLE:
        f |= PGF_LRU
    if order > 0:
        f |= PGF_HEAD
    mm[uidx(pfn), PG_FLAGS] = f
    mm[uidx(pfn), PG_REFCOUNT] = 1
    mm[uidx(pfn), PG_MAPCOUNT] = -1
    mm[uidx(pfn), PG_PRIVATE] = 0


@hot
def free_pages_prepare(mm, pfn):
    """The page returns to the allocator: refcount 0, flags cleared of LRU/head."""
    mm[uidx(pfn), PG_FLAGS] &= ~(PGF_LRU | PGF_HEAD)
    mm[uidx(pfn), PG_REFCOUNT] = 0
    mm[uidx(pfn), PG_MAPCOUNT] = -1


@hot
def free_one_page_locked(mm, pb, fl, zn, pfn, order, mt, to_tail):
    """__free_one_page: merge with free buddies (pfn ^ 1 << order) and insert the result.

    At orders >= pageblock_order, blocks of incompatible migratetypes (CMA, ISOLATE) do not
    merge; a mergeable buddy of another type is relabelled (6.10).  The block goes to the list
    tail when its buddy at the next order is free (merge likely soon), else to the head.
    """
    while order < MAX_PAGE_ORDER:
        buddy = pfn ^ (1 << order)
        if not page_is_buddy(mm, zn, buddy, order):
            break
        bmt = get_pageblock_migratetype(pb, buddy)
        if order >= PAGEBLOCK_ORDER:
            if mt != bmt and (not migratetype_is_mergeable(mt) or
                              not migratetype_is_mergeable(bmt)):
                break
        del_page_from_free_list(mm, fl, zn, buddy, order, bmt)
        if bmt != mt:
            set_pageblock_migratetype(pb, buddy, mt)
        pfn &= buddy
        order += 1
    if not to_tail and order < MAX_PAGE_ORDER - 1:
        buddy = pfn ^ (1 << order)
        higher = pfn & buddy
        to_tail = page_is_buddy(mm, zn, higher ^ (1 << (order + 1)), order + 1)
    add_to_free_list(mm, fl, zn, pfn, order, mt, to_tail)


@hot
def buddy_alloc(mm, pb, fl, zn, lk, w, order, mt, cnt, ctl, c_stolen):
    """rmqueue_buddy: one zone->lock acquisition per block.  -1 no memory, -2 run aborted."""
    if not spin_lock(lk, 0, w, cnt, ctl):
        return -2
    pfn = rmqueue_locked(mm, pb, fl, zn, order, mt, cnt, w, c_stolen)
    spin_unlock(lk, 0, w, cnt)
    if pfn >= 0:
        prep_new_page(mm, pfn, order, mt)
    return pfn


@hot
def buddy_free(mm, pb, fl, zn, lk, w, pfn, order, cnt, ctl):
    """free_one_page: __free_one_page under zone->lock.  0, or -2 if the run was aborted."""
    if not spin_lock(lk, 0, w, cnt, ctl):
        return -2
    free_pages_prepare(mm, pfn)
    mt = get_pageblock_migratetype(pb, pfn)
    free_one_page_locked(mm, pb, fl, zn, pfn, order, mt, False)
    spin_unlock(lk, 0, w, cnt)
    return 0


# --- memmap init and handing ranges to the buddy allocator ---------------------------
@helper
def init_single_pages(mm, start, end, zone_id, node):
    """__init_single_page for [start, end): flags with zone/node/section, refcount 1, reserved."""
    for pfn in range(start, end):
        mm[uidx(pfn), PG_FLAGS] = (PGF_RESERVED | (zone_id << ZONES_PGSHIFT) | (node << NODES_PGSHIFT)
                             | ((pfn >> PFN_SECTION_SHIFT) << SECTIONS_PGSHIFT))
        mm[uidx(pfn), PG_REFCOUNT] = 1
        mm[uidx(pfn), PG_MAPCOUNT] = -1
        mm[uidx(pfn), PG_PRIVATE] = 0
        mm[uidx(pfn), PG_LRU_NEXT] = -1
        mm[uidx(pfn), PG_LRU_PREV] = -1
        mm[uidx(pfn), PG_MAPPING] = 0
        mm[uidx(pfn), PG_INDEX] = 0


@helper
def free_pages_core_locked(mm, pb, fl, zn, pfn, order):
    """__free_pages_core: clear reserved, refcount 0 on every page, free the block to the tail."""
    for p in range(pfn, pfn + (1 << order)):
        mm[uidx(p), PG_FLAGS] &= ~PGF_RESERVED
        mm[uidx(p), PG_REFCOUNT] = 0
    zn[Z_MANAGED] += 1 << order
    free_one_page_locked(mm, pb, fl, zn, pfn, order, get_pageblock_migratetype(pb, pfn), True)


@helper
def free_range_to_buddy_locked(mm, pb, fl, zn, start, end):
    """Hand [start, end) to the buddy allocator in the largest aligned blocks (max order 10)."""
    pfn = start
    while pfn < end:
        order = MAX_PAGE_ORDER
        while order > 0 and ((pfn & ((1 << order) - 1)) != 0 or pfn + (1 << order) > end):
            order -= 1
        free_pages_core_locked(mm, pb, fl, zn, pfn, order)
        pfn += 1 << order


@helper
def set_pageblock_range(pb, start, end, mt):
    """Set the migratetype of every pageblock that [start, end) touches (memmap init: MOVABLE)."""
    for i in range(start >> PAGEBLOCK_ORDER, ((end - 1) >> PAGEBLOCK_ORDER) + 1):
        pb[uidx(i)] = (pb[uidx(i)] & ~PB_MIGRATETYPE_MASK) | mt


@helper
def free_block_containing(mm, zn, pfn):
    """Head pfn of the free buddy block that contains ``pfn``, or -1 (the kernel's is_free_buddy_page)."""
    for order in range(NR_PAGE_ORDERS):
        head = pfn & ~((1 << order) - 1)
        if head < zn[Z_START_PFN]:
            break
        if (mm[uidx(head), PG_FLAGS] & PGF_BUDDY) != 0 and mm[uidx(head), PG_PRIVATE] >= order:
            return head
    return -1


@helper
def split_free_block_at_pageblocks(mm, pb, fl, zn, head):
    """Split a free block larger than a pageblock into pageblock-order blocks (split_large_buddy)."""
    order = mm[uidx(head), PG_PRIVATE]
    if order <= PAGEBLOCK_ORDER:
        return
    mt = get_pageblock_migratetype(pb, head)
    del_page_from_free_list(mm, fl, zn, head, order, mt)
    for i in range(1 << (order - PAGEBLOCK_ORDER)):
        p = head + i * PAGEBLOCK_NR_PAGES
        add_to_free_list(mm, fl, zn, p, PAGEBLOCK_ORDER, get_pageblock_migratetype(pb, p), True)


@helper
def set_migratetype_isolate_locked(mm, pb, fl, zn, pfn):
    """Isolate the pageblock of ``pfn``: relabel MIGRATE_ISOLATE and move its free pages there.

    Returns the previous migratetype (to restore with unset_migratetype_isolate_locked).
    """
    start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
    head = free_block_containing(mm, zn, start)
    if head >= 0 and head != start and mm[uidx(head), PG_PRIVATE] > PAGEBLOCK_ORDER:
        split_free_block_at_pageblocks(mm, pb, fl, zn, head)
    elif head == start and mm[uidx(head), PG_PRIVATE] > PAGEBLOCK_ORDER:
        split_free_block_at_pageblocks(mm, pb, fl, zn, head)
    old = get_pageblock_migratetype(pb, start)
    if old == MIGRATE_ISOLATE:
        return old
    move_freepages(mm, pb, fl, zn, start, start + PAGEBLOCK_NR_PAGES - 1, old, MIGRATE_ISOLATE)
    set_pageblock_migratetype(pb, start, MIGRATE_ISOLATE)
    return old


@helper
def unset_migratetype_isolate_locked(mm, pb, fl, zn, pfn, mt):
    """Undo isolation: relabel ``mt``, move the free pages back and let them merge again."""
    start = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
    move_freepages(mm, pb, fl, zn, start, start + PAGEBLOCK_NR_PAGES - 1, MIGRATE_ISOLATE, mt)
    set_pageblock_migratetype(pb, start, mt)
    # Re-free a whole free pageblock so it merges with a free neighbour (6.10 does the same).
    if (mm[uidx(start), PG_FLAGS] & PGF_BUDDY) != 0 and mm[uidx(start), PG_PRIVATE] == PAGEBLOCK_ORDER:
        del_page_from_free_list(mm, fl, zn, start, PAGEBLOCK_ORDER, mt)
        free_one_page_locked(mm, pb, fl, zn, start, PAGEBLOCK_ORDER, mt, False)


# --- Python side: arrays, init, check ----------------------------------------------------
def zone_arrays(nframes: int) -> dict:
    """name -> (shape, dtype) of the zone's arrays (the lock is the caller's lockset)."""
    return {
        "zone_mm": ((nframes, STRUCT_PAGE_WORDS), np.int64),
        "zone_pb": ((max(pageblocks(nframes), 1),), np.int64),
        "zone_fl": ((fl_words(),), np.int64),
        "zone_zn": ((ZONE_WORDS,), np.int64),
    }


def watermarks(managed: int) -> tuple[int, int, int]:
    """min/low/high watermarks in pages (__setup_per_zone_wmarks, scale factor 10, one zone)."""
    min_free_kbytes = int(math.sqrt(managed * 4 * 16))
    min_free_kbytes = max(128, min(min_free_kbytes, 262144))
    wmin = min_free_kbytes // 4
    tmp = max(wmin // 4, managed * 10 // 10000)
    return wmin, wmin + tmp, wmin + 2 * tmp


def zone_reset(mm, pb, fl, zn, start_pfn: int, spanned: int, zone_id: int = ZONE_NORMAL,
               node: int = 0) -> None:
    """An empty zone spanning [start_pfn, start_pfn + spanned): no pages present or free."""
    if spanned <= 0 or start_pfn < 0 or start_pfn + spanned > mm.shape[0]:
        raise ValueError(f"zone span [{start_pfn}, {start_pfn + spanned}) outside the memmap "
                         f"of {mm.shape[0]} frames")
    mm[:] = 0
    mm[:, PG_LRU_NEXT] = -1
    mm[:, PG_LRU_PREV] = -1
    pb[:] = MIGRATE_UNMOVABLE
    fl[:] = -1
    zn[:] = 0
    zn[Z_START_PFN] = start_pfn
    zn[Z_SPANNED] = spanned
    zn[Z_ID] = zone_id
    zn[Z_NODE] = node


def zone_init_range(mm, pb, zn, start: int, end: int, mt: int = MIGRATE_MOVABLE) -> None:
    """memmap_init_range: initialise the struct pages of [start, end) (present, reserved)."""
    init_single_pages(mm, start, end, int(zn[Z_ID]), int(zn[Z_NODE]))
    set_pageblock_range(pb, start, end, mt)
    zn[Z_PRESENT] += end - start


def zone_set_watermarks(zn) -> None:
    wmin, low, high = watermarks(int(zn[Z_MANAGED]))
    zn[Z_WMARK_MIN], zn[Z_WMARK_LOW], zn[Z_WMARK_HIGH] = wmin, low, high


def zone_build(mm, pb, fl, zn, start_pfn: int, spanned: int, holes=()) -> None:
    """A zone as after boot: every present page initialised and free (MOVABLE pageblocks).

    ``holes`` is a sequence of (start, end) pfn ranges left absent (no struct page init).
    """
    zone_reset(mm, pb, fl, zn, start_pfn, spanned)
    ranges = []
    cur = start_pfn
    for hs, he in sorted(holes):
        if hs > cur:
            ranges.append((cur, min(hs, start_pfn + spanned)))
        cur = max(cur, he)
    if cur < start_pfn + spanned:
        ranges.append((cur, start_pfn + spanned))
    for s, e in ranges:
        zone_init_range(mm, pb, zn, s, e)
    for s, e in ranges:
        free_range_to_buddy_locked(mm, pb, fl, zn, s, e)
    zone_set_watermarks(zn)


@helper
def _age_free(mm, pb, fl, zn, resident, order):
    """Hand every non-resident frame to the buddy allocator one page at a time, in the
    given (shuffled) order, so that holes merge as far as their neighbours allow; resident
    frames stay allocated (refcount 1, movable, LRU), as pages a running system holds."""
    n_res = 0
    for i in range(order.shape[0]):
        pfn = order[i]
        if resident[pfn]:
            mm[uidx(pfn), PG_FLAGS] &= ~PGF_RESERVED
            prep_new_page(mm, pfn, 0, MIGRATE_MOVABLE)
            n_res += 1
        else:
            free_pages_core_locked(mm, pb, fl, zn, pfn, 0)
    zn[Z_MANAGED] += n_res


def zone_build_aged(mm, pb, fl, zn, nframes: int, aged_blocks: float, rng) -> np.ndarray:
    """A zone as after uptime: a share ``aged_blocks`` of the pageblocks (chosen at random)
    has a random half of its frames resident, held for the whole run; everything else was
    freed page by page in random order and merged.  Order-0 requests then find order-0
    holes (no split), as in a zone that has been in use; the untouched pageblocks still
    give whole 2 MiB and 4 MiB blocks.  Returns the resident mask (int8 per frame)."""
    zone_reset(mm, pb, fl, zn, 0, nframes)
    zone_init_range(mm, pb, zn, 0, nframes)
    nblocks = nframes >> PAGEBLOCK_ORDER
    used = rng.random(nblocks) < aged_blocks
    resident = np.zeros(nframes, np.int8)
    per = 1 << PAGEBLOCK_ORDER
    for b in np.flatnonzero(used):
        resident[b * per:(b + 1) * per] = rng.random(per) < 0.5
    _age_free(mm, pb, fl, zn, resident, rng.permutation(nframes).astype(np.int64))
    zone_set_watermarks(zn)
    return resident


# error codes of _zone_check_kernel
E_LINK, E_ALIGN, E_NOT_BUDDY, E_ORDER, E_MT, E_NR_FREE, E_UNMERGED, E_DUP, E_FREE_PAGES, \
    E_SPAN, E_CYCLE = range(1, 12)
_ERR_TEXT = {
    E_LINK: "free_list[{1}][mt {2}]: broken prev/next link at pfn {0}",
    E_ALIGN: "free block at pfn {0} not aligned to its order {1}",
    E_NOT_BUDDY: "pfn {0} on free_list[{1}] without PG_buddy",
    E_ORDER: "pfn {0} on free_list[{1}] has private (order) {2}",
    E_MT: "pfn {0} on free_list[{1}][mt {2}] but its pageblock is mt {3}",
    E_NR_FREE: "nr_free[{0}] = {1} but the lists hold {2}",
    E_UNMERGED: "free buddies {0} and {1} of order {2} left unmerged",
    E_DUP: "frame {0} is in two places",
    E_FREE_PAGES: "NR_FREE_PAGES = {0} but the lists hold {1}",
    E_SPAN: "free block at pfn {0} order {1} outside the zone span",
    E_CYCLE: "free_list[{0}][mt {1}] longer than the zone (cycle)",
}


@helper
def _err(errs, n, code, a, b, c, d):
    if n < errs.shape[0]:
        errs[n, 0] = code
        errs[n, 1] = a
        errs[n, 2] = b
        errs[n, 3] = c
        errs[n, 4] = d
    return n + 1


@helper
def _zone_check_kernel(mm, pb, fl, zn, mark, errs):
    """Walk every free list; mark each free frame in ``mark`` (+1).  Returns the error count."""
    n = 0
    zs = zn[Z_START_PFN]
    ze = zs + zn[Z_SPANNED]
    free_pages = 0
    for order in range(NR_PAGE_ORDERS):
        total = 0
        for mt in range(MIGRATE_TYPES):
            h = fl_index(order, mt)
            pfn = fl[uidx(h)]
            prev = -1
            steps = 0
            while pfn != -1:
                steps += 1
                if steps > zn[Z_SPANNED] + 1:
                    n = _err(errs, n, E_CYCLE, order, mt, 0, 0)
                    break
                if pfn < zs or pfn + (1 << order) > ze:
                    n = _err(errs, n, E_SPAN, pfn, order, 0, 0)
                    break
                if mm[uidx(pfn), PG_LRU_PREV] != prev:
                    n = _err(errs, n, E_LINK, pfn, order, mt, 0)
                if (pfn & ((1 << order) - 1)) != 0:
                    n = _err(errs, n, E_ALIGN, pfn, order, 0, 0)
                if (mm[uidx(pfn), PG_FLAGS] & PGF_BUDDY) == 0:
                    n = _err(errs, n, E_NOT_BUDDY, pfn, order, 0, 0)
                if mm[uidx(pfn), PG_PRIVATE] != order:
                    n = _err(errs, n, E_ORDER, pfn, order, mm[uidx(pfn), PG_PRIVATE], 0)
                nb = 1
                if order > PAGEBLOCK_ORDER:
                    nb = 1 << (order - PAGEBLOCK_ORDER)
                for i in range(nb):
                    bm = get_pageblock_migratetype(pb, pfn + i * PAGEBLOCK_NR_PAGES)
                    if bm != mt:
                        n = _err(errs, n, E_MT, pfn, order, mt, bm)
                        break
                for p in range(pfn, pfn + (1 << order)):
                    mark[p] += 1
                    if mark[p] > 1:
                        n = _err(errs, n, E_DUP, p, 0, 0, 0)
                        break
                # unmerged buddies: a free buddy of the same order that the rule lets merge
                if order < MAX_PAGE_ORDER:
                    buddy = pfn ^ (1 << order)
                    if pfn < buddy and page_is_buddy(mm, zn, buddy, order):
                        bmt = get_pageblock_migratetype(pb, buddy)
                        if order < PAGEBLOCK_ORDER or mt == bmt or (
                                migratetype_is_mergeable(mt) and migratetype_is_mergeable(bmt)):
                            n = _err(errs, n, E_UNMERGED, pfn, buddy, order, 0)
                if mt != MIGRATE_ISOLATE:
                    free_pages += 1 << order
                total += 1
                prev = pfn
                pfn = mm[uidx(pfn), PG_LRU_NEXT]
            if fl[uidx(h + 1)] != prev:
                n = _err(errs, n, E_LINK, prev, order, mt, 1)
        if total != zn[uidx(Z_NR_FREE + order)]:
            n = _err(errs, n, E_NR_FREE, order, zn[uidx(Z_NR_FREE + order)], total, 0)
    if free_pages != zn[Z_FREE_PAGES]:
        n = _err(errs, n, E_FREE_PAGES, zn[Z_FREE_PAGES], free_pages, 0, 0)
    return n


def format_errors(errs, n, text=_ERR_TEXT) -> list[str]:
    out = []
    for i in range(min(n, errs.shape[0])):
        code, a, b, c, d = (int(x) for x in errs[i])
        out.append(text[code].format(a, b, c, d))
    if n > errs.shape[0]:
        out.append(f"... and {n - errs.shape[0]} more errors")
    return out


def zone_check(mm, pb, fl, zn, mark=None) -> list[str]:
    """Buddy invariants of the zone; free frames are counted into ``mark`` (int32, per pfn)."""
    if mark is None:
        mark = np.zeros(mm.shape[0], np.int32)
    errs = np.zeros((32, 5), np.int64)
    n = _zone_check_kernel(mm, pb, fl, zn, mark, errs)
    return format_errors(errs, n)


def free_counts(zn) -> list[int]:
    """nr_free per order."""
    return [int(zn[Z_NR_FREE + o]) for o in range(NR_PAGE_ORDERS)]


def free_lists(mm, fl) -> dict:
    """(order, mt) -> list of pfns, head first (for tests and debugging)."""
    out = {}
    for order in range(NR_PAGE_ORDERS):
        for mt in range(MIGRATE_TYPES):
            lst = []
            pfn = int(fl[(order * MIGRATE_TYPES + mt) * 2])
            while pfn != -1 and len(lst) <= mm.shape[0]:
                lst.append(pfn)
                pfn = int(mm[pfn, PG_LRU_NEXT])
            if lst:
                out[(order, mt)] = lst
    return out


def free_huge_blocks(zn) -> int:
    """Free 2 MiB (pageblock-order) blocks in the buddy allocator."""
    return sum(int(zn[Z_NR_FREE + o]) << (o - PAGEBLOCK_ORDER)
               for o in range(PAGEBLOCK_ORDER, NR_PAGE_ORDERS))


def placement_errors(mark: np.ndarray) -> list[str]:
    """Messages for frames counted in no place (mark 0) or in several (mark > 1)."""
    errors = []
    lost = np.flatnonzero(mark == 0)
    dup = np.flatnonzero(mark > 1)
    if lost.size:
        errors.append(f"{lost.size} frames are nowhere (first {lost[:5].tolist()})")
    if dup.size:
        errors.append(f"{dup.size} frames are in two places (first {dup[:5].tolist()})")
    return errors

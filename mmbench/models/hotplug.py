"""Memory hotplug: memory blocks of sections added, onlined, offlined and removed under load.

The phases of mm/memory_hotplug.c and mm/sparse.c, each a kernel of its own:

* add (``add_memory_resource`` -> ``sparse_add_section``): per section, the memmap is allocated
  (``populate_section_memmap``: an unmovable order-(section_shift-6) block from ZONE_NORMAL, 64 B
  of ``struct page`` per frame), the struct pages are poisoned, the section is marked
  PRESENT | HAS_MEM_MAP.
* online (``online_pages``): ``move_pfn_range_to_zone`` grows the zone span and initialises the
  memmap with every pageblock MIGRATE_ISOLATE; ``online_pages_range`` frees the block in
  max-order chunks (``__free_pages_core``, one zone->lock acquisition per chunk, onto the
  isolate lists); the sections go online; ``undo_isolate_page_range`` makes the pageblocks
  MIGRATE_MOVABLE.  Zone: ZONE_NORMAL or ZONE_MOVABLE (parameter ``online_zone``).
* offline (``offline_pages``): ``zone_pcp_disable`` (every worker's pageset of the zone to high
  0 / batch 1 and drained: the other workers read it from shared memory), isolation of the range
  (fails on an unmovable page: rolled back), rounds of migration of the owned movable pages until
  ``test_pages_isolated`` holds (up to ``offline_passes``, which stands in for the signal that ends
  a stuck offline), ``__offline_isolated_pages`` pulls the free pages off the lists, the sections
  go offline, the span shrinks, the memmap is poisoned; any failure undoes the isolation.
* remove (``sparse_remove_section``): the memmap blocks are freed, the sections are absent.

With ``memmap_on_memory`` (``MHP_MEMMAP_ON_MEMORY``) the block carries its own memmap
(``mhp_supports_memmap_on_memory`` / ``memory_block_memmap_on_memory_pages``): its first
``nr_vmemmap_pages`` = PFN_UP(block pages x 64 B), rounded up to whole pageblocks (the kernel's
``memmap_on_memory=force``; for 128 MiB blocks the size is exactly one pageblock and no padding is
needed), hold the vmemmap.  Add takes nothing from ZONE_NORMAL (the section memmaps come from the
block's altmap); online first runs ``mhp_init_memmap_on_memory`` (the vmemmap pages join the zone as
reserved, MIGRATE_UNMOVABLE, PageVmemmapSelfHosted pages: present, never managed) and then
``online_pages`` on the rest of the block; offline drops them from present_pages and runs
``offline_pages`` on the rest only (they are neither isolated nor migrated), then
``mhp_deinit_memmap_on_memory``; remove releases them with the block (no buddy free).

Worker 0 is the hotplug worker: each ``step`` toggles the next block (round robin) and returns
the pages onlined or offlined.  The other workers run :func:`mmbench.models.owned.churn_step`
(order-0 allocations, a share unmovable, through the per-CPU lists) and file the cycles and the
ops of each operation under "pcp enabled" or "pcp disabled" as they see the hotplug worker's
flag: the throughput dip is ops/cycles of the two classes, per worker.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit

from ..atomics import rdtsc, store_relaxed
from ..ctl import N_LOCK_COUNTERS
from ..jit import helper, kernel
from ..locks import LOCK_KINDS, init_lockset, lockset_words, spin_lock, spin_unlock
from ..model import ArraySpec, Model, Param
from . import isolation as I
from . import owned as O
from . import pcp as P
from . import zone as Z

# section_mem_map low bits (include/linux/mmzone.h)
SECTION_MARKED_PRESENT = 0x1
SECTION_HAS_MEM_MAP = 0x2
SECTION_IS_ONLINE = 0x4
SECTION_IS_EARLY = 0x8
# hp_sec columns.  SC_ALTMAP: the block's nr_vmemmap_pages (memory_block->altmap) on every
# section of a block added with memmap_on_memory, 0 otherwise (memmap from the allocator).
SC_FLAGS, SC_MEMMAP, SC_ZONE, SC_ALTMAP = 0, 1, 2, 3
SEC_WORDS = 4
# struct page size and page size of the vmemmap arithmetic (memory_block_memmap_size)
STRUCT_PAGE_BYTES = 64
PAGE_BYTES = 4096
# PageVmemmapSelfHosted (PG_owner_priv_1 in the kernel): a page that holds its block's memmap
PGF_VMEMMAP_SELF_HOSTED = 1 << 9

ZONE_MOVABLE = Z.ZONE_NORMAL + 1
PH_ADD, PH_ONLINE, PH_OFFLINE, PH_REMOVE = 0, 1, 2, 3
PHASES = ("add", "online", "offline", "remove")
# hp_tot columns per phase (and per block in hp_blk)
T_CYC, T_N, T_FAIL, T_MAX = 0, 1, 2, 3
# hp_state words (each alone in its line)
ST_PCP_OFF = 0            # non-zero while zone_pcp_disable is in force
ST_RR = 8                 # next block to toggle
ST_OFF_CYC = 16           # cycles spent with the pcp disabled
ST_WORDS = 24

CB = N_LOCK_COUNTERS
C_CO = CB                                     # owned.COMMON_COUNTERS first
HP_COUNTERS = ("pages_onlined", "pages_offlined", "offline_ok", "offline_fail_unmovable",
               "offline_fail_busy", "add_fail", "offline_pages_migrated")
C_ONLINED = CB + len(O.COMMON_COUNTERS)
C_OFFLINED, C_OFF_OK, C_OFF_UNMOV, C_OFF_BUSY, C_ADD_FAIL, C_OFF_MIG = (C_ONLINED + i
                                                                        for i in range(1, 7))
OFFLINE_OK, OFFLINE_UNMOVABLE, OFFLINE_BUSY = 0, 1, 2


# --- sparse ------------------------------------------------------------------------------
@helper
def poison_memmap(mm, start, end):
    """page_init_poison: every struct page word 0xff..ff (zone bits 7: matches no zone)."""
    for p in range(start, end):
        for k in range(Z.STRUCT_PAGE_WORDS):
            mm[p, k] = -1


def vmemmap_pages(p) -> int:
    """nr_vmemmap_pages of one memory block with memmap_on_memory (0 when off).

    memory_block_memmap_on_memory_pages: PFN_UP(block pages x sizeof(struct page)), rounded up
    to whole pageblocks (``memmap_on_memory=force``: the onlined rest must start on a pageblock
    boundary; for a 128 MiB block the memmap is exactly one 2 MiB pageblock).
    """
    if not p["memmap_on_memory"]:
        return 0
    block = p["block_sections"] << p["section_shift"]
    nr = -(-block * STRUCT_PAGE_BYTES // PAGE_BYTES)
    return -(-nr // Z.PAGEBLOCK_NR_PAGES) * Z.PAGEBLOCK_NR_PAGES


@helper
def sparse_add_section(mm, pb, fl2, zn2, lk2, s, shift, altmap_pfn, w, cnt, ctl):
    """section_activate: get the memmap and poison it.  Its pfn, or -1 (no memory), -2.

    ``altmap_pfn`` >= 0: the memmap lives at that pfn inside the block (vmemmap_populate from
    the altmap): nothing is allocated.  Else an order-(shift-6) block from ZONE_NORMAL.
    """
    if altmap_pfn >= 0:
        pfn = altmap_pfn
    else:
        pfn = Z.buddy_alloc(mm, pb, fl2[0], zn2[0], lk2[0], w, shift - 6, Z.MIGRATE_UNMOVABLE,
                            cnt, ctl, -1)
        if pfn < 0:
            return pfn
    start = s << shift
    poison_memmap(mm, start, start + (1 << shift))
    return pfn


@helper
def sparse_remove_section(mm, pb, fl2, zn2, lk2, secs, s, shift, w, cnt, ctl):
    """section_deactivate: free the memmap (to the buddy, or back to the block's altmap: the
    vmemmap pages go with the block), the section is absent."""
    pfn = secs[s, SC_MEMMAP]
    altmap = secs[s, SC_ALTMAP]
    start = s << shift
    poison_memmap(mm, start, start + (1 << shift))
    secs[s, SC_FLAGS] = 0
    secs[s, SC_MEMMAP] = -1
    secs[s, SC_ZONE] = -1
    secs[s, SC_ALTMAP] = 0
    if altmap > 0:
        return 0
    return Z.buddy_free(mm, pb, fl2[0], zn2[0], lk2[0], w, pfn, shift - 6, cnt, ctl)


@helper
def add_memory_block(mm, pb, fl2, zn2, lk2, secs, first, nsec, shift, nv, w, cnt, ctl):
    """add_memory_resource -> __add_pages: every section of the block, or none.  0, -1, -2.

    ``nv`` > 0 (memmap_on_memory): the block's altmap holds its first ``nv`` pages and every
    section's memmap is carved from it in order; no page of ZONE_NORMAL is taken.
    """
    base = first << shift
    for i in range(nsec):
        altmap_pfn = -1
        if nv > 0:
            altmap_pfn = base + i * (1 << (shift - 6))
        r = sparse_add_section(mm, pb, fl2, zn2, lk2, first + i, shift, altmap_pfn, w, cnt, ctl)
        if r < 0:
            for k in range(i):                   # roll back the sections already added
                if sparse_remove_section(mm, pb, fl2, zn2, lk2, secs, first + k, shift, w, cnt,
                                         ctl) < 0:
                    return -2
            return r
        secs[first + i, SC_MEMMAP] = r
        secs[first + i, SC_ALTMAP] = nv
        secs[first + i, SC_FLAGS] = SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP
    return 0


@helper
def mhp_init_memmap_on_memory(mm, pb, zn, lk, start, nv, zone_id, w, cnt, ctl):
    """move_pfn_range_to_zone(MIGRATE_UNMOVABLE) of the vmemmap pages [start, start + nv):
    reserved, refcount 1, PageVmemmapSelfHosted; never handed to the buddy.  0, or -2."""
    if not spin_lock(lk, 0, w, cnt, ctl):
        return -2
    grow_zone_span_locked(zn, start, start + nv)
    spin_unlock(lk, 0, w, cnt)
    Z.init_single_pages(mm, start, start + nv, zone_id, 0)
    Z.set_pageblock_range(pb, start, start + nv, Z.MIGRATE_UNMOVABLE)
    for p in range(start, start + nv):
        mm[p, Z.PG_FLAGS] |= PGF_VMEMMAP_SELF_HOSTED
    return 0


@helper
def mhp_deinit_memmap_on_memory(mm, pb, start, nv):
    """remove_pfn_range_from_zone of the vmemmap pages: their struct pages are dead.  (The span
    already shrank with the block's sections; the pageblocks go back to MIGRATE_ISOLATE, the
    model's mark of memory that is not online.)"""
    poison_memmap(mm, start, start + nv)
    Z.set_pageblock_range(pb, start, start + nv, Z.MIGRATE_ISOLATE)


# --- zone span ---------------------------------------------------------------------------
@helper
def resize_zone_span_locked(zn, secs, shift, z, boot_end):
    """Recompute the span from the online sections of zone row z (shrink_zone_span, both ends)."""
    lo = -1
    hi = -1
    if z == 0 and boot_end > 0:
        lo = 0
        hi = boot_end
    for s in range(secs.shape[0]):
        if secs[s, SC_ZONE] == z and (secs[s, SC_FLAGS] & SECTION_IS_ONLINE) != 0:
            a = s << shift
            b = (s + 1) << shift
            if lo == -1 or a < lo:
                lo = a
            if b > hi:
                hi = b
    if lo == -1:
        zn[Z.Z_SPANNED] = 0
    else:
        zn[Z.Z_START_PFN] = lo
        zn[Z.Z_SPANNED] = hi - lo


@helper
def grow_zone_span_locked(zn, start, end):
    """resize_zone_range: the span covers [start, end) as well."""
    if zn[Z.Z_SPANNED] == 0:
        zn[Z.Z_START_PFN] = start
        zn[Z.Z_SPANNED] = end - start
        return
    lo = min(zn[Z.Z_START_PFN], start)
    hi = max(zn[Z.Z_START_PFN] + zn[Z.Z_SPANNED], end)
    zn[Z.Z_START_PFN] = lo
    zn[Z.Z_SPANNED] = hi - lo


# --- online / offline ----------------------------------------------------------------------
@helper
def online_pages(mm, pb, fl2, zn2, lk2, secs, first, nsec, shift, z, nv, w, cnt, ctl):
    """online_pages of the block's sections into zone row z, past its first ``nv`` (vmemmap)
    pages (memory_block_online passes start_pfn + nr_vmemmap_pages).  Pages onlined, or -2."""
    start = (first << shift) + nv
    end = (first + nsec) << shift
    fl = fl2[z]
    zn = zn2[z]
    lk = lk2[z]
    # move_pfn_range_to_zone(..., MIGRATE_ISOLATE)
    if not spin_lock(lk, 0, w, cnt, ctl):
        return -2
    grow_zone_span_locked(zn, start, end)
    spin_unlock(lk, 0, w, cnt)
    Z.init_single_pages(mm, start, end, Z.ZONE_NORMAL + z, 0)
    Z.set_pageblock_range(pb, start, end, Z.MIGRATE_ISOLATE)
    # online_pages_range: generic_online_page per max-order chunk (after a vmemmap that is not
    # max-order aligned the first chunks are smaller: min(MAX_PAGE_ORDER, __ffs(pfn)))
    pfn = start
    while pfn < end:
        order = Z.MAX_PAGE_ORDER
        while (pfn & ((1 << order) - 1)) != 0:
            order -= 1
        if not spin_lock(lk, 0, w, cnt, ctl):
            return -2
        if pfn == start:
            zn[Z.Z_PRESENT] += end - start       # adjust_present_page_count
        Z.free_pages_core_locked(mm, pb, fl, zn, pfn, order)
        spin_unlock(lk, 0, w, cnt)
        pfn += 1 << order
    for i in range(nsec):                         # online_mem_sections
        secs[first + i, SC_FLAGS] |= SECTION_IS_ONLINE
        secs[first + i, SC_ZONE] = z
    if I.undo_isolate_page_range(mm, pb, fl, zn, lk, w, start, end, Z.MIGRATE_MOVABLE, cnt,
                                 ctl) < 0:
        return -2
    return end - start


@helper
def offline_pages(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, first, nsec, shift, nv,
                  boot_end, held, chk, owner, data, state, passes, w, cnt, ctl, co):
    """offline_pages of the block past its first ``nv`` (vmemmap) pages: 0 ok, 1 unmovable page
    (isolation refused), 2 still busy after the passes, -2 aborted.  Every failure leaves the
    range online and unisolated."""
    start = (first << shift) + nv
    end = (first + nsec) << shift
    z = secs[first, SC_ZONE]
    fl = fl2[z]
    zn = zn2[z]
    lk = lk2[z]
    pcp = pcp2[z]
    t_off = rdtsc()
    store_relaxed(state, ST_PCP_OFF, 1)
    if I.zone_pcp_disable(mm, pb, fl, zn, lk, pcp, nw, w, saved, cnt, ctl) < 0:
        return -2
    res = OFFLINE_OK
    r = I.start_isolate_page_range(mm, pb, fl, zn, lk, w, start, end, Z.MIGRATE_MOVABLE,
                                   I.ISOL_OFFLINE, cnt, ctl)
    if r == -2:
        return -2
    if r < 0:
        res = OFFLINE_UNMOVABLE
    else:
        migrated0 = cnt[w, co + O.CO_MIGRATED]
        ok = False
        for _ in range(passes):
            left = I.migrate_range(mm, pb, fl2, zn2, lk2, nz, held, chk, owner, data, w, start,
                                   end, cnt, ctl, co)
            if left < 0:
                return -2
            if left > 0:
                continue
            if not spin_lock(lk, 0, w, cnt, ctl):
                return -2
            bad = I.test_pages_isolated_locked(mm, pb, start, end)
            if bad < 0:
                # __offline_isolated_pages: the free pages leave the buddy for good
                I.take_free_range_locked(mm, pb, fl, zn, start, end)
                zn[Z.Z_MANAGED] -= end - start
                zn[Z.Z_PRESENT] -= end - start
                for i in range(nsec):
                    secs[first + i, SC_FLAGS] &= ~SECTION_IS_ONLINE
                resize_zone_span_locked(zn, secs, shift, z, boot_end)
                spin_unlock(lk, 0, w, cnt)
                ok = True
                break
            spin_unlock(lk, 0, w, cnt)
            # a page freed onto a list before the pageset saw high 0: drain again
            if I.drain_all_pages(mm, pb, fl, zn, lk, pcp, nw, w, cnt, ctl) < 0:
                return -2
        cnt[w, C_OFF_MIG] += cnt[w, co + O.CO_MIGRATED] - migrated0
        if ok:
            # remove_pfn_range_from_zone: the struct pages are dead (pageblocks stay isolated)
            poison_memmap(mm, start, end)
        else:
            res = OFFLINE_BUSY
            if I.undo_isolate_page_range(mm, pb, fl, zn, lk, w, start, end, Z.MIGRATE_MOVABLE,
                                         cnt, ctl) < 0:
                return -2
    if I.zone_pcp_enable(pcp, nw, saved, ctl) < 0:
        return -2
    store_relaxed(state, ST_PCP_OFF, 0)
    state[ST_OFF_CYC] += rdtsc() - t_off
    return res


@helper
def _record(lat, tot, blk, b, ph, dt, failed):
    lat[ph, O.bucket(dt)] += 1
    tot[ph, T_CYC] += dt
    tot[ph, T_N] += 1
    blk[b, ph, T_CYC] += dt
    blk[b, ph, T_N] += 1
    if dt > blk[b, ph, T_MAX]:
        blk[b, ph, T_MAX] = dt
    if failed:
        tot[ph, T_FAIL] += 1
        blk[b, ph, T_FAIL] += 1


@helper
def hotplug_toggle(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, boot_sec, nblocks,
                   block_secs, shift, zone_row, vmemmap, held, chk, owner, data, state, lat,
                   tot, blk, passes, b, w, cnt, ctl):
    """Add + online block b if absent, else offline + remove it.  Pages moved (onlined or
    offlined: the block less its vmemmap pages), or -2.  ``vmemmap``: nr_vmemmap_pages of a
    block added now (0: memmap from the allocator)."""
    first = boot_sec + b * block_secs
    co = C_CO
    f = secs[first, SC_FLAGS]
    if (f & SECTION_MARKED_PRESENT) == 0:
        nv = vmemmap
        nr = (block_secs << shift) - nv
        t0 = rdtsc()
        r = add_memory_block(mm, pb, fl2, zn2, lk2, secs, first, block_secs, shift, nv, w, cnt,
                             ctl)
        t1 = rdtsc()
        if r == -2:
            return -2
        _record(lat, tot, blk, b, PH_ADD, t1 - t0, r < 0)
        if r < 0:
            cnt[w, C_ADD_FAIL] += 1
            return 0
        # memory_block_online
        if nv > 0:
            if mhp_init_memmap_on_memory(mm, pb, zn2[zone_row], lk2[zone_row], first << shift,
                                         nv, Z.ZONE_NORMAL + zone_row, w, cnt, ctl) < 0:
                return -2
        r = online_pages(mm, pb, fl2, zn2, lk2, secs, first, block_secs, shift, zone_row, nv,
                         w, cnt, ctl)
        if r < 0:
            return -2
        if nv > 0:
            zn2[zone_row][Z.Z_PRESENT] += nv      # adjust_present_page_count, once online
        _record(lat, tot, blk, b, PH_ONLINE, rdtsc() - t1, False)
        cnt[w, C_ONLINED] += nr
        return nr
    if (f & SECTION_IS_ONLINE) == 0:
        return 0
    nv = secs[first, SC_ALTMAP]                   # mem->altmap->free
    nr = (block_secs << shift) - nv
    z = secs[first, SC_ZONE]
    t0 = rdtsc()
    # memory_block_offline
    if nv > 0:
        zn2[z][Z.Z_PRESENT] -= nv
    r = offline_pages(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, first, block_secs,
                      shift, nv, boot_sec << shift, held, chk, owner, data, state, passes, w,
                      cnt, ctl, co)
    if r < 0:
        return -2
    if nv > 0:
        if r == OFFLINE_OK:
            mhp_deinit_memmap_on_memory(mm, pb, first << shift, nv)
        else:
            zn2[z][Z.Z_PRESENT] += nv             # offline_pages failed: account back
    t1 = rdtsc()
    _record(lat, tot, blk, b, PH_OFFLINE, t1 - t0, r != OFFLINE_OK)
    if r == OFFLINE_UNMOVABLE:
        cnt[w, C_OFF_UNMOV] += 1
        return 0
    if r == OFFLINE_BUSY:
        cnt[w, C_OFF_BUSY] += 1
        return 0
    cnt[w, C_OFF_OK] += 1
    cnt[w, C_OFFLINED] += nr
    for i in range(block_secs):
        if sparse_remove_section(mm, pb, fl2, zn2, lk2, secs, first + i, shift, w, cnt, ctl) < 0:
            return -2
    _record(lat, tot, blk, b, PH_REMOVE, rdtsc() - t1, False)
    return nr


@kernel
def hotplug_step(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, boot_sec, nblocks,
                 block_secs, shift, zone_row, vmemmap, held, chk, owner, data, wst, state, lat,
                 tot, blk, passes, w, n, cap, target, unmov_ppm, cnt, ctl):
    """Worker 0: toggle the next block; the others: ``n`` churn ops.  Ops done (pages for 0)."""
    if w == 0:
        if nblocks == 0:
            return 0
        b = state[ST_RR] % nblocks
        state[ST_RR] += 1
        r = hotplug_toggle(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, boot_sec, nblocks,
                           block_secs, shift, zone_row, vmemmap, held, chk, owner, data, state,
                           lat, tot, blk, passes, b, w, cnt, ctl)
        return max(r, 0)
    return O.churn_step(mm, pb, fl2, zn2, lk2, pcp2, nz, held, chk, owner, data, wst, state,
                        ST_PCP_OFF, cnt, ctl, w, n, cap, target, unmov_ppm, 0, C_CO)


@kernel
def hotplug_drain_all(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, cnt, ctl):
    """drain_all_pages over every zone (used after a run and by tests)."""
    total = 0
    for z in range(nz):
        r = I.drain_all_pages(mm, pb, fl2[z], zn2[z], lk2[z], pcp2[z], nw, 0, cnt, ctl)
        if r < 0:
            return r
        total += r
    return total


class HotplugModel(Model):
    name = "hotplug"
    description = ("memory hotplug: add/online/offline/remove of memory blocks (sparse sections, "
                   "isolation, pcp disable, migration) under concurrent page allocation")
    variants = {"normal": {"online_zone": "normal"}, "movable": {"online_zone": "movable"}}
    params = {
        "online_zone": Param(str, "movable", choices=("normal", "movable"),
                             help="zone a block is onlined to (set by the variant)"),
        "section_shift": Param(int, 15, 10, 15,
                               help="log2 pages per section (15: 128 MiB, the x86-64 value)"),
        "block_sections": Param(int, 1, 1, 64, help="sections per memory block"),
        "nblocks": Param(int, 6, 1, 256, help="hotpluggable memory blocks"),
        "boot_sections": Param(int, 2, 1, 1024, help="boot memory (ZONE_NORMAL) in sections"),
        "occupancy": Param(float, 0.6, 0.0, 0.95,
                           help="pages the allocating workers hold, as a share of boot memory "
                                "plus half the hotplug blocks"),
        "unmovable_share": Param(float, 0.05, 0.0, 1.0,
                                 help="share of the workers' allocations that are unmovable"),
        "offline_passes": Param(int, 20, 1, 10_000,
                                help="migration passes before an offline gives up (the signal "
                                     "that ends a stuck offline_pages)"),
        "pause_ms": Param(float, 2.0, 0.0, 1000.0,
                          help="hotplug worker's pause between block operations"),
        "lock": Param(str, "ttas", choices=tuple(LOCK_KINDS), help="zone->lock kind"),
        "memmap_on_memory": Param(bool, False,
                                  help="place the block's memmap in the block itself "
                                       "(MHP_MEMMAP_ON_MEMORY): its first pages hold the vmemmap "
                                       "and are never onlined"),
    }
    counter_names = O.COMMON_COUNTERS + HP_COUNTERS

    # --- geometry -----------------------------------------------------------------------
    @staticmethod
    def geometry(p):
        shift = p["section_shift"]
        boot_sec = p["boot_sections"]
        nsec = boot_sec + p["nblocks"] * p["block_sections"]
        return shift, boot_sec, nsec, nsec << shift

    def validate(self, p):
        if p["memmap_on_memory"]:
            block = p["block_sections"] << p["section_shift"]
            if (block * STRUCT_PAGE_BYTES) % PAGE_BYTES:
                raise ValueError(f"memmap_on_memory: the memmap of a {block}-page block "
                                 f"({block * STRUCT_PAGE_BYTES} B) is not a whole number of "
                                 f"pages (mhp_supports_memmap_on_memory refuses it)")
            nv = vmemmap_pages(p)
            if nv >= block:
                raise ValueError(f"memmap_on_memory: the vmemmap of a {block}-page block "
                                 f"rounded to whole pageblocks ({nv} pages) leaves nothing to "
                                 f"online (mhp_supports_memmap_on_memory refuses it)")

    def sizes(self, p, nworkers):
        """(cap, target): owned-page slots per allocating worker and pages it keeps."""
        shift, boot_sec, _, _ = self.geometry(p)
        mem = (boot_sec << shift) + ((p["nblocks"] * p["block_sections"]) << shift) // 2
        target = int(p["occupancy"] * mem) // max(nworkers - 1, 1)
        return target + target // 8 + 1, target

    def layout(self, p, nworkers):
        shift, boot_sec, nsec, F = self.geometry(p)
        cap, _ = self.sizes(p, nworkers)
        lkw = lockset_words(1, nworkers)
        return [
            ArraySpec("zone_mm", (F, Z.STRUCT_PAGE_WORDS)),
            ArraySpec("zone_pb", (Z.pageblocks(F),)),
            ArraySpec("hp_fl", (2, Z.fl_words())),
            ArraySpec("hp_zn", (2, Z.ZONE_WORDS)),
            ArraySpec("hp_lk", (2, lkw)),
            ArraySpec("hp_pcp", (2, nworkers * P.PCP_WORDS)),
            ArraySpec("hp_saved", (nworkers, 4)),
            ArraySpec("hp_sec", (nsec, SEC_WORDS)),
            ArraySpec("hp_state", (ST_WORDS,)),
            ArraySpec("hp_lat", (len(PHASES), O.LAT_BUCKETS)),
            ArraySpec("hp_tot", (len(PHASES), 4)),
            ArraySpec("hp_blk", (p["nblocks"], len(PHASES), 4)),
            ArraySpec("ow_held", (nworkers * cap,)),
            ArraySpec("ow_chk", (nworkers * cap,)),
            ArraySpec("ow_owner", (F,)),
            ArraySpec("ow_data", (F, O.DATA_WORDS)),
            ArraySpec("ow_wst", (nworkers, O.WST_WORDS)),
        ]

    def setup(self, arrays, p, nworkers, seed):
        shift, boot_sec, nsec, F = self.geometry(p)
        a = arrays
        mm, pb, fl2, zn2 = a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"]
        boot_end = boot_sec << shift
        Z.zone_reset(mm, pb, fl2[0], zn2[0], 0, boot_end)
        fl2[1][:] = -1
        zn2[1][:] = 0
        zn2[1][Z.Z_ID] = ZONE_MOVABLE
        zn2[1][Z.Z_START_PFN] = boot_end
        Z.zone_init_range(mm, pb, zn2[0], 0, boot_end)
        Z.free_range_to_buddy_locked(mm, pb, fl2[0], zn2[0], 0, boot_end)
        Z.zone_set_watermarks(zn2[0])
        poison_memmap_py(mm, boot_end, F)
        pb[boot_end >> Z.PAGEBLOCK_ORDER:] = Z.MIGRATE_ISOLATE
        secs = a["hp_sec"]
        secs[:] = 0
        secs[:, SC_MEMMAP] = -1
        secs[:, SC_ZONE] = -1
        secs[:boot_sec, SC_FLAGS] = (SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP
                                     | SECTION_IS_ONLINE | SECTION_IS_EARLY)
        secs[:boot_sec, SC_ZONE] = 0
        for z in range(2):
            init_lockset(a["hp_lk"][z], 1, nworkers, LOCK_KINDS[p["lock"]], sample_hold=True)
        b, hmin, hmax = P.pcp_sizes("highorder", F, int(zn2[0][Z.Z_WMARK_LOW]), nworkers)
        for z in range(2):
            for w in range(nworkers):
                P.pcp_init(a["hp_pcp"][z], w, P.PCP_MODERN, b, hmin, hmax)
        a["hp_saved"][:] = 0
        for k in ("hp_state", "hp_lat", "hp_tot", "hp_blk"):
            a[k][:] = 0
        O.owned_reset(a["ow_held"], a["ow_chk"], a["ow_owner"], a["ow_data"], a["ow_wst"], seed)
        # Half the blocks (the even ones) start online, so that offline has work at once.
        cnt = np.zeros((1, self.counter_columns()), np.int64)
        ctl = np.zeros(64, np.int64)
        for blk in range(0, p["nblocks"], 2):
            r = self._toggle(a, p, nworkers, blk, cnt, ctl)
            if r <= 0:
                raise RuntimeError(f"hotplug setup: block {blk} did not come online ({r})")
        a["hp_lat"][:] = 0
        a["hp_tot"][:] = 0
        a["hp_blk"][:] = 0
        a["hp_state"][ST_RR] = 0

    def _toggle(self, a, p, nworkers, b, cnt, ctl, w=0):
        shift, boot_sec, _, _ = self.geometry(p)
        return _toggle_kernel(a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"], a["hp_lk"],
                              a["hp_pcp"], 2, nworkers, a["hp_saved"], a["hp_sec"], boot_sec,
                              p["nblocks"], p["block_sections"], shift, self._zone_row(p),
                              vmemmap_pages(p), a["ow_held"], a["ow_chk"], a["ow_owner"],
                              a["ow_data"], a["hp_state"], a["hp_lat"], a["hp_tot"], a["hp_blk"],
                              p["offline_passes"], b, w, cnt, ctl)

    @staticmethod
    def _zone_row(p):
        return 1 if p["online_zone"] == "movable" else 0

    def compile(self, p):
        # setup already ran every hotplug kernel; load the step kernel with zero work
        a = {s.name: np.zeros(s.shape, s.dtype) for s in self.layout(
            dict(p, section_shift=10, nblocks=1, boot_sections=1, block_sections=1), 2)}
        a["hp_sec"][:, SC_FLAGS] = SECTION_MARKED_PRESENT     # present, not online: no-op
        a["counters"] = np.zeros((2, self.counter_columns()), np.int64)
        a["ctl"] = np.zeros(64, np.int64)
        pp = dict(p, section_shift=10, nblocks=1, boot_sections=1, block_sections=1)
        self._call(a, pp, 0, 2, 0)
        self._call(a, pp, 1, 2, 0)

    def _call(self, a, p, w, nw, n):
        shift, boot_sec, _, _ = self.geometry(p)
        cap, target = self.sizes(p, nw)
        return hotplug_step(a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"], a["hp_lk"],
                            a["hp_pcp"], 2, nw, a["hp_saved"], a["hp_sec"], boot_sec,
                            p["nblocks"], p["block_sections"], shift, self._zone_row(p),
                            vmemmap_pages(p), a["ow_held"], a["ow_chk"], a["ow_owner"],
                            a["ow_data"], a["ow_wst"],
                            a["hp_state"], a["hp_lat"], a["hp_tot"], a["hp_blk"],
                            p["offline_passes"], w, n, cap, target,
                            int(p["unmovable_share"] * 1_000_000), a["counters"], a["ctl"])

    def worker_init(self, arrays, p, worker, nworkers):
        return (arrays, p, worker, nworkers, p["pause_ms"] / 1000.0)

    def step(self, ctx, n):
        arrays, p, w, nw, pause = ctx
        r = self._call(arrays, p, w, nw, n)
        if w == 0 and pause > 0:
            time.sleep(pause)
        return r

    # --- invariants -----------------------------------------------------------------------
    def check(self, arrays, p, nworkers):
        return hotplug_check(arrays, p, nworkers)

    def report(self, arrays, p, nworkers):
        tot = arrays["hp_tot"]
        lat = {f"hotplug_{ph}": O.latency_hist(arrays["hp_lat"][i]) for i, ph in enumerate(PHASES)}
        blk = arrays["hp_blk"]
        cnt = arrays["counters"]
        cm = self.counter_map()

        def col(name):
            return cnt[:, cm[name]]

        attempts = int(tot[PH_OFFLINE, T_N])
        others = slice(1, nworkers)
        on_ops, off_ops = col("ops_pcp_enabled")[others], col("ops_pcp_disabled")[others]
        on_cyc, off_cyc = col("cycles_pcp_enabled")[others], col("cycles_pcp_disabled")[others]
        per_worker = []
        for i in range(len(on_ops)):
            r_on = on_ops[i] / on_cyc[i] if on_cyc[i] else None
            r_off = off_ops[i] / off_cyc[i] if off_cyc[i] else None
            per_worker.append({"ops_per_kcycle_pcp_enabled": None if r_on is None else 1e3 * r_on,
                               "ops_per_kcycle_pcp_disabled": None if r_off is None else 1e3 * r_off,
                               "dip": (1.0 - r_off / r_on) if r_on and r_off is not None else None})
        extra = {
            "phase_totals": {ph: {"cycles": int(tot[i, T_CYC]), "count": int(tot[i, T_N]),
                                  "failed": int(tot[i, T_FAIL])} for i, ph in enumerate(PHASES)},
            "per_block": [{ph: {"cycles": int(blk[b, i, T_CYC]), "count": int(blk[b, i, T_N]),
                                "max_cycles": int(blk[b, i, T_MAX]),
                                "failed": int(blk[b, i, T_FAIL])} for i, ph in enumerate(PHASES)}
                          for b in range(blk.shape[0])],
            "block_pages": p["block_sections"] << p["section_shift"],
            "memmap_on_memory": bool(p["memmap_on_memory"]),
            "vmemmap_pages_per_block": vmemmap_pages(p),
            "offline_attempts_run": attempts,
            "offline_success_rate_run": (attempts - int(tot[PH_OFFLINE, T_FAIL])) / attempts
            if attempts else None,
            "unmovable_share": p["unmovable_share"],
            "pcp_disabled_cycles_run": int(arrays["hp_state"][ST_OFF_CYC]),
            "pcp_dip_method": ("each churn op timed with rdtsc and filed under pcp enabled or "
                               "disabled by the hotplug worker's shared flag at its start; "
                               "throughput = ops / cycles per class, per allocating worker, "
                               "over the measured window"),
            "pcp_dip_per_worker": per_worker,
        }
        return {"latency": lat, "extra": extra}


def poison_memmap_py(mm, start, end):
    mm[start:end] = -1


@kernel
def _toggle_kernel(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, boot_sec, nblocks,
                   block_secs, shift, zone_row, vmemmap, held, chk, owner, data, state, lat, tot,
                   blk, passes, b, w, cnt, ctl):
    return hotplug_toggle(mm, pb, fl2, zn2, lk2, pcp2, nz, nw, saved, secs, boot_sec, nblocks,
                          block_secs, shift, zone_row, vmemmap, held, chk, owner, data, state,
                          lat, tot, blk, passes, b, w, cnt, ctl)



def hotplug_check(arrays, p, nworkers) -> list[str]:
    """Every frame in exactly one place; nothing isolated or offline on a list; data intact.

    The places: a free list, a pageset, an owner, the memmap of a section (allocated from
    ZONE_NORMAL, or the vmemmap pages at the start of a block added with memmap_on_memory), or
    an offline / absent section.
    """
    shift, boot_sec, nsec, F = HotplugModel.geometry(p)
    a = arrays
    mm, pb, fl2, zn2, secs = a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"], a["hp_sec"]
    mark = np.zeros(F, np.int32)
    errors = []
    for z in range(2):
        errors += [f"zone {z}: {e}" for e in Z.zone_check(mm, pb, fl2[z], zn2[z], mark)]
        errors += [f"zone {z}: {e}" for e in P.pcp_check(mm, a["hp_pcp"][z], nworkers, mark)]
        for order in range(Z.NR_PAGE_ORDERS):
            if fl2[z][Z.fl_index(order, Z.MIGRATE_ISOLATE)] != -1:
                errors.append(f"zone {z}: free_list[{order}][Isolate] not empty after the run")
    errors += O.owned_check(mm, a["ow_held"], a["ow_chk"], a["ow_owner"], a["ow_data"], mark)
    order = shift - 6
    # vmemmap pages of the blocks added with memmap_on_memory (memory_block->altmap)
    vm = np.zeros(F, bool)
    vm_online = 0
    bsec = p["block_sections"]
    for b in range(p["nblocks"]):
        first = boot_sec + b * bsec
        nv = int(secs[first, SC_ALTMAP])
        if nv == 0:
            continue
        lo = first << shift
        f = int(secs[first, SC_FLAGS])
        if not f & SECTION_MARKED_PRESENT:
            errors.append(f"block {b}: absent but has {nv} vmemmap pages")
            continue
        if nv != vmemmap_pages(p):
            errors.append(f"block {b}: {nv} vmemmap pages, expected {vmemmap_pages(p)}")
        for s in range(first, first + bsec):
            if int(secs[s, SC_ALTMAP]) != nv:
                errors.append(f"section {s}: altmap {int(secs[s, SC_ALTMAP])} != its block's {nv}")
            m = int(secs[s, SC_MEMMAP])
            if not lo <= m < lo + nv:
                errors.append(f"section {s}: memmap at pfn {m} outside its block's vmemmap "
                              f"[{lo}, {lo + nv})")
        vm[lo:lo + nv] = True
        mark[lo:lo + nv] += 1                     # the block's own memmap
        if f & SECTION_IS_ONLINE:
            vm_online += nv
            z = int(secs[first, SC_ZONE])
            fl = mm[lo:lo + nv, Z.PG_FLAGS]
            want = PGF_VMEMMAP_SELF_HOSTED | Z.PGF_RESERVED
            bad = np.flatnonzero(((fl & want) != want) | ((fl & Z.PGF_BUDDY) != 0)
                                 | (((fl >> Z.ZONES_PGSHIFT) & Z.ZONES_MASK) != Z.ZONE_NORMAL + z)
                                 | (mm[lo:lo + nv, Z.PG_REFCOUNT] != 1))
            if bad.size:
                errors.append(f"block {b}: {bad.size} vmemmap pages not reserved self-hosted "
                              f"pages of zone {z} (first pfn {lo + int(bad[0])})")
    online = 0
    for s in range(nsec):
        f = int(secs[s, SC_FLAGS])
        lo, hi = s << shift, (s + 1) << shift
        if f & SECTION_IS_ONLINE:
            online += 1
            bad = np.flatnonzero((pb[lo >> Z.PAGEBLOCK_ORDER:hi >> Z.PAGEBLOCK_ORDER] & 7)
                                 == Z.MIGRATE_ISOLATE)
            if bad.size:
                errors.append(f"section {s} online with {bad.size} isolated pageblocks")
        else:
            mark[lo:hi] += ~vm[lo:hi]     # offline or absent: the frames are nobody's
        if f & SECTION_HAS_MEM_MAP and not f & SECTION_IS_EARLY and secs[s, SC_ALTMAP] == 0:
            m = int(secs[s, SC_MEMMAP])
            mark[m:m + (1 << order)] += 1
    managed = int(zn2[0][Z.Z_MANAGED] + zn2[1][Z.Z_MANAGED])
    if managed != (online << shift) - vm_online:
        errors.append(f"managed pages {managed} != online sections' pages {online << shift} "
                      f"less their vmemmap pages {vm_online}")
    present = int(zn2[0][Z.Z_PRESENT] + zn2[1][Z.Z_PRESENT])
    if present != online << shift:
        errors.append(f"present pages {present} != online sections' pages {online << shift}")
    errors += Z.placement_errors(mark)
    return errors

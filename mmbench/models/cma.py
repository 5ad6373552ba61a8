"""CMA: a contiguous area reserved at boot, lent to movable allocations, reclaimed by migration.

mm/cma.c and ``alloc_contig_range`` of mm/page_alloc.c (6.8-6.13), paraphrased in
KERNEL_ALGORITHMS.md "CMA":

* boot (``cma_declare_contiguous`` + ``cma_activate_area``): ``cma_frames`` at the top of the
  zone, max-order aligned; every pageblock MIGRATE_CMA, the pages freed to the buddy, where
  ``__rmqueue`` lends them to MOVABLE requests only (and prefers them while free CMA pages exceed
  half the free pages).  The area's bitmap has one bit per 2^order_per_bit pages.
* :func:`cma_alloc`: nbits = ceil(count / 2^order_per_bit); under cma->lock find the next aligned
  zero run (``bitmap_find_next_zero_area_off``) and set it; under cma_mutex run
  :func:`alloc_contig_range`; on -EBUSY clear the bits and try from bit + mask + 1; any other
  failure or the end of the bitmap fails the request (one forward pass).
* :func:`alloc_contig_range`: isolate the pageblocks covering the range (free blocks straddling
  its ends are split), drain every CPU's lists, migrate the owned pages out (up to 5 passes;
  pinned pages refuse), find the free block straddling the start, ``test_pages_isolated``, pull
  the free pages off the lists as order-0 pages, free the overhang, undo the isolation.
* :func:`cma_release`: the pages are freed one by one (through the per-CPU lists), the bits are
  cleared.

Worker 0 alternately allocates and releases ``count``-page buffers (it keeps up to ``buffers``);
the other workers keep ``occupancy`` of the zone in owned order-0 pages (a share unmovable, a share
pinned).  The ``buddy-highorder`` variant has no CMA area: worker 0 asks the buddy allocator for
a block of the same size (capped at MAX_PAGE_ORDER: the buddy has nothing larger) on the zone the
same load fragments.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..atomics import rdtsc
from ..ctl import N_LOCK_COUNTERS
from ..jit import helper, kernel
from ..locks import LOCK_KINDS, init_lockset, lockset_words, spin_lock, spin_unlock
from ..model import ArraySpec, Model, Param
from . import isolation as I
from . import owned as O
from . import pcp as P
from . import zone as Z

CB = N_LOCK_COUNTERS
C_CO = CB
CMA_COUNTERS = ("cma_alloc_ok", "cma_alloc_fail", "cma_ranges_tried", "cma_pages_released",
                "buddy_highorder_ok", "buddy_highorder_fail", "cma_overlap")
C_OK = CB + len(O.COMMON_COUNTERS)
C_FAIL, C_TRIED, C_RELEASED, C_BH_OK, C_BH_FAIL, C_OVERLAP = (C_OK + i for i in range(1, 7))
ALLOC_CONTIG_RETRIES = 5
OCC_BINS = 10
# cma_occ columns per occupancy bin
OB_N, OB_FAIL, OB_CYC = 0, 1, 2
# cma_st words
ST_NEXT_BUF = 0
ST_MIGRATED = 1            # pages migrated by successful allocations
ST_OK = 2
L_CMA, L_MUTEX = 0, 1      # cma->lock, cma_mutex in the ``cma_aux`` lockset
MODE_CMA, MODE_BUDDY = 0, 1


# --- bitmap ----------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def test_bit(bm, i):
    return (bm[i >> 6] >> (i & 63)) & 1


@helper
def set_bits(bm, start, nr, value):
    for i in range(start, start + nr):
        if value:
            bm[i >> 6] |= 1 << (i & 63)
        else:
            bm[i >> 6] &= ~(1 << (i & 63))


@helper
def find_next_zero_area(bm, size, start, nr, mask):
    """bitmap_find_next_zero_area_off (offset 0): first index >= start of ``nr`` zero bits,
    aligned to mask + 1; a value > size - nr when there is none."""
    while True:
        index = start
        while index < size and test_bit(bm, index):
            index += 1
        index = (index + mask) & ~mask
        end = index + nr
        if end > size:
            return end
        i = index
        while i < end and not test_bit(bm, i):
            i += 1
        if i == end:
            return index
        start = i + 1


# --- alloc_contig_range ------------------------------------------------------------------
@helper
def alloc_contig_range(mm, pb, fl2, zn2, lk2, pcp2, nw, held, chk, owner, data, start, end,
                       w, cnt, ctl, co):
    """Claim [start, end) as allocated order-0 pages.  0, -16 (-EBUSY) or -2 (aborted)."""
    fl = fl2[0]
    zn = zn2[0]
    lk = lk2[0]
    iso_s = start & ~(Z.PAGEBLOCK_NR_PAGES - 1)
    iso_e = (end + Z.PAGEBLOCK_NR_PAGES - 1) & ~(Z.PAGEBLOCK_NR_PAGES - 1)
    r = I.start_isolate_page_range(mm, pb, fl, zn, lk, w, iso_s, iso_e, Z.MIGRATE_CMA,
                                   I.ISOL_CMA, cnt, ctl)
    if r == -2:
        return -2
    if r < 0:
        return I.EBUSY
    if I.drain_all_pages(mm, pb, fl, zn, lk, pcp2[0], nw, w, cnt, ctl) < 0:
        return -2
    ret = 0
    tries = 0
    while True:                                   # __alloc_contig_migrate_range
        left = I.migrate_range(mm, pb, fl2, zn2, lk2, 1, held, chk, owner, data, w, start, end,
                               cnt, ctl, co)
        if left < 0:
            return -2
        if left == 0:
            break
        tries += 1
        if tries == ALLOC_CONTIG_RETRIES:
            ret = I.EBUSY
            break
    if ret == 0:
        if not spin_lock(lk, 0, w, cnt, ctl):
            return -2
        # the free block that straddles the start
        order = 0
        outer = start
        while (mm[outer, Z.PG_FLAGS] & Z.PGF_BUDDY) == 0:
            order += 1
            if order > Z.MAX_PAGE_ORDER:
                outer = start
                break
            outer = start & ~((1 << order) - 1)
        if outer != start:
            if outer + (1 << mm[outer, Z.PG_PRIVATE]) <= start:
                outer = start
        if I.test_pages_isolated_locked(mm, pb, outer, end) >= 0:
            ret = I.EBUSY
        else:
            outer_end = I.take_free_range_locked(mm, pb, fl, zn, outer, end)
            # free the overhang outside [start, end): back onto the isolate lists
            for p in range(outer, start):
                Z.free_pages_prepare(mm, p)
                Z.free_one_page_locked(mm, pb, fl, zn, p, 0, Z.MIGRATE_ISOLATE, False)
            for p in range(end, outer_end):
                Z.free_pages_prepare(mm, p)
                Z.free_one_page_locked(mm, pb, fl, zn, p, 0, Z.MIGRATE_ISOLATE, False)
        spin_unlock(lk, 0, w, cnt)
    if I.undo_isolate_page_range(mm, pb, fl, zn, lk, w, iso_s, iso_e, Z.MIGRATE_CMA, cnt,
                                 ctl) < 0:
        return -2
    return ret


@helper
def cma_alloc(mm, pb, fl2, zn2, lk2, pcp2, nw, aux, bm, base, nbits_total, opb, count,
              align_order, held, chk, owner, data, w, cnt, ctl, co):
    """cma_alloc: the first pfn of ``count`` contiguous pages, -1 (failed) or -2 (aborted)."""
    nbits = (count + (1 << opb) - 1) >> opb
    mask = 0
    if align_order > opb:
        mask = (1 << (align_order - opb)) - 1
    start = 0
    while True:
        if not spin_lock(aux, L_CMA, w, cnt, ctl):
            return -2
        bit = find_next_zero_area(bm, nbits_total, start, nbits, mask)
        if bit > nbits_total - nbits:
            spin_unlock(aux, L_CMA, w, cnt)
            return -1
        set_bits(bm, bit, nbits, True)
        spin_unlock(aux, L_CMA, w, cnt)
        pfn = base + (bit << opb)
        cnt[w, C_TRIED] += 1
        if not spin_lock(aux, L_MUTEX, w, cnt, ctl):
            return -2
        r = alloc_contig_range(mm, pb, fl2, zn2, lk2, pcp2, nw, held, chk, owner, data, pfn,
                               pfn + count, w, cnt, ctl, co)
        spin_unlock(aux, L_MUTEX, w, cnt)
        if r == -2:
            return -2
        if r == 0:
            return pfn
        if not spin_lock(aux, L_CMA, w, cnt, ctl):     # cma_clear_bitmap
            return -2
        set_bits(bm, bit, nbits, False)
        spin_unlock(aux, L_CMA, w, cnt)
        if r != I.EBUSY:
            return -1
        start = bit + mask + 1


@helper
def cma_release(mm, pb, fl2, zn2, lk2, pcp2, aux, bm, base, opb, pfn, count, w, cnt, ctl, co):
    """cma_release: free_contig_range, then clear the bits.  0 or -2."""
    for p in range(pfn, pfn + count):
        if O.free_page(mm, pb, fl2, zn2, lk2, pcp2, w, p, cnt, ctl, co) == -2:
            return -2
    nbits = (count + (1 << opb) - 1) >> opb
    if not spin_lock(aux, L_CMA, w, cnt, ctl):
        return -2
    set_bits(bm, (pfn - base) >> opb, nbits, False)
    spin_unlock(aux, L_CMA, w, cnt)
    return 0


@helper
def _in_use(mm, start, end):
    n = 0
    for p in range(start, end):
        if mm[p, Z.PG_REFCOUNT] > 0:
            n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _record_attempt(lat, occ, b, dt, failed):
    """One allocation attempt: its latency histogram bucket and its occupancy bin."""
    lat[O.bucket(dt)] += 1
    occ[b, OB_N] += 1
    occ[b, OB_CYC] += dt
    if failed:
        occ[b, OB_FAIL] += 1


@kernel
def cma_step(mode, mm, pb, fl2, zn2, lk2, pcp2, nw, aux, bm, base, cma_frames, nbits_total,
             opb, count, align_order, buffers, bufs, st, lat, occ, mig_hist, held, chk, owner,
             data, wst, cnt, ctl, w, n, cap, target, unmov_ppm, pin_ppm):
    """Worker 0: one cma_alloc or cma_release (or one high-order buddy attempt); the others
    ``n`` churn ops.  Returns ops (pages for worker 0)."""
    co = C_CO
    if w != 0:
        return O.churn_step(mm, pb, fl2, zn2, lk2, pcp2, 1, held, chk, owner, data, wst, st,
                            -1, cnt, ctl, w, n, cap, target, unmov_ppm, pin_ppm, co)
    if n == 0:
        return 0
    if mode == MODE_BUDDY:
        order = 0
        while (1 << order) < count and order < Z.MAX_PAGE_ORDER:
            order += 1
        zn = zn2[0]
        used = zn[Z.Z_MANAGED] - zn[Z.Z_FREE_PAGES]
        b = min(used * OCC_BINS // max(zn[Z.Z_MANAGED], 1), OCC_BINS - 1)
        t0 = rdtsc()
        pfn = Z.buddy_alloc(mm, pb, fl2[0], zn, lk2[0], w, order, Z.MIGRATE_MOVABLE, cnt, ctl,
                            -1)
        dt = rdtsc() - t0
        if pfn == -2:
            return 0
        _record_attempt(lat, occ, b, dt, pfn < 0)
        if pfn < 0:
            cnt[w, C_BH_FAIL] += 1
            return 0
        cnt[w, C_BH_OK] += 1
        Z.buddy_free(mm, pb, fl2[0], zn, lk2[0], w, pfn, order, cnt, ctl)
        return 1 << order
    # MODE_CMA: allocate while fewer than ``buffers`` are held, else release the oldest
    nheld = 0
    for i in range(bufs.shape[0]):
        if bufs[i, 0] >= 0:
            nheld += 1
    if nheld < buffers:
        slot = -1
        for i in range(bufs.shape[0]):
            if bufs[i, 0] < 0:
                slot = i
                break
        used = _in_use(mm, base, base + cma_frames)
        b = min(used * OCC_BINS // max(cma_frames, 1), OCC_BINS - 1)
        mig0 = cnt[w, co + O.CO_MIGRATED]
        t0 = rdtsc()
        pfn = cma_alloc(mm, pb, fl2, zn2, lk2, pcp2, nw, aux, bm, base, nbits_total, opb, count,
                        align_order, held, chk, owner, data, w, cnt, ctl, co)
        dt = rdtsc() - t0
        if pfn == -2:
            return 0
        _record_attempt(lat, occ, b, dt, pfn < 0)
        if pfn < 0:
            cnt[w, C_FAIL] += 1
            return 0
        # The device writes its buffer: a page still owned by a worker would lose its
        # contents (caught by the owner's checksum); one found owned now is counted.
        for p in range(pfn, pfn + count):
            if owner[p] != 0 or mm[p, Z.PG_REFCOUNT] != 1:
                cnt[w, C_OVERLAP] += 1
            for k in range(O.DATA_WORDS):
                data[p, k] = -p - k
        mig = cnt[w, co + O.CO_MIGRATED] - mig0
        mig_hist[O.bucket(mig + 1)] += 1
        st[ST_MIGRATED] += mig
        st[ST_OK] += 1
        cnt[w, C_OK] += 1
        bufs[slot, 0] = pfn
        bufs[slot, 1] = count
        bufs[slot, 2] = st[ST_NEXT_BUF]
        st[ST_NEXT_BUF] += 1
        return count
    oldest = -1
    for i in range(bufs.shape[0]):
        if bufs[i, 0] >= 0 and (oldest < 0 or bufs[i, 2] < bufs[oldest, 2]):
            oldest = i
    pfn = bufs[oldest, 0]
    c = bufs[oldest, 1]
    bufs[oldest, 0] = -1
    if cma_release(mm, pb, fl2, zn2, lk2, pcp2, aux, bm, base, opb, pfn, c, w, cnt, ctl,
                   co) < 0:
        return 0
    cnt[w, C_RELEASED] += c
    return c


@kernel
def prefragment(mm, pb, fl2, zn2, lk2, held, chk, owner, data, wst, nw, cap, target, pin_ppm,
                order, tmp, cnt, ctl):
    """Fragment the zone as an uptime would: take every free page, keep ``target`` pages per
    allocating worker at random places (owned, a share pinned), free the rest in random order.

    ``order`` is a random permutation of range(tmp.shape[0]).  Returns the pages kept.
    """
    n = 0
    while n < tmp.shape[0]:
        pfn = Z.buddy_alloc(mm, pb, fl2[0], zn2[0], lk2[0], 0, 0, Z.MIGRATE_MOVABLE, cnt, ctl, -1)
        if pfn < 0:
            break
        tmp[n] = pfn
        n += 1
    kept = 0
    for w in range(1, nw):
        for j in range(target):
            if kept >= n:
                break
            i = order[kept] % n
            pfn = tmp[i]
            tmp[i] = -1
            slot = w * cap + j
            r = O.rng_next(wst, w)
            if (r >> 20) % 1000000 < pin_ppm:
                mm[pfn, Z.PG_REFCOUNT] = 2
            chk[slot] = O.fill_page(data, pfn, r)
            owner[pfn] = slot + 1
            held[slot] = pfn
            kept += 1
        wst[w, O.S_NHELD] = min(target, n)
    for k in range(order.shape[0]):
        i = order[k]
        if i < n and tmp[i] >= 0:
            Z.buddy_free(mm, pb, fl2[0], zn2[0], lk2[0], 0, tmp[i], 0, cnt, ctl)
            tmp[i] = -1
    return kept


class CmaModel(Model):
    name = "cma"
    description = ("CMA: cma_alloc/cma_release of large buffers (isolation, migration, "
                   "alloc_contig_range) under movable-allocation load, against high-order "
                   "buddy allocation on a fragmented zone")
    variants = {"cma": {"mode": "cma"}, "buddy-highorder": {"mode": "buddy-highorder"}}
    params = {
        "mode": Param(str, "cma", choices=("cma", "buddy-highorder"), help="set by the variant"),
        "nframes": Param(int, 1 << 16, 1 << 12, 1 << 24,
                         help="frames in the zone (a multiple of 1024; 2^16 = 256 MiB)"),
        "cma_frames": Param(int, 1 << 15, 1 << 10, 1 << 23,
                            help="CMA area size in frames (a multiple of 1024)"),
        "order_per_bit": Param(int, 0, 0, 10, help="pages per bitmap bit, log2"),
        "count": Param(int, 2560, 1, 1 << 20, help="pages per cma_alloc (2560 = 10 MiB)"),
        "align_order": Param(int, 8, 0, 10,
                             help="alignment of a buffer, log2 pages (CONFIG_CMA_ALIGNMENT 8)"),
        "buffers": Param(int, 1, 1, 64, help="buffers worker 0 holds before releasing one"),
        "occupancy": Param(float, 0.5, 0.0, 0.95,
                           help="share of the zone the other workers keep allocated"),
        "pinned_share": Param(float, 0.0, 0.0, 1.0,
                              help="share of movable allocations that are pinned (refuse "
                                   "migration)"),
        "unmovable_share": Param(float, 0.1, 0.0, 1.0,
                                 help="share of allocations that are unmovable (never in CMA)"),
        "prefragment": Param(bool, True,
                             help="start from a zone fragmented as after uptime (the workers' "
                                  "pages scattered at random) instead of a fresh one"),
        "lock": Param(str, "ttas", choices=tuple(LOCK_KINDS), help="zone->lock kind"),
    }
    counter_names = O.COMMON_COUNTERS + CMA_COUNTERS

    def validate(self, p):
        if p["nframes"] % 1024 or p["cma_frames"] % 1024:
            raise ValueError("nframes and cma_frames must be multiples of 1024 (max-order blocks)")
        if p["cma_frames"] >= p["nframes"]:
            raise ValueError("cma_frames must be smaller than nframes")
        if p["count"] > p["cma_frames"]:
            raise ValueError("count must not exceed cma_frames")

    def sizes(self, p, nworkers):
        target = int(p["occupancy"] * p["nframes"]) // max(nworkers - 1, 1)
        return target + target // 8 + 1, target

    @staticmethod
    def nbits(p):
        return p["cma_frames"] >> p["order_per_bit"]

    def layout(self, p, nworkers):
        F = p["nframes"]
        cap, _ = self.sizes(p, nworkers)
        return [
            ArraySpec("zone_mm", (F, Z.STRUCT_PAGE_WORDS)),
            ArraySpec("zone_pb", (Z.pageblocks(F),)),
            ArraySpec("cma_fl", (1, Z.fl_words())),
            ArraySpec("cma_zn", (1, Z.ZONE_WORDS)),
            ArraySpec("cma_lk", (1, lockset_words(1, nworkers))),
            ArraySpec("cma_pcp", (1, nworkers * P.PCP_WORDS)),
            ArraySpec("cma_aux", (lockset_words(2, nworkers),)),
            ArraySpec("cma_bitmap", (self.nbits(p) // 64 + 1,)),
            ArraySpec("cma_bufs", (p["buffers"], 3)),
            ArraySpec("cma_st", (8,)),
            ArraySpec("cma_lat", (O.LAT_BUCKETS,)),
            ArraySpec("cma_occ", (OCC_BINS, 3)),
            ArraySpec("cma_mig", (O.LAT_BUCKETS,)),
            ArraySpec("ow_held", (nworkers * cap,)),
            ArraySpec("ow_chk", (nworkers * cap,)),
            ArraySpec("ow_owner", (F,)),
            ArraySpec("ow_data", (F, O.DATA_WORDS)),
            ArraySpec("ow_wst", (nworkers, O.WST_WORDS)),
        ]

    @staticmethod
    def base(p):
        return p["nframes"] - p["cma_frames"]

    def setup(self, arrays, p, nworkers, seed):
        F = p["nframes"]
        a = arrays
        mm, pb, fl, zn = a["zone_mm"], a["zone_pb"], a["cma_fl"][0], a["cma_zn"][0]
        Z.zone_reset(mm, pb, fl, zn, 0, F)
        Z.zone_init_range(mm, pb, zn, 0, F)
        if p["mode"] == "cma":
            # cma_activate_area -> init_cma_reserved_pageblock: MIGRATE_CMA, then freed
            Z.set_pageblock_range(pb, self.base(p), F, Z.MIGRATE_CMA)
        Z.free_range_to_buddy_locked(mm, pb, fl, zn, 0, F)
        Z.zone_set_watermarks(zn)
        init_lockset(a["cma_lk"][0], 1, nworkers, LOCK_KINDS[p["lock"]], sample_hold=True)
        init_lockset(a["cma_aux"], 2, nworkers, LOCK_KINDS["ttas"])
        b, hmin, hmax = P.pcp_sizes("highorder", F, int(zn[Z.Z_WMARK_LOW]), nworkers)
        for w in range(nworkers):
            P.pcp_init(a["cma_pcp"][0], w, P.PCP_MODERN, b, hmin, hmax)
        a["cma_bitmap"][:] = 0
        a["cma_bufs"][:] = -1
        for k in ("cma_st", "cma_lat", "cma_occ", "cma_mig"):
            a[k][:] = 0
        O.owned_reset(a["ow_held"], a["ow_chk"], a["ow_owner"], a["ow_data"], a["ow_wst"], seed)
        if p["prefragment"] and nworkers > 1:
            cap, target = self.sizes(p, nworkers)
            rng = np.random.default_rng(seed + 1)
            prefragment(mm, pb, a["cma_fl"], a["cma_zn"], a["cma_lk"], a["ow_held"], a["ow_chk"],
                        a["ow_owner"], a["ow_data"], a["ow_wst"], nworkers, cap, target,
                        int(p["pinned_share"] * 1_000_000), rng.permutation(F).astype(np.int64),
                        np.zeros(F, np.int64), np.zeros((1, self.counter_columns()), np.int64),
                        np.zeros(64, np.int64))

    def compile(self, p):
        pp = dict(p, nframes=4096, cma_frames=1024, count=1, buffers=1)
        a = {s.name: np.zeros(s.shape, s.dtype) for s in self.layout(pp, 2)}
        a["counters"] = np.zeros((2, self.counter_columns()), np.int64)
        a["ctl"] = np.zeros(64, np.int64)
        self._call(a, pp, 0, 2, 0)
        self._call(a, pp, 1, 2, 0)

    def _call(self, a, p, w, nw, n):
        cap, target = self.sizes(p, nw)
        return cma_step(MODE_CMA if p["mode"] == "cma" else MODE_BUDDY, a["zone_mm"],
                        a["zone_pb"], a["cma_fl"], a["cma_zn"], a["cma_lk"], a["cma_pcp"], nw,
                        a["cma_aux"], a["cma_bitmap"], self.base(p), p["cma_frames"],
                        self.nbits(p), p["order_per_bit"], p["count"], p["align_order"],
                        p["buffers"], a["cma_bufs"], a["cma_st"], a["cma_lat"], a["cma_occ"],
                        a["cma_mig"], a["ow_held"], a["ow_chk"], a["ow_owner"], a["ow_data"],
                        a["ow_wst"], a["counters"], a["ctl"], w, n, cap, target,
                        int(p["unmovable_share"] * 1_000_000),
                        int(p["pinned_share"] * 1_000_000))

    def step(self, ctx, n):
        arrays, p, w, nw = ctx
        return self._call(arrays, p, w, nw, n)

    def check(self, arrays, p, nworkers):
        return cma_check(arrays, p, nworkers)

    def report(self, arrays, p, nworkers):
        occ = arrays["cma_occ"]
        st = arrays["cma_st"]
        key = "cma_alloc" if p["mode"] == "cma" else "buddy_highorder_alloc"
        bins = []
        for b in range(OCC_BINS):
            n = int(occ[b, OB_N])
            bins.append({"occupancy": [b / OCC_BINS, (b + 1) / OCC_BINS], "attempts": n,
                         "failures": int(occ[b, OB_FAIL]),
                         "failure_rate": int(occ[b, OB_FAIL]) / n if n else None,
                         "mean_cycles": int(occ[b, OB_CYC]) / n if n else None})
        n = int(occ[:, OB_N].sum())
        fails = int(occ[:, OB_FAIL].sum())
        order = 0
        while (1 << order) < p["count"] and order < Z.MAX_PAGE_ORDER:
            order += 1
        extra = {
            "attempts_run": n,
            "failure_rate_run": fails / n if n else None,
            "by_occupancy_run": bins,
            "occupancy_measured_over": "CMA area pages in use" if p["mode"] == "cma"
            else "zone pages in use",
            "pinned_share": p["pinned_share"],
            "request_pages": p["count"] if p["mode"] == "cma" else 1 << order,
        }
        if p["mode"] == "cma":
            ok = int(st[ST_OK])
            extra["pages_migrated_per_alloc"] = int(st[ST_MIGRATED]) / ok if ok else None
        else:
            extra["buddy_order"] = order
            extra["buddy_capped"] = (1 << order) < p["count"]
        lat = {key: O.latency_hist(arrays["cma_lat"])}
        if p["mode"] == "cma":
            # bucket b: 2^b <= migrated + 1 < 2^(b+1)
            extra["pages_migrated_per_alloc_log2_hist"] = [int(x) for x in arrays["cma_mig"]]
        return {"latency": lat, "extra": extra}


def cma_check(arrays, p, nworkers) -> list[str]:
    """Every frame in one place; no isolation left; buffers and bitmap agree; data intact."""
    F = p["nframes"]
    a = arrays
    mm, pb, fl, zn = a["zone_mm"], a["zone_pb"], a["cma_fl"][0], a["cma_zn"][0]
    mark = np.zeros(F, np.int32)
    errors = Z.zone_check(mm, pb, fl, zn, mark)
    errors += P.pcp_check(mm, a["cma_pcp"][0], nworkers, mark)
    for order in range(Z.NR_PAGE_ORDERS):
        if fl[Z.fl_index(order, Z.MIGRATE_ISOLATE)] != -1:
            errors.append(f"free_list[{order}][Isolate] not empty after the run")
    errors += O.owned_check(mm, a["ow_held"], a["ow_chk"], a["ow_owner"], a["ow_data"], mark)
    base = CmaModel.base(p)
    if p["mode"] == "cma":
        mts = pb[base >> Z.PAGEBLOCK_ORDER:F >> Z.PAGEBLOCK_ORDER] & Z.PB_MIGRATETYPE_MASK
        if np.any(mts != Z.MIGRATE_CMA):
            errors.append(f"{int(np.sum(mts != Z.MIGRATE_CMA))} CMA pageblocks are not MIGRATE_CMA")
    opb = p["order_per_bit"]
    nbits = CmaModel.nbits(p)
    expect = np.zeros(nbits, bool)
    for pfn, c, _ in a["cma_bufs"]:
        if pfn < 0:
            continue
        pfn, c = int(pfn), int(c)
        pages = mm[pfn:pfn + c]
        if np.any(pages[:, Z.PG_REFCOUNT] != 1) or np.any(pages[:, Z.PG_FLAGS] & Z.PGF_BUDDY):
            errors.append(f"CMA buffer at pfn {pfn}: a page is free or has a wrong refcount")
        mark[pfn:pfn + c] += 1
        expect[(pfn - base) >> opb:((pfn - base + c - 1) >> opb) + 1] = True
    bits = np.unpackbits(a["cma_bitmap"].view(np.uint8), bitorder="little")[:nbits].astype(bool)
    if np.any(bits != expect):
        errors.append(f"CMA bitmap disagrees with the allocated buffers at "
                      f"{int(np.sum(bits != expect))} bits")
    errors += Z.placement_errors(mark)
    return errors

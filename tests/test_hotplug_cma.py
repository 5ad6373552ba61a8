"""Memory hotplug and CMA (mmbench.models.hotplug / cma / isolation / owned).

Small geometries (sections of 2^11 pages) so that every test runs in a second or two once the
kernels are cached; the behaviour checked is the kernel's, not the size.
"""
from __future__ import annotations

import numpy as np
import pytest

from mmbench import harness
from mmbench.models import cma as C
from mmbench.models import hotplug as H
from mmbench.models import owned as O
from mmbench.models import zone as Z

HP = H.HotplugModel()
CM = C.CmaModel()
SMALL_HP = dict(section_shift=11, block_sections=1, nblocks=4, boot_sections=2, pause_ms=0.0)
SMALL_CMA = dict(nframes=1 << 14, cma_frames=1 << 13, count=1500, align_order=4)


def _arrays(model, p, nw):
    a = {s.name: np.zeros(s.shape, s.dtype) for s in model.layout(p, nw)}
    a["counters"] = np.zeros((nw, model.counter_columns()), np.int64)
    a["ctl"] = np.zeros(64, np.int64)
    return a


def _count(model, a, name):
    return int(a["counters"][:, model.counter_map()[name]].sum())


def _free_set(mm, fl):
    return {(o, mt, pfn) for (o, mt), pfns in Z.free_lists(mm, fl).items() for pfn in pfns}


def _drain(a, nw):
    assert H.hotplug_drain_all(a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"], a["hp_lk"],
                               a["hp_pcp"], 2, nw, a["counters"], a["ctl"]) >= 0


def _pin_unmovable(a, zrow, pfn):
    """Make ``pfn`` an in-use unmovable page (a kernel allocation the test holds)."""
    mm, pb, fl, zn = a["zone_mm"], a["zone_pb"], a["hp_fl"][zrow], a["hp_zn"][zrow]
    head = Z.free_block_containing(mm, zn, pfn)
    assert head >= 0
    order = int(mm[head, Z.PG_PRIVATE])
    mt = Z.get_pageblock_migratetype(pb, head)
    Z.del_page_from_free_list(mm, fl, zn, head, order, mt)
    for p in range(head, head + (1 << order)):
        if p != pfn:
            Z.free_one_page_locked(mm, pb, fl, zn, p, 0, mt, False)
    Z.prep_new_page(mm, pfn, 0, Z.MIGRATE_UNMOVABLE)


def test_offline_with_an_unmovable_page_fails_and_rolls_back():
    nw = 2
    p = HP.resolve("normal", dict(SMALL_HP, occupancy=0.3))
    a = _arrays(HP, p, nw)
    HP.setup(a, p, nw, seed=3)
    for _ in range(5):                       # owned movable pages, some in the blocks
        HP._call(a, p, 1, nw, 2000)
    _drain(a, nw)
    shift = p["section_shift"]
    start = p["boot_sections"] << shift      # block 0, online since setup
    end = start + (1 << shift)
    victim = end - 7                         # last pageblock: earlier ones get isolated first
    if a["zone_mm"][victim, Z.PG_REFCOUNT] != 0 or Z.free_block_containing(
            a["zone_mm"], a["hp_zn"][0], victim) < 0:
        victim = next(q for q in range(end - 1, start, -1)
                      if Z.free_block_containing(a["zone_mm"], a["hp_zn"][0], q) >= 0)
    _pin_unmovable(a, 0, victim)
    assert HP.check(a, p, nw) != []          # the test's own page is nowhere: check sees it
    before = {k: a[k].copy() for k in ("zone_pb", "hp_zn", "hp_pcp", "hp_sec", "ow_held",
                                       "ow_chk", "ow_owner", "ow_data")}
    mm0 = a["zone_mm"][:, [Z.PG_FLAGS, Z.PG_REFCOUNT, Z.PG_PRIVATE]].copy()
    free0 = _free_set(a["zone_mm"], a["hp_fl"][0])
    r = HP._toggle(a, p, nw, 0, a["counters"], a["ctl"])
    assert r == 0
    assert _count(HP, a, "offline_fail_unmovable") == 1 and _count(HP, a, "offline_ok") == 0
    for k, v in before.items():
        assert np.array_equal(a[k], v), f"{k} changed by a failed offline"
    assert np.array_equal(a["zone_mm"][:, [Z.PG_FLAGS, Z.PG_REFCOUNT, Z.PG_PRIVATE]], mm0)
    assert _free_set(a["zone_mm"], a["hp_fl"][0]) == free0
    assert a["hp_state"][H.ST_PCP_OFF] == 0
    # Give the page back: then the zone is whole and the same block offlines cleanly.
    Z.free_pages_prepare(a["zone_mm"], victim)
    Z.free_one_page_locked(a["zone_mm"], a["zone_pb"], a["hp_fl"][0], a["hp_zn"][0], victim, 0,
                           Z.get_pageblock_migratetype(a["zone_pb"], victim), False)
    assert HP.check(a, p, nw) == []
    assert HP._toggle(a, p, nw, 0, a["counters"], a["ctl"]) == 1 << shift
    assert HP.check(a, p, nw) == []


def test_offline_gives_up_on_a_pinned_page_and_keeps_the_block_online():
    nw = 2
    p = HP.resolve("movable", dict(SMALL_HP, occupancy=0.6, offline_passes=3))
    a = _arrays(HP, p, nw)
    HP.setup(a, p, nw, seed=4)
    for _ in range(5):
        HP._call(a, p, 1, nw, 3000)
    shift = p["section_shift"]
    start = p["boot_sections"] << shift
    held = a["ow_held"]
    inside = [s for s in range(held.shape[0]) if start <= held[s] < start + (1 << shift)]
    assert inside, "no owned page in block 0: the workload did not reach ZONE_MOVABLE"
    a["zone_mm"][held[inside[0]], Z.PG_REFCOUNT] = 2          # pin_user_pages
    r = HP._toggle(a, p, nw, 0, a["counters"], a["ctl"])
    assert r == 0 and _count(HP, a, "offline_fail_busy") == 1
    assert a["hp_sec"][p["boot_sections"], H.SC_FLAGS] & H.SECTION_IS_ONLINE
    assert _count(HP, a, "migrate_pinned") >= 3
    assert HP.check(a, p, nw) == []           # isolation undone, migrated data intact


def test_online_offline_cycles_leave_no_leak():
    nw = 2
    p = HP.resolve("movable", dict(SMALL_HP, occupancy=0.5, unmovable_share=0.1))
    a = _arrays(HP, p, nw)
    HP.setup(a, p, nw, seed=5)
    shift = p["section_shift"]
    boot = p["boot_sections"] << shift
    fresh = _arrays(HP, p, nw)
    Z.zone_build(fresh["zone_mm"][:boot], fresh["zone_pb"], fresh["hp_fl"][0],
                 fresh["hp_zn"][0], 0, boot)
    for i in range(4 * p["nblocks"]):
        HP._call(a, p, 1, nw, 500)
        HP._call(a, p, 0, nw, 1)
        assert HP.check(a, p, nw) == [], f"after toggle {i}"
    assert _count(HP, a, "offline_ok") >= p["nblocks"]
    assert _count(HP, a, "pages_migrated") > 0
    assert _count(HP, a, "data_corrupt") == 0
    # Give every page back, then offline and remove every block: the zone is the boot zone.
    for s in range(a["ow_held"].shape[0]):
        if a["ow_held"][s] >= 0:
            assert O.owned_free(a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"], a["hp_lk"],
                                a["hp_pcp"], a["ow_held"], a["ow_chk"], a["ow_owner"],
                                a["ow_data"], 1, s, a["counters"], a["ctl"], H.C_CO) == 1
    _drain(a, nw)
    for b in range(p["nblocks"]):
        if a["hp_sec"][p["boot_sections"] + b, H.SC_FLAGS] & H.SECTION_IS_ONLINE:
            assert HP._toggle(a, p, nw, b, a["counters"], a["ctl"]) == 1 << shift
    assert HP.check(a, p, nw) == []
    assert not np.any(a["hp_sec"][p["boot_sections"]:, H.SC_FLAGS])
    zn = a["hp_zn"]
    assert int(zn[0][Z.Z_MANAGED]) == boot and int(zn[1][Z.Z_MANAGED]) == 0
    assert int(zn[0][Z.Z_FREE_PAGES]) == boot and int(zn[1][Z.Z_FREE_PAGES]) == 0
    assert Z.free_counts(zn[0]) == Z.free_counts(fresh["hp_zn"][0])
    assert int(zn[1][Z.Z_SPANNED]) == 0 and int(zn[0][Z.Z_SPANNED]) == boot


def test_hotplug_two_workers_see_the_pcp_disabled_and_keep_invariants():
    p = HP.resolve("normal", dict(SMALL_HP, unmovable_share=0.02, pause_ms=0.5))
    cfg = harness.RunConfig(workers=2, duration=0.3, warmup=0.1, interval=0.05, seed=2)
    point = harness.run_point(HP, "normal", p, cfg)
    assert point["invariants"]["ok"], point["invariants"]["errors"]
    c = point["counters"]
    assert sum(c["pages_onlined"]) + sum(c["pages_offlined"]) > 0
    assert c["ops_pcp_disabled"][1] > 0 and c["ops_pcp_enabled"][1] > 0
    assert c["data_corrupt"] == [0, 0]
    assert set(point["latency"]) == {"hotplug_add", "hotplug_online", "hotplug_offline",
                                     "hotplug_remove"}
    assert point["extra"]["pcp_dip_per_worker"][0]["ops_per_kcycle_pcp_disabled"] is not None


def test_alloc_contig_range_migrates_pages_with_their_data():
    nw = 2
    p = CM.resolve("cma", dict(SMALL_CMA, occupancy=0.5))
    a = _arrays(CM, p, nw)
    CM.setup(a, p, nw, seed=7)
    base = CM.base(p)
    held, chk = a["ow_held"], a["ow_chk"]
    count = p["count"]
    in_range = [s for s in range(held.shape[0]) if base <= held[s] < base + count]
    assert len(in_range) > count // 4          # the prefragmented area is well occupied
    sums = {s: int(chk[s]) for s in in_range}
    pfn = C.cma_alloc(a["zone_mm"], a["zone_pb"], a["cma_fl"], a["cma_zn"], a["cma_lk"],
                      a["cma_pcp"], nw, a["cma_aux"], a["cma_bitmap"], base, CM.nbits(p),
                      p["order_per_bit"], count, p["align_order"], held, chk, a["ow_owner"],
                      a["ow_data"], 0, a["counters"], a["ctl"], C.C_CO)
    assert pfn == base
    assert _count(CM, a, "pages_migrated") == len(in_range)
    mm, data = a["zone_mm"], a["ow_data"]
    for s, c in sums.items():
        new = int(held[s])
        assert not base <= new < base + count
        assert O.page_checksum(data, new) == c and a["ow_owner"][new] == s + 1
    assert not np.any(a["ow_owner"][base:base + count])
    assert np.all(mm[base:base + count, Z.PG_REFCOUNT] == 1)
    assert not np.any(mm[base:base + count, Z.PG_FLAGS] & Z.PGF_BUDDY)
    a["cma_bufs"][0] = (pfn, count, 0)
    assert CM.check(a, p, nw) == []
    a["cma_bitmap"][0] ^= 1 << 3                 # a bitmap that disagrees is caught
    assert any("bitmap" in e for e in CM.check(a, p, nw))
    a["cma_bitmap"][0] ^= 1 << 3
    assert C.cma_release(mm, a["zone_pb"], a["cma_fl"], a["cma_zn"], a["cma_lk"], a["cma_pcp"],
                         a["cma_aux"], a["cma_bitmap"], base, p["order_per_bit"], pfn, count, 0,
                         a["counters"], a["ctl"], C.C_CO) == 0
    a["cma_bufs"][0] = (-1, -1, -1)
    assert CM.check(a, p, nw) == []


def test_cma_alloc_fails_on_pinned_pages_and_rolls_back():
    nw = 2
    p = CM.resolve("cma", dict(SMALL_CMA, occupancy=0.5, pinned_share=1.0, count=4096,
                               align_order=10))
    a = _arrays(CM, p, nw)
    CM.setup(a, p, nw, seed=8)
    pfn = C.cma_alloc(a["zone_mm"], a["zone_pb"], a["cma_fl"], a["cma_zn"], a["cma_lk"],
                      a["cma_pcp"], nw, a["cma_aux"], a["cma_bitmap"], CM.base(p), CM.nbits(p),
                      p["order_per_bit"], p["count"], p["align_order"], a["ow_held"],
                      a["ow_chk"], a["ow_owner"], a["ow_data"], 0, a["counters"], a["ctl"],
                      C.C_CO)
    assert pfn == -1
    assert _count(CM, a, "cma_ranges_tried") == 5       # 8192 / 1024-aligned candidates
    assert not np.any(a["cma_bitmap"])
    assert CM.check(a, p, nw) == []


@pytest.mark.parametrize("variant", ["cma", "buddy-highorder"])
def test_two_worker_run_never_hands_out_an_in_use_page(variant):
    p = CM.resolve(variant, dict(SMALL_CMA, occupancy=0.5, pinned_share=0.001))
    cfg = harness.RunConfig(workers=2, duration=0.3, warmup=0.1, interval=0.05, seed=3)
    point = harness.run_point(CM, variant, p, cfg)
    assert point["invariants"]["ok"], point["invariants"]["errors"]
    c = point["counters"]
    assert c["data_corrupt"] == [0, 0] and c["cma_overlap"] == [0, 0]
    ex = point["extra"]
    assert ex["attempts_run"] > 0
    if variant == "cma":
        assert sum(c["cma_alloc_ok"]) > 0
        assert ex["pages_migrated_per_alloc"] is not None
    else:
        assert ex["failure_rate_run"] > 0.5             # a fragmented zone has no 4 MiB block


# --- memmap_on_memory (MHP_MEMMAP_ON_MEMORY) -------------------------------------------------
def _block_range(p, b):
    first = p["boot_sections"] + b * p["block_sections"]
    return first, first << p["section_shift"]


def _free_ranges(a):
    """(lo, hi) of every free block on either zone's lists."""
    return [(pfn, pfn + (1 << o)) for z in range(2)
            for (o, _mt), pfns in Z.free_lists(a["zone_mm"], a["hp_fl"][z]).items()
            for pfn in pfns]


def _assert_vmemmap_untouched(a, p):
    """Every online block's first nv pages: reserved self-hosted, unowned, on no free list."""
    nv = H.vmemmap_pages(p)
    free = _free_ranges(a)
    mm = a["zone_mm"]
    seen = 0
    for b in range(p["nblocks"]):
        first, lo = _block_range(p, b)
        if not a["hp_sec"][first, H.SC_FLAGS] & H.SECTION_IS_ONLINE:
            continue
        seen += 1
        assert a["hp_sec"][first, H.SC_ALTMAP] == nv
        assert not any(s < lo + nv and e > lo for s, e in free), f"block {b}: vmemmap page free"
        fl = mm[lo:lo + nv, Z.PG_FLAGS]
        assert np.all(fl & Z.PGF_RESERVED) and np.all(fl & H.PGF_VMEMMAP_SELF_HOSTED)
        assert not np.any(fl & (Z.PGF_BUDDY | Z.PGF_LRU))
        assert np.all(mm[lo:lo + nv, Z.PG_REFCOUNT] == 1)
        assert not np.any(a["ow_owner"][lo:lo + nv])
        assert np.all((a["zone_pb"][lo >> Z.PAGEBLOCK_ORDER:(lo + nv) >> Z.PAGEBLOCK_ORDER] & 7)
                      == Z.MIGRATE_UNMOVABLE)
        # the rest of the block went to the buddy allocator (or was allocated from it)
        assert not np.any(mm[lo + nv:lo + (p["block_sections"] << p["section_shift"]),
                             Z.PG_FLAGS] & Z.PGF_RESERVED)
    return seen


def test_vmemmap_pages_per_block_follow_the_kernel():
    pp = dict(HP.resolve("movable", {}), memmap_on_memory=True)
    assert H.vmemmap_pages(pp) == 512                 # 128 MiB block: 2 MiB memmap, 1 pageblock
    assert H.vmemmap_pages(dict(pp, block_sections=4)) == 2048
    assert H.vmemmap_pages(dict(pp, section_shift=11)) == 512    # 32 pages, padded (force mode)
    assert H.vmemmap_pages(dict(pp, memmap_on_memory=False)) == 0
    assert HP.resolve("normal", dict(SMALL_HP, memmap_on_memory=True))["memmap_on_memory"]


@pytest.mark.parametrize("on", [False, True])
def test_memmap_on_memory_add_takes_nothing_from_zone_normal(on):
    nw = 2
    p = HP.resolve("normal", dict(SMALL_HP, memmap_on_memory=on))
    a = _arrays(HP, p, nw)
    HP.setup(a, p, nw, seed=11)
    shift, nsec = p["section_shift"], p["block_sections"]
    nv = H.vmemmap_pages(p)
    assert nv == (512 if on else 0)
    mm, pb, fl2, zn2, lk2, secs = (a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"],
                                   a["hp_lk"], a["hp_sec"])
    first, lo = _block_range(p, 1)                # odd blocks start absent
    assert secs[first, H.SC_FLAGS] == 0

    def add():
        return H.add_memory_block(mm, pb, fl2, zn2, lk2, secs, first, nsec, shift, nv, 0,
                                  a["counters"], a["ctl"])

    def remove():
        for i in range(nsec):
            assert H.sparse_remove_section(mm, pb, fl2, zn2, lk2, secs, first + i, shift, 0,
                                           a["counters"], a["ctl"]) == 0

    free0 = (Z.free_counts(zn2[0]), int(zn2[0][Z.Z_FREE_PAGES]), _free_set(mm, fl2[0]))
    assert add() == 0
    assert secs[first, H.SC_FLAGS] == H.SECTION_MARKED_PRESENT | H.SECTION_HAS_MEM_MAP
    taken = free0[1] - int(zn2[0][Z.Z_FREE_PAGES])
    if on:
        assert (Z.free_counts(zn2[0]), int(zn2[0][Z.Z_FREE_PAGES]),
                _free_set(mm, fl2[0])) == free0
        assert secs[first, H.SC_ALTMAP] == nv and lo <= secs[first, H.SC_MEMMAP] < lo + nv
    else:
        assert taken == nsec << (shift - 6) and secs[first, H.SC_ALTMAP] == 0
    assert HP.check(a, p, nw) == []               # added, not online: the memmap is accounted
    remove()
    assert secs[first].tolist() == [0, -1, -1, 0]
    assert (Z.free_counts(zn2[0]), int(zn2[0][Z.Z_FREE_PAGES])) == free0[:2]
    assert HP.check(a, p, nw) == []
    # With ZONE_NORMAL exhausted the block can still be added only when it carries its memmap.
    emptied = sorted(_free_set(mm, fl2[0]))
    for o, mt, pfn in emptied:
        Z.del_page_from_free_list(mm, fl2[0], zn2[0], pfn, o, mt)
    assert int(zn2[0][Z.Z_FREE_PAGES]) == 0
    r = add()
    assert r == (0 if on else -1)
    if on:
        remove()
    assert secs[first, H.SC_FLAGS] == 0
    for o, mt, pfn in emptied:
        Z.free_one_page_locked(mm, pb, fl2[0], zn2[0], pfn, o, mt, False)
    assert HP.check(a, p, nw) == []


@pytest.mark.parametrize("variant", ["normal", "movable"])
def test_memmap_on_memory_cycles_keep_vmemmap_off_the_lists_and_leave_no_leak(variant):
    nw = 2
    p = HP.resolve(variant, dict(SMALL_HP, occupancy=0.5, unmovable_share=0.0,
                                 memmap_on_memory=True))
    a = _arrays(HP, p, nw)
    HP.setup(a, p, nw, seed=12)
    shift = p["section_shift"]
    nv = H.vmemmap_pages(p)
    boot = p["boot_sections"] << shift
    blk = p["block_sections"] << shift
    fresh = _arrays(HP, p, nw)
    Z.zone_build(fresh["zone_mm"][:boot], fresh["zone_pb"], fresh["hp_fl"][0],
                 fresh["hp_zn"][0], 0, boot)
    assert _assert_vmemmap_untouched(a, p) == (p["nblocks"] + 1) // 2
    assert HP.check(a, p, nw) == []
    for i in range(4 * p["nblocks"]):
        HP._call(a, p, 1, nw, 500)
        HP._call(a, p, 0, nw, 1)
        assert HP.check(a, p, nw) == [], f"after toggle {i}"
        _assert_vmemmap_untouched(a, p)
    assert _count(HP, a, "offline_ok") >= p["nblocks"]
    assert _count(HP, a, "add_fail") == 0
    assert _count(HP, a, "data_corrupt") == 0
    assert _count(HP, a, "pages_onlined") % (blk - nv) == 0
    assert _count(HP, a, "pages_offlined") % (blk - nv) == 0
    online = sum(bool(a["hp_sec"][_block_range(p, b)[0], H.SC_FLAGS] & H.SECTION_IS_ONLINE)
                 for b in range(p["nblocks"]))
    zn = a["hp_zn"]
    managed = int(zn[0][Z.Z_MANAGED] + zn[1][Z.Z_MANAGED])
    present = int(zn[0][Z.Z_PRESENT] + zn[1][Z.Z_PRESENT])
    assert managed == boot + online * (blk - nv) and present == boot + online * blk
    # Give every page back, offline and remove every block: the zone is the boot zone again.
    for s in range(a["ow_held"].shape[0]):
        if a["ow_held"][s] >= 0:
            assert O.owned_free(a["zone_mm"], a["zone_pb"], a["hp_fl"], a["hp_zn"], a["hp_lk"],
                                a["hp_pcp"], a["ow_held"], a["ow_chk"], a["ow_owner"],
                                a["ow_data"], 1, s, a["counters"], a["ctl"], H.C_CO) == 1
    _drain(a, nw)
    for b in range(p["nblocks"]):
        if a["hp_sec"][_block_range(p, b)[0], H.SC_FLAGS] & H.SECTION_IS_ONLINE:
            assert HP._toggle(a, p, nw, b, a["counters"], a["ctl"]) == blk - nv
    assert HP.check(a, p, nw) == []
    assert not np.any(a["hp_sec"][p["boot_sections"]:, H.SC_FLAGS])
    assert not np.any(a["hp_sec"][:, H.SC_ALTMAP])
    assert int(zn[0][Z.Z_MANAGED]) == boot and int(zn[1][Z.Z_MANAGED]) == 0
    assert int(zn[0][Z.Z_PRESENT]) == boot and int(zn[1][Z.Z_PRESENT]) == 0
    assert int(zn[0][Z.Z_FREE_PAGES]) == boot and int(zn[1][Z.Z_FREE_PAGES]) == 0
    assert Z.free_counts(zn[0]) == Z.free_counts(fresh["hp_zn"][0])
    assert int(zn[1][Z.Z_SPANNED]) == 0 and int(zn[0][Z.Z_SPANNED]) == boot
    assert np.all(a["zone_mm"][boot:] == -1)                      # every struct page poisoned
    assert np.all(a["zone_pb"][boot >> Z.PAGEBLOCK_ORDER:] == Z.MIGRATE_ISOLATE)


def test_hotplug_memmap_on_memory_two_workers_keep_invariants():
    p = HP.resolve("movable", dict(SMALL_HP, unmovable_share=0.02, pause_ms=0.5,
                                   memmap_on_memory=True))
    cfg = harness.RunConfig(workers=2, duration=0.3, warmup=0.1, interval=0.05, seed=6)
    point = harness.run_point(HP, "movable", p, cfg)
    assert point["invariants"]["ok"], point["invariants"]["errors"]
    c = point["counters"]
    moved = sum(c["pages_onlined"]) + sum(c["pages_offlined"])
    assert moved > 0 and moved % ((1 << p["section_shift"]) - 512) == 0
    assert c["add_fail"] == [0, 0] and c["data_corrupt"] == [0, 0]
    ex = point["extra"]
    assert ex["memmap_on_memory"] is True and ex["vmemmap_pages_per_block"] == 512
    assert ex["phase_totals"]["add"]["count"] > 0 and ex["phase_totals"]["add"]["failed"] == 0

"""The buddy allocator of mmbench.models.zone against the naive reference (tests/naive_buddy.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from mmbench.locks import TTAS, init_lockset, lockset_words
from mmbench.models import zone as Z
from naive_buddy import NaiveBuddy


def make_zone(nframes, start, spanned, holes=()):
    arrs = {k: np.zeros(shape, dt) for k, (shape, dt) in Z.zone_arrays(nframes).items()}
    mm, pb, fl, zn = arrs["zone_mm"], arrs["zone_pb"], arrs["zone_fl"], arrs["zone_zn"]
    Z.zone_build(mm, pb, fl, zn, start, spanned, holes)
    return mm, pb, fl, zn


def lockset():
    lk = np.zeros(lockset_words(1, 1), np.int64)
    init_lockset(lk, 1, 1, TTAS)
    return lk, np.zeros((1, 32), np.int64), np.zeros(64, np.int64)


def test_boot_state_is_max_order_blocks():
    mm, pb, fl, zn = make_zone(8192, 0, 8192)
    assert Z.free_counts(zn) == [0] * 10 + [8]
    assert zn[Z.Z_FREE_PAGES] == 8192 and zn[Z.Z_MANAGED] == 8192
    assert Z.zone_check(mm, pb, fl, zn) == []
    # unaligned start and a hole: largest aligned blocks, merged where allowed
    mm, pb, fl, zn = make_zone(8192, 3, 8000, holes=[(4096 + 100, 4096 + 200)])
    ref = NaiveBuddy(3, 8003, holes=[(4196, 4296)])
    assert Z.free_counts(zn) == ref.nr_free()
    assert Z.free_lists(mm, fl) == ref.list_snapshot()
    assert Z.zone_check(mm, pb, fl, zn) == []
    assert mm[4200, Z.PG_FLAGS] == 0          # a hole has no initialised struct page


def test_expand_puts_upper_halves_at_heads_and_free_merges_back():
    mm, pb, fl, zn = make_zone(2048, 0, 2048)
    lk, cnt, ctl = lockset()
    pfn = Z.buddy_alloc(mm, pb, fl, zn, lk, 0, 0, Z.MIGRATE_MOVABLE, cnt, ctl, -1)
    assert pfn == 0                                   # lowest piece is kept
    assert Z.free_counts(zn) == [1] * 10 + [1]
    assert Z.free_lists(mm, fl)[(0, Z.MIGRATE_MOVABLE)] == [1]
    assert Z.free_lists(mm, fl)[(9, Z.MIGRATE_MOVABLE)] == [512]
    assert mm[0, Z.PG_REFCOUNT] == 1 and (mm[1, Z.PG_FLAGS] & Z.PGF_BUDDY)
    assert Z.buddy_free(mm, pb, fl, zn, lk, 0, pfn, 0, cnt, ctl) == 0
    assert Z.free_counts(zn) == [0] * 10 + [2]
    assert cnt[0, 0] == 2                             # one zone->lock acquisition each
    assert Z.zone_check(mm, pb, fl, zn) == []


def test_check_detects_corruption():
    mm, pb, fl, zn = make_zone(2048, 0, 2048)
    lk, cnt, ctl = lockset()
    Z.buddy_alloc(mm, pb, fl, zn, lk, 0, 0, Z.MIGRATE_MOVABLE, cnt, ctl, -1)
    zn[Z.Z_NR_FREE + 3] += 1
    assert any("nr_free[3]" in e for e in Z.zone_check(mm, pb, fl, zn))
    zn[Z.Z_NR_FREE + 3] -= 1
    mm[4, Z.PG_PRIVATE] = 1
    assert any("private" in e for e in Z.zone_check(mm, pb, fl, zn))
    mm[4, Z.PG_PRIVATE] = 2
    mm[8, Z.PG_LRU_PREV] = 77
    assert any("link" in e for e in Z.zone_check(mm, pb, fl, zn))


def test_no_merge_across_isolate_at_pageblock_order():
    mm, pb, fl, zn = make_zone(2048, 0, 2048)
    old = Z.set_migratetype_isolate_locked(mm, pb, fl, zn, 512)
    assert old == Z.MIGRATE_MOVABLE
    assert Z.zone_check(mm, pb, fl, zn) == []
    lists = Z.free_lists(mm, fl)
    assert lists[(9, Z.MIGRATE_ISOLATE)] == [512]
    assert zn[Z.Z_FREE_PAGES] == 2048 - 512           # isolated pages are not free pages
    Z.unset_migratetype_isolate_locked(mm, pb, fl, zn, 512, old)
    assert Z.free_counts(zn) == [0] * 10 + [2]
    assert Z.zone_check(mm, pb, fl, zn) == []


MTS = (Z.MIGRATE_UNMOVABLE, Z.MIGRATE_MOVABLE, Z.MIGRATE_RECLAIMABLE)
op = st.one_of(
    st.tuples(st.just("a"), st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5, 9, 10]), st.sampled_from(MTS)),
    st.tuples(st.just("f"), st.integers(0, 10_000), st.just(0)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=120), start=st.sampled_from([0, 512, 7]))
def test_buddy_matches_naive_reference(ops, start):
    nframes = 4096 + 512
    span = 4096
    mm, pb, fl, zn = make_zone(nframes, start, span)
    ref = NaiveBuddy(start, start + span)
    lk, cnt, ctl = lockset()
    held = []
    for kind, a, mt in ops:
        if kind == "a":
            got = Z.buddy_alloc(mm, pb, fl, zn, lk, 0, a, mt, cnt, ctl, -1)
            want = ref.alloc(a, mt)
            assert got == want
            if got >= 0:
                held.append(got)
        elif held:
            pfn = held.pop(a % len(held))
            Z.buddy_free(mm, pb, fl, zn, lk, 0, pfn, int(ref.used[pfn][0]), cnt, ctl)
            ref.free(pfn)
        assert Z.free_counts(zn) == ref.nr_free()
    assert Z.free_lists(mm, fl) == ref.list_snapshot()
    assert [int(x) for x in pb[start >> 9:(start + span - 1 >> 9) + 1]] == \
        [ref.pbmt[i] for i in range(start >> 9, (start + span - 1 >> 9) + 1)]
    assert zn[Z.Z_FREE_PAGES] == ref.free_pages()
    assert Z.zone_check(mm, pb, fl, zn) == []
    for pfn in held:
        Z.buddy_free(mm, pb, fl, zn, lk, 0, pfn, int(ref.used[pfn][0]), cnt, ctl)
        ref.free(pfn)
    assert Z.free_lists(mm, fl) == ref.list_snapshot()
    assert zn[Z.Z_FREE_PAGES] == span


def test_fallback_steals_whole_pageblock():
    mm, pb, fl, zn = make_zone(4096, 0, 4096)
    lk, cnt, ctl = lockset()
    pfn = Z.buddy_alloc(mm, pb, fl, zn, lk, 0, 0, Z.MIGRATE_UNMOVABLE, cnt, ctl, 5)
    assert pfn >= 0 and cnt[0, 5] == 1
    # an order-10 block was claimed: both its pageblocks are now UNMOVABLE
    assert int(pb[pfn >> 9]) == Z.MIGRATE_UNMOVABLE
    assert Z.zone_check(mm, pb, fl, zn) == []

"""per_cpu_pages (mmbench.models.pcp) against the naive reference, and the 2/batch fidelity check."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from mmbench.locks import TTAS, init_lockset, lockset_words
from mmbench.models import pcp as P
from mmbench.models import zone as Z
from naive_buddy import NaiveBuddy, NaivePCP

CC = 8          # pcp counter columns in the test's counter row
CS = 12


def setup(nframes, kind, batch, hmin, hmax):
    arrs = {k: np.zeros(shape, dt) for k, (shape, dt) in Z.zone_arrays(nframes).items()}
    mm, pb, fl, zn = arrs["zone_mm"], arrs["zone_pb"], arrs["zone_fl"], arrs["zone_zn"]
    Z.zone_build(mm, pb, fl, zn, 0, nframes)
    lk = np.zeros(lockset_words(1, 1), np.int64)
    init_lockset(lk, 1, 1, TTAS)
    pcp = np.zeros(P.PCP_WORDS, np.int64)
    P.pcp_init(pcp, 0, kind, batch, hmin, hmax)
    return mm, pb, fl, zn, lk, pcp, np.zeros((1, 32), np.int64), np.zeros(64, np.int64)


def test_kernel_sizing():
    assert P.zone_batchsize(1 << 20) == 63
    assert P.zone_batchsize(1 << 18) == 63
    assert P.zone_batchsize(1 << 14) == 3          # 16/4 = 4 -> 6 -> 4 - 1
    assert P.pcp_sizes("classic", 1 << 20, 0, 4) == (63, 378, 378)
    b, hmin, hmax = P.pcp_sizes("autotune", 1 << 20, 3096, 4)
    assert (b, hmin, hmax) == (63, 774, (1 << 20) // 8 // 4)
    assert P.pcp_sizes("highorder", 1 << 20, 3096, 64)[1] == 63 * 4   # at least batch << 2


def test_pcp_pages_are_accounted_and_drained():
    mm, pb, fl, zn, lk, pcp, cnt, ctl = setup(8192, P.PCP_MODERN, 15, 60, 60)
    pfns = [P.pcp_alloc(mm, pb, fl, zn, lk, pcp, 0, 0, Z.MIGRATE_MOVABLE, cnt, ctl, CC, CS)
            for _ in range(10)]
    assert min(pfns) >= 0 and cnt[0, CC + P.PCPC_REFILLS] == 1 and cnt[0, CC + P.PCPC_HITS] == 9
    mark = np.zeros(8192, np.int32)
    assert Z.zone_check(mm, pb, fl, zn, mark) == []
    assert P.pcp_check(mm, pcp, 1, mark) == []
    assert int(mark.sum()) == 8192 - 10
    for pfn in pfns:
        assert P.pcp_free(mm, pb, fl, zn, lk, pcp, 0, pfn, 0, cnt, ctl, CC) == 0
    assert P.drain_pages_zone(mm, pb, fl, zn, lk, pcp, 0, cnt, ctl)
    assert pcp[P.P_COUNT] == 0 and Z.free_counts(zn)[10] == 8
    pcp[P.P_COUNT] = 3                                  # a corrupted count is caught
    assert any("count" in e for e in P.pcp_check(mm, pcp, 1, np.zeros(8192, np.int32)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["classic", "5.14", "5.18", "highorder", "autotune"]),
       ops=st.lists(st.tuples(st.sampled_from("aaafd"), st.sampled_from([0, 0, 0, 1, 2, 3, 9, 5]),
                              st.sampled_from([0, 1, 1, 2]), st.integers(0, 1 << 20)),
                    min_size=1, max_size=150))
def test_pcp_matches_naive_reference(kind, ops):
    nframes = 4096
    batch, hmin, hmax = {"classic": (7, 42, 42), "highorder": (7, 28, 28),
                         "5.14": (7, 28, 28), "5.18": (7, 28, 28),
                         "autotune": (7, 28, 300)}[kind]
    k = P.PCP_KINDS[kind]
    mm, pb, fl, zn, lk, pcp, cnt, ctl = setup(nframes, k, batch, hmin, hmax)
    nb = NaiveBuddy(0, nframes)
    ref = NaivePCP(nb, kind == "classic", batch, hmin, hmax, int(zn[Z.Z_WMARK_HIGH]),
                   version=kind if kind in ("5.14", "5.18") else "6.7")
    held = []
    for op, order, mt, r in ops:
        if op == "a":
            got = P.pcp_alloc(mm, pb, fl, zn, lk, pcp, 0, order, mt, cnt, ctl, CC, CS)
            want = ref.alloc(order, mt)
            assert got == want
            if got >= 0:
                held.append(got)
        elif op == "f" and held:
            pfn = held.pop(r % len(held))
            order = nb.used[pfn][0]
            assert P.pcp_free(mm, pb, fl, zn, lk, pcp, 0, pfn, order, cnt, ctl, CC) == 0
            ref.free(pfn)
        elif op == "d" and kind == "autotune":
            P.decay_pcp_high(mm, pb, fl, zn, lk, pcp, 0, cnt, ctl, CC)
            ref.decay()
        assert pcp[P.P_COUNT] == ref.count
        assert pcp[P.P_HIGH] == ref.high
        assert cnt[0, 0] == ref.locks
        assert (cnt[0, CC + P.PCPC_REFILLS], cnt[0, CC + P.PCPC_DRAINS],
                cnt[0, CC + P.PCPC_FREE_HIGH]) == (ref.refills, ref.drains, ref.free_highs)
    assert Z.free_lists(mm, fl) == nb.list_snapshot()
    for i in range(P.NR_PCP_LISTS):
        lst, pfn = [], pcp[P.P_LISTS + 2 * i]
        while pfn != -1:
            lst.append(int(pfn))
            pfn = mm[pfn, Z.PG_LRU_NEXT]
        assert lst == ref.lists[i]
    mark = np.zeros(nframes, np.int32)
    assert Z.zone_check(mm, pb, fl, zn, mark) + P.pcp_check(mm, pcp, 1, mark) == []


def test_classic_zone_lock_per_op_is_2_over_batch():
    """The seed's claim: in a steady alloc/free stream crossing batch boundaries, zone->lock
    is taken 2/batch times per page cycled (one rmqueue_bulk + one free_pcppages_bulk)."""
    nframes = 1 << 16
    batch = 63                            # zone_batchsize of zones >= 1 GiB
    mm, pb, fl, zn, lk, pcp, cnt, ctl = setup(nframes, P.PCP_CLASSIC, batch, 6 * batch, 6 * batch)
    K = 16384
    held = np.zeros(K, np.int64)
    acq = []
    for cycle in range(4):
        a0 = cnt[0, 0]
        for i in range(K):
            held[i] = P.pcp_alloc(mm, pb, fl, zn, lk, pcp, 0, 0, Z.MIGRATE_MOVABLE, cnt, ctl, CC, CS)
        for i in range(K):
            P.pcp_free(mm, pb, fl, zn, lk, pcp, 0, int(held[i]), 0, cnt, ctl, CC)
        acq.append(cnt[0, 0] - a0)
    assert held.min() >= 0
    steady = sum(acq[1:]) / (3 * K)       # acquisitions per alloc+free pair
    assert abs(steady - 2 / batch) / (2 / batch) < 0.05, (steady, 2 / batch, acq)
    # and split evenly between refills and drains
    assert abs(cnt[0, CC + P.PCPC_REFILLS] - cnt[0, CC + P.PCPC_DRAINS]) <= 8


def _script(kind, batch=4, high=16):
    """The hand-traced sequence of test_version_rules_follow_a_hand_written_trace."""
    mm, pb, fl, zn, lk, pcp, cnt, ctl = setup(4096, P.PCP_KINDS[kind], batch, high, high)

    def alloc(order):
        pfn = P.pcp_alloc(mm, pb, fl, zn, lk, pcp, 0, order, Z.MIGRATE_MOVABLE, cnt, ctl, CC, CS)
        assert pfn >= 0
        return pfn

    def free(pfn, order):
        assert P.pcp_free(mm, pb, fl, zn, lk, pcp, 0, pfn, order, cnt, ctl, CC) == 0

    def counts():
        return (int(cnt[0, CC + P.PCPC_REFILLS]), int(cnt[0, CC + P.PCPC_DRAINS]),
                int(cnt[0, CC + P.PCPC_FREE_HIGH]), int(pcp[P.P_COUNT]),
                int(pcp[P.P_FREE_FACTOR]))

    trace = []
    small = [alloc(0) for _ in range(20)]         # 5 refills of batch 4
    big = [alloc(1) for _ in range(4)]            # 2 refills of max(4 >> 1, 2) = 2 blocks
    trace.append(counts())
    for pfn in small:
        free(pfn, 0)
    trace.append(counts())
    free(big[0], 1)
    trace.append(counts())
    free(big[1], 1)
    trace.append(counts())
    alloc(0)
    trace.append(counts())
    assert int(cnt[0, 0]) == trace[-1][0] + trace[-1][1]   # zone->lock: refills + drains
    return trace


def test_version_rules_follow_a_hand_written_trace():
    """batch 4, high 16, order-0 and order-1 movable pages; (refills, drains, free_high
    drains, pcp->count, free_factor) after each step, traced by hand from each version's
    page_alloc.c."""
    # 20 order-0 allocs: a refill of 4 every 4th (5); 4 order-1 allocs: a refill of 2 blocks
    # every 2nd (2); count 0.  Freeing the 20: at count 16 drain clamp(4 << 0, 4, 12) = 4
    # (free_factor 1, count 12), at 16 again drain clamp(4 << 1, 4, 12) = 8 (free_factor 2,
    # count 8).
    common = [(7, 0, 0, 0, 0), (7, 2, 0, 8, 2)]
    # 5.14-5.17: the order-1 frees just add 2 pages each (10, 12 < 16); the order-0 alloc
    # is a hit on the 8 order-0 pages left and halves free_factor (2 -> 1).
    assert _script("5.14") == common + [(7, 2, 0, 10, 2), (7, 2, 0, 12, 2), (7, 2, 0, 11, 1)]
    # 5.18-6.6: free_factor is 2 > 0, so each order-1 free is free_high: high is 0 and the
    # whole pageset (10 pages, then 2) goes back; free_factor is untouched by that path.
    # The next order-0 alloc refills (the lists are empty): 4 - 1 = 3 left.
    assert _script("5.18") == common + [(7, 3, 1, 0, 2), (7, 4, 2, 0, 2), (8, 4, 2, 3, 1)]


def test_free_high_batch_follows_the_llc_slice():
    # zone_pcp_update_cacheinfo: slice (KiB) >> 2 pages > 3 * batch
    assert P.free_high_batch(16384, 63)           # a 32 MiB L3 shared by 2 CPUs
    assert not P.free_high_batch(756, 63)         # 189 pages: not more than 3 * 63
    assert P.free_high_batch(760, 63)             # 190 pages
    assert not P.free_high_batch(0, 63)

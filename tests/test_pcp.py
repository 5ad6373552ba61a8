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
@given(kind=st.sampled_from(["classic", "highorder", "autotune"]),
       ops=st.lists(st.tuples(st.sampled_from("aaafd"), st.sampled_from([0, 0, 0, 1, 2, 3, 9, 5]),
                              st.sampled_from([0, 1, 1, 2]), st.integers(0, 1 << 20)),
                    min_size=1, max_size=150))
def test_pcp_matches_naive_reference(kind, ops):
    nframes = 4096
    batch, hmin, hmax = {"classic": (7, 42, 42), "highorder": (7, 28, 28),
                         "autotune": (7, 28, 300)}[kind]
    k = P.PCP_CLASSIC if kind == "classic" else P.PCP_MODERN
    mm, pb, fl, zn, lk, pcp, cnt, ctl = setup(nframes, k, batch, hmin, hmax)
    nb = NaiveBuddy(0, nframes)
    ref = NaivePCP(nb, kind == "classic", batch, hmin, hmax, int(zn[Z.Z_WMARK_HIGH]))
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

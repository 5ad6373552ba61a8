"""The pagealloc model: every variant x workload runs and leaves every frame accounted for."""
from __future__ import annotations

import numpy as np
import pytest

from mmbench.ctl import CTL_WORDS
from mmbench.models import pcp as P
from mmbench.models.pagealloc import ALLOCATORS, WORKLOADS, PageAllocModel

M = PageAllocModel()
NFRAMES = 1 << 15


def make(variant, nworkers=1, **kw):
    p = M.resolve(variant, dict({"nframes": NFRAMES, "data_pages": 16}, **kw))
    arrays = {s.name: np.zeros(s.shape, s.dtype) for s in M.layout(p, nworkers)}
    arrays["ctl"] = np.zeros(CTL_WORDS, np.int64)
    arrays["counters"] = np.zeros((nworkers, M.counter_columns()), np.int64)
    M.setup(arrays, p, nworkers, seed=3)
    M.compile(p)
    return p, arrays


def counters(arrays, w=0):
    return {k: int(arrays["counters"][w, i]) for k, i in M.counter_map().items()}


@pytest.mark.parametrize("variant", ALLOCATORS)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_each_workload_runs_single_worker_and_checks_clean(variant, workload):
    order = {"buddy": 9, "llfree": 9, "pcp-classic": 0}.get(variant, 2) if workload == "repeat" else 0
    p, arrays = make(variant, workload=workload, order=order)
    ctx = M.worker_init(arrays, p, 0, 1)
    done = sum(M.step(ctx, 3000) for _ in range(10))
    assert done >= 25_000          # bounded batches of about n ops, no stall
    M.worker_finish(ctx)
    assert M.check(arrays, p, 1) == []
    c = counters(arrays)
    assert c["ops_alloc"] > 0 and c["ops_free"] > 0
    if variant == "buddy":
        assert c["lock_acquisitions"] == c["ops_alloc"] + c["ops_free"] + c["alloc_fail"]
    if variant == "pcp-disabled" and order == 0 and not workload.startswith("mixed"):
        # zone_pcp_disable: batch 1, high 0: one zone->lock acquisition per page, each
        # through rmqueue_bulk or free_pcppages_bulk
        assert c["lock_acquisitions"] == c["ops_alloc"] + c["ops_free"] + c["alloc_fail"]
        assert c["pcp_refills"] == c["ops_alloc"] and c["pcp_drains"] == c["ops_free"]
    elif variant.startswith("pcp-") and not workload.startswith("mixed") and order == 0:
        assert c["lock_acquisitions"] < (c["ops_alloc"] + c["ops_free"]) / 4
    if variant == "llfree":
        assert c["lock_acquisitions"] == 0
    rep = M.report(arrays, p, 1)
    assert sum(rep["latency"]["alloc"]["counts"]) > 0 and len(rep["latency"]["free"]["counts"]) == 64


def test_check_catches_a_lost_and_a_double_counted_frame():
    p, arrays = make("pcp-5.18", workload="bulk")
    ctx = M.worker_init(arrays, p, 0, 1)
    M.step(ctx, 500)
    held = arrays["pa_held"]
    i = int(np.flatnonzero(held >= 0)[0])
    e = int(held[i])
    held[i] = -1
    assert any("nowhere" in x for x in M.check(arrays, p, 1))
    held[i] = e
    held[i + 1] = held[i]
    assert any("two places" in x or "refcount" in x for x in M.check(arrays, p, 1))


def _xorshift(u):
    """mmbench.models.owned.xorshift_next on an unsigned 64-bit state: (state, output)."""
    m = (1 << 64) - 1
    u ^= (u << 13) & m
    u ^= u >> 7
    u ^= (u << 17) & m
    return u, u & 0x7FFFFFFFFFFFFFFF


def test_frag_start_state_matches_a_naive_shuffle_and_rounds_keep_the_held_count():
    from mmbench.models import zone as Z
    from mmbench.models.pagealloc import S_SHUF
    p, arrays = make("buddy", workload="frag")
    A, cap = M.sizes(p, 1)
    assert A == (NFRAMES - 10) * 90 // 100          # linux-alloc-bench's N for T = 1
    H = A // 2
    ctx = M.worker_init(arrays, p, 0, 1)
    u = int(arrays["pa_wst"][0, S_SHUF]) & ((1 << 64) - 1)
    assert M.step(ctx, A) == A                      # the fill, nothing else
    before = arrays["pa_held"][:A].copy()
    assert (before >= 0).all()
    M.step(ctx, A - H)                              # shuffle, then the initial free
    # the naive reference: the same swap shuffle, then the second half freed
    ref = [int(x) for x in before]
    for i in range(A):
        u, r = _xorshift(u)
        j = r % A
        ref[i], ref[j] = ref[j], ref[i]
    assert arrays["pa_held"][:H].tolist() == ref[:H]
    assert (arrays["pa_held"][H:A] == -1).all()
    zn = arrays["zone_zn"]
    assert int(zn[Z.Z_FREE_PAGES]) == NFRAMES - H   # exactly the frames not held are free
    # the held-based measurement agrees with the naive set: huge frames holding none of it
    from mmbench.models.pagealloc import FRAG_LOGS, FRAG_ROUNDS
    per_huge = np.zeros(NFRAMES >> 9, np.int64)
    for e in ref[:H]:
        per_huge[(e >> 4) >> 9] += 1
    log = np.full((FRAG_LOGS, FRAG_ROUNDS), -1, np.int64)
    M.driver_module(p).frag_measure(arrays["pa_held"], 1, A, cap, np.zeros(NFRAMES >> 9, np.int64),
                                    log, 0, zn, arrays["llf_children"])
    assert log[0, 0] == int((per_huge == 0).sum()) and log[2, 0] == H
    # rounds: the held count never changes, and every round is measured
    for _ in range(200):
        M.step(ctx, 20000)
    assert M.check(arrays, p, 1) == []
    ext = M.report(arrays, p, 1)["extra"]
    rounds = ext["frag_free_huge_per_round"]
    assert len(rounds) >= 20
    assert set(ext["frag_held_per_round"]) == {H}
    assert all(0 <= r <= ext["frag_free_huge_max"] for r in rounds)
    assert ext["frag_free_huge_max"] == (NFRAMES - H) >> 9


def test_frag_counts_pages_on_pcp_lists_as_free():
    p, arrays = make("pcp-5.14", workload="frag")
    ctx = M.worker_init(arrays, p, 0, 1)
    for _ in range(100):
        M.step(ctx, 20000)
    assert M.check(arrays, p, 1) == []
    ext = M.report(arrays, p, 1)["extra"]
    # held-based count >= the buddy's free_area count (pcp-cached frames are free)
    assert all(a >= b for a, b in zip(ext["frag_free_huge_per_round"],
                                      ext["frag_free_huge_allocator_per_round"]))


def test_decay_follows_the_harness_clock_not_the_op_rate():
    """decay_pcp_high runs once per decay_interval_ms of the harness clock (a fake one here),
    whatever the number of ops in between; a late timer runs once, like a deferrable timer."""
    from mmbench.ctl import CTL_CLOCK_MS
    p, arrays = make("pcp-autotune", workload="repeat", decay_interval_ms=1000)
    ctx = M.worker_init(arrays, p, 0, 1)
    ctl = arrays["ctl"]
    seen = []
    for clock, ops in ((0, 50_000), (999, 10), (1000, 10), (1000, 200_000), (1500, 1),
                       (3500, 5_000), (3999, 100_000), (4000, 1)):
        ctl[CTL_CLOCK_MS] = clock
        M.step(ctx, ops)
        seen.append(counters(arrays)["pcp_decays"])
    assert seen == [0, 0, 1, 1, 1, 2, 2, 3]
    M.worker_finish(ctx)
    assert M.check(arrays, p, 1) == []
    # no other variant has the timer
    p, arrays = make("pcp-5.18", workload="repeat")
    arrays["ctl"][CTL_CLOCK_MS] = 10_000
    M.step(M.worker_init(arrays, p, 0, 1), 1000)
    assert counters(arrays)["pcp_decays"] == 0


def test_pcp_high_divides_by_the_node_cpus():
    """zone_highsize divides the low watermark by the node's CPUs, not by the sweep's workers."""
    highs = {}
    for node_cpus in (2, 26):
        p, arrays = make("pcp-5.14", workload="bulk", node_cpus=node_cpus)
        highs[node_cpus] = int(arrays["pcp"][P.P_HIGH])
        assert M.report(arrays, p, 1)["extra"]["node_cpus"] == node_cpus
    batch = int(arrays["pcp"][P.P_BATCH])
    assert highs[2] > highs[26] >= 4 * batch
    # 0 (the default) stands for the sweep's largest worker count
    p, arrays = make("pcp-5.14", workload="bulk", sweep_max_workers=26)
    assert int(arrays["pcp"][P.P_HIGH]) == highs[26]


def test_free_high_batch_is_set_from_the_llc_slice_on_6_7_only():
    for slice_kib, want in ((0, False), (84, False), (88, True)):   # batch 7: 21 pages
        p, arrays = make("pcp-autotune", workload="bulk", llc_slice_kib=slice_kib)
        assert bool(arrays["pcp"][P.P_FLAGS] & P.PCPF_FREE_HIGH_BATCH) == want
    p, arrays = make("pcp-5.18", workload="bulk", llc_slice_kib=16384)
    assert not arrays["pcp"][P.P_FLAGS] & P.PCPF_FREE_HIGH_BATCH
    # -1 (the default) is resolved from this box's sysfs, so the result names what ran
    p = M.resolve("pcp-autotune", {"nframes": NFRAMES})
    assert p["llc_slice_kib"] == P.llc_slice_kib() >= 0


def test_the_aged_zone_has_order0_holes_and_a_resident_set():
    from mmbench.models import zone as Z
    p, arrays = make("buddy", workload="bulk")
    res = arrays["pa_resident"]
    nblocks = NFRAMES >> Z.PAGEBLOCK_ORDER
    # a random half of the frames of ~aged_blocks of the pageblocks
    assert 0.05 * NFRAMES < res.sum() < 0.25 * NFRAMES
    used_blocks = res.reshape(nblocks, -1).any(axis=1)
    assert 0.05 * nblocks < used_blocks.sum() < 0.5 * nblocks
    free = Z.free_counts(arrays["zone_zn"])
    assert free[0] > 0                           # holes with no free buddy
    top = free[10]
    ctx = M.worker_init(arrays, p, 0, 1)
    M.step(ctx, 50)                              # the first order-0 allocations fill holes
    assert Z.free_counts(arrays["zone_zn"])[10] == top
    assert M.check(arrays, p, 1) == []
    arrays["pa_resident"][int(np.flatnonzero(res == 0)[0])] = 1   # a free frame claimed resident
    assert any("two places" in e or "refcount" in e for e in M.check(arrays, p, 1))
    p, arrays = make("buddy", workload="bulk", aged_blocks=0.0)  # the pristine zone
    assert Z.free_counts(arrays["zone_zn"])[0] == 0

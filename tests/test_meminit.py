"""The meminit model: every boot initialises each struct page once and hands exactly the
memblock-free pages to a fully merged buddy; padata chunks follow the kernel's formula."""
from __future__ import annotations

import numpy as np
import pytest

from mmbench.ctl import CTL_WORDS
from mmbench.harness import RunConfig, run_point
from mmbench.models import meminit as MI
from mmbench.models import zone as Z
from mmbench.models.meminit import MODES, MemInitModel

M = MemInitModel()
SECTION = MI.PAGES_PER_SECTION
SMALL = dict(nodes=2, node_mib=256, kernel_mib=16, first_deferred_mib=128, alloc_mib=128,
             late_init_mib=64, poison=True, memset_probe_mib=4)


def make(variant, nworkers=1, **kw):
    p = M.resolve(variant, dict(SMALL, **kw))
    a = {s.name: np.zeros(s.shape, s.dtype) for s in M.layout(p, nworkers)}
    a["ctl"] = np.zeros(CTL_WORDS, np.int64)
    a["counters"] = np.zeros((nworkers, M.counter_columns()), np.int64)
    M.setup(a, p, nworkers, seed=1)
    M.compile(p)
    return p, a


def drive(a, p, nworkers, calls, n=3000):
    """Run the workers' steps round-robin in this process (deterministic interleaving)."""
    ctxs = [M.worker_init(a, p, w, nworkers) for w in range(nworkers)]
    done = 0
    for _ in range(calls):
        for ctx in ctxs:
            done += M.step(ctx, n)
    return done


def counter(a, name):
    return int(a["counters"][:, M.counter_index(name)].sum())


# --- padata ---------------------------------------------------------------------------------
def naive_padata(size, min_chunk, align, max_threads):
    """padata_do_multithreaded's sizing, as KERNEL_ALGORITHMS.md states it."""
    nworks = min(max(size // min_chunk, 1), max_threads)
    chunk = max(size // (nworks * 4), min_chunk)
    chunk = -(-chunk // align) * align
    return nworks, chunk


def naive_claims(start, size, chunk):
    """The helpers' loop under ps->lock: [s, min(roundup(s + 1, chunk), end))."""
    out = []
    while size > 0:
        n = min(-(-(start + 1) // chunk) * chunk - start, size)
        out.append((start, start + n))
        start, size = start + n, size - n
    return out


def test_padata_sizing_and_chunks_match_the_naive_formula():
    rng = np.random.default_rng(5)
    for _ in range(400):
        sections = int(rng.integers(0, 600))
        size = sections * SECTION + (int(rng.integers(0, SECTION)) if rng.random() < 0.2 else 0)
        if size == 0:
            continue
        threads = int(rng.integers(1, 130))
        start = int(rng.integers(0, 64)) * SECTION
        nworks, chunk = MI.padata_params(size, SECTION, SECTION, threads)
        assert (nworks, chunk) == naive_padata(size, SECTION, SECTION, threads)
        chunks = MI.padata_chunks(start, size, chunk)
        assert chunks == naive_claims(start, size, chunk)
        assert chunks[0][0] == start and chunks[-1][1] == start + size
        for s, e in chunks:
            # never split a section (nor, a fortiori, a max-order block), except at the job's end
            assert s % SECTION == 0 and (e % SECTION == 0 or e == start + size)
            assert s % MI.MAX_ORDER_NR_PAGES == 0
    # 768 GiB on one node with 112 CPUs: 112 helpers, 4 chunks each of 14 sections (1.75 GiB)
    assert MI.padata_params(768 << 18, SECTION, SECTION, 112) == (112, 14 * SECTION)
    assert MI.padata_params(SECTION // 2, SECTION, SECTION, 8) == (1, SECTION)


# --- single process, every mode -------------------------------------------------------------
def canonical_free_counts(free: np.ndarray) -> list[int]:
    """nr_free per order of a fully merged buddy over the free pages (order <= 10, one type)."""
    counts = []
    covered = np.zeros(free.shape[0], bool)
    for order in range(Z.MAX_PAGE_ORDER, -1, -1):
        blk = free.reshape(-1, 1 << order).all(axis=1) & ~covered.reshape(-1, 1 << order).any(axis=1)
        counts.append(int(blk.sum()))
        covered |= np.repeat(blk, 1 << order)
    return counts[::-1]


@pytest.mark.parametrize("variant", MODES)
@pytest.mark.parametrize("nodes,nworkers", [(2, 1), (3, 2)])
def test_each_boot_initialises_every_page_once_and_merges_fully(variant, nodes, nworkers):
    p, a = make(variant, nworkers, nodes=nodes)
    drive(a, p, nworkers, calls=150)
    assert M.finish_boot(a, p, nworkers)
    gen = int(a["mi_glob"][MI.G_GEN])
    assert gen >= 2
    assert M.verify(a, p, nworkers) == []
    total = nodes * p["node_mib"] * MI.PAGES_PER_MIB
    # one op = one page initialised: exactly every frame once per boot, over all boots
    assert counter(a, "pages_init") == gen * total
    assert a["mi_err"].sum() == 0
    resv = np.zeros(total, bool)
    for r in MI.node_ranges(p):
        for s, e in r["reserved"]:
            resv[s:e] = True
    allocated = np.zeros(total, bool)
    for w in range(nworkers):
        for pfn in a["mi_held"][w, :a["mi_wst"][w, MI.S_A_DONE]]:
            allocated[pfn:pfn + (1 << p["alloc_order"])] = True
    npages = p["node_mib"] * MI.PAGES_PER_MIB
    for nd in range(nodes):
        sl = slice(nd * npages, (nd + 1) * npages)
        want = canonical_free_counts(~resv[sl] & ~allocated[sl])
        if not allocated[sl].any():
            assert Z.free_counts(a["mi_zn"][nd]) == want
        assert a["mi_zn"][nd, Z.Z_PRESENT] == npages
        assert a["mi_zn"][nd, Z.Z_MANAGED] == (~resv[sl]).sum()


def test_serial_boot_completes_only_with_full_init_deferred_after_one_section():
    for variant in ("serial", "deferred"):
        p, a = make(variant, 1, node_mib=512, poison=False)
        drive(a, p, 1, calls=200, n=1 << 14)
        assert M.finish_boot(a, p, 1) and M.verify(a, p, 1) == []
        gen = int(a["mi_glob"][MI.G_GEN])
        st = M.round_stats(a)
        assert len(st["gens"]) >= 2
        boot, deferred = counter(a, "pages_boot"), counter(a, "pages_deferred")
        if variant == "serial":
            assert np.all(st["boot"] == st["full"])
            assert deferred == 0 and boot == gen * 2 * 512 * MI.PAGES_PER_MIB
        else:
            assert np.all(st["boot"] < st["full"])
            # early boot: the first section of each node plus the memmap reserved at its top
            assert boot == gen * 2 * (SECTION + 512 * MI.PAGES_PER_MIB // 64)
            assert deferred == gen * (2 * 512 * MI.PAGES_PER_MIB) - boot


def test_verify_catches_a_stale_page_a_lost_page_and_a_double_init():
    p, a = make("parallel", 1)
    drive(a, p, 1, calls=40)
    assert M.finish_boot(a, p, 1) and M.verify(a, p, 1) == []
    mm = a["zone_mm"]
    gen = int(a["mi_glob"][MI.G_GEN])
    mm[70000, Z.PG_INDEX] = gen - 1
    assert any("not initialised in boot" in e for e in M.verify(a, p, 1))
    mm[70000, Z.PG_INDEX] = gen
    # unlink the tail block of the order-10 movable list: its pages are nowhere
    zn, fl = a["mi_zn"][0], a["mi_fl"][0]
    h = Z.fl_index(Z.MAX_PAGE_ORDER, Z.MIGRATE_MOVABLE)
    tail = int(fl[h + 1])
    Z.del_page_from_free_list(mm, fl, zn, tail, Z.MAX_PAGE_ORDER, Z.MIGRATE_MOVABLE)
    errs = M.verify(a, p, 1)
    assert any("neither in the buddy nor allocated" in e for e in errs)
    # a page initialised twice in one boot is counted by the kernel itself
    a["mi_err"][:] = 0
    MI._init_single_page(mm, 5, int(a["mi_npar"][0, MI.NP_FLAGS_HI]), gen, a["mi_err"])
    assert a["mi_err"][MI.E_DUP_INIT] == 1


def test_chunk_log_tiles_the_job_and_a_gap_is_reported():
    p, a = make("parallel", 2, nodes=1, node_mib=1024)
    drive(a, p, 2, calls=80)
    assert M.finish_boot(a, p, 2) and M.verify(a, p, 2) == []
    ns = a["mi_nst"][0]
    js, je = int(ns[MI.NS_JSTART]), int(ns[MI.NS_JEND])
    assert (js, je) == (32768, 262144) and ns[MI.NS_NWORKS] == 2
    nch = int(ns[MI.NS_NCHUNK])
    chunks = sorted(tuple(map(int, c[:2])) for c in a["mi_clog"][0, :nch])
    assert chunks == MI.padata_chunks(js, je - js, int(ns[MI.NS_CHUNK]))
    a["mi_clog"][0, 0, 1] -= SECTION      # shorten a chunk: a section was never claimed
    assert any("gap or overlap" in e or "end at" in e for e in M.verify(a, p, 2))


def test_deferred_grow_zone_grows_one_section_then_yields_to_the_init_thread():
    p, a = make("grow-on-demand", 2, nodes=1, node_mib=512, alloc_mib=256, late_init_mib=256)
    ctxs = [M.worker_init(a, p, w, 2) for w in range(2)]
    # worker 0 boots; stop once both workers are past barrier C (worker 1 allocating)
    for _ in range(200):
        for ctx in ctxs:
            M.step(ctx, 64)
        if a["mi_wst"][1, MI.S_PHASE] == MI.PH_ALLOC and a["mi_wst"][1, MI.S_A_DONE] > 0:
            break
    ns = a["mi_nst"][0]
    fdp = int(ns[MI.NS_FDP])
    assert fdp == 128 * MI.PAGES_PER_MIB           # not taken over: late_init_mib not reached
    args = (a["zone_mm"], a["zone_pb"], a["mi_fl"][0], a["mi_zn"][0], a["mi_zlock"][0],
            a["mi_rlock"], ns, a["mi_fr"][0], int(a["mi_nfr"][0]), 0, int(a["mi_npar"][0, MI.NP_END]))
    tail = (int(a["mi_npar"][0, MI.NP_FLAGS_HI]), int(a["mi_wst"][1, MI.S_GEN]), a["mi_err"], 1,
            a["counters"], a["mi_rcnt"], a["ctl"])
    free_before = int(a["mi_zn"][0, Z.Z_FREE_PAGES])
    got = MI.deferred_grow_zone(*args, 0, fdp, *tail)
    assert got == SECTION and ns[MI.NS_FDP] == fdp + SECTION
    assert a["mi_zn"][0, Z.Z_FREE_PAGES] == free_before + SECTION
    # a stale first_deferred_pfn: someone else grew the zone, true without work
    assert MI.deferred_grow_zone(*args, 0, fdp, *tail) == 0 and ns[MI.NS_FDP] == fdp + SECTION
    # an order-10 request still grows one section (ALIGN(1024, PAGES_PER_SECTION))
    assert MI.deferred_grow_zone(*args, 10, fdp + SECTION, *tail) == SECTION
    ns[MI.NS_FDP] = -1                              # the init thread took the rest
    assert MI.deferred_grow_zone(*args, 0, -1, *tail) == -1
    ns[MI.NS_FDP] = fdp + 2 * SECTION
    assert a["mi_err"].sum() == 0


def test_allocation_check_flags_an_uninitialised_page():
    mm = np.zeros((4, 8), np.int64)
    err = np.zeros(MI.ERR_WORDS, np.int64)
    hi = (Z.ZONE_NORMAL << Z.ZONES_PGSHIFT)
    for pfn in range(4):
        MI._init_single_page(mm, pfn, hi, 7, err)
        mm[pfn, Z.PG_FLAGS] &= ~Z.PGF_RESERVED
    MI._verify_alloc(mm, 0, 2, hi, 7, err)
    assert err.sum() == 0
    mm[3, Z.PG_INDEX] = 6                          # left over from the previous boot
    mm[2, Z.PG_FLAGS] = -1                         # page_init_poison
    MI._verify_alloc(mm, 0, 2, hi, 7, err)
    assert err[MI.E_UNINIT_ALLOC] == 1 and err[MI.E_BAD_FLAGS] == 1


def test_worker_roles():
    wrole, wnodes, ks, nalloc = MI.worker_roles("parallel", 2, 5, 0, 0)
    assert ks == [3, 2] and nalloc == [0, 0]
    assert wrole[:, MI.WR_RANK].tolist() == [0, 0, 1, 1, 2]
    wrole, wnodes, ks, nalloc = MI.worker_roles("grow-on-demand", 1, 4, 0, 10)
    assert ks == [1] and nalloc == [3]
    assert wrole[:, MI.WR_ALLOC].tolist() == [0, 1, 1, 1]
    assert wrole[1:, MI.WR_QUOTA].sum() == 10
    wrole, wnodes, ks, nalloc = MI.worker_roles("deferred", 3, 2, 0, 0)
    assert wnodes[0].tolist()[:2] == [0, 2] and wnodes[1, 0] == 1


# --- real processes -------------------------------------------------------------------------------
def run(variant, **kw):
    p = M.resolve(variant, dict(SMALL, **kw))
    return run_point(M, variant, p, RunConfig(workers=2, duration=0.3, warmup=0.1, interval=0.05))


@pytest.mark.parametrize("variant,kw", [("serial", {}), ("deferred", {}),
                                        ("parallel", {"nodes": 1, "node_mib": 1024})])
def test_two_processes_boot_repeatedly_and_check_clean(variant, kw):
    pt = run(variant, **kw)
    assert pt["invariants"] == {"ok": True, "errors": []}
    c = pt["counters"]
    ex = pt["extra"]
    assert ex["rounds_measured"] >= 2 and sum(c["rounds"]) >= 2
    assert ex["boot_ms_median"] <= ex["full_init_ms_median"]
    assert ex["memset_gbps"] > 0 and ex["memmap_write_gbps"] > 0
    if variant == "serial":
        assert c["pages_init"][1] == 0          # worker 1 only waits
    else:
        assert c["pages_deferred"][1] > 0 and min(c["chunks"]) > 0
    if variant == "parallel":
        assert ex["nworks"] == [2]
        assert 1.0 <= ex["chunk_balance_max_over_mean"] <= 2.0


def test_grow_on_demand_never_hands_out_an_uninitialised_page():
    pt = run("grow-on-demand", nodes=1, node_mib=512, alloc_mib=256, late_init_mib=192)
    assert pt["invariants"] == {"ok": True, "errors": []}
    c = pt["counters"]
    # worker 1 allocates and had to grow the zone past the boot prefix before the init
    # thread took over (late_init_mib > the 111 MiB free after boot)
    assert c["pages_allocated"][1] > 0 and c["grow_calls"][1] > 0
    assert c["pages_grown"][1] > 0
    assert c["pages_allocated"][0] == 0 and c["chunks"][0] > 0
    assert pt["extra"]["grow_calls"] >= 1

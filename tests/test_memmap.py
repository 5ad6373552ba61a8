"""The memmap family: lookups against a naive reference, hole handling, measured memory."""
from __future__ import annotations

import contextlib
import mmap
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmbench.ctl import CTL_WORDS
from mmbench.models import memmap as mm
from mmbench.models.memmap import MemmapModel, ModelNotRunnable, physical_layout

VARIANTS = ("flat", "sparse", "sparse-extreme", "vmemmap", "hvo")
# Small machines: 2 MiB sections, 64 GiB of physical address space (classic table 512 KiB).
SMALL = dict(section_bits=21, max_physmem_bits=36, node_stride_bits=30, mem_mib=32, thp=False)


def _arrays(m, p, W):
    arrays = {s.name: np.zeros(s.shape, s.dtype) for s in m.layout(p, W)}
    arrays["ctl"] = np.zeros(CTL_WORDS, np.int64)
    arrays["counters"] = np.zeros((W, m.counter_columns()), np.int64)
    return arrays


@contextlib.contextmanager
def built(variant, W=1, seed=1, **params):
    m = MemmapModel()
    p = m.resolve(variant, params)
    arrays = _arrays(m, p, W)
    m.setup(arrays, p, W, seed)
    try:
        yield m, p, arrays
    finally:
        m.teardown(arrays, p)


class Naive:
    """What each memory model's lookups must give, from the e820-like ranges alone."""

    def __init__(self, p):
        self.p = p
        self.kind = p["memory_model"]
        self.ranges = physical_layout(p)
        self.pfns = np.concatenate([np.arange(a, b) for a, b, _ in self.ranges])
        self.node = np.concatenate([np.full(b - a, n) for a, b, n in self.ranges])
        self.pps = 1 << (p["section_bits"] - 12)
        self.sections = sorted({int(x) // self.pps for x in self.pfns})
        self.slot = {s: i for i, s in enumerate(self.sections)}
        self.first, self.end = int(self.ranges[0, 0]), int(self.ranges[-1, 1])

    def page(self, pfn):
        if self.kind == "flat":
            return (pfn - self.first) * 64
        if self.kind in ("sparse", "sparse-extreme"):
            s = pfn // self.pps
            return (self.slot[s] * self.pps + pfn - s * self.pps) * 64
        return pfn * 64

    def valid(self, pfn):
        if self.kind == "flat":
            return self.first <= pfn < self.end
        return pfn >= 0 and pfn // self.pps in self.slot

    def holes(self, rng, k=200):
        """Absent pfns: in the span, in section-aligned holes, past the span and past MAX_PHYSMEM."""
        present = set(self.pfns.tolist())
        span = [x for x in rng.integers(self.first, self.end, 4 * k).tolist() if x not in present][:k]
        far = [self.end + 1, self.end + self.pps * 300, (1 << (self.p["max_physmem_bits"] - 12)) + 5]
        return np.array(span + far, dtype=np.int64)


# --- layouts ----------------------------------------------------------------------------

def test_layout_presets():
    c = physical_layout(MemmapModel().resolve("flat", dict(SMALL, layout="contiguous", nodes=2)))
    assert c.tolist() == [[0, 4096, 0], [4096, 8192, 1]]
    s = physical_layout(MemmapModel().resolve("flat", dict(SMALL, layout="numa-spread", nodes=4)))
    assert s[:, 0].tolist() == [0, 1 << 18, 2 << 18, 3 << 18] and (s[:, 1] - s[:, 0] == 2048).all()
    p = MemmapModel().resolve("flat", dict(SMALL, layout="fragmented", mem_mib=64, nodes=2))
    f = physical_layout(p)
    assert (f == physical_layout(p)).all()                       # seeded
    assert int((f[:, 1] - f[:, 0]).sum()) == 64 << 8
    assert (f[1:, 0] > f[:-1, 1]).all()                          # sorted, disjoint, merged
    assert (f[:, :2] % 128 == 0).all()                           # granule of PAGES_PER_SECTION/4
    secs = {x // 512 for a, b, _ in f for x in range(a, b)}
    assert len(secs) < (int(f[-1, 1]) - 1) // 512 + 1           # section-aligned holes
    assert any(a % 512 or b % 512 for a, b, _ in f)              # unaligned holes
    assert f[:, 2].tolist() == sorted(f[:, 2].tolist()) and set(f[:, 2]) == {0, 1}


def test_validate_refuses_impossible_configs():
    m = MemmapModel()
    with pytest.raises(ValueError, match="section_bits >= 21"):
        m.resolve("hvo", dict(SMALL, section_bits=20))
    with pytest.raises(ValueError, match="SPARSEMEM_EXTREME"):
        m.resolve("sparse", dict(SMALL, max_physmem_bits=52, section_bits=24))
    with pytest.raises(ValueError, match="MAX_PHYSMEM_BITS"):
        m.resolve("vmemmap", dict(SMALL, layout="numa-spread", node_stride_bits=35))
    with pytest.raises(ValueError, match="page->flags"):
        m.resolve("sparse-extreme", dict(SMALL, max_physmem_bits=52, section_bits=18))


# --- lookups vs the naive reference -----------------------------------------------------

layouts = st.fixed_dictionaries({
    "variant": st.sampled_from(VARIANTS),
    "layout": st.sampled_from(mm.LAYOUTS),
    "section_bits": st.integers(18, 21),
    "nodes": st.integers(1, 4),
    "mem_mib": st.integers(4, 24),
    "node_stride_bits": st.integers(28, 31),
    "hole_share": st.floats(0.0, 0.8),
    "layout_seed": st.integers(0, 1000),
    "huge_share": st.floats(0.0, 1.0),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts, st.integers(0, 2**31))
def test_lookups_match_naive_reference(d, seed):
    d = dict(d)
    variant = d.pop("variant")
    if variant == "hvo":
        d["section_bits"] = 21
    d.update(max_physmem_bits=36, thp=False)
    with built(variant, **d) as (m, p, arrays):
        ref = Naive(p)
        pages = m.pfn_to_page(arrays, ref.pfns)
        want = np.array([ref.page(int(x)) for x in ref.pfns])
        assert (pages == want).all(), "pfn_to_page disagrees with the reference"
        assert (m.page_to_pfn(arrays, pages) == ref.pfns).all()
        # page->flags carries section, node and zone
        g = mm._geometry(p)
        flags = arrays["mm_memmap"][pages >> 3]
        assert (((flags >> g["spg"]) & ((1 << g["swidth"]) - 1)) == ref.pfns >> g["psshift"]).all()
        assert (((flags >> g["npg"]) & 63) == ref.node).all()
        # holes: each model's own rule
        holes = ref.holes(np.random.default_rng(seed))
        valid = m.pfn_valid(arrays, holes)
        assert valid.tolist() == [ref.valid(int(x)) for x in holes]
        if variant in ("flat", "sparse", "sparse-extreme"):
            hp = m.pfn_to_page(arrays, holes)
            assert ((hp >= 0) == valid).all()
            # a hole that has a struct page (flat, or inside a present section) is PG_reserved
            res = arrays["mm_memmap"][hp[hp >= 0] >> 3] >> mm.PG_RESERVED & 1
            assert (res == 1).all()
        assert m.check(arrays, p, 1) == []


def test_holes_rejected_each_models_way():
    d = dict(SMALL, layout="numa-spread", nodes=2, node_stride_bits=30)
    hole_in_span = 1 << 17                     # 512 MiB: between the two nodes
    for variant in VARIANTS:
        with built(variant, **d) as (m, p, a):
            page = m.pfn_to_page(a, [hole_in_span, 1 << 22])[0]
            valid = m.pfn_valid(a, [hole_in_span, 1 << 22, -1])
            if variant == "flat":              # any pfn in the span has a struct page
                assert page == hole_in_span * 64 and valid.tolist() == [True, False, False]
                assert a["mm_memmap"][page >> 3] >> mm.PG_RESERVED & 1
            elif variant in ("sparse", "sparse-extreme"):
                assert page == -1 and not valid.any()
            else:                              # vmemmap + pfn is always an address...
                assert page == hole_in_span * 64
                assert not valid.any()         # ...but pfn_valid() says no struct page there


def test_extreme_allocates_roots_on_demand():
    d = dict(SMALL, layout="numa-spread", nodes=4, node_stride_bits=31)   # 1024 sections apart
    with built("sparse-extreme", **d) as (m, p, a):
        roots = a["mm_t1"]
        assert roots.size == (1 << (36 - 21)) // mm.SECTIONS_PER_ROOT
        assert int((roots != 0).sum()) == 4
        ex = m.report(a, p, 1)["extra"]
        assert ex["section_table_bytes"] == roots.size * 8 + 4 * 4096
        # a pfn whose root was never allocated, and one in an allocated root but absent section
        assert m.pfn_to_page(a, [5 << 19, 100 * 512]).tolist() == [-1, -1]


# --- walks --------------------------------------------------------------------------------

def _naive_checksum(ref, huge):
    """Sequential walk over every present pfn once: sum of node id + _refcount read."""
    refc = np.ones(ref.pfns.size, np.int64)
    for h in huge:
        sel = (ref.pfns >= h) & (ref.pfns < h + 512)
        refc[sel] = ((ref.pfns[sel] - h) % 64 == 0)      # HVO: tails read the head page's frame
    return int(ref.node.sum() + refc.sum())


@pytest.mark.parametrize("variant", VARIANTS)
def test_walks_read_pages_and_count(variant):
    d = dict(SMALL, layout="fragmented", nodes=2, mem_mib=16)
    for walk in mm.WALKS:
        with built(variant, W=2, **dict(d, walk=walk)) as (m, p, a):
            ref = Naive(p)
            n = ref.pfns.size if walk == "sequential" else 5000
            m.compile(p)
            c = a["counters"]
            col = {k: m.counter_index(k) for k in mm.COUNTER_NAMES}
            ctx = m.worker_init(a, p, 0, 2)
            assert m.step(ctx, n) == n
            assert c[0, col["lookups"]] == n and c[0, col["invalid"]] == 0
            assert c[0, col["roundtrip_errors"]] == 0
            if walk == "sequential":           # worker 0 starts at the first present pfn
                huge = a["mm_huge"][a["mm_huge"] >= 0] if variant == "hvo" else []
                assert c[0, col["checksum"]] == _naive_checksum(ref, huge)
            else:
                assert c[0, col["checksum"]] != 0
            assert m.step(m.worker_init(a, p, 1, 2), 7) == 7
            assert c[1, col["lookups"]] == 7
            assert m.check(a, p, 2) == []


def test_check_detects_corruption():
    with built("sparse", **SMALL) as (m, p, a):
        assert m.check(a, p, 1) == []
        a["counters"][0, m.counter_index("roundtrip_errors")] = 3
        assert any("round trips" in e for e in m.check(a, p, 1))
        a["counters"][:] = 0
        nr_a, nr_b = (np.flatnonzero(a["mm_t1"])[:2] // 2).tolist()
        # section A's section_mem_map now decodes into section B's memmap
        a["mm_t1"][nr_a * 2] = a["mm_t1"][nr_b * 2] + (nr_b - nr_a) * 512 * 64
        errs = m.check(a, p, 1)
        assert errs and "wrong struct page" in errs[0]
    with built("flat", **SMALL) as (m, p, a):
        a["mm_memmap"][8 * 100] |= 1 << mm.PG_RESERVED
        assert m.check(a, p, 1) == ["1 present pfns have a wrong struct page (first: pfn 100)"]


def _fork_worker(m, a, p, w, n):
    ctx = m.worker_init(a, p, w, 2)
    done = 0
    while done < n:
        done += m.step(ctx, 1000)


def test_forked_workers_read_in_parallel():
    m = MemmapModel()
    p = m.resolve("sparse-extreme", dict(SMALL, layout="fragmented", walk="roundtrip"))
    a = _arrays(m, p, 2)
    for name in ("counters", "mm_walk"):       # what workers write must be shared
        buf = mmap.mmap(-1, a[name].nbytes)
        a[name] = np.frombuffer(buf, np.int64).reshape(a[name].shape)
    m.setup(a, p, 2, 7)
    try:
        m.compile(p)
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_fork_worker, args=(m, a, p, w, 20000)) for w in range(2)]
        for pr in procs:
            pr.start()
        for pr in procs:
            pr.join(60)
            assert pr.exitcode == 0
        c = a["counters"]
        assert c[:, m.counter_index("lookups")].tolist() == [20000, 20000]
        assert c[0, m.counter_index("checksum")] != c[1, m.counter_index("checksum")]
        assert m.check(a, p, 2) == []
    finally:
        m.teardown(a, p)


# --- memory measured from the OS ----------------------------------------------------------

def test_flat_is_not_runnable_when_the_span_does_not_fit():
    d = dict(SMALL, layout="numa-spread", max_physmem_bits=52, section_bits=27,
             node_stride_bits=46, mem_mib=256)
    with pytest.raises(ModelNotRunnable) as e:
        with built("flat", **d):
            pass
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("flat:") and "not runnable" in msg
    with built("vmemmap", **d) as (m, p, a):   # the same span costs vmemmap nothing
        ex = m.report(a, p, 1)["extra"]
        # 4 half-present 128 MiB sections: 4 whole section memmaps, nothing for the holes
        assert ex["memmap_resident_bytes"] == ex["present_sections"] * (1 << 15) * 64 == 4 << 21
        assert ex["memmap_virtual_bytes"] > 1 << 40


def test_vmemmap_resident_below_flat_by_the_holes():
    d = dict(SMALL, layout="fragmented", mem_mib=64, hole_share=0.6, layout_seed=3)
    with built("flat", **d) as (m, p, a):
        flat = m.report(a, p, 1)["extra"]
    with built("vmemmap", **d) as (m, p, a):
        vm = m.report(a, p, 1)["extra"]
    ref = Naive(m.resolve("vmemmap", d))
    span_secs = (ref.end - 1) // ref.pps - ref.first // ref.pps + 1
    aligned_hole_share = 1 - len(ref.sections) / span_secs
    assert aligned_hole_share > 0.3
    # flat pays for the whole span, vmemmap for present sections only (4 KiB granular here)
    assert abs(flat["memmap_resident_bytes"] - flat["span_bytes"] // 64) <= 8192
    assert abs(vm["memmap_resident_bytes"] - len(ref.sections) * ref.pps * 64) <= 8192
    ratio = vm["memmap_resident_bytes"] / flat["memmap_resident_bytes"]
    assert ratio <= 1 - aligned_hole_share + 0.02
    assert 1.0 <= vm["ratio_to_ideal"] < flat["ratio_to_ideal"] / 1.5
    assert vm["waste_over_holes_bytes"] == vm["memmap_resident_bytes"] - vm["ideal_memmap_bytes"]
    assert vm["ideal_memmap_bytes"] == vm["present_bytes"] // 4096 * 64


@pytest.mark.parametrize("layout", ["contiguous", "fragmented"])
def test_hvo_saves_seven_eighths_of_huge_pages_memmap(layout):
    d = dict(SMALL, layout=layout, mem_mib=64, huge_share=0.5)
    with built("vmemmap", **d) as (m, p, a):
        vm = m.report(a, p, 1)["extra"]
    with built("hvo", **d) as (m, p, a):
        hvo = m.report(a, p, 1)["extra"]
        huge = a["mm_huge"][a["mm_huge"] >= 0]
        # the tail vmemmap pages really alias the head's frame
        w = int(huge[0]) * 8
        assert (a["mm_memmap"][w + 512 * 3:w + 512 * 4] == a["mm_memmap"][w:w + 512]).all()
        assert m.check(a, p, 1) == []
    nhuge = hvo["hugetlb_pages"]
    assert nhuge == huge.size and nhuge * 512 * 4096 >= 0.45 * hvo["present_bytes"]
    saved = (vm["memmap_resident_bytes"] - hvo["memmap_resident_bytes"]) / (nhuge * 512 * 64)
    assert 7 / 8 - 0.02 <= saved <= 7 / 8 + 0.02
    assert hvo["memmap_memfd_bytes"] == nhuge * 4096


# --- the workload file ----------------------------------------------------------------

def test_workload_file_grid_is_valid():
    from mmbench.workload import expand, load
    wl = load(Path(__file__).parent.parent / "workloads" / "memmap.toml")
    assert wl.quick
    full = expand(wl, 2)
    quick = expand(wl, 2, quick=True)
    assert len(full) == 5 * 3 * 3 * 2 and len(quick) == 5 * 3
    assert {q.params["mem_mib"] for q in quick} == {256}
    assert {q.params["memory_model"] for q in quick} == set(VARIANTS)

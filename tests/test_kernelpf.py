"""The kernel page-fault family: /proc parsers on fixtures, exact faulting, no leaked mapping."""
from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import numpy as np
import pytest

from mmbench import procfs
from mmbench.harness import HarnessError, RunConfig, run_point
from mmbench.models import kernelpf as K
from mmbench.models.kernelpf import KernelPageFault, Region, live_regions, touch_pages

FIX = Path(__file__).parent / "fixtures" / "procfs"
MIB = 1 << 20
REGION_MIB = 6                   # an unusual size: easy to tell apart in /proc/self/maps
THP_OK = procfs.thp_mode() in ("always", "madvise")
CFG = dict(duration=0.3, warmup=0.1, interval=0.1)


# --- /proc parsers --------------------------------------------------------------------------
def test_zoneinfo_with_autotuned_pcp():
    zones = procfs.parse_zoneinfo((FIX / "zoneinfo-6.18-autotune.txt").read_text())
    assert [z["zone"] for z in zones] == ["DMA", "DMA32", "Normal", "Movable", "Device"]
    normal = zones[2]
    assert (normal["node"], normal["managed"], normal["present"]) == (0, 917504, 5505024)
    assert (normal["min"], normal["low"], normal["high"], normal["promo"]) == (9149, 11436, 13723, 16010)
    assert normal["protection"] == [0, 0, 0, 0, 0]
    assert [c["cpu"] for c in normal["pcp"]] == [0, 1]
    for c in normal["pcp"]:
        assert (c["batch"], c["high_min"], c["high_max"]) == (63, 5718, 57344)
        assert c["high_min"] <= c["high"] <= c["high_max"]
    assert zones[0]["pcp"][0] == {"cpu": 0, "count": 0, "high": 0, "batch": 1,
                                  "high_min": 23, "high_max": 240}
    # per-node stats (before the first zone) are not zone stats; zone stats are
    assert "nr_inactive_anon" not in zones[0]["stats"]
    assert zones[1]["stats"]["nr_free_pages"] == zones[1]["free"]
    assert zones[3]["managed"] == 0 and zones[3]["pcp"] == []
    s = procfs.pcp_summary(zones)
    assert s["zone"] == "Normal" and s["autotune"] and s["batch"] == 63
    assert (s["high_min"], s["high_max"], s["cpus"]) == (5718, 57344, 2)
    assert procfs.pcp_settings_for_model(zones) == {"batch": 63, "high": 57344}


def test_zoneinfo_classic_pcp_two_nodes():
    zones = procfs.parse_zoneinfo((FIX / "zoneinfo-5.4-classic.txt").read_text())
    assert [(z["node"], z["zone"]) for z in zones] == [
        (n, z) for n in (0, 1) for z in ("DMA", "DMA32", "Normal", "Movable", "Device")]
    populated = [z for z in zones if z["pcp"]]
    assert [(z["node"], z["zone"]) for z in populated] == [(0, "DMA"), (0, "DMA32"), (0, "Normal"),
                                                          (1, "Normal")]
    n0 = zones[2]
    assert [c["count"] for c in n0["pcp"]] == [211, 356, 17, 98]
    assert all((c["high"], c["batch"]) == (378, 63) and "high_min" not in c for c in n0["pcp"])
    assert n0["stat_threshold"] == 64 and n0["start_pfn"] == 1048576
    assert n0["stats"]["numa_hit"] == 98765432
    n1 = zones[7]   # per-node stats come before node 1's first populated zone
    assert n1["managed"] == 4125437 and "nr_anon_pages" not in n1["stats"]
    assert zones[5]["protection"] == [0, 0, 16382, 16382, 16382] and zones[5]["pcp"] == []
    s = procfs.pcp_summary(zones)
    assert (s["node"], s["zone"], s["cpus"], s["autotune"]) == (1, "Normal", 4, False)
    assert "high_max" not in s
    assert procfs.pcp_settings_for_model(zones) == {"batch": 63, "high": 378}


def test_zoneinfo_empty_or_garbage():
    assert procfs.parse_zoneinfo("") == []
    assert procfs.parse_zoneinfo("not a zoneinfo\n  pagesets\n") == []
    assert procfs.pcp_summary([]) is None
    assert procfs.pcp_settings_for_model([]) == {}


def test_vmstat_parse_and_delta():
    before = procfs.parse_vmstat((FIX / "vmstat-6.18-before.txt").read_text())
    after = procfs.parse_vmstat((FIX / "vmstat-6.18-after.txt").read_text())
    assert len(before) == 192 and before.keys() == after.keys()
    d = procfs.vmstat_delta(before, after)
    # the fixture brackets one 2048-page touch + munmap
    assert d["pgfault"] >= 2048 and procfs.pgalloc_total(d) >= 2048 and d["pgfree"] >= 2048
    assert d["pgfault"] == after["pgfault"] - before["pgfault"]
    sel = procfs.vmstat_delta(before, after, prefixes=("pgalloc_", "thp_fault"))
    assert set(sel) == {k for k in after if k.startswith(("pgalloc_", "thp_fault"))}
    assert "thp_fault_fallback_charge" in sel
    old = procfs.parse_vmstat((FIX / "vmstat-5.4.txt").read_text())
    assert old["thp_fault_fallback"] == 3 and "thp_fault_fallback_charge" not in old
    assert procfs.pgalloc_total(old) == 4 + 123460 + 154317191
    # counters only in one snapshot are left out, not guessed
    assert procfs.vmstat_delta({"a": 1, "b": 2}, {"b": 5, "c": 9}) == {"b": 3}
    assert procfs.parse_vmstat("x 1\nbroken\ny notanumber\nz 2 3\n") == {"x": 1}


def test_thp_settings_from_sysfs_files(tmp_path):
    (tmp_path / "enabled").write_text("always [madvise] never\n")
    (tmp_path / "defrag").write_text("always defer defer+madvise [madvise] never\n")
    (tmp_path / "hpage_pmd_size").write_text("2097152\n")
    s = procfs.thp_settings(str(tmp_path))
    assert s == {"enabled": "madvise", "defrag": "madvise", "shmem_enabled": None,
                 "hpage_pmd_size": 2097152, "pmd_mthp_enabled": None}
    assert procfs.thp_mode(str(tmp_path / "missing")) is None


def test_live_box_facts_are_read_only_and_complete():
    f = procfs.box_facts()
    assert f["kernel"] == os.uname().release
    assert f["page_size"] == K.PAGE
    if Path("/proc/zoneinfo").exists():
        assert f["pcp"]["batch"] >= 1
        s = procfs.pcp_settings_for_model()
        assert set(s) == {"batch", "high"} and s["high"] >= s["batch"]


# --- the touch path faults exactly the pages it says ---------------------------------------
def _minflt():
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


KIND_CASES = [("4k", "madvise"), ("populate", "madvise"), ("populate", "map_populate"),
              ("shmem", "madvise"),
              pytest.param("thp", "madvise", marks=pytest.mark.skipif(not THP_OK, reason="THP off"))]


@pytest.mark.parametrize("kind,via", KIND_CASES)
def test_touch_faults_every_page_once(kind, via):
    touch_pages(np.zeros(2 * K.PAGE, np.uint8), 0, 0, K.PAGE)   # compiled before measuring
    r = Region(kind, 8 * MIB, via)
    try:
        units = r.units
        assert units == (4 if kind == "thp" else 8 * MIB // K.PAGE)
        b, f0 = procfs.read_vmstat(), _minflt()
        assert r.touch(10 ** 9) == units
        f1, a = _minflt(), procfs.read_vmstat()
        d = procfs.vmstat_delta(b, a)
        # this thread's own fault count: exactly one per unit (a few of Python's own)
        assert units <= f1 - f0 <= units + 16
        # system-wide counters: at least ours
        assert d["pgfault"] >= units
        fallback = d.get("thp_fault_fallback", 0) if kind == "thp" else 0
        assert procfs.pgalloc_total(d) >= units * r.pages_per_unit - fallback * 511
        if kind == "thp":
            assert d["thp_fault_alloc"] + fallback >= units
        if kind != "populate":
            assert np.all(r.buf[::r.stride] != 0)          # every store landed
        # a second pass over the same pages faults nothing: the faults were first touches
        # (MAP_FIXED|MAP_POPULATE replaces the pages instead, so it faults again)
        r.pos = 0
        f2 = _minflt()
        r.touch(10 ** 9)
        assert _minflt() - f2 <= (units + 16 if via == "map_populate" else 16)
    finally:
        r.unmap()
    assert live_regions() == []


def test_step_resumes_inside_a_region_and_unmaps_it():
    m = KernelPageFault()
    p = m.resolve("4k", {"region_mib": 2})
    arrays = {"counters": np.zeros((1, m.counter_columns()), np.int64)}
    arrays.update({s.name: np.zeros(s.shape, s.dtype) for s in m.layout(p, 1)})
    ctx = m.worker_init(arrays, p, 0, 1)
    pages = 2 * MIB // K.PAGE
    assert m.step(ctx, 100) == 100 and ctx.region.pos == 100 and len(live_regions()) == 1
    done = 100
    while done < pages:
        got = m.step(ctx, 100)
        assert 0 < got <= 100
        done += got
    assert done == pages and ctx.region is None and live_regions() == []
    cnt = arrays["counters"][0]
    assert cnt[m.counter_index("faults")] == pages and cnt[m.counter_index("regions")] == 1
    m.step(ctx, 7)                      # a partial region: worker_finish unmaps it
    m.worker_finish(ctx)
    assert live_regions() == [] and arrays["kpf_vm"][1, K.V_VALID] == 1
    assert m.check(arrays, p, 1) == []


def test_parameter_checks():
    m = KernelPageFault()
    with pytest.raises(ValueError, match="even"):
        m.resolve("thp", {"region_mib": 3})
    with pytest.raises(ValueError):
        m.resolve("4k", {"region_mib": 1})
    assert m.resolve("shmem", {})["region_mib"] == 128


# --- no mapping, descriptor or file outlives a run -------------------------------------------
def _our_mappings():
    """VMAs of this process that are kernelpf regions: anonymous with VmFlags "dc" (regions
    are MADV_DONTFORK, nothing else in the test process is), or the memfd; plus the count
    of anonymous mappings exactly REGION_MIB long."""
    vmas, cur, same_size = set(), None, 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            path = " ".join(head[5:])
            cur = (lo, hi, path)
            if not path and hi - lo == REGION_MIB * MIB:
                same_size += 1
            if K.MEMFD_NAME in path:
                vmas.add(cur)
        elif line.startswith("VmFlags:") and cur and not cur[2] and "dc" in line.split()[1:]:
            vmas.add(cur)
    return vmas, same_size


def _our_fds():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if K.MEMFD_NAME in os.readlink(f"/proc/self/fd/{fd}"):
                out.append(fd)
        except OSError:
            pass
    return out


def _assert_nothing_left(before):
    vmas, same = _our_mappings()
    assert vmas <= before[0], f"new mappings left: {sorted(vmas - before[0])}"
    assert same <= before[1]
    assert live_regions() == []
    assert _our_fds() == []
    assert not [f for f in os.listdir("/dev/shm") if "kernelpf" in f]


VARIANTS = ["4k", "populate", "shmem",
            pytest.param("thp", marks=pytest.mark.skipif(not THP_OK, reason="THP off"))]


class _Capped(KernelPageFault):
    """At most 64 ops a batch, so a region is always half faulted when the stop flag comes
    (with the calibrated batch a 6 MiB region is often one whole batch)."""

    def step(self, ctx, n):
        return super().step(ctx, min(n, 64))


def test_leak_detector_sees_a_dead_threads_region_and_teardown_frees_it():
    import threading
    m = KernelPageFault()
    # Compile (or load) the touch kernel first: a JIT compile between the two snapshots maps
    # LLVM's code and data sections, anonymous mappings the size count below would see.
    m.compile({})
    before = _our_mappings()
    got = []
    try:
        for kind in ("4k", "shmem"):
            t = threading.Thread(target=lambda: got.append(Region(kind, REGION_MIB * MIB)))
            t.start()
            t.join()
            got[-1].touch(10)
        vmas, same = _our_mappings()
        # The "dc"-flag set is exact; the size count is a cross-check that any anonymous
        # mapping of the same size also feeds (CI once saw a second, unrelated one appear
        # in a full run), so it must grow by at least the 4k region.
        assert len(vmas - before[0]) == 2 and same >= before[1] + 1 and len(_our_fds()) == 1
        assert len(m.check({"kpf_vm": np.zeros((1, 8), np.int64)}, {}, 0)) == 3
    finally:
        m.teardown({}, {})      # a failed assertion must not leave regions to the next test
    _assert_nothing_left(before)


@pytest.mark.parametrize("mode", ["process", "thread"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_run_point_leaves_nothing_mapped(mode, variant):
    m = _Capped()
    p = m.resolve(variant, {"region_mib": REGION_MIB})
    before = _our_mappings()
    pt = run_point(m, variant, p, RunConfig(workers=2, mode=mode, **CFG))
    _assert_nothing_left(before)
    assert pt["invariants"] == {"ok": True, "errors": []}
    assert sum(map(sum, pt["samples"])) > 0
    ex = pt["extra"]
    assert ex["kernel"] == os.uname().release and "pcp" in ex and "thp" in ex
    assert ex["vmstat_window_ops"] >= sum(map(sum, pt["samples"]))
    assert ex["vmstat_delta"]["pgfault"] >= ex["vmstat_window_ops"]
    assert ex["base_pages_per_op"] == (512 if variant == "thp" else 1)
    assert sum(pt["counters"]["regions"]) >= 1


class _Dies(KernelPageFault):
    """Worker 1 dies (process: SIGKILL; thread: raises) with a region half faulted."""

    def step(self, ctx, n):
        ops = super().step(ctx, min(n, 64))
        if ctx.w == 1 and ctx.region is not None and ctx.cnt[1, K.C_FAULTS] > 200:
            if os.getpid() != _PARENT:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("worker dies holding a region")
        return ops


_PARENT = os.getpid()


@pytest.mark.parametrize("mode", ["process", "thread"])
@pytest.mark.parametrize("variant", ["4k", "shmem"])
def test_dead_worker_leaves_nothing_mapped(mode, variant):
    m = _Dies()
    p = m.resolve(variant, {"region_mib": REGION_MIB})
    before = _our_mappings()
    with pytest.raises(HarnessError, match="signal 9|worker dies"):
        run_point(m, variant, p, RunConfig(workers=2, mode=mode, **CFG))
    _assert_nothing_left(before)


def test_not_runnable_points(monkeypatch):
    m = KernelPageFault()
    monkeypatch.setattr(K.procfs, "thp_settings", lambda root=None: {"enabled": "never"})
    pt = run_point(m, "thp", m.resolve("thp", {"region_mib": 4}), RunConfig(workers=1, **CFG))
    assert pt["error"].startswith("not runnable: THP is never")
    monkeypatch.undo()
    monkeypatch.setattr(K, "_mem_available", lambda: 16 * MIB)
    pt = run_point(m, "4k", m.resolve("4k", {"region_mib": 16}), RunConfig(workers=1, **CFG))
    assert "MemAvailable" in pt["error"]
    assert live_regions() == []


def test_workload_file_is_valid(monkeypatch):
    from mmbench import workload
    from mmbench.models import REGISTRY
    monkeypatch.setitem(REGISTRY, "kernelpf", "mmbench.models.kernelpf:KernelPageFault")
    wl = workload.load(Path(__file__).parent.parent / "workloads" / "kernel-pagefault.toml")
    assert wl.model == "kernelpf" and wl.params["region_mib"] == 128
    assert set(wl.grid["variant"]) == set(K.KINDS)

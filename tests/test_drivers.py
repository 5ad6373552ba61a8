"""The generated pagealloc drivers: same behaviour as the generic kernel they replaced, the
naive reference's final state, counters that add up, and a cache that recompiles only what an
edit touched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmbench import drivers
from mmbench.ctl import CTL_WORDS
from mmbench.models import pcp as P
from mmbench.models import zone as Z
from mmbench.models.pagealloc import ALLOCATORS, WORKLOADS, PageAllocModel, driver
from mmbench.models.pagealloc_driver import MIXED_ORDERS, S_RNG
from naive_buddy import NaiveBuddy, NaivePCP

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "fixtures" / "golden"
M = PageAllocModel()
# Timing-dependent: the hold time of sampled lock acquisitions (cycle counter).
NOT_COMPARED = {"lock_hold_cycles_sampled"}


def _golden():
    return json.loads((GOLDEN / "pagealloc.json").read_text())


sys.path.insert(0, str(GOLDEN))
import gen_pagealloc  # noqa: E402  (the recorder: the same scripted runs, replayed here)


@pytest.mark.parametrize("case", sorted(_golden()["cases"]))
def test_driver_matches_the_generic_kernel_it_replaced(case):
    """Each (allocator, pattern, order) script, recorded with the single generic kernel
    before the split, gives the same op counts, final state and counters on its driver."""
    want = _golden()["cases"][case]
    a, wl, o = case.split("/")
    got = gen_pagealloc.run_case(M, a, wl, int(o), 4 if wl == "frag" else 1)
    assert got["errors"] == []
    assert got["done"] == want["done"]
    assert got["state"] == want["state"]
    for k, v in want["counters"].items():
        if k not in NOT_COMPARED:
            assert got["counters"][k] == v, k


def _make(allocator, workload, order, max_workers, seed):
    p = M.resolve(allocator, {"nframes": 1 << 14, "workload": workload, "order": order,
                              "aged_blocks": 0.0, "sweep_max_workers": 1,
                              "max_workers": max_workers, "llc_slice_kib": 512})
    arrays = {s.name: np.zeros(s.shape, s.dtype) for s in M.layout(p, 1)}
    arrays["ctl"] = np.zeros(CTL_WORDS, np.int64)
    arrays["counters"] = np.zeros((1, M.counter_columns()), np.int64)
    M.setup(arrays, p, 1, seed)
    M.compile(p)
    return p, arrays


class _Replay:
    """The pattern, op by op, in Python over the naive allocator (NaiveBuddy / NaivePCP)."""

    def __init__(self, p, arrays):
        self.wl = p["workload"]
        self.order = p["order"]
        self.mt = Z.MIGRATE_MOVABLE
        self.A, _ = M.sizes(p, 1)
        self.nb = NaiveBuddy(0, p["nframes"])
        if p["allocator"] == "buddy":
            self.ref = None
            self.locks = 0
        else:
            pcp, zn = arrays["pcp"], arrays["zone_zn"]
            kind = P.PCP_KIND_NAMES[int(pcp[P.P_KIND])]
            self.ref = NaivePCP(self.nb, kind == "classic", int(pcp[P.P_BATCH]),
                                int(pcp[P.P_HIGH_MIN]), int(pcp[P.P_HIGH_MAX]),
                                int(zn[Z.Z_WMARK_HIGH]),
                                version=kind if kind in ("5.14", "5.18") else "6.7",
                                free_high_batch=bool(pcp[P.P_FLAGS] & P.PCPF_FREE_HIGH_BATCH))
        self.held = [-1] * self.A
        self.rng = int(arrays["pa_wst"][0, S_RNG])
        self.pos = self.ph = self.nh = 0
        self.cur = -1

    def alloc(self, order, mt):
        if self.ref is None:
            self.locks += 1
            return self.nb.alloc(order, mt)
        return self.ref.alloc(order, mt)

    def free(self, pfn):
        if self.ref is None:
            self.locks += 1
            self.nb.free(pfn)
        else:
            self.ref.free(pfn)

    def _xorshift(self):
        x = self.rng
        x ^= (x << 13) & (2**64 - 1)
        x ^= x >> 7
        x ^= (x << 17) & (2**64 - 1)
        self.rng = x
        return x & 0x7FFFFFFFFFFFFFFF

    def op(self):
        """One op of the pattern (phase changes cost no op, as in the driver)."""
        if self.wl == "bulk":
            while True:
                if self.ph == 0:
                    if self.pos < self.A:
                        self.held[self.pos] = self.alloc(self.order, self.mt)
                        self.pos += 1
                        return
                    self.ph, self.pos = 2, 0
                elif self.pos < self.A:
                    pfn = self.held[self.pos]
                    self.held[self.pos] = -1
                    self.pos += 1
                    if pfn >= 0:
                        self.free(pfn)
                        return
                else:
                    self.ph, self.pos = 0, 0
        elif self.wl == "repeat":
            if self.pos < self.A:
                self.held[self.pos] = self.alloc(self.order, self.mt)
                self.pos += 1
            elif self.cur < 0:
                self.cur = self.alloc(self.order, self.mt)
            else:
                self.free(self.cur)
                self.cur = -1
        else:   # mixed, mixed-no-thp
            r = self._xorshift()
            A = self.A
            if self.nh < A and (self.nh < A // 2 or r & 1):
                o = int(MIXED_ORDERS[(r >> 1) % (7 if self.wl == "mixed" else 6)])
                mt = Z.MIGRATE_MOVABLE
                sel = (r >> 8) & 7
                if o != 9 and sel == 0:
                    mt = Z.MIGRATE_UNMOVABLE
                elif o != 9 and sel == 1:
                    mt = Z.MIGRATE_RECLAIMABLE
                pfn = self.alloc(o, mt)
                if pfn >= 0:
                    self.held[self.nh] = pfn
                    self.nh += 1
            elif self.nh > 0:
                j = (r >> 1) % self.nh
                pfn = self.held[j]
                self.held[j] = self.held[self.nh - 1]
                self.held[self.nh - 1] = -1
                self.nh -= 1
                self.free(pfn)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(allocator=st.sampled_from([a for a in ALLOCATORS if a != "llfree"]),
       workload=st.sampled_from(["bulk", "repeat", "mixed", "mixed-no-thp"]),
       order=st.sampled_from([0, 0, 1, 3, 9]),
       max_workers=st.sampled_from([4, 16, 64]),
       seed=st.integers(1, 1 << 30),
       script=st.lists(st.integers(1, 700), min_size=1, max_size=6))
def test_driver_final_state_matches_the_naive_reference(allocator, workload, order, max_workers,
                                                        seed, script):
    """A seeded op sequence of the driver, replayed op by op on the naive buddy and pcp:
    the same free lists, pcp lists and counts, the same blocks held, the same lock count."""
    if workload.startswith("mixed"):
        order = 0
    p, arrays = _make(allocator, workload, order, max_workers, seed)
    rep = _Replay(p, arrays)
    ctx = M.worker_init(arrays, p, 0, 1)
    for n in script:
        assert M.step(ctx, n) == n
        for _ in range(n):
            rep.op()
    mm, fl = arrays["zone_mm"], arrays["zone_fl"]
    assert Z.free_lists(mm, fl) == rep.nb.list_snapshot()
    held = arrays["pa_held"]
    got_held = sorted(int(e >> 4) for e in held if e >= 0)
    assert got_held == sorted(rep.nb.used)
    cnt = {k: int(arrays["counters"][0, i]) for k, i in M.counter_map().items()}
    if rep.ref is None:
        assert cnt["lock_acquisitions"] == rep.locks
    else:
        pcp = arrays["pcp"]
        assert pcp[P.P_COUNT] == rep.ref.count and pcp[P.P_HIGH] == rep.ref.high
        assert cnt["lock_acquisitions"] == rep.ref.locks
        assert (cnt["pcp_refills"], cnt["pcp_drains"], cnt["pcp_free_high"]) == \
            (rep.ref.refills, rep.ref.drains, rep.ref.free_highs)
        for i in range(P.NR_PCP_LISTS):
            lst, pfn = [], pcp[P.P_LISTS + 2 * i]
            while pfn != -1:
                lst.append(int(pfn))
                pfn = mm[pfn, Z.PG_LRU_NEXT]
            assert lst == rep.ref.lists[i]
    assert M.check(arrays, p, 1) == []


@pytest.mark.parametrize("allocator", ALLOCATORS)
@pytest.mark.parametrize("workload", ["bulk", "repeat", "rand", "mixed-no-thp"])
def test_counter_columns_add_up(allocator, workload):
    """allocations - frees = blocks held; for order-0 pcp traffic hits + refills =
    allocations (every pcp allocation is either served off the list or refilled it)."""
    p, arrays = _make(allocator, workload, 0, 8, 5)
    ctx = M.worker_init(arrays, p, 0, 1)
    for n in (1, 999, 4096, 333, 20000):
        M.step(ctx, n)
    c = {k: int(arrays["counters"][0, i]) for k, i in M.counter_map().items()}
    held = int((arrays["pa_held"] >= 0).sum())
    assert c["ops_alloc"] - c["ops_free"] == held
    if allocator.startswith("pcp-") and workload != "mixed-no-thp":
        assert c["pcp_hits"] + c["pcp_refills"] == c["ops_alloc"] + c["alloc_fail"]
        if allocator == "pcp-disabled":      # batch 1, high 0: every allocation refills
            assert c["pcp_hits"] == 0 and c["pcp_refills"] == c["ops_alloc"]
        else:
            assert c["pcp_hits"] > c["pcp_refills"] > 0
    elif not allocator.startswith("pcp-"):
        assert c["pcp_hits"] == c["pcp_refills"] == 0
    assert M.check(arrays, p, 1) == []


def test_each_generated_driver_holds_its_case_and_only_its_imports():
    d = driver("llfree", "repeat")
    text = drivers.source(d)
    assert "AK = 2\nPCPK = 0\nWL = 1\n" in text
    assert "from mmbench.models import llfree as L" in text
    assert "from mmbench.models import pcp as P" not in text
    assert drivers.path(d) != drivers.path(driver("llfree", "bulk"))
    assert drivers.path(d) == drivers.path(driver("llfree", "repeat"))     # stable name
    with pytest.raises(ValueError, match="no '# >>> driver constants'"):
        drivers.source(drivers.Driver("mmbench.models.zone", "x", (("AK", 0),)))


_CHILD = r"""
import json, sys
from numba.core import event
from mmbench.models.pagealloc import PageAllocModel
n = [0]
class C(event.Listener):
    # compilations of a generated driver's own functions (its module: mmbench_drivers.*)
    def on_start(self, ev):
        d = (ev.data or {}).get("dispatcher")
        if d is not None and d.py_func.__module__.startswith("mmbench_drivers."):
            n[0] += 1
    def on_end(self, ev): pass
event.register("numba:compile", C())
m = PageAllocModel()
out = {}
for a in sys.argv[1:]:
    before = n[0]
    m.compile(m.resolve(a, {"workload": "repeat", "sweep_max_workers": 1, "llc_slice_kib": 0}))
    out[a] = n[0] - before
print(json.dumps(out))
"""


def test_an_edit_recompiles_only_the_drivers_that_import_it(tmp_path):
    """Numba stamps a kernel with its file and its mmbench import closure: after an edit to
    llfree.py the LLFree driver compiles again, the buddy and pcp drivers load from the cache."""
    src = Path(__file__).resolve().parents[1] / "mmbench"
    pkg = tmp_path / "src"
    shutil.copytree(src, pkg / "mmbench", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(pkg), MMBENCH_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("MMBENCH_DRIVERS_DIR", None)
    allocs = ["buddy", "pcp-5.14", "llfree"]

    def run():
        r = subprocess.run([sys.executable, "-c", _CHILD, *allocs], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    first = run()
    assert all(first[a] > 0 for a in allocs), first          # a cold cache compiles all
    assert run() == {a: 0 for a in allocs}                    # a warm one compiles none
    ll = pkg / "mmbench" / "models" / "llfree.py"
    ll.write_text(ll.read_text() + "\n# an edit\n")
    after = run()
    assert after["buddy"] == 0 and after["pcp-5.14"] == 0, after
    assert after["llfree"] > 0, after


def test_latency_bucket_by_clz_is_the_shift_loops_bucket():
    from mmbench.jit import kernel
    from mmbench.models.owned import bucket
    from mmbench.models.pagealloc_driver import lat_bucket

    @kernel
    def both(xs, out):
        for i in range(xs.shape[0]):
            out[i, 0] = lat_bucket(xs[i])
            out[i, 1] = bucket(xs[i])
        return 0

    rng = np.random.default_rng(7)
    xs = np.concatenate([np.array([-5, 0, 1, 2, 3, 4, 1023, 1024, 1 << 62, (1 << 63) - 1]),
                         rng.integers(0, 1 << 40, 500)]).astype(np.int64)
    out = np.zeros((len(xs), 2), np.int64)
    both(xs, out)
    assert (out[:, 0] == out[:, 1]).all()

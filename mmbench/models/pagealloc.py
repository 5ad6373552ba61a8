"""Page-allocator scalability: buddy, PCP (classic / high-order / auto-tuned) and LLFree.

Each (allocator, workload) pair runs its own small compiled driver, generated from one
template (:mod:`mmbench.models.pagealloc_driver`, see :mod:`mmbench.drivers`), with the
allocator's alloc and free paths inlined; the allocators:

* ``buddy``          rmqueue_buddy / free_one_page: every op takes zone->lock.
* ``pcp-disabled``   the kernel's own PCP-off state (zone_pcp_disable: high 0, batch 1),
                     every page still through the pageset and free_pcppages_bulk.
* ``pcp-classic``    <= 5.13 per_cpu_pages (order 0, batch 63, high 6*batch).
* ``pcp-5.14``       5.14-5.17 pcp (orders 0..3 + THP, high = low watermark / node CPUs,
                     fixed; refill batch >> order; drains scaled by free_factor).
* ``pcp-5.18``       5.18-6.6: 5.14 plus free_high (a high-order free while free_factor > 0
                     drains the whole pageset) and the one-pass bulk free.
* ``pcp-autotune``   6.7+ pcp auto-tuning of high between high_min and high_max, refills
                     scaled by alloc_factor, PCPF_FREE_HIGH_BATCH from the LLC slice, and
                     decay_pcp_high once per ``decay_interval_ms`` of the harness clock
                     (the kernel's vmstat_update runs it every second).

The pageset's high divides by ``node_cpus``, the CPUs of the simulated node (0: the sweep's
largest worker count), as zone_highsize divides by the node's CPUs.

The zone-backed variants (buddy and every pcp-*) start from an aged zone
(``aged_blocks``, default 0.25: that share of the pageblocks, chosen at random, holds a random
half of its frames for the whole run; the rest was freed page by page and merged), so an
order-0 request finds order-0 holes instead of splitting an order-10 block every time, as
in a zone that has been in use.  ``aged_blocks = 0`` gives the pristine zone after boot.
LLFree starts pristine, as in LLFree's own benchmarks; ``frag`` ignores the setting (it
fills the whole zone itself).
* ``llfree``         the lock-free LLFree allocator (mmbench.models.llfree).

Workloads (LLFree's benchmarks, A = nframes / (T_max * 2 * 2^order) blocks per worker):
``bulk`` alloc A, barrier, free all, barrier; ``repeat`` pre-fill A, then alloc+free one
block; ``rand`` alloc A, barrier, free a slice of a seeded global shuffle (cross-CPU frees),
barrier; ``frag`` is the fragmentation benchmark behind the LLFree paper's figure
(linux-alloc-bench's kernel module, run by llfree-bench): each of T workers allocates
N = ((F - T*10*2^order) >> order) / T * 90 % blocks, worker 0 swap-shuffles all N*T held
slots, each worker frees the second half of its slots (keeping H = N/2), then every round
frees R = H/10 random held slots (phase 1), and after a barrier refills the same slots by
replaying the same random sequence (phase 2); after each round worker 0 counts the huge
(2 MiB) frames with no held frame (frames cached on PCP lists count as free); ``pagefault`` alloc an order-0 movable page, write its bytes in a
shared data area, free it; ``mixed`` orders drawn from {0,0,0,1,2,3,9} and mostly movable
migratetypes, a pool half to fully occupied.

State that must survive between batches (phase, position, RNG) lives in ``pa_wst``; the
blocks a worker holds live in ``pa_held`` as (pfn << 4 | order), -1 = empty, so that
``check`` can account for every frame: on a buddy list, a pcp list, free in LLFree, or held.
"""
from __future__ import annotations

import numpy as np

from .. import drivers, procfs
from ..locks import LOCK_KINDS, init_lockset, lockset_words
from ..model import ArraySpec, Model, ModelNotRunnable, Param
from ..jit import helper
from . import llfree as L
from . import owned as O
from . import pcp as P
from . import zone as Z
from .pagealloc_driver import (AK_BUDDY, AK_LLFREE, AK_PCP, C_DECAYS, C_LLF, C_PCP,  # noqa: F401
                               C_STRANDED, FRAG_LOGS, FRAG_ROUNDS, LAT_BUCKETS, MIXED_ORDERS,
                               S_RNG, S_SHUF, WL_BULK, WL_FRAG, WL_MIXED, WL_MIXED_NOTHP,
                               WL_PAGEFAULT, WL_RAND, WL_REPEAT, WST_WORDS)

WORKLOADS = ("bulk", "repeat", "rand", "frag", "pagefault", "mixed", "mixed-no-thp")
ALLOCATORS = ("buddy", "pcp-disabled", "pcp-classic", "pcp-5.14", "pcp-5.18", "pcp-autotune",
              "llfree")
# allocator -> pcp.pcp_sizes kind
PCP_KIND = {"pcp-disabled": "disabled", "pcp-classic": "classic", "pcp-5.14": "5.14",
            "pcp-5.18": "5.18", "pcp-autotune": "autotune"}
MIGRATETYPES = {"unmovable": Z.MIGRATE_UNMOVABLE, "movable": Z.MIGRATE_MOVABLE,
                "reclaimable": Z.MIGRATE_RECLAIMABLE}
MIXED_MEAN_PAGES = 76          # mean block size of MIXED_ORDERS, for sizing A
MIXED_NOTHP_MEAN_PAGES = 3     # mixed-no-thp draws the first 6 (orders 0,0,0,1,2,3): 17/6
assert LAT_BUCKETS == O.LAT_BUCKETS
TEMPLATE = "mmbench.models.pagealloc_driver"

# model counters: column N_LOCK_COUNTERS + index (the driver template's C_* columns)
COUNTER_NAMES = ("ops_alloc", "ops_free", "alloc_fail", "pcp_hits", "pcp_refills", "pcp_drains",
                 "pcp_free_high", "pages_stolen_fallback", "pcp_stranded", "llfree_cas_retries",
                 "llfree_reservations", "llfree_alloc_fail", "llfree_remote_frees",
                 "pcp_decays")
assert (P.PCPC_HITS, P.PCPC_REFILLS, P.PCPC_DRAINS, P.PCPC_FREE_HIGH,
        P.N_PCP_COUNTERS) == (0, 1, 2, 3, 4)
assert (L.LLF_C_CAS_RETRIES, L.LLF_C_RESERVATIONS, L.LLF_C_ALLOC_FAIL,
        L.LLF_C_REMOTE_FREES, L.LLF_N_COUNTERS) == (0, 1, 2, 3, 4)


def driver(allocator: str, workload: str) -> drivers.Driver:
    """The generated driver that runs ``workload`` on ``allocator``."""
    ak = AK_BUDDY if allocator == "buddy" else AK_LLFREE if allocator == "llfree" else AK_PCP
    pk = P.PCP_KINDS[PCP_KIND[allocator]] if ak == AK_PCP else 0
    imports = {AK_BUDDY: (), AK_PCP: ("from mmbench.models import pcp as P",),
               AK_LLFREE: ("from mmbench.models import llfree as L",)}[ak]
    return drivers.Driver(TEMPLATE, f"pagealloc-{allocator}-{workload}",
                          (("AK", ak), ("PCPK", pk), ("WL", WORKLOADS.index(workload))), imports)


@helper
def _mark_held(mm, held, mark, errs):
    """Mark every held block's frames; errors: [1, pfn] bad refcount, [2, pfn] in two places."""
    n = 0
    for i in range(held.shape[0]):
        e = held[i]
        if e < 0:
            continue
        pfn = e >> 4
        order = e & 15
        if mm[pfn, Z.PG_REFCOUNT] != 1:
            if n < errs.shape[0]:
                errs[n, 0], errs[n, 1] = 1, pfn
            n += 1
        for p in range(pfn, pfn + (1 << order)):
            mark[p] += 1
            if mark[p] > 1:
                if n < errs.shape[0]:
                    errs[n, 0], errs[n, 1] = 2, p
                n += 1
                break
    return n


class PageAllocModel(Model):
    name = "pagealloc"
    description = "page allocator scalability: buddy, per-CPU lists (3 generations), LLFree"
    variants = {a: {"allocator": a} for a in ALLOCATORS}
    params = {
        "allocator": Param(str, "buddy", choices=ALLOCATORS, help="set by the variant"),
        "nframes": Param(int, 1 << 20, 1 << 14, 1 << 26,
                         help="frames in the zone (a multiple of 16384; 2^20 = 4 GiB)"),
        "lock": Param(str, "ttas", choices=tuple(LOCK_KINDS), help="zone->lock kind"),
        "workload": Param(str, "bulk", choices=WORKLOADS, help="per-worker op pattern"),
        "order": Param(int, 0, 0, 10, help="allocation order (mixed draws its own)"),
        "migratetype": Param(str, "movable", choices=tuple(MIGRATETYPES),
                             help="migratetype of the allocations (mixed draws its own)"),
        "batch": Param(int, 0, 0, 4096, help="pcp batch (0 = zone_batchsize: 63)"),
        "high": Param(int, 0, 0, 1 << 24,
                      help="pcp high (0 = kernel formula; autotune: high_max)"),
        "max_workers": Param(int, 0, 0, 4096,
                             help="T_max of A = F/(T_max*2*2^order) (0 = sweep_max_workers)"),
        "sweep_max_workers": Param(int, 0, 0, 4096, help="set by the harness: largest sweep point"),
        "decay_interval_ms": Param(int, 1000, 0, 3_600_000,
                                   help="pcp-autotune: ms of the harness clock between "
                                        "decay_pcp_high calls (vmstat interval; 0 = never)"),
        "node_cpus": Param(int, 0, 0, 4096,
                           help="CPUs of the simulated node, which pcp high divides by "
                                "(0 = the sweep's largest worker count)"),
        "llc_slice_kib": Param(int, -1, -1, 1 << 20,
                               help="pcp-autotune: per-CPU LLC slice in KiB; PCPF_FREE_HIGH_BATCH"
                                    " when it exceeds 3 x batch pages (-1 = this box's sysfs)"),
        "aged_blocks": Param(float, 0.25, 0.0, 0.9,
                             help="buddy and pcp-*: share of pageblocks with a random half of "
                                  "their frames resident for the whole run (0 = pristine zone)"),
        "data_pages": Param(int, 1024, 1, 1 << 20,
                            help="pagefault: pages in each worker's part of the data area"),
        "page_bytes": Param(int, 4096, 8, 4096, help="pagefault: bytes written per page"),
        "pcp_from_box": Param(bool, False, help="take pcp batch/high from this box's "
                              "/proc/zoneinfo (mmbench.procfs.pcp_settings_for_model)"),
    }
    counter_names = COUNTER_NAMES

    # --- sizing --------------------------------------------------------------------------
    def validate(self, p):
        if p["allocator"] == "pcp-autotune" and p["llc_slice_kib"] < 0:
            # Resolved in the parent, so the recorded params name the slice that ran.
            p["llc_slice_kib"] = P.llc_slice_kib()
        if p["nframes"] % L.LLF_TREE_FRAMES:
            raise ValueError(f"nframes must be a multiple of {L.LLF_TREE_FRAMES}")
        if p["allocator"] == "llfree" and p["order"] > L.LLF_MAX_ORDER:
            raise ValueError(f"llfree allocates orders up to {L.LLF_MAX_ORDER}")
        if p["page_bytes"] % 8:
            raise ValueError("page_bytes must be a multiple of 8")
        if self._from_box(p):
            # Resolved in the parent, so the recorded params name the batch/high that ran.
            # A box without pagesets keeps 0/0 here and setup() refuses the point.
            box = self._box_pcp()
            if box:
                for k in ("batch", "high"):
                    if p[k] not in (0, box[k]):
                        raise ValueError(f"pcp_from_box sets {k} from /proc/zoneinfo ({box[k]}):"
                                         f" leave {k} at 0, not {p[k]}")
                    p[k] = self.params[k].validate(f"{k} (from /proc/zoneinfo)", box[k])

    @staticmethod
    def _from_box(p):
        """pcp_from_box matters only for the pcp variants (buddy and llfree have no pageset)."""
        return p["pcp_from_box"] and p["allocator"].startswith("pcp-")

    @staticmethod
    def _box_pcp():
        """{"batch", "high"} of this box's main zone, or None where it shows no usable pageset."""
        box = procfs.pcp_settings_for_model()
        return box if box.get("batch", 0) > 0 and box.get("high", 0) > 0 else None

    @staticmethod
    def node_cpus(p, nworkers):
        """The simulated node's CPU count (zone_highsize's divisor)."""
        return max(p["node_cpus"] or p["sweep_max_workers"] or nworkers, nworkers)

    @staticmethod
    def _tmax(p, nworkers):
        return max(p["max_workers"] or p["sweep_max_workers"] or nworkers, nworkers)

    def sizes(self, p, nworkers):
        """(A, cap): blocks a worker cycles through and its held-array capacity."""
        F = p["nframes"]
        wl = p["workload"]
        if wl == "pagefault":
            A = 0
        elif wl == "frag":
            # linux-alloc-bench: N = ((present - T*10*2^order) / 2^order / T) * 90 / 100
            A = max(20, ((F - nworkers * 10 * (1 << p["order"])) >> p["order"])
                    // nworkers * 90 // 100)
        elif wl in ("mixed", "mixed-no-thp"):
            mean = MIXED_MEAN_PAGES if wl == "mixed" else MIXED_NOTHP_MEAN_PAGES
            A = max(2, F // (self._tmax(p, nworkers) * 2 * mean))
        else:
            A = max(1, F // (self._tmax(p, nworkers) * 2 << p["order"]))
        return A, A + 1

    @staticmethod
    def _aged(p):
        return p["allocator"] != "llfree" and p["workload"] != "frag" and p["aged_blocks"] > 0

    def layout(self, p, nworkers):
        F = p["nframes"]
        A, cap = self.sizes(p, nworkers)
        wl = p["workload"]
        specs = [ArraySpec(k, shape, dt) for k, (shape, dt) in Z.zone_arrays(F).items()]
        llf = L.llfree_arrays(F if p["allocator"] == "llfree" else L.LLF_TREE_FRAMES,
                              nworkers if p["allocator"] == "llfree" else 1)
        specs += [ArraySpec(k, shape, dt) for k, (shape, dt) in llf.items()]
        specs += [
            ArraySpec("zone_lock", (lockset_words(1, nworkers),)),
            ArraySpec("pcp", (nworkers * P.PCP_WORDS,)),
            ArraySpec("pa_held", (nworkers * cap,)),
            ArraySpec("pa_wst", (nworkers, WST_WORDS)),
            ArraySpec("pa_lat", (nworkers, 2, LAT_BUCKETS)),
            ArraySpec("pa_perm", (nworkers * A if wl == "rand" else 1,)),
            ArraySpec("pa_frag_huge", (F >> Z.PAGEBLOCK_ORDER if wl == "frag" else 1,)),
            ArraySpec("pa_fraglog", (FRAG_LOGS, FRAG_ROUNDS)),
            ArraySpec("pa_data", (nworkers * p["data_pages"] * p["page_bytes"] // 8
                                  if wl == "pagefault" else 1,)),
            ArraySpec("pa_resident", (F if self._aged(p) else 1,), np.int8),
        ]
        return specs

    def setup(self, arrays, p, nworkers, seed):
        if self._from_box(p) and self._box_pcp() is None:
            raise ModelNotRunnable("pcp_from_box: /proc/zoneinfo shows no populated zone with "
                                   "per-CPU pagesets on this box")
        F = p["nframes"]
        mm, pb, fl, zn = (arrays[k] for k in ("zone_mm", "zone_pb", "zone_fl", "zone_zn"))
        init_lockset(arrays["zone_lock"], 1, nworkers, LOCK_KINDS[p["lock"]], sample_hold=True)
        if p["allocator"] == "llfree":
            Z.zone_reset(mm, pb, fl, zn, 0, F)
            Z.zone_init_range(mm, pb, zn, 0, F)
            mm[:, Z.PG_FLAGS] &= ~Z.PGF_RESERVED
            mm[:, Z.PG_REFCOUNT] = 0
            zn[Z.Z_MANAGED] = F
            Z.zone_set_watermarks(zn)
            L.llfree_init(arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                          arrays["llf_local"], F, nworkers)
        elif self._aged(p):
            res = Z.zone_build_aged(mm, pb, fl, zn, F, p["aged_blocks"],
                                    np.random.default_rng([seed, 0xA6ED]))
            arrays["pa_resident"][:] = res
            L.llfree_init(arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                          arrays["llf_local"], L.LLF_TREE_FRAMES, 1)
        else:
            Z.zone_build(mm, pb, fl, zn, 0, F)
            L.llfree_init(arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                          arrays["llf_local"], L.LLF_TREE_FRAMES, 1)
        pcp = arrays["pcp"]
        pcp[:] = 0
        if p["allocator"].startswith("pcp-"):
            kind = PCP_KIND[p["allocator"]]
            b, hmin, hmax = P.pcp_sizes(kind, int(zn[Z.Z_MANAGED]), int(zn[Z.Z_WMARK_LOW]),
                                        self.node_cpus(p, nworkers), p["batch"], p["high"])
            flags = (P.PCPF_FREE_HIGH_BATCH if kind == "autotune"
                     and P.free_high_batch(max(p["llc_slice_kib"], 0), b) else 0)
            for w in range(nworkers):
                P.pcp_init(pcp, w, P.PCP_KINDS[kind], b, hmin, hmax, flags)
        arrays["pa_held"][:] = -1
        wst = arrays["pa_wst"]
        wst[:] = 0
        rng = np.random.default_rng(seed)
        wst[:, S_RNG] = rng.integers(1, 1 << 62, nworkers)
        wst[0, S_SHUF] = rng.integers(1, 1 << 62)
        arrays["pa_lat"][:] = 0
        arrays["pa_fraglog"][:] = -1
        arrays["pa_frag_huge"][:] = 0
        arrays["pa_data"][:] = 0
        A, _ = self.sizes(p, nworkers)
        if p["workload"] == "rand":
            arrays["pa_perm"][:] = rng.permutation(nworkers * A)

    def compile_key(self, p):
        """One driver per (allocator, pattern): points that share it compile once."""
        return (p["allocator"], p["workload"])

    def compile(self, p):
        """Load (or compile) the point's driver and the setup kernels, on scratch arrays."""
        q = dict(p, nframes=L.LLF_TREE_FRAMES, data_pages=1, max_workers=1,
                 sweep_max_workers=1, node_cpus=1, pcp_from_box=False)
        a = {s.name: np.zeros(s.shape, s.dtype) for s in self.layout(q, 1)}
        a["counters"] = np.zeros((1, self.counter_columns()), np.int64)
        a["ctl"] = np.zeros(64, np.int64)
        self.setup(a, q, 1, 0)
        self._mark_check(a, q)
        self.step(self.worker_init(a, q, 0, 1), 0)

    def _mark_check(self, a, q):
        mark = np.zeros(q["nframes"], np.int32)
        _mark_held(a["zone_mm"], a["pa_held"], mark, np.zeros((16, 2), np.int64))

    def driver_module(self, p):
        return drivers.load(driver(p["allocator"], p["workload"]))

    def worker_init(self, arrays, p, worker, nworkers):
        a = arrays
        A, cap = self.sizes(p, nworkers)
        head = (a["zone_mm"], a["zone_pb"], a["zone_fl"], a["zone_zn"], a["zone_lock"], a["pcp"],
                a["llf_bits"], a["llf_children"], a["llf_trees"], a["llf_local"], a["pa_held"],
                a["pa_wst"], a["pa_lat"], a["pa_perm"], a["pa_frag_huge"], a["pa_fraglog"],
                a["pa_data"], a["counters"], a["ctl"], worker, nworkers)
        tail = (p["order"], MIGRATETYPES[p["migratetype"]], A, cap, p["page_bytes"] // 8,
                p["data_pages"], p["decay_interval_ms"] if p["allocator"] == "pcp-autotune" else 0)
        return (self.driver_module(p).drive, head, tail, arrays, p, worker, nworkers)

    def step(self, ctx, n):
        drive, head, tail = ctx[0], ctx[1], ctx[2]
        return drive(*head, n, *tail)

    def worker_finish(self, ctx):
        arrays, w = ctx[3], ctx[5]
        arrays["counters"][w, C_STRANDED] = arrays["pcp"][w * P.PCP_WORDS + P.P_COUNT]

    def check(self, arrays, p, nworkers):
        F = p["nframes"]
        mm, pb, fl, zn = (arrays[k] for k in ("zone_mm", "zone_pb", "zone_fl", "zone_zn"))
        mark = np.zeros(F, np.int32)
        errors = Z.zone_check(mm, pb, fl, zn, mark)
        if p["allocator"].startswith("pcp-"):
            errors += P.pcp_check(mm, arrays["pcp"], nworkers, mark)
            for w in range(nworkers):
                arrays["counters"][w, C_STRANDED] = arrays["pcp"][w * P.PCP_WORDS + P.P_COUNT]
        if p["allocator"] == "llfree":
            args = (arrays["llf_bits"], arrays["llf_children"], arrays["llf_trees"],
                    arrays["llf_local"])
            errors += L.llfree_check(*args, F, nworkers)
            bits = np.unpackbits(arrays["llf_bits"].view(np.uint8), bitorder="little")[:F]
            huge = np.repeat((arrays["llf_children"] & L.CHILD_HUGE) != 0, L.LLF_CHILD_FRAMES)
            mark += ((bits == 0) & ~huge).astype(np.int32)
        if self._aged(p):
            res = arrays["pa_resident"].astype(bool)
            bad = np.flatnonzero(res & (mm[:, Z.PG_REFCOUNT] != 1))
            if len(bad):
                errors.append(f"resident frame {int(bad[0])} has refcount "
                              f"{int(mm[bad[0], Z.PG_REFCOUNT])} ({len(bad)} such)")
            mark += res.astype(np.int32)
        errs = np.zeros((16, 2), np.int64)
        n = _mark_held(mm, arrays["pa_held"], mark, errs)
        for code, pfn in errs[:min(n, 16)]:
            errors.append(f"held block at pfn {pfn} has refcount {mm[pfn, Z.PG_REFCOUNT]}"
                          if code == 1 else f"held frame {pfn} is also free or held twice")
        errors += Z.placement_errors(mark)
        return errors

    def report(self, arrays, p, nworkers):
        lat = arrays["pa_lat"]
        hist = {k: {"unit": "cycles", "bucket_log2_base": 0,
                    "counts": [int(x) for x in lat[:, i, :].sum(axis=0)]}
                for i, k in enumerate(("alloc", "free"))}
        A, _ = self.sizes(p, nworkers)
        extra = {"blocks_per_worker": A}
        if self._aged(p):
            extra["resident_frames"] = int(arrays["pa_resident"].sum())
        if p["workload"] == "frag":
            log = arrays["pa_fraglog"]
            done = log[2] >= 0
            extra["frag_free_huge_per_round"] = [int(x) for x in log[0][done]]
            extra["frag_free_huge_allocator_per_round"] = [int(x) for x in log[1][done]]
            extra["frag_held_per_round"] = [int(x) for x in log[2][done]]
            extra["frag_huge_total"] = p["nframes"] >> Z.PAGEBLOCK_ORDER
            # the most huge frames the free memory could form (the paper's 50 % line)
            H = A // 2
            extra["frag_free_huge_max"] = (p["nframes"] - ((nworkers * H) << p["order"])) \
                >> Z.PAGEBLOCK_ORDER
            extra["frag_blocks_per_worker"] = A
            # linux-alloc-bench's normalisation: the share of the memory freed since the
            # first measurement that now forms free huge frames (the paper's 0..50 % axis
            # is this times 50: half of memory was freed)
            r = extra["frag_free_huge_per_round"]
            top = extra["frag_free_huge_max"]
            extra["frag_freed_huge_share_per_round"] = (
                [(x - r[0]) / (top - r[0]) for x in r] if r and top > r[0] else [])
        if p["allocator"].startswith("pcp-"):
            pcp = arrays["pcp"]
            extra["pcp_high_final"] = [int(pcp[w * P.PCP_WORDS + P.P_HIGH]) for w in range(nworkers)]
            extra["pcp_batch"] = int(pcp[P.P_BATCH])
            extra["pcp_high_min_max"] = [int(pcp[P.P_HIGH_MIN]), int(pcp[P.P_HIGH_MAX])]
            extra["pcp_free_high_batch"] = bool(pcp[P.P_FLAGS] & P.PCPF_FREE_HIGH_BATCH)
            extra["node_cpus"] = self.node_cpus(p, nworkers)
        if self._from_box(p):
            extra["pcp_from_box"] = {"batch": p["batch"], "high": p["high"],
                                     "source": procfs.ZONEINFO}
        # Filled by worker_finish, after the measured window the harness's deltas cover.
        stranded = arrays["counters"][:, C_STRANDED].tolist()
        return {"latency": hist, "extra": extra, "counters": {"pcp_stranded": stranded}}

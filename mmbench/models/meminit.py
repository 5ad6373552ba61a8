"""Boot-time struct page initialisation: serial, deferred, padata-parallel and grow-on-demand.

Simulated memory: ``nodes`` NUMA nodes of ``node_mib`` each, one zone (ZONE_NORMAL) per
node, a memmap of 64-byte ``struct page`` records (:mod:`mmbench.models.zone`) over all of it.
Memblock reserves, per node, its own memmap at the node's top (memblock allocates top-down,
node_pages / 64 frames) and, on node 0, the first MiB and a ``kernel_mib`` kernel image at
16 MiB; everything else is memblock-free memory that ends in the buddy allocator.

A point boots this machine over and over.  One *round* (one boot), with every worker::

    barrier A -> worker 0 resets the zones, pageblocks and node state (gen += 1)
    barrier B -> worker 0: early boot (memmap_init, memmap_init_reserved_pages,
                 free_low_memory_core_early: ``__free_pages_memory`` in max-order blocks)
                 -> "boot complete": the first allocation is possible (t_boot)
    barrier C -> the mode's deferred work; the round ends when every worker reaches A again

Modes (variants):

* ``serial``          no deferral: worker 0 initialises every page of every node, then frees
                      every free range (two passes over the whole memmap); the others idle.
* ``deferred``        DEFERRED_STRUCT_PAGE_INIT: the early boot covers each node's prefix
                      [node_start, first_deferred_pfn); then one thread per node runs
                      ``deferred_init_memmap`` over the rest.
* ``parallel``        the same job split by ``padata_do_multithreaded`` (5.7+): section-aligned
                      chunks claimed from a shared atomic cursor by up to ``threads_per_node``
                      helpers of the node (the node's thread being one of them).
* ``grow-on-demand``  workers beyond the node's init threads allocate right after boot; an
                      allocation that fails the low watermark (or finds the zone empty) while
                      deferred pages remain runs ``deferred_grow_zone``: under the node's resize
                      lock it initialises max-order blocks up to a section boundary and advances
                      first_deferred_pfn.  The node's init thread takes over (first_deferred_pfn
                      = ULONG_MAX, under the same lock) once the allocators have taken
                      ``late_init_mib`` (the allocations of early boot before
                      page_alloc_init_late); later allocations that find the zone empty stall
                      until the init thread frees more.

Deferred pages are done as in ``deferred_init_maxorder``: each max-order block (1024 pages)
is first fully initialised (``__init_single_page``), then freed -- a whole aligned block as one
order-10 block after marking its pageblocks MOVABLE, otherwise page by page
(``deferred_free_pages``) -- so buddy merging never reads an uninitialised struct page.  Each
free is ``__free_pages_core``: clear PG_reserved and the refcount of every page, then
``free_one_page`` under zone->lock (one lockset per node; its statistics are the harness's lock
counters, the resize locks count into a private array).

One op = one struct page initialised (and, unless reserved, freed): ops/s = pages/s.  Steps
are bounded by ``n`` pages of work; a worker that waits (a barrier, a job not yet published, a
stalled allocation) returns 0 and yields its CPU.  ``page->index`` (PG_INDEX) holds the boot
generation of the last ``__init_single_page`` (the kernel zeroes it): initialising a page whose
index already holds this boot's generation is counted as a double initialisation, and an
allocation that returns a page of another generation as an uninitialised page handed out.

Workers: worker w serves node w % nodes with rank w // nodes (with fewer workers than nodes,
worker w is the only thread of nodes w, w + W, ...); ranks below the node's thread count run
its deferred init, the others idle (or allocate, in grow-on-demand).  Worker 0 also does the
early boot, as the boot CPU does.

Simplifications: one zone per node (the kernel fully initialises node 0's DMA/DMA32 zones
early); no memory holes; managed_pages is added under zone->lock (an atomic add outside it in
the kernel); an allocation that fails the watermark and cannot grow still tries the zone (the
slow path's lower watermark) instead of walking a zonelist; after the init thread has taken
over, a failed allocation waits (counted as a stall) instead of reclaiming.

Reported (``extra``): median time to boot completion and to full init per boot (cycle
counter), pages/s and the memmap write bandwidth (64 B x pages/s) next to the measured memset
bandwidth, deferred pages per helper (chunk balance, max / mean), padata chunk size and
nworks, zone and resize lock contention, grow calls and allocation stalls.

``check`` first finishes an interrupted boot (the parent drives every worker's state machine
round-robin in "finish" mode until each one waits at barrier A), then verifies the whole
machine: every page initialised exactly once in this boot with the right zone/node/section,
the buddy lists well formed (``zone_check``) and holding exactly the present pages minus the
reserved ones (minus those allocated), and the padata chunks tiling each node's job.
"""
from __future__ import annotations

import os
import time

import numpy as np
from numba import njit

from ..atomics import cpu_relax, fetch_add, load_acquire, load_relaxed, rdtsc, store_release
from ..ctl import N_LOCK_COUNTERS
from ..jit import helper, kernel
from ..locks import LOCK_KINDS, init_lockset, lockset_words, spin_lock, spin_unlock
from ..model import ArraySpec, Model, Param
from . import zone as Z

MODES = ("serial", "deferred", "parallel", "grow-on-demand")
M_SERIAL, M_DEFERRED, M_PARALLEL, M_GROW = range(4)

PAGES_PER_SECTION = 1 << Z.PFN_SECTION_SHIFT          # 32768: 128 MiB
MAX_ORDER_NR_PAGES = 1 << Z.MAX_PAGE_ORDER            # 1024: 4 MiB
PAGES_PER_MIB = 256
FL_ROW = 136          # free_area heads per node, padded to whole cache lines (132 used)
MAXR = 4              # memblock ranges per node (free or reserved)
RING = 4096           # rounds remembered for the timing report
POLL_SPINS = 256      # barrier polls (PAUSE) before a waiting worker returns to Python
KERNEL_START_PFN = 4096   # x86-64: the kernel image is loaded at 16 MiB
LOW_RESERVED_PFNS = 256   # x86-64: the first MiB (BIOS, real-mode trampoline) stays reserved

# par[]: run configuration
PA_MODE, PA_NODES, PA_NODE_PAGES, PA_ALLOC_ORDER, PA_POISON, PA_MAXC = range(6)
PAR_WORDS = 16
# npar[node, ...]
NP_START, NP_END, NP_EARLY_END, NP_FDP0, NP_THREADS, NP_NALLOC, NP_LATE, NP_FREE_PAGES, \
    NP_RESV_PAGES, NP_FLAGS_HI = range(10)
NPAR_WORDS = 16
# wrole[w, ...]
WR_NODE, WR_RANK, WR_ALLOC, WR_QUOTA, WR_NNODES = range(5)
WROLE_WORDS = 8
# nst[node, ...]: node state, reset every round (line 0: read-mostly, line 1: atomics)
NS_FDP = 0            # pgdat->first_deferred_pfn (-1 = ULONG_MAX)
NS_JOB = 1            # padata job published
NS_JSTART, NS_JEND, NS_CHUNK, NS_NWORKS = 2, 3, 4, 5
NS_COMPLETE = 6       # every deferred page of the node initialised and freed
NS_CURSOR = 8         # next chunk index (fetch_add)
NS_DONE = 9           # job pages finished (fetch_add per chunk)
NS_ALLOCATED = 10     # pages taken by the node's allocators
NS_ALLOC_FIN = 11     # allocators that finished their quota
NS_GROWN = 12         # pages initialised by deferred_grow_zone
NS_NCHUNK = 13        # chunks logged
NST_WORDS = 16
# glob[]: one word per cache line
G_BAR_COUNT, G_BAR_GEN, G_GEN, G_NODES_DONE, G_DEFERRED_ON = 0, 8, 16, 24, 32
GLOB_WORDS = 48
# rounds[gen % RING, ...]: cycle counter at round start, boot complete, full init
R_GEN, R_T_START, R_T_BOOT, R_T_FULL = range(4)
ROUND_WORDS = 8
# err[]: invariant violations seen inside the kernels (cumulative over all rounds)
E_DUP_INIT, E_UNINIT_ALLOC, E_BAD_FLAGS, E_BAD_CHUNK, E_ROUND_ACCOUNT = range(5)
ERR_WORDS = 16
ERR_TEXT = {
    E_DUP_INIT: "struct pages initialised twice in one boot",
    E_UNINIT_ALLOC: "allocated pages not initialised in the current boot",
    E_BAD_FLAGS: "allocated pages with wrong zone/node/section or PG_reserved",
    E_BAD_CHUNK: "padata chunks not section-aligned",
    E_ROUND_ACCOUNT: "rounds that ended with free + allocated != managed != free memblock pages",
}
# wst[w, ...]: per-worker state machine
S_PHASE, S_BAR_ARR, S_BAR_GEN, S_GEN = 0, 1, 2, 3
S_B_STAGE, S_B_NODE, S_B_IDX, S_B_POS = 4, 5, 6, 7
S_D_NI, S_D_STATE, S_D_CS, S_D_CE, S_D_POS = 8, 9, 10, 11, 12
S_A_DONE, S_A_STALL_T0, S_PAGES, S_DPAGES = 13, 14, 15, 16
WST_WORDS = 32
PH_A, PH_RESET, PH_B, PH_BOOT, PH_C, PH_DEFER, PH_ALLOC = range(7)
# deferred-stage states
D_START, D_WAIT_JOB, D_CLAIM, D_CHUNK, D_NEXT = range(5)
# status of the stage helpers
ST_MORE, ST_DONE, ST_ABORT = 0, 1, -2

COUNTER_NAMES = ("pages_init", "pages_boot", "pages_deferred", "pages_grown", "chunks",
                 "grow_calls", "pages_allocated", "alloc_stalls", "alloc_stall_cycles",
                 "alloc_fail", "rounds")
CB = N_LOCK_COUNTERS
C_PAGES_INIT, C_PAGES_BOOT, C_PAGES_DEFERRED, C_PAGES_GROWN, C_CHUNKS, C_GROW_CALLS, \
    C_PAGES_ALLOCATED, C_ALLOC_STALLS, C_ALLOC_STALL_CYC, C_ALLOC_FAIL, C_ROUNDS = \
    range(CB, CB + len(COUNTER_NAMES))


# --- padata ------------------------------------------------------------------------------
@helper
def padata_params(size, min_chunk, align, max_threads):
    """padata_do_multithreaded: (nworks, chunk_size) for a job of ``size`` (load-balance factor 4)."""
    nworks = max(size // min_chunk, 1)
    nworks = min(nworks, max_threads)
    chunk = max(size // (nworks * 4), min_chunk)
    chunk = max(chunk, 1)
    chunk = (chunk + align - 1) // align * align
    return nworks, chunk


def padata_chunks(start: int, size: int, chunk: int) -> list[tuple[int, int]]:
    """The chunks helpers claim, in claim order: [s, min(roundup(s + 1, chunk), end))."""
    out = []
    end = start + size
    k = start // chunk
    while True:
        s = max(start, k * chunk)
        if s >= end:
            return out
        out.append((s, min((k + 1) * chunk, end)))
        k += 1


# --- struct page init and __free_pages_core ----------------------------------------------
@helper
def _init_single_page(mm, pfn, flags_hi, gen, err):
    """__init_single_page: flags with zone/node/section (+ PG_reserved until freed), refcount 1,
    mapcount -1, lru linked to itself; page->index holds the boot generation (the canary)."""
    if mm[pfn, Z.PG_INDEX] == gen:
        fetch_add(err, E_DUP_INIT, 1)
    mm[pfn, Z.PG_FLAGS] = (flags_hi | Z.PGF_RESERVED
                           | ((pfn >> Z.PFN_SECTION_SHIFT) << Z.SECTIONS_PGSHIFT))
    mm[pfn, Z.PG_REFCOUNT] = 1
    mm[pfn, Z.PG_MAPCOUNT] = -1
    mm[pfn, Z.PG_PRIVATE] = 0
    mm[pfn, Z.PG_LRU_NEXT] = pfn
    mm[pfn, Z.PG_LRU_PREV] = pfn
    mm[pfn, Z.PG_MAPPING] = 0
    mm[pfn, Z.PG_INDEX] = gen


@helper
def _free_pages_core(mm, pb, fl, zn, zl, pfn, order, w, cnt, ctl):
    """__free_pages_core: PG_reserved off and refcount 0 on every page (outside the lock), then
    free_one_page: managed_pages and __free_one_page to the list tail under zone->lock."""
    for p in range(pfn, pfn + (1 << order)):
        mm[p, Z.PG_FLAGS] &= ~Z.PGF_RESERVED
        mm[p, Z.PG_REFCOUNT] = 0
    mt = Z.get_pageblock_migratetype(pb, pfn)
    if not spin_lock(zl, 0, w, cnt, ctl):
        return False
    zn[Z.Z_MANAGED] += 1 << order
    Z.free_one_page_locked(mm, pb, fl, zn, pfn, order, mt, True)
    spin_unlock(zl, 0, w, cnt)
    return True


@helper
def _deferred_free_pages(mm, pb, fl, zn, zl, pfn, nr, w, cnt, ctl):
    """deferred_free_pages: a whole aligned max-order block in one piece, else page by page."""
    if nr == MAX_ORDER_NR_PAGES and (pfn & (MAX_ORDER_NR_PAGES - 1)) == 0:
        for i in range(0, nr, Z.PAGEBLOCK_NR_PAGES):
            Z.set_pageblock_migratetype(pb, pfn + i, Z.MIGRATE_MOVABLE)
        return _free_pages_core(mm, pb, fl, zn, zl, pfn, Z.MAX_PAGE_ORDER, w, cnt, ctl)
    for p in range(pfn, pfn + nr):
        if (p & (Z.PAGEBLOCK_NR_PAGES - 1)) == 0:
            Z.set_pageblock_migratetype(pb, p, Z.MIGRATE_MOVABLE)
        if not _free_pages_core(mm, pb, fl, zn, zl, p, 0, w, cnt, ctl):
            return False
    return True


@helper
def _init_maxorder(mm, pb, fl, zn, zl, fr, nfr, spfn, epfn, flags_hi, gen, err, w, cnt, ctl):
    """deferred_init_maxorder for [spfn, epfn) inside one max-order block: initialise every
    memblock-free page of it, then free them.  Pages initialised, or -2 if the run aborted."""
    nr = 0
    for i in range(nfr):
        s = max(fr[i, 0], spfn)
        e = min(fr[i, 1], epfn)
        for p in range(s, e):
            _init_single_page(mm, p, flags_hi, gen, err)
        if e > s:
            nr += e - s
    for i in range(nfr):
        s = max(fr[i, 0], spfn)
        e = min(fr[i, 1], epfn)
        if e > s and not _deferred_free_pages(mm, pb, fl, zn, zl, s, e - s, w, cnt, ctl):
            return -2
    return nr


@helper
def _set_watermarks(zn):
    """__setup_per_zone_wmarks for one zone (zone.watermarks, compiled)."""
    managed = zn[Z.Z_MANAGED]
    mfk = np.int64(np.sqrt(managed * 4.0 * 16.0))
    mfk = max(128, min(mfk, 262144))
    wmin = mfk // 4
    tmp = max(wmin // 4, managed * 10 // 10000)
    zn[Z.Z_WMARK_MIN] = wmin
    zn[Z.Z_WMARK_LOW] = wmin + tmp
    zn[Z.Z_WMARK_HIGH] = wmin + 2 * tmp


# --- phases --------------------------------------------------------------------------------
@helper
def _barrier(glob, wst, w, nw, spins):
    """Split-phase barrier: arrive once, then poll; False = not released yet (call again)."""
    if wst[w, S_BAR_ARR] == 0:
        g = load_acquire(glob, G_BAR_GEN)
        wst[w, S_BAR_GEN] = g
        wst[w, S_BAR_ARR] = 1
        if fetch_add(glob, G_BAR_COUNT, 1) == nw - 1:
            glob[G_BAR_COUNT] = 0
            store_release(glob, G_BAR_GEN, g + 1)
            wst[w, S_BAR_ARR] = 0
            return True
    for _ in range(spins):
        if load_acquire(glob, G_BAR_GEN) != wst[w, S_BAR_GEN]:
            wst[w, S_BAR_ARR] = 0
            return True
        cpu_relax()
    return False


@helper
def _reset(mm, pb, fl, zn, nst, glob, par, npar, rounds, err, cnt, w, finish):
    """Power cycle: account the last boot, then empty zones, UNMOVABLE pageblocks, node state
    as free_area_init leaves it; the memmap keeps the last boot's contents (garbage to this
    boot) unless ``poison`` fills it with 0xff like page_init_poison."""
    nodes = par[PA_NODES]
    gen = glob[G_GEN]
    if gen > 0:
        for nd in range(nodes):
            want = npar[nd, NP_FREE_PAGES]
            if (zn[nd, Z.Z_MANAGED] != want or nst[nd, NS_COMPLETE] != 1
                    or zn[nd, Z.Z_FREE_PAGES] + nst[nd, NS_ALLOCATED] != want):
                fetch_add(err, E_ROUND_ACCOUNT, 1)
        cnt[w, C_ROUNDS] += 1
    gen += 1
    for i in range(pb.shape[0]):
        pb[i] = Z.MIGRATE_UNMOVABLE
    for nd in range(nodes):
        for i in range(fl.shape[1]):
            fl[nd, i] = -1
        for i in range(zn.shape[1]):
            zn[nd, i] = 0
        zn[nd, Z.Z_START_PFN] = npar[nd, NP_START]
        zn[nd, Z.Z_SPANNED] = npar[nd, NP_END] - npar[nd, NP_START]
        zn[nd, Z.Z_PRESENT] = npar[nd, NP_END] - npar[nd, NP_START]
        zn[nd, Z.Z_ID] = Z.ZONE_NORMAL
        zn[nd, Z.Z_NODE] = nd
        for i in range(nst.shape[1]):
            nst[nd, i] = 0
        nst[nd, NS_FDP] = npar[nd, NP_FDP0]
    glob[G_NODES_DONE] = 0
    glob[G_DEFERRED_ON] = 0
    if par[PA_POISON] != 0:
        for p in range(mm.shape[0]):
            for j in range(Z.STRUCT_PAGE_WORDS):
                mm[p, j] = -1
    ri = gen % rounds.shape[0]
    for i in range(rounds.shape[1]):
        rounds[ri, i] = 0
    rounds[ri, R_GEN] = gen
    if finish == 0:
        rounds[ri, R_T_START] = rdtsc()
    store_release(glob, G_GEN, gen)


@helper
def _node_complete(nst, glob, rounds, nd, nodes, gen, finish):
    """The node's deferred init is done; the last node turns deferred_pages off (t_full)."""
    store_release(nst[nd], NS_COMPLETE, 1)
    if fetch_add(glob, G_NODES_DONE, 1) + 1 == nodes:
        store_release(glob, G_DEFERRED_ON, 0)
        if finish == 0:
            rounds[gen % rounds.shape[0], R_T_FULL] = rdtsc()


@helper
def _boot_step(mm, pb, fl, zn, zlk, nst, glob, par, npar, fr, nfr, rs, nrs, wst, rounds, err,
               cnt, ctl, w, budget, finish):
    """Worker 0's early boot, resumable: (ops, work, status).

    stage 0 memmap_init: every pfn of [node_start, early_end), pageblocks MOVABLE;
    stage 1 memmap_init_reserved_pages: reserved pages beyond early_end;
    stage 2 free_low_memory_core_early: free ranges below early_end, largest aligned blocks.
    """
    nodes = par[PA_NODES]
    gen = wst[w, S_GEN]
    ops = 0
    work = 0
    while work < budget:
        st = wst[w, S_B_STAGE]
        nd = wst[w, S_B_NODE]
        if nd >= nodes:
            wst[w, S_B_STAGE] = st + 1
            wst[w, S_B_NODE] = 0
            wst[w, S_B_IDX] = 0
            wst[w, S_B_POS] = -1
            if st + 1 == 3:
                for i in range(nodes):
                    _set_watermarks(zn[i])
                ri = gen % rounds.shape[0]
                if finish == 0:
                    rounds[ri, R_T_BOOT] = rdtsc()
                if par[PA_MODE] == M_SERIAL:
                    for i in range(nodes):
                        _node_complete(nst, glob, rounds, i, nodes, gen, 1)
                    rounds[ri, R_T_FULL] = rounds[ri, R_T_BOOT]     # boot is the full init
                else:
                    store_release(glob, G_DEFERRED_ON, 1)
                return ops, work, ST_DONE
            continue
        early_end = npar[nd, NP_EARLY_END]
        flags_hi = npar[nd, NP_FLAGS_HI]
        pos = wst[w, S_B_POS]
        if st == 0:
            if pos < 0:
                pos = npar[nd, NP_START]
            if pos >= early_end:
                wst[w, S_B_NODE] = nd + 1
                wst[w, S_B_POS] = -1
                continue
            e = min((pos + MAX_ORDER_NR_PAGES) & ~(MAX_ORDER_NR_PAGES - 1), early_end)
            for p in range(pos, e):
                _init_single_page(mm, p, flags_hi, gen, err)
                if (p & (Z.PAGEBLOCK_NR_PAGES - 1)) == 0:
                    Z.set_pageblock_migratetype(pb, p, Z.MIGRATE_MOVABLE)
            ops += e - pos
            work += e - pos
            wst[w, S_B_POS] = e
        else:
            idx = wst[w, S_B_IDX]
            nr = nrs[nd] if st == 1 else nfr[nd]
            if idx >= nr:
                wst[w, S_B_NODE] = nd + 1
                wst[w, S_B_IDX] = 0
                wst[w, S_B_POS] = -1
                continue
            if st == 1:
                s = max(rs[nd, idx, 0], early_end)
                e = rs[nd, idx, 1]
            else:
                s = fr[nd, idx, 0]
                e = min(fr[nd, idx, 1], early_end)
            pos = max(pos, s)
            if pos >= e:
                wst[w, S_B_IDX] = idx + 1
                wst[w, S_B_POS] = -1
                continue
            if st == 1:
                e2 = min(pos + MAX_ORDER_NR_PAGES, e)
                for p in range(pos, e2):
                    _init_single_page(mm, p, flags_hi, gen, err)
                ops += e2 - pos
                work += e2 - pos
                wst[w, S_B_POS] = e2
            else:
                # __free_pages_memory: the largest block that pos's alignment and e allow
                order = Z.MAX_PAGE_ORDER
                while order > 0 and (pos & ((1 << order) - 1)) != 0:
                    order -= 1
                while pos + (1 << order) > e:
                    order -= 1
                if not _free_pages_core(mm, pb, fl[nd], zn[nd], zlk[nd], pos, order, w, cnt, ctl):
                    return ops, work, ST_ABORT
                work += 1 << order
                wst[w, S_B_POS] = pos + (1 << order)
    return ops, work, ST_MORE


@helper
def _defer_step(mm, pb, fl, zn, zlk, rlk, nst, glob, par, npar, wrole, wnodes, fr, nfr, wst,
                rounds, clog, err, cnt, rcnt, ctl, w, budget, finish):
    """This worker's share of deferred_init_memmap on each node it serves: (ops, work, status).

    Rank 0 of a node is its kthread: it takes the rest of the node under the resize lock
    (first_deferred_pfn = ULONG_MAX) and publishes the padata job; ranks below nworks claim
    chunks from the node's cursor; the helper that finishes the job's last chunk completes it.
    """
    mode = par[PA_MODE]
    nodes = par[PA_NODES]
    gen = wst[w, S_GEN]
    rank = wrole[w, WR_RANK]
    ops = 0
    work = 0
    while work < budget:
        ni = wst[w, S_D_NI]
        if ni >= wrole[w, WR_NNODES]:
            return ops, work, ST_DONE
        nd = wnodes[w, ni]
        ns = nst[nd]
        st = wst[w, S_D_STATE]
        if st == D_START:
            if rank != 0:
                wst[w, S_D_STATE] = D_WAIT_JOB
                continue
            if mode == M_GROW and npar[nd, NP_NALLOC] > 0:
                # page_alloc_init_late has not come yet: early-boot allocations go on
                fdp = load_acquire(ns, NS_FDP)
                if (load_acquire(ns, NS_ALLOCATED) < npar[nd, NP_LATE]
                        and load_acquire(ns, NS_ALLOC_FIN) < npar[nd, NP_NALLOC]
                        and 0 <= fdp < npar[nd, NP_END]):
                    return ops, work, ST_MORE
            if not spin_lock(rlk, nd, w, rcnt, ctl):
                return ops, work, ST_ABORT
            first = ns[NS_FDP]
            store_release(ns, NS_FDP, -1)
            spin_unlock(rlk, nd, w, rcnt)
            last = (npar[nd, NP_END] + PAGES_PER_SECTION - 1) & ~(PAGES_PER_SECTION - 1)
            if first < 0:
                first = last
            size = last - first
            nworks = 0
            chunk = PAGES_PER_SECTION
            if size > 0:
                nworks, chunk = padata_params(size, PAGES_PER_SECTION, PAGES_PER_SECTION,
                                              npar[nd, NP_THREADS])
            ns[NS_JSTART] = first
            ns[NS_JEND] = last
            ns[NS_CHUNK] = chunk
            ns[NS_NWORKS] = nworks
            ns[NS_CURSOR] = first // chunk
            store_release(ns, NS_JOB, 1)
            if size == 0:
                _node_complete(nst, glob, rounds, nd, nodes, gen, finish)
                wst[w, S_D_STATE] = D_NEXT
            else:
                wst[w, S_D_STATE] = D_CLAIM
        elif st == D_WAIT_JOB:
            if load_acquire(ns, NS_JOB) == 0:
                return ops, work, ST_MORE
            wst[w, S_D_STATE] = D_CLAIM if rank < ns[NS_NWORKS] else D_NEXT
        elif st == D_CLAIM:
            chunk = ns[NS_CHUNK]
            js = ns[NS_JSTART]
            je = ns[NS_JEND]
            k = fetch_add(ns, NS_CURSOR, 1)
            s = max(js, k * chunk)
            if s >= je:
                wst[w, S_D_STATE] = D_NEXT
                continue
            e = min((k + 1) * chunk, je)
            if (s & (PAGES_PER_SECTION - 1)) != 0 or ((e & (PAGES_PER_SECTION - 1)) != 0
                                                       and e != je):
                fetch_add(err, E_BAD_CHUNK, 1)
            ci = fetch_add(ns, NS_NCHUNK, 1)
            if ci < clog.shape[1]:
                clog[nd, ci, 0] = s
                clog[nd, ci, 1] = e
                clog[nd, ci, 2] = w
            cnt[w, C_CHUNKS] += 1
            wst[w, S_D_CS] = s
            wst[w, S_D_CE] = e
            wst[w, S_D_POS] = s
            wst[w, S_D_STATE] = D_CHUNK
        elif st == D_CHUNK:
            pos = wst[w, S_D_POS]
            ce = wst[w, S_D_CE]
            mo = min((pos + MAX_ORDER_NR_PAGES) & ~(MAX_ORDER_NR_PAGES - 1), ce)
            r = _init_maxorder(mm, pb, fl[nd], zn[nd], zlk[nd], fr[nd], nfr[nd], pos, mo,
                               npar[nd, NP_FLAGS_HI], gen, err, w, cnt, ctl)
            if r < 0:
                return ops, work, ST_ABORT
            ops += r
            work += mo - pos
            wst[w, S_DPAGES] += r
            cnt[w, C_PAGES_DEFERRED] += r
            wst[w, S_D_POS] = mo
            if mo >= ce:
                sz = ce - wst[w, S_D_CS]
                if fetch_add(ns, NS_DONE, sz) + sz == ns[NS_JEND] - ns[NS_JSTART]:
                    _node_complete(nst, glob, rounds, nd, nodes, gen, finish)
                wst[w, S_D_STATE] = D_CLAIM
        else:
            wst[w, S_D_NI] = ni + 1
            wst[w, S_D_STATE] = D_START
    return ops, work, ST_MORE


@helper
def _next_free_pfn(fr, nfr, pfn):
    """The first memblock-free pfn >= pfn on this node (-1: none)."""
    best = -1
    for i in range(nfr):
        if fr[i, 1] > pfn:
            s = max(fr[i, 0], pfn)
            if best < 0 or s < best:
                best = s
    return best


@helper
def deferred_grow_zone(mm, pb, fl, zn, zl, rlk, ns, fr, nfr, nd, end, order, fdp_seen, flags_hi,
                       gen, err, w, cnt, rcnt, ctl):
    """deferred_grow_zone: -2 aborted, -1 false, else true with the pages it initialised.

    Under the node's resize lock: if first_deferred_pfn moved since ``fdp_seen`` someone else
    grew the zone (true); if it is ULONG_MAX the init thread owns the rest (false); else
    initialise max-order blocks until ALIGN(2^order, PAGES_PER_SECTION) pages are done,
    stopping only at a section boundary, and advance first_deferred_pfn.
    """
    needed = ((1 << order) + PAGES_PER_SECTION - 1) & ~(PAGES_PER_SECTION - 1)
    if not spin_lock(rlk, nd, w, rcnt, ctl):
        return -2
    cur = ns[NS_FDP]
    if cur != fdp_seen:
        spin_unlock(rlk, nd, w, rcnt)
        return 0
    if cur < 0:
        spin_unlock(rlk, nd, w, rcnt)
        return -1
    spfn = _next_free_pfn(fr, nfr, cur)
    if spfn < 0 or spfn >= end:
        store_release(ns, NS_FDP, -1)
        spin_unlock(rlk, nd, w, rcnt)
        return 0     # retry once
    cnt[w, C_GROW_CALLS] += 1
    nr = 0
    while spfn < end:
        first = spfn
        mo = min((spfn + MAX_ORDER_NR_PAGES) & ~(MAX_ORDER_NR_PAGES - 1), end)
        r = _init_maxorder(mm, pb, fl, zn, zl, fr, nfr, spfn, mo, flags_hi, gen, err, w, cnt, ctl)
        if r < 0:
            spin_unlock(rlk, nd, w, rcnt)
            return -2
        nr += r
        spfn = mo
        if (first ^ spfn) < PAGES_PER_SECTION:
            continue
        if nr >= needed:
            break
    store_release(ns, NS_FDP, spfn)
    ns[NS_GROWN] += nr
    spin_unlock(rlk, nd, w, rcnt)
    return nr if nr > 0 else -1


@helper
def _verify_alloc(mm, pfn, order, flags_hi, gen, err):
    """Every page of an allocated block must come from this boot's init, of the right node."""
    for p in range(pfn, pfn + (1 << order)):
        if mm[p, Z.PG_INDEX] != gen:
            fetch_add(err, E_UNINIT_ALLOC, 1)
        f = mm[p, Z.PG_FLAGS]
        want = flags_hi | ((p >> Z.PFN_SECTION_SHIFT) << Z.SECTIONS_PGSHIFT)
        if (f & ~Z.PGF_FLAGS_MASK) != want or (f & Z.PGF_RESERVED) != 0:
            fetch_add(err, E_BAD_FLAGS, 1)


@helper
def _alloc_step(mm, pb, fl, zn, zlk, rlk, nst, glob, par, npar, wrole, fr, nfr, wst, held, err,
                cnt, rcnt, ctl, w, budget):
    """An early-boot allocator (get_page_from_freelist with deferred pages): (ops, work, status)."""
    nd = wrole[w, WR_NODE]
    quota = wrole[w, WR_QUOTA]
    order = par[PA_ALLOC_ORDER]
    gen = wst[w, S_GEN]
    ns = nst[nd]
    fln = fl[nd]
    znn = zn[nd]
    zl = zlk[nd]
    frn = fr[nd]
    nfrn = nfr[nd]
    end = npar[nd, NP_END]
    flags_hi = npar[nd, NP_FLAGS_HI]
    ops = 0
    work = 0
    while work < budget:
        if wst[w, S_A_DONE] >= quota:
            fetch_add(ns, NS_ALLOC_FIN, 1)
            return ops, work, ST_DONE
        work += 1
        fdp = load_acquire(ns, NS_FDP)
        on = load_relaxed(glob, G_DEFERRED_ON) != 0
        if on and (load_relaxed(znn, Z.Z_FREE_PAGES) - (1 << order)
                   < load_relaxed(znn, Z.Z_WMARK_LOW)):
            # zone_watermark_fast failed: _deferred_grow_zone, then try the zone anyway
            r = deferred_grow_zone(mm, pb, fln, znn, zl, rlk, ns, frn, nfrn, nd, end, order, fdp,
                                   flags_hi, gen, err, w, cnt, rcnt, ctl)
            if r == -2:
                return ops, work, ST_ABORT
            if r > 0:
                ops += r
                work += r
                cnt[w, C_PAGES_GROWN] += r
            fdp = load_acquire(ns, NS_FDP)
        pfn = Z.buddy_alloc(mm, pb, fln, znn, zl, w, order, Z.MIGRATE_MOVABLE, cnt, ctl, -1)
        if pfn == -2:
            return ops, work, ST_ABORT
        if pfn == -1:
            if on:
                r = deferred_grow_zone(mm, pb, fln, znn, zl, rlk, ns, frn, nfrn, nd, end, order,
                                       fdp, flags_hi, gen, err, w, cnt, rcnt, ctl)
                if r == -2:
                    return ops, work, ST_ABORT
                if r >= 0:
                    ops += r
                    work += r
                    cnt[w, C_PAGES_GROWN] += r
                    continue
            if load_acquire(ns, NS_COMPLETE) != 0:
                # every page of the node is in the buddy and none is left: out of memory
                cnt[w, C_ALLOC_FAIL] += 1
                fetch_add(ns, NS_ALLOC_FIN, 1)
                return ops, work, ST_DONE
            if wst[w, S_A_STALL_T0] == 0:
                wst[w, S_A_STALL_T0] = rdtsc()
                cnt[w, C_ALLOC_STALLS] += 1
            return ops, work, ST_MORE
        if wst[w, S_A_STALL_T0] != 0:
            cnt[w, C_ALLOC_STALL_CYC] += rdtsc() - wst[w, S_A_STALL_T0]
            wst[w, S_A_STALL_T0] = 0
        _verify_alloc(mm, pfn, order, flags_hi, gen, err)
        i = wst[w, S_A_DONE]
        held[w, i] = pfn
        wst[w, S_A_DONE] = i + 1
        fetch_add(ns, NS_ALLOCATED, 1 << order)
        cnt[w, C_PAGES_ALLOCATED] += 1 << order
        work += 1 << order
    return ops, work, ST_MORE


@kernel
def meminit_step(mm, pb, fl, zn, zlk, rlk, nst, glob, par, npar, wrole, wnodes, fr, nfr, rs, nrs,
                 wst, held, rounds, wpages, clog, err, cnt, rcnt, ctl, w, nw, n, finish):
    """Run about ``n`` pages of worker ``w``'s boot rounds; returns the pages initialised.

    Returns 0 while waiting (barrier, unpublished job, stalled allocation).  With ``finish``
    set (the parent completing an interrupted boot) no timings are recorded and the worker
    parks at the next round's first barrier: -1 once it waits there.
    """
    ops = 0
    work = 0
    while work < n:
        ph = wst[w, S_PHASE]
        if ph == PH_A:
            if wst[w, S_BAR_ARR] == 0:
                g = wst[w, S_GEN]
                if g > 0:
                    ri = g % wpages.shape[1]
                    wpages[w, ri, 0] = wst[w, S_PAGES]
                    wpages[w, ri, 1] = wst[w, S_DPAGES]
                if finish != 0:
                    return ops if ops > 0 else -1
            if not _barrier(glob, wst, w, nw, POLL_SPINS):
                return ops if (finish == 0 or ops > 0) else -1
            wst[w, S_PHASE] = PH_RESET
        elif ph == PH_RESET:
            if w == 0:
                _reset(mm, pb, fl, zn, nst, glob, par, npar, rounds, err, cnt, w, finish)
                work += 1
            wst[w, S_PHASE] = PH_B
        elif ph == PH_B:
            if not _barrier(glob, wst, w, nw, POLL_SPINS):
                return ops
            wst[w, S_GEN] = load_acquire(glob, G_GEN)
            for i in range(S_B_STAGE, WST_WORDS):
                wst[w, i] = 0
            wst[w, S_B_POS] = -1
            wst[w, S_PHASE] = PH_BOOT if w == 0 else PH_C
        elif ph == PH_BOOT:
            o, k, st = _boot_step(mm, pb, fl, zn, zlk, nst, glob, par, npar, fr, nfr, rs, nrs,
                                  wst, rounds, err, cnt, ctl, w, n - work, finish)
            ops += o
            work += k
            wst[w, S_PAGES] += o
            cnt[w, C_PAGES_INIT] += o
            cnt[w, C_PAGES_BOOT] += o
            if st == ST_ABORT:
                break
            if st == ST_DONE:
                wst[w, S_PHASE] = PH_C
        elif ph == PH_C:
            if not _barrier(glob, wst, w, nw, POLL_SPINS):
                return ops
            wst[w, S_PHASE] = PH_DEFER
        elif ph == PH_DEFER:
            o, k, st = _defer_step(mm, pb, fl, zn, zlk, rlk, nst, glob, par, npar, wrole, wnodes,
                                   fr, nfr, wst, rounds, clog, err, cnt, rcnt, ctl, w,
                                   n - work, finish)
            ops += o
            work += k
            wst[w, S_PAGES] += o
            cnt[w, C_PAGES_INIT] += o
            if st == ST_ABORT:
                break
            if st == ST_DONE:
                wst[w, S_PHASE] = PH_ALLOC if wrole[w, WR_ALLOC] != 0 else PH_A
            elif k == 0:
                return ops      # waiting for the job or for page_alloc_init_late
        else:
            o, k, st = _alloc_step(mm, pb, fl, zn, zlk, rlk, nst, glob, par, npar, wrole, fr,
                                   nfr, wst, held, err, cnt, rcnt, ctl, w, n - work)
            ops += o
            work += k
            wst[w, S_PAGES] += o
            cnt[w, C_PAGES_INIT] += o
            if st == ST_ABORT:
                break
            if st == ST_DONE:
                wst[w, S_PHASE] = PH_A
            elif k == 0 or wst[w, S_A_STALL_T0] != 0:
                return ops      # stalled: the zone is empty and cannot grow
    return ops


# --- Python side ---------------------------------------------------------------------------------
def node_ranges(p: dict) -> list[dict]:
    """Per node: [start, end), memblock-reserved and memblock-free pfn ranges."""
    npages = p["node_mib"] * PAGES_PER_MIB
    out = []
    for nd in range(p["nodes"]):
        start, end = nd * npages, (nd + 1) * npages
        resv = []
        if nd == 0:
            resv.append((0, LOW_RESERVED_PFNS))
            if p["kernel_mib"]:
                resv.append((KERNEL_START_PFN, KERNEL_START_PFN + p["kernel_mib"] * PAGES_PER_MIB))
        resv.append((end - npages // 64, end))      # the node's memmap, allocated top-down
        free = []
        cur = start
        for s, e in resv:
            if s > cur:
                free.append((cur, s))
            cur = max(cur, e)
        if cur < end:
            free.append((cur, end))
        out.append({"start": start, "end": end, "reserved": resv, "free": free})
    return out


def worker_roles(mode: str, nodes: int, nworkers: int, threads: int, alloc_blocks: int):
    """(wrole, wnodes, threads per node, allocators per node).

    Worker w serves node w % nodes with rank w // nodes (when there are fewer workers than
    nodes, worker w serves nodes w, w + W, ... as their only thread).  The node's first K
    ranks run its deferred init (K = 1 deferred, threads_per_node or all parallel, threads_per_node
    or 1 grow-on-demand); in grow-on-demand the other ranks allocate.
    """
    wrole = np.zeros((nworkers, WROLE_WORDS), np.int64)
    wrole[:, WR_NODE] = -1
    wnodes = np.full((nworkers, max(nodes, 1)), -1, np.int64)
    ks = [0] * nodes
    nalloc = [0] * nodes
    for nd in range(nodes):
        members = ([w for w in range(nworkers) if w % nodes == nd] if nworkers >= nodes
                   else [nd % nworkers])
        if mode == "serial":
            k = 0
        elif mode == "deferred":
            k = 1
        elif mode == "parallel":
            k = threads or len(members)
        else:
            k = threads or 1
        k = min(k, len(members))
        ks[nd] = k
        allocs = members[k:] if mode == "grow-on-demand" and nworkers >= nodes else []
        nalloc[nd] = len(allocs)
        for r, w in enumerate(members):
            if wrole[w, WR_NODE] < 0:
                wrole[w, WR_NODE] = nd
                wrole[w, WR_RANK] = r if nworkers >= nodes else 0
            if r < k:
                wnodes[w, wrole[w, WR_NNODES]] = nd
                wrole[w, WR_NNODES] += 1
        for i, w in enumerate(allocs):
            wrole[w, WR_ALLOC] = 1
            wrole[w, WR_QUOTA] = alloc_blocks // len(allocs) + (1 if i < alloc_blocks % len(allocs)
                                                                else 0)
    return wrole, wnodes, ks, nalloc


_MEMSET_CACHE: dict[int, float] = {}


def _memset_gbps(mib: int) -> float:
    if mib not in _MEMSET_CACHE:
        from ..probes import memset_gbps
        _MEMSET_CACHE[mib] = memset_gbps(mib)
    return _MEMSET_CACHE[mib]


class MemInitModel(Model):
    name = "meminit"
    description = ("boot-time struct page init: serial, deferred (one thread per node), "
                   "padata-parallel, grow-on-demand")
    variants = {m: {"init_mode": m} for m in MODES}
    params = {
        "init_mode": Param(str, "parallel", choices=MODES, help="set by the variant"),
        "nodes": Param(int, 2, 1, 16, help="NUMA nodes, one zone each"),
        "node_mib": Param(int, 8192, 128, 1 << 18,
                          help="memory per node in MiB (whole 128 MiB sections)"),
        "first_deferred_mib": Param(int, 128, 0, 1 << 18,
                                    help="first_deferred_pfn - node start, in MiB (whole sections; "
                                         "the kernel stops just past one section)"),
        "threads_per_node": Param(int, 0, 0, 4096,
                                  help="parallel: padata max_threads (0 = every worker of the node); "
                                       "grow-on-demand: init threads (0 = 1), the rest allocate"),
        "kernel_mib": Param(int, 64, 0, 4096, help="node 0: kernel image reserved at 16 MiB"),
        "alloc_mib": Param(int, 512, 0, 1 << 18,
                           help="grow-on-demand: MiB the allocators of a node take per boot"),
        "late_init_mib": Param(int, 256, 0, 1 << 18,
                               help="grow-on-demand: MiB allocated before the node's deferred "
                                    "init thread starts (page_alloc_init_late)"),
        "alloc_order": Param(int, 0, 0, Z.MAX_PAGE_ORDER, help="grow-on-demand: allocation order"),
        "poison": Param(bool, False,
                        help="page_init_poison: fill the memmap with 0xff before every boot"),
        "lock": Param(str, "ttas", choices=tuple(LOCK_KINDS), help="zone and resize lock kind"),
        "memset_probe_mib": Param(int, 256, 1, 1 << 16,
                                  help="buffer of the memset bandwidth probe in report()"),
    }
    counter_names = COUNTER_NAMES

    # --- parameters and sizes --------------------------------------------------------------
    def validate(self, p):
        if p["node_mib"] % 128:
            raise ValueError("node_mib must be a multiple of 128 (whole sections)")
        if p["first_deferred_mib"] % 128 or p["first_deferred_mib"] > p["node_mib"]:
            raise ValueError("first_deferred_mib must be a multiple of 128 and at most node_mib")
        if 16 + p["kernel_mib"] + p["node_mib"] // 64 > p["node_mib"]:
            raise ValueError("the kernel image (at 16 MiB) and the node's memmap do not fit node 0")
        if p["alloc_mib"] > p["node_mib"] // 2:
            raise ValueError("alloc_mib must be at most half of node_mib")
        free0 = p["node_mib"] - 1 - p["kernel_mib"] - p["node_mib"] // 64
        if p["alloc_mib"] > free0:
            raise ValueError(f"alloc_mib must be at most the {free0} MiB memblock leaves free on node 0")
        if p["late_init_mib"] > p["alloc_mib"]:
            raise ValueError("late_init_mib must be at most alloc_mib")
        if (p["alloc_mib"] * PAGES_PER_MIB) % (1 << p["alloc_order"]):
            raise ValueError("alloc_mib must be a whole number of blocks of alloc_order")

    @staticmethod
    def _alloc_blocks(p):
        if p["init_mode"] != "grow-on-demand":
            return 0
        return (p["alloc_mib"] * PAGES_PER_MIB) >> p["alloc_order"]

    def _held_cap(self, p, nworkers):
        wrole, _, _, _ = worker_roles(p["init_mode"], p["nodes"], nworkers, p["threads_per_node"],
                                      self._alloc_blocks(p))
        return max(1, int(wrole[:, WR_QUOTA].max()))

    def layout(self, p, nworkers):
        nodes = p["nodes"]
        F = nodes * p["node_mib"] * PAGES_PER_MIB
        maxc = p["node_mib"] // 128 + 2
        return [
            ArraySpec("zone_mm", (F, Z.STRUCT_PAGE_WORDS)),
            ArraySpec("zone_pb", (Z.pageblocks(F),)),
            ArraySpec("mi_fl", (nodes, FL_ROW)),
            ArraySpec("mi_zn", (nodes, Z.ZONE_WORDS)),
            ArraySpec("mi_zlock", (nodes, lockset_words(1, nworkers))),
            ArraySpec("mi_rlock", (lockset_words(nodes, nworkers),)),
            ArraySpec("mi_nst", (nodes, NST_WORDS)),
            ArraySpec("mi_glob", (GLOB_WORDS,)),
            ArraySpec("mi_par", (PAR_WORDS,)),
            ArraySpec("mi_npar", (nodes, NPAR_WORDS)),
            ArraySpec("mi_wrole", (nworkers, WROLE_WORDS)),
            ArraySpec("mi_wnodes", (nworkers, nodes)),
            ArraySpec("mi_fr", (nodes, MAXR, 2)),
            ArraySpec("mi_nfr", (nodes,)),
            ArraySpec("mi_rs", (nodes, MAXR, 2)),
            ArraySpec("mi_nrs", (nodes,)),
            ArraySpec("mi_wst", (nworkers, WST_WORDS)),
            ArraySpec("mi_held", (nworkers, self._held_cap(p, nworkers))),
            ArraySpec("mi_rounds", (RING, ROUND_WORDS)),
            ArraySpec("mi_wpages", (nworkers, RING, 2)),
            ArraySpec("mi_clog", (nodes, maxc, 3)),
            ArraySpec("mi_err", (ERR_WORDS,)),
            ArraySpec("mi_rcnt", (nworkers, 16)),
        ]

    def setup(self, arrays, p, nworkers, seed):
        a = arrays
        nodes = p["nodes"]
        mode = p["init_mode"]
        kind = LOCK_KINDS[p["lock"]]
        for nd in range(nodes):
            init_lockset(a["mi_zlock"][nd], 1, nworkers, kind, sample_hold=True)
        init_lockset(a["mi_rlock"], nodes, nworkers, kind)
        par = a["mi_par"]
        par[:] = 0
        par[PA_MODE] = MODES.index(mode)
        par[PA_NODES] = nodes
        par[PA_NODE_PAGES] = p["node_mib"] * PAGES_PER_MIB
        par[PA_ALLOC_ORDER] = p["alloc_order"]
        par[PA_POISON] = int(p["poison"])
        par[PA_MAXC] = a["mi_clog"].shape[1]
        wrole, wnodes, ks, nalloc = worker_roles(mode, nodes, nworkers, p["threads_per_node"],
                                                 self._alloc_blocks(p))
        a["mi_wrole"][:] = wrole
        a["mi_wnodes"][:] = wnodes
        npar = a["mi_npar"]
        npar[:] = 0
        a["mi_fr"][:] = 0
        a["mi_rs"][:] = 0
        for nd, r in enumerate(node_ranges(p)):
            fdp = r["start"] + p["first_deferred_mib"] * PAGES_PER_MIB
            npar[nd, NP_START] = r["start"]
            npar[nd, NP_END] = r["end"]
            npar[nd, NP_EARLY_END] = r["end"] if mode == "serial" else fdp
            npar[nd, NP_FDP0] = -1 if mode == "serial" else fdp
            npar[nd, NP_THREADS] = max(ks[nd], 1)
            npar[nd, NP_NALLOC] = nalloc[nd]
            npar[nd, NP_LATE] = p["late_init_mib"] * PAGES_PER_MIB if nalloc[nd] else 0
            npar[nd, NP_FREE_PAGES] = sum(e - s for s, e in r["free"])
            npar[nd, NP_RESV_PAGES] = sum(e - s for s, e in r["reserved"])
            npar[nd, NP_FLAGS_HI] = (Z.ZONE_NORMAL << Z.ZONES_PGSHIFT) | (nd << Z.NODES_PGSHIFT)
            a["mi_fr"][nd, :len(r["free"])] = r["free"]
            a["mi_nfr"][nd] = len(r["free"])
            a["mi_rs"][nd, :len(r["reserved"])] = r["reserved"]
            a["mi_nrs"][nd] = len(r["reserved"])
        for k in ("mi_glob", "mi_wst", "mi_rounds", "mi_wpages", "mi_err", "mi_rcnt", "mi_nst",
                  "zone_pb"):
            a[k][:] = 0
        a["mi_fl"][:] = -1
        a["mi_zn"][:] = 0
        a["mi_held"][:] = -1
        a["mi_clog"][:] = -1

    def compile(self, p):
        q = dict(p, nodes=1, node_mib=128, kernel_mib=0, alloc_mib=0, late_init_mib=0)
        a = {s.name: np.zeros(s.shape, s.dtype) for s in self.layout(q, 1)}
        self.setup(a, q, 1, 0)
        a["counters"] = np.zeros((1, self.counter_columns()), np.int64)
        a["ctl"] = np.zeros(64, np.int64)
        meminit_step(*self._args(a), 0, 1, 0, 0)

    @staticmethod
    def _args(a):
        return (a["zone_mm"], a["zone_pb"], a["mi_fl"], a["mi_zn"], a["mi_zlock"], a["mi_rlock"],
                a["mi_nst"], a["mi_glob"], a["mi_par"], a["mi_npar"], a["mi_wrole"], a["mi_wnodes"],
                a["mi_fr"], a["mi_nfr"], a["mi_rs"], a["mi_nrs"], a["mi_wst"], a["mi_held"],
                a["mi_rounds"], a["mi_wpages"], a["mi_clog"], a["mi_err"], a["counters"],
                a["mi_rcnt"], a["ctl"])

    # --- running -----------------------------------------------------------------------------
    def worker_init(self, arrays, p, worker, nworkers):
        return (self._args(arrays), worker, nworkers)

    def step(self, ctx, n):
        args, w, nw = ctx
        r = meminit_step(*args, w, nw, n, 0)
        if r <= 0:
            os.sched_yield()     # waiting: leave the CPU to a worker that has work
            return 0
        return r

    def finish_boot(self, arrays, p, nworkers, timeout: float = 120.0) -> bool:
        """Drive every worker's state machine round-robin until each waits at barrier A.

        Completes the boot a stopped run left half done (no timings are recorded); False if
        the workers stop making progress before that.
        """
        args = self._args(arrays)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            parked = 0
            for w in range(nworkers):
                if meminit_step(*args, w, nworkers, 1 << 20, 1) == -1:
                    parked += 1
            if parked == nworkers:
                return True
        return False

    # --- invariants ----------------------------------------------------------------------------
    def check(self, arrays, p, nworkers):
        if not self.finish_boot(arrays, p, nworkers):
            return ["could not finish the interrupted boot (a worker made no progress)"]
        return self.verify(arrays, p, nworkers)

    def verify(self, arrays, p, nworkers) -> list[str]:
        """Invariants of the machine after a completed boot (see the module docstring)."""
        a = arrays
        gen = int(a["mi_glob"][G_GEN])
        if gen == 0:
            return []
        errors = [f"{ERR_TEXT[c]}: {int(a['mi_err'][c])}" for c in ERR_TEXT if a["mi_err"][c]]
        mm = a["zone_mm"]
        F = mm.shape[0]
        npages = p["node_mib"] * PAGES_PER_MIB
        pfn = np.arange(F, dtype=np.int64)
        bad = np.flatnonzero(mm[:, Z.PG_INDEX] != gen)
        if bad.size:
            errors.append(f"{bad.size} struct pages not initialised in boot {gen} "
                          f"(first pfns {bad[:5].tolist()})")
        want = ((Z.ZONE_NORMAL << Z.ZONES_PGSHIFT) | ((pfn // npages) << Z.NODES_PGSHIFT)
                | ((pfn >> Z.PFN_SECTION_SHIFT) << Z.SECTIONS_PGSHIFT))
        bad = np.flatnonzero((mm[:, Z.PG_FLAGS] & ~Z.PGF_FLAGS_MASK) != want)
        if bad.size:
            errors.append(f"{bad.size} struct pages with wrong zone/node/section "
                          f"(first pfns {bad[:5].tolist()})")
        resv = np.zeros(F, bool)
        ranges = node_ranges(p)
        for r in ranges:
            for s, e in r["reserved"]:
                resv[s:e] = True
        bad = np.flatnonzero(((mm[:, Z.PG_FLAGS] & Z.PGF_RESERVED) != 0) != resv)
        if bad.size:
            errors.append(f"{bad.size} pages whose PG_reserved disagrees with memblock "
                          f"(first pfns {bad[:5].tolist()})")
        bad = np.flatnonzero(resv & (mm[:, Z.PG_REFCOUNT] != 1))
        if bad.size:
            errors.append(f"{bad.size} reserved pages without refcount 1 (first {bad[:5].tolist()})")
        mark = np.zeros(F, np.int32)
        fl, zn, nst, npar = a["mi_fl"], a["mi_zn"], a["mi_nst"], a["mi_npar"]
        for nd in range(p["nodes"]):
            errors += [f"node {nd}: {e}" for e in Z.zone_check(mm, a["zone_pb"], fl[nd], zn[nd], mark)]
        # memmap_init marks every pageblock of the early range MOVABLE, deferred_free_pages
        # those whose first page it frees; the others keep free_area_init's UNMOVABLE
        pb_first = np.arange(0, F, Z.PAGEBLOCK_NR_PAGES)
        movable = ~resv[pb_first]
        for nd in range(p["nodes"]):
            s, e = int(npar[nd, NP_START]), int(npar[nd, NP_EARLY_END])
            movable[(pb_first >= s) & (pb_first < e)] = True
        pbmt = a["zone_pb"][:len(pb_first)] & Z.PB_MIGRATETYPE_MASK
        bad = np.flatnonzero((pbmt == Z.MIGRATE_MOVABLE) != movable)
        if bad.size:
            errors.append(f"{bad.size} pageblocks with the wrong migratetype "
                          f"(first pfns {(bad[:5] * Z.PAGEBLOCK_NR_PAGES).tolist()})")
        order = p["alloc_order"]
        wst, held = a["mi_wst"], a["mi_held"]
        for w in range(nworkers):
            for i in range(int(wst[w, S_A_DONE])):
                h = int(held[w, i])
                mark[h:h + (1 << order)] += 1
                if mm[h, Z.PG_REFCOUNT] != 1:
                    errors.append(f"allocated block at pfn {h} has refcount {mm[h, Z.PG_REFCOUNT]}")
        lost = np.flatnonzero(~resv & (mark == 0))
        if lost.size:
            errors.append(f"{lost.size} memblock-free pages neither in the buddy nor allocated "
                          f"(first {lost[:5].tolist()})")
        dup = np.flatnonzero(mark > 1)
        if dup.size:
            errors.append(f"{dup.size} pages free or allocated twice (first {dup[:5].tolist()})")
        inresv = np.flatnonzero(resv & (mark != 0))
        if inresv.size:
            errors.append(f"{inresv.size} reserved pages in the buddy (first {inresv[:5].tolist()})")
        for nd in range(p["nodes"]):
            free_pages = int(npar[nd, NP_FREE_PAGES])
            if zn[nd, Z.Z_MANAGED] != free_pages:
                errors.append(f"node {nd}: managed_pages {int(zn[nd, Z.Z_MANAGED])} != "
                              f"present - reserved {free_pages}")
            if zn[nd, Z.Z_FREE_PAGES] + nst[nd, NS_ALLOCATED] != free_pages:
                errors.append(f"node {nd}: buddy {int(zn[nd, Z.Z_FREE_PAGES])} + allocated "
                              f"{int(nst[nd, NS_ALLOCATED])} != present - reserved {free_pages}")
            if nst[nd, NS_COMPLETE] != 1:
                errors.append(f"node {nd}: deferred init not complete")
            if p["init_mode"] != "serial":
                errors += [f"node {nd}: {e}" for e in self._check_chunks(a, nd)]
        return errors

    @staticmethod
    def _check_chunks(a, nd) -> list[str]:
        """The padata job of the last boot: chunks tile [start, end), section-aligned."""
        ns = a["mi_nst"][nd]
        js, je, chunk = int(ns[NS_JSTART]), int(ns[NS_JEND]), int(ns[NS_CHUNK])
        nch = int(ns[NS_NCHUNK])
        log = a["mi_clog"][nd]
        if nch > log.shape[0]:
            return [f"{nch} chunks overflow the chunk log"]
        chunks = sorted((int(s), int(e)) for s, e, _ in log[:nch])
        errs = []
        if je > js:
            nworks, want_chunk = padata_params(je - js, PAGES_PER_SECTION, PAGES_PER_SECTION,
                                               int(a["mi_npar"][nd, NP_THREADS]))
            if chunk != want_chunk or ns[NS_NWORKS] != nworks:
                errs.append(f"chunk {chunk} / nworks {int(ns[NS_NWORKS])} differ from padata's "
                            f"{want_chunk} / {nworks}")
        cur = js
        for s, e in chunks:
            if s != cur:
                errs.append(f"chunks leave a gap or overlap at pfn {cur} (next chunk {s})")
                break
            if s % PAGES_PER_SECTION or (e % PAGES_PER_SECTION and e != je) or e - s > chunk:
                errs.append(f"chunk [{s}, {e}) splits a section or exceeds the chunk size")
            cur = e
        if cur != je and not (nch == 0 and js == je):
            errs.append(f"chunks end at {cur}, the job at {je}")
        return errs

    # --- report ----------------------------------------------------------------------------------
    def round_stats(self, arrays) -> dict:
        """Timings (cycles) of the boots the workers completed themselves."""
        r = arrays["mi_rounds"]
        ok = (r[:, R_GEN] > 0) & (r[:, R_T_START] > 0) & (r[:, R_T_BOOT] > 0) & (r[:, R_T_FULL] > 0)
        rows = r[ok]
        rows = rows[np.argsort(rows[:, R_GEN])]
        if len(rows) > 1:
            rows = rows[1:]       # the first boot also faults the arena in
        starts = r[r[:, R_GEN] > 0]
        starts = starts[np.argsort(starts[:, R_GEN])]
        consecutive = np.diff(starts[:, R_GEN]) == 1
        period = np.diff(starts[:, R_T_START])[consecutive & (starts[1:, R_T_START] > 0)
                                                & (starts[:-1, R_T_START] > 0)]
        return {"gens": rows[:, R_GEN], "boot": rows[:, R_T_BOOT] - rows[:, R_T_START],
                "full": rows[:, R_T_FULL] - rows[:, R_T_START], "period": period}

    def report(self, arrays, p, nworkers):
        from ..probes import cycles_per_ns
        a = arrays
        cycles_per_ns(0.001)       # compiles its rdtsc helper outside the timed window
        tpn = cycles_per_ns(0.02)
        rs = self.round_stats(a)
        total = p["nodes"] * p["node_mib"] * PAGES_PER_MIB
        extra = {"rounds_measured": int(len(rs["gens"])), "pages_per_boot": total,
                 "tsc_per_ns": tpn}
        cnt = a["counters"]
        if len(rs["gens"]):
            boot_ns = float(np.median(rs["boot"]) / tpn)
            full_ns = float(np.median(rs["full"]) / tpn)
            pps = total / (full_ns * 1e-9)
            memset = _memset_gbps(p["memset_probe_mib"])
            extra.update({
                "boot_ms_median": boot_ns / 1e6,
                "full_init_ms_median": full_ns / 1e6,
                "boot_ms": [float(x / tpn / 1e6) for x in rs["boot"][-50:]],
                "full_init_ms": [float(x / tpn / 1e6) for x in rs["full"][-50:]],
                "round_period_ms_median": (float(np.median(rs["period"]) / tpn / 1e6)
                                           if len(rs["period"]) else None),
                "init_pages_per_s": pps,
                "init_ns_per_page": full_ns / total,
                "memmap_write_gbps": 64 * pps / 1e9,
                "memset_gbps": memset,
                "memmap_to_memset_ratio": 64 * pps / 1e9 / memset if memset else None,
            })
            # chunk balance: deferred pages per init helper of each node, per boot
            wp = a["mi_wpages"][:, rs["gens"] % RING, :]
            extra["pages_per_worker_per_boot"] = wp[:, :, 0].mean(axis=1).tolist()
            extra["deferred_pages_per_worker_per_boot"] = wp[:, :, 1].mean(axis=1).tolist()
            wrole = a["mi_wrole"]
            ratios = []
            for nd in range(p["nodes"]):
                helpers = sorted((int(wrole[w, WR_RANK]), w) for w in range(nworkers)
                                 if nd in a["mi_wnodes"][w].tolist())
                helpers = [w for _, w in helpers[:int(a["mi_nst"][nd, NS_NWORKS])]]
                if len(helpers) > 1:
                    d = wp[helpers, :, 1].astype(float)
                    m = d.mean(axis=0)
                    ok = m > 0
                    if ok.any():
                        ratios.append(float((d.max(axis=0)[ok] / m[ok]).mean()))
            extra["chunk_balance_max_over_mean"] = float(np.mean(ratios)) if ratios else None
        acq = int(cnt[:, 0].sum())
        extra["zone_lock_acquisitions"] = acq
        extra["zone_lock_contended_share"] = float(cnt[:, 1].sum() / acq) if acq else 0.0
        rc = a["mi_rcnt"]
        extra["resize_lock_acquisitions"] = int(rc[:, 0].sum())
        extra["resize_lock_contended"] = int(rc[:, 1].sum())
        ns = a["mi_nst"]
        extra["chunk_pages"] = [int(x) for x in ns[:, NS_CHUNK]]
        extra["nworks"] = [int(x) for x in ns[:, NS_NWORKS]]
        if p["init_mode"] == "grow-on-demand":
            stalls = int(cnt[:, C_ALLOC_STALLS].sum())
            extra["alloc_stalls"] = stalls
            extra["alloc_stall_ms"] = float(cnt[:, C_ALLOC_STALL_CYC].sum() / tpn / 1e6)
            extra["grow_calls"] = int(cnt[:, C_GROW_CALLS].sum())
            extra["pages_grown"] = int(cnt[:, C_PAGES_GROWN].sum())
        return {"extra": extra}

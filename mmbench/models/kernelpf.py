"""The real kernel's page-fault allocation path: will-it-scale's page_fault1 as a model.

Every other family models a mechanism on arrays; this one measures the running
kernel's.  Each worker maps a region, writes one byte per page from compiled
code (the page fault, ``handle_mm_fault`` -> ``do_anonymous_page`` /
``shmem_fault`` -> the page allocator, happens in the kernel), unmaps it
(``zap_pte_range`` -> ``free_pages_and_swap_cache`` -> the PCP lists) and starts
again.  It is the companion of the pagealloc model: the same box's PCP
``batch`` / ``high`` (see :func:`mmbench.procfs.pcp_settings_for_model`) go
with every point, so model and kernel can be compared.

Variants (one op = one unit below):

* ``4k``        private anonymous memory, ``MADV_NOHUGEPAGE`` (4 KiB pages even
                when THP is ``always``); op = one write fault = one order-0 page.
* ``thp``       private anonymous memory aligned to the PMD size with
                ``MADV_HUGEPAGE``; one write per 2 MiB; op = one huge-page fault
                (an order-9 allocation, or a fallback counted in thp_fault_fallback).
* ``populate``  the ``4k`` region populated without the fault trap:
                ``MADV_POPULATE_WRITE`` (5.14+) or ``mmap(MAP_FIXED|MAP_POPULATE)``
                over the region (``populate_via``), in chunks; op = one 4 KiB page.
                (A MAP_FIXED chunk is a new VMA without MADV_NOHUGEPAGE: under THP
                ``always`` it may get huge pages; MADV_POPULATE_WRITE keeps the region's.)
* ``shmem``     a shared mapping of a memfd (tmpfs: page-cache allocations in
                ``shmem_alloc_folio``); op = one 4 KiB page.  The memfd has no name
                in any file system and is closed with its region, so no file can
                outlive a run (a killed worker's descriptors close with it).

A region belongs to the worker that mapped it: in process mode to the worker
process (a kill frees it), in thread mode to the parent (one mm shared by all
workers: ``mmap_lock`` and page-table lock contention show up), where
``worker_finish`` unmaps it and ``teardown`` unmaps whatever an aborted thread
left behind.  ``step(ctx, n)`` resumes inside the current region: at most n ops,
then ``munmap`` when the region is complete.

vmstat window: worker 0 snapshots /proc/vmstat in ``worker_init`` (before the
start barrier) and every worker in ``worker_finish`` (after the stop flag and
its last unmap); the delta from the first to the latest snapshot covers every
op the workers counted (warm-up + measured window + the last batches), so
``pgfault >= faults`` and ``pgalloc >= pages`` are invariants even though the
counters are system-wide.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
import time

import numpy as np

from .. import procfs
from ..procfs import pcp_settings_for_model, vmstat_delta  # noqa: F401  (the family's API)
from ..ctl import N_LOCK_COUNTERS
from ..jit import kernel
from ..model import ArraySpec, Model, ModelNotRunnable, Param

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
KINDS = ("4k", "thp", "populate", "shmem")
MEMFD_NAME = "mmbench-kernelpf"

C_FAULTS = N_LOCK_COUNTERS        # ops: faults (thp: huge-page faults; populate: pages)
C_BASE_PAGES = N_LOCK_COUNTERS + 1  # base pages those ops covered
C_REGIONS = N_LOCK_COUNTERS + 2   # regions completed and unmapped

# mman.h (the same on x86-64 and arm64)
PROT_RW = 0x1 | 0x2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_POPULATE = 0x01, 0x02, 0x10, 0x20, 0x8000
MADV_DONTFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_WRITE = 10, 14, 15, 23
MFD_CLOEXEC = 0x0001
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.restype = ctypes.c_int
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _oserror(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def _mmap(addr, length, prot, flags, fd=-1, off=0) -> int:
    a = _libc.mmap(addr, length, prot, flags, fd, off)
    if a is None or a == _MAP_FAILED:
        raise _oserror(f"mmap of {length} bytes")
    return a


def _munmap(addr, length) -> None:
    if _libc.munmap(addr, length) != 0:
        raise _oserror("munmap")


def _madvise(addr, length, advice) -> None:
    if _libc.madvise(addr, length, advice) != 0:
        raise _oserror(f"madvise({advice})")


@functools.lru_cache(maxsize=1)
def pmd_size() -> int:
    """Bytes of a PMD-mapped huge page (transparent_hugepage/hpage_pmd_size; 2 MiB on x86-64)."""
    return procfs.thp_settings().get("hpage_pmd_size") or 2 * MIB


@kernel
def touch_pages(buf, first, count, stride):
    """Write one byte at the start of ``count`` pages from unit ``first``.

    Each store is the first write to a page of a fresh mapping: a write fault
    (do_anonymous_page / do_huge_pmd_anonymous_page / shmem_fault) that
    allocates the page.  The stores go to caller-visible memory, so the
    compiler cannot drop them.  Returns ``count``.
    """
    off = first * stride
    for _ in range(count):
        buf[off] = np.uint8(((off >> 12) & 0x7F) | 1)
        off += stride
    return count


class _View:
    """numpy's array interface over raw memory (no copy, no ctypes array type per size)."""

    def __init__(self, addr: int, nbytes: int):
        self.__array_interface__ = {"data": (addr, False), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}


#: regions mapped by this process and not yet unmapped: addr -> Region
_LIVE: dict[int, "Region"] = {}


class Region:
    """One mapping a worker faults in, resumable unit by unit.

    ``kind`` is a variant name; ``units`` the number of ops a full region gives
    (pages, or huge pages for ``thp``); ``pos`` the next unit to fault.
    """

    def __init__(self, kind: str, nbytes: int, populate_via: str = "madvise"):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.nbytes, self.populate_via = kind, nbytes, populate_via
        self.stride = pmd_size() if kind == "thp" else PAGE
        if nbytes % self.stride:
            raise ValueError(f"region of {nbytes} bytes is not a multiple of {self.stride}")
        self.units = nbytes // self.stride
        self.pages_per_unit = self.stride // PAGE
        self.pos = 0
        self.fd = -1
        self.addr = 0
        self.buf = None
        self.pid = os.getpid()
        self.thread = threading.current_thread()
        try:
            self._map()
        except BaseException:
            self.unmap()
            raise

    def _map(self) -> None:
        if self.kind == "shmem":
            self.fd = os.memfd_create(MEMFD_NAME, MFD_CLOEXEC)
            os.ftruncate(self.fd, self.nbytes)
            self.addr = _mmap(None, self.nbytes, PROT_RW, MAP_SHARED, self.fd, 0)
        elif self.kind == "thp":
            # Map one PMD more than needed and trim both ends: the region starts on a
            # PMD boundary, so every 2 MiB unit can be one huge page.
            pmd = self.stride
            raw = _mmap(None, self.nbytes + pmd, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS)
            start = (raw + pmd - 1) & ~(pmd - 1)
            if start > raw:
                _munmap(raw, start - raw)
            tail = raw + self.nbytes + pmd - (start + self.nbytes)
            if tail:
                _munmap(start + self.nbytes, tail)
            self.addr = start
            _LIVE[self.addr] = self
            _madvise(self.addr, self.nbytes, MADV_HUGEPAGE)
        else:
            self.addr = _mmap(None, self.nbytes, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS)
            _LIVE[self.addr] = self
            # 4 KiB pages even where THP is "always": this variant is the order-0 path.
            _madvise(self.addr, self.nbytes, MADV_NOHUGEPAGE)
        _LIVE[self.addr] = self
        if self.kind != "shmem":
            # VM_DONTCOPY ("dc" in smaps): a fork never copies a region, and the VMA never
            # merges with glibc's thread stacks (also MADV_NOHUGEPAGE), so /proc/self/smaps
            # shows exactly the regions.  No effect on the fault path.
            _madvise(self.addr, self.nbytes, MADV_DONTFORK)
        self.buf = np.asarray(_View(self.addr, self.nbytes))

    @property
    def done(self) -> bool:
        return self.pos >= self.units

    def touch(self, n: int) -> int:
        """Fault in up to ``n`` more units; returns how many."""
        k = min(n, self.units - self.pos)
        if k <= 0:
            return 0
        if self.kind == "populate":
            a, length = self.addr + self.pos * PAGE, k * PAGE
            if self.populate_via == "madvise":
                _madvise(a, length, MADV_POPULATE_WRITE)
            else:
                # Replaces the untouched part of the region with a populated mapping
                # of the same protection (the VMAs merge again).
                _mmap(a, length, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE)
        else:
            touch_pages(self.buf, self.pos, k, self.stride)
        self.pos += k
        return k

    def unmap(self) -> None:
        """munmap (and close the memfd); safe to call twice."""
        self.buf = None
        if self.addr:
            _LIVE.pop(self.addr, None)
            addr, self.addr = self.addr, 0
            _munmap(addr, self.nbytes)
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def live_regions() -> list[Region]:
    """Regions this process has mapped and not unmapped."""
    pid = os.getpid()
    return [r for r in _LIVE.values() if r.pid == pid]


def populate_write_supported() -> bool:
    """Whether this kernel knows MADV_POPULATE_WRITE (5.14+): probed on one page."""
    a = _mmap(None, PAGE, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS)
    try:
        return _libc.madvise(a, PAGE, MADV_POPULATE_WRITE) == 0
    finally:
        _munmap(a, PAGE)


class _Ctx:
    __slots__ = ("kind", "nbytes", "populate_via", "cnt", "w", "vm", "keys", "region")


# kpf_vm rows: 0 = start (worker 0's worker_init), 1 + w = worker w's worker_finish
V_VALID, V_T_NS, V_FAULTS, V_BASE_PAGES, V_STATS = 0, 1, 2, 3, 4


class KernelPageFault(Model):
    name = "kernelpf"
    description = ("the running kernel's page-fault allocation path (will-it-scale page_fault1): "
                   "mmap, write one byte per page, munmap; 4k / THP / MAP_POPULATE / shmem")
    variants = {k: {"variant_kind": k} for k in KINDS}
    params = {
        "variant_kind": Param(str, "4k", choices=KINDS, help="set by the variant"),
        "region_mib": Param(int, 128, 2, 1 << 16, help="MiB mapped per worker per round "
                            "(thp: a multiple of the PMD size)"),
        "populate_via": Param(str, "madvise", choices=("madvise", "map_populate"),
                              help="populate: MADV_POPULATE_WRITE (5.14+) or "
                                   "mmap(MAP_FIXED|MAP_POPULATE) chunks"),
    }
    counter_names = ("faults", "base_pages", "regions")

    def __init__(self):
        self._keys: list[str] = []
        self._facts: dict = {}

    def validate(self, p):
        if p["variant_kind"] == "thp" and p["region_mib"] % 2:
            raise ValueError("region_mib must be even for thp (whole 2 MiB huge pages)")

    def layout(self, p, nworkers):
        self._keys = sorted(procfs.select_vmstat(procfs.read_vmstat()))
        return [ArraySpec("kpf_vm", (nworkers + 1, V_STATS + max(1, len(self._keys))))]

    def setup(self, arrays, p, nworkers, seed):
        kind = p["variant_kind"]
        nbytes = p["region_mib"] * MIB
        thp = procfs.thp_settings()
        if kind == "thp":
            if thp["enabled"] not in ("always", "madvise"):
                raise ModelNotRunnable(f"THP is {thp['enabled'] or 'not available'} on this kernel "
                                       "(transparent_hugepage/enabled)")
            if nbytes % pmd_size():
                raise ModelNotRunnable(f"region_mib {p['region_mib']} is not a multiple of the "
                                       f"PMD size {pmd_size() // MIB} MiB")
        if kind == "shmem" and not hasattr(os, "memfd_create"):
            raise ModelNotRunnable("no memfd_create on this platform")
        if kind == "populate" and p["populate_via"] == "madvise" and not populate_write_supported():
            raise ModelNotRunnable("MADV_POPULATE_WRITE needs Linux 5.14+ "
                                   "(set populate_via = \"map_populate\")")
        avail = _mem_available()
        if avail is not None and nbytes * nworkers > avail // 2:
            raise ModelNotRunnable(f"{nworkers} regions of {p['region_mib']} MiB exceed half of "
                                   f"MemAvailable ({avail // MIB} MiB)")
        arrays["kpf_vm"][:] = 0
        self._facts = procfs.box_facts()

    def compile(self, p):
        touch_pages(np.zeros(2 * PAGE, np.uint8), 0, 0, PAGE)

    def _snapshot(self, row, cnt):
        vm = procfs.read_vmstat()
        row[V_STATS:V_STATS + len(self._keys)] = [vm.get(k, 0) for k in self._keys]
        row[V_FAULTS] = cnt[:, C_FAULTS].sum()
        row[V_BASE_PAGES] = cnt[:, C_BASE_PAGES].sum()
        row[V_T_NS] = time.monotonic_ns()
        row[V_VALID] = 1

    def worker_init(self, arrays, p, worker, nworkers):
        ctx = _Ctx()
        ctx.kind, ctx.nbytes, ctx.populate_via = p["variant_kind"], p["region_mib"] * MIB, p["populate_via"]
        ctx.cnt, ctx.w, ctx.vm, ctx.region = arrays["counters"], worker, arrays["kpf_vm"], None
        if worker == 0:  # before the start barrier: no worker has faulted yet
            self._snapshot(ctx.vm[0], ctx.cnt)
        return ctx

    def step(self, ctx, n):
        r = ctx.region
        if r is None:
            r = ctx.region = Region(ctx.kind, ctx.nbytes, ctx.populate_via)
        k = r.touch(n)
        row = ctx.cnt[ctx.w]
        row[C_FAULTS] += k
        row[C_BASE_PAGES] += k * r.pages_per_unit
        if r.done:
            ctx.region = None
            r.unmap()
            row[C_REGIONS] += 1
        return k

    def worker_finish(self, ctx):
        if ctx.region is not None:
            r, ctx.region = ctx.region, None
            r.unmap()
        self._snapshot(ctx.vm[1 + ctx.w], ctx.cnt)

    def _window(self, arrays, nworkers):
        """(vmstat delta, seconds, faults, base pages) over the snapshot window, or None."""
        vm = arrays["kpf_vm"]
        if not vm[0, V_VALID] or not np.all(vm[1:, V_VALID]):
            return None
        end = vm[1 + int(np.argmax(vm[1:, V_T_NS]))]
        start = vm[0]
        n = len(self._keys)
        delta = dict(zip(self._keys, (end[V_STATS:V_STATS + n] - start[V_STATS:V_STATS + n]).tolist()))
        return (delta, (end[V_T_NS] - start[V_T_NS]) / 1e9,
                int(end[V_FAULTS] - start[V_FAULTS]), int(end[V_BASE_PAGES] - start[V_BASE_PAGES]))

    def check(self, arrays, p, nworkers):
        errors = [f"region of {r.nbytes} bytes at {r.addr:#x} still mapped in the parent"
                  for r in live_regions() if not r.thread.is_alive()]
        win = self._window(arrays, nworkers)
        if win is None:
            return errors + ["vmstat window incomplete (a worker did not finish)"]
        delta, _, faults, pages = win
        if "pgfault" in delta and delta["pgfault"] < faults:
            errors.append(f"pgfault grew by {delta['pgfault']} over the window but the workers "
                          f"counted {faults} faults")
        if any(k.startswith("pgalloc_") for k in delta):
            # A THP fallback allocates one base page where the op counted 512.
            fallback = delta.get("thp_fault_fallback", 0) if p["variant_kind"] == "thp" else 0
            fallback = min(fallback, faults)
            need = pages - fallback * (pmd_size() // PAGE - 1)
            if procfs.pgalloc_total(delta) < need:
                errors.append(f"pgalloc grew by {procfs.pgalloc_total(delta)} over the window, "
                              f"fewer than the {need} pages the workers faulted")
        return errors

    def report(self, arrays, p, nworkers):
        kind = p["variant_kind"]
        extra = dict(self._facts)
        extra["ops_unit"] = {"4k": "4 KiB anonymous write faults",
                             "thp": "2 MiB THP write faults (order-9 allocations)",
                             "populate": f"4 KiB pages populated ({p['populate_via']})",
                             "shmem": "4 KiB shmem (memfd) write faults"}[kind]
        extra["base_pages_per_op"] = pmd_size() // PAGE if kind == "thp" else 1
        after = procfs.pcp_summary(procfs.read_zoneinfo())
        extra["pcp_high_per_cpu_after"] = after["high_per_cpu"] if after else None
        win = self._window(arrays, nworkers)
        extra["vmstat_window"] = ("worker 0's worker_init (before the start barrier) to the last "
                                  "worker_finish (after the stop flag and the last munmap): "
                                  "warm-up + measured window; system-wide counters")
        if win is not None:
            delta, secs, faults, pages = win
            extra["vmstat_delta"] = delta
            extra["vmstat_window_s"] = secs
            extra["vmstat_window_ops"] = faults
            extra["vmstat_window_base_pages"] = pages
            per = {}
            if faults:
                per["pgfault_per_op"] = delta.get("pgfault", 0) / faults
            if pages:
                per["pgalloc_per_base_page"] = procfs.pgalloc_total(delta) / pages
                per["pgfree_per_base_page"] = delta.get("pgfree", 0) / pages
            extra["vmstat_ratios"] = per
        return {"extra": extra}

    def teardown(self, arrays, p):
        # Thread mode after an abort: regions of workers that never reached
        # worker_finish.  A live thread's region is left alone (unmapping memory a
        # running kernel writes would crash the parent); harness joins them first.
        for r in live_regions():
            if not r.thread.is_alive():
                r.unmap()


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None

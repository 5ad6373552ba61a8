"""Where struct page lives: FLATMEM, SPARSEMEM, SPARSEMEM_EXTREME, SPARSEMEM_VMEMMAP and HVO.

One model, five variants (``memory_model``), each a way to find the ``struct page``
of a page frame number and back (include/asm-generic/memory_model.h,
include/linux/mmzone.h, mm/sparse.c, mm/sparse-vmemmap.c, mm/hugetlb_vmemmap.c):

* ``flat``            ``page = mem_map + (pfn - ARCH_PFN_OFFSET)``: one memmap over the whole
                      span, holes included, every struct page initialised (holes as
                      ``PG_reserved``, as ``init_unavailable_range`` does).  When that memmap
                      would not fit the machine, setup raises :class:`ModelNotRunnable`.
* ``sparse``          classic SPARSEMEM: a static ``mem_section[NR_MEM_SECTIONS]`` table;
                      ``page = decode(section_mem_map) + pfn``; ``page_to_pfn`` reads the
                      section number from ``page->flags``.
* ``sparse-extreme``  ``mem_section[root][nr & (SECTIONS_PER_ROOT - 1)]``, roots (one
                      PAGE_SIZE each, SECTIONS_PER_ROOT = PAGE_SIZE / 16) allocated on demand.
* ``vmemmap``         ``page = vmemmap + pfn`` over one ``MAP_NORESERVE`` reservation of the
                      span; only present sections' memmap is ever touched, so the page tables
                      do the sparse part.  ``pfn_valid`` still uses the EXTREME table.
* ``hvo``             vmemmap where a share of present memory is 2 MiB HugeTLB pages whose
                      7 tail vmemmap pages map the head vmemmap page's frame (6.x HVO,
                      "fake head"): a memfd page mapped 8 times with ``MAP_FIXED``.

User-space representation (documented choices):

* A *struct page* is 8 int64 words (64 B): ``flags`` (SECTION | NODE | ZONE from the top,
  page flags in the low bits), ``lru.next`` / ``compound_head``, ``lru.prev``, ``mapping``,
  ``index``, ``private``, ``_mapcount``, ``_refcount`` (the kernel packs the last two into
  one word next to ``memcg_data``; here they get a word each).
* A *page pointer* is a byte address in the model's memmap mapping (``mm_memmap``, an
  int64 view); kernels index words with ``address >> 3``.  For sparse variants the
  mapping is a pool holding the present sections' memmaps back to back, and
  ``section_mem_map = (pool address of the section's memmap - first_pfn * 64) | flags``
  with flags PRESENT|HAS_MEM_MAP|IS_ONLINE|IS_EARLY in the low 5 bits (the encoded value
  is a multiple of 64, so a set low bit after encoding is a bug and is asserted).
* A ``mem_section`` is 2 words (``section_mem_map``, ``usage``); ``usage`` (subsection map,
  pageblock flags) is not modelled and stays 0: every section here is an early (boot)
  section, for which ``pfn_valid`` never consults the subsection map.
* EXTREME root pointers: ``mm_roots[root]`` is 0 (NULL) or ``1 + index`` of a root in the
  ``mm_section`` pool of allocated roots.

Physical layouts are e820-like ranges (start_pfn, end_pfn, node) built from the ``layout``
preset and size parameters (:func:`physical_layout`); ranges are multiples of a granule
of ``min(512, PAGES_PER_SECTION / 4)`` frames so unaligned holes exist inside sections.

Walks (``walk``): ``sequential`` over present pfns, ``random`` (xorshift, uniform over
present pfns), ``roundtrip`` (random pfn -> page -> pfn, checked).  Every lookup reads
the page's ``flags`` (node id, as ``page_to_nid``) and ``_refcount`` into a checksum.

Memory is measured from the OS after setup: the ``Anonymous`` bytes that
``/proc/self/smaps`` reports for the memmap mapping's VMAs, plus the bytes the HVO memfd
holds (``fstat().st_blocks``); see :func:`resident_bytes`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap as _mmap_mod
import os

import numpy as np

from ..ctl import N_LOCK_COUNTERS, ROW_WORDS
from ..jit import helper, kernel
from ..model import ArraySpec, Model, Param

__all__ = ["ModelNotRunnable", "MemmapModel", "physical_layout", "resident_bytes",
           "MODEL_KINDS", "WALKS", "LAYOUTS"]


from ..model import ModelNotRunnable  # noqa: E402  (re-exported: the point cannot run here)


PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_WORDS = 8                  # int64 words per struct page
STRUCT_PAGE = 64                # bytes
SECTION_ENTRY_WORDS = 2         # struct mem_section: section_mem_map, usage
SECTIONS_PER_ROOT = PAGE_SIZE // 16
SECTIONS_PER_ROOT_SHIFT = 8
HUGE_PFNS = 512                 # 2 MiB HugeTLB page
HUGE_VMEMMAP_PAGES = HUGE_PFNS * STRUCT_PAGE // PAGE_SIZE   # 8

# section_mem_map low bits (include/linux/mmzone.h)
SECTION_MARKED_PRESENT = 0x1
SECTION_HAS_MEM_MAP = 0x2
SECTION_IS_ONLINE = 0x4
SECTION_IS_EARLY = 0x8
SECTION_TAINT_ZONE_DEVICE = 0x10
SECTION_MAP_LAST_BIT = 5
SECTION_MAP_MASK = ~((1 << SECTION_MAP_LAST_BIT) - 1)
BOOT_SECTION_FLAGS = SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP | SECTION_IS_ONLINE | SECTION_IS_EARLY

# page->flags
NODES_WIDTH = 6                 # CONFIG_NODES_SHIFT default on x86-64
ZONES_WIDTH = 2                 # DMA, DMA32, NORMAL, MOVABLE
MIN_PAGEFLAG_BITS = 24          # room left for the page flags proper
PG_HEAD = 6
PG_RESERVED = 14
ZONE_DMA, ZONE_DMA32, ZONE_NORMAL = 0, 1, 2
DMA_END_PFN = (16 << 20) >> PAGE_SHIFT
DMA32_END_PFN = (4 << 30) >> PAGE_SHIFT

# struct page word offsets
W_FLAGS, W_LRU_NEXT, W_LRU_PREV, W_MAPPING, W_INDEX, W_PRIVATE, W_MAPCOUNT, W_REFCOUNT = range(8)

MODEL_KINDS = {"flat": 0, "sparse": 1, "sparse-extreme": 2, "vmemmap": 3, "hvo": 4}
K_FLAT, K_SPARSE, K_EXTREME, K_VMEMMAP, K_HVO = range(5)
WALKS = {"sequential": 0, "random": 1, "roundtrip": 2}
WALK_SEQ, WALK_RANDOM, WALK_ROUNDTRIP = range(3)
LAYOUTS = ("contiguous", "numa-spread", "fragmented")

# mm_cfg words (constants the kernels read once per batch)
(CFG_KIND, CFG_PFN_SECTION_SHIFT, CFG_NR_MEM_SECTIONS, CFG_SECTIONS_PGSHIFT, CFG_SECTIONS_MASK,
 CFG_NODES_PGSHIFT, CFG_NODES_MASK, CFG_ZONES_PGSHIFT, CFG_ZONES_MASK, CFG_PFN_OFFSET,
 CFG_MAX_MAPNR, CFG_NR_SECTION_ROOTS, CFG_GSHIFT, CFG_NBLOCKS, CFG_WALK, CFG_C0) = range(16)
CFG_WORDS = 16

# mm_walk row: per-worker walk state, one 128-byte row each
ST_BLOCK, ST_OFF, ST_RNG = 0, 1, 2

# mm_info words: figures measured / computed in setup
(I_RESIDENT, I_TABLE, I_PRESENT, I_SPAN, I_NHUGE, I_NSECTIONS, I_VIRTUAL, I_MEMFD,
 I_ANON) = range(9)
INFO_WORDS = 16

# model counters (columns N_LOCK_COUNTERS + i)
COUNTER_NAMES = ("lookups", "checksum", "roundtrip_errors", "invalid")


# --------------------------------------------------------------------------------------
# Lookups (the kernel's macros, one per memory model).  A page is a byte address in the
# model's memmap mapping; -1 means "no struct page" (what pfn_valid() would have said).
# --------------------------------------------------------------------------------------

@helper
def _flat_pfn_to_page(pfn_offset, max_mapnr, pfn):
    """FLATMEM ``pfn_valid`` + ``__pfn_to_page``: mem_map + (pfn - ARCH_PFN_OFFSET)."""
    i = pfn - pfn_offset
    if i < 0 or i >= max_mapnr:
        return -1
    return i * 64


@helper
def _flat_page_to_pfn(pfn_offset, page):
    return (page >> 6) + pfn_offset


@helper
def _sparse_pfn_to_page(mem_section, nr_mem_sections, pfn_section_shift, pfn):
    """SPARSEMEM ``__pfn_to_page`` behind ``valid_section``: decode(mem_section[nr]) + pfn."""
    nr = pfn >> pfn_section_shift
    if nr < 0 or nr >= nr_mem_sections:
        return -1
    w = mem_section[nr * 2]
    if (w & SECTION_HAS_MEM_MAP) == 0:
        return -1
    return (w & SECTION_MAP_MASK) + pfn * 64


@helper
def _sparse_page_to_pfn(memmap, mem_section, sections_pgshift, sections_mask, page):
    """SPARSEMEM ``__page_to_pfn``: section number from page->flags, then page - decode()."""
    flags = memmap[page >> 3]
    nr = (flags >> sections_pgshift) & sections_mask
    w = mem_section[nr * 2]
    return (page - (w & SECTION_MAP_MASK)) >> 6


@helper
def _extreme_entry(roots, sections, nr_roots, nr):
    """SPARSEMEM_EXTREME ``__nr_to_section``: word index of mem_section[root][nr & mask], or -1."""
    root = nr >> SECTIONS_PER_ROOT_SHIFT
    if nr < 0 or root >= nr_roots:
        return -1
    r = roots[root]
    if r == 0:
        return -1
    return ((r - 1) * SECTIONS_PER_ROOT + (nr & (SECTIONS_PER_ROOT - 1))) * 2


@helper
def _extreme_pfn_to_page(roots, sections, nr_roots, pfn_section_shift, pfn):
    e = _extreme_entry(roots, sections, nr_roots, pfn >> pfn_section_shift)
    if e < 0:
        return -1
    w = sections[e]
    if (w & SECTION_HAS_MEM_MAP) == 0:
        return -1
    return (w & SECTION_MAP_MASK) + pfn * 64


@helper
def _extreme_page_to_pfn(memmap, roots, sections, nr_roots, sections_pgshift, sections_mask, page):
    flags = memmap[page >> 3]
    nr = (flags >> sections_pgshift) & sections_mask
    e = _extreme_entry(roots, sections, nr_roots, nr)
    w = sections[e]
    return (page - (w & SECTION_MAP_MASK)) >> 6


@helper
def _vmemmap_pfn_valid(roots, sections, nr_roots, pfn_section_shift, pfn):
    """SPARSEMEM_VMEMMAP ``pfn_valid``: the EXTREME table decides (early sections only)."""
    e = _extreme_entry(roots, sections, nr_roots, pfn >> pfn_section_shift)
    if e < 0:
        return False
    return (sections[e] & SECTION_HAS_MEM_MAP) != 0


@helper
def _lookup(kind, memmap, t1, t2, pfn_offset, max_mapnr, nr_sec, nr_roots, psshift, pfn):
    if kind == K_FLAT:
        return _flat_pfn_to_page(pfn_offset, max_mapnr, pfn)
    if kind == K_SPARSE:
        return _sparse_pfn_to_page(t1, nr_sec, psshift, pfn)
    if kind == K_EXTREME:
        return _extreme_pfn_to_page(t1, t2, nr_roots, psshift, pfn)
    return pfn * 64          # vmemmap + pfn: no table, no check


@helper
def _reverse(kind, memmap, t1, t2, pfn_offset, nr_roots, spg, smask, page):
    if kind == K_FLAT:
        return _flat_page_to_pfn(pfn_offset, page)
    if kind == K_SPARSE:
        return _sparse_page_to_pfn(memmap, t1, spg, smask, page)
    if kind == K_EXTREME:
        return _extreme_page_to_pfn(memmap, t1, t2, nr_roots, spg, smask, page)
    return page >> 6         # page - vmemmap


# --------------------------------------------------------------------------------------
# Walk kernels: one per memory model so each compiles to its own lookup path only.
# --------------------------------------------------------------------------------------

@helper
def _next_pfn(blocks, nblocks, gshift, walk, b, off, x):
    """Next pfn of the walk and the new (block, offset, rng): sequential through the present
    granules, or uniform random over present pfns (xorshift64, Lemire's range reduction)."""
    if walk == WALK_SEQ:
        pfn = blocks[b] + off
        off += 1
        if off >> gshift:
            off = 0
            b += 1
            if b == nblocks:
                b = 0
        return pfn, b, off, x
    x ^= x << 13
    x ^= (x >> 7) & 0x01FFFFFFFFFFFFFF      # logical shift right by 7
    x ^= x << 17
    i = (((x >> 11) & 0xFFFFFFFF) * nblocks) >> 32
    return blocks[i] + (x & ((1 << gshift) - 1)), b, off, x


@helper
def _finish(st, b, off, x, crow, c0, n, csum, errs, inval):
    st[ST_BLOCK] = b
    st[ST_OFF] = off
    st[ST_RNG] = x
    crow[c0] += n
    crow[c0 + 1] += csum
    crow[c0 + 2] += errs
    crow[c0 + 3] += inval


# One walk loop per memory model, on purpose: ns per lookup is the figure being measured,
# so each loop contains only its model's pfn_to_page / page_to_pfn (no dispatch inside).
@kernel
def walk_flat(memmap, t1, t2, blocks, cfg, st, crow, n):
    """n lookups through FLATMEM's mem_map; returns n."""
    off0 = cfg[CFG_PFN_OFFSET]
    mapnr = cfg[CFG_MAX_MAPNR]
    npg, nmask = cfg[CFG_NODES_PGSHIFT], cfg[CFG_NODES_MASK]
    nblocks, gshift, walk = cfg[CFG_NBLOCKS], cfg[CFG_GSHIFT], cfg[CFG_WALK]
    b, off, x = st[ST_BLOCK], st[ST_OFF], st[ST_RNG]
    csum = 0
    errs = 0
    inval = 0
    for _ in range(n):
        pfn, b, off, x = _next_pfn(blocks, nblocks, gshift, walk, b, off, x)
        page = _flat_pfn_to_page(off0, mapnr, pfn)
        if page < 0:
            inval += 1
            continue
        w = page >> 3
        csum += ((memmap[w + W_FLAGS] >> npg) & nmask) + memmap[w + W_REFCOUNT]
        if walk == WALK_ROUNDTRIP:
            back = _flat_page_to_pfn(off0, page)
            errs += back != pfn
            csum += back
    _finish(st, b, off, x, crow, cfg[CFG_C0], n, csum, errs, inval)
    return n


@kernel
def walk_sparse(memmap, t1, t2, blocks, cfg, st, crow, n):
    """n lookups through the classic SPARSEMEM mem_section[] table; returns n."""
    psshift, nr_sec = cfg[CFG_PFN_SECTION_SHIFT], cfg[CFG_NR_MEM_SECTIONS]
    spg, smask = cfg[CFG_SECTIONS_PGSHIFT], cfg[CFG_SECTIONS_MASK]
    npg, nmask = cfg[CFG_NODES_PGSHIFT], cfg[CFG_NODES_MASK]
    nblocks, gshift, walk = cfg[CFG_NBLOCKS], cfg[CFG_GSHIFT], cfg[CFG_WALK]
    b, off, x = st[ST_BLOCK], st[ST_OFF], st[ST_RNG]
    csum = 0
    errs = 0
    inval = 0
    for _ in range(n):
        pfn, b, off, x = _next_pfn(blocks, nblocks, gshift, walk, b, off, x)
        page = _sparse_pfn_to_page(t1, nr_sec, psshift, pfn)
        if page < 0:
            inval += 1
            continue
        w = page >> 3
        csum += ((memmap[w + W_FLAGS] >> npg) & nmask) + memmap[w + W_REFCOUNT]
        if walk == WALK_ROUNDTRIP:
            back = _sparse_page_to_pfn(memmap, t1, spg, smask, page)
            errs += back != pfn
            csum += back
    _finish(st, b, off, x, crow, cfg[CFG_C0], n, csum, errs, inval)
    return n


@kernel
def walk_extreme(memmap, t1, t2, blocks, cfg, st, crow, n):
    """n lookups through SPARSEMEM_EXTREME's two-level table; returns n."""
    psshift, nr_roots = cfg[CFG_PFN_SECTION_SHIFT], cfg[CFG_NR_SECTION_ROOTS]
    spg, smask = cfg[CFG_SECTIONS_PGSHIFT], cfg[CFG_SECTIONS_MASK]
    npg, nmask = cfg[CFG_NODES_PGSHIFT], cfg[CFG_NODES_MASK]
    nblocks, gshift, walk = cfg[CFG_NBLOCKS], cfg[CFG_GSHIFT], cfg[CFG_WALK]
    b, off, x = st[ST_BLOCK], st[ST_OFF], st[ST_RNG]
    csum = 0
    errs = 0
    inval = 0
    for _ in range(n):
        pfn, b, off, x = _next_pfn(blocks, nblocks, gshift, walk, b, off, x)
        page = _extreme_pfn_to_page(t1, t2, nr_roots, psshift, pfn)
        if page < 0:
            inval += 1
            continue
        w = page >> 3
        csum += ((memmap[w + W_FLAGS] >> npg) & nmask) + memmap[w + W_REFCOUNT]
        if walk == WALK_ROUNDTRIP:
            back = _extreme_page_to_pfn(memmap, t1, t2, nr_roots, spg, smask, page)
            errs += back != pfn
            csum += back
    _finish(st, b, off, x, crow, cfg[CFG_C0], n, csum, errs, inval)
    return n


@kernel
def walk_vmemmap(memmap, t1, t2, blocks, cfg, st, crow, n):
    """n lookups as vmemmap + pfn (vmemmap and hvo); returns n."""
    npg, nmask = cfg[CFG_NODES_PGSHIFT], cfg[CFG_NODES_MASK]
    nblocks, gshift, walk = cfg[CFG_NBLOCKS], cfg[CFG_GSHIFT], cfg[CFG_WALK]
    b, off, x = st[ST_BLOCK], st[ST_OFF], st[ST_RNG]
    csum = 0
    errs = 0
    for _ in range(n):
        pfn, b, off, x = _next_pfn(blocks, nblocks, gshift, walk, b, off, x)
        page = pfn * 64
        w = page >> 3
        csum += ((memmap[w + W_FLAGS] >> npg) & nmask) + memmap[w + W_REFCOUNT]
        if walk == WALK_ROUNDTRIP:
            back = page >> 6
            errs += back != pfn
            csum += back
    _finish(st, b, off, x, crow, cfg[CFG_C0], n, csum, errs, 0)
    return n


WALK_KERNELS = {K_FLAT: walk_flat, K_SPARSE: walk_sparse, K_EXTREME: walk_extreme,
                K_VMEMMAP: walk_vmemmap, K_HVO: walk_vmemmap}


# --------------------------------------------------------------------------------------
# Batch entry points for checks and tests (same helpers as the walks).
# --------------------------------------------------------------------------------------

@kernel
def pfn_to_page_batch(memmap, t1, t2, cfg, pfns, out):
    """out[i] = the page (byte address in the memmap mapping) of pfns[i], or -1."""
    kind = cfg[CFG_KIND]
    for i in range(pfns.shape[0]):
        out[i] = _lookup(kind, memmap, t1, t2, cfg[CFG_PFN_OFFSET], cfg[CFG_MAX_MAPNR],
                         cfg[CFG_NR_MEM_SECTIONS], cfg[CFG_NR_SECTION_ROOTS],
                         cfg[CFG_PFN_SECTION_SHIFT], pfns[i])
    return 0


@kernel
def page_to_pfn_batch(memmap, t1, t2, cfg, pages, out):
    """out[i] = the pfn of struct page pages[i] (read from page->flags where the model does)."""
    kind = cfg[CFG_KIND]
    for i in range(pages.shape[0]):
        out[i] = _reverse(kind, memmap, t1, t2, cfg[CFG_PFN_OFFSET], cfg[CFG_NR_SECTION_ROOTS],
                          cfg[CFG_SECTIONS_PGSHIFT], cfg[CFG_SECTIONS_MASK], pages[i])
    return 0


@kernel
def pfn_valid_batch(memmap, t1, t2, cfg, pfns, out):
    """out[i] = 1 when the model's pfn_valid() accepts pfns[i] (a struct page exists)."""
    kind = cfg[CFG_KIND]
    for i in range(pfns.shape[0]):
        if kind >= K_VMEMMAP:
            out[i] = 1 if _vmemmap_pfn_valid(t1, t2, cfg[CFG_NR_SECTION_ROOTS],
                                             cfg[CFG_PFN_SECTION_SHIFT], pfns[i]) else 0
        else:
            out[i] = 1 if _lookup(kind, memmap, t1, t2, cfg[CFG_PFN_OFFSET], cfg[CFG_MAX_MAPNR],
                                  cfg[CFG_NR_MEM_SECTIONS], cfg[CFG_NR_SECTION_ROOTS],
                                  cfg[CFG_PFN_SECTION_SHIFT], pfns[i]) >= 0 else 0
    return 0


@kernel
def verify_memmap(memmap, t1, t2, cfg, ranges, nranges, bad):
    """Every present pfn: valid, page->flags carries its section/node/zone, page_to_pfn round trips.

    Returns the number of bad pfns; bad[0] = the first one (-1 if none).
    """
    kind = cfg[CFG_KIND]
    psshift = cfg[CFG_PFN_SECTION_SHIFT]
    spg, smask = cfg[CFG_SECTIONS_PGSHIFT], cfg[CFG_SECTIONS_MASK]
    npg, nmask = cfg[CFG_NODES_PGSHIFT], cfg[CFG_NODES_MASK]
    zpg, zmask = cfg[CFG_ZONES_PGSHIFT], cfg[CFG_ZONES_MASK]
    nbad = 0
    bad[0] = -1
    for r in range(nranges):
        node = ranges[r * 3 + 2]
        for pfn in range(ranges[r * 3], ranges[r * 3 + 1]):
            page = _lookup(kind, memmap, t1, t2, cfg[CFG_PFN_OFFSET], cfg[CFG_MAX_MAPNR],
                           cfg[CFG_NR_MEM_SECTIONS], cfg[CFG_NR_SECTION_ROOTS], psshift, pfn)
            ok = page >= 0
            if ok:
                f = memmap[page >> 3]
                ok = (((f >> spg) & smask) == (pfn >> psshift)
                      and ((f >> npg) & nmask) == node
                      and ((f >> zpg) & zmask) == _zone_of(pfn)
                      and (f >> PG_RESERVED) & 1 == 0
                      and _reverse(kind, memmap, t1, t2, cfg[CFG_PFN_OFFSET],
                                   cfg[CFG_NR_SECTION_ROOTS], spg, smask, page) == pfn)
            if not ok:
                if nbad == 0:
                    bad[0] = pfn
                nbad += 1
    return nbad


@helper
def _zone_of(pfn):
    if pfn < DMA_END_PFN:
        return ZONE_DMA
    if pfn < DMA32_END_PFN:
        return ZONE_DMA32
    return ZONE_NORMAL


@kernel
def init_single_pages(memmap, page0, start_pfn, end_pfn, node, reserved, psshift,
                      spg, npg, zpg):
    """``__init_single_page`` for pfns [start_pfn, end_pfn) at byte address page0 onwards.

    flags = section | node | zone (| PG_reserved for holes, as init_unavailable_range),
    refcount 1, mapcount -1, lru linked to itself.
    """
    w = page0 >> 3
    for pfn in range(start_pfn, end_pfn):
        f = ((pfn >> psshift) << spg) | (node << npg) | (_zone_of(pfn) << zpg)
        if reserved:
            f |= 1 << PG_RESERVED
        addr = w * 8
        memmap[w + W_FLAGS] = f
        memmap[w + W_LRU_NEXT] = addr + 8
        memmap[w + W_LRU_PREV] = addr + 8
        memmap[w + W_MAPPING] = 0
        memmap[w + W_INDEX] = 0
        memmap[w + W_PRIVATE] = 0
        memmap[w + W_MAPCOUNT] = -1
        memmap[w + W_REFCOUNT] = 1
        w += 8
    return 0


@kernel
def init_hugetlb_head(memmap, head_pfn, node, psshift, spg, npg, zpg):
    """Struct pages of one 2 MiB HugeTLB folio's head vmemmap page: head + 63 tails.

    The 7 tail vmemmap pages map this same frame (HVO), so struct page 64k + j reads
    struct page j: page 64k is a "fake head" (page_fixed_fake_head()).
    """
    w = head_pfn * 8
    head = head_pfn * 64
    base = ((head_pfn >> psshift) << spg) | (node << npg) | (_zone_of(head_pfn) << zpg)
    for j in range(PAGE_SIZE // STRUCT_PAGE):
        o = w + j * 8
        if j == 0:
            memmap[o + W_FLAGS] = base | (1 << PG_HEAD)
            memmap[o + W_LRU_NEXT] = head + 8
            memmap[o + W_LRU_PREV] = head + 8
            memmap[o + W_REFCOUNT] = 1
        else:
            memmap[o + W_FLAGS] = base
            memmap[o + W_LRU_NEXT] = head | 1           # compound_head
            memmap[o + W_LRU_PREV] = 9 if j == 1 else 0  # folio order in the first tail
            memmap[o + W_REFCOUNT] = 0
        memmap[o + W_MAPPING] = 0
        memmap[o + W_INDEX] = 0
        memmap[o + W_PRIVATE] = 0
        memmap[o + W_MAPCOUNT] = -1
    return 0


# --------------------------------------------------------------------------------------
# Physical layouts
# --------------------------------------------------------------------------------------

def _geometry(p: dict) -> dict:
    sb = p["section_bits"]
    pps = 1 << (sb - PAGE_SHIFT)
    g = min(512, pps // 4)
    swidth = p["max_physmem_bits"] - sb
    spg = 64 - swidth
    npg = spg - NODES_WIDTH
    zpg = npg - ZONES_WIDTH
    nr_sec = 1 << swidth
    return dict(pps=pps, psshift=sb - PAGE_SHIFT, gran=g, gshift=g.bit_length() - 1,
                swidth=swidth, spg=spg, npg=npg, zpg=zpg, nr_sec=nr_sec,
                nr_roots=max(1, nr_sec // SECTIONS_PER_ROOT))


def physical_layout(p: dict) -> np.ndarray:
    """The present ranges as an int64 array of rows (start_pfn, end_pfn, node), sorted.

    * contiguous:  ``mem_mib`` from pfn 0, the ``nodes`` adjacent.
    * numa-spread: node k's ``mem_mib / nodes`` at ``k << node_stride_bits``.
    * fragmented:  node after node, section by section: a section slot is a hole
      (1-4 sections) with probability ``hole_share``; a present section has an unaligned
      hole inside (a run of granules) with probability 0.3.  Seeded by ``layout_seed``.
    """
    g = _geometry(p)
    pps, gran = g["pps"], g["gran"]
    nodes = p["nodes"]
    node_pfns = ((p["mem_mib"] << (20 - PAGE_SHIFT)) // nodes) // gran * gran
    if node_pfns == 0:
        raise ValueError(f"mem_mib {p['mem_mib']} over {nodes} nodes is less than one granule "
                         f"({gran * PAGE_SIZE >> 10} KiB) per node")
    rows = []
    if p["layout"] == "contiguous":
        for k in range(nodes):
            rows.append((k * node_pfns, (k + 1) * node_pfns, k))
    elif p["layout"] == "numa-spread":
        stride = 1 << (p["node_stride_bits"] - PAGE_SHIFT)
        if stride < node_pfns:
            raise ValueError(f"node_stride_bits {p['node_stride_bits']} is smaller than a node "
                             f"({node_pfns * PAGE_SIZE >> 20} MiB)")
        for k in range(nodes):
            rows.append((k * stride, k * stride + node_pfns, k))
    else:
        rng = np.random.default_rng(p["layout_seed"])
        ng = pps // gran
        s = 0
        for k in range(nodes):
            left = node_pfns
            while left > 0:
                if rng.random() < p["hole_share"]:
                    s += int(rng.integers(1, 5))
                    continue
                present = np.ones(ng, bool)
                if rng.random() < 0.3:
                    a = int(rng.integers(0, ng))
                    b = int(rng.integers(a + 1, ng + 1))
                    if a == 0 and b == ng:
                        b = ng - 1
                    present[a:b] = False
                for i in np.flatnonzero(present):
                    if left == 0:
                        break
                    st = s * pps + int(i) * gran
                    if rows and rows[-1][1] == st and rows[-1][2] == k:
                        rows[-1] = (rows[-1][0], st + gran, k)
                    else:
                        rows.append((st, st + gran, k))
                    left -= gran
                s += 1
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _present_sections(ranges: np.ndarray, psshift: int) -> np.ndarray:
    secs = set()
    for a, b, _ in ranges:
        secs.update(range(int(a) >> psshift, ((int(b) - 1) >> psshift) + 1))
    return np.array(sorted(secs), dtype=np.int64)


def _blocks(ranges: np.ndarray, gran: int) -> np.ndarray:
    return np.concatenate([np.arange(a, b, gran, dtype=np.int64) for a, b, _ in ranges])


def _segments(ranges: np.ndarray, lo: int, hi: int):
    """(start, end, node, reserved) covering [lo, hi): present ranges and the holes between.

    A hole takes the node of the range before it (or after it, at the start).
    """
    out = []
    cur = lo
    prev_node = int(ranges[0, 2])
    i = int(np.searchsorted(ranges[:, 1], lo, side="right"))
    while cur < hi:
        if i < len(ranges) and int(ranges[i, 0]) <= cur:
            end = min(hi, int(ranges[i, 1]))
            prev_node = int(ranges[i, 2])
            out.append((cur, end, prev_node, 0))
            cur = end
            i += 1
        else:
            nxt = int(ranges[i, 0]) if i < len(ranges) else hi
            node = prev_node if i > 0 else int(ranges[i, 2])
            end = min(hi, nxt)
            out.append((cur, end, node, 1))
            cur = end
    return out


def _huge_pages(p: dict, ranges: np.ndarray) -> np.ndarray:
    """First pfns of the HugeTLB pages: 2 MiB-aligned, fully present, ``huge_share`` of memory."""
    if p["memory_model"] != "hvo":
        return np.zeros(0, np.int64)
    cand = []
    for a, b, _ in ranges:
        first = (int(a) + HUGE_PFNS - 1) // HUGE_PFNS * HUGE_PFNS
        cand.extend(range(first, int(b) - HUGE_PFNS + 1, HUGE_PFNS))
    present = int((ranges[:, 1] - ranges[:, 0]).sum())
    want = min(len(cand), int(round(p["huge_share"] * present / HUGE_PFNS)))
    rng = np.random.default_rng(p["layout_seed"] + 0x4856)
    pick = np.sort(rng.choice(len(cand), size=want, replace=False)) if want else []
    return np.array([cand[i] for i in pick], dtype=np.int64)


# --------------------------------------------------------------------------------------
# Mappings and measurement (ctypes: Python's mmap module has no MAP_NORESERVE / MAP_FIXED)
# --------------------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PROT_RW = _mmap_mod.PROT_READ | _mmap_mod.PROT_WRITE
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_FIXED, MAP_NORESERVE = 0x10, 0x4000
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15
MAP_FAILED = ctypes.c_void_p(-1).value
TWO_MIB = 2 << 20


def _mmap(addr, length, prot, flags, fd=-1, off=0) -> int:
    r = _libc.mmap(addr, length, prot, flags, fd, off)
    if r is None or r == MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, f"mmap of {length} bytes failed: {os.strerror(e)}")
    return r


def _view(addr: int, nbytes: int) -> np.ndarray:
    return np.frombuffer((ctypes.c_char * nbytes).from_address(addr), dtype=np.int64)


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable missing from /proc/meminfo")


def resident_bytes(lo: int, hi: int, memfd: int = -1) -> tuple[int, int]:
    """Bytes of memory the OS holds for the mapping [lo, hi): (anonymous, memfd).

    Sums the ``Anonymous`` lines of every VMA of /proc/self/smaps that overlaps the range
    (zero-page mappings of never-written pages do not count), and the memfd's allocated
    blocks: a page of it mapped 8 times is held once.
    """
    anon = 0
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            c = line[0]
            if c in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                a, b = line.split(" ", 1)[0].split("-")
                inside = int(a, 16) < hi and int(b, 16) > lo
            elif inside and line.startswith("Anonymous:"):
                anon += int(line.split()[1]) * 1024
    fd_bytes = os.fstat(memfd).st_blocks * 512 if memfd >= 0 else 0
    return anon, fd_bytes


def _map_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


class _Mapping:
    """A reservation made in setup, outside the arena (released by teardown)."""

    def __init__(self, nbytes: int, thp: bool):
        self.length = nbytes + TWO_MIB
        self.raw = _mmap(None, self.length, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
        self.addr = (self.raw + TWO_MIB - 1) // TWO_MIB * TWO_MIB   # 2 MiB aligned base
        self.nbytes = nbytes
        self.memfd = -1
        _libc.madvise(self.raw, self.length, MADV_HUGEPAGE if thp else MADV_NOHUGEPAGE)

    def view(self) -> np.ndarray:
        return _view(self.addr, self.nbytes)

    def measure(self) -> tuple[int, int]:
        return resident_bytes(self.raw, self.raw + self.length, self.memfd)

    def close(self) -> None:
        if self.raw:
            _libc.munmap(self.raw, self.length)
            self.raw = 0
        if self.memfd >= 0:
            os.close(self.memfd)
            self.memfd = -1


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------

class MemmapModel(Model):
    name = "memmap"
    description = ("where struct page lives: pfn_to_page/page_to_pfn and memmap memory of "
                   "FLATMEM, SPARSEMEM, SPARSEMEM_EXTREME, SPARSEMEM_VMEMMAP and HVO")
    variants = {k: {"memory_model": k} for k in MODEL_KINDS}
    params = {
        "memory_model": Param(str, "sparse", choices=tuple(MODEL_KINDS), help="set by the variant"),
        "layout": Param(str, "contiguous", choices=LAYOUTS, help="physical layout preset"),
        "mem_mib": Param(int, 16384, 1, 1 << 24, help="present memory (MiB), split over nodes"),
        "nodes": Param(int, 4, 1, 1 << NODES_WIDTH, help="NUMA nodes"),
        "node_stride_bits": Param(int, 40, 20, 52, help="numa-spread: node k starts at k << bits"),
        "hole_share": Param(float, 0.5, 0.0, 0.9,
                            help="fragmented: probability that a section slot is a hole"),
        "layout_seed": Param(int, 1, 0, 1 << 31, help="fragmented holes and hvo huge pages"),
        "section_bits": Param(int, 27, 18, 31, help="SECTION_SIZE_BITS"),
        "max_physmem_bits": Param(int, 46, 32, 52, help="MAX_PHYSMEM_BITS"),
        "huge_share": Param(float, 0.5, 0.0, 1.0,
                            help="hvo: share of present memory in 2 MiB HugeTLB pages"),
        "walk": Param(str, "random", choices=tuple(WALKS),
                      help="sequential, random, or pfn->page->pfn roundtrip"),
        "thp": Param(bool, True, help="madvise memmap mappings HUGEPAGE (like the kernel's "
                                      "PMD-mapped memmap) or NOHUGEPAGE (4 KiB granular)"),
    }
    counter_names = COUNTER_NAMES

    def __init__(self):
        self._maps: dict[int, _Mapping] = {}

    # --- parameters -------------------------------------------------------
    def validate(self, p):
        g = _geometry(p)
        if g["zpg"] < MIN_PAGEFLAG_BITS:
            raise ValueError(f"page->flags cannot hold {g['swidth']} section bits "
                             f"(max_physmem_bits - section_bits must be <= "
                             f"{64 - MIN_PAGEFLAG_BITS - NODES_WIDTH - ZONES_WIDTH})")
        if p["memory_model"] == "hvo" and p["section_bits"] < 21:
            raise ValueError("hvo needs section_bits >= 21 (a 2 MiB HugeTLB page within a section)")
        if p["memory_model"] == "sparse" and g["nr_sec"] * 16 > (1 << 30):
            raise ValueError(f"classic SPARSEMEM's mem_section[] would be "
                             f"{g['nr_sec'] * 16 >> 20} MiB: that is why SPARSEMEM_EXTREME exists")
        ranges = self._ranges(p)
        end = int(ranges[-1, 1])
        if end > 1 << (p["max_physmem_bits"] - PAGE_SHIFT):
            raise ValueError(f"layout ends at {end << PAGE_SHIFT:#x}, beyond MAX_PHYSMEM_BITS "
                             f"{p['max_physmem_bits']}")

    def _ranges(self, p) -> np.ndarray:
        key = tuple(p.get(k) for k in ("layout", "mem_mib", "nodes", "node_stride_bits",
                                       "hole_share", "layout_seed", "section_bits"))
        cache = self.__dict__.setdefault("_layout_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = physical_layout(p)
        return cache[key]

    # --- life cycle -------------------------------------------------------
    def layout(self, p, nworkers):
        g = _geometry(p)
        ranges = self._ranges(p)
        kind = MODEL_KINDS[p["memory_model"]]
        specs = [ArraySpec("mm_cfg", (CFG_WORDS,)),
                 ArraySpec("mm_info", (INFO_WORDS,)),
                 ArraySpec("mm_ranges", (ranges.size,)),
                 ArraySpec("mm_blocks", (_blocks(ranges, g["gran"]).size,)),
                 ArraySpec("mm_walk", (nworkers, ROW_WORDS))]
        if kind == K_FLAT:
            specs += [ArraySpec("mm_t1", (1,)), ArraySpec("mm_t2", (1,))]
        elif kind == K_SPARSE:
            specs += [ArraySpec("mm_t1", (g["nr_sec"] * SECTION_ENTRY_WORDS,)),
                      ArraySpec("mm_t2", (1,))]
        else:
            nroots = len(np.unique(_present_sections(ranges, g["psshift"]) >> SECTIONS_PER_ROOT_SHIFT))
            specs += [ArraySpec("mm_t1", (g["nr_roots"],)),
                      ArraySpec("mm_t2", (nroots * SECTIONS_PER_ROOT * SECTION_ENTRY_WORDS,))]
        if kind == K_HVO:
            specs.append(ArraySpec("mm_huge", (max(1, _huge_pages(p, ranges).size),)))
        return specs

    def setup(self, arrays, p, nworkers, seed):
        g = _geometry(p)
        kind = MODEL_KINDS[p["memory_model"]]
        ranges = self._ranges(p)
        arrays["mm_ranges"][:] = ranges.ravel()
        blocks = _blocks(ranges, g["gran"])
        arrays["mm_blocks"][:] = blocks
        present = int((ranges[:, 1] - ranges[:, 0]).sum())
        first, end = int(ranges[0, 0]), int(ranges[-1, 1])
        secs = _present_sections(ranges, g["psshift"])
        pps = g["pps"]

        cfg = arrays["mm_cfg"]
        cfg[:] = 0
        cfg[CFG_KIND] = kind
        cfg[CFG_PFN_SECTION_SHIFT] = g["psshift"]
        cfg[CFG_NR_MEM_SECTIONS] = g["nr_sec"]
        cfg[CFG_SECTIONS_PGSHIFT] = g["spg"]
        cfg[CFG_SECTIONS_MASK] = (1 << g["swidth"]) - 1
        cfg[CFG_NODES_PGSHIFT] = g["npg"]
        cfg[CFG_NODES_MASK] = (1 << NODES_WIDTH) - 1
        cfg[CFG_ZONES_PGSHIFT] = g["zpg"]
        cfg[CFG_ZONES_MASK] = (1 << ZONES_WIDTH) - 1
        cfg[CFG_PFN_OFFSET] = first
        cfg[CFG_MAX_MAPNR] = end - first
        cfg[CFG_NR_SECTION_ROOTS] = g["nr_roots"]
        cfg[CFG_GSHIFT] = g["gshift"]
        cfg[CFG_NBLOCKS] = blocks.size
        cfg[CFG_WALK] = WALKS[p["walk"]]
        cfg[CFG_C0] = N_LOCK_COUNTERS + COUNTER_NAMES.index("lookups")

        st = arrays["mm_walk"]
        st[:] = 0
        for w in range(nworkers):
            st[w, ST_BLOCK] = w * blocks.size // nworkers
            # splitmix64 of (seed, worker), never 0 (xorshift's fixed point)
            z = (seed * 0x9E3779B97F4A7C15 + (w + 1) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
            z = ((z ^ (z >> 31)) * 0x94D049BB133111EB) & (2**64 - 1)
            z = (z ^ (z >> 29)) | 1
            st[w, ST_RNG] = z - (1 << 64) if z >> 63 else z

        # The memmap itself, outside the arena: its residency is the measurement.
        if kind == K_FLAT:
            need = (end - first) * STRUCT_PAGE
            avail = mem_available()
            if need > avail * 3 // 4:
                raise ModelNotRunnable(
                    f"flat: the memmap of the {_fmt(end - first << PAGE_SHIFT)} span needs "
                    f"{_fmt(need)} (64 B per 4 KiB frame, holes included), more than 3/4 of "
                    f"MemAvailable ({_fmt(avail)}): not runnable")
            nbytes = need
        elif kind in (K_SPARSE, K_EXTREME):
            nbytes = secs.size * pps * STRUCT_PAGE
        else:
            # vmemmap covers pfn 0 up to the end of the last present section
            nbytes = (int(secs[-1]) + 1) * pps * STRUCT_PAGE
        m = _Mapping(nbytes, p["thp"])
        self._maps[id(arrays)] = m
        try:
            self._populate(arrays, p, g, kind, ranges, secs, m)
            mm = arrays["mm_memmap"]
            bad = np.zeros(1, np.int64)
            nbad = verify_memmap(mm, arrays["mm_t1"], arrays["mm_t2"], cfg, arrays["mm_ranges"],
                                 ranges.shape[0], bad)   # also faults every struct page in
            if nbad:
                raise RuntimeError(f"memmap setup is inconsistent at pfn {int(bad[0])} "
                                   f"({nbad} bad pfns)")
            anon, fdb = m.measure()
        except BaseException:
            self.teardown(arrays, p)
            raise

        info = arrays["mm_info"]
        info[:] = 0
        info[I_RESIDENT] = anon + fdb
        info[I_ANON] = anon
        info[I_MEMFD] = fdb
        info[I_PRESENT] = present << PAGE_SHIFT
        info[I_SPAN] = (end - first) << PAGE_SHIFT
        info[I_NSECTIONS] = secs.size
        info[I_VIRTUAL] = nbytes
        info[I_NHUGE] = int((arrays["mm_huge"] >= 0).sum()) if kind == K_HVO else 0
        if kind == K_FLAT:
            info[I_TABLE] = 0
        elif kind == K_SPARSE:
            info[I_TABLE] = g["nr_sec"] * 16
        else:
            # root pointer array + the PAGE_SIZE roots allocated on demand
            info[I_TABLE] = g["nr_roots"] * 8 + int((arrays["mm_t1"] != 0).sum()) * PAGE_SIZE

    def _populate(self, arrays, p, g, kind, ranges, secs, m):
        pps, psshift = g["pps"], g["psshift"]
        shifts = (psshift, g["spg"], g["npg"], g["zpg"])
        t1, t2 = arrays["mm_t1"], arrays["mm_t2"]
        t1[:] = 0
        t2[:] = 0
        huge = np.zeros(0, np.int64)
        if kind == K_HVO:
            huge = _huge_pages(p, ranges)
            arrays["mm_huge"][:] = -1
            arrays["mm_huge"][:huge.size] = huge
            self._hvo_remap(m, huge)
        mm = m.view()
        arrays["mm_memmap"] = mm

        def init(page0, a, b, node, res):
            init_single_pages(mm, page0, a, b, node, res, *shifts)

        if kind == K_FLAT:
            first = int(ranges[0, 0])
            for a, b, node, res in _segments(ranges, first, int(ranges[-1, 1])):
                init((a - first) * STRUCT_PAGE, a, b, node, res)
            return
        # every present section gets a whole section's memmap (holes in it: reserved)
        for slot, nr in enumerate(secs):
            nr = int(nr)
            lo = nr * pps
            if kind in (K_SPARSE, K_EXTREME):
                mem_map = slot * pps * STRUCT_PAGE           # this section's memmap in the pool
            else:
                mem_map = lo * STRUCT_PAGE                   # vmemmap + first pfn
            coded = mem_map - lo * STRUCT_PAGE               # sparse_encode_mem_map()
            assert coded & ~SECTION_MAP_MASK == 0, "encoded mem_map has low bits set"
            word = coded | BOOT_SECTION_FLAGS
            if kind == K_SPARSE:
                t1[nr * 2] = word
            else:
                root = nr >> SECTIONS_PER_ROOT_SHIFT
                if t1[root] == 0:                            # sparse_index_alloc()
                    t1[root] = int((t1 != 0).sum()) + 1
                t2[((int(t1[root]) - 1) * SECTIONS_PER_ROOT + (nr & (SECTIONS_PER_ROOT - 1))) * 2] = word
            hp = set(int(h) for h in huge[(huge >= lo) & (huge < lo + pps)])
            for a, b, node, res in _segments(ranges, lo, lo + pps):
                # HugeTLB pages' struct pages are written through their head vmemmap page only
                cur = a
                while cur < b:
                    h = cur // HUGE_PFNS * HUGE_PFNS
                    if h in hp:
                        if h == cur:
                            init_hugetlb_head(mm, h, node, *shifts)
                        cur = min(b, h + HUGE_PFNS)
                        continue
                    nxt = b
                    for x in hp:
                        if cur < x < nxt:
                            nxt = x
                    init(mem_map + (cur - lo) * STRUCT_PAGE, cur, nxt, node, res)
                    cur = nxt

    def _hvo_remap(self, m: _Mapping, huge: np.ndarray) -> None:
        """vmemmap_remap_free(): the 7 tail vmemmap pages of each HugeTLB page map its head's frame."""
        if huge.size == 0:
            return
        need = huge.size * (HUGE_VMEMMAP_PAGES + 1) + _map_count() + 64
        try:
            with open("/proc/sys/vm/max_map_count") as f:
                limit = int(f.read())
        except OSError:
            limit = 65530
        if need > limit:
            raise ModelNotRunnable(
                f"hvo: {huge.size} HugeTLB pages need about {need} mappings (9 per page), more "
                f"than vm.max_map_count ({limit}): not runnable")
        fd = os.memfd_create("mmbench-hvo-vmemmap", os.MFD_CLOEXEC)
        m.memfd = fd
        os.ftruncate(fd, huge.size * PAGE_SIZE)
        flags = MAP_SHARED | MAP_FIXED
        for i, h in enumerate(huge):
            va = m.addr + int(h) * STRUCT_PAGE
            for k in range(HUGE_VMEMMAP_PAGES):
                _mmap(va + k * PAGE_SIZE, PAGE_SIZE, PROT_RW, flags, fd, i * PAGE_SIZE)

    def compile(self, p):
        mm = np.zeros(64 * PAGE_WORDS, np.int64)
        t = np.zeros(4, np.int64)
        cfg = np.zeros(CFG_WORDS, np.int64)
        blocks = np.zeros(1, np.int64)
        st = np.zeros(ROW_WORDS, np.int64)
        st[ST_RNG] = 1
        crow = np.zeros(ROW_WORDS * 2, np.int64)
        for k in set(WALK_KERNELS.values()):
            k(mm, t, t, blocks, cfg, st, crow, 0)
        pfns = np.zeros(1, np.int64)
        pfn_to_page_batch(mm, t, t, cfg, pfns, pfns.copy())
        page_to_pfn_batch(mm, t, t, cfg, pfns, pfns.copy())
        pfn_valid_batch(mm, t, t, cfg, pfns, pfns.copy())
        verify_memmap(mm, t, t, cfg, np.zeros(3, np.int64), 0, pfns.copy())

    def worker_init(self, arrays, p, worker, nworkers):
        kern = WALK_KERNELS[MODEL_KINDS[p["memory_model"]]]
        return (kern, arrays["mm_memmap"], arrays["mm_t1"], arrays["mm_t2"], arrays["mm_blocks"],
                arrays["mm_cfg"], arrays["mm_walk"][worker], arrays["counters"][worker])

    def step(self, ctx, n):
        kern, mm, t1, t2, blocks, cfg, st, crow = ctx
        return kern(mm, t1, t2, blocks, cfg, st, crow, n)

    def check(self, arrays, p, nworkers):
        errors = []
        cnt = arrays["counters"]
        c = {name: int(cnt[:, self.counter_index(name)].sum()) for name in COUNTER_NAMES}
        if c["roundtrip_errors"]:
            errors.append(f"{c['roundtrip_errors']} pfn->page->pfn round trips came back wrong")
        if c["invalid"]:
            errors.append(f"{c['invalid']} lookups of present pfns found no struct page")
        if "mm_memmap" not in arrays:
            return errors + ["the memmap mapping is gone"]
        ranges = arrays["mm_ranges"]
        bad = np.zeros(1, np.int64)
        nbad = verify_memmap(arrays["mm_memmap"], arrays["mm_t1"], arrays["mm_t2"], arrays["mm_cfg"],
                             ranges, ranges.size // 3, bad)
        if nbad:
            errors.append(f"{nbad} present pfns have a wrong struct page (first: pfn {int(bad[0])})")
        if p["memory_model"] == "hvo":
            mm = arrays["mm_memmap"]
            for h in arrays["mm_huge"]:
                if h < 0:
                    break
                w = int(h) * PAGE_WORDS
                head = mm[w:w + PAGE_SIZE // 8]
                for k in range(1, HUGE_VMEMMAP_PAGES):
                    if not np.array_equal(mm[w + k * PAGE_SIZE // 8:w + (k + 1) * PAGE_SIZE // 8], head):
                        errors.append(f"hvo: tail vmemmap page {k} of the HugeTLB page at pfn "
                                      f"{int(h)} does not map its head's frame")
                        return errors
        return errors

    def report(self, arrays, p, nworkers):
        info = arrays["mm_info"]
        resident = int(info[I_RESIDENT])
        present = int(info[I_PRESENT])
        ideal = present // PAGE_SIZE * STRUCT_PAGE
        extra = {
            "memmap_resident_bytes": resident,
            "memmap_anon_bytes": int(info[I_ANON]),
            "memmap_memfd_bytes": int(info[I_MEMFD]),
            "memmap_virtual_bytes": int(info[I_VIRTUAL]),
            "section_table_bytes": int(info[I_TABLE]),
            "present_bytes": present,
            "span_bytes": int(info[I_SPAN]),
            "present_sections": int(info[I_NSECTIONS]),
            "hugetlb_pages": int(info[I_NHUGE]),
            "ideal_memmap_bytes": ideal,
            "ratio_to_ideal": resident / ideal if ideal else None,
            # negative under HVO: below one struct page per present frame
            "waste_over_holes_bytes": resident - ideal,
        }
        return {"extra": extra}

    def teardown(self, arrays, p):
        arrays.pop("mm_memmap", None)
        m = self._maps.pop(id(arrays), None)
        if m is not None:
            m.close()

    # --- direct access for tests and tools --------------------------------
    def pfn_to_page(self, arrays, pfns) -> np.ndarray:
        """Pages (byte addresses in ``arrays['mm_memmap']``) of ``pfns``; -1 where none."""
        pfns = np.ascontiguousarray(pfns, dtype=np.int64)
        out = np.empty_like(pfns)
        pfn_to_page_batch(arrays["mm_memmap"], arrays["mm_t1"], arrays["mm_t2"], arrays["mm_cfg"],
                          pfns, out)
        return out

    def page_to_pfn(self, arrays, pages) -> np.ndarray:
        pages = np.ascontiguousarray(pages, dtype=np.int64)
        out = np.empty_like(pages)
        page_to_pfn_batch(arrays["mm_memmap"], arrays["mm_t1"], arrays["mm_t2"], arrays["mm_cfg"],
                          pages, out)
        return out

    def pfn_valid(self, arrays, pfns) -> np.ndarray:
        pfns = np.ascontiguousarray(pfns, dtype=np.int64)
        out = np.empty_like(pfns)
        pfn_valid_batch(arrays["mm_memmap"], arrays["mm_t1"], arrays["mm_t2"], arrays["mm_cfg"],
                        pfns, out)
        return out.astype(bool)


def _fmt(n: int) -> str:
    for unit, s in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << s:
            return f"{n / (1 << s):.1f} {unit}"
    return f"{n} B"

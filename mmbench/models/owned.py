"""Owned pages: in-use pages with real contents, an owner record and a reverse map.

Migration (memory offline, CMA) must copy a page's contents to a new page and fix the
owner's reference, as ``migrate_pages`` does through the rmap.  Each page a worker holds is
recorded here (all int64 arrays, shared memory in a run):

``held``   (slots,)         owner slot -> pfn; -1 empty; ``BUSY`` while the owner (freeing) or a
                            migrator (copying) has claimed the slot with a CAS.
``chk``    (slots,)         checksum of the page contents written at allocation.
``owner``  (nframes,)       reverse map: pfn -> slot + 1 (0 = no owner), the rmap stand-in.
``data``   (nframes, 8)     64 bytes of real memory per frame: the page's contents.

A pinned page (``pin_user_pages``) holds one extra reference: ``_refcount`` 2.  Migration
refuses it (the kernel's ``folio_migrate_mapping`` refcount check), as it refuses a page whose
slot it cannot claim (the owner is freeing it: ``isolate_lru_page`` failed).

Slots of worker w are ``[w*cap, (w+1)*cap)``; only worker w allocates into them; a migrator
only ever swaps one pfn for another inside a claimed slot.

:func:`churn_step` is the background load of the hotplug and CMA workloads: each worker keeps
``target`` pages (order 0, a share unmovable and a share pinned) and alternately frees a random
one and allocates a new one through the per-CPU lists of the zones.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from ..jit import helper

from ..atomics import cas, load_acquire, load_relaxed, rdtsc, store_release
from . import pcp as P
from . import zone as Z

BUSY = -2
DATA_WORDS = 8
ABORTED = -2

# per-worker state words (array ``wst`` of shape (W, WST_WORDS))
S_RNG, S_NHELD, S_OPS = 0, 1, 2
WST_WORDS = 8

# counter offsets from the caller's column ``co`` (COMMON_COUNTERS order)
CO_OPS_ALLOC, CO_OPS_FREE, CO_ALLOC_FAIL, CO_DATA_CORRUPT = 0, 1, 2, 3
CO_PCP = 4                 # pcp_hits, pcp_refills, pcp_drains, pcp_free_high (pcp.PCPC_*)
CO_MIGRATED, CO_MIG_BUSY, CO_MIG_PINNED, CO_MIG_NOMEM = 8, 9, 10, 11
CO_OPS_PCP_ON, CO_OPS_PCP_OFF, CO_CYC_PCP_ON, CO_CYC_PCP_OFF = 12, 13, 14, 15
COMMON_COUNTERS = ("ops_alloc", "ops_free", "alloc_fail", "data_corrupt",
                   "pcp_hits", "pcp_refills", "pcp_drains", "pcp_free_high",
                   "pages_migrated", "migrate_busy", "migrate_pinned", "migrate_nomem",
                   "ops_pcp_enabled", "ops_pcp_disabled", "cycles_pcp_enabled",
                   "cycles_pcp_disabled")

LAT_BUCKETS = 64
ZONE_IDX_BASE = Z.ZONE_NORMAL      # zone arrays row z holds the zone with id ZONE_NORMAL + z


@njit(cache=True, nogil=True, inline="always")
def bucket(dt):
    """log2 bucket of a cycle count (bucket b holds [2^b, 2^(b+1)))."""
    b = 0
    while dt > 1 and b < LAT_BUCKETS - 1:
        dt >>= 1
        b += 1
    return b


@njit(cache=True, nogil=True, inline="always")
def xorshift_next(state, w, col):
    """Per-worker xorshift64 whose state lives in state[w, col]; a non-negative int64."""
    x = state[w, col]
    x ^= x << 13
    x ^= (x >> 7) & 0x01FFFFFFFFFFFFFF
    x ^= x << 17
    state[w, col] = x
    return x & 0x7FFFFFFFFFFFFFFF


@njit(cache=True, nogil=True, inline="always")
def rng_next(wst, w):
    return xorshift_next(wst, w, S_RNG)


@helper
def page_checksum(data, pfn):
    c = 0
    for i in range(DATA_WORDS):
        c = c * 1000003 + data[pfn, i]
    return c


@helper
def fill_page(data, pfn, seed):
    """Write the page's 64 bytes (a splitmix sequence from ``seed``); returns the checksum."""
    x = seed
    for i in range(DATA_WORDS):
        x += 0x1E3779B97F4A7C15
        z = x
        z = (z ^ ((z >> 30) & 0x3FFFFFFFF)) * 0x3F58476D1CE4E5B9
        z = (z ^ ((z >> 27) & 0x1FFFFFFFFF)) * 0x14D049BB133111EB
        data[pfn, i] = z ^ ((z >> 31) & 0x1FFFFFFFF)
    return page_checksum(data, pfn)


@njit(cache=True, nogil=True, inline="always")
def zone_of(mm, pfn):
    """Row of the zone arrays that ``pfn`` belongs to (from page->flags, like page_zone)."""
    return ((mm[pfn, Z.PG_FLAGS] >> Z.ZONES_PGSHIFT) & Z.ZONES_MASK) - ZONE_IDX_BASE


@helper
def alloc_page(mm, pb, fl2, zn2, lk2, pcp2, nz, w, mt, cnt, ctl, co):
    """alloc_pages(order 0): walk the zonelist (ZONE_MOVABLE first for movable requests).

    -1 no memory, -2 aborted.
    """
    pfn = -1
    if mt == Z.MIGRATE_MOVABLE and nz > 1:
        pfn = P.pcp_alloc(mm, pb, fl2[1], zn2[1], lk2[1], pcp2[1], w, 0, mt, cnt, ctl,
                          co + CO_PCP, -1)
        if pfn == -2:
            return -2
    if pfn == -1:
        pfn = P.pcp_alloc(mm, pb, fl2[0], zn2[0], lk2[0], pcp2[0], w, 0, mt, cnt, ctl,
                          co + CO_PCP, -1)
    return pfn


@helper
def free_page(mm, pb, fl2, zn2, lk2, pcp2, w, pfn, cnt, ctl, co):
    """free_unref_page into the page's own zone.  0, or -2 aborted (page may be freed)."""
    z = zone_of(mm, pfn)
    return P.pcp_free(mm, pb, fl2[z], zn2[z], lk2[z], pcp2[z], w, pfn, 0, cnt, ctl, co + CO_PCP)


@helper
def owned_alloc(mm, pb, fl2, zn2, lk2, pcp2, nz, held, chk, owner, data, w, slot, mt, pin,
                seed, cnt, ctl, co):
    """Allocate a page into the empty ``slot``, write its contents, publish it.  pfn, -1, -2."""
    pfn = alloc_page(mm, pb, fl2, zn2, lk2, pcp2, nz, w, mt, cnt, ctl, co)
    if pfn < 0:
        return pfn
    if pin:
        mm[pfn, Z.PG_REFCOUNT] = 2
    chk[slot] = fill_page(data, pfn, seed)
    owner[pfn] = slot + 1
    store_release(held, slot, pfn)
    return pfn


@helper
def owned_free(mm, pb, fl2, zn2, lk2, pcp2, held, chk, owner, data, w, slot, cnt, ctl, co):
    """Free the page in ``slot`` after checking its contents.  1 freed, 0 slot busy, -2 aborted."""
    e = load_acquire(held, slot)
    if e < 0:
        return 0
    if cas(held, slot, e, BUSY) != e:
        return 0                       # a migrator claimed it first
    if page_checksum(data, e) != chk[slot]:
        cnt[w, co + CO_DATA_CORRUPT] += 1
    owner[e] = 0
    mm[e, Z.PG_REFCOUNT] = 1           # unpin_user_page, then the last put frees
    r = free_page(mm, pb, fl2, zn2, lk2, pcp2, w, e, cnt, ctl, co)
    if r == -2 and mm[e, Z.PG_REFCOUNT] != 0:
        owner[e] = slot + 1
        store_release(held, slot, e)
        return -2
    store_release(held, slot, -1)
    return -2 if r == -2 else 1


@helper
def churn_step(mm, pb, fl2, zn2, lk2, pcp2, nz, held, chk, owner, data, wst, state, state_idx,
               cnt, ctl, w, n, cap, target, unmov_ppm, pin_ppm, co):
    """About ``n`` alloc/free ops of worker w keeping ``target`` owned pages.

    Each op is timed with the cycle counter and filed under "pcp enabled" or "pcp disabled"
    by reading ``state[state_idx]`` (set by the hotplug worker while zone_pcp_disable is in
    force; pass state_idx < 0 for no split).  Returns the ops done.
    """
    done = 0
    hb = w * cap
    while done < n:
        off = state_idx >= 0 and load_relaxed(state, state_idx) != 0
        t0 = rdtsc()
        nh = wst[w, S_NHELD]
        r = rng_next(wst, w)
        j = r % cap
        if nh < target:
            steps = 0
            while load_relaxed(held, hb + j) != -1 and steps < cap:
                j = j + 1 if j + 1 < cap else 0
                steps += 1
            if steps < cap:
                rr = rng_next(wst, w)
                mt = Z.MIGRATE_MOVABLE
                if rr % 1000000 < unmov_ppm:
                    mt = Z.MIGRATE_UNMOVABLE
                pin = mt == Z.MIGRATE_MOVABLE and (rr >> 20) % 1000000 < pin_ppm
                pfn = owned_alloc(mm, pb, fl2, zn2, lk2, pcp2, nz, held, chk, owner, data, w,
                                  hb + j, mt, pin, rr, cnt, ctl, co)
                if pfn == -2:
                    return done
                if pfn >= 0:
                    wst[w, S_NHELD] = nh + 1
                    cnt[w, co + CO_OPS_ALLOC] += 1
                else:
                    cnt[w, co + CO_ALLOC_FAIL] += 1
        else:
            steps = 0
            while load_relaxed(held, hb + j) < 0 and steps < cap:
                j = j + 1 if j + 1 < cap else 0
                steps += 1
            if steps < cap:
                f = owned_free(mm, pb, fl2, zn2, lk2, pcp2, held, chk, owner, data, w, hb + j,
                               cnt, ctl, co)
                if f == 1 or f == -2:
                    if load_relaxed(held, hb + j) == -1:
                        wst[w, S_NHELD] = nh - 1
                        cnt[w, co + CO_OPS_FREE] += 1
                if f == -2:
                    return done
        dt = rdtsc() - t0
        if off:
            cnt[w, co + CO_OPS_PCP_OFF] += 1
            cnt[w, co + CO_CYC_PCP_OFF] += dt
        else:
            cnt[w, co + CO_OPS_PCP_ON] += 1
            cnt[w, co + CO_CYC_PCP_ON] += dt
        done += 1
        wst[w, S_OPS] += 1
    return done


@helper
def mark_owned(mm, held, chk, owner, data, mark, errs):
    """Mark every owned page; errors [code, slot, pfn]: 1 refcount, 2 checksum, 3 rmap, 4 dup, 5 busy."""
    n = 0
    for s in range(held.shape[0]):
        e = held[s]
        if e == -1:
            continue
        code = 0
        if e < 0:
            code = 5
        elif mm[e, Z.PG_REFCOUNT] < 1 or (mm[e, Z.PG_FLAGS] & Z.PGF_BUDDY) != 0:
            code = 1
        elif page_checksum(data, e) != chk[s]:
            code = 2
        elif owner[e] != s + 1:
            code = 3
        if e >= 0:
            mark[e] += 1
            if mark[e] > 1 and code == 0:
                code = 4
        if code != 0:
            if n < errs.shape[0]:
                errs[n, 0], errs[n, 1], errs[n, 2] = code, s, e
            n += 1
    return n


_OWNED_ERR = {1: "owned page {1} (slot {0}) has no reference or is PageBuddy",
              2: "owned page {1} (slot {0}): contents do not match the checksum (data lost)",
              3: "owned page {1} (slot {0}): the reverse map does not point back",
              4: "owned page {1} (slot {0}) is also free or owned twice",
              5: "slot {0} left claimed (BUSY)"}


def owned_check(mm, held, chk, owner, data, mark) -> list[str]:
    errs = np.zeros((16, 3), np.int64)
    n = mark_owned(mm, held, chk, owner, data, mark, errs)
    out = [_OWNED_ERR[int(c)].format(int(s), int(e)) for c, s, e in errs[:min(n, 16)]]
    if n > 16:
        out.append(f"... and {n - 16} more owned-page errors")
    return out


def owned_reset(held, chk, owner, data, wst, seed: int) -> None:
    held[:] = -1
    chk[:] = 0
    owner[:] = 0
    data[:] = 0
    wst[:] = 0
    rng = np.random.default_rng(seed)
    wst[:, S_RNG] = rng.integers(1, 1 << 62, wst.shape[0])


def latency_hist(counts, unit: str = "cycles") -> dict:
    return {"unit": unit, "bucket_log2_base": 0, "counts": [int(x) for x in counts]}

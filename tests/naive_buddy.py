"""A slow, obvious buddy allocator in pure Python: the reference for mmbench.models.zone.

State is dictionaries and Python lists, not a memmap: ``blocks[pfn] = (order, mt)`` for every
free block head, ``lists[(order, mt)]`` a Python list (index 0 = head), ``pbmt[pfn >> 9]`` the
pageblock migratetypes and ``used[pfn] = (order, mt)`` for allocated blocks.  The rules are
the ones KERNEL_ALGORITHMS.md states (6.10 buddy, fallback stealing, tail insertion), written
as directly as possible so that a disagreement points at the fast version.
"""
from __future__ import annotations

MAX_ORDER = 10
PB_ORDER = 9
PB_PAGES = 1 << PB_ORDER
UNMOVABLE, MOVABLE, RECLAIMABLE, HIGHATOMIC, CMA, ISOLATE = range(6)
FALLBACKS = {UNMOVABLE: (RECLAIMABLE, MOVABLE), MOVABLE: (RECLAIMABLE, UNMOVABLE),
             RECLAIMABLE: (UNMOVABLE, MOVABLE)}


class NaiveBuddy:
    def __init__(self, start: int, end: int, holes=()):
        self.start, self.end = start, end
        self.blocks: dict[int, tuple[int, int]] = {}
        self.lists: dict[tuple[int, int], list[int]] = {}
        self.used: dict[int, tuple[int, int]] = {}
        self.pbmt: dict[int, int] = {}
        present = [p for p in range(start, end) if not any(a <= p < b for a, b in holes)]
        for p in present:
            self.pbmt[p >> PB_ORDER] = MOVABLE
        # hand each present run to the allocator in the largest aligned blocks, to the tail
        runs, run = [], []
        for p in present:
            if run and p != run[-1] + 1:
                runs.append(run)
                run = []
            run.append(p)
        if run:
            runs.append(run)
        for run in runs:
            pfn, e = run[0], run[-1] + 1
            while pfn < e:
                order = MAX_ORDER
                while order > 0 and (pfn % (1 << order) or pfn + (1 << order) > e):
                    order -= 1
                self._free(pfn, order, self.mt_of(pfn), to_tail=True)
                pfn += 1 << order

    # --- helpers ---
    def mt_of(self, pfn):
        return self.pbmt[pfn >> PB_ORDER]

    def _add(self, pfn, order, mt, tail):
        self.blocks[pfn] = (order, mt)
        lst = self.lists.setdefault((order, mt), [])
        if tail:
            lst.append(pfn)
        else:
            lst.insert(0, pfn)

    def _del(self, pfn):
        order, mt = self.blocks.pop(pfn)
        self.lists[(order, mt)].remove(pfn)

    def _is_buddy(self, pfn, order):
        if pfn < self.start or pfn + (1 << order) > self.end:
            return False
        return pfn in self.blocks and self.blocks[pfn][0] == order

    def _expand(self, pfn, low, high, mt):
        while high > low:
            high -= 1
            self._add(pfn + (1 << high), high, mt, tail=False)

    def _smallest(self, order, mt):
        for o in range(order, MAX_ORDER + 1):
            lst = self.lists.get((o, mt))
            if lst:
                pfn = lst[0]
                self._del(pfn)
                self._expand(pfn, order, o, mt)
                return pfn
        return -1

    def _can_steal(self, order, start_mt):
        return order >= PB_ORDER // 2 or start_mt in (UNMOVABLE, RECLAIMABLE)

    def _find_fallback(self, order, start_mt):
        for f in FALLBACKS[start_mt]:
            if self.lists.get((order, f)):
                return f
        return -1

    def _fallback(self, order, start_mt):
        found = None
        for co in range(MAX_ORDER, order - 1, -1):
            f = self._find_fallback(co, start_mt)
            if f == -1:
                continue
            can = self._can_steal(co, start_mt)
            found = (co, f, can)
            if not can and start_mt == MOVABLE and co > order:
                for co2 in range(order, MAX_ORDER + 1):
                    f2 = self._find_fallback(co2, start_mt)
                    if f2 != -1:
                        found = (co2, f2, self._can_steal(co2, start_mt))
                        break
            break
        if found is None:
            return -1
        co, f, can = found
        pfn = self.lists[(co, f)][0]
        if co >= PB_ORDER:
            self._del(pfn)
            for b in range(pfn, pfn + (1 << co), PB_PAGES):
                self.pbmt[b >> PB_ORDER] = start_mt
            self._expand(pfn, order, co, start_mt)
            return pfn
        if can:
            s = pfn - pfn % PB_PAGES
            if s >= self.start and s + PB_PAGES <= self.end:
                free_pages = sum(1 << o for p, (o, _) in self.blocks.items() if s <= p < s + PB_PAGES)
                movable = sum(1 for p, (o, m) in self.used.items()
                              if s <= p < s + PB_PAGES and m == MOVABLE)
                if start_mt == MOVABLE:
                    alike = movable
                elif f == MOVABLE:
                    alike = PB_PAGES - free_pages - movable
                else:
                    alike = 0
                if free_pages + alike >= PB_PAGES // 2:
                    for p in sorted(p for p in self.blocks if s <= p < s + PB_PAGES):
                        o, m = self.blocks[p]
                        self._del(p)
                        self._add(p, o, start_mt, tail=True)
                    self.pbmt[s >> PB_ORDER] = start_mt
                    return self._smallest(order, start_mt)
        self._del(pfn)
        self._expand(pfn, order, co, f)
        return pfn

    def _free(self, pfn, order, mt, to_tail=False):
        while order < MAX_ORDER:
            buddy = pfn ^ (1 << order)
            if not self._is_buddy(buddy, order):
                break
            bmt = self.mt_of(buddy)
            if order >= PB_ORDER and mt != bmt and (mt >= 3 or bmt >= 3):
                break
            self._del(buddy)
            if bmt != mt:
                self.pbmt[buddy >> PB_ORDER] = mt
            pfn = min(pfn, buddy)
            order += 1
        if not to_tail and order < MAX_ORDER - 1:
            parent = pfn & ~((1 << (order + 1)) - 1)
            to_tail = self._is_buddy(parent ^ (1 << (order + 1)), order + 1)
        self._add(pfn, order, mt, to_tail)

    # --- public ---
    def free_pages(self):
        return sum(1 << o for o, m in self.blocks.values() if m != ISOLATE)

    def free_cma(self):
        return sum(1 << o for o, m in self.blocks.values() if m == CMA)

    def alloc(self, order, mt):
        pfn = -1
        if mt == MOVABLE and self.free_cma() > self.free_pages() // 2:
            pfn = self._smallest(order, CMA)
        if pfn < 0:
            pfn = self._smallest(order, mt)
        if pfn < 0 and mt == MOVABLE:
            pfn = self._smallest(order, CMA)
        if pfn < 0 and mt < 3:
            pfn = self._fallback(order, mt)
        if pfn >= 0:
            self.used[pfn] = (order, mt)
        return pfn

    def free(self, pfn):
        order, _ = self.used.pop(pfn)
        self._free(pfn, order, self.mt_of(pfn))

    def nr_free(self):
        counts = [0] * (MAX_ORDER + 1)
        for o, _ in self.blocks.values():
            counts[o] += 1
        return counts

    def list_snapshot(self):
        return {k: list(v) for k, v in self.lists.items() if v}


S = 5   # CONFIG_PCP_BATCH_SCALE_MAX


class NaivePCP:
    """One CPU's per_cpu_pages over a NaiveBuddy, written straight from KERNEL_ALGORITHMS.md.

    ``classic`` (5.13): order-0 lists per migratetype, refill/drain ``batch``.  ``version``
    "5.14" (5.14-5.17) / "5.18" (5.18-6.6): 14 lists, refill max(batch >> order, 2), drains
    scaled by free_factor, 5.18's free_high, two-pass (5.14) or one-pass (5.18) bulk free.
    Otherwise the 6.7 code: nr_pcp_alloc / nr_pcp_high / nr_pcp_free, decay.  ``locks``
    counts zone->lock acquisitions; ``refills``, ``drains`` and ``free_highs`` the events.
    """

    def __init__(self, buddy: NaiveBuddy, classic: bool, batch: int, high_min: int, high_max: int,
                 wmark_high: int, version: str = "6.7", free_high_batch: bool = False):
        self.b, self.classic = buddy, classic
        self.version = "5.13" if classic else version
        self.free_factor = 0
        self.fhb = free_high_batch
        self.refills = self.drains = self.free_highs = 0
        self.batch, self.high_min, self.high_max = batch, high_min, high_max
        self.high = high_min
        self.count = 0
        self.free_count = 0
        self.alloc_factor = 0
        self.prev_free_high = False
        self.lists = [[] for _ in range(14)]
        self.locks = 0
        self.below_high = False
        self.wmark_high = wmark_high

    @staticmethod
    def pindex(mt, order):
        if order > 3:
            return 12 + (mt == MOVABLE)
        return 3 * order + mt

    @staticmethod
    def porder(i):
        return 9 if i >= 12 else i // 3

    def _bulk(self, order, n, mt, lst):
        self.locks += 1
        self.refills += 1
        got = 0
        for _ in range(n):
            pfn = self.b.alloc(order, mt)
            if pfn < 0:
                break
            self.b.used.pop(pfn)          # on a pcp list: neither free nor used
            lst.append(pfn)
            got += 1
        return got

    def _buddy_free(self, pfn, order):
        self.b.used[pfn] = (order, None)
        self.b.free(pfn)

    def _drain(self, count, pindex):
        count = min(self.count, count)
        if count <= 0:
            return
        self.locks += 1
        i = pindex - 1
        while count > 0:
            while True:
                i = 0 if i + 1 > 13 else i + 1
                if self.lists[i]:
                    break
            o = self.porder(i)
            while True:
                pfn = self.lists[i].pop()
                count -= 1 << o
                self.count -= 1 << o
                self._buddy_free(pfn, o)
                if count <= 0 or not self.lists[i]:
                    break

    def _drain_classic(self, count):
        count = min(self.count, count)
        mt, batch_free, picked = 0, 0, []
        while count > 0:
            while True:
                batch_free += 1
                mt = (mt + 1) % 3
                if self.lists[mt]:
                    break
            if batch_free == 3:
                batch_free = count
            while True:
                picked.append(self.lists[mt].pop())
                self.count -= 1
                count -= 1
                batch_free -= 1
                if count == 0 or batch_free == 0 or not self.lists[mt]:
                    break
        self.locks += 1
        for pfn in reversed(picked):
            self._buddy_free(pfn, 0)

    def _drain_v514(self, count):
        count = min(self.count, count)
        if count <= 0:
            return
        i, batch_free, picked = 0, 0, []
        while count > 0:
            while True:
                batch_free += 1
                i = (i + 1) % 14
                if self.lists[i]:
                    break
            if batch_free == 14:
                batch_free = count
            o = self.porder(i)
            while True:
                picked.append((self.lists[i].pop(), o))
                count -= 1 << o
                self.count -= 1 << o
                batch_free -= 1
                if count <= 0 or batch_free == 0 or not self.lists[i]:
                    break
        self.locks += 1
        for pfn, o in picked:          # in pick order (list_add_tail onto the local list)
            self._buddy_free(pfn, o)

    def _alloc_v514(self, order, mt):
        if not (order <= 3 or order == 9):
            self.locks += 1
            return self.b.alloc(order, mt)
        self.free_factor >>= 1
        lst = self.lists[self.pindex(mt, order)]
        n = 0
        if not lst:
            n = self.batch
            if n > 1:
                n = max(n >> order, 2)
        return self._take(order, mt, lst, n)

    def _take(self, order, mt, lst, n):
        """Refill ``lst`` with ``n`` blocks when it is empty (n > 0), then take its head."""
        if not lst:
            got = self._bulk(order, n, mt, lst)
            self.count += got << order
            if not got:
                self.locks += 1
                return self.b.alloc(order, mt)
        pfn = lst.pop(0)
        self.count -= 1 << order
        self.b.used[pfn] = (order, mt)
        return pfn

    def _free_v514(self, i, order):
        batch = self.batch
        free_high = self.version == "5.18" and self.free_factor > 0 and 1 <= order <= 3
        high = 0 if (self.high == 0 or free_high) else self.high
        if self.count >= high:
            self.drains += 1
            if free_high:
                self.free_highs += 1
                n = self.count
            elif high < batch:
                n = 1
            else:
                b = batch << self.free_factor
                if b < high - batch:
                    self.free_factor += 1
                n = min(max(b, batch), high - batch)
            if self.version == "5.14":
                self._drain_v514(n)
            else:
                self._drain(n, i)

    def _clamp_high(self):
        self.high = min(max(self.high, self.high_min), self.high_max)
        return self.high

    def alloc(self, order, mt):
        if self.classic:
            if order:
                self.locks += 1
                return self.b.alloc(order, mt)
            lst = self.lists[mt]
            if not lst:
                self.count += self._bulk(0, self.batch, mt, lst)
                if not lst:
                    return -1
            self.count -= 1
            pfn = lst.pop(0)
            self.b.used[pfn] = (0, mt)
            return pfn
        if self.version in ("5.14", "5.18"):
            return self._alloc_v514(order, mt)
        if not self.below_high and self.b.free_pages() - (1 << order) <= self.wmark_high:
            self.below_high = True
        if not (order <= 3 or order == 9):
            self.locks += 1
            return self.b.alloc(order, mt)
        self.free_count >>= 1
        lst = self.lists[self.pindex(mt, order)]
        if not lst:
            high = self._clamp_high()
            if high < self.batch:
                n = 1
            else:
                n = self.batch if order else self.batch << self.alloc_factor
                if self.high_min != self.high_max and not self.below_high:
                    self.high = high = min(high + n, self.high_max)
                if not order:
                    mx = max(high - self.count - self.batch, self.batch)
                    if n <= mx and self.alloc_factor < S:
                        self.alloc_factor += 1
                    n = min(n, mx)
                if n > 1:
                    n = max(n >> order, 2)
        return self._take(order, mt, lst, n if not lst else 0)

    def free(self, pfn):
        order, _ = self.b.used[pfn]
        mt = self.b.mt_of(pfn)
        if (self.classic and order) or not (order <= 3 or order == 9) or mt == ISOLATE:
            self.locks += 1
            self.b.free(pfn)
            return
        self.b.used.pop(pfn)
        if mt >= 3:
            mt = MOVABLE
        i = self.pindex(mt, order)
        self.lists[i].insert(0, pfn)
        self.count += 1 << order
        if self.classic:
            if self.count >= self.high:
                self.drains += 1
                self._drain_classic(self.batch)
            return
        if self.version in ("5.14", "5.18"):
            self._free_v514(i, order)
            return
        self.alloc_factor >>= 1
        batch = self.batch
        free_high = False
        if 1 <= order <= 3:
            free_high = (self.free_count >= batch and self.prev_free_high
                         and (not self.fhb or self.count >= batch))
            self.prev_free_high = True
        else:
            self.prev_free_high = False
        if self.free_count < batch << S:
            self.free_count += 1 << order
        # nr_pcp_high
        high = self._clamp_high()
        if high == 0:
            pass
        elif free_high:
            self.high = max(high - (batch << S), self.high_min)
            high = 0
        elif self.high_min != self.high_max:
            if self.below_high:
                self.high = max(high - max(self.free_count, batch), self.high_min)
                high = max(self.count, self.high_min)
            elif self.count >= high and self.high < self.free_count + batch:
                self.high = min(max(self.free_count + batch, self.high_min), self.high_max)
        if self.count >= high:
            self.drains += 1
            self.free_highs += free_high
            if free_high:
                n = min(self.count, batch << S)
            elif high < batch:
                n = 1
            else:
                n = min(max(self.free_count, batch), high - batch)
            self._drain(n, i)
            if self.below_high and self.b.free_pages() > self.wmark_high:
                self.below_high = False

    def decay(self):
        if self.high > self.high_min:
            self.high = max(self.count - (self.batch << S), self.high - (self.high >> 3),
                            self.high_min)
        if self.count - self.high > 0:
            self.drains += 1
            self._drain(self.count - self.high, 0)

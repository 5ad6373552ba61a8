"""A slow, obviously correct frame allocator to check LLFree against.

It knows nothing of trees, children or reservations: a boolean per frame and a
dict of live allocations.  Its questions are the ones LLFree's guarantees are
stated in: is there any free block of 2^order frames aligned to 2^order?  Would
a put of (pfn, order) find every frame allocated, and not inside a huge frame?
"""
from __future__ import annotations

import numpy as np

HUGE_ORDER = 9


class NaiveFrames:
    def __init__(self, nframes: int):
        self.nframes = nframes
        self.used = np.zeros(nframes, dtype=bool)
        self.live: dict[int, int] = {}          # first pfn -> order

    def has_free_block(self, order: int) -> bool:
        n = 1 << order
        return bool((~self.used.reshape(-1, n).any(axis=1)).any())

    def is_free_block(self, pfn: int, order: int) -> bool:
        n = 1 << order
        return (pfn % n == 0 and 0 <= pfn and pfn + n <= self.nframes
                and not self.used[pfn:pfn + n].any())

    def get(self, pfn: int, order: int) -> None:
        assert self.is_free_block(pfn, order), (pfn, order)
        self.used[pfn:pfn + (1 << order)] = True
        self.live[pfn] = order

    def put_would_succeed(self, pfn: int, order: int) -> bool:
        """What a bitmap allocator with huge frames must answer for put(pfn, order)."""
        n = 1 << order
        if not (0 <= order <= HUGE_ORDER) or pfn < 0 or pfn % n or pfn + n > self.nframes:
            return False
        if order == HUGE_ORDER:
            return self.live.get(pfn) == HUGE_ORDER
        if not self.used[pfn:pfn + n].all():
            return False
        huge = pfn - pfn % (1 << HUGE_ORDER)
        return self.live.get(huge) != HUGE_ORDER

    def put(self, pfn: int, order: int) -> None:
        assert self.live.get(pfn) == order, (pfn, order)
        del self.live[pfn]
        self.used[pfn:pfn + (1 << order)] = False

    def free_frames(self) -> int:
        return int(self.nframes - np.count_nonzero(self.used))

    def free_huge(self) -> int:
        return int((~self.used.reshape(-1, 1 << HUGE_ORDER).any(axis=1)).sum())

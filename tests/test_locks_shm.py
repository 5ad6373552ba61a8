"""Lock counters and the arena's attach-by-name path."""
import multiprocessing

import numpy as np
import pytest
from numba import njit

from mmbench.ctl import (C_LOCK_ACQ, C_LOCK_CONTENDED, C_LOCK_HANDOVER, CTL_ABORT, CTL_WORDS,
                         N_LOCK_COUNTERS, counter_columns)
from mmbench.locks import MCS, TICKET, TTAS, init_lockset, lock_owner, lockset_words, spin_lock, spin_unlock
from mmbench.shm import Arena, Layout, leaked_segments


@njit
def _acquire_release(lk, w, cnt, ctl, times):
    for _ in range(times):
        if not spin_lock(lk, 0, w, cnt, ctl):
            return False
        spin_unlock(lk, 0, w, cnt)
    return True


@njit
def _try_lock(lk, w, cnt, ctl):
    return spin_lock(lk, 0, w, cnt, ctl)


@pytest.mark.parametrize("kind", [TTAS, TICKET, MCS])
def test_handovers_count_changes_of_holder(kind):
    lk = np.zeros(lockset_words(1, 2), np.int64)
    init_lockset(lk, 1, 2, kind)
    cnt = np.zeros((2, counter_columns(0)), np.int64)
    ctl = np.zeros(CTL_WORDS, np.int64)
    for w, times in ((0, 3), (1, 1), (0, 2), (1, 4)):
        assert _acquire_release(lk, w, cnt, ctl, times)
    assert cnt[:, C_LOCK_ACQ].tolist() == [5, 5]
    # holders: 0 0 0 1 0 0 1 1 1 1 -> changes at 1st, 4th, 5th, 7th acquisitions
    assert cnt[:, C_LOCK_HANDOVER].tolist() == [2, 2]
    assert cnt[:, C_LOCK_CONTENDED].sum() == 0
    assert lock_owner(lk, 0) == -1


@pytest.mark.parametrize("kind", [TTAS, TICKET, MCS])
def test_a_waiter_gives_up_when_the_run_is_aborted(kind):
    lk = np.zeros(lockset_words(1, 2), np.int64)
    init_lockset(lk, 1, 2, kind)
    cnt = np.zeros((2, counter_columns(0)), np.int64)
    ctl = np.zeros(CTL_WORDS, np.int64)
    assert _try_lock(lk, 0, cnt, ctl)          # worker 0 holds it (and "dies")
    assert lock_owner(lk, 0) == 0
    ctl[CTL_ABORT] = 1
    assert not _try_lock(lk, 1, cnt, ctl)      # worker 1 would spin forever otherwise
    assert cnt[1, C_LOCK_ACQ] == 0


def _spawned_child(name, layout):
    a = Arena.attach(name, layout)
    a.arrays["x"][3] = 42
    a.arrays = {}
    a.close()


def test_attach_by_name_from_a_spawned_process_does_not_unlink():
    layout = Layout([("x", (16,), np.int64)])
    before = set(leaked_segments())
    with Arena.create(layout) as arena:
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(target=_spawned_child, args=(arena.name, layout))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert arena.arrays["x"][3] == 42
        # The child's exit must not have unlinked the parent's segment.
        assert arena.name in leaked_segments()
    assert set(leaked_segments()) == before


def test_layout_alignment():
    layout = Layout([("a", (3,), np.int64), ("b", (1000,), np.int64), ("c", (5,), np.uint16)])
    offs = {f.name: f.offset for f in layout.fields}
    assert offs["a"] % 64 == 0 and offs["b"] % 4096 == 0 and offs["c"] % 64 == 0
    assert len({o // 64 for o in offs.values()}) == 3
    with pytest.raises(ValueError):
        Layout([("a", 1, np.int64), ("a", 2, np.int64)])

"""Lock and counter scalability: will-it-scale's lock tests on the platform's atomics.

Variants (each op = one pass of the loop body below):

* ``private``     each worker bumps its own counter (relaxed ``lock xadd`` on its own
                  line): the linear-scaling reference.
* ``shared-add``  every worker ``lock xadd``s one shared word: the cache line bounces.
* ``ttas`` / ``ticket`` / ``mcs``  the lock of that kind around a plain increment of a
                  shared counter (read, add, write: only mutual exclusion makes it exact).

``cs_work`` iterations of dependent arithmetic run inside the critical section and
``outside_work`` outside it, so a sweep can move from lock-bound to parallel.

Invariant: the shared counter equals the ops the workers report (a lost update
means the lock failed to exclude), and each private counter equals its worker's ops.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..atomics import fetch_add, load_relaxed, store_relaxed
from ..ctl import CTL_STOP, LINE_WORDS, N_LOCK_COUNTERS
from ..jit import kernel
from ..locks import LOCK_KINDS, init_lockset, lockset_words
from ..locks import spin_lock_inline as spin_lock
from ..locks import spin_unlock_inline as spin_unlock
from ..model import ArraySpec, Model, Param

V_PRIVATE, V_SHARED_ADD, V_LOCKED = 0, 1, 2
C_OPS = N_LOCK_COUNTERS          # ops done by this worker (model counter 0)
C_SINK = N_LOCK_COUNTERS + 1     # keeps the work loops from being optimised away


@njit(cache=True, nogil=True, inline="always")
def _work(x, n):
    # A dependent xorshift chain: n iterations the compiler cannot fold.
    for _ in range(n):
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
    return x


@kernel
def lock_kernel(kind, lk, shared, priv, cnt, ctl, w, n, cs_work, outside_work):
    """Run n ops of variant ``kind``; returns ops done (fewer if the run was aborted)."""
    x = np.int64(w + 0x9E3779B97F4A7C15)
    done = 0
    for _ in range(n):
        # Stop between ops, not only between batches: a batch sized while the workers ran
        # freely can take minutes once oversubscribed FIFO locks convoy (each hand-over
        # then waits for a preempted waiter's time slice).
        if load_relaxed(ctl, CTL_STOP) != 0:
            break
        if kind == V_PRIVATE:
            fetch_add(priv, w * LINE_WORDS * 2, 1)
            x = _work(x, cs_work)
        elif kind == V_SHARED_ADD:
            fetch_add(shared, 0, 1)
            x = _work(x, cs_work)
        else:
            if not spin_lock(lk, 0, w, cnt, ctl):
                break
            # A plain read-modify-write: exact only under mutual exclusion.
            v = load_relaxed(shared, 0)
            x = _work(x, cs_work)
            store_relaxed(shared, 0, v + 1)
            spin_unlock(lk, 0, w, cnt)
        x = _work(x, outside_work)
        done += 1
    cnt[w, C_OPS] += done
    cnt[w, C_SINK] ^= x
    return done


class LockBench(Model):
    name = "locks"
    description = "lock and counter scalability: private/shared counters, TTAS/ticket/MCS locks"
    variants = {
        "private": {"variant_kind": "private"},
        "shared-add": {"variant_kind": "shared-add"},
        "ttas": {"variant_kind": "locked", "lock": "ttas"},
        "ticket": {"variant_kind": "locked", "lock": "ticket"},
        "mcs": {"variant_kind": "locked", "lock": "mcs"},
    }
    params = {
        "variant_kind": Param(str, "locked", choices=("private", "shared-add", "locked"),
                              help="set by the variant"),
        "lock": Param(str, "ttas", choices=tuple(LOCK_KINDS), help="lock kind for locked variants"),
        "cs_work": Param(int, 0, 0, 100_000, help="dependent work iterations inside the critical section"),
        "outside_work": Param(int, 0, 0, 1_000_000, help="work iterations outside the lock"),
    }
    counter_names = ("ops", "sink")

    def layout(self, p, nworkers):
        return [
            ArraySpec("lk", (lockset_words(1, nworkers),)),
            ArraySpec("shared", (LINE_WORDS,)),
            ArraySpec("priv", (nworkers * LINE_WORDS * 2,)),
        ]

    def setup(self, arrays, p, nworkers, seed):
        init_lockset(arrays["lk"], 1, nworkers, LOCK_KINDS[p["lock"]])
        arrays["shared"][:] = 0
        arrays["priv"][:] = 0

    def _kind(self, p):
        return {"private": V_PRIVATE, "shared-add": V_SHARED_ADD, "locked": V_LOCKED}[p["variant_kind"]]

    def compile(self, p):
        # Zero ops on scratch arrays: compiles (or loads) without entering a spin path.
        lk = np.zeros(lockset_words(1, 1), np.int64)
        init_lockset(lk, 1, 1, 0)
        lock_kernel(0, lk, np.zeros(8, np.int64), np.zeros(16, np.int64),
                    np.zeros((1, 16), np.int64), np.zeros(48, np.int64), 0, 0, 0, 0)

    def worker_init(self, arrays, p, worker, nworkers):
        return (self._kind(p), arrays["lk"], arrays["shared"], arrays["priv"], arrays["counters"],
                arrays["ctl"], worker, p["cs_work"], p["outside_work"])

    def step(self, ctx, n):
        kind, lk, shared, priv, cnt, ctl, w, cs, out = ctx
        return lock_kernel(kind, lk, shared, priv, cnt, ctl, w, n, cs, out)

    def check(self, arrays, p, nworkers):
        cnt = arrays["counters"]
        ops = cnt[:, C_OPS]
        errors = []
        kind = self._kind(p)
        if kind == V_PRIVATE:
            for w in range(nworkers):
                got = int(arrays["priv"][w * LINE_WORDS * 2])
                if got != ops[w]:
                    errors.append(f"worker {w}: private counter {got} != ops {int(ops[w])}")
        else:
            got = int(arrays["shared"][0])
            if got != int(ops.sum()):
                errors.append(f"shared counter {got} != total ops {int(ops.sum())}: "
                              f"{int(ops.sum()) - got} updates lost")
        if kind == V_LOCKED and int(cnt[:, 0].sum()) != int(ops.sum()):
            errors.append("lock acquisitions do not match ops")
        return errors

    def report(self, arrays, p, nworkers):
        cnt = arrays["counters"]
        return {"counters": {"sink": [0] * nworkers}}  # the sink is noise, not data

"""ns per alloc+free pair, repeat order 0, one worker, through the model's step.

    python tests/benchmarks/pairs.py SRC_DIR

SRC_DIR is a checkout of mmbench (any version with pagealloc's repeat workload), so a commit
before a change and one after can be measured alike, e.g. with ``git worktree add /tmp/old
REV``.  Prints {pair: [median, min, max]} in ns over 30 batches of 20 000 ops.
"""
import sys, time, statistics, json
sys.path.insert(0, sys.argv[1])
import numpy as np
from mmbench.ctl import CTL_WORDS
from mmbench.models.pagealloc import PageAllocModel
m = PageAllocModel()
out = {}
for name, var, aged in [("pcp-classic", "pcp-classic", 0.25), ("pcp-5.14", "pcp-5.14", 0.25),
                        ("pcp-5.18", "pcp-5.18", 0.25), ("pcp-autotune", "pcp-autotune", 0.25),
                        ("buddy (aged zone)", "buddy", 0.25), ("buddy split+merge (pristine)", "buddy", 0.0),
                        ("llfree", "llfree", 0.25)]:
    p = m.resolve(var, {"workload": "repeat", "order": 0, "nframes": 1 << 16, "sweep_max_workers": 1,
                        "max_workers": 32, "aged_blocks": aged, "llc_slice_kib": 512})
    a = {s.name: np.zeros(s.shape, s.dtype) for s in m.layout(p, 1)}
    a["ctl"] = np.zeros(CTL_WORDS, np.int64)
    a["counters"] = np.zeros((1, m.counter_columns()), np.int64)
    m.setup(a, p, 1, 1); m.compile(p)
    ctx = m.worker_init(a, p, 0, 1)
    while a["pa_wst"][0, 0] != 1: m.step(ctx, 20000)
    m.step(ctx, 20000)
    ts = []
    for _ in range(30):
        t = time.perf_counter(); m.step(ctx, 20000); ts.append(time.perf_counter() - t)
    ns = [x / 20000 * 2e9 for x in ts]
    out[name] = (round(statistics.median(ns), 1), round(min(ns), 1), round(max(ns), 1))
    assert m.check(a, p, 1) == []
print(json.dumps(out))

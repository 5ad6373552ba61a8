import os
import sys

import pytest

# tests/ holds helper modules (naive references, misbehaving models) imported by name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BENCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "benchmarks")


def pytest_collection_modifyitems(config, items):
    """Micro-benchmarks run only when asked for (--benchmark-only): not in the test budget."""
    if config.getoption("benchmark_only", default=False):
        return
    skip = pytest.mark.skip(reason="micro-benchmark: python -m pytest tests/benchmarks --benchmark-only")
    for item in items:
        if str(item.fspath).startswith(BENCH_DIR):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _pagealloc_drivers_compiled(request):
    """Compile every pagealloc driver once, in parallel processes, before the tests that use
    them (a clean CI cache would otherwise compile 49 drivers one after another)."""
    names = {os.path.basename(str(i.fspath)) for i in request.session.items}
    if not names & {"test_pagealloc.py", "test_drivers.py"} or \
            request.config.getoption("benchmark_only", default=False):
        return
    from mmbench.drivers import Unit, precompile
    from mmbench.harness import allowed_cpus
    from mmbench.models.pagealloc import ALLOCATORS, WORKLOADS, PageAllocModel
    m = PageAllocModel()
    units = [Unit(f"{a} x {wl}", (lambda a=a, wl=wl: m.compile(
        m.resolve(a, {"workload": wl, "sweep_max_workers": 1, "llc_slice_kib": 512}))))
        for a in ALLOCATORS for wl in WORKLOADS]
    bad = [r for r in precompile(units, len(allowed_cpus())) if not r["ok"]]
    assert not bad, bad[:3]

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

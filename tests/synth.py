"""Seeded synthetic result documents (schema v1) for the analysis tests.

Throughput follows the USL with multiplicative Gaussian noise per interval, so
tests can check that the analyses recover what was put in.  Regenerate the
fixture files with ``PYTHONPATH=. python3 tests/synth.py``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures" / "analysis"

MACHINE = {"name": "synth-box", "hostname": "synth-box", "cpu_model": "Synthetic CPU @ 3.0GHz",
           "nproc": 16, "allowed_cpus": list(range(16)), "kernel": "6.8.0-synth",
           "topology": {"sockets": 1, "cores_per_socket": 8, "threads_per_core": 2,
                        "numa_nodes": 1},
           "git": {"commit": "0" * 40, "short": "0000000", "dirty": False}}


def usl(n, lam, sigma, kappa):
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def make_doc(workload="locks", model="locks", series=None, workers=(1, 2, 4, 8), repeats=2,
             intervals=10, noise=0.02, seed=0, params=None, mode="process", slowdown=None,
             machine=None, created="2024-01-01T00:00:00+00:00", commit=None,
             latency=False, counters=True, extra=None, nproc=16, workload_version=1):
    """One result document.

    series: {variant: (lambda, sigma, kappa)}; slowdown: {variant: factor} multiplies
    throughput; extra: callable(variant, workers, rng, params) -> dict for the point's ``extra``.
    """
    rng = np.random.default_rng(seed)
    series = series or {"ticket": (1e6, 0.05, 0.001), "private": (2e6, 0.0, 0.0)}
    params = params or {}
    slowdown = slowdown or {}
    m = copy.deepcopy(machine or MACHINE)
    if commit:
        m["git"] = {"commit": commit.ljust(40, "0"), "short": commit[:7], "dirty": False}
    points = []
    grid = [(v, ps) for v in series for ps in (params if isinstance(params, list) else [params])]
    for variant, pset in grid:
        lam, sigma, kappa = series[variant]
        for w in workers:
            x = usl(w, lam, sigma, kappa) * slowdown.get(variant, 1.0)
            for r in range(repeats):
                t = 0.1 * (1 + 0.01 * rng.standard_normal(intervals))
                rate = x * (1 + noise * rng.standard_normal(intervals))
                share = rng.dirichlet(np.full(w, 50.0), size=intervals)
                samples = np.round(rate[:, None] * t[:, None] * share).astype(int)
                total = int(samples.sum())
                pw = samples.sum(axis=0) / t.sum()
                p = {"variant": variant, "params": dict(pset), "mode": mode, "workers": w,
                     "allowed_cpus": nproc, "oversubscribed": w > nproc,
                     "cpu_map": [i % nproc for i in range(w)], "repeat": r,
                     "warmup_s": 0.1, "interval_s": 0.1, "interval_times": t.tolist(),
                     "samples": samples.tolist(),
                     "counters": {}, "invariants": {"ok": True, "errors": []},
                     "compile_s": 0.5, "pingpong_ns": 80.0,
                     "summary": {"ops_per_s": {"median": float(np.median(rate)),
                                               "mean": float(np.mean(rate)),
                                               "stddev": float(np.std(rate, ddof=1)),
                                               "hmean": float(len(rate) / np.sum(1 / rate)),
                                               "min": float(rate.min()), "max": float(rate.max())},
                                 "per_worker_ops_per_s": pw.tolist(),
                                 "jain": float(pw.sum() ** 2 / (w * (pw ** 2).sum())),
                                 "total_ops": total}}
                if counters:
                    per_op = 0.0 if variant == "private" else 2.0 / 63
                    acq = rng.poisson(per_op * total / w + 1, size=w)
                    p["counters"] = {"lock_acquisitions": acq.tolist(),
                                     "lock_contended": (acq // 3).tolist()}
                if latency:
                    centre = 6 + np.log2(w) + (variant != "private")
                    lat = rng.normal(centre, 1.0, size=5000)
                    counts = np.bincount(np.clip(lat, 0, 31).astype(int), minlength=32)
                    p["latency"] = {"alloc": {"unit": "cycles", "bucket_log2_base": 0,
                                              "counts": counts.tolist()}}
                if extra:
                    p["extra"] = extra(variant, w, rng, pset)
                points.append(p)
    return {"format": "mmbench-result", "schema_version": 1, "mmbench_version": "0.1.0",
            "created": created, "command": ["mmbench", "run", workload],
            "machine": m,
            "limits": {"atomic_ns": 5.1, "pingpong_ns": 80.0, "memset_gbps": 12.5},
            "workload": {"name": workload, "description": f"synthetic {workload}",
                         "model": model, "version": workload_version,
                         "file": f"workloads/{workload}.toml", "source_hash": "feedc0de"},
            "points": points}


def memmap_extra(variant, workers, rng, params):
    resident = {"flatmem": 4 << 30, "sparsemem": 64 << 20, "vmemmap": 48 << 20}.get(variant, 1 << 20)
    if params.get("holes") == "sparse" and variant != "flatmem":
        resident //= 4  # holes cost no memmap outside flatmem
    return {"memmap_resident_bytes": int(resident * (1 + 0.01 * rng.random())),
            "present_bytes": 3 << 30}


def frag_extra(variant, workers, rng, params):
    start = 200.0
    floor = {"buddy": 2.0, "llfree": 90.0}.get(variant, 50.0)
    rounds = np.arange(100)
    curve = floor + (start - floor) * np.exp(-rounds / 15) + rng.normal(0, 1, 100)
    return {"free_huge_per_round": np.maximum(curve, 0).round().tolist(), "rounds": 100}


def widget_extra(variant, workers, rng, params):  # an unknown family: generic rendering
    return {"widget_ns": float(100 * workers * (1 + 0.05 * rng.random())),
            "widget_histogram": rng.integers(0, 100, 20).tolist(), "label": "x"}


def fixture_docs():
    """The documents stored under tests/fixtures/analysis/ (name -> document)."""
    return {
        "locks-base": make_doc(seed=1, latency=True, workers=(1, 2, 4, 8, 16, 32),
                               params={"outside_work": 0}, commit="aaaaaaa",
                               created="2024-01-01T00:00:00+00:00"),
        "locks-new": make_doc(seed=2, latency=True, workers=(1, 2, 4, 8, 16, 32),
                              params={"outside_work": 0}, commit="bbbbbbb",
                              created="2024-01-02T00:00:00+00:00",
                              slowdown={"ticket": 0.8}),
        "memmap": make_doc("memmap", "memmap", workers=(1, 4),
                           series={"flatmem": (5e7, 0.0, 0.0), "sparsemem": (3e7, 0.0, 0.0),
                                   "vmemmap": (6e7, 0.0, 0.0)},
                           params=[{"holes": "none"}, {"holes": "sparse"}], seed=3, extra=memmap_extra, counters=False),
        "frag": make_doc("pagealloc-frag", "pagealloc", workers=(1, 4, 8),
                         series={"buddy": (1e6, 0.3, 0.01), "llfree": (1.2e6, 0.01, 0.0)},
                         params={"bench": "frag", "order": 0}, seed=4, extra=frag_extra),
        "widget": make_doc("widget", "widget", workers=(1, 2, 4), seed=5, extra=widget_extra,
                           series={"a": (1e5, 0.1, 0.0), "b": (5e5, 0.0, 0.01)}),
    }


def write_fixtures(outdir=FIXTURES):
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, doc in fixture_docs().items():
        p = outdir / f"{name}.json"
        p.write_text(json.dumps(doc, indent=1) + "\n")
        paths.append(p)
    return paths


if __name__ == "__main__":
    for p in write_fixtures():
        print(p)

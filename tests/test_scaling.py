"""mmbench.scaling: speedup/efficiency bands and the USL fit on seeded synthetic curves."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmbench.scaling import (USL_NEEDS, AnalysisError, collect, fit_usl, format_scaling,
                             interval_rates, load, peak_workers, scale_all, scale_series,
                             series_of, usl)

from synth import make_doc


def _series(doc, variant):
    pts = collect([load(doc)])
    return next(v for k, v in series_of(pts).items() if k.variant == variant)


@pytest.mark.parametrize("lam,sigma,kappa,seed", [
    (1e6, 0.05, 0.001, 1),
    (3e7, 0.20, 0.0002, 2),
    (5e5, 0.01, 0.005, 3),
    (2e6, 0.10, 0.0, 4),
])
def test_usl_fit_recovers_sigma_kappa(lam, sigma, kappa, seed):
    wk = (1, 2, 4, 8, 16, 24, 32, 48)
    doc = make_doc(series={"s": (lam, sigma, kappa)}, workers=wk, seed=seed, noise=0.01,
                   nproc=64)
    sc = scale_series(_series(doc, "s"), seed=seed)
    f = sc.usl
    assert f is not None and sc.note == ""
    assert f.lam == pytest.approx(lam, rel=0.03)
    assert f.sigma == pytest.approx(sigma, abs=0.01 + 0.1 * sigma)
    assert f.kappa == pytest.approx(kappa, abs=2e-4 + 0.15 * kappa)
    for name, true in (("sigma", sigma), ("kappa", kappa)):
        lo, hi = f.ci[name]
        assert lo <= getattr(f, name) <= hi
        assert lo - 1e-12 <= true <= hi * 1.5 + 1e-9, (name, lo, true, hi)
    if kappa == 0:
        assert f.peak > 1e3  # inf or far beyond the measured range
    else:
        assert f.peak == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=0.35)
    assert "bootstrap" in f.ci_method


def test_usl_fit_exact_curve():
    n = np.array([1, 2, 3, 5, 8, 13, 21, 34], dtype=float)
    x = usl(n, 1e6, 0.07, 0.0009)
    f = fit_usl(n, [np.array([v]) for v in x])
    assert (f.sigma, f.kappa) == (pytest.approx(0.07, rel=1e-4), pytest.approx(0.0009, rel=1e-4))
    assert f.ci_method.startswith("covariance")  # one sample each: no bootstrap


def test_fewer_than_three_worker_counts_no_fit():
    doc = make_doc(workers=(1, 8), seed=5)
    sc = scale_series(_series(doc, "ticket"))
    assert sc.usl is None
    assert USL_NEEDS in sc.note
    assert "at least three worker counts" in format_scaling(sc)
    with pytest.raises(AnalysisError, match="three worker counts"):
        fit_usl([1, 8], [np.ones(3), np.ones(3)])
    # repeats of the same worker counts do not make more worker counts
    with pytest.raises(AnalysisError):
        fit_usl([1, 1, 8], [np.ones(3)] * 3)


def test_peak_workers():
    assert peak_workers(0.1, 0.0) == math.inf
    assert peak_workers(0.0, 0.01) == pytest.approx(10.0)
    assert peak_workers(1.0, 0.01) == 1.0
    assert peak_workers(1.4, 0.0) == 1.0      # retrograde from the start: no infinite peak
    assert peak_workers(0.0, 10.0) == 1.0     # never below one worker


def test_oversubscribed_points_left_out_of_fit():
    wk = (1, 2, 4, 8, 16, 32)
    doc = make_doc(series={"t": (1e6, 0.05, 0.001)}, workers=wk, seed=11, nproc=8)
    # a collapse past the CPU count that the USL must not see
    for p in doc["points"]:
        if p["oversubscribed"]:
            p["samples"] = [[max(1, v // 20) for v in row] for row in p["samples"]]
    sc = scale_series(_series(doc, "t"), seed=1)
    assert "oversubscribed" in sc.note
    assert sc.usl.sigma == pytest.approx(0.05, abs=0.02)
    assert sc.usl.kappa == pytest.approx(0.001, abs=5e-4)
    doc = make_doc(series={"t": (1e6, 0.05, 0.001)}, workers=(1, 2, 4, 8), seed=12, nproc=2)
    sc = scale_series(_series(doc, "t"))
    assert sc.usl is None and USL_NEEDS in sc.note


def test_speedup_efficiency_linear_series():
    wk = (1, 2, 4, 8)
    doc = make_doc(series={"private": (2e6, 0.0, 0.0)}, workers=wk, seed=6, noise=0.02)
    sc = scale_series(_series(doc, "private"), seed=1)
    np.testing.assert_allclose(sc.speedup, wk, rtol=0.03)
    np.testing.assert_allclose(sc.efficiency, 1.0, atol=0.03)
    assert np.all(sc.speedup_ci[0] <= sc.speedup + 1e-9)
    assert np.all(sc.speedup_ci[1] >= sc.speedup - 1e-9)
    # the band must cover the truth for most points (95 % CI, 4 points)
    covered = (sc.speedup_ci[0] <= np.array(wk) * 1.005) & (sc.speedup_ci[1] >= np.array(wk) * .995)
    assert covered.sum() >= 3
    assert np.all(sc.speedup_ci[1] - sc.speedup_ci[0] < 0.1 * np.array(wk))


def test_speedup_contention_series_flattens():
    wk = (1, 2, 4, 8, 16)
    doc = make_doc(series={"t": (1e6, 0.3, 0.0)}, workers=wk, seed=7)
    sc = scale_series(_series(doc, "t"))
    true = usl(np.array(wk, float), 1, 0.3, 0)
    np.testing.assert_allclose(sc.speedup, true, rtol=0.05)
    assert sc.efficiency[-1] < 0.3


def test_bootstrap_is_seeded():
    doc = make_doc(workers=(1, 2, 4), seed=8)
    a = scale_series(_series(doc, "ticket"), seed=3)
    b = scale_series(_series(doc, "ticket"), seed=3)
    np.testing.assert_array_equal(a.speedup_ci, b.speedup_ci)
    assert a.usl.ci == b.usl.ci


def test_no_one_worker_point_is_said():
    doc = make_doc(workers=(2, 4, 8), seed=9)
    sc = scale_series(_series(doc, "private"))
    assert sc.base_workers == 2 and "relative to N=2" in sc.note
    np.testing.assert_allclose(sc.speedup, [2, 4, 8], rtol=0.05)


def test_interval_rates_and_pooling():
    doc = make_doc(workers=(2,), repeats=3, intervals=7, seed=10)
    p = doc["points"][0]
    r = interval_rates(p)
    assert r.shape == (7,)
    np.testing.assert_allclose(r, np.sum(p["samples"], axis=1) / np.array(p["interval_times"]))
    pts = collect([load(doc)])
    assert all(len(d.rates) == 3 and d.all_rates.size == 21 for d in pts.values())
    assert len(scale_all(pts, n_boot=10)) == 2

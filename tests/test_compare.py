"""mmbench.compare: verdicts, exit codes, Holm, metadata checks, errors (synthetic inputs)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from mmbench.compare import compare, format_compare, holm
from mmbench.scaling import AnalysisError

from synth import make_doc

W = (1, 2, 4, 8)


def test_identical_distributions_exit_0():
    base = make_doc(seed=10, workers=W)
    new = make_doc(seed=11, workers=W)  # same model, fresh noise
    r = compare(base, new)
    assert r.exit_code == 0
    assert not r.regressions
    assert len(r.rows) == 2 * len(W)
    assert all(abs(x.change_pct) < 5 for x in r.rows)
    assert "no significant regression" in format_compare(r)


def test_injected_slowdown_exit_1_names_series():
    base = make_doc(seed=10, workers=W)
    new = make_doc(seed=11, workers=W, slowdown={"ticket": 0.8})
    r = compare(base, new)
    assert r.exit_code == 1
    assert {x.key.variant for x in r.regressions} == {"ticket"}
    assert len(r.regressions) == len(W)
    for x in r.regressions:
        assert -25 < x.change_pct < -15
    text = format_compare(r)
    assert "REGRESSION" in text and "ticket N=8" in text
    # the unslowed series is untouched; the geometric mean sits between 0.8 and 1
    assert all(x.verdict == "within threshold" for x in r.rows if x.key.variant == "private")
    assert 0.85 < r.gmean_ratio < 0.95


def test_mannwhitney_also_detects_it():
    base = make_doc(seed=12, workers=W)
    new = make_doc(seed=13, workers=W, slowdown={"private": 0.8})
    r = compare(base, new, test="mannwhitney")
    assert r.exit_code == 1
    assert {x.key.variant for x in r.regressions} == {"private"}
    assert "Mann-Whitney" in format_compare(r)


def test_improvement_is_not_a_regression():
    r = compare(make_doc(seed=14, workers=W), make_doc(seed=15, workers=W,
                                                       slowdown={"ticket": 1.25}))
    assert r.exit_code == 0
    assert {x.key.variant for x in r.improvements} == {"ticket"}


def test_small_change_within_threshold_is_not_a_change():
    # 3 % slower with 0.2 % noise: very significant, but below the 5 % threshold
    base = make_doc(seed=16, workers=W, noise=0.002)
    new = make_doc(seed=17, workers=W, noise=0.002, slowdown={"ticket": 0.97})
    r = compare(base, new, threshold_pct=5)
    assert r.exit_code == 0
    assert all(x.verdict == "within threshold" for x in r.rows)
    assert any(x.p_holm < 1e-3 for x in r.rows if x.key.variant == "ticket")
    # with a 2 % threshold the same data is a regression
    assert compare(base, new, threshold_pct=2).exit_code == 1


def test_noisy_change_is_said_not_significant():
    # 10 % slower but 40 % noise and 3 intervals: the test cannot tell
    base = make_doc(seed=18, workers=(4,), noise=0.4, intervals=3, repeats=1)
    new = make_doc(seed=19, workers=(4,), noise=0.4, intervals=3, repeats=1,
                   slowdown={"ticket": 0.9, "private": 0.9})
    r = compare(base, new)
    flagged = [x for x in r.rows if abs(x.change_pct) >= 5]
    assert flagged, "the noise draw must leave a change beyond the threshold"
    assert all(x.verdict == "not significant" for x in flagged)
    assert r.exit_code == 0
    assert "not significant" in format_compare(r)


def _naive_holm_reject(p, alpha):
    order = sorted(range(len(p)), key=lambda i: p[i])
    m = len(p)
    reject = set()
    for rank, i in enumerate(order):
        if p[i] <= alpha / (m - rank):
            reject.add(i)
        else:
            break
    return reject


def _naive_holm_adjusted(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    m = len(p)
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_holm_matches_naive(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 30))
    p = rng.uniform(0, 0.2, m) ** rng.uniform(0.5, 3)
    if seed % 4 == 0:
        p[: m // 2] = p[0]  # ties
    adj = holm(p)
    np.testing.assert_allclose(adj, _naive_holm_adjusted(list(p)), rtol=1e-12)
    for alpha in (0.01, 0.05, 0.1):
        assert set(np.flatnonzero(adj <= alpha)) == _naive_holm_reject(list(p), alpha)


def test_holm_ignores_nan():
    adj = holm([0.01, np.nan, 0.04])
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.02, 0.04])


def test_holm_applied_across_points():
    r = compare(make_doc(seed=20, workers=W), make_doc(seed=21, workers=W))
    np.testing.assert_allclose([x.p_holm for x in r.rows], holm([x.p for x in r.rows]))


def test_corrupt_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mmbench-result", "schema_version": 1, "points": [')
    good = tmp_path / "good.json"
    good.write_text(json.dumps(make_doc(seed=1, workers=(1, 2))))
    with pytest.raises(AnalysisError) as e:
        compare([good], [bad])
    assert "\n" not in str(e.value) and "bad.json" in str(e.value)
    with pytest.raises(AnalysisError):
        compare([good], [tmp_path / "missing.json"])


def test_invalid_document_is_an_error():
    doc = make_doc(seed=1, workers=(1, 2))
    del doc["points"][0]["samples"]
    with pytest.raises(AnalysisError):
        compare(make_doc(seed=1, workers=(1, 2)), doc)


def test_nothing_in_common_is_an_error():
    with pytest.raises(AnalysisError, match="nothing in common"):
        compare(make_doc("locks", workers=(1, 2)), make_doc("other", workers=(1, 2)))


def test_mismatched_metadata_warns_or_refuses():
    base = make_doc(seed=1, workers=(1, 2))
    new = make_doc(seed=2, workers=(1, 2), workload_version=2)
    new["machine"]["nproc"] = 64
    new["machine"]["kernel"] = "6.9.0"
    r = compare(base, new)
    text = format_compare(r)
    assert any("nproc" in w for w in r.warnings) and any("kernel" in w for w in r.warnings)
    assert any("version" in w and "locks" in w for w in r.warnings)
    assert text.startswith("WARNING")
    with pytest.raises(AnalysisError, match="strict"):
        compare(base, new, strict=True)
    assert compare(base, copy.deepcopy(base), strict=True).warnings == []


def test_unknown_test_is_an_error():
    d = make_doc(workers=(1, 2))
    with pytest.raises(AnalysisError):
        compare(d, d, test="ks")


def test_usl_change_reported():
    series_b = {"ticket": (1e6, 0.02, 0.0005)}
    series_n = {"ticket": (1e6, 0.10, 0.0005)}
    wk = (1, 2, 4, 8, 16, 32)
    r = compare(make_doc(series=series_b, workers=wk, seed=3, noise=0.005),
                make_doc(series=series_n, workers=wk, seed=4, noise=0.005))
    (u,) = r.usl
    assert u.base.sigma < 0.05 < u.new.sigma
    assert "sigma" in format_compare(r)
    r2 = compare(make_doc(workers=(1, 2), seed=3), make_doc(workers=(1, 2), seed=4))
    assert r2.usl == []
    assert "at least three worker counts" in format_compare(r2)


def test_markdown_format():
    r = compare(make_doc(seed=1, workers=W), make_doc(seed=2, workers=W, slowdown={"ticket": .8}))
    md = format_compare(r, "md")
    rows = [ln for ln in md.splitlines() if ln.startswith("| ticket")]
    assert len(rows) == len(W) and all("regression" in ln for ln in rows)


def test_repeats_in_separate_files_are_pooled():
    a = make_doc(seed=1, workers=(2,), repeats=1)
    b = make_doc(seed=2, workers=(2,), repeats=1)
    r = compare([a, b], make_doc(seed=3, workers=(2,), repeats=1))
    assert all(x.n_base == 2 * x.n_new for x in r.rows)


def test_compare_imports_no_heavy_modules():
    code = ("import sys, mmbench.compare, mmbench.scaling; "
            "print(sorted(m for m in ('scipy', 'matplotlib', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

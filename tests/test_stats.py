"""mmbench.stats against slow, obvious reference computations."""
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from mmbench import stats

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True)


def naive_summary(samples, times):
    """Written from the definition, loop by loop, sharing no code with stats.summarize."""
    n = len(samples)
    workers = len(samples[0])
    rates = []
    for i in range(n):
        total = 0
        for w in range(workers):
            total += samples[i][w]
        rates.append(total / times[i])
    srt = sorted(rates)
    median = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
    mean = sum(rates) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (n - 1)) if n > 1 else 0.0
    hm = 0.0 if min(rates) == 0 else n / sum(1 / r for r in rates)
    window = sum(times)
    per = [sum(samples[i][w] for i in range(n)) / window for w in range(workers)]
    sq = sum(x * x for x in per)
    jain = 1.0 if sq == 0 else sum(per) ** 2 / (workers * sq)
    return {"median": median, "mean": mean, "stddev": sd, "hmean": hm,
            "min": srt[0], "max": srt[-1], "per": per, "jain": jain,
            "total": sum(sum(r) for r in samples)}


@st.composite
def sample_sets(draw):
    workers = draw(st.integers(1, 6))
    n = draw(st.integers(1, 12))
    counts = st.integers(0, 10**9)
    samples = [[draw(counts) for _ in range(workers)] for _ in range(n)]
    times = [draw(st.floats(1e-4, 10.0)) for _ in range(n)]
    return samples, times


@SETTINGS
@given(sample_sets())
def test_summarize_matches_naive(data):
    samples, times = data
    got = stats.summarize(samples, times)
    ref = naive_summary(samples, times)
    r = got["ops_per_s"]
    for k in ("median", "mean", "min", "max", "hmean"):
        assert r[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-9), k
    assert r["stddev"] == pytest.approx(ref["stddev"], rel=1e-6, abs=1e-6 * max(1.0, ref["mean"]))
    assert got["per_worker_ops_per_s"] == pytest.approx(ref["per"], rel=1e-12)
    assert got["jain"] == pytest.approx(ref["jain"], rel=1e-9)
    assert got["total_ops"] == ref["total"] and isinstance(got["total_ops"], int)
    assert r["min"] <= r["hmean"] <= r["mean"] * (1 + 1e-12) <= r["max"] * (1 + 1e-12)


def test_summarize_rejects_bad_shapes():
    with pytest.raises(ValueError, match="interval times"):
        stats.summarize([[1, 2]], [0.1, 0.1])
    with pytest.raises(ValueError, match="workers"):
        stats.summarize([[1, 2], [3]], [0.1, 0.1])
    with pytest.raises(ValueError, match="> 0"):
        stats.summarize([[1]], [0.0])
    with pytest.raises(ValueError):
        stats.summarize([], [])


@SETTINGS
@given(st.integers(1, 64), st.floats(1e-3, 1e12))
def test_jain_equal_is_one_and_monopoly_is_one_over_n(n, x):
    assert stats.jain([x] * n) == pytest.approx(1.0, rel=1e-12)
    assert stats.jain([x] + [0.0] * (n - 1)) == pytest.approx(1.0 / n, rel=1e-12)


@SETTINGS
@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=50), st.floats(1e-3, 1e3))
def test_jain_bounds_and_scale_invariance(xs, scale):
    j = stats.jain(xs)
    assert 1.0 / len(xs) - 1e-12 <= j <= 1.0
    if any(x > 1e-100 for x in xs):  # scaling tiny values may underflow to all-zero
        assert stats.jain([x * scale for x in xs]) == pytest.approx(j, rel=1e-9)


def test_jain_edge_cases():
    assert stats.jain([5.0]) == 1.0
    assert stats.jain([0, 0, 0]) == 1.0
    assert stats.jain([1, 3]) == pytest.approx(16 / (2 * 10))
    with pytest.raises(ValueError):
        stats.jain([])


@SETTINGS
@given(st.lists(st.floats(1e-6, 1e9), min_size=1, max_size=40))
def test_means_match_scipy(xs):
    assert stats.hmean(xs) == pytest.approx(sps.hmean(xs), rel=1e-9)
    assert stats.gmean(xs) == pytest.approx(sps.gmean(xs), rel=1e-9)
    assert stats.hmean(xs) <= stats.gmean(xs) * (1 + 1e-9)


def test_means_with_zero_and_negative():
    assert stats.hmean([1.0, 0.0]) == 0.0
    assert stats.gmean([1.0, 0.0]) == 0.0
    with pytest.raises(ValueError):
        stats.hmean([-1.0])
    with pytest.raises(ValueError):
        stats.gmean([])


def naive_percentile(counts, q, base):
    """Expand the histogram into one entry per value (its bucket), nearest-rank pick."""
    expanded = [i for i, c in enumerate(counts) for _ in range(c)]
    if not expanded:
        return None
    rank = max(1, math.ceil(q / 100 * len(expanded)))
    return 2 ** (base + expanded[rank - 1] + 1)


@SETTINGS
@given(st.lists(st.integers(0, 30), max_size=20), st.floats(0, 100), st.integers(0, 4))
def test_percentile_matches_expansion(counts, q, base):
    assert stats.percentile_from_log2_hist(counts, q, base) == naive_percentile(counts, q, base)


@SETTINGS
@given(st.lists(st.integers(1, 2**40), min_size=1, max_size=300), st.sampled_from([0, 1, 50, 90, 99, 100]))
def test_percentile_is_an_upper_bound_within_2x(values, q):
    counts = [0] * 41
    for v in values:
        counts[v.bit_length() - 1] += 1      # bucket i holds [2^i, 2^(i+1))
    srt = sorted(values)
    true = srt[max(1, math.ceil(q / 100 * len(srt))) - 1]
    got = stats.percentile_from_log2_hist(counts, q)
    assert true < got <= 2 * true


def test_hist_summary():
    rng = random.Random(7)
    counts = [rng.randrange(50) for _ in range(12)] + [0, 0, 3, 0]
    s = stats.hist_summary(counts)
    assert s["max"] == 2 ** 15          # highest non-empty bucket 14 -> upper bound 2^15
    assert s["p50"] == naive_percentile(counts, 50, 0)
    assert s["p99"] == naive_percentile(counts, 99, 0)
    assert s["count"] == sum(counts)
    assert stats.hist_summary([0, 0]) == {"p50": None, "p99": None, "max": None, "count": 0}
    with pytest.raises(ValueError):
        stats.percentile_from_log2_hist([1], 101)

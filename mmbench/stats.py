"""Summaries of raw samples: rates, fairness, latency histograms.

Pure Python (no numpy) so that ``mmbench show`` and ``compare`` start fast and so
that every number in a result file can be recomputed from the raw samples stored
beside it.  Conventions follow mmtests: rates are summarised with the harmonic
mean (the mean of rates that keeps total work / total time meaningful), many
benchmarks together with the geometric mean.
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence


def hmean(values: Sequence[float]) -> float:
    """Harmonic mean of non-negative values; 0.0 if any value is 0 (scipy's limit).

    The harmonic mean of per-interval rates is the rate over the whole window when
    every interval did the same work, which is why rates use it rather than the mean.
    """
    values = list(values)
    if not values:
        raise ValueError("hmean of no values")
    if any(v < 0 for v in values):
        raise ValueError("hmean needs non-negative values")
    if any(v == 0 for v in values):
        return 0.0
    h = len(values) / math.fsum(1.0 / v for v in values)
    # Rounding can put 1/(1/x) a hair outside [min, max]; a mean never is.
    return min(max(h, min(values)), max(values))


def gmean(values: Sequence[float]) -> float:
    """Geometric mean of non-negative values; 0.0 if any value is 0.

    Used to fold many benchmarks' ratios into one number: it is the only mean for
    which the mean of ratios equals the ratio of means.
    """
    values = list(values)
    if not values:
        raise ValueError("gmean of no values")
    if any(v < 0 for v in values):
        raise ValueError("gmean needs non-negative values")
    if any(v == 0 for v in values):
        return 0.0
    g = math.exp(math.fsum(math.log(v) for v in values) / len(values))
    return min(max(g, min(values)), max(values))


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1.0 perfectly fair, 1/n one takes all.

    n = 1 gives 1.0 (one worker cannot be treated unfairly).  All-zero gives 1.0 as
    well: every worker got the same (nothing); a stuck run shows up in the rates and
    the invariants, not here, and the index must stay a finite JSON number.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("jain of no values")
    if any(v < 0 for v in values):
        raise ValueError("jain needs non-negative values")
    sq = math.fsum(v * v for v in values)
    if sq == 0.0:
        return 1.0
    s = math.fsum(values)
    # Clamp: rounding may push an all-equal vector a hair above 1.
    return min(1.0, s * s / (len(values) * sq))


def summarize(samples: Sequence[Sequence[int]], interval_times: Sequence[float]) -> dict:
    """Summary of one point from its raw per-interval, per-worker op counts.

    ``samples[i][w]`` = ops worker w completed in interval i, which lasted
    ``interval_times[i]`` seconds (measured, not nominal).  Returns::

      ops_per_s: median/mean/stddev/hmean/min/max of the per-interval total rate
                 sum_w samples[i][w] / interval_times[i]  (stddev: sample, n-1;
                 0.0 with one interval)
      per_worker_ops_per_s: [sum_i samples[i][w] / sum_i interval_times[i]]
      jain: Jain's index over per_worker_ops_per_s
      total_ops: sum of all samples
    """
    if len(samples) != len(interval_times):
        raise ValueError(f"{len(samples)} sample rows but {len(interval_times)} interval times")
    if not samples:
        raise ValueError("no intervals to summarise")
    workers = len(samples[0])
    if workers == 0:
        raise ValueError("sample rows have no workers")
    for i, (row, t) in enumerate(zip(samples, interval_times)):
        if len(row) != workers:
            raise ValueError(f"interval {i} has {len(row)} workers, interval 0 has {workers}")
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(f"interval {i} lasted {t!r} s; must be > 0")
        if any(c < 0 for c in row):
            raise ValueError(f"interval {i} has a negative op count")
    rates = [sum(row) / t for row, t in zip(samples, interval_times)]
    window = math.fsum(interval_times)
    per_worker = [sum(row[w] for row in samples) / window for w in range(workers)]
    return {
        "ops_per_s": {
            "median": float(statistics.median(rates)),
            "mean": float(statistics.fmean(rates)),
            "stddev": float(statistics.stdev(rates)) if len(rates) > 1 else 0.0,
            "hmean": hmean(rates),
            "min": float(min(rates)),
            "max": float(max(rates)),
        },
        "per_worker_ops_per_s": per_worker,
        "jain": jain(per_worker),
        "total_ops": int(sum(sum(row) for row in samples)),
    }


def _bucket_upper(i: int, base: int) -> int:
    return 1 << (base + i + 1)


def percentile_from_log2_hist(counts: Sequence[int], q: float, base: int = 0) -> int | None:
    """The q-th percentile (q in [0, 100]) of a log2 histogram, as a bucket UPPER bound.

    Bucket i counts values in [2^(base+i), 2^(base+i+1)) (bucket 0 also holds
    anything smaller, e.g. 0).  The exact value is lost by bucketing, so this returns
    2^(base+i+1) for the bucket holding the nearest-rank percentile (rank
    ceil(q/100 * N), at least 1): an upper bound, at most 2x the true value.
    None for an empty histogram.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q!r}")
    if any(c < 0 for c in counts):
        raise ValueError("histogram counts must be non-negative")
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank:
            return _bucket_upper(i, base)
    raise AssertionError("unreachable: rank <= total")


def hist_summary(counts: Sequence[int], base: int = 0) -> dict:
    """{p50, p99, max, count} of a log2 histogram; p50/p99/max are bucket UPPER bounds.

    See :func:`percentile_from_log2_hist`; max is the upper bound of the highest
    non-empty bucket.  Values are None when the histogram is empty.
    """
    nonzero = [i for i, c in enumerate(counts) if c]
    return {
        "p50": percentile_from_log2_hist(counts, 50, base),
        "p99": percentile_from_log2_hist(counts, 99, base),
        "max": _bucket_upper(nonzero[-1], base) if nonzero else None,
        "count": int(sum(counts)),
    }

"""Interval estimates and tests used by the report."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def newcombe_difference(k1: int, n1: int, k0: int, n0: int) -> tuple[float, float, float]:
    """p1 - p0 with Newcombe's hybrid score interval (method 10), built from Wilson intervals."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1)
    l0, u0 = wilson(k0, n0)
    d = p1 - p0
    lo = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return d, lo, hi


def fisher_p(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-sided Fisher exact test of equal proportions."""
    return float(stats.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]])[1])


def bootstrap_median(values, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median with a percentile-bootstrap 95% interval; NaNs are dropped. The values are sorted
    first, so the interval does not depend on the order rows arrive in (trial ids are hashes)."""
    x = np.sort(np.asarray(values, dtype=float))
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, len(x), size=(n_boot, len(x)))], axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return float(np.median(x)), float(lo), float(hi)


def median_difference(x, y, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """median(x) - median(y) with a percentile-bootstrap 95% interval (each sample
    resampled on its own); NaNs are dropped; order-free, as bootstrap_median."""
    x, y = np.sort(np.asarray(x, dtype=float)), np.sort(np.asarray(y, dtype=float))
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    bx = np.median(x[rng.integers(0, len(x), size=(n_boot, len(x)))], axis=1)
    by = np.median(y[rng.integers(0, len(y), size=(n_boot, len(y)))], axis=1)
    lo, hi = np.percentile(bx - by, [2.5, 97.5])
    return float(np.median(x) - np.median(y)), float(lo), float(hi)


EXACT_ARRANGEMENTS = 50_000


def mann_whitney_p(x, y) -> float:
    """Two-sided Mann-Whitney U test: exact over every arrangement of the pooled values while
    there are at most EXACT_ARRANGEMENTS of them (with ties too, where scipy's default falls
    back to the normal approximation: 3 vs 3 all tied apart read p = 0.047, exactly 0.1),
    else asymptotic with the tie correction."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) < 2 or len(y) < 2:  # no test: one seed cannot be ranked against a spread
        return math.nan
    if np.unique(np.r_[x, y]).size == 1:
        return 1.0  # nothing to rank
    if math.comb(len(x) + len(y), len(x)) <= EXACT_ARRANGEMENTS:
        method = stats.PermutationMethod(n_resamples=EXACT_ARRANGEMENTS)  # exact: resamples cover them all
        return float(stats.mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue)
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error
    rate); NaNs stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    idx = np.where(~np.isnan(p))[0]
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()

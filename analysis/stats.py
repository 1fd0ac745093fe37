"""Interval estimates and tests used by the report."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats

from analysis import ranks

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


def newcombe_difference(k1: int, n1: int, k0: int, n0: int, z: float = Z95) -> tuple[float, float, float]:
    """p1 - p0 with Newcombe's hybrid score interval (method 10), built from Wilson intervals
    (95% by default; `z` for another level)."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    lo = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return d, lo, hi


def newcombe_bound(k1: int, n1: int, k0: int, n0: int, level: float = 0.95, upper: bool = True) -> float:
    """The one-sided Newcombe bound of p1 - p0 at `level` (the end of the two-sided interval at
    1 - 2 (1 - level))."""
    z = float(stats.norm.ppf(level))
    return newcombe_difference(k1, n1, k0, n0, z)[2 if upper else 1]


def no_worse_rate_p(k1: int, n1: int, k0: int, n0: int, margin: float, lower_is_better: bool = True) -> float:
    """The one-sided p-value of "rate 1 is worse than rate 0 by at least `margin`": the smallest
    1 - level at which the one-sided Newcombe bound of p1 - p0 excludes the margin (found by
    bisection on z; the bound widens with z). 1.0 when the difference itself reaches the margin."""
    def gap(z: float) -> float:  # how far inside the margin the bound lies (> 0: excluded)
        d, lo, hi = newcombe_difference(k1, n1, k0, n0, z)
        return margin - hi if lower_is_better else lo + margin

    if gap(0.0) <= 0:
        return 1.0
    lo, hi = 0.0, 40.0
    if gap(hi) > 0:
        return float(stats.norm.sf(hi))
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return float(stats.norm.sf(lo))


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


def mann_whitney_p(x, y) -> float:
    """Two-sided Mann-Whitney U test, exact with ties at the sizes studies use
    (analysis.ranks.mann_whitney, which labels where the normal approximation takes over)."""
    return ranks.mann_whitney(x, y)["p"]


def boschloo_p(k1: int, n1: int, k0: int, n0: int) -> float:
    """Two-sided Boschloo exact test of equal proportions (uniformly more powerful than Fisher's)."""
    return float(stats.boschloo_exact([[k1, k0], [n1 - k1, n0 - k0]], alternative="two-sided").pvalue)


@lru_cache(maxsize=256)
def _fisher_rejects(n1: int, n0: int, alpha: float) -> np.ndarray:
    """rejects[k1, k0]: whether Fisher's two-sided test rejects at `alpha` with k1/n1 against k0/n0."""
    return np.array([[fisher_p(k1, n1, k0, n0) < alpha for k0 in range(n0 + 1)] for k1 in range(n1 + 1)])


def fisher_power(n1: int, p1: float, n0: int, p0: float, alpha: float) -> float:
    """Exact power of Fisher's test at these sizes and true rates (every outcome enumerated)."""
    w1, w0 = stats.binom.pmf(np.arange(n1 + 1), n1, p1), stats.binom.pmf(np.arange(n0 + 1), n0, p0)
    return float(w1 @ _fisher_rejects(n1, n0, alpha) @ w0)


def detectable_difference(n1: int, n0: int, p0: float, alpha: float, power: float = 0.8) -> float:
    """The smallest change of a rate from `p0` (a drop, or a rise where a drop of that size is
    impossible) that Fisher's test at `alpha` detects with `power` at n1 against n0: rates
    closer than this are likely to go undecided. NaN when no change within [0, 1] is detected."""
    if n1 < 1 or n0 < 1:
        return math.nan
    for step in range(1, 101):
        d = step / 100
        for p1 in (p0 - d, p0 + d):
            if 0 <= p1 <= 1 and fisher_power(n1, p1, n0, p0, alpha) >= power:
                return d
    return math.nan


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

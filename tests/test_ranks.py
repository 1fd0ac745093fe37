"""The rank statistics pinned to their references: full enumeration of the permutation null
(ties included), scipy's exact no-ties null and permutation test, and the definitions."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from analysis import ranks


def enumerated_p(x, y) -> float:
    """2 * min(P(S <= s), P(S >= s)) over every split of the pooled midranks (the reference)."""
    pooled = np.r_[x, y]
    r = stats.rankdata(pooled)
    s = r[: len(x)].sum()
    sums = np.array([r[list(c)].sum() for c in itertools.combinations(range(len(pooled)), len(x))])
    return min(1.0, 2 * min((sums <= s + 1e-9).mean(), (sums >= s - 1e-9).mean()))


SAMPLES = [  # (x, y): ties within, ties across, all distinct, unequal sizes
    ([4, 5, 6], [1, 2, 3]),
    ([1, 1, 2, 3, 3, 3], [2, 2, 4, 4, 5]),
    ([0, 0, 0, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1]),
    ([0.3, 1.7, 2.2, 5.1, 0.9, 3.3, 4.4, 6.0], [1.1, 2.0, 0.1, 0.2, 0.4, 1.5, 2.8, 0.7]),
    ([2, 2, 2, 2, 2, 2, 2, 3], [1, 2, 2, 2, 2, 2, 2, 2]),
]


@pytest.mark.parametrize("x, y", SAMPLES)
def test_the_exact_p_equals_full_enumeration_with_ties(x, y):
    got = ranks.mann_whitney(x, y)
    assert got["method"] == "exact"
    assert got["p"] == pytest.approx(enumerated_p(x, y), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_random_small_samples_with_many_ties_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(2, 9, size=2)
    x, y = rng.integers(0, 4, size=m).astype(float), rng.integers(0, 4, size=n).astype(float)
    if np.unique(np.r_[x, y]).size == 1:
        return
    assert ranks.mann_whitney(x, y)["p"] == pytest.approx(enumerated_p(x, y), abs=1e-12)


def test_without_ties_it_is_scipys_exact_test_at_sizes_past_enumeration():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.4, 1, 25), rng.normal(0, 1, 30)
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue
    assert ranks.mann_whitney(x, y)["p"] == pytest.approx(ref, rel=1e-9)


def test_the_u_statistic_is_scipys():
    x, y = SAMPLES[1]
    assert ranks.mann_whitney(x, y)["u"] == stats.mannwhitneyu(x, y).statistic


def test_forty_against_forty_with_ties_is_exact():
    """Its time (under 0.1 s): benchmarks/bounds.py mann-whitney."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 10, 40), rng.integers(0, 10, 40)
    got = ranks.mann_whitney(x, y)
    assert got["method"] == "exact"
    # a large sample with ties: the exact p lies near the tie-corrected normal approximation
    assert got["p"] == pytest.approx(stats.mannwhitneyu(x, y, method="asymptotic").pvalue, abs=0.02)


def test_past_the_exact_size_the_normal_approximation_is_labelled():
    got = ranks.mann_whitney(np.arange(70.0), np.arange(70.0) + 0.5)
    assert got["method"] == "normal approximation"


def test_no_test_with_one_seed_and_p_one_when_all_tied():
    assert math.isnan(ranks.mann_whitney([1.0], [2.0, 3.0])["p"])
    assert ranks.mann_whitney([1, 1], [1, 1, 1])["p"] == 1.0


def test_the_null_without_ties_is_a_distribution_with_the_known_tail():
    null = ranks.u_null(3, 3)
    assert null.sum() == pytest.approx(1.0) and len(null) == 10
    assert null[0] == pytest.approx(1 / 20)  # one of C(6,3) arrangements has U = 0


def test_hodges_lehmann_is_the_median_of_pairwise_differences():
    x, y = [1.0, 4.0, 9.0], [0.0, 2.0]
    d = sorted(a - b for a in x for b in y)  # 1, -1, 4, 2, 9, 7 -> median of six = (2 + 4) / 2
    assert ranks.hodges_lehmann(x, y)[0] == pytest.approx(np.median(d)) == 3.0


@pytest.mark.parametrize("seed", range(30))
def test_the_interval_agrees_with_the_test_without_ties(seed):
    """With no ties, p < 0.05 exactly when the Hodges-Lehmann interval excludes 0 (both read
    the same statistic): the disagreement the bootstrap of medians showed cannot happen."""
    rng = np.random.default_rng(seed)
    m, n = rng.integers(5, 21, size=2)
    x, y = rng.normal(rng.uniform(0, 1.5), 1, m), rng.normal(0, 1, n)
    p = ranks.mann_whitney(x, y)["p"]
    _, lo, hi = ranks.hodges_lehmann(x, y)
    assert (p < 0.05) == (not lo <= 0 <= hi)


def test_the_interval_covers_a_planted_shift_at_its_level():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):
        _, lo, hi = ranks.hodges_lehmann(rng.normal(2.0, 1, 10), rng.normal(0, 1, 10))
        hits += lo <= 2.0 <= hi
    assert 0.93 <= hits / 400 <= 0.99  # 95% nominal; exact intervals are slightly conservative


def test_three_against_three_has_no_finite_95_interval():
    assert ranks.hodges_lehmann([4, 5, 6], [1, 2, 3])[1:] == (-math.inf, math.inf)


def test_diverged_trials_rank_worst():
    v = ranks.worst_ranked([0.1, 0.2, np.nan], [False, False, True])
    assert v[2] == math.inf
    assert ranks.worst_ranked([0.5, 0.7], [True, False], lower_is_better=False)[0] == -math.inf
    # two good seeds and six diverged against eight middling ones: dropped, the arm looked better
    # (U = 0 of 16); ranked worst it is worse (U = 48 of 64, larger = worse here)
    values, diverged = [0.1] * 2 + [np.nan] * 6, [False] * 2 + [True] * 6
    assert ranks.mann_whitney(values, [0.2] * 8)["u"] == 0
    assert ranks.mann_whitney(ranks.worst_ranked(values, diverged), [0.2] * 8)["u"] == 48


def test_probability_of_improvement():
    assert ranks.prob_improvement([1, 2], [3, 4]) == 1.0
    assert ranks.prob_improvement([1, 3], [3, 4]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert ranks.prob_improvement([1, 2], [3, 4], lower_is_better=False) == 0.0


def test_detectable_shift_shrinks_with_n_and_alpha():
    assert ranks.detectable_shift(40, 40, 0.05) < ranks.detectable_shift(10, 10, 0.05)
    assert ranks.detectable_shift(20, 20, 0.05 / 48) > ranks.detectable_shift(20, 20, 0.05)
    # Noether: (z_.975 + z_.8) / sqrt(12 * 20 * 20 / 41) = 2.8016 / 10.82
    assert ranks.detectable_shift(20, 20, 0.05) == pytest.approx(2.80158 / math.sqrt(12 * 400 / 41), rel=1e-4)

"""The group-sequential design: boundaries pinned to published values, Holm's recycling, futility,
and the family-wise error under the null by a small simulation (benchmarks/sequential.py runs
10,000)."""

import numpy as np
import pytest

from analysis.sequential import boundaries, conditional_power, decide, fractions_of, rank_z, rate_z, spent


def test_one_look_is_the_fixed_test():
    assert boundaries(0.05, (1.0,)) == pytest.approx((1.959964,), abs=1e-5)


def test_obrien_fleming_type_boundaries_equal_the_published_ones():
    """Lan-DeMets O'Brien-Fleming-type spending, five equally spaced looks, two-sided 0.05: the
    values of ldbounds / gsDesign (4.8769, 3.3569, 2.6803, 2.2898, 2.0310)."""
    assert boundaries(0.05, fractions_of(1, 5)) == pytest.approx((4.8769, 3.3569, 2.6803, 2.2898, 2.0310), abs=2e-4)


def test_the_boundaries_spend_exactly_alpha_under_the_null():
    c = np.array(boundaries(0.05, fractions_of(5, 40)))
    rng = np.random.default_rng(0)
    scores = np.cumsum(rng.standard_normal((200_000, 8)), axis=1)
    z = scores / np.sqrt(np.arange(1, 9))
    crossed = (np.abs(z) >= c).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=3 * np.sqrt(0.05 * 0.95 / 200_000))
    assert spent(0.05, 1.0) == pytest.approx(0.05)


def test_a_large_effect_stops_early_and_a_null_runs_to_the_end():
    fractions = fractions_of(5, 40)
    out = decide({"large": [5.0, 6.0], "null": [0.3, -0.2]}, fractions, 0.05)
    assert out["large"].decision == "rejected" and out["large"].at == 2
    assert out["null"].decision == "open"
    out = decide({"null": [0.3, -0.2, 0.1, 0.0, 0.2, -0.1, 0.4, 0.1]}, fractions, 0.05)
    assert out["null"].decision == "not decided" and out["null"].at == 8


def test_holm_passes_a_rejected_comparisons_level_to_the_rest():
    """Two comparisons at the last look: alone at alpha/2 the second (z = 2.2) would not cross
    the boundary for 0.025 (2.24); once the first is rejected it is tested at 0.05 (2.03)."""
    fractions = fractions_of(1, 5)
    assert boundaries(0.025, fractions)[-1] > 2.2 > boundaries(0.05, fractions)[-1]
    out = decide({"a": [0, 0, 0, 0, 6.0], "b": [0, 0, 0, 0, 2.2]}, fractions, 0.05)
    assert out["a"].decision == out["b"].decision == "rejected"
    alone = decide({"b": [0, 0, 0, 0, 2.2], "c": [0, 0, 0, 0, 0.0]}, fractions, 0.05)
    assert alone["b"].decision == "not decided"


def test_futility_stops_a_flat_comparison_and_is_non_binding():
    fractions = fractions_of(5, 40)
    out = decide({"flat": [0.05, 0.0, 0.02]}, fractions, 0.05, futility=0.1)
    assert out["flat"].decision == "futile" and out["flat"].at == 1
    assert conditional_power(0.05, 0.125, 2.07) < 0.1 < conditional_power(2.0, 0.5, 2.07)


def test_statistics():
    assert rate_z(np.zeros(5), np.zeros(5)) == 0.0
    # 0/10 against 5/10: Fisher's two-sided p = 0.0325 as a z, negative (the treatment's rate is lower)
    from scipy import stats as sps
    p = sps.fisher_exact([[0, 10], [5, 5]])[1]
    assert rate_z(np.zeros(10), np.r_[np.ones(5), np.zeros(5)]) == pytest.approx(-sps.norm.isf(p / 2))
    from scipy import stats
    x, y = np.arange(8.0), np.arange(8.0) + 3.5
    ref = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=False)
    assert 2 * stats.norm.sf(abs(rank_z(x, y))) == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["collapse", "quality"])
def test_the_family_wise_error_under_the_null_is_at_most_alpha(kind):
    from benchmarks.sequential import one_sweep

    rng = np.random.default_rng(1)
    sims = 200
    errors = sum(bool(one_sweep(rng, kind, 12, 5, 40, False, None)[0]) for _ in range(sims))
    assert errors / sims <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / sims)

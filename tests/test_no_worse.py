"""Non-inferiority claims (expect: no_worse with a margin): the one-sided bounds pinned to their
references (statsmodels for Newcombe's, scipy's exact Mann-Whitney and full enumeration for the
Hodges-Lehmann bound), decided with Holm over the family, worded by analysis.wording, and the
study file's margin refused in one line where it is missing, not positive or out of place."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep

from analysis import claims as decide_claims
from analysis import ranks, stats, wording
from analysis.load import load_results
from analysis.verdicts import Study
from tests.helpers import CLAIMS, STUDY, planted_study
from vi_sweeps.study.claims import declared, digest, record
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study_text

TABLES = [(0, 10, 0, 10), (1, 10, 3, 10), (2, 20, 2, 20), (0, 20, 6, 20), (7, 20, 4, 20), (10, 10, 0, 10)]


@pytest.mark.parametrize("k1, n1, k0, n0", TABLES)
@pytest.mark.parametrize("level", [0.95, 0.975, 0.995])
def test_the_one_sided_newcombe_bound_is_statsmodels_two_sided_end(k1, n1, k0, n0, level):
    lo, hi = confint_proportions_2indep(k1, n1, k0, n0, method="newcomb", compare="diff", alpha=2 * (1 - level))
    assert stats.newcombe_bound(k1, n1, k0, n0, level) == pytest.approx(hi, abs=1e-12)
    assert stats.newcombe_bound(k1, n1, k0, n0, level, upper=False) == pytest.approx(lo, abs=1e-12)


@pytest.mark.parametrize("k1, n1, k0, n0", TABLES[:-1])
def test_the_rate_p_is_the_level_at_which_the_bound_reaches_the_margin(k1, n1, k0, n0):
    """Inverting the bound: at 1 - p it equals the margin (1e-9), just inside it excludes it."""
    p = stats.no_worse_rate_p(k1, n1, k0, n0, 0.2)
    assert 0 < p < 1
    assert stats.newcombe_bound(k1, n1, k0, n0, 1 - p) == pytest.approx(0.2, abs=1e-9)
    assert stats.newcombe_bound(k1, n1, k0, n0, 1 - p * 1.01) < 0.2 < stats.newcombe_bound(k1, n1, k0, n0, 1 - p * 0.99)


def test_the_rate_p_at_its_boundaries():
    assert stats.no_worse_rate_p(10, 10, 0, 10, 0.2) == 1.0  # the difference itself is past the margin
    assert stats.no_worse_rate_p(4, 10, 2, 10, 0.2) == 1.0  # +0.20 is at the margin: not excluded at any level
    assert stats.no_worse_rate_p(0, 10, 0, 10, 0.2) == pytest.approx(0.05692315, abs=1e-8)  # why 0/10 vs 0/10 is short
    # a rate that is better when higher: the lower bound against -margin, the mirror image
    assert stats.no_worse_rate_p(3, 10, 1, 10, 0.2, lower_is_better=False) == pytest.approx(
        stats.no_worse_rate_p(1, 10, 3, 10, 0.2))


def enumerated_one_sided(x, y) -> float:
    """P(U <= u) over every split of the pooled values (no ties): the reference."""
    pooled = np.r_[x, y]
    u = (x[:, None] > y[None, :]).sum()
    us = []
    for c in itertools.combinations(range(len(pooled)), len(x)):
        a, b = pooled[list(c)], np.delete(pooled, list(c))
        us.append((a[:, None] > b[None, :]).sum())
    return float((np.array(us) <= u).mean())


@pytest.mark.parametrize("seed", range(4))
def test_the_rank_p_is_the_exact_mann_whitney_against_the_margin(seed):
    rng = np.random.default_rng(seed)
    x, y, margin = rng.normal(0.3, 1, 6), rng.normal(0, 1, 5), 0.8
    got = ranks.no_worse_p(x, y, margin)
    assert got == pytest.approx(enumerated_one_sided(x - margin, y), abs=1e-12)
    assert got == pytest.approx(sps.mannwhitneyu(x - margin, y, alternative="less", method="exact").pvalue, abs=1e-12)
    higher = ranks.no_worse_p(x, y, margin, lower_is_better=False)
    assert higher == pytest.approx(sps.mannwhitneyu(x + margin, y, alternative="greater", method="exact").pvalue, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_the_rank_bound_is_the_exact_intervals_end_and_agrees_with_the_test(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0.5, 1, 9), rng.normal(0, 1, 11)
    _, lo, hi = ranks.hodges_lehmann(x, y, 0.90)
    assert ranks.hodges_lehmann_bound(x, y, 0.95) == hi and ranks.hodges_lehmann_bound(x, y, 0.95, upper=False) == lo
    for margin in np.linspace(0.1, 3, 30):  # the bound excludes the margin exactly where p <= 1 - level
        for level in (0.9, 0.95, 0.99):
            assert (ranks.hodges_lehmann_bound(x, y, level) < margin) == (ranks.no_worse_p(x, y, margin) <= 1 - level)


def test_three_against_three_has_no_finite_bound_at_99():
    assert ranks.hodges_lehmann_bound([1, 2, 3], [1, 2, 3], 0.99) == math.inf
    assert ranks.no_worse_p([1, 2, 3], [1, 2, 3], 0.5) == pytest.approx(7 / 20, abs=1e-12)  # P(U <= 3) at 3 vs 3


def test_wording_says_no_worse_only_where_the_bound_excludes_the_margin():
    assert wording.verdict(True, True, math.nan, 0.12, margin=0.2) == "supports: no worse than the baseline by more than 0.20"
    assert wording.verdict(False, True, math.nan, 0.2, margin=0.2) == (
        "not decided: the data exclude an increase larger than 0.20 (95% one-sided), not one larger than the margin 0.20")
    assert wording.verdict(False, True, math.nan, 0.31, margin=0.2, level="97.5% one-sided, simultaneous over 2") == (
        "not decided: the data exclude an increase larger than 0.31 (97.5% one-sided, simultaneous over 2), not one larger "
        "than the margin 0.20")
    assert wording.verdict(False, True, math.nan, math.inf, margin=0.2) == (
        "not decided: the data exclude no increase of any size (one-sided), so not one larger than the margin 0.20")
    assert wording.verdict(False, True, -1.7, math.nan, fmt="{:.3g}", margin=0.5, worse_up=False) == (
        "not decided: the data exclude a decrease larger than 1.7 (95% one-sided), not one larger than the margin 0.5")
    assert wording.is_decided("supports: no worse than the baseline by more than 0.20")
    assert not wording.is_decided("not decided: the data exclude no increase of any size (one-sided), so not one larger")


NO_WORSE = [
    {"id": "same-rate", "statement": "lambda 50 loses modes no more often", "treatment": [50.0], "baseline": 0.0,
     "within": {}, "primary": {"endpoint": "mode_loss", "expect": "no_worse", "margin": 0.2}, "secondary": [],
     "family": "nw", "alpha": 0.05},
    {"id": "same-quality", "statement": "lambda > 0 ends no worse", "treatment": [0.5, 5.0], "baseline": 0.0,
     "within": {}, "primary": {"endpoint": "quality", "expect": "no_worse", "margin": 0.05},
     "secondary": [{"endpoint": "hq_share", "expect": "no_worse", "margin": 0.1}], "family": "nw", "alpha": 0.05},
]


def test_planted_non_inferiority_is_decided_with_holm_over_the_family(tmp_path):
    """lambda 5 ends as the baseline (fd 0.10 each): no worse by 0.05; lambda 0.5 (blur, fd 1.10)
    and equal rates of 10/20 against a margin of 0.2 are not decided. One family of three."""
    folder = planted_study(tmp_path, NO_WORSE)
    res = load_results([str(folder)], warn=False)
    study = Study("planted", res.trials, res.metrics, res.contract | res.sources[0]["contract"])
    cells = decide_claims.decide(decide_claims.declared_claims([study])).set_index(["claim", "comparison"])
    x = res.trials[res.trials["config/lam"] == 5.0]["eval/fd_2d"].to_numpy()
    y = res.trials[res.trials["config/lam"] == 0.0]["eval/fd_2d"].to_numpy()
    p = sps.mannwhitneyu(x - 0.05, y, alternative="less", method="exact").pvalue
    good = cells.loc[("same-quality", "lam 5 vs 0")]
    assert good["p"] == pytest.approx(p, abs=1e-12) and good["p_holm"] == pytest.approx(3 * p, rel=1e-9)
    assert good["verdict"] == "supports: no worse than the baseline by more than 0.05"
    rate = cells.loc[("same-rate", "lam 50 vs 0")]
    assert rate["treatment"] == "10/20" and rate["baseline"] == "10/20"
    assert rate["p"] == pytest.approx(stats.no_worse_rate_p(10, 20, 10, 20, 0.2), rel=1e-12)
    bound = stats.newcombe_bound(10, 20, 10, 20, 1 - 0.05 / 3)
    assert rate["verdict"] == (f"not decided: the data exclude an increase larger than {bound:.2f} (98.3% one-sided, "
                               "simultaneous over 3), not one larger than the margin 0.20")
    blur = cells.loc[("same-quality", "lam 0.5 vs 0")]
    assert blur["verdict"].startswith("not decided: the data exclude an increase larger than 1")
    assert "hq_share:" in blur["secondary"] and "one-sided against the margin" in blur["secondary"]
    _, lines = decide_claims.decide_folders([str(folder)])
    assert lines == ["same-rate (planted): not decided at this n (no cell of 1 decided)",
                     "same-quality (planted): partly supported (1 of 2 cells; the rest not decided)"]


NW = "    primary: {endpoint: mode_loss, expect: lower}"


@pytest.mark.parametrize("primary, line", [
    ("{endpoint: mode_loss, expect: no_worse}", "claims[0].primary.margin: required with expect: no_worse"),
    ("{endpoint: mode_loss, expect: no_worse, margin: -0.1}", "claims[0].primary.margin: must be a positive number below 1 "
     "(a rate) (got -0.1)"),
    ("{endpoint: quality, expect: no_worse, margin: 0}", "claims[0].primary.margin: must be a positive number (got 0.0)"),
    ("{endpoint: mode_loss, expect: lower, margin: 0.2}", "claims[0].primary.margin: only with expect: no_worse (got "
     "expect: lower); valid choices: remove margin, or expect: no_worse"),
    ("{endpoint: time_to_collapse, expect: no_worse, margin: 100}", "claims[0].primary.expect: no_worse needs an endpoint "
     "with a one-sided bound (got time_to_collapse); valid choices: mode_loss, modes_captured"),
])
def test_a_misplaced_or_missing_margin_is_refused_in_one_line(primary, line):
    with pytest.raises(ConfigError) as err:
        load_study_text(STUDY.replace(NW, f"    primary: {primary}"), "claimed.yaml")
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(line), err.value.problems


def test_a_margin_is_recorded_and_a_record_without_margins_keeps_its_hash():
    plain = load_study_text(STUDY, "claimed.yaml").spec
    assert "margin" not in declared(plain)[0]["primary"]
    # the hash the committed exports recorded before margins existed (their claims as dumped then)
    assert digest(declared(plain)) == digest([{**CLAIMS[0] | {"id": "C1", "statement": "lambda 5 loses modes less often",
                                                              "treatment": None, "baseline": None}}])
    margin = load_study_text(STUDY.replace(NW, "    primary: {endpoint: mode_loss, expect: no_worse, margin: 0.2}"),
                             "claimed.yaml").spec
    stored, why = record(margin, None, today="2026-12-07")
    assert why is None and stored["claims"][0]["primary"] == {"endpoint": "mode_loss", "expect": "no_worse", "margin": 0.2}

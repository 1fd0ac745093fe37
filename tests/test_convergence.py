"""Time to converge (analysis.convergence): claim C2's "converges faster", per seed, with a
seed that never converged counted as slower than every seed that did."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis import convergence
from analysis.report import build_report
from analysis.synthetic import synthetic_results
from tests.conftest import ROOT
from vi_contract.rules import Rule

RULE = Rule("eval/modes_frac", ">=", 0.875, good=True)


def test_steps_to_converge_by_hand():
    trials = pd.DataFrame({"trial_id": ["fast", "late", "never", "diverged", "unmeasured"],
                           "diverged": [False, False, False, True, False]})
    metrics = pd.DataFrame({
        "trial_id": ["fast"] * 3 + ["late"] * 3 + ["never"] * 3 + ["diverged"] * 2 + ["unmeasured"],
        "step": [100, 200, 300] * 3 + [100, 200, 100],
        # "fast" dips again after converging: the first time counts
        "eval/modes_frac": [0.5, 0.875, 0.5, 0.5, 0.75, 1.0, 0.5, 0.625, 0.75, 1.0, np.nan, np.nan]})
    steps = convergence.steps_to_converge(trials, metrics, RULE)
    assert steps.tolist()[:4] == [200.0, 300.0, math.inf, math.inf] and math.isnan(steps.iloc[4])
    lower = convergence.steps_to_converge(trials, metrics.assign(**{"eval/fd_2d": metrics["eval/modes_frac"]}),
                                          Rule("eval/fd_2d", "<=", 0.5, good=True))
    assert lower.tolist()[:3] == [100.0, 100.0, 100.0]


def test_a_time_never_reached_ranks_above_every_finite_one():
    x, y = np.array([200.0] * 6), np.array([800.0] * 3 + [math.inf] * 3)
    out = convergence.compare_times(x, y)
    # only the ranks count: never is above every finite time
    assert out["p"] == pytest.approx(2 / math.comb(12, 6))  # exact: every x below every y
    assert out["diff"] == -math.inf  # the baseline's median (between 800 and never) is not reached
    assert convergence.compare_times(np.array([math.inf] * 4), np.array([math.inf] * 4))["p"] == 1.0


PLANTED = {(False, 5, 0.0): [8] * 6 + [11] * 6, (False, 5, 5.0): [2] * 12,  # 11 of 10 evaluations: never
           (True, 1, 0.0): 3, (True, 1, 5.0): 3}


@pytest.mark.slow
def test_a_planted_speed_up_is_found_and_a_planted_null_is_not(tmp_path):
    rates = dict.fromkeys(PLANTED, 0.0)
    synthetic_results(tmp_path / "r", rates, seeds=12, converge_at=PLANTED)
    build_report([str(tmp_path / "r")], str(tmp_path / "report"))
    table = pd.read_csv(tmp_path / "report" / "convergence.csv").set_index(["regime", "treatment"])
    assert table.loc[("bn=False, g_steps=5", 5), ["converged", "steps_median"]].tolist() == [12, 200.0]
    assert table.loc[("bn=False, g_steps=5", 0), "converged"] == 6 and table.loc[("bn=False, g_steps=5", 0), "steps_median"] == math.inf
    assert table.loc[("bn=True, g_steps=1", 0), "steps_median"] == 300.0
    found = pd.read_csv(tmp_path / "report" / "findings.csv").set_index("regime")["convergence"]
    assert found["bn=False, g_steps=5"].startswith("converges faster (12/12 vs 6/12 reached modes_frac>=0.875; "
                                                   "median steps 200 vs not reached), significant at 5%")
    assert found["bn=True, g_steps=1"].startswith("time to converge not decided")
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "time_to_converge.png" in text and "converges faster" in text
    assert (tmp_path / "report" / "time_to_converge.png").stat().st_size > 5000
    # each seed's course (issue 25): nothing collapses here, so every seed that got good kept it
    onsets = pd.read_csv(tmp_path / "report" / "onsets.csv")
    assert len(onsets) == 48 and (onsets["collapse_at"].dropna() == math.inf).all()
    late = onsets[(onsets["regime"] == "bn=False, g_steps=5") & (onsets["treatment"] == 0)].sort_values("seed")
    assert late["good_at"].tolist() == [800.0] * 6 + [math.inf] * 6  # 11 of 10 evaluations: never
    assert "onsets.png" in text and "collapsed after good" in text
    assert (tmp_path / "report" / "onsets.png").stat().st_size > 5000


def test_three_seeds_against_three_are_never_significant_even_when_tied_apart():
    """Times on the evaluation grid tie; scipy's default then used the normal approximation
    and called 3/3 vs 0/3 'significant' (p = 0.047). Exactly, 0.1 is the smallest p there is."""
    out = convergence.compare_times(np.array([200.0] * 3), np.array([math.inf] * 3))
    assert out["p"] == pytest.approx(0.1)
    assert convergence.compare_times(np.array([200.0] * 4), np.array([math.inf] * 4))["p"] == pytest.approx(2 / 70)


def test_a_diverged_trial_of_a_data_set_without_the_metric_has_no_time():
    """It was counted as never converged, adding a convergence finding for a data set whose
    evaluator has no modes_frac (0/2 vs 0/2, p = 1) to the Holm family."""
    trials = pd.DataFrame({"trial_id": ["ring", "ring-diverged", "faces-diverged"], "dataset": ["ring8", "ring8", "faces"],
                           "diverged": [False, True, True]})
    metrics = pd.DataFrame({"trial_id": ["ring", "ring-diverged", "faces-diverged"], "step": [100, 100, 100],
                            "eval/modes_frac": [1.0, 0.25, np.nan]})
    steps = convergence.steps_to_converge(trials, metrics, RULE)
    assert steps.iloc[0] == 100 and steps.iloc[1] == math.inf and math.isnan(steps.iloc[2])


def test_arms_of_different_budgets_are_compared_over_the_steps_both_had():
    assert convergence.censor(np.array([300.0, 900.0, math.inf]), 500).tolist() == [300.0, math.inf, math.inf]


@pytest.mark.slow
@pytest.mark.parametrize("rule, expected", [("fid>=3", "--converged: unknown metric 'fid'; valid choices: modes_frac, fd_2d"),
                                            ("modes_frac>=e", "'e' is not a number"),
                                            ("modes_frac>0.5", "'modes_frac>0.5' is not METRIC>=VALUE or METRIC<=VALUE")])
def test_a_bad_convergence_rule_exits_2_in_one_line_and_writes_nothing(tmp_path, rule, expected):
    synthetic_results(tmp_path / "r", {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=4)
    r = subprocess.run([sys.executable, "-m", "analysis", "report", str(tmp_path / "r"), "--out", str(tmp_path / "out"),
                        "--converged", rule], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_a_rule_given_while_nothing_has_finished_yet_still_gets_the_early_report(tmp_path):
    import pyarrow.parquet as pq

    from vi_contract import schema

    synthetic_results(tmp_path / "r", {(True, 1, 0.0): 0.0}, seeds=3)
    table = pq.read_table(tmp_path / "r" / schema.TRIALS_FILE)
    running = table.set_column(table.schema.get_field_index("status"), "status",
                               pa_array(["running"] * len(table)))
    pq.write_table(running.replace_schema_metadata(table.schema.metadata), tmp_path / "r" / schema.TRIALS_FILE)
    text = build_report([str(tmp_path / "r")], str(tmp_path / "out"), "modes_frac>=0.9").read_text()
    assert "no trial has finished yet" in text


def pa_array(values):
    import pyarrow as pa

    return pa.array(values)


def test_no_difference_of_medians_is_given_where_a_median_is_not_reached():
    """Both arms never converging read "difference +0 (95% interval -inf to +inf)"."""
    never = np.array([math.inf] * 8)
    text = convergence.convergence_wording("modes_frac>=0.875", never, never, 1.0, 1.0, 0.05)
    assert "median steps not reached vs not reached;" in text and "difference +" not in text and "interval" not in text
    text = convergence.convergence_wording("modes_frac>=0.875", np.array([200.0] * 8), np.array([400.0] * 8), 1e-4,
                                           1e-4, 0.05)
    assert "difference -200 (95% interval -200 to -200)" in text


def test_onsets_by_hand_a_collapse_counts_only_after_the_first_good_evaluation():
    """Issue 25 (C1-long): per seed, when it first got good, its first collapse after that (a
    dip it may come back from) and whether it ended collapsed."""
    trials = pd.DataFrame({"trial_id": ["fell", "kept", "never", "early", "blew", "bad"],
                           "dataset": "ring8", "diverged": [False, False, False, False, True, False],
                           "collapsed": [True, False, False, False, True, True], "steps_done": [400, 400, 400, 400, 300, 400]})
    ids = [t for t in trials["trial_id"] for _ in range(4)]
    metrics = pd.DataFrame({
        "trial_id": ids, "step": [100, 200, 300, 400] * 6,
        "eval/modes_frac": [0.5, 0.9, 0.6, 0.25,   # fell: good at 200, collapsed at 400 (0.6 at 300 is no collapse)
                            0.9, 0.4, 0.95, 1.0,   # kept: good at 100, dipped at 200, came back: not ended collapsed
                            0.25, 0.6, 0.7, 0.8,   # never good: its early collapse is no collapse after good
                            0.25, 0.3, 0.9, 0.9,   # early: collapsed before it got good, never after
                            0.9, 0.9, 0.9, np.nan,  # blew: good at 100, diverged with no evaluation saying so
                            0.9, 0.9, 0.9, 0.9],   # bad: meets the rule while counted collapsed (another metric): never good
        "collapsed": [False, False, False, True, False, True, False, False, True, False, False, False,
                      True, True, False, False, False, False, False, False, True, True, True, True],
        "diverged": [False] * 24})
    on = convergence.onsets(trials, metrics, RULE)
    assert on["good_at"].tolist() == [200.0, 100.0, math.inf, 300.0, 100.0, math.inf]
    assert on["collapse_at"].tolist()[:2] == [400.0, 200.0] and on["collapse_at"].iloc[[2, 5]].isna().all()
    assert on["collapse_at"].tolist()[3:5] == [math.inf, 300.0]
    assert on["ended_collapsed"].tolist()[:2] == [1.0, 0.0] and on["ended_collapsed"].tolist()[3:5] == [0.0, 1.0]
    # the share of evaluations after good spent collapsed: fell 1 of 2, kept 1 of 3, early 0 of 1,
    # blew 0 of 3 plus its unrecorded divergence (1 of 4)
    assert on["collapsed_share"].iloc[[0, 1, 3, 4]].tolist() == pytest.approx([0.5, 1 / 3, 0.0, 0.25])
    assert on["collapsed_share"].iloc[[2, 5]].isna().all()
    table = convergence.onset_table(trials.assign(status="finished", cond="a", **on), ["cond"])
    row = table.iloc[0]
    assert (row["n"], row["got_good"], row["collapsed_after"], row["ended_collapsed"]) == (6, 4, 3, 2)
    # the lower median (100, 100, 200, 300 -> 100; before: 150, a step never evaluated); 200, 100, 200 -> 200
    assert row["good_at_median"] == 100.0 and row["good_for_median"] == 200.0
    assert row["collapsed_share_mean"] == pytest.approx((0.5 + 1 / 3 + 0.0 + 0.25) / 4)
    # a data set without the rule's metric has no course at all (not "never got good")
    other = trials.assign(dataset=["ring8"] * 5 + ["images"])
    unmeasured = convergence.onsets(other, metrics[metrics["trial_id"] != "bad"], RULE)
    assert unmeasured.iloc[5].isna().all() and unmeasured["good_at"].iloc[2] == math.inf


def test_onsets_of_a_synthetic_folder_recover_the_planted_times(tmp_path):
    from analysis.load import load_results

    at = list(range(1, 11)) * 2  # the evaluation each seed first gets good
    synthetic_results(tmp_path, {(True, 1, 0.0): 0.7}, seeds=20, converge_at={(True, 1, 0.0): at})
    res = load_results([str(tmp_path)], warn=False)
    on = convergence.onsets(res.trials, res.metrics, RULE)
    checked = 0
    for (_, trial), (_, o) in zip(res.trials.iterrows(), on.iterrows(), strict=True):
        m = res.metrics[res.metrics["trial_id"] == trial["trial_id"]]
        fell = m.loc[m["collapsed"] | m["diverged"], "step"]
        planted = at[int(trial["config/seed"])] * 100
        if fell.empty or fell.min() > planted:  # it got good where planted
            assert o["good_at"] == planted
            assert o["collapse_at"] == (fell.min() if len(fell) else math.inf)
            assert o["ended_collapsed"] == float(len(fell) > 0)  # a planted collapse lasts to the end
            checked += 1
        else:  # it collapsed first and stayed collapsed: never good
            assert o["good_at"] == math.inf and math.isnan(o["collapse_at"])
    assert 5 <= checked < 20


def test_the_course_table_prints_an_evaluated_step_and_says_which_median():
    """Issue 39: with evaluations every 200 steps and four seeds good at 800, 800, 1,000 and
    1,000, "first good, median step" printed 900 (the mean of the middle two), a step never
    evaluated; likewise 500 steps from good to a collapse where every seed took 400 or 600."""
    seeds = pd.DataFrame({"cond": "a", "good_at": [800.0, 1000.0, 800.0, 1000.0, math.inf],
                          "collapse_at": [1200.0, 1600.0, 1200.0, 1600.0, np.nan],
                          "ended_collapsed": [1.0, 0.0, 0.0, 1.0, np.nan], "collapsed_share": [0.5, 0.25, 0.1, 0.2, np.nan]})
    row = convergence.onset_summary(seeds, ["cond"], "modes_frac>=0.875").iloc[0]
    assert row["first good: step of the median seed (lower median)"] == "800"  # before: "900"
    assert row["steps from good to that collapse (lower median)"] == "400"  # before: "500"
    assert row["got good (modes_frac>=0.875, not collapsed)"] == 4 and row["seeds"] == 5
    assert convergence.lower_median([1000.0, 800.0, 1200.0]) == 1000.0 and math.isnan(convergence.lower_median([]))


def test_the_findings_print_no_bootstrap_interval_of_times_under_five_seeds(tmp_path):
    """Issue 39: the methods say bootstrap intervals need n >= 5, yet at 3 seeds an arm the
    finding read "difference -200 (95% interval -200 to -200)"; now it says there is none, and why."""
    from analysis.load import load_results
    from analysis.report import analyse, convergence_rule

    synthetic_results(tmp_path, {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0}, seeds=3,
                      converge_at={(True, 1, 0.0): 4, (True, 1, 5.0): 2})
    res = load_results([str(tmp_path)], warn=False)
    text = analyse(res, convergence_rule(None, res)).found["convergence"].iloc[0]
    assert text == ("time to converge not decided at n = 3 vs 3 (3/3 vs 3/3 reached modes_frac>=0.875; median steps 200 vs "
                    "400, difference -200 (no interval: the bootstrap needs n >= 5); Mann-Whitney p = 0.1)")
    five = convergence.convergence_wording("modes_frac>=0.875", np.array([200.0] * 5), np.array([400.0] * 5), 0.01, 0.01, 0.05)
    assert "difference -200 (95% interval -200 to -200)" in five  # from n = 5 an arm, as before

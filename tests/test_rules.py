"""One Rule type (vi_contract.rules) for the collapse rule, the convergence rule, the
literature's collapse definitions and the ordering of sample panels (issue 20)."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import convergence, samples, tables
from vi_contract.rules import Rule, RuleError, collapse_rule, is_collapsed


def test_a_rule_parses_holds_elementwise_and_never_on_a_missing_value():
    rule = collapse_rule("modes_frac<0.5")
    assert rule == Rule("eval/modes_frac", "<", 0.5) and rule.text == "modes_frac<0.5"
    assert rule.holds(0.25) and not rule.holds(0.5) and not rule.holds(math.nan) and not rule.holds(None)
    values = pd.Series([0.1, 0.5, np.nan, 0.9])
    assert rule.holds(values).tolist() == [True, False, False, False]
    assert is_collapsed(rule, {"eval/modes_frac": 0.75}, diverged=True)  # a diverged trial covers no mode


@pytest.mark.parametrize(("text", "good", "ops", "higher"), [
    ("modes_frac<0.5", False, ("<", ">"), True),       # collapse when few modes: more is better
    ("kl_uniform>0.693", False, ("<", ">"), False),    # collapse when far from uniform: less is better
    ("modes_frac>=0.875", True, (">=", "<="), True),   # converged when most modes
    ("fd_2d<=0.1", True, (">=", "<="), False),          # converged when close
])
def test_which_way_a_metric_is_better_follows_from_what_the_rule_states(text, good, ops, higher):
    assert Rule.parse(text, ops=ops, good=good).higher_is_better is higher


@pytest.mark.parametrize(("text", "message"), [
    ("modes_frac<=0.5", "collapse_rule: 'modes_frac<=0.5' is not METRIC<VALUE or METRIC>VALUE"),
    ("modes_frac<abc", "collapse_rule: 'abc' is not a number"),
    ("modes_frac<nan", "collapse_rule: 'nan' is not a number"),
    ("fid<3", "collapse_rule: unknown metric 'fid'; valid choices: modes_frac, kl_uniform"),
])
def test_a_bad_rule_is_one_line_naming_what_it_is_and_the_choices(text, message):
    with pytest.raises(RuleError) as err:
        collapse_rule(text, ["eval/modes_frac", "kl_uniform"])
    assert str(err.value) == message


def test_the_four_uses_read_one_type():
    assert all(isinstance(r, Rule) and not r.good for r in tables.DEFINITIONS.values())
    assert convergence.parse_rule(convergence.DEFAULT_RULE, ["eval/modes_frac"]) == Rule("eval/modes_frac", ">=", 0.875, True)
    assert samples.rule_metric("kl_uniform>0.7") == ("eval/kl_uniform", False)
    assert samples.rule_metric("modes_frac<0.5") == ("eval/modes_frac", True)
    trials = pd.DataFrame({"trial_id": ["a", "b"], "dataset": ["ring8", "ring8"], "diverged": [False, False]})
    metrics = pd.DataFrame({"trial_id": ["a", "a", "b"], "step": [10, 20, 10], "eval/modes_frac": [0.5, 0.9, 0.8]})
    steps = convergence.steps_to_converge(trials, metrics, convergence.parse_rule("modes_frac>=0.875", ["modes_frac"]))
    assert steps.tolist() == [20, math.inf]

"""Time to converge: the paper's claim that the regulariser makes training "converge faster"
(experiment 2), measured per seed.

A trial converges at the first evaluation at which its convergence rule holds (default
`modes_frac>=0.875`: 7 of the ring's 8 modes, 22 of the grid's 25, by this project's count). A
trial that never meets it within its budget, or that diverged, has not converged: its time is
infinite, so medians and the rank test count it as slower than every seed that converged
(a censored time, never dropped). A condition then reports the share that converged and the
median steps with a bootstrap interval; a treatment is compared with the baseline by the
Mann-Whitney test on these times.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.stats import bootstrap_median, mann_whitney_p, median_difference, wilson
from analysis.tables import MIN_N_INTERVAL
from vi_contract import schema
from vi_contract.rules import Rule

DEFAULT_RULE = "modes_frac>=0.875"


def parse_rule(text: str, metrics: list[str]) -> Rule:
    """`METRIC>=VALUE` or `METRIC<=VALUE` over the results' eval metrics (a good state)."""
    return Rule.parse(text, metrics, ops=(">=", "<="), good=True, what="--converged")


def _measured(trials: pd.DataFrame, m: pd.DataFrame) -> pd.Series:
    """Per trial: whether its data set has values of the rule's metric (m: its non-NaN rows)."""
    measured = set(m["trial_id"])
    if "dataset" in trials:
        return trials["dataset"].isin(trials.loc[trials["trial_id"].isin(measured), "dataset"])
    return trials["trial_id"].isin(measured)


def steps_to_converge(trials: pd.DataFrame, metrics: pd.DataFrame, rule: Rule) -> pd.Series:
    """Per trial (aligned with `trials`): the first evaluated step meeting the rule; inf when
    none did or the trial diverged; NaN where the trial's data set has no value of the metric
    (its evaluator does not measure it)."""
    metric = rule.metric
    if metric not in metrics:
        return pd.Series(np.nan, index=trials.index)
    m = metrics[["trial_id", "step", metric]].dropna()
    hit = m[rule.holds(m[metric])]
    first = hit.groupby("trial_id")["step"].min()
    has_metric = _measured(trials, m)
    steps = trials["trial_id"].map(first).astype(float)
    steps[has_metric & steps.isna()] = math.inf
    steps[has_metric & trials["diverged"].astype(bool)] = math.inf
    return steps


ONSET_COLUMNS = ("good_at", "collapse_at", "ended_collapsed", "collapsed_share")  # what onsets() gives per trial


def onsets(trials: pd.DataFrame, metrics: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """Per trial (aligned with `trials`), its course:
    - `good_at`: the first evaluated step meeting the convergence rule while not counted
      collapsed or diverged (it got good); inf when none did;
    - `collapse_at`: the first evaluated step after it counted collapsed (its collapse rule) or
      diverged, a dip it may have come back from; inf when none;
    - `ended_collapsed`: it got good and its last evaluation counted collapsed, or it diverged;
    - `collapsed_share`: the share of its evaluations after getting good that counted collapsed
      or diverged (a divergence no evaluation records counts as one more, collapsed, at its end;
      NaN when it got good at its last evaluation): how long it spent collapsed, dips included.
    All NaN where the trial's data set has no value of the rule's metric (not measured), and
    all but `good_at` NaN for a trial that never got good."""
    out = pd.DataFrame(np.nan, index=trials.index, columns=list(ONSET_COLUMNS))
    if rule.metric not in metrics:
        return out
    m = metrics[["trial_id", "step", rule.metric, "collapsed", "diverged"]]
    fell = m["collapsed"].astype(bool) | m["diverged"].astype(bool)
    values = m[rule.metric].astype(float)
    first = m[rule.holds(values) & values.notna() & ~fell].groupby("trial_id")["step"].min()
    good = trials["trial_id"].map(first).astype(float)
    later = m["step"] > m["trial_id"].map(first)
    after = m[fell & later]
    dip = trials["trial_id"].map(after.groupby("trial_id")["step"].min()).astype(float)
    diverged = trials["diverged"].astype(bool)
    # a trial that diverged without an evaluation saying so fell at its end: its first dip when it
    # had none before, and one more collapsed evaluation in its share
    untold = diverged & ~trials["trial_id"].isin(m.loc[m["diverged"].astype(bool), "trial_id"])
    unsaid = good.notna() & dip.isna() & untold
    dip[unsaid] = trials.loc[unsaid, "steps_done"].astype(float)
    ended = trials["collapsed"].astype(bool) | diverged
    evals = trials["trial_id"].map(later.groupby(m["trial_id"]).sum()).fillna(0) + untold
    share = (trials["trial_id"].map(after.groupby("trial_id").size()).fillna(0) + untold) / evals.where(evals > 0)
    measured = _measured(trials, m[values.notna()])
    out.loc[measured, "good_at"] = good[measured].fillna(math.inf)
    got = measured & good.notna()
    out.loc[got, "collapse_at"] = dip[got].fillna(math.inf)
    out.loc[got, "ended_collapsed"] = ended[got].astype(float)
    out.loc[got, "collapsed_share"] = share[got]
    return out


def lower_median(values) -> float:
    """The lower median: at an even count the smaller of the middle two, so a median of evaluated
    steps is itself an evaluated step (the mean of 800 and 1,000 was 900, never evaluated)."""
    v = np.sort(np.asarray(values, dtype=float))
    return float(v[(len(v) - 1) // 2]) if len(v) else math.nan


def onset_table(labelled: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per condition of trials with a measured course (`good_at`, `collapse_at`,
    `ended_collapsed`; the callers pass finished trials): how many seeds got good and the step
    they first did (lower median); of those, how many dipped into a collapse after it at least
    once, the steps until the first dip (lower median), how many ended collapsed, and the mean
    over them of the share of evaluations after good that counted collapsed."""
    done = labelled[labelled["good_at"].notna()]
    rows = []
    for key, g in done.groupby(keys, sort=True):
        good = g[np.isfinite(g["good_at"].astype(float))]
        dipped = good[np.isfinite(good["collapse_at"].astype(float))]
        rows.append({**dict(zip(keys, key, strict=True)), "n": len(g), "got_good": len(good),
                     "good_at_median": lower_median(good["good_at"]), "collapsed_after": len(dipped),
                     "good_for_median": lower_median(dipped["collapse_at"] - dipped["good_at"]),
                     "ended_collapsed": int(good["ended_collapsed"].astype(float).sum()),
                     "collapsed_share_mean": float(good["collapsed_share"].astype(float).mean())})
    return pd.DataFrame(rows)


def onset_summary(labelled: pd.DataFrame, keys: list[str], rule: str) -> pd.DataFrame:
    """onset_table as the report and CLAIMS.md show it."""
    t = onset_table(labelled, keys)
    if t.empty:
        return t
    steps = lambda v: "" if v != v else f"{v:,.0f}"  # noqa: E731
    return pd.DataFrame({**{k: t[k] for k in keys}, "seeds": t["n"], f"got good ({rule}, not collapsed)": t["got_good"],
                         "first good: step of the median seed (lower median)": t["good_at_median"].map(steps),
                         "collapsed after good at some evaluation": [
                             f"{k}/{g}" for k, g in t[["collapsed_after", "got_good"]].itertuples(index=False)],
                         "steps from good to that collapse (lower median)": t["good_for_median"].map(steps),
                         "ended collapsed after good": [
                             f"{k}/{g}" for k, g in t[["ended_collapsed", "got_good"]].itertuples(index=False)],
                         "evaluations after good collapsed, mean share": t["collapsed_share_mean"].map(
                             lambda v: "" if v != v else f"{v:.2f}")})


# Bootstraps and differences of times run on a finite stand-in for "never" (percentiles would
# interpolate inf - inf to NaN); anything past NEVER_FROM is mapped back to infinity.
_NEVER, NEVER_FROM = 1e15, 1e12


def _finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(x), _NEVER, x)


def _back(v: float) -> float:
    return math.copysign(math.inf, v) if abs(v) > NEVER_FROM else v


def rule_text(rule: Rule) -> str:
    return rule.text


def convergence_table(labelled: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per condition of finished trials with a time (`steps_to_converge`): n, the number and
    share that converged (Wilson interval), and the median steps with a bootstrap interval
    (not reached, inf, when at least half did not converge)."""
    done = labelled[labelled["status"].isin(schema.FINISHED) & labelled["steps_to_converge"].notna()]
    rows = []
    for key, g in done.groupby(keys, sort=True):
        steps = g["steps_to_converge"].to_numpy(dtype=float)
        k, n = int(np.isfinite(steps).sum()), len(steps)
        lo, hi = wilson(k, n)
        med, mlo, mhi = (bootstrap_median(_finite(steps)) if n >= MIN_N_INTERVAL
                         else (float(np.median(_finite(steps))), math.nan, math.nan))
        med, mlo, mhi = _back(med), _back(mlo), _back(mhi)
        rows.append({**dict(zip(keys, key, strict=True)), "n": n, "converged": k, "converged_share": k / n,
                     "converged_lo": lo, "converged_hi": hi, "steps_median": med, "steps_lo": mlo, "steps_hi": mhi})
    return pd.DataFrame(rows)


def censor(x: np.ndarray, budget: float) -> np.ndarray:
    """Times past `budget` as not reached: two arms of different budgets are compared over the
    steps both had."""
    return np.where(np.asarray(x, dtype=float) > budget, math.inf, x)


def compare_times(x: np.ndarray, y: np.ndarray) -> dict:
    """Treatment times x against baseline times y: the median difference (bootstrap interval;
    infinite where a median is not reached) and the Mann-Whitney p on the censored times."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not len(x) or not len(y):
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan}
    d, lo, hi = (_back(v) for v in median_difference(_finite(x), _finite(y)))
    if min(len(x), len(y)) < 2:  # no test with one seed in an arm
        return {"diff": d, "lo": lo, "hi": hi, "p": math.nan}
    # on ranks: a time never reached ties with the others never reached, above every finite one
    p = mann_whitney_p(_finite(x), _finite(y))
    return {"diff": d, "lo": lo, "hi": hi, "p": 1.0 if math.isnan(p) else p}


def _steps(v: float) -> str:
    return "not reached" if math.isinf(v) else f"{v:,.0f}"


def convergence_wording(rule: str, x: np.ndarray, y: np.ndarray, p: float, adjusted: float, alpha: float) -> str:
    """One clause of a finding, by the report's rule: which converged faster, with the shares,
    the medians and their difference (bootstrap interval, only where both arms have n >= MIN_N_INTERVAL)
    and the test."""
    kx, ky = int(np.isfinite(x).sum()), int(np.isfinite(y).sum())
    med = lambda v: _steps(_back(float(np.median(_finite(v)))))  # noqa: E731
    d = compare_times(x, y)
    numbers = f"{kx}/{len(x)} vs {ky}/{len(y)} reached {rule}; median steps {med(x)} vs {med(y)}"
    if "not reached" not in (med(x), med(y)):  # a difference of medians exists only where both are reached
        bounds = " to ".join(f"{v:+,.0f}" if math.isfinite(v) else "unbounded" for v in (d["lo"], d["hi"]))
        numbers += f", difference {d['diff']:+,.0f} " + (f"(95% interval {bounds})" if min(len(x), len(y)) >= MIN_N_INTERVAL
                                                         else f"(no interval: the bootstrap needs n >= {MIN_N_INTERVAL})")
    if math.isnan(p):
        return f"no test of time to converge at n = {len(x)} vs {len(y)} (a test needs two seeds an arm; {numbers})"
    test = f"Mann-Whitney p = {p:.2g}" + ("" if adjusted == p else f", Holm-adjusted {adjusted:.2g}")
    if adjusted < alpha:
        # P(x < y) + P(x = y) / 2 above one half: a treatment seed tends to need fewer steps
        faster = (x[:, None] < y[None, :]).mean() + 0.5 * (x[:, None] == y[None, :]).mean() > 0.5
        return f"converges {'faster' if faster else 'slower'} ({numbers}), significant at {alpha:.0%} ({test})"
    return f"time to converge not decided at n = {len(x)} vs {len(y)} ({numbers}; {test})"

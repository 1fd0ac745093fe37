"""The paper's claims, decided from committed results by one stated rule.

Each Claim names the study it is measured in, the regime it is about, what is measured and
which direction the paper predicts. Every comparison behind a claim (a data set, a treatment
against its baseline) is a cell; a cell is decided by a two-sided test after Holm's correction
over the claim's cells, and the claim's verdict follows from its cells (VERDICT_RULE). The
numbers come from the same tables as the report (analysis.tables, analysis.convergence), so a
verdict can be checked against the report it cites. analysis.claims_page writes them as
CLAIMS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import convergence, ranks, tables, wording
from analysis.stats import detectable_difference, fisher_p, holm, newcombe_difference, wilson
from vi_contract import schema
from vi_contract.columns import config, settings

ALPHA = 0.05
AFTER_GOOD = "after_good"  # C1-long's collapse definition: ended collapsed after the seed got good
AFTER_GOOD_TEXT = ("the seed met the convergence rule at an evaluation where it was not collapsed (it got good) and "
                   "ended collapsed (its collapse rule at the last evaluation, or diverged); counted over the seeds "
                   "that got good. A dip into collapse that the seed came back from is not counted: it is shown "
                   "beside the verdict")
MARGIN = 0.2  # "does as well": a collapse rate at most this much higher, by the 95% interval

VERDICT_RULE = (
    f"Each cell is one comparison (a data set, a treatment against its baseline), decided by a two-sided test at "
    f"{ALPHA:.0%} after Holm's correction over the claim's cells: Fisher's exact test for collapse rates, the "
    "Mann-Whitney U test for steps to converge (never = slower than every seed that converged) and for the final "
    "quality metric (a diverged seed ranked worst), exact with ties (the permutation null of the rank sums) at "
    "every n the studies use. Beside each: the effect and its 95% interval (Newcombe's for a rate difference, the "
    "Hodges-Lehmann shift with its distribution-free interval for quality), and the smallest effect the cell's n "
    "detects with 80% power at its family's first Holm step. A cell **supports** the claim when the difference is "
    "significant in the predicted direction, **contradicts** it when it is significant in the other, and is **not "
    "decided** otherwise, worded by what the interval excludes (never as absence of an effect). For \"does as "
    f"well\" (C3), a cell supports when the 95% Newcombe interval of the collapse-rate difference lies below "
    f"+{MARGIN} and the quality difference is not significantly worse, contradicts when either is significantly "
    "worse, and is not decided otherwise (the margin's interval is the unadjusted 95% one). The claim is "
    "**supported** when every cell supports it, **contradicted** when every cell contradicts it, **mixed** when "
    "cells go both ways, **partly supported** or **partly contradicted** (as counted) when the others are not "
    "decided, and **not decided at this n** when no cell is decided. A claim about runs that got good first "
    f"(C1-long) counts collapse as **{AFTER_GOOD}** ({AFTER_GOOD_TEXT}); a cell in which the baseline or the "
    "treatment has no seed that got good is **premise not reached**: undecided, and left out of the claim's Holm "
    "family; the claim reads **premise not reached at this budget** when every cell is.")


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    study: str
    where: dict  # the regime: config or label values
    measure: str  # collapse | convergence | quality | as_well
    expect: str = "lower"  # for collapse: lower; convergence: faster; quality: better
    rule: str = "late"  # the collapse definition of a collapse claim
    baselines: tuple = ()  # compare against these (default: the study's compare baseline)
    treatment: object = None  # the treatment value (default: every value but the baselines)
    also: tuple = ()  # (study, where) pairs: the same regime in another study (its own axis names)
    premise: bool = False  # a collapse claim about runs that got good first: a cell with an arm none of whose
    # seeds met the convergence rule is "premise not reached", not a test of the claim

    def places(self) -> tuple[tuple[str, dict], ...]:
        """Every (study, regime) the claim is measured in, the first its own."""
        return ((self.study, self.where), *self.also)


CLAIMS = (
    Claim("C1", "With BatchNorm and one G phase per iteration, lambda = 0 collapses late in training and lambda > 0 "
          "does not: a lower late-collapse rate for every lambda > 0.", "bn_ablation", {"bn": True, "phases": "1x1"},
          "collapse", also=(("bn_ablation_digits", {"regime": "bn-1x1"}),)),
    Claim("C2a", "Without BatchNorm and with 5 phases, lambda > 0 converges faster (steps until the convergence rule "
          "holds).", "bn_ablation", {"bn": False, "phases": "5x5"}, "convergence", expect="faster",
          also=(("bn_ablation_digits", {"regime": "nobn-5x5"}),)),
    Claim("C2b", "Without BatchNorm and with 5 phases, lambda > 0 ends better (final Frechet distance).", "bn_ablation",
          {"bn": False, "phases": "5x5"}, "quality", expect="better",
          also=(("bn_ablation_digits", {"regime": "nobn-5x5"}),)),
    Claim("C3", "ALI trained with the paper's loss (-E_enc log D - E_gen log D) does as well as with the standard "
          "losses (minimax, non-saturating), with and without BatchNorm.", "ali_losses", {}, "as_well",
          baselines=("minimax", "nonsaturating"), treatment="vi"),
    Claim("C1-long", "At 4x and 10x bn_ablation's budget, with BatchNorm and one G phase, lambda = 0 reaches good "
          "samples and then collapses, and lambda = 5 does not: of the seeds that got good, fewer collapse after.",
          "bn_long", {}, "collapse", rule=AFTER_GOOD, premise=True),
    Claim("C4a", "(An extension.) A stabiliser lowers late collapse against no stabiliser, in each regime.",
          "stabilisers", {}, "collapse", baselines=("none",), also=(("stabilisers_digits", {}),)),
    Claim("C4b", "(An extension.) A stabiliser converges faster than no stabiliser, in each regime.", "stabilisers", {},
          "convergence", expect="faster", baselines=("none",), also=(("stabilisers_digits", {}),)),
    Claim("C4c", "(An extension.) A stabiliser ends better (final Frechet distance) than no stabiliser.", "stabilisers",
          {}, "quality", expect="better", baselines=("none",), also=(("stabilisers_digits", {}),)),
    Claim("C4d", "(An extension.) A stabiliser lowers late collapse against the paper's anchor term (lambda 5).",
          "stabilisers", {}, "collapse", baselines=("anchor",), also=(("stabilisers_digits", {}),)),
)


@dataclass
class Study:
    """One exported study: its trials labelled, the per-condition tables and per-seed times."""

    name: str
    trials: pd.DataFrame
    metrics: pd.DataFrame
    contract: dict
    lay: tables.Layout = field(init=False)

    def __post_init__(self):
        self.lay = tables.layout(self.trials, self.contract)
        done = self.trials[self.trials["status"].isin(schema.FINISHED)]
        rules = tables.collapse_rules(done, self.metrics)
        labelled = tables.with_labels(done, self.lay).assign(**{f"_{r}": v.values for r, v in rules.items()})
        rule = convergence.parse_rule(convergence.DEFAULT_RULE, tables.metric_keys(done, self.contract)) \
            if "eval/modes_frac" in done else None
        labelled["steps_to_converge"] = (convergence.steps_to_converge(labelled, self.metrics, rule).values
                                         if rule else np.nan)
        # each seed's course (C1-long's premise and measure); NaN throughout without the rule's metric
        on = (convergence.onsets(labelled, self.metrics, rule) if rule else
              pd.DataFrame(np.nan, index=labelled.index, columns=list(convergence.ONSET_COLUMNS)))
        labelled = labelled.assign(**{c: on[c].values for c in on})
        labelled[f"_{AFTER_GOOD}"] = labelled["ended_collapsed"].fillna(0).astype(bool)
        self.done = labelled
        self.axes = settings(done)  # the axes' own values by their study names (a label replaces an axis named regime)

    def arm(self, dataset: str, where: dict, value) -> pd.DataFrame:
        sel = (self.done["dataset"] == dataset) & (self.axes[self.lay.compare].map(tables._label) == tables._label(value))
        for key, want in where.items():
            sel &= self.axes[key].astype(str) == str(want)
        return self.done[sel]


def _cells(claim: Claim, study: Study, where: dict | None = None) -> list[dict]:
    """One row per (data set, treatment, baseline) of `study` in the regime `where` (default:
    the claim's own), with the numbers and the raw p."""
    where = claim.where if where is None else where
    compare = study.lay.compare
    baselines = claim.baselines or (study.lay.baseline,)
    values = sorted(study.axes[compare].unique(), key=lambda v: (isinstance(v, str), v))
    treatments = [claim.treatment] if claim.treatment is not None else [v for v in values if v not in baselines]
    rows, keys = [], study.contract.get("keys", {})
    for dataset in sorted(study.done["dataset"].unique()):
        # the other axes: one cell per value, never pooled (an axis named regime is named even while one value ran)
        named = ["regime"] if "regime" in study.lay.conditions and compare != "regime" else []
        rest = list(dict.fromkeys(r for r in [*study.lay.regimes, *named] if r not in where))
        regimes = [{}] if not rest else [
            dict(zip(rest, r, strict=True)) for r in study.axes[rest].drop_duplicates().itertuples(index=False)]
        for extra in regimes:
            cell = {**where, **extra}
            for base in baselines:
                b = study.arm(dataset, cell, base)
                for value in treatments:
                    t = study.arm(dataset, cell, value)
                    if len(t) and len(b):
                        rows.append({"study": study.name, "dataset": dataset, "regime": ", ".join(f"{k}={v}" for k, v in extra.items()),
                                     "treatment": f"{compare} {tables._label(value)}",
                                     "baseline": f"{compare} {tables._label(base)}", **MEASURES[claim.measure](claim, t, b, keys),
                                     **({"treatment got good": _reached(t), "baseline got good": _reached(b)}
                                        if claim.premise else {})})
    return rows


def claim_cells(claim: Claim, studies: dict[str, Study]) -> tuple[list[tuple[str, dict]], pd.DataFrame]:
    """The (study, regime) places of `claim` that `studies` has, and their cells decided
    together (one Holm family over every study the claim is measured in)."""
    measured, rows = [], []
    for name, where in claim.places():
        cells = _cells(claim, studies[name], where) if name in studies else []
        if cells:  # a study exported before any trial of this regime finished has not measured it
            measured.append((name, where))
            rows += cells
    return measured, decide(claim, pd.DataFrame(rows))


def _reached(arm: pd.DataFrame) -> str:
    """How many seeds of an arm got good (the premise of a late collapse; onsets' good_at)."""
    return f"{len(_got_good(arm))}/{len(arm)}"


def _rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def _got_good(arm: pd.DataFrame) -> pd.DataFrame:
    return arm[np.isfinite(arm["good_at"].astype(float).fillna(np.inf))]


def _collapse(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict, rule: str | None = None) -> dict:
    rule = rule or claim.rule
    all_t, all_b = t, b
    if rule == AFTER_GOOD:  # a share of the seeds that got good: only they could collapse after it
        t, b = _got_good(t), _got_good(b)
    kt, kb, nt, nb = int(t[f"_{rule}"].sum()), int(b[f"_{rule}"].sum()), len(t), len(b)
    if not nt or not nb:  # an arm with no seed that got good: nothing to compare (premise not reached)
        return {"treatment value": f"{kt}/{nt}", "baseline value": f"{kb}/{nb}", "difference": "", "p": 1.0,
                "sign": 0.0, "hi": math.nan, "d": 0.0, "other definitions": _others(rule, all_t, all_b)}
    d, lo, hi = newcombe_difference(kt, nt, kb, nb)
    return {"treatment value": _rate(kt, nt), "baseline value": _rate(kb, nb), "difference": f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]",
            "p": fisher_p(kt, nt, kb, nb), "sign": np.sign(d), "lo": lo, "hi": hi, "d": d, "nt": nt, "nb": nb,
            "rate_b": kb / nb, "other definitions": _others(rule, all_t, all_b)}


def _others(rule: str, t: pd.DataFrame, b: pd.DataFrame) -> str:
    """The rate difference and Fisher p under every other collapse definition, over all seeds."""
    nt, nb, out = len(t), len(b), []
    for other in [r for r in tables.RULES if r != rule and f"_{r}" in t]:
        ko, kbo = int(t[f"_{other}"].sum()), int(b[f"_{other}"].sum())
        out.append(f"{other} {ko / nt - kbo / nb:+.2f} (p = {fisher_p(ko, nt, kbo, nb):.2g})")
    return "; ".join(out)


def _times(t: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    budget = min(t[config("iterations")].max(), b[config("iterations")].max())
    return (convergence.censor(t["steps_to_converge"].dropna(), budget),
            convergence.censor(b["steps_to_converge"].dropna(), budget))


def _convergence(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict) -> dict:
    x, y = _times(t, b)
    out = convergence.compare_times(x, y)
    faster = (x[:, None] < y[None, :]).mean() + 0.5 * (x[:, None] == y[None, :]).mean() > 0.5 if len(x) and len(y) else False
    med = lambda v: "not reached" if not len(v) or math.isinf(float(np.median(v))) else f"{np.median(v):,.0f}"  # noqa: E731
    return {"treatment value": f"{int(np.isfinite(x).sum())}/{len(x)} converged, median {med(x)}",
            "baseline value": f"{int(np.isfinite(y).sum())}/{len(y)} converged, median {med(y)}",
            "difference": "" if "not reached" in (med(x), med(y)) else f"{out['diff']:+,.0f} steps",
            "p": out["p"], "sign": -1.0 if faster else 1.0, "nt": len(x), "nb": len(y)}


def _quality(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict) -> dict:
    metric = tables.quality_metric(t, keys)
    if metric is None:
        return {"treatment value": "no quality metric", "baseline value": "", "difference": "", "p": math.nan,
                "sign": 0.0}
    lower = keys.get(metric, {}).get("better", "lower") == "lower"
    x, y = (ranks.worst_ranked(a[metric], a["diverged"].astype(bool), lower) for a in (t, b))  # diverged: ranked worst
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    test = ranks.mann_whitney(x, y)
    shift, lo, hi = ranks.hodges_lehmann(x, y)
    improvement = ranks.prob_improvement(x, y, lower)
    name = metric.removeprefix("eval/")
    return {"treatment value": f"{name} median {np.median(x):.3g} (n={len(x)})",
            "baseline value": f"{name} median {np.median(y):.3g} (n={len(y)})",
            "difference": f"{shift:+.3g} [{lo:+.3g}, {hi:+.3g}], P(better) {improvement:.2f}",
            "p": test["p"], "test": test["method"], "sign": -1.0 if improvement > 0.5 else 1.0 if improvement < 0.5 else 0.0,
            "lo": lo, "hi": hi, "nt": len(x), "nb": len(y)}


def _as_well(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict) -> dict:
    rate = _collapse(claim, t, b, keys, rule="end")
    quality = _quality(claim, t, b, keys)
    return {**rate, "quality": f"{quality['treatment value']} vs {quality['baseline value']}: {quality['difference']}, "
                               f"p = {quality['p']:.2g}", "quality p": quality["p"], "quality sign": quality["sign"]}


MEASURES = {"collapse": _collapse, "convergence": _convergence, "quality": _quality, "as_well": _as_well}


def decide(claim: Claim, cells: pd.DataFrame) -> pd.DataFrame:
    """Holm over the claim's cells, then each cell's verdict by VERDICT_RULE."""
    if cells.empty:
        return cells
    unreached = pd.Series(False, index=cells.index)
    if claim.premise:  # an arm with no seed that got good: no collapse after it can show, and no test
        unreached = pd.Series([any(str(c.get(f"{arm} got good", "")).startswith("0/") for arm in ("treatment", "baseline"))
                               for _, c in cells.iterrows()], index=cells.index)
    p_holm = pd.Series(1.0, index=cells.index)
    if (~unreached).any():
        p_holm[~unreached] = holm(cells.loc[~unreached, "p"])
    cells = cells.assign(p_holm=p_holm.values)
    if claim.measure == "as_well":
        cells = cells.assign(quality_p_holm=holm(cells["quality p"]))
    good = -1.0  # lower collapse, faster, lower Frechet distance: the treatment's difference is negative
    family = max(int((~unreached).sum()), 1)
    verdicts = []
    for i, c in cells.iterrows():
        significant = c["p_holm"] < ALPHA
        interval = (c.get("lo", math.nan), c.get("hi", math.nan)) if claim.measure in ("collapse", "quality") else (math.nan,) * 2
        if claim.measure == "as_well":
            worse = (significant and c["sign"] > 0) or (c["quality_p_holm"] < ALPHA and c["quality sign"] > 0)
            verdicts.append(wording.CONTRADICTS if worse else wording.SUPPORTS if c["hi"] < MARGIN
                            else wording.verdict(False, False, c["lo"], c["hi"]))
        elif unreached[i]:
            verdicts.append("premise not reached")
        else:
            fmt = "{:.2f}" if claim.measure == "collapse" else "{:.3g}"
            verdicts.append(wording.verdict(significant, c["sign"] == good, *interval, fmt=fmt))
    cells = cells.assign(cell=verdicts)
    if "nt" in cells:
        cells = cells.assign(**{"detectable (80% power)": [_detectable(claim, c, ALPHA / family) for _, c in cells.iterrows()]})
    return cells


def _detectable(claim: Claim, c: pd.Series, alpha: float) -> str:
    """The smallest effect the cell's n detects with 80% power at its family's first Holm step."""
    if pd.isna(c.get("nt")) or pd.isna(c.get("nb")):
        return ""
    nt, nb = int(c["nt"]), int(c["nb"])
    if "rate_b" in c and not pd.isna(c["rate_b"]):
        d = detectable_difference(nt, nb, float(c["rate_b"]), alpha)
        return f"none up to a rate change of 1 from {c['rate_b']:.2f}" if math.isnan(d) else f"a rate change of {d:.2f}"
    shift = ranks.detectable_shift(nt, nb, alpha)
    return "" if math.isnan(shift) else f"P(better) beyond {0.5 + shift:.2f}"


def overall(cells: pd.DataFrame) -> str:
    if cells.empty:
        return "not measured"
    counts = cells["cell"].value_counts().to_dict()
    s = int(cells["cell"].map(wording.is_support).sum())  # a non-inferiority cell supports with what it supports
    c, n = counts.get("contradicts", 0), len(cells)
    unreached = counts.get("premise not reached", 0)
    if unreached == n:
        return f"premise not reached at this budget (in none of {n} cells did both arms have a seed that got good)"
    if s == n:
        return "supported"
    if c == n:
        return "contradicted"
    if s and c:
        return f"mixed ({s} of {n} cells support, {c} contradict)"
    if s:
        return f"partly supported ({s} of {n} cells; the rest not decided)"
    if c:
        return f"partly contradicted ({c} of {n} cells; the rest not decided)"
    return f"not decided at this n (no cell of {n} decided)"

"""Findings: per regime, each treatment against the baseline on collapse and on the main
quality metric, worded by one stated rule so that a verdict can be checked by hand."""

from __future__ import annotations

import math

import pandas as pd

from analysis import ranks, wording
from analysis.convergence import censor, compare_times, convergence_wording
from analysis.stats import holm
from analysis.tables import FACETS, RULES, Layout, _label, quality_metric
from vi_contract import schema
from vi_contract.columns import config

ALPHA = 0.05
SMALL_N = 10
RULE = (f"A difference is called significant when its two-sided test gives p < {ALPHA} after Holm's correction for "
        "the number of comparisons in this report (collapse, quality and convergence tests each form one family): "
        "Fisher's exact test for collapse rates, the Mann-Whitney U test (exact with ties) for the quality metric (a "
        "diverged seed ranked worst) and for the steps to converge (a seed that never converged, or diverged, counts as "
        "slower than every seed that did). "
        "Otherwise it reads \"not decided at n = a vs b\", with what the 95% interval of the difference excludes: "
        "Newcombe's hybrid score interval for rates, the Hodges-Lehmann shift with its distribution-free interval for "
        "quality (with no ties it excludes 0 exactly when the test rejects at 5%). "
        "The verdict follows the test; where the interval and the test disagree, the finding says so. "
        f"Conditions with fewer than {SMALL_N} seeds are flagged: only large effects can be detected there.")


def _interval(lo: float, hi: float, fmt: str = "{:+.2f}") -> str:
    return f"{fmt.format(lo)} to {fmt.format(hi)}"


def _p(p: float, adjusted: float) -> str:
    return f"p = {p:.2g}" if adjusted == p else f"p = {p:.2g}, Holm-adjusted {adjusted:.2g}"


def collapse_wording(diff: float, lo: float, hi: float, p: float, n: int, n_base: int, adjusted: float | None = None) -> str:
    adjusted = p if adjusted is None else adjusted
    if adjusted < ALPHA:
        text = (f"{'lower' if diff < 0 else 'higher'} collapse ({diff:+.2f}, 95% interval {_interval(lo, hi)}), "
                f"significant at 5% (Fisher {_p(p, adjusted)})")
        if lo <= 0 <= hi:
            text += f"; the approximate interval ({_interval(lo, hi)}) still spans 0"
        return text
    text = (f"collapse not decided at n = {n} vs {n_base}: {wording.excluded(lo, hi)} (difference {diff:+.2f}, 95% "
            f"interval {_interval(lo, hi)}, Fisher {_p(p, adjusted)})")
    if not lo <= 0 <= hi:
        text += "; the interval excludes 0 but the test does not reject, so no difference is claimed"
    return text


def quality_wording(name: str, better: str, diff: float, lo: float, hi: float, p: float, n: int, n_base: int,
                    adjusted: float | None = None) -> str:
    if math.isnan(p):
        if min(n, n_base) == 1:
            return f"no test of {name} at n = {n} vs {n_base} (a test needs two seeds an arm)"
        return f"{name}: not comparable (no values)"
    adjusted = p if adjusted is None else adjusted
    fmt = "{:+.3g}"
    spans = lo <= 0 <= hi
    if adjusted < ALPHA:
        good = (diff < 0) == (better == "lower")
        text = (f"{'better' if good else 'worse'} {name} (Hodges-Lehmann shift {fmt.format(diff)}, 95% interval "
                f"{_interval(lo, hi, fmt)}), significant at 5% (Mann-Whitney {_p(p, adjusted)})")
        if spans:
            text += "; the interval still spans 0 (ties at 0 make the exact test and the interval differ)"
        return text
    text = (f"{name} not decided at n = {n} vs {n_base}: {wording.excluded(lo, hi, '{:.3g}')} (Hodges-Lehmann shift "
            f"{fmt.format(diff)}, 95% interval {_interval(lo, hi, fmt)}, {_p(p, adjusted)})")
    if not spans and not math.isnan(lo):
        text += "; the interval excludes 0 but the test does not reject, so no difference is claimed"
    return text


def other_definitions(e: pd.Series, significant: bool) -> str:
    """Whether the collapse finding holds under the other collapse definitions (raw p, 5%)."""
    agree, differ = [], []
    for rule in [r for r in RULES if r != "end" and f"{r}_diff" in e]:
        hit = e[f"{rule}_fisher_p"] < ALPHA and (e[f"{rule}_diff"] < 0) == (e["end_diff"] < 0)
        if hit == significant:
            agree.append(rule)
        else:
            differ.append(f"{rule} ({e[f'{rule}_diff']:+.2f}, p = {e[f'{rule}_fisher_p']:.2g})")
    if not differ:
        return f"the same under {', '.join(agree)}" if agree else ""
    return f"not the same under {', '.join(differ)}" + (f"; the same under {', '.join(agree)}" if agree else "")


def findings(trials: pd.DataFrame, effect: pd.DataFrame, lay: Layout, keys: dict,
             converge_rule: str | None = None) -> pd.DataFrame:
    """One row per (facet, regime, treatment): the worded collapse and quality findings (and,
    where the trials carry `steps_to_converge`, the time to converge under `converge_rule`), the
    numbers behind them, and a small-n warning."""
    if effect.empty:
        return pd.DataFrame()
    rows = []
    done = trials[trials["status"].isin(schema.FINISHED)]
    base_label = _label(lay.baseline)
    for _, e in effect.iterrows():
        where = (done["model"] == e["model"]) & (done["dataset"] == e["dataset"]) & (done["regime"] == e["regime"])
        sub = done[where]
        metric = quality_metric(sub[~sub["diverged"].astype(bool)], keys)
        row = {**{f: e[f] for f in FACETS}, "regime": e["regime"], "treatment": e["treatment"], "baseline": base_label,
               "n": e["n"], "n_base": e["n_base"], "collapse_p": e["end_fisher_p"],
               "collapse_args": (e["end_diff"], e["end_lo"], e["end_hi"], e["end_fisher_p"], e["n"], e["n_base"])}
        if metric:
            better = keys.get(metric, {}).get("better", "lower")
            x, y = (ranks.worst_ranked(a[metric], a["diverged"].astype(bool), better == "lower")
                    for a in (sub[sub["treatment"] == e["treatment"]], sub[sub["treatment"] == base_label]))
            x, y = pd.Series(x).dropna(), pd.Series(y).dropna()
            d, lo, hi = ranks.hodges_lehmann(x, y)
            p = ranks.mann_whitney(x, y)["p"]
            name = metric.removeprefix("eval/")
            row.update(quality_metric=name, quality_diff=d, quality_lo=lo, quality_hi=hi, quality_p=p,
                       quality_args=(name, better, d, lo, hi, p, len(x.dropna()), len(y.dropna())))
        if converge_rule and "steps_to_converge" in sub:
            tx, ty = (done.loc[where & (done["treatment"] == label)].dropna(subset=["steps_to_converge"])
                      for label in (e["treatment"], base_label))
            budget = min(tx[config("iterations")].max(), ty[config("iterations")].max()) if len(tx) and len(ty) else math.inf
            x, y = censor(tx["steps_to_converge"], budget), censor(ty["steps_to_converge"], budget)
            if len(x) and len(y):
                row.update(convergence_p=compare_times(x, y)["p"], convergence_args=(converge_rule, x, y))
        row["warning"] = (f"n < {SMALL_N}: only large effects are detectable"
                          if min(e["n"], e["n_base"]) < SMALL_N else "")
        rows.append(row)
    found = pd.DataFrame(rows)
    found["collapse_p_holm"] = holm(found["collapse_p"])
    found["collapse"] = [collapse_wording(*args, adjusted=a) for args, a in zip(found["collapse_args"], found["collapse_p_holm"],
                                                                                   strict=True)]
    found["definitions"] = [other_definitions(e, a < ALPHA) for (_, e), a in zip(effect.iterrows(), found["collapse_p_holm"],
                                                                                   strict=True)]
    if "quality_p" in found:
        found["quality_p_holm"] = holm(found["quality_p"])
        found["quality"] = [quality_wording(*args, adjusted=a) if isinstance(args, tuple) else None
                            for args, a in zip(found["quality_args"], found["quality_p_holm"], strict=True)]
    if "convergence_p" in found:
        found["convergence_p_holm"] = holm(found["convergence_p"])
        found["convergence"] = [convergence_wording(*args, p=p, adjusted=a, alpha=ALPHA) if isinstance(args, tuple) else None
                                for args, p, a in zip(found["convergence_args"], found["convergence_p"],
                                                      found["convergence_p_holm"], strict=True)]
    return found.drop(columns=[c for c in ("collapse_args", "quality_args", "convergence_args") if c in found])


def findings_by_cell(found: pd.DataFrame, lay=None) -> list[tuple[str, list[str]]]:
    """(cell, its findings as sentences) per model x data set x regime; one ('', [why]) when
    there is nothing to compare."""
    if found.empty:
        if lay is not None and lay.compare:
            return [("", [f"No condition holds both {lay.compare} = {_label(lay.baseline)} (the baseline) and another "
                          f"value of {lay.compare} (finished), so no comparison was possible and there are no findings."])]
        return [("", ["No treatment axis with a baseline in these results (set `compare:` in the study), so no findings."])]
    out = []
    for (model, dataset, regime), g in found.groupby(["model", "dataset", "regime"], sort=True):
        lines = []
        for _, r in g.iterrows():
            text = f"**{model} · {dataset} · {regime} · {r['treatment']} vs {r['baseline']}**: {r['collapse']}"
            if r.get("definitions"):
                text += f" [other collapse definitions: {r['definitions']}]"
            if isinstance(r.get("quality"), str):
                text += f"; {r['quality']}"
            if isinstance(r.get("convergence"), str):
                text += f"; {r['convergence']}"
            if r["warning"]:
                text += f" _({r['warning']})_"
            lines.append(text)
        out.append((f"{model} · {dataset} · {regime}", lines))
    return out

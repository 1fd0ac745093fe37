"""Per-condition tables. A condition is every axis of the study but the seed, read from the
results' contract (the `nunique() > 1` guess serves only foreign files without one).

Figures are panels of model x data set; within a panel, the treatment axis (the study's
`compare`, lam by default) is the x axis and the other axes that vary there form the `regime`.

Collapse, counted several ways and always named (RULES): `end` (the study's collapse rule at
the last evaluation), `late` (the rule held at any evaluation in the last half of training),
and, where the data set has the metrics, two definitions of the literature evaluated on each
trial's final metrics: `lit` (fewer than half the modes hold one high-quality sample, the
VEEGAN/PacGAN count) and `kl` (KL of the mode histogram to uniform above log 2). A diverged
trial counts as collapsed under every rule, and as diverged. Metric medians are over the
trials that did not diverge; `n_median` gives their count, so no median is silently
survivor-biased. Bootstrap intervals are given only where n_median >= MIN_N_INTERVAL.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.stats import bootstrap_median, fisher_p, newcombe_difference, wilson
from vi_contract import schema
from vi_contract.columns import condition_columns, config, name_of
from vi_contract.rules import Rule

FACETS = ("model", "dataset")
MIN_N_INTERVAL = 5
RULES = {"end": "collapsed at the last evaluation (the study's rule)",
         "late": "collapsed at any evaluation in the last half of training (the study's rule)",
         "lit": "fewer than half the modes hold one high-quality sample at the end (modes_lit_frac < 0.5)",
         "kl": "KL(mode histogram || uniform) above log 2 at the end (or no high-quality sample)"}
DEFINITIONS = {"lit": Rule("eval/modes_lit_frac", "<", 0.5), "kl": Rule("eval/kl_uniform", ">", math.log(2))}


@dataclass
class Layout:
    """A study's axes by their study names (lam, regime), and the column each reads (config/lam,
    axis/regime): tables, figures and findings show the names."""

    conditions: list[str]  # every axis but the seed
    facets: list[str]
    compare: str | None  # the treatment axis
    baseline: object
    regimes: list[str]  # the other axes that vary within a facet
    columns: dict[str, str]  # name -> column

    def col(self, name: str) -> str:
        return self.columns[name]


def figure_name(*parts: str) -> str:
    """A report figure's file name, without its extension: "samples", model, data set ->
    samples-gan-stacked-digits (the report writes it, CLAIMS.md links it)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


def md_escape(text) -> str:
    """Text for a Markdown page the project writes: no HTML from user input (a label such as
    `<script>` reaches REPORT.md and CLAIMS.md as text, not as markup)."""
    # a code span shows its text as is: left alone, where Markdown reads one (single backticks, not
    # one escaped or of a longer run: "`<img ...>``" is no span, so its HTML is escaped)
    parts = re.split(r"((?<![`\\])`[^`\n]+`(?!`))", str(text))
    # no HTML, and no link or image: `[x](url)` and `![](url)` from a label stay text
    return "".join(p if i % 2 else html.escape(p, quote=False).replace("[", "\\[").replace("]", "\\]")
                   for i, p in enumerate(parts))


def layout(trials: pd.DataFrame, contract: dict | None = None) -> Layout:
    cond = condition_columns(trials, contract)
    conditions = [name_of(c) for c in cond]
    columns = dict(zip(conditions, cond, strict=True))
    for f in FACETS:
        if config(f) in trials:
            columns.setdefault(f, config(f))
    compare = (contract or {}).get("compare") or schema.default_compare(conditions)
    axis = compare["axis"] if compare and compare["axis"] in conditions else None
    facets = [f for f in FACETS if f in columns]
    rest = [c for c in conditions if c not in facets and c != axis]
    within = trials.groupby([columns[f] for f in facets], dropna=False) if facets else [(None, trials)]
    regimes = [c for c in rest if any(g[columns[c]].astype(str).nunique() > 1 for _, g in within)]
    return Layout(conditions, facets, axis, compare["baseline"] if axis else None, regimes, columns)


def with_labels(trials: pd.DataFrame, lay: Layout) -> pd.DataFrame:
    """Adds `regime` (the regime axes, readable), `treatment` (the compare axis as text) and
    `failed` (collapsed or diverged)."""
    out = trials.copy()
    out["treatment"] = out[lay.col(lay.compare)].map(_label) if lay.compare else "all"
    # an axis named `regime` is always part of the label, even while only one of its values has run
    named = "regime" in lay.conditions and lay.compare != "regime"
    shown = [c for c in lay.conditions if c in lay.regimes or (named and c == "regime")]
    if shown == ["regime"]:
        out["regime"] = out[lay.col("regime")].map(str)  # its own labels, as the study names them ("nan" where a
        # combined folder has no such axis: text, as pandas 3's astype(str) would not make it)
    elif shown:
        out["regime"] = out[[lay.col(c) for c in shown]].astype(str).apply(
            lambda r: ", ".join(f"{name_of(c)}={v}" for c, v in r.items()), axis=1)
    elif lay.compare != "regime":
        out["regime"] = "all"
    else:  # a compare axis named regime keeps its values (treatment shows them)
        out["regime"] = out[lay.col("regime")]
    for facet in FACETS:
        out[facet] = out[lay.col(facet)] if facet in lay.columns else "?"
    out["failed"] = out["collapsed"].astype(bool) | out["diverged"].astype(bool)
    return out


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


GROUP_KEYS = [*FACETS, "regime", "treatment"]  # what a condition is, once labelled by with_labels
# the columns of the tables this module derives, besides those of each rule and metric (NAME_rate,
# NAME_lo, ...): a compare axis of one of these names shows as "NAME (axis)" (compare_column)
TABLE_COLUMNS = (*GROUP_KEYS, "n", "n_base", "diverged", "step", "collapsed_share", "n_median", "q25", "median",
                 "q75", "baseline", "loss", "cell")
DERIVED_NAME = re.compile(r"^(collapsed_.*|.+_(rate|rate_base|lo|hi|n|median|diff|fisher_p))$")


def compare_column(compare: str | None) -> str | None:
    """The column of the derived tables that holds the compare axis's values: its name, unless a
    derived column has that name (a labelled axis may be called n or regime)."""
    if compare is None:
        return None
    return f"{compare} (axis)" if compare in TABLE_COLUMNS or DERIVED_NAME.match(compare) else compare


def late_collapse(trials: pd.DataFrame, metrics: pd.DataFrame) -> pd.Series:
    """Per trial: the rule held (or the trial diverged) at an evaluation past half its budget."""
    half = metrics.merge(trials[["trial_id", config("iterations")]], on="trial_id")
    half = half[half["step"] > half[config("iterations")] / 2]
    hit = (half["collapsed"].astype(bool) | half["diverged"].astype(bool)).groupby(half["trial_id"]).any()
    return trials["trial_id"].map(hit).fillna(False).astype(bool) | trials["diverged"].astype(bool)


def collapse_rules(trials: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, pd.Series]:
    """Per rule (RULES), whether each trial counts as collapsed under it; the literature's
    definitions only where their metric has values. A missing value counts as collapsed (no
    high-quality sample at all)."""
    diverged = trials["diverged"].astype(bool)
    rules = {"end": trials["collapsed"].astype(bool) | diverged, "late": late_collapse(trials, metrics)}
    for name, rule in DEFINITIONS.items():
        if rule.metric in trials and trials[rule.metric].notna().any():
            value = trials[rule.metric]
            rules[name] = rule.holds(value) | value.isna() | diverged
    return rules


def metric_keys(trials: pd.DataFrame, contract: dict | None = None) -> list[str]:
    """The eval metrics present with at least one value, in the contract's declared order."""
    declared = [k for k in (contract or {}).get("keys", {}) if k.startswith("eval/")]
    present = [c for c in trials.columns if c.startswith("eval/") and trials[c].notna().any()]
    return [k for k in declared if k in present] + [k for k in present if k not in declared]


def quality_metric(frame: pd.DataFrame, keys: dict) -> str | None:
    """The main quality metric of a set of trials: the first key the contract declares in the
    quality role (a Frechet distance) with values (one per data set)."""
    return next((m for m, d in keys.items() if d.get("role") == "quality" and m in frame and frame[m].notna().any()), None)


def condition_table(trials: pd.DataFrame, metrics: pd.DataFrame, contract: dict | None = None) -> pd.DataFrame:
    """One row per condition: counts, collapse rates under both rules with Wilson intervals,
    diverged count, and per metric the median over non-diverged trials (n_median of them)."""
    lay = layout(trials, contract)
    done = trials[trials["status"].isin(schema.FINISHED)]
    rules = collapse_rules(done, metrics)
    t = with_labels(done, lay).assign(**{f"_{r}": v.values for r, v in rules.items()})
    keys = GROUP_KEYS
    rows = []
    for key, g in t.groupby(keys, sort=True, dropna=False):
        n = len(g)
        row = dict(zip(keys, key, strict=True), n=n)
        for rule in rules:
            k = int(g[f"_{rule}"].sum())
            row[f"collapsed_{rule}"], row[f"{rule}_rate"] = k, k / n
            row[f"{rule}_lo"], row[f"{rule}_hi"] = wilson(k, n)
        row["diverged"] = int(g["diverged"].astype(bool).sum())
        if lay.compare:
            row[compare_column(lay.compare)] = g[lay.col(lay.compare)].iloc[0]
        for m in metric_keys(trials, contract):
            vals = g.loc[~g["diverged"].astype(bool), m].dropna()
            if not len(vals):
                continue
            name = m.removeprefix("eval/")
            med, lo, hi = bootstrap_median(vals) if len(vals) >= MIN_N_INTERVAL else (float(vals.median()), np.nan, np.nan)
            row.update({f"{name}_n": len(vals), f"{name}_median": med, f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def effect_table(table: pd.DataFrame, lay: Layout) -> pd.DataFrame:
    """Each treatment value against the baseline in the same model, data set and regime: the
    difference in collapse rate (every rule) with Newcombe's interval and Fisher's exact p."""
    if lay.compare is None:
        return pd.DataFrame()
    base_label = _label(lay.baseline)
    rows = []
    for key, g in table.groupby([*FACETS, "regime"], sort=True):
        base = g[g["treatment"] == base_label]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in g[g["treatment"] != base_label].iterrows():
            row = dict(zip([*FACETS, "regime"], key, strict=True), treatment=r["treatment"], n=int(r["n"]),
                       n_base=int(b["n"]))
            for rule in [r for r in RULES if f"collapsed_{r}" in table]:
                k, k_base = int(r[f"collapsed_{rule}"]), int(b[f"collapsed_{rule}"])
                d, lo, hi = newcombe_difference(k, int(r["n"]), k_base, int(b["n"]))
                row.update({f"{rule}_rate": r[f"{rule}_rate"], f"{rule}_rate_base": b[f"{rule}_rate"], f"{rule}_diff": d,
                            f"{rule}_lo": lo, f"{rule}_hi": hi, f"{rule}_fisher_p": fisher_p(k, int(r["n"]), k_base, int(b["n"]))})
            rows.append(row)
    return pd.DataFrame(rows)


def scheduled_steps(iterations: int, eval_every: int) -> list[int]:
    steps = list(range(eval_every, iterations + 1, eval_every))
    return steps if steps and steps[-1] == iterations else [*steps, iterations]


def over_time(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str | None, contract: dict | None = None) -> pd.DataFrame:
    """Per condition and scheduled evaluation step: the median and interquartile band of
    `metric` over the trials evaluated at that step (n_median of them: a diverged trial has no
    value), and the share of trials collapsed there (of n, the diverged ones included).
    A trial contributes only up to its own budget; a diverged trial counts as collapsed from
    its divergence to the end of its budget; steps outside the schedule (a divergence between
    evaluations) are not points of their own."""
    lay = layout(trials, contract)
    labelled = with_labels(trials, lay)
    keys = GROUP_KEYS
    frames = []
    for tid, iterations, eval_every in labelled[["trial_id", config("iterations"), config("eval_every")]].itertuples(index=False):
        if iterations == iterations and eval_every == eval_every:
            frames.append(pd.DataFrame({"trial_id": tid, "step": scheduled_steps(int(iterations), int(eval_every))}))
    if not frames:
        return pd.DataFrame(columns=[*keys, "step", "n", "collapsed_share"])
    grid = pd.concat(frames, ignore_index=True)
    m = metrics.assign(failed=metrics["collapsed"].astype(bool) | metrics["diverged"].astype(bool))
    state = pd.merge_asof(grid.sort_values("step"), m[["trial_id", "step", "failed"]].sort_values("step"),
                          on="step", by="trial_id", direction="backward")
    diverged_at = m[m["diverged"].astype(bool)].groupby("trial_id")["step"].min()
    last = m.groupby("trial_id")["step"].max()
    reached = state["step"] <= state["trial_id"].map(last).fillna(-1)
    state["dead"] = state["step"] >= state["trial_id"].map(diverged_at).fillna(np.inf)
    state["failed"] = state["failed"].fillna(False).astype(bool) | state["dead"]
    state = state[reached | state["dead"]].merge(labelled[["trial_id", *keys]], on="trial_id")
    out = state.groupby([*keys, "step"]).agg(n=("trial_id", "size"), collapsed_share=("failed", "mean"))
    if metric and metric in metrics and metrics[metric].notna().any():
        vals = metrics[["trial_id", "step", metric]].merge(labelled[["trial_id", *keys]], on="trial_id")
        grouped = vals.groupby([*keys, "step"])[metric]
        q = grouped.quantile([0.25, 0.5, 0.75]).unstack()
        q.columns = ["q25", "median", "q75"]
        out = out.join(q.assign(n_median=grouped.count()), how="left")  # n_median: seeds with a value there
    return out.reset_index()

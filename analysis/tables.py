"""Per-condition tables. A condition is every grid axis but the seed: the config columns that
vary across the trials read. A trial counts as collapsed when its last evaluation was
collapsed; a diverged trial counts as collapsed (it covers no mode) and as diverged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import schema
from analysis.stats import bootstrap_median, fisher_p, newcombe_difference, wilson

SUMMARY_METRICS = ("eval/modes_frac", "eval/hq_frac", "eval/kl_uniform", "eval/fd_2d", "eval/fd_digits",
                   "eval/fid_inception")
FD_METRICS = ("eval/fid_inception", "eval/fd_digits", "eval/fd_2d")
FACETS = ("model", "dataset")


def condition_columns(trials: pd.DataFrame) -> list[str]:
    cols = [c for c in schema.config_columns(trials.columns) if c not in ("seed", "trial_id")]
    return [c for c in cols if trials[c].astype(str).nunique() > 1]


def regime_columns(trials: pd.DataFrame) -> list[str]:
    """Condition columns other than lam and the facets, minus the config keys that a labelled
    axis determines (a `regime` label stands for the bn/d_steps/g_steps it sets)."""
    cands = [c for c in condition_columns(trials) if c not in ("lam", *FACETS)]
    labels = [c for c in cands if pd.api.types.is_string_dtype(trials[c]) or trials[c].dtype == object]
    return labels + [c for c in sorted(cands) if c not in labels and not any(
        trials.groupby(trials[k].astype(str))[c].nunique().max() == 1 for k in labels)]


def with_labels(trials: pd.DataFrame) -> pd.DataFrame:
    """Adds `regime` (a readable label of the non-lam, non-facet condition) and `lam_label`."""
    out = trials.copy()
    cols = regime_columns(trials)
    if cols == ["regime"]:
        out["regime"] = out["regime"].astype(str)
    elif cols:
        out["regime"] = out[cols].astype(str).apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1)
    else:
        out["regime"] = "all"
    for facet in FACETS:
        if facet not in out:
            out[facet] = "?"
    out["lam_label"] = out["lam"].map(lambda v: f"{v:g}")
    out["failed"] = out["collapsed"].astype(bool) | out["diverged"].astype(bool)
    out["fd"] = np.nan
    for m in reversed(FD_METRICS):
        if m in out:
            out["fd"] = out[m].where(out[m].notna(), out["fd"])
    return out


def group_keys(trials: pd.DataFrame) -> list[str]:
    return [*FACETS, "regime", "lam"]


def condition_table(trials: pd.DataFrame) -> pd.DataFrame:
    t = with_labels(trials[trials["status"].isin(schema.FINISHED)])
    rows = []
    for key, g in t.groupby(group_keys(t), sort=True, dropna=False):
        n, k = len(g), int(g["failed"].sum())
        lo, hi = wilson(k, n)
        row = dict(zip(group_keys(t), key, strict=False), n=n, collapsed=k, collapse_rate=k / n, rate_lo=lo, rate_hi=hi,
                   diverged_share=float(g["diverged"].astype(bool).mean()))
        for m in SUMMARY_METRICS + ("fd",):
            if m in g and g[m].notna().any():
                med, mlo, mhi = bootstrap_median(g[m])
                name = m.removeprefix("eval/")
                row.update({f"{name}_median": med, f"{name}_lo": mlo, f"{name}_hi": mhi})
        rows.append(row)
    return pd.DataFrame(rows)


def lambda_effect(table: pd.DataFrame) -> pd.DataFrame:
    """Each lam > 0 against lam = 0 in the same model, dataset and regime: the difference in
    collapse rate with Newcombe's interval and Fisher's exact p-value."""
    rows = []
    for key, g in table.groupby([*FACETS, "regime"], sort=True):
        base = g[g["lam"] == 0]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in g[g["lam"] > 0].iterrows():
            d, lo, hi = newcombe_difference(int(r["collapsed"]), int(r["n"]), int(b["collapsed"]), int(b["n"]))
            rows.append(dict(zip([*FACETS, "regime"], key, strict=False), lam=r["lam"], n=int(r["n"]), n_lam0=int(b["n"]),
                             rate=r["collapse_rate"], rate_lam0=b["collapse_rate"], difference=d,
                             diff_lo=lo, diff_hi=hi, fisher_p=fisher_p(int(r["collapsed"]), int(r["n"]),
                                                                       int(b["collapsed"]), int(b["n"]))))
    return pd.DataFrame(rows)


def over_time(trials: pd.DataFrame, metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per condition and step: median and interquartile band of `metric` across seeds (over the
    evaluations that happened), and the share of seeds collapsed, where a seed that stopped
    early (diverged) keeps its last state."""
    labelled = with_labels(trials)
    keys = group_keys(labelled)
    t = labelled[["trial_id", *keys]]
    m = metrics.merge(t, on="trial_id")
    m["failed"] = (m["collapsed"].astype(bool) | m["diverged"].astype(bool)).astype(float)
    wide = m.pivot_table(index="trial_id", columns="step", values="failed", aggfunc="last").ffill(axis=1)
    carried = wide.stack().dropna().rename("failed").reset_index().merge(t, on="trial_id")
    share = carried.groupby([*keys, "step"]).agg(n=("trial_id", "size"), collapsed_share=("failed", "mean"))
    if metric in m and m[metric].notna().any():
        q = m.groupby([*keys, "step"])[metric].quantile([0.25, 0.5, 0.75]).unstack()
        q.columns = ["q25", "median", "q75"]
        share = share.join(q)
    return share.reset_index()

"""Figures, one function each: a frame in, a matplotlib Figure out. Panels are model x data
set; colours (seaborn's colour-blind palette) are regimes, or lambda in the curves."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

FD_LABELS = {"fd_2d": "Frechet distance in data space (fd_2d)",
             "fd_digits": "Frechet distance, digits-CNN features (fd_digits)",
             "fid_inception": "FID, Inception-v3 (fid_inception)"}

MARKERS = ("o", "s", "^", "D", "v", "P")
DASHES = ("-", "--", ":", "-.")

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)


def _panels(table: pd.DataFrame, cols_key: str = "dataset", rows_key: str = "model", width: float = 4.4,
            sharey: bool = True):
    rows, cols = sorted(table[rows_key].unique()), sorted(table[cols_key].unique())
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(max(7.5, width * len(cols) + 0.6), 3.3 * len(rows) + 1.4),
                             squeeze=False, sharey=sharey)
    panels = [(axes[i, j], table[(table[rows_key] == r) & (table[cols_key] == c)], f"{r} · {c}")
              for i, r in enumerate(rows) for j, c in enumerate(cols)]
    return fig, panels


def _finish(fig, axes_handles, title: str, legend_title: str):
    handles, labels = {}, []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    ncol = max(1, min(len(labels), int(fig.get_figwidth() // 3.4)))
    if handles:
        fig.legend([handles[lab] for lab in labels], labels, title=legend_title, loc="lower center",
                   ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=11)
    legend_height = (0.35 + 0.28 * math.ceil(len(labels) / ncol)) / fig.get_figheight()
    fig.tight_layout(rect=(0, legend_height, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def _n_note(table: pd.DataFrame) -> str:
    ns = sorted(table["n"].unique())
    return f"n = {ns[0]} trials per point" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]} trials per point (labelled)"


def _dodged(ax, table: pd.DataFrame, y: str, lo: str, hi: str, regimes, palette, label_n: bool):
    lams = sorted(table["lam"].unique())
    width = 0.6 / max(1, len(regimes))
    for k, regime in enumerate(regimes):
        sub = table[table["regime"] == regime].sort_values("lam")
        if sub.empty or sub[y].isna().all():
            continue
        xs = [lams.index(v) - 0.3 + width * (k + 0.5) for v in sub["lam"]]
        ax.errorbar(xs, sub[y], yerr=[(sub[y] - sub[lo]).clip(lower=0), (sub[hi] - sub[y]).clip(lower=0)],
                    fmt="o-", color=palette[k], capsize=3, ms=5, lw=1.2, label=regime)
        if label_n:
            for x, v, n in zip(xs, sub[y], sub["n"], strict=False):
                ax.annotate(f"{n}", (x, v), textcoords="offset points", xytext=(4, 3), fontsize=7, color="0.35")
    ax.set_xticks(range(len(lams)), [f"{v:g}" for v in lams])
    ax.set_xlabel("λ (lam)")


def _regime_palette(table: pd.DataFrame):
    regimes = sorted(table["regime"].unique())
    return regimes, sns.color_palette("colorblind", len(regimes))


def collapse_rate(table: pd.DataFrame):
    regimes, palette = _regime_palette(table)
    label_n = table["n"].nunique() > 1
    fig, panels = _panels(table)
    for ax, sub, title in panels:
        _dodged(ax, sub, "collapse_rate", "rate_lo", "rate_hi", regimes, palette, label_n)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("collapse rate (95% Wilson CI)")
        ax.set_title(title)
    return _finish(fig, None, f"Share of trials collapsed or diverged at the end · {_n_note(table)}", "regime")


def metric_by_condition(table: pd.DataFrame, name: str, ylabel: str, title: str, log: bool = False):
    regimes, palette = _regime_palette(table)
    fig, panels = _panels(table, sharey=False)
    for ax, sub, panel in panels:
        _dodged(ax, sub, f"{name}_median", f"{name}_lo", f"{name}_hi", regimes, palette, False)
        label = ylabel
        if name == "fd" and not sub.empty:
            label = next((FD_LABELS[k] for k in FD_LABELS if f"{k}_median" in sub and sub[f"{k}_median"].notna().any()), ylabel)
        ax.set_ylabel(label + " · median, 95% CI", fontsize=8)
        if log and (sub[f"{name}_median"] > 0).all():
            ax.set_yscale("log")
        ax.set_title(panel)
    return _finish(fig, None, f"{title} · {_n_note(table)}", "regime")


def lambda_sensitivity(table: pd.DataFrame):
    regimes, palette = _regime_palette(table)
    positive = table.loc[table["lam"] > 0, "lam"]
    linthresh = float(positive.min()) if len(positive) else 1.0
    fig, panels = _panels(table)
    for ax, sub, title in panels:
        for k, regime in enumerate(regimes):
            s = sub[sub["regime"] == regime].sort_values("lam")
            if s.empty:
                continue
            # markers and dashes differ too, so that regimes with equal rates stay visible
            ax.plot(s["lam"], s["collapse_rate"], marker=MARKERS[k % len(MARKERS)], ls=DASHES[k % len(DASHES)],
                    color=palette[k], label=regime, ms=6 - k % 3, lw=1.6)
            ax.fill_between(s["lam"], s["rate_lo"], s["rate_hi"], color=palette[k], alpha=0.18, lw=0)
        ax.set_xscale("symlog", linthresh=linthresh)
        lams = sorted(table["lam"].unique())
        ax.set_xticks(lams, [f"{v:g}" for v in lams])
        ax.minorticks_off()
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("λ (symmetric log scale; 0 at the left)")
        ax.set_ylabel("collapse rate (95% band)")
        ax.set_title(title)
    return _finish(fig, None, f"Sensitivity of collapse to λ · {_n_note(table)}", "regime")


def over_time(curves: pd.DataFrame, value: str, ylabel: str, title: str, band: tuple[str, str] | None,
              log: bool = False):
    """Rows: model x data set; columns: regimes; one line per lambda."""
    curves = curves.assign(panel=curves["model"] + " · " + curves["dataset"])
    lams = sorted(curves["lam"].unique())
    palette = sns.color_palette("colorblind", len(lams))
    fig, panels = _panels(curves, cols_key="regime", rows_key="panel", width=3.8, sharey=False)
    for ax, sub, name in panels:
        for k, lam in enumerate(lams):
            s = sub[sub["lam"] == lam].sort_values("step")
            if s.empty or s[value].isna().all():
                continue
            ax.plot(s["step"], s[value], color=palette[k], label=f"λ={lam:g}", lw=1.4)
            if band:
                ax.fill_between(s["step"], s[band[0]], s[band[1]], color=palette[k], alpha=0.15, lw=0)
        if log and (sub[value] > 0).any():
            ax.set_yscale("log")
        if value == "collapsed_share":
            ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(name, fontsize=9)
    n = curves["n"].max()
    return _finish(fig, None, f"{title} · up to n = {n} seeds per line", "lambda")

"""The tables CLAIMS.md sets beside its verdicts: the dose response of every lambda grid, and
the PacGAN-baseline calibration against PacGAN's published Table 1. They describe; the
verdicts (analysis.verdicts) decide; analysis.claims_page sets them on the page."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from analysis import tables
from analysis.stats import fisher_p
from vi_contract.columns import config

if TYPE_CHECKING:
    from analysis.verdicts import Study


def dose_response(study: Study) -> pd.DataFrame:
    """Late-collapse rate per lambda in every data set x regime cell, and the most negative
    difference against lambda = 0 (an increase where every lambda raises collapse) with its
    Fisher p, unadjusted: it is the best of several, so it describes, it does not decide."""
    compare, base = study.lay.compare, study.lay.baseline
    rows = []
    for (dataset, regime), g in study.done.groupby(["dataset", "regime"], sort=True):
        b = g[g[study.lay.col(compare)] == base]
        row = {"dataset": dataset, "regime": regime}
        best = None
        for value, t in g.groupby(study.lay.col(compare), sort=True):
            k, n = int(t["_late"].sum()), len(t)
            row[f"{compare} {tables._label(value)}"] = f"{k}/{n} = {k / n:.2f}"
            if value != base and len(b):
                d = k / n - b["_late"].sum() / len(b)
                if best is None or d < best[1]:
                    best = (value, d, fisher_p(k, n, int(b["_late"].sum()), len(b)))
        if best:
            row["largest decrease (or smallest increase)"] = (f"{compare} {tables._label(best[0])}: {best[1]:+.2f} "
                                                                f"(Fisher p = {best[2]:.2g}, unadjusted)")
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


# PacGAN's Table 1, GAN row (Lin et al. 2018; mean +- standard error over 10 runs at 400 epochs):
# modes captured, high-quality share (%), reverse KL; our ring8-r1 is their ring, grid25 their grid.
PACGAN_GAN = {"ring8-r1": ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)), "grid25": ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07))}


def calibration(study: Study) -> pd.DataFrame:
    """Our PacGAN-baseline numbers (mean +- standard error over seeds, the published metrics)
    beside theirs."""
    rows = []
    for dataset, g in study.done.groupby("dataset", sort=True):
        theirs = PACGAN_GAN.get(dataset)
        row = {"dataset": dataset, "seeds": len(g), "iterations": int(g[config("iterations")].max())}
        for (name, scale, label), ref in zip((("eval/modes_lit", 1, "modes"), ("eval/hq_frac", 100, "high quality %"),
                                              ("eval/kl_uniform", 1, "reverse KL")), theirs or (None,) * 3, strict=True):
            v = g[name].dropna() * scale
            row[f"{label} (ours)"] = f"{v.mean():.3g} +- {v.std(ddof=1) / math.sqrt(len(v)):.2g}" if len(v) > 1 else ""
            row[f"{label} (PacGAN)"] = f"{ref[0]:g} +- {ref[1]:g}" if ref else ""
        rows.append(row)
    return pd.DataFrame(rows)



def stabiliser_grid(panels: list[tuple[str, pd.DataFrame]], alpha: float) -> plt.Figure:
    """A figure for a paper: one panel per baseline (the decided cells of a collapse claim
    against it), one row per cell (study · data set · regime), one column per treatment,
    coloured by the late-collapse difference (blue lower), framed and starred where the cell's
    Holm-adjusted p is below alpha."""
    def row(c: dict) -> str:
        return " · ".join(str(c[k]) for k in ("study", "dataset", "regime") if str(c[k]))

    rows = list(dict.fromkeys(row(c) for _, cells in panels for c in cells.to_dict("records")))
    cols = list(dict.fromkeys(t for _, cells in panels for t in cells["treatment"]))
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(max(7.0, 1.0 * len(cols) * len(panels) + 3.2), 1.3 + 0.34 * len(rows)))
    cmap = matplotlib.colormaps["RdBu"]
    for ax, (baseline, cells) in zip(axes[0], panels, strict=True):
        ax.set_xlim(0, len(cols))
        ax.set_ylim(len(rows), 0)
        for c in cells.to_dict("records"):
            y, x = rows.index(row(c)), cols.index(c["treatment"])
            d, p = float(c["d"]), float(c["p_holm"])
            significant = p < alpha
            ax.add_patch(Rectangle((x, y), 1, 1, facecolor=cmap(0.5 - 0.5 * float(np.clip(d, -1, 1))), edgecolor="white"))
            if significant:
                ax.add_patch(Rectangle((x + 0.04, y + 0.06), 0.92, 0.88, fill=False, edgecolor="black", lw=1.8))
            ax.text(x + 0.5, y + 0.5, f"{d:+.2f}" + ("*" if significant else ""), ha="center", va="center", fontsize=8,
                    color="white" if abs(d) > 0.6 else "0.1", fontweight="bold" if significant else "normal")
        if baseline in [t.split(" ", 1)[-1] for t in cols]:  # the baseline's own column
            x = [t.split(" ", 1)[-1] for t in cols].index(baseline)
            ax.add_patch(Rectangle((x, 0), 1, len(rows), facecolor="0.93", edgecolor="white"))
            ax.text(x + 0.5, len(rows) / 2, "baseline", ha="center", va="center", fontsize=8, color="0.45")
        ax.set_xticks(np.arange(len(cols)) + 0.5, [t.split(" ", 1)[-1] for t in cols], fontsize=8, rotation=30)
        ax.xaxis.tick_top()
        ax.set_yticks(np.arange(len(rows)) + 0.5, rows if ax is axes[0, 0] else [], fontsize=8)
        ax.tick_params(length=0)
        ax.grid(False)  # the style's grid would cross the empty squares of arms not run in a regime
        ax.set_title(f"late collapse against {baseline.split(' ', 1)[-1]}", fontsize=9, pad=24)
        for side in ax.spines.values():
            side.set_visible(False)
    fig.text(0.01, 0.005, f"rate difference, treatment minus baseline; blue: collapses less often; framed and *: "
             f"significant after Holm over the claim's cells (p < {alpha})", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


COST_COLUMNS = ("study", "dataset", "regime", "stabiliser", "pack_size", "ms_per_seed_iteration", "x_none", "rounds",
                "measured")


def cost_table(cost: pd.DataFrame) -> pd.DataFrame:
    """`benchmarks/bench.py cost`'s measurements (stabiliser_cost.csv) as CLAIMS.md shows them:
    one row per study x regime, one column per stabiliser, milliseconds per seed and iteration
    with the ratio to no stabiliser."""
    rows = []
    for (study, dataset, regime), g in cost.groupby(["study", "dataset", "regime"], sort=False):
        row = {"study": study, "dataset": dataset, "regime": regime, "seeds a pack": int(g["pack_size"].iloc[0])}
        for r in g.itertuples(index=False):
            row[r.stabiliser] = f"{r.ms_per_seed_iteration:.3g} ({r.x_none:.2f}x)"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")

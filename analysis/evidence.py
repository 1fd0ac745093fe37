"""The tables CLAIMS.md sets beside its verdicts: the dose response of every lambda grid, and
the PacGAN-baseline calibration against PacGAN's published Table 1. They describe; the
verdicts (analysis.verdicts) decide."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from analysis import tables
from analysis.stats import fisher_p

if TYPE_CHECKING:
    from analysis.verdicts import Study


def dose_response(study: Study) -> pd.DataFrame:
    """Late-collapse rate per lambda in every data set x regime cell, and the most negative
    difference against lambda = 0 (an increase where every lambda raises collapse) with its
    Fisher p, unadjusted: it is the best of several, so it describes, it does not decide."""
    compare, base = study.lay.compare, study.lay.baseline
    rows = []
    for (dataset, regime), g in study.done.groupby(["dataset", "regime"], sort=True):
        b = g[g[compare] == base]
        row = {"dataset": dataset, "regime": regime}
        best = None
        for value, t in g.groupby(compare, sort=True):
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
        row = {"dataset": dataset, "seeds": len(g), "iterations": int(g["iterations"].max())}
        for (name, scale, label), ref in zip((("eval/modes_lit", 1, "modes"), ("eval/hq_frac", 100, "high quality %"),
                                              ("eval/kl_uniform", 1, "reverse KL")), theirs or (None,) * 3, strict=True):
            v = g[name].dropna() * scale
            row[f"{label} (ours)"] = f"{v.mean():.3g} +- {v.std(ddof=1) / math.sqrt(len(v)):.2g}" if len(v) > 1 else ""
            row[f"{label} (PacGAN)"] = f"{ref[0]:g} +- {ref[1]:g}" if ref else ""
        rows.append(row)
    return pd.DataFrame(rows)

